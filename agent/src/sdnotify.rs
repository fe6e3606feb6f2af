//! systemd's notify protocol (`Type=notify`): READY once the agent has observed the host,
//! WATCHDOG pings from the reconciler itself (a stuck loop stops pinging and systemd
//! restarts it), STATUS lines, STOPPING. One datagram to `$NOTIFY_SOCKET` each; without the
//! variable (not under systemd) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

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

pub fn watchdog() {
    send("WATCHDOG=1");
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
