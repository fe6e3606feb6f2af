//! Health after the gate (PRODUCT.md behaviour 6): every `health.watch_interval` the checks
//! of what runs are run again, once each (`health::probe_once`), all at once. A resource whose
//! checks fail `retries` times in a row makes the host `Degraded` (`Reason::Unhealthy`, its
//! health `unhealthy` in `status` and `driftless_resource_healthy`, one `degraded`
//! notification); when they all pass again it is `Synced` (one `recovered`). Only a host that
//! runs what it should is watched — `Synced`, or `Waiting`/`Held` at a rollout gate, which it
//! is again after the unhealthy stretch: an apply, a revert, a failed revision, a pause, a
//! fault have their own phase, and the watch waits for them to end. The failing streaks live
//! in the `View` (a restart starts counting afresh); the reason is saved like any other.
//!
//! Within `health.bake` after a revision was committed (`state.bake`), a resource the watch
//! finds unhealthy fails that revision instead: the last good revision before it is made
//! last good again and the host is reverted to it as after a failed gate (`revert.rs`).

use std::collections::BTreeMap;

use desired_state_schema::Kind;

use super::parts::Trigger;
use super::task::Reconciler;
use crate::config::NotifyEvent;
use crate::revision::Revision;
use crate::state::{Bake, Reason};

/// Failures in a row that make a resource unhealthy when its check names no `retries`.
const DEFAULT_RETRIES: u32 = 3;

impl Reconciler {
    /// One round of the watch. Returns at once when the host is not in a phase it watches.
    pub(super) async fn watch_health(&mut self) {
        let watched = matches!(
            self.state.reason,
            Some(
                Reason::Synced
                    | Reason::DriftReported { .. }
                    | Reason::Unhealthy { .. }
                    | Reason::Waiting { .. }
                    | Reason::Held { .. }
            )
        );
        if self.state.paused || !watched || self.state.fault.is_some() {
            return;
        }
        let Some(revision) = self.state.applied.clone().map(Revision::new) else { return };
        let Ok(state) = self.load_revision(&revision).await else { return };
        let defaults = self.cfg.config.health.clone();
        // Every check of every resource, at once — but `exec` checks, each a process, one at a
        // time; each resource fails when any check does.
        let exec_turn = tokio::sync::Semaphore::new(1);
        let mut rounds = Vec::new();
        for r in &state.resources {
            for c in crate::health::checks_of(&self.drivers, r) {
                let (drivers, defaults, exec_turn) = (&self.drivers, &defaults, &exec_turn);
                rounds.push(async move {
                    let _turn = match c.exec.is_some() {
                        true => exec_turn.acquire().await.ok(),
                        false => None,
                    };
                    let result = crate::health::probe_once(drivers, defaults, r, &c).await;
                    ((r.kind, r.name().to_string()), c.retries.unwrap_or(DEFAULT_RETRIES).max(1), result)
                });
            }
        }
        let results = futures_util::future::join_all(rounds).await;
        let (health_before, reason_before) = (self.view.health.clone(), self.state.reason.clone());
        let mut failed: BTreeMap<(Kind, String), (u32, String)> = BTreeMap::new();
        let mut checked: Vec<(Kind, String)> = Vec::new();
        for (key, retries, result) in results {
            checked.push(key.clone());
            if let Err(why) = result {
                failed.entry(key).or_insert((retries, why));
            }
        }
        // Streaks: a resource all of whose checks passed starts again from 0.
        let mut unhealthy = Vec::new();
        for key in checked {
            match failed.get(&key) {
                None => {
                    self.view.streaks.remove(&key);
                    self.view.health.insert(key, true);
                }
                Some((retries, why)) => {
                    let n = self.view.streaks.entry(key.clone()).or_insert(0);
                    *n += 1;
                    if *n >= *retries {
                        unhealthy.push(format!("{}/{}: {why} ({n} checks in a row)", key.0, key.1));
                        self.view.health.insert(key, false);
                    }
                }
            }
        }
        unhealthy.sort();
        unhealthy.dedup();
        let now_ms = crate::state::unix_now_ms();
        if let Some(bake) =
            self.state.bake.clone().filter(|b| !unhealthy.is_empty() && b.holds(revision.as_str(), now_ms))
        {
            self.bake_failed(&revision, &state, bake, &unhealthy, now_ms).await;
            return;
        }
        let was = match &self.state.reason {
            Some(Reason::Unhealthy { resources, .. }) => Some(resources.clone()),
            _ => None,
        };
        // The Waiting or Held an unhealthy stretch covers, and is put back after it.
        let behind = match &self.state.reason {
            Some(r @ (Reason::Waiting { .. } | Reason::Held { .. })) => Some(Box::new(r.clone())),
            Some(Reason::Unhealthy { behind, .. }) => behind.clone(),
            _ => None,
        };
        match (was, unhealthy.is_empty()) {
            (None, true) => {}
            (Some(_), true) => {
                self.say(format!("health: every check of {} passes again", revision));
                self.set_reason(behind.map_or(Reason::Synced, |b| *b));
                let n = self.notification(NotifyEvent::Recovered, Some(&revision), "every check passes again".into());
                self.send_now(n);
                self.save();
            }
            (was, false) => {
                let first = was.is_none();
                if was.as_ref() != Some(&unhealthy) {
                    self.say(format!("health after the gate: {}", unhealthy.join("; ")));
                }
                self.set_reason(Reason::Unhealthy { resources: unhealthy.clone(), behind });
                if first {
                    let n = self.notification(NotifyEvent::Degraded, Some(&revision), unhealthy.join("; "));
                    self.send_now(n);
                }
                self.save();
            }
        }
        // A round that changes nothing publishes nothing (the status readers' snapshot stands).
        if self.view.health != health_before || self.state.reason != reason_before {
            self.publish();
        }
    }

    /// `revision` failed a check within its bake: it is failed, and the host goes back to the
    /// revision that was last good before it, recorded as a rollback (trigger `poll`: the
    /// watch is the agent's periodic look).
    async fn bake_failed(
        &mut self,
        revision: &Revision,
        state: &desired_state_schema::DesiredState,
        bake: Bake,
        unhealthy: &[String],
        now_ms: u64,
    ) {
        let started = (crate::state::now_rfc3339(), std::time::Instant::now());
        self.ctx.trigger = Trigger::Poll;
        self.ctx.start = self.state.reason.clone();
        let after = desired_state_schema::Duration(std::time::Duration::from_secs(
            now_ms.saturating_sub(bake.committed_ms) / 1000,
        ));
        let why = format!(
            "a health check failed {after} after {} was committed, within health.bake ({}): {}",
            revision.short(),
            self.cfg.config.health.bake,
            unhealthy.join("; ")
        );
        self.say(why.clone());
        let mut diagnostics = Vec::new();
        for r in
            state.resources.iter().filter(|r| self.view.health.get(&(r.kind, r.name().to_string())) == Some(&false))
        {
            if let Ok(d) = self.drivers.get(r.kind) {
                diagnostics.extend(d.diagnose(r).await);
            }
        }
        self.state.bake = None;
        self.state.last_good = bake.previous;
        self.reset_health_watch();
        self.revert_after_failure(revision, why, started, Vec::new(), diagnostics).await;
    }

    /// The bake of `revision`, committed now (`None` with `health.bake: 0s`, or when it was
    /// last good already: a repair or a crash recovery re-commits it, and its bake goes on).
    pub(super) fn bake_of(&self, revision: &Revision) -> Option<Bake> {
        let bake = self.cfg.config.health.bake.as_std();
        if let Some(b) = self.state.bake.as_ref().filter(|b| b.revision == revision.as_str()) {
            return Some(b.clone());
        }
        if bake.is_zero() || self.state.last_good.as_deref() == Some(revision.as_str()) {
            return None;
        }
        let now = crate::state::unix_now_ms();
        Some(Bake {
            revision: revision.to_string(),
            previous: self.state.last_good.clone(),
            committed_ms: now,
            until_ms: now.saturating_add(bake.as_millis() as u64),
        })
    }

    /// Forget the watch's streaks (a new revision's resources start from a clean slate).
    pub(super) fn reset_health_watch(&mut self) {
        self.view.streaks.clear();
    }
}

impl Reconciler {
    /// When the next round of the watch is due; `None` with `health.watch_interval: 0s`.
    pub(super) fn next_health_watch(&self) -> Option<tokio::time::Instant> {
        let every = self.cfg.config.health.watch_interval.as_std();
        (!every.is_zero()).then(|| tokio::time::Instant::now() + every)
    }
}
