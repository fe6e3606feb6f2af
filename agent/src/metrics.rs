//! Prometheus metrics (`metrics.listen`, `GET /metrics`): where the host stands and what the
//! reconciler did. The reconciler updates them; a small hyper server renders them. Counters
//! are saved with the agent's state and restored at start (`restore`), so `increase()` and
//! the shipped alert rules (dist/prometheus) do not see a restart as a reset to zero.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `driftless_revision_info{desired,applied,last_good}` | gauge | 1, labelled with the revisions (empty when none) |
//! | `driftless_phase{phase}` | gauge | 1 for the current phase, 0 for the others |
//! | `driftless_resource_healthy{kind,name}` | gauge | 1 running and not failing its checks, 0 otherwise |
//! | `driftless_last_success_timestamp_seconds` | gauge | end of the last cycle that left the host Synced (0: never) |
//! | `driftless_report_last_success_timestamp_seconds` | gauge | when the last host report was pushed (`report:`; 0: never) |
//! | `driftless_rollout_waiting` | gauge | 1 while a new revision waits for its rollout gates |
//! | `driftless_start_time_seconds` | gauge | when this agent process started |
//! | `driftless_source_up` | gauge | 0 while the last fetch of the source failed (a fault), else 1 |
//! | `driftless_report_up` | gauge | 0 while the last push of this host's report failed (`report:`), else 1 |
//! | `driftless_reconcile_duration_seconds` | histogram | one reconcile cycle |
//! | `driftless_apply_duration_seconds` | histogram | one apply of a revision (steps, gate, revert) |
//! | `driftless_deployments_total` | counter | revisions applied |
//! | `driftless_rollbacks_total` | counter | revisions rolled back |
//! | `driftless_failures_total` | counter | revisions that failed with nothing to roll back to |
//! | `driftless_invalid_revisions_total` | counter | revisions refused as invalid |
//! | `driftless_drift_total` | counter | drifted resources seen (repaired or reported) |
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

use crate::state::{Counters, Phase};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    desired: String,
    applied: String,
    last_good: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    kind: String,
    name: String,
}

/// Every metric the agent exports (see the table above for what each means).
pub struct Metrics {
    registry: Registry,
    pub reconcile_duration: Histogram,
    pub apply_duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    /// When the last host report was pushed (`report:`), 0 until one was.
    pub report_last_success: Gauge<f64, AtomicU64>,
    /// 1 while a new revision waits for its rollout gates (`Waiting` or `Held`).
    pub rollout_waiting: Gauge,
    start_time: Gauge<f64, AtomicU64>,
    pub source_up: Gauge,
    /// 0 while the last push of the host's report failed, else 1 (also without `report:`).
    pub report_up: Gauge,
    phase: Family<PhaseLabels, Gauge>,
    revision: Family<RevisionLabels, Gauge>,
    resource_healthy: Family<ResourceLabels, Gauge>,
    pub deployments: Counter,
    pub rollbacks: Counter,
    pub failures: Counter,
    pub invalid: Counter,
    pub drift: Counter,
    pub drift_repairs: Counter,
    pub health_failures: Counter,
    pub fetch_duration: Histogram,
    pub fetch_errors: Counter,
    pub faults: Counter,
    pub drift_unrepaired: Gauge,
}

const PHASES: [Phase; 9] = [
    Phase::Synced,
    Phase::Progressing,
    Phase::Degraded,
    Phase::RolledBack,
    Phase::Paused,
    Phase::Failed,
    Phase::Invalid,
    Phase::Waiting,
    Phase::Held,
];

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64()
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let durations = || Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0]);
        let mut registry = Registry::default();
        let m = Metrics {
            reconcile_duration: durations(),
            apply_duration: durations(),
            last_success: Gauge::default(),
            report_last_success: Gauge::default(),
            rollout_waiting: Gauge::default(),
            start_time: Gauge::default(),
            source_up: Gauge::default(),
            report_up: Gauge::default(),
            phase: Family::default(),
            revision: Family::default(),
            resource_healthy: Family::default(),
            deployments: Counter::default(),
            rollbacks: Counter::default(),
            failures: Counter::default(),
            invalid: Counter::default(),
            drift: Counter::default(),
            drift_repairs: Counter::default(),
            health_failures: Counter::default(),
            fetch_duration: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            fetch_errors: Counter::default(),
            faults: Counter::default(),
            drift_unrepaired: Gauge::default(),
            registry: Registry::default(),
        };
        m.start_time.set(unix_now());
        m.source_up.set(1);
        m.report_up.set(1);
        let r = &mut registry;
        r.register(
            "driftless_revision_info",
            "The desired, applied and last good revisions (full commit ids; empty when none)",
            m.revision.clone(),
        );
        r.register("driftless_phase", "1 for the agent's current phase, 0 for the others", m.phase.clone());
        r.register(
            "driftless_resource_healthy",
            "1 when a managed resource runs and does not fail its health checks, else 0",
            m.resource_healthy.clone(),
        );
        r.register(
            "driftless_last_success_timestamp_seconds",
            "Unix time of the end of the last cycle that left the host Synced (0: never)",
            m.last_success.clone(),
        );
        r.register(
            "driftless_report_last_success_timestamp_seconds",
            "Unix time the last host report was pushed to report.url (0: never)",
            m.report_last_success.clone(),
        );
        r.register(
            "driftless_rollout_waiting",
            "1 while a new revision waits for its rollout gates (phase Waiting or Held), else 0",
            m.rollout_waiting.clone(),
        );
        r.register("driftless_start_time_seconds", "Unix time the agent process started", m.start_time.clone());
        r.register(
            "driftless_report_up",
            "0 while the last push of this host's report to report.url failed (a fault; retried with backoff), else 1",
            m.report_up.clone(),
        );
        r.register(
            "driftless_source_up",
            "0 while the last fetch of the Git source failed (remote unreachable, auth refused), else 1",
            m.source_up.clone(),
        );
        r.register(
            "driftless_reconcile_duration_seconds",
            "Duration of one reconcile cycle",
            m.reconcile_duration.clone(),
        );
        r.register(
            "driftless_apply_duration_seconds",
            "Duration of one apply of a revision: its steps, the health gate, and the revert when one follows",
            m.apply_duration.clone(),
        );
        r.register("driftless_deployments", "Revisions applied", m.deployments.clone());
        r.register("driftless_rollbacks", "Revisions rolled back to the last good one", m.rollbacks.clone());
        r.register(
            "driftless_failures",
            "Revisions that failed with no last good revision to go back to",
            m.failures.clone(),
        );
        r.register("driftless_invalid_revisions", "Revisions refused as invalid desired state", m.invalid.clone());
        r.register(
            "driftless_drift",
            "Drifted managed resources seen (stopped, removed or changed outside the agent), repaired or reported",
            m.drift.clone(),
        );
        r.register("driftless_drift_repairs", "Drift repairs", m.drift_repairs.clone());
        r.register("driftless_health_check_failures", "Failed health gates", m.health_failures.clone());
        r.register(
            "driftless_git_fetch_duration_seconds",
            "Duration of one fetch of the source",
            m.fetch_duration.clone(),
        );
        r.register("driftless_git_fetch_errors", "Fetches of the source that failed", m.fetch_errors.clone());
        r.register(
            "driftless_faults",
            "Cycles that met a fault of the host or network (nothing was judged or reverted for it)",
            m.faults.clone(),
        );
        r.register(
            "driftless_drift_unrepaired",
            "Managed resources that drifted and are not repaired (drift: report)",
            m.drift_unrepaired.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// Continue the counters and the last success from a saved state (after a restart).
    pub fn restore(&self, c: &Counters, last_success_ms: Option<u64>) {
        self.deployments.inc_by(c.deployments);
        self.rollbacks.inc_by(c.rollbacks);
        self.failures.inc_by(c.failures);
        self.invalid.inc_by(c.invalid);
        self.drift.inc_by(c.drift);
        self.drift_repairs.inc_by(c.drift_repairs);
        self.health_failures.inc_by(c.health_check_failures);
        self.fetch_errors.inc_by(c.git_fetch_errors);
        self.faults.inc_by(c.faults);
        if let Some(ms) = last_success_ms {
            self.last_success.set(ms as f64 / 1000.0);
        }
    }

    /// The counters as they stand, to be saved with the state.
    pub fn counters(&self) -> Counters {
        Counters {
            deployments: self.deployments.get(),
            rollbacks: self.rollbacks.get(),
            failures: self.failures.get(),
            invalid: self.invalid.get(),
            drift: self.drift.get(),
            drift_repairs: self.drift_repairs.get(),
            health_check_failures: self.health_failures.get(),
            git_fetch_errors: self.fetch_errors.get(),
            faults: self.faults.get(),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        for p in PHASES {
            self.phase.get_or_create(&PhaseLabels { phase: p.to_string() }).set(i64::from(p == phase));
        }
    }

    pub fn set_revisions(&self, desired: Option<&str>, applied: Option<&str>, last_good: Option<&str>) {
        let labels = RevisionLabels {
            desired: desired.unwrap_or_default().to_string(),
            applied: applied.unwrap_or_default().to_string(),
            last_good: last_good.unwrap_or_default().to_string(),
        };
        self.revision.clear();
        self.revision.get_or_create(&labels).set(1);
    }

    /// The health of every managed resource (those no longer there disappear).
    pub fn set_resources<'a>(&self, resources: impl Iterator<Item = (&'a str, &'a str, bool)>) {
        self.resource_healthy.clear();
        for (kind, name, healthy) in resources {
            self.resource_healthy
                .get_or_create(&ResourceLabels { kind: kind.to_string(), name: name.to_string() })
                .set(i64::from(healthy));
        }
    }

    /// The host is Synced now; returns the time in Unix milliseconds (saved with the state).
    pub fn success_now(&self) -> u64 {
        let now = unix_now();
        self.last_success.set(now);
        (now * 1000.0) as u64
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
