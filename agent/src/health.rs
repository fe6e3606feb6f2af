//! The health gate: run every check of every changed resource, all at once, until each
//! passes, or one times out or runs out of retries. A watcher asks each resource's driver
//! whether it failed already (a container that exits or restarts) and fails the gate early
//! instead of waiting out the timeout. Probes: http, tcp, exec, container (the runtime's own
//! verdict: the image's HEALTHCHECK), systemd. Every probe attempt is progress for the
//! watchdog heartbeat.

use std::time::{Duration, Instant};

use desired_state_schema::{HealthCheck, Probe, Resource};
use futures_util::future::join_all;

use crate::config::HealthDefaults;
use crate::runtime::{Drivers, Liveness};

/// Why the gate failed: which resource, which check, what it saw last.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {what}")]
pub struct GateFailure {
    pub resource: String,
    pub what: String,
}

/// Run the gate over `resources`. `report` receives one line per passed check.
pub async fn gate(
    drivers: &Drivers,
    defaults: &HealthDefaults,
    resources: &[&Resource],
    report: &(dyn Fn(String) + Sync),
) -> Result<(), GateFailure> {
    let all: Vec<(&Resource, Vec<HealthCheck>)> = resources.iter().map(|r| (*r, checks_of(drivers, r))).collect();
    let mut checks = Vec::new();
    for (r, list) in &all {
        for (i, c) in list.iter().enumerate() {
            checks.push(run_check(drivers, defaults, r, i, c, report));
        }
    }
    let watched: Vec<(&dyn crate::runtime::Driver, &str)> =
        resources.iter().filter_map(|r| drivers.get(r.kind).ok().map(|d| (d, r.name()))).collect();
    let all_checks = async {
        for result in join_all(checks).await {
            result?;
        }
        Ok(())
    };
    let watcher = async {
        loop {
            for (driver, name) in &watched {
                if let Liveness::Failed(why) = driver.watch(name).await {
                    return Err(GateFailure { resource: name.to_string(), what: why });
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    // A settle (the driver's: a container that dies at once must be seen dying).
    let settle = watched.iter().map(|(d, _)| d.settle()).max().unwrap_or_default();
    tokio::time::sleep(settle).await;
    tokio::select! {
        r = all_checks => {
            r?;
            // One last look: passing checks against a container that just died do not count.
            for (driver, name) in &watched {
                if let Liveness::Failed(why) = driver.watch(name).await {
                    return Err(GateFailure { resource: name.to_string(), what: why });
                }
            }
            Ok(())
        }
        r = watcher => r,
    }
}

/// A resource's checks: its own, then what its driver adds (a Container's `healthcheck`).
pub fn checks_of(drivers: &Drivers, r: &Resource) -> Vec<HealthCheck> {
    let mut c = r.spec.health().to_vec();
    if let Ok(d) = drivers.get(r.kind) {
        c.extend(d.implicit_checks(r));
    }
    c
}

/// One attempt of `check`, as the watch after the gate runs it (PRODUCT.md behaviour 6):
/// passes, or why not; bounded by the check's timeout and by 10 s.
pub async fn probe_once(
    drivers: &Drivers,
    defaults: &HealthDefaults,
    r: &Resource,
    check: &HealthCheck,
) -> Result<(), String> {
    let limit = check.timeout.unwrap_or(defaults.timeout).as_std().min(Duration::from_secs(10));
    match tokio::time::timeout(limit, probe(drivers, r, check, limit)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{} failed: {e}", describe(check))),
        Err(_) => Err(format!("{} gave no answer within {}s", describe(check), limit.as_secs())),
    }
}

async fn run_check(
    drivers: &Drivers,
    defaults: &HealthDefaults,
    r: &Resource,
    index: usize,
    check: &HealthCheck,
    report: &(dyn Fn(String) + Sync),
) -> Result<(), GateFailure> {
    let timeout = check.timeout.unwrap_or(defaults.timeout).as_std();
    let interval = check.interval.unwrap_or(defaults.interval).as_std();
    let started = Instant::now();
    let deadline = started + timeout;
    let label = describe(check);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        crate::sdnotify::progress(); // a gate that probes is progress
        let remaining = deadline.saturating_duration_since(Instant::now());
        let per_attempt = interval
            .max(Duration::from_secs(2))
            .min(Duration::from_secs(10))
            .min(remaining.max(Duration::from_millis(100)));
        let outcome = match tokio::time::timeout(per_attempt, probe(drivers, r, check, per_attempt)).await {
            Ok(o) => o,
            Err(_) => Err(format!("no answer within {}ms", per_attempt.as_millis())),
        };
        match outcome {
            Ok(()) => {
                report(format!(
                    "health {}/{} check {} ({label}) passed after {attempts} attempt(s)",
                    r.kind,
                    r.name(),
                    index + 1
                ));
                return Ok(());
            }
            Err(last) => {
                let out_of_retries = check.retries.is_some_and(|n| attempts >= n);
                if out_of_retries || Instant::now() + interval > deadline {
                    let why = if out_of_retries {
                        format!("after {attempts} attempt(s)")
                    } else {
                        format!("for {}s", timeout.as_secs())
                    };
                    return Err(GateFailure {
                        resource: r.name().to_string(),
                        what: format!("health check {} ({label}) failed {why}: {last}", index + 1),
                    });
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

fn describe(check: &HealthCheck) -> String {
    match check.probes().first() {
        Some(Probe::Http(h)) => format!("http {}", h.url),
        Some(Probe::Tcp(t)) => format!("tcp {}", t.address),
        Some(Probe::Exec(argv)) => format!("exec {}", argv.join(" ")),
        Some(Probe::Container) => "container HEALTHCHECK".into(),
        Some(Probe::Systemd(units)) => format!("systemd {}", units.join(" ")),
        None => "no probe".into(),
    }
}

/// How long a `tcp` probe waits, once connected, to see whether the peer closes at once.
const TCP_SETTLE: Duration = Duration::from_millis(250);

/// The client of `http` checks whose URL is not plain `http://` (https), built once, on first
/// use: building one parses the system's TLS roots (tens of ms, most of what the watch after
/// the gate cost when each round, and each gate, built its own), which plain-http checks
/// never need.
fn tls_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder().no_proxy().build().map_err(|e| format!("cannot make an HTTPS client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The most of a body an `http` check reads (`body_contains` looks in this much).
const MAX_BODY: usize = 1 << 20;

/// `http://host[:port]/path?query` → (the address to connect to, the `Host` header, the
/// request target); `None` for anything else (https, userinfo), which reqwest handles.
fn plain_http(url: &str) -> Option<(String, String, String)> {
    let u = reqwest::Url::parse(url).ok()?;
    if u.scheme() != "http" || !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    let host = u.host_str()?.to_string();
    let port = u.port_or_known_default()?;
    let authority = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let target = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    Some((format!("{host}:{port}"), authority, target))
}

/// One GET over a connection of its own: the status and (when `read_body`) the body's
/// first `MAX_BODY` bytes as text.
async fn get_plain(
    addr: &str,
    host: &str,
    target: &str,
    read_body: bool,
    timeout: Duration,
) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let result = async {
            let req = hyper::Request::get(target)
                .header(hyper::header::HOST, host)
                .header(hyper::header::USER_AGENT, concat!("driftless/", env!("CARGO_PKG_VERSION")))
                .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let code = resp.status().as_u16();
            let mut body = Vec::new();
            if read_body {
                let mut b = resp.into_body();
                while let Some(frame) = b.frame().await {
                    let frame = frame.map_err(|e| e.to_string())?;
                    if let Some(d) = frame.data_ref() {
                        body.extend_from_slice(d);
                        if body.len() >= MAX_BODY {
                            break;
                        }
                    }
                }
            }
            Ok::<_, String>((code, String::from_utf8_lossy(&body).into_owned()))
        }
        .await;
        driver.abort();
        result
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
}

async fn probe(drivers: &Drivers, r: &Resource, check: &HealthCheck, timeout: Duration) -> Result<(), String> {
    match check.probes().first() {
        Some(Probe::Http(h)) => {
            let want = h.status.unwrap_or(desired_state_schema::StatusRange::DEFAULT);
            // Plain HTTP, the common case (a port on the loopback), in one exchange of its
            // own: no pool, no proxy lookup, no redirects, and no TLS client to build. HTTPS
            // goes through reqwest (`tls_client`).
            let (code, body) = match plain_http(&h.url) {
                Some((addr, host, path)) => get_plain(&addr, &host, &path, h.body_contains.is_some(), timeout).await?,
                None => {
                    let resp = tls_client()?
                        .get(&h.url)
                        .timeout(timeout)
                        .send()
                        .await
                        .map_err(|e| crate::fault::error_chain(&e))?;
                    let code = resp.status().as_u16();
                    let body = match (&h.body_contains, want.contains(code)) {
                        (Some(_), true) => resp.text().await.map_err(|e| crate::fault::error_chain(&e))?,
                        _ => String::new(),
                    };
                    (code, body)
                }
            };
            if !want.contains(code) {
                return Err(format!("status {code}, want {}-{}", want.low, want.high));
            }
            if let Some(needle) = &h.body_contains {
                if !body.contains(needle.as_str()) {
                    return Err(format!("the body does not contain {needle:?}"));
                }
            }
            Ok(())
        }
        Some(Probe::Tcp(t)) => {
            use tokio::io::AsyncReadExt;
            let mut stream =
                tokio::net::TcpStream::connect(t.address.trim_start_matches('[').replace("]:", ":").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
            // A connection accepted and closed at once with nothing sent is no server: Docker's
            // proxy for a published port accepts, then closes when the container does not
            // listen. A server that waits for the client, or greets it, passes.
            let mut byte = [0u8; 1];
            match tokio::time::timeout(TCP_SETTLE, stream.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => Err(format!(
                    "{} accepted the connection and closed it at once: nothing answers behind it (a published port's proxy does this when the container does not listen)",
                    t.address
                )),
                Ok(Ok(_)) | Err(_) => Ok(()),
            }
        }
        Some(Probe::Exec(argv)) => {
            let (prog, args) = argv.split_first().ok_or("empty command")?;
            let out = tokio::process::Command::new(prog)
                .args(args)
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| format!("cannot run {prog}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                Err(format!("exit {}: {}", out.status.code().unwrap_or(-1), err.trim().lines().last().unwrap_or("")))
            }
        }
        Some(Probe::Container) => drivers.get(r.kind).map_err(|e| e.to_string())?.self_check(r.name()).await,
        Some(Probe::Systemd(units)) => {
            let out = tokio::process::Command::new("systemctl")
                .arg("is-active")
                .args(units.iter())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| format!("cannot run systemctl: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "not all active: {}",
                    String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(", ")
                ))
            }
        }
        None => Err("no probe".into()),
    }
}
