//! Prometheus metrics (`metrics.listen`, `GET /metrics`): what the reconciler did and how
//! long it took. The reconciler updates them; a small hyper server renders them.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `driftless_reconcile_duration_seconds` | histogram | one reconcile cycle |
//! | `driftless_last_success_timestamp_seconds` | gauge | end of the last cycle that left the host Synced |
//! | `driftless_phase{phase}` | gauge | 1 for the current phase, 0 for the others |
//! | `driftless_revision_info{applied,last_good}` | gauge | 1, labelled with the revisions |
//! | `driftless_deployments_total` | counter | revisions applied |
//! | `driftless_rollbacks_total` | counter | revisions rolled back |
//! | `driftless_drift_repairs_total` | counter | drift repairs |
//! | `driftless_health_check_failures_total` | counter | failed health gates |
//! | `driftless_git_fetch_duration_seconds` | histogram | one fetch (ls-remote, then fetch if needed) |
//! | `driftless_git_fetch_errors_total` | counter | fetches that failed |
//! | `driftless_faults_total` | counter | cycles that met a fault of the host or network (nothing judged) |
//! | `driftless_drift_unrepaired` | gauge | resources that drifted and are not repaired (`drift: report`) |

use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::state::Phase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    applied: String,
    last_good: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconcile_duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    phase: Family<PhaseLabels, Gauge>,
    revision: Family<RevisionLabels, Gauge>,
    pub deployments: Counter,
    pub rollbacks: Counter,
    pub drift_repairs: Counter,
    pub health_failures: Counter,
    pub fetch_duration: Histogram,
    pub fetch_errors: Counter,
    pub faults: Counter,
    pub drift_unrepaired: Gauge,
}

const PHASES: [Phase; 7] = [
    Phase::Synced,
    Phase::Progressing,
    Phase::Degraded,
    Phase::RolledBack,
    Phase::Paused,
    Phase::Failed,
    Phase::Invalid,
];

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let reconcile_duration =
            Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0]);
        let fetch_duration = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let m = Metrics {
            reconcile_duration: reconcile_duration.clone(),
            last_success: Gauge::default(),
            phase: Family::default(),
            revision: Family::default(),
            deployments: Counter::default(),
            rollbacks: Counter::default(),
            drift_repairs: Counter::default(),
            health_failures: Counter::default(),
            fetch_duration: fetch_duration.clone(),
            fetch_errors: Counter::default(),
            faults: Counter::default(),
            drift_unrepaired: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "driftless_reconcile_duration_seconds",
            "Duration of one reconcile cycle",
            reconcile_duration,
        );
        registry.register(
            "driftless_last_success_timestamp_seconds",
            "Unix time of the end of the last cycle that left the host Synced",
            m.last_success.clone(),
        );
        registry.register("driftless_phase", "1 for the agent's current phase", m.phase.clone());
        registry.register("driftless_revision_info", "The applied and last good revisions", m.revision.clone());
        registry.register("driftless_deployments", "Revisions applied", m.deployments.clone());
        registry.register("driftless_rollbacks", "Revisions rolled back to the last good one", m.rollbacks.clone());
        registry.register("driftless_drift_repairs", "Drift repairs", m.drift_repairs.clone());
        registry.register("driftless_health_check_failures", "Failed health gates", m.health_failures.clone());
        registry.register(
            "driftless_git_fetch_duration_seconds",
            "Duration of one fetch of the source",
            fetch_duration,
        );
        registry.register("driftless_git_fetch_errors", "Fetches of the source that failed", m.fetch_errors.clone());
        registry.register(
            "driftless_faults",
            "Cycles that met a fault of the host or network (nothing was judged or reverted for it)",
            m.faults.clone(),
        );
        registry.register(
            "driftless_drift_unrepaired",
            "Managed resources that drifted and are not repaired (drift: report)",
            m.drift_unrepaired.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    pub fn set_phase(&self, phase: Phase) {
        for p in PHASES {
            self.phase.get_or_create(&PhaseLabels { phase: p.to_string() }).set(i64::from(p == phase));
        }
    }

    pub fn set_revisions(&self, applied: Option<&str>, last_good: Option<&str>) {
        let labels = RevisionLabels {
            applied: applied.unwrap_or_default().to_string(),
            last_good: last_good.unwrap_or_default().to_string(),
        };
        self.revision.clear();
        self.revision.get_or_create(&labels).set(1);
    }

    pub fn success_now(&self) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        self.last_success.set(now.as_secs_f64());
    }

    /// The text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// Serve `GET /metrics` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: crate::listen::Shutdown) {
    crate::listen::serve(
        "metrics",
        listener,
        crate::listen::MAX_CONNECTIONS,
        shutdown,
        move |stream: tokio::net::TcpStream| {
            let metrics = metrics.clone();
            async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let resp = if req.method() == Method::GET && req.uri().path() == "/metrics" {
                            let mut r = Response::new(Full::new(Bytes::from(metrics.render())));
                            if let Ok(v) = hyper::header::HeaderValue::from_str(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ) {
                                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                            }
                            r
                        } else {
                            let mut r = Response::new(Full::new(Bytes::from("GET /metrics\n")));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            }
        },
    )
    .await
}
