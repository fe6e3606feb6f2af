//! Crash and pause points for the crash-safety and fault tests, compiled in only with the
//! `failpoints` cargo feature (scripts/test enables it; the release build and the .deb have
//! none): `DRIFTLESS_FAILPOINT=<name>` makes the agent abort at that point, as abruptly as
//! `kill -9` (no destructors, no flush); `DRIFTLESS_PAUSEPOINT=<name>` makes it wait 8 s
//! there (saying so on stderr), so that a test can break the host — stop the engine — at that
//! very step. `<name>#<n>` acts at the n-th time the point is reached in this process only
//! (`before-switch#2`: the revert's switch back, after the apply's own). Without the feature,
//! `hit` does nothing.

#[cfg(feature = "failpoints")]
use std::time::Duration;

/// How long a pause point holds.
#[cfg(feature = "failpoints")]
const PAUSE: Duration = Duration::from_secs(8);

/// Abort the process here when `DRIFTLESS_FAILPOINT` names this point; wait here when
/// `DRIFTLESS_PAUSEPOINT` does (asleep on the runtime, not blocking it: the control socket
/// keeps answering meanwhile).
#[cfg(feature = "failpoints")]
pub async fn hit(name: &str) {
    static HITS: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());
    let n = match HITS.lock() {
        Ok(mut hits) => match hits.iter_mut().find(|(k, _)| k == name) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                hits.push((name.to_string(), 1));
                1
            }
        },
        Err(_) => 1,
    };
    let names = |v: &str| v == name || v == format!("{name}#{n}");
    if std::env::var("DRIFTLESS_FAILPOINT").is_ok_and(|v| names(&v)) {
        eprintln!("failpoint {name} (#{n}): aborting");
        std::process::abort();
    }
    if std::env::var("DRIFTLESS_PAUSEPOINT").is_ok_and(|v| names(&v)) {
        eprintln!("pausepoint {name}: waiting {} s", PAUSE.as_secs());
        tokio::time::sleep(PAUSE).await;
        eprintln!("pausepoint {name}: going on");
    }
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
pub async fn hit(_name: &str) {}
