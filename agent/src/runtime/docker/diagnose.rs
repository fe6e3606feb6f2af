//! Why a container failed, for the history and the notification (PRODUCT.md behaviour 9):
//! its state, exit code, OOM kill and last 50 lines of log — or, when the revision never
//! made a container (a pull or build that failed, a start-first container that never
//! answered and was removed), what the driver noted meanwhile (`Notes`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::query_parameters::InspectContainerOptions;
use desired_state_schema::Kind;

use super::engine::Engine;
use crate::state::Diagnostic;

/// What the driver noted of a resource while it fetched or converged it, kept until its
/// next fetch or converge; cheap to clone (shared).
#[derive(Clone, Default)]
pub(super) struct Notes {
    /// Build and oneshot output kept for diagnostics when no container is left to ask.
    last_output: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Resources whose last `fetch` failed: (state for the diagnostic, the error). The old
    /// container still runs untouched, so its state and logs would say nothing of why.
    fetch_failed: Arc<Mutex<HashMap<String, (String, String)>>>,
}

impl Notes {
    /// A fetch or converge of `name` starts: what the last one noted goes.
    pub fn clear(&self, name: &str) {
        self.forget_output(name);
        if let Ok(mut failed) = self.fetch_failed.lock() {
            failed.remove(name);
        }
    }

    /// Forget the output kept for `name` (a build that succeeded is no diagnostic).
    pub fn forget_output(&self, name: &str) {
        if let Ok(mut all) = self.last_output.lock() {
            all.remove(name);
        }
    }

    /// Keep `lines` as `name`'s output.
    pub fn keep_output(&self, name: &str, lines: Vec<String>) {
        if let Ok(mut all) = self.last_output.lock() {
            all.insert(name.to_string(), lines);
        }
    }

    /// Add one line to `name`'s output, keeping the last 50.
    pub fn push_line(&self, name: &str, line: String) {
        if let Ok(mut all) = self.last_output.lock() {
            let v = all.entry(name.to_string()).or_default();
            v.push(line);
            if v.len() > 50 {
                v.remove(0);
            }
        }
    }

    /// `name`'s fetch failed with `error`; `state` is what the diagnostic says of it.
    pub fn fetch_failed(&self, name: &str, state: &str, error: &str) {
        if let Ok(mut failed) = self.fetch_failed.lock() {
            failed.insert(name.to_string(), (state.to_string(), error.to_string()));
        }
    }

    fn output(&self, name: &str) -> Option<Vec<String>> {
        self.last_output.lock().ok().and_then(|all| all.get(name).cloned())
    }

    fn failed(&self, name: &str) -> Option<(String, String)> {
        self.fetch_failed.lock().ok().and_then(|f| f.get(name).cloned())
    }
}

/// Why `name` failed, for the history: state, exit code, OOM kill and the last 50 lines
/// of its log (or of its build, when no container was made).
pub(super) async fn diagnose(engine: &Engine, notes: &Notes, name: &str) -> Option<Diagnostic> {
    let kept = notes.output(name);
    let fetch_failed = notes.failed(name);
    if let Some((state, error)) = fetch_failed {
        // Nothing of the new revision was created; what runs is the old, untouched one.
        let mut logs = kept.unwrap_or_default();
        if logs.last() != Some(&error) {
            logs.push(error);
        }
        return Some(Diagnostic {
            kind: Kind::Container.to_string(),
            name: name.to_string(),
            state,
            exit_code: None,
            oom_killed: false,
            logs,
        });
    }
    let api = engine.api().await.ok()?;
    let c = match api.inspect_container(name, None::<InspectContainerOptions>).await {
        Ok(c) => c,
        Err(_) => {
            return kept.map(|logs| Diagnostic {
                kind: Kind::Container.to_string(),
                name: name.to_string(),
                state: "not created".into(),
                exit_code: None,
                oom_killed: false,
                logs,
            })
        }
    };
    let st = c.state.unwrap_or_default();
    let mut logs = engine.tail_logs(name).await;
    let keep_from = logs.len().saturating_sub(50);
    let mut logs = logs.split_off(keep_from);
    if logs.is_empty() {
        logs = kept.unwrap_or_default();
    }
    let restarts = c.restart_count.unwrap_or(0);
    let state = match (&st.status, st.restarting) {
        (_, Some(true)) => format!("restarting ({restarts} restarts)"),
        _ if restarts > 0 => format!("restarting ({restarts} restarts)"),
        (Some(s), _) => s.to_string(),
        _ => "unknown".to_string(),
    };
    Some(Diagnostic {
        kind: Kind::Container.to_string(),
        name: name.to_string(),
        state,
        // A restarting container reports 0 while it runs again: only a real exit counts,
        // else the last one seen.
        exit_code: st.exit_code.filter(|c| *c != 0 || st.running != Some(true)).or_else(|| engine.last_exit(name)),
        oom_killed: st.oom_killed.unwrap_or(false),
        logs,
    })
}
