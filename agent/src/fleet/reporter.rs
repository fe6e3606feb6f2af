//! The reporter (`report:` in the agent config, PRODUCT.md "Fleets"): pushes this host's
//! signed report — `status.json` (what `agentctl status --json` prints) and `outcomes.json`
//! (its last 50 outcomes, with until when each ran) — to `refs/driftless/hosts/<host>` after
//! every outcome and every `report.interval`. A task of its own beside the reconciler: it
//! reads the published status and asks the reconciler for the history like `agentctl` does,
//! and tells it how each push went (`Event::Reported`). A push that fails is a fault: it never
//! holds up a deploy and is retried with backoff (1 s doubling, at most the interval).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::config::LoadedConfig;
use crate::event::{Command, Event};
use crate::listen::Shutdown;
use crate::report_format::{HostReport, OutcomeRecord, OUTCOMES};
use crate::source::GitSource;
use crate::state::{HistoryEntry, Outcome};
use crate::wire::StatusView;

/// Results that end the span of what ran before them: another revision applied (or applied
/// and rolled back), or the running one repaired. An invalid revision, or one that failed
/// before touching anything, leaves the host on what it ran.
fn ends_span(result: Outcome) -> bool {
    matches!(result, Outcome::Applied | Outcome::RolledBack | Outcome::DriftRepaired)
}

/// The moments each revision was seen running unhealthy or `Degraded` (RFC 3339, oldest
/// first), kept in `state_dir` so that a restart does not forget them: what ends a span
/// between two outcomes.
pub type Breaks = BTreeMap<String, Vec<String>>;

/// How many revisions, and moments per revision, `Breaks` keeps.
const BREAK_REVISIONS: usize = 50;
const BREAKS_EACH: usize = 5;

/// `outcomes.json` from the history (newest first, as the history is) and the breaks seen:
/// the last `OUTCOMES` outcomes, and beyond them the newest `applied` outcome of every other
/// revision the history still holds (drift repairs never push a revision's evidence out).
pub fn outcomes(history: &[HistoryEntry], breaks: &Breaks) -> Vec<OutcomeRecord> {
    let record = |i: usize| -> Option<OutcomeRecord> {
        let h = history.get(i)?;
        let revision = h.revision.clone().unwrap_or_default();
        let result = h.result;
        // The nearest newer outcome that ends the span, then a break seen before it.
        let mut until = history[..i].iter().rev().find(|n| ends_span(n.result)).map(|n| n.started.clone());
        if result == Outcome::Applied {
            let seen = breaks.get(&revision).into_iter().flatten();
            let after = |t: &String| seconds(t) >= seconds(&h.finished);
            let before = |t: &String| until.as_ref().is_none_or(|u| seconds(t) < seconds(u));
            if let Some(b) = seen.filter(|t| after(t) && before(t)).min_by_key(|t| seconds(t)) {
                until = Some(b.clone());
            }
        }
        Some(OutcomeRecord { revision, result, at: h.finished.clone(), until })
    };
    let mut out: Vec<OutcomeRecord> = (0..history.len().min(OUTCOMES)).filter_map(record).collect();
    let mut kept: std::collections::BTreeSet<String> =
        out.iter().filter(|o| o.result == Outcome::Applied).map(|o| o.revision.clone()).collect();
    for (i, h) in history.iter().enumerate().skip(OUTCOMES) {
        if out.len() >= 2 * OUTCOMES {
            break;
        }
        let rev = h.revision.clone().unwrap_or_default();
        if h.result == Outcome::Applied && kept.insert(rev) {
            out.extend(record(i));
        }
    }
    out
}

fn seconds(rfc3339: &str) -> u64 {
    crate::state::unix_seconds(rfc3339).unwrap_or(0)
}

/// Note in `breaks` the moment `s` shows its applied revision running unhealthy, once per
/// stretch (`was`: whether it was seen healthy last, per revision). `true` when a break was
/// noted (the file is to be written).
fn note_break(breaks: &mut Breaks, was: &mut Option<(String, bool)>, s: &StatusView, now: &str) -> bool {
    let Some(rev) = s.applied_revision.clone() else { return false };
    let healthy = s.healthy_now();
    let before = match was {
        Some((r, h)) if *r == rev => Some(*h),
        _ => None,
    };
    *was = Some((rev.clone(), healthy));
    if healthy || before == Some(false) {
        return false;
    }
    let list = breaks.entry(rev).or_default();
    list.push(now.to_string());
    let excess = list.len().saturating_sub(BREAKS_EACH);
    list.drain(..excess);
    while breaks.len() > BREAK_REVISIONS {
        // The revision whose newest break is oldest goes first.
        let oldest = breaks.iter().min_by_key(|(_, v)| v.last().map(|t| seconds(t))).map(|(k, _)| k.clone());
        match oldest {
            Some(k) => breaks.remove(&k),
            None => break,
        };
    }
    true
}

/// What makes a report worth pushing before its interval: the phase, the revisions, health.
fn key(s: &StatusView) -> String {
    let healthy: Vec<&str> = s.resources.iter().map(|r| r.health.as_str()).collect();
    format!(
        "{}|{:?}|{:?}|{:?}|{}|{}",
        s.phase,
        s.desired_revision,
        s.applied_revision,
        s.last_good_revision,
        s.failed_revisions.len(),
        healthy.join(",")
    )
}

/// Run until shutdown (returns at once without `report:`).
pub async fn run(
    cfg: LoadedConfig,
    mut status: watch::Receiver<StatusView>,
    tx: mpsc::Sender<Event>,
    mut shutdown: Shutdown,
) {
    let Some(rc) = cfg.config.report.clone() else { return };
    let source = GitSource::for_reports(&rc.url, rc.auth.clone(), cfg.config.state_dir.join("reports.git"));
    let interval = rc.interval.as_std();
    let breaks_file = cfg.config.state_dir.join("report-breaks.json");
    let mut breaks: Breaks =
        std::fs::read(&breaks_file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let mut was: Option<(String, bool)> = None;
    let mut pushed_key: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    let mut due = tokio::time::Instant::now();
    // After a failed push, not before its backoff, whatever changes meanwhile.
    let mut not_before = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
                if note_break(&mut breaks, &mut was, &status.borrow(), &now) {
                    let bytes = serde_json::to_vec(&breaks).unwrap_or_default();
                    if let Err(e) = crate::fsutil::write_atomic(&breaks_file, &bytes) {
                        tracing::warn!("report: cannot keep {}: {e}", breaks_file.display());
                    }
                }
                let k = key(&status.borrow());
                if pushed_key.as_ref() != Some(&k) {
                    due = due.min(tokio::time::Instant::now()).max(not_before);
                }
                if due > tokio::time::Instant::now() {
                    continue;
                }
            }
            _ = tokio::time::sleep_until(due) => {}
        }
        if tokio::time::Instant::now() < due {
            continue;
        }
        let snapshot = status.borrow().clone();
        if snapshot.host.is_empty() {
            due = tokio::time::Instant::now() + Duration::from_millis(200); // nothing published yet
            continue;
        }
        let (reply, answer) = oneshot::channel();
        if tx.send(Event::Control(Command::History { limit: Some(OUTCOMES), reply })).await.is_err() {
            return;
        }
        let history = answer.await.unwrap_or_default();
        // What `status --json` prints, the format's version, and the interval readers judge
        // staleness by.
        let files = vec![
            ("status.json", HostReport::status_json(&snapshot, interval.as_secs())),
            ("outcomes.json", serde_json::to_vec_pretty(&outcomes(&history, &breaks)).unwrap_or_default()),
        ];
        let message = format!(
            "{}: {} {}",
            snapshot.host,
            snapshot.phase,
            snapshot.applied_revision.as_deref().map(crate::revision::short).unwrap_or("(none)")
        );
        let (src, host, sign) = (source.clone(), cfg.host.clone(), rc.sign.clone());
        let pushed = tokio::task::spawn_blocking(move || src.push_report(&host, &files, &sign, &message)).await;
        let error = match pushed {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the push task failed: {e}")),
        };
        if error.is_none() {
            pushed_key = Some(key(&snapshot));
            backoff = Duration::from_secs(1);
            not_before = tokio::time::Instant::now();
            due = tokio::time::Instant::now() + interval;
        } else {
            due = tokio::time::Instant::now() + backoff;
            not_before = due;
            backoff = (backoff * 2).min(interval);
        }
        if tx.send(Event::Reported { error }).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_runs_until_the_next_one_began() {
        let entry = |rev: &str, result: &str, started: &str, finished: &str| -> HistoryEntry {
            serde_json::from_value(serde_json::json!({
                "started": started, "finished": finished, "revision": rev, "result": result,
                "changes": [], "message": "", "duration_ms": 1
            }))
            .unwrap()
        };
        let history = vec![
            entry("c3", "rolled_back", "2026-12-02T12:00:00Z", "2026-12-02T12:01:00Z"),
            entry("c2", "applied", "2026-12-02T11:00:00Z", "2026-12-02T11:01:00Z"),
        ];
        let o = outcomes(&history, &Breaks::new());
        assert_eq!(o[0].until, None, "the newest runs on");
        assert_eq!(o[1].until.as_deref(), Some("2026-12-02T12:00:00Z"));
        assert_eq!(o[1].result, Outcome::Applied);
    }

    /// A span ends at a drift repair, a rollback, another revision applied, or a break the
    /// reporter saw; never at an invalid revision or one that failed untouched. An applied
    /// outcome past the last 50 is kept (drift repairs do not push it out).
    #[test]
    fn a_span_ends_where_the_revision_stopped_running_healthy() {
        let entry = |rev: &str, result: &str, t: u32| -> HistoryEntry {
            let at = format!("2026-12-02T12:{:02}:{:02}Z", t / 60, t % 60);
            serde_json::from_value(serde_json::json!({
                "started": at, "finished": at, "revision": rev, "result": result,
                "changes": [], "message": "", "duration_ms": 1
            }))
            .unwrap()
        };
        let none = Breaks::new();
        let h = vec![entry("X", "invalid", 200), entry("S", "failed", 150), entry("R", "applied", 100)];
        assert_eq!(outcomes(&h, &none)[2].until, None, "an invalid or untouched failed revision leaves R running");
        let h = vec![entry("R", "drift_repaired", 200), entry("R", "applied", 100)];
        assert_eq!(outcomes(&h, &none)[1].until.as_deref(), Some("2026-12-02T12:03:20Z"), "a drift repair ends it");
        let breaks: Breaks = [("R".to_string(), vec!["2026-12-02T12:00:50Z".into(), "2026-12-02T12:02:30Z".into()])]
            .into_iter()
            .collect();
        let h = vec![entry("R", "applied", 100)];
        assert_eq!(outcomes(&h, &breaks)[0].until.as_deref(), Some("2026-12-02T12:02:30Z"), "the first break after it");
        let mut h: Vec<HistoryEntry> = (0..60).map(|i| entry("R", "drift_repaired", 1000 - i)).collect();
        h.push(entry("Q", "applied", 10));
        let o = outcomes(&h, &none);
        assert_eq!(o.len(), OUTCOMES + 1);
        assert_eq!((o[OUTCOMES].revision.as_str(), o[OUTCOMES].result), ("Q", Outcome::Applied));
    }

    #[test]
    fn a_break_is_noted_once_per_unhealthy_stretch() {
        let view = |rev: &str, phase: &str| StatusView {
            applied_revision: Some(rev.into()),
            phase: phase.into(),
            ..Default::default()
        };
        let (mut breaks, mut was) = (Breaks::new(), None);
        assert!(!note_break(&mut breaks, &mut was, &view("R", "Synced"), "t1"));
        assert!(note_break(&mut breaks, &mut was, &view("R", "Degraded"), "t2"));
        assert!(!note_break(&mut breaks, &mut was, &view("R", "Degraded"), "t3"), "the same stretch");
        assert!(!note_break(&mut breaks, &mut was, &view("R", "Synced"), "t4"));
        assert!(note_break(&mut breaks, &mut was, &view("R", "Progressing"), "t5"));
        assert_eq!(breaks["R"], ["t2", "t5"]);
    }
}
