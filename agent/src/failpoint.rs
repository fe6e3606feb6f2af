//! Crash points for the crash-safety tests: `DRIFTLESS_FAILPOINT=<name>` makes the agent
//! abort at that point, as abruptly as `kill -9` (no destructors, no flush). Unset in
//! production, where each check is one environment lookup on a path that already does I/O.

/// Abort the process here when `DRIFTLESS_FAILPOINT` names this point.
pub fn hit(name: &str) {
    if std::env::var("DRIFTLESS_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
