//! systemd's notify protocol (`Type=notify`): `READY=1` once the control socket answers (before
//! the first apply: a first deploy may take longer than any start timeout), `WATCHDOG=1` from
//! a heartbeat, `STATUS=` lines, `STOPPING=1`. One datagram to `$NOTIFY_SOCKET` each; without
//! the variable (not under systemd) every call does nothing.
//!
//! The heartbeat pings every quarter of the watchdog period while the reconciler makes progress.
//! Progress is reported with `progress()` by whatever moves: the reconciler's loop, every
//! progress line, a child process that is still alive (`run_streaming` ticks each second), a
//! pull or build streaming, a gate probing. Only a reconciler stuck for a whole watchdog
//! period stops the pings, and then systemd restarts the agent.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn send(message: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| sock.send_to_addr(message.as_bytes(), &a))
    } else {
        sock.send_to(message.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::debug!("sd_notify {message:?}: {e}");
    }
}

pub fn ready() {
    send("READY=1");
}

pub fn stopping() {
    send("STOPPING=1");
}

pub fn status(text: &str) {
    send(&format!("STATUS={}", text.replace('\n', " ")));
}

/// The watchdog period systemd asked for (`$WATCHDOG_USEC`), if any.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let pid_ok = std::env::var("WATCHDOG_PID").map(|p| p == std::process::id().to_string()).unwrap_or(true);
    (pid_ok && usec > 0).then(|| Duration::from_micros(usec))
}

/// Milliseconds since `EPOCH` of the last progress report.
static LAST_PROGRESS_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Something moved: the reconciler is not stuck.
pub fn progress() {
    LAST_PROGRESS_MS.store(now_ms(), Ordering::Relaxed);
}

/// How long ago the last progress was reported.
pub fn since_progress() -> Duration {
    Duration::from_millis(now_ms().saturating_sub(LAST_PROGRESS_MS.load(Ordering::Relaxed)))
}

/// A deliberate wait (Passenger's restart throttle): progress each second while it lasts.
pub async fn wait(d: Duration) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end {
        progress();
        tokio::time::sleep(Duration::from_secs(1).min(end - tokio::time::Instant::now())).await;
    }
}

/// Start the watchdog heartbeat (when systemd asked for one): every quarter period, ping if
/// there was progress within the last period (so no gap between pings exceeds half the
/// period, as sd_watchdog_enabled(3) asks). Returns at once without `WATCHDOG_USEC`.
pub fn spawn_heartbeat() {
    let Some(period) = watchdog_period() else { return };
    progress();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if since_progress() < period {
                send("WATCHDOG=1");
            } else {
                tracing::warn!(
                    "no progress for {}s: the watchdog is not fed, systemd restarts the agent",
                    since_progress().as_secs()
                );
            }
        }
    });
}
