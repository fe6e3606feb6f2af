//! Drains that never hold up the reconciler (PRODUCT.md "Zero-downtime replaces"): once a
//! start-first container with `proxy` passed its gate, its old instances keep the requests
//! they hold for `proxy.drain` and are then stopped by a task of their own, while the agent
//! goes on (a poll, a drift repair, the next revision).
//!
//! Each drain is journalled in `state_dir/drains.json` (fsync, atomic rename) before its task
//! starts, so an agent killed meanwhile finishes it after its restart (`resume`). While it
//! drains an old instance is not a stray instance (no drift to repair). A converge that
//! switches back to it — the revert of a revision that fails after its commit, within
//! `health.bake` — makes it the serving instance again: the drain then leaves it running.
//! A start-first converge (from its look at the instances on) and the end of a drain take
//! turns (`Drains::turn`), so a drain never stops an instance a converge is switching to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::InspectContainerOptions;
use serde::{Deserialize, Serialize};

use super::engine::Engine;
use super::errors::{docker_err, is_not_found};

/// One old instance under way to being stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Drain {
    /// The resource it served.
    pub resource: String,
    /// Seconds its stop waits.
    pub stop_timeout: i32,
    /// When the drain ends (Unix milliseconds).
    pub until_ms: u64,
}

/// The drains under way, by container id, and their journal.
#[derive(Clone, Debug, Default)]
pub(super) struct Drains {
    /// `state_dir/drains.json`.
    file: PathBuf,
    pending: Arc<Mutex<BTreeMap<String, Drain>>>,
    /// Held by a start-first converge from its look at the instances on, and by a drain
    /// while it stops its instance.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Drains {
    /// The drains journalled in `state_dir` (none when the file is missing or unreadable:
    /// an old instance left running is then a stray instance, which a repair stops).
    pub fn load(state_dir: &Path) -> Drains {
        let file = state_dir.join("drains.json");
        let pending = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Drains { file, pending: Arc::new(Mutex::new(pending)), turn: Default::default() }
    }

    /// Whether container `id` drains.
    pub fn contains(&self, id: &str) -> bool {
        self.pending.lock().is_ok_and(|p| p.contains_key(id))
    }

    /// Journal `drains` (before their tasks start).
    pub fn add(&self, drains: &[(String, Drain)]) -> std::io::Result<()> {
        let mut p = self.pending.lock().map_err(|_| std::io::Error::other("the drain list is poisoned"))?;
        p.extend(drains.iter().cloned());
        self.save(&p)
    }

    /// Forget the drain of `id` (its instance is stopped, gone, or serving again).
    pub fn done(&self, id: &str) {
        if let Ok(mut p) = self.pending.lock() {
            if p.remove(id).is_some() {
                if let Err(e) = self.save(&p) {
                    tracing::warn!("cannot update {}: {e}", self.file.display());
                }
            }
        }
    }

    /// Every drain journalled.
    pub fn all(&self) -> Vec<(String, Drain)> {
        self.pending.lock().map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    }

    /// The turn converges and drains take.
    pub async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    fn save(&self, p: &BTreeMap<String, Drain>) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(p).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&self.file, &bytes)
    }
}

impl Drains {
    /// Start the task that stops container `id` once its drain ends (at once when it has).
    pub fn spawn(&self, engine: &Engine, id: String, d: Drain) {
        let (me, engine) = (self.clone(), engine.clone());
        tokio::spawn(async move {
            let left = d.until_ms.saturating_sub(crate::state::unix_now_ms());
            tokio::time::sleep(Duration::from_millis(left)).await;
            let mut backoff = Duration::from_secs(1);
            loop {
                match me.end(&engine, &id, &d).await {
                    Ok(()) => break,
                    Err(e) => {
                        // The engine away: a fault of the host; tried again, the drain stays.
                        tracing::warn!("{}: stopping the drained container {id}: {e}; trying again", d.resource);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
            }
        });
    }

    /// Stop the drained container `id`, unless it serves again.
    async fn end(&self, engine: &Engine, id: &str, d: &Drain) -> Result<(), crate::runtime::RuntimeError> {
        let _turn = self.turn().await;
        let api = engine.api().await?;
        match api.inspect_container(id, None::<InspectContainerOptions>).await {
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(docker_err(&d.resource, e)),
            Ok(c) if c.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(d.resource.as_str()) => {
                tracing::info!("{}: the drained container serves again (switched back to it): kept", d.resource);
            }
            Ok(_) => {
                engine.stop_and_remove(&d.resource, id, d.stop_timeout).await?;
                tracing::info!("{}: the old container drained and is stopped", d.resource);
            }
        }
        self.done(id);
        engine.changed();
        Ok(())
    }

    /// After a restart: the drains journalled before it go on (called once, at subscribe).
    pub fn resume(&self, engine: &Engine) {
        for (id, d) in self.all() {
            self.spawn(engine, id, d);
        }
    }
}
