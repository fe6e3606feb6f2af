//! The reporter (`report:` in the agent config, PRODUCT.md "Fleets"): pushes this host's
//! signed report — `status.json` (what `agentctl status --json` prints) and `outcomes.json`
//! (its last 50 outcomes, with until when each ran) — to `refs/driftless/hosts/<host>` after
//! every outcome and every `report.interval`. A task of its own beside the reconciler: it
//! reads the published status and asks the reconciler for the history like `agentctl` does,
//! and tells it how each push went (`Event::Reported`). A push that fails is a fault: it never
//! holds up a deploy and is retried with backoff (1 s doubling, at most the interval).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::LoadedConfig;
use crate::event::{Command, Event};
use crate::listen::Shutdown;
use crate::source::GitSource;
use crate::state::HistoryEntry;
use crate::wire::StatusView;

/// How many outcomes a report carries.
pub const OUTCOMES: usize = 50;

/// One outcome in `outcomes.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OutcomeRecord {
    pub revision: String,
    /// `applied`, `rolled_back`, `failed`, `invalid`, `drift_repaired`.
    pub result: String,
    /// When the outcome was reached (RFC 3339).
    pub at: String,
    /// Until when the revision ran as the outcome left it: when the next outcome began, or
    /// `null` while it still does.
    pub until: Option<String>,
}

/// `outcomes.json` from the history (newest first, as the history is).
pub fn outcomes(history: &[HistoryEntry]) -> Vec<OutcomeRecord> {
    history
        .iter()
        .take(OUTCOMES)
        .enumerate()
        .map(|(i, h)| OutcomeRecord {
            revision: h.revision.clone().unwrap_or_default(),
            result: serde_json::to_value(h.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            at: h.finished.clone(),
            until: i.checked_sub(1).and_then(|newer| history.get(newer)).map(|n| n.started.clone()),
        })
        .collect()
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
        // What `status --json` prints, and the interval readers judge staleness by.
        let mut status_json = serde_json::to_value(&snapshot).unwrap_or_default();
        if let Some(m) = status_json.as_object_mut() {
            m.insert("report_interval_seconds".into(), interval.as_secs().into());
        }
        let files = vec![
            ("status.json", serde_json::to_vec_pretty(&status_json).unwrap_or_default()),
            ("outcomes.json", serde_json::to_vec_pretty(&outcomes(&history)).unwrap_or_default()),
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
        let o = outcomes(&history);
        assert_eq!(o[0].until, None, "the newest runs on");
        assert_eq!(o[1].until.as_deref(), Some("2026-12-02T12:00:00Z"));
        assert_eq!(o[1].result, "applied");
    }
}
