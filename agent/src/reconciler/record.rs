//! The way out of a cycle: `finish` saves the state, records the history entry (and its
//! notification), and publishes the status — on every path, a fault included. Also the
//! status snapshot itself and the phase bookkeeping around faults.
//!
//! The phase and the message are written here only, from a typed `Reason` (`set_reason`):
//! every exit carries one, or asks `settle_phase` to derive it from where the host stands.
//! What is decided later (a fault clearing, a repair that worked) matches on the reason in
//! force, never on the message's text.

use std::time::Instant;

use crate::config::NotifyEvent;
use crate::fault::Classify;
use crate::notify::Notification;
use crate::plan::RunState;
use crate::revision::{short, Revision};
use crate::state::{now_rfc3339, Diagnostic, FaultNote, HistoryEntry, Outcome, Phase, Reason};
use crate::wire::{ResourceView, SourceView, StatusView};

use super::error::CycleError;
use super::parts::Trigger;
use super::task::CycleResult;
use super::task::Reconciler;

/// How often a state that changed only in its clocks (`last_sync`, `last_success_ms`) is
/// written anyway: they only say when, and after a restart they are at most this old (the
/// first cycle writes them again).
const SAVE_TIMESTAMPS_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Whether `a` and `b` differ at most in when the last sync and the last success were. (Every
/// field is named: a new one must be placed here, or the compiler says so.)
fn same_but_clocks(a: &crate::state::AgentState, b: &crate::state::AgentState) -> bool {
    let crate::state::AgentState {
        version,
        desired,
        applied,
        last_good,
        failed,
        invalid,
        paused,
        pinned,
        phase,
        message,
        last_sync: _,
        history,
        notified,
        fault,
        drift,
        counters,
        last_success_ms: _,
        source_fault,
        resources,
        held,
        ignore_rollout,
        report_seen,
        reason,
        bake,
        attempt,
    } = a;
    *version == b.version
        && *desired == b.desired
        && *applied == b.applied
        && *last_good == b.last_good
        && *failed == b.failed
        && *invalid == b.invalid
        && *paused == b.paused
        && *pinned == b.pinned
        && *phase == b.phase
        && *message == b.message
        && *history == b.history
        && *notified == b.notified
        && *fault == b.fault
        && *drift == b.drift
        && *counters == b.counters
        && *held == b.held
        && *ignore_rollout == b.ignore_rollout
        && *report_seen == b.report_seen
        && *bake == b.bake
        && *attempt == b.attempt
        && *reason == b.reason
        && *source_fault == b.source_fault
        && *resources == b.resources
}

/// A history entry to record on the way out.
pub(super) struct Record {
    pub revision: Revision,
    pub outcome: Outcome,
    pub changes: Vec<String>,
    pub message: String,
    /// When the work began (RFC 3339) and its clock.
    pub started: (String, Instant),
    /// Why, per failing resource (failed and rolled-back revisions).
    pub diagnostics: Vec<Diagnostic>,
}

impl Record {
    pub fn new(
        revision: &Revision,
        outcome: Outcome,
        changes: Vec<String>,
        message: String,
        started: &(String, Instant),
    ) -> Record {
        Record {
            revision: revision.clone(),
            outcome,
            changes,
            message,
            started: started.clone(),
            diagnostics: Vec::new(),
        }
    }

    /// The record with why each failing resource failed.
    pub fn with_diagnostics(mut self, diagnostics: Vec<Diagnostic>) -> Record {
        self.diagnostics = diagnostics;
        self
    }
}

/// How a cycle ends.
pub(super) enum Exit {
    /// Nothing was judged; the reason is settled from where the host stands (`settle_phase`).
    /// The text, when given, is the cycle's answer to `sync`.
    Idle(Option<String>),
    /// Nothing was judged, and the cycle decided why the host is where it is (a refused
    /// signature, a dry run, a pin, a rollout gate).
    Stay(Reason),
    /// A revision was judged (applied, rolled back, failed, invalid) or drift repaired, with
    /// the reason it leaves the host in (`None`: the one in force stays, as after a drift
    /// repair while a rollout gate waits).
    Judged(Record, Option<Reason>),
    /// A fault of the host or network: nothing judged, `Degraded`, retried with backoff.
    /// `context` (e.g. "rolling back to …") goes before the fault in the message; `record`
    /// is what the cycle did before it (a drift repair while the source was down).
    Fault { error: CycleError, context: Option<String>, record: Option<Record> },
}

impl Reconciler {
    /// Every way out of a cycle: fault bookkeeping, history, state saved, status published.
    pub(super) fn finish(&mut self, exit: Exit) -> CycleResult {
        if matches!(exit, Exit::Judged(..) | Exit::Fault { .. }) {
            crate::memory::release(); // an apply's or a revert's garbage, not a no-op's
        }
        match exit {
            Exit::Fault { error, context, record } => {
                if let Some(r) = record {
                    self.history(r);
                }
                debug_assert!(error.is_fault(), "only faults are reported as faults: {error}");
                let message = match context {
                    Some(c) => format!("{c}: {error}"),
                    None => error.to_string(),
                };
                let message = format!(
                    "{message} — a fault of the host or network, not of the revision: nothing is marked failed or reverted for it; retrying with backoff"
                );
                self.metrics.faults.inc();
                let note = match self.state.fault.take() {
                    Some(mut f) => {
                        f.cycles += 1;
                        f.message = message.clone();
                        f
                    }
                    None => {
                        self.say(format!("fault: {message}"));
                        FaultNote {
                            message: message.clone(),
                            since: now_rfc3339(),
                            cycles: 1,
                            reason_before: self.ctx.start.clone(),
                        }
                    }
                };
                self.state.fault = Some(note);
                self.set_reason(Reason::Fault { message: message.clone() });
                self.save();
                CycleResult { outcome: None, message: Some(message), fault: true }
            }
            Exit::Idle(message) => {
                self.clear_fault();
                self.settle_phase();
                self.save();
                CycleResult { outcome: None, message: message.or_else(|| self.state.message.clone()), fault: false }
            }
            Exit::Stay(reason) => {
                self.clear_fault();
                self.set_reason(reason);
                self.save();
                CycleResult { outcome: None, message: self.state.message.clone(), fault: false }
            }
            Exit::Judged(record, reason) => {
                self.clear_fault();
                if let Some(r) = reason {
                    self.set_reason(r);
                }
                let outcome = record.outcome;
                let message = record.message.clone();
                self.history(record);
                self.save();
                CycleResult { outcome: Some(outcome), message: Some(message), fault: false }
            }
        }
    }

    /// An apply of `revision` begins: said in the status at once (the cycle's exit says how
    /// it ended).
    pub(super) fn begin(&mut self, revision: &Revision) {
        self.set_reason(Reason::Progressing { revision: revision.to_string() });
        self.save();
    }

    /// The one writer of the phase and the message: both follow from `reason`.
    pub(super) fn set_reason(&mut self, reason: Reason) {
        // A host the watch after the gate finds unhealthy stays Degraded through the cycles
        // that find it running what it should; an apply starts the watch afresh.
        let reason = match (reason, &self.state.reason) {
            (Reason::Synced | Reason::DriftReported { .. }, Some(Reason::Unhealthy { resources, .. }))
                if self.view.health.values().any(|h| !h) =>
            {
                Reason::Unhealthy { resources: resources.clone(), behind: None }
            }
            // A host that waits at a rollout gate (or holds a revision) and runs unhealthy.
            (r @ (Reason::Waiting { .. } | Reason::Held { .. }), Some(Reason::Unhealthy { resources, .. }))
                if self.view.health.values().any(|h| !h) =>
            {
                Reason::Unhealthy { resources: resources.clone(), behind: Some(Box::new(r)) }
            }
            (r @ Reason::Progressing { .. }, _) => {
                self.reset_health_watch();
                r
            }
            (r, _) => r,
        };
        self.state.phase = reason.phase();
        self.state.message = reason.message();
        self.state.reason = Some(reason);
    }

    /// A cycle met no fault: forget the one in force, and put back the reason it covered
    /// (unless the cycle has decided another since).
    fn clear_fault(&mut self) {
        let Some(f) = self.state.fault.take() else { return };
        self.say(format!("fault cleared after {} cycle(s) (since {})", f.cycles, f.since));
        if matches!(self.state.reason, Some(Reason::Fault { .. }) | None) {
            match f.reason_before {
                Some(r) => self.set_reason(r),
                None => {
                    // Nothing decided before the fault (a first start): nothing to put back.
                    self.state.phase = Phase::default();
                    self.state.message = None;
                    self.state.reason = None;
                }
            }
        }
    }

    /// After a cycle with nothing to judge: the reason that describes where the host is.
    /// A failed, invalid or held revision, a repair that failed, a pause keep theirs; a host
    /// that runs what it should is `Synced` (with the drift it reports, if any).
    fn settle_phase(&mut self) {
        if self.state.paused {
            return;
        }
        if let Some(pin) = self.state.pinned.clone() {
            if self.state.applied.as_ref() == Some(&pin) {
                self.set_reason(Reason::Pinned { revision: pin });
            }
            return;
        }
        let desired = self.state.desired.clone();
        if desired.as_ref().is_some_and(|d| self.state.failed.contains(d) || self.state.invalid.contains(d)) {
            return;
        }
        let up_to_date = desired.is_some() && self.state.applied == desired;
        if up_to_date {
            self.metrics.rollout_waiting.set(0);
        }
        let settles = matches!(
            self.state.reason,
            None | Some(
                Reason::Synced
                    | Reason::DriftReported { .. }
                    | Reason::Progressing { .. }
                    | Reason::Pinned { .. }
                    | Reason::SignatureRefused { .. }
                    | Reason::FailedUntouched { .. }
                    | Reason::Waiting { .. }
                    | Reason::Held { .. }
            )
        );
        if up_to_date && settles {
            let reason = if self.state.drift.is_empty() {
                Reason::Synced
            } else {
                Reason::DriftReported { drift: self.state.drift.clone() }
            };
            self.set_reason(reason);
        }
    }

    /// Save the state (with the counters, and the time of this success when the host is
    /// Synced) and publish the status.
    pub(super) fn save(&mut self) {
        if self.state.phase == Phase::Synced && !self.state.paused {
            self.state.last_success_ms = Some(self.metrics.success_now());
        }
        self.state.counters = self.metrics.counters();
        let status = self.status();
        if self.view.looked {
            self.state.resources = healths(&status);
        }
        // A cycle that changed nothing but the clocks (a no-op poll) writes the file at most
        // once every five minutes: the write and its fsync were most of an idle cycle's cost.
        let unchanged = self
            .saved
            .as_ref()
            .is_some_and(|(at, before)| at.elapsed() < SAVE_TIMESTAMPS_EVERY && same_but_clocks(before, &self.state));
        if !unchanged {
            match self.store.save(&self.state) {
                Ok(()) => self.saved = Some((Instant::now(), self.state.clone())),
                Err(e) => tracing::error!("{e}"),
            }
        }
        self.publish_status(status);
    }

    /// Publish the status snapshot (and the phase to metrics and systemd).
    pub(super) fn publish(&self) {
        self.publish_status(self.status());
    }

    fn publish_status(&self, status: StatusView) {
        let phase = if self.state.paused { Phase::Paused } else { self.state.phase };
        self.metrics.set_phase(phase);
        self.metrics.set_revisions(
            self.state.desired.as_deref(),
            self.state.applied.as_deref(),
            self.state.last_good.as_deref(),
        );
        // Until the first cycle has read or observed anything, the gauges restored from the
        // state file stand.
        if self.view.looked {
            let healths = healths(&status);
            self.metrics.set_resources(healths.iter().map(|h| (h.kind.as_str(), h.name.as_str(), h.healthy)));
        }
        self.metrics.drift_unrepaired.set(i64::try_from(self.state.drift.len()).unwrap_or(i64::MAX));
        crate::sdnotify::status(&format!(
            "{} {}{}",
            status.phase,
            status.applied_revision.as_deref().map(short).unwrap_or("-"),
            status.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        ));
        let _ = self.view.status_tx.send(status);
    }

    pub fn status(&self) -> StatusView {
        let c = &self.cfg.config;
        let mut resources: Vec<ResourceView> = Vec::new();
        // Desired resources first, in order, then what runs and is not desired.
        let observed: std::collections::HashMap<(desired_state_schema::Kind, &str), &crate::plan::Observed> =
            self.view.observed.iter().map(|o| ((o.kind, o.name.as_str()), o)).collect();
        let mut names: Vec<(desired_state_schema::Kind, String)> = self.view.desired_resources.clone();
        let mut seen: std::collections::HashSet<(desired_state_schema::Kind, &str)> =
            self.view.desired_resources.iter().map(|(k, n)| (*k, n.as_str())).collect();
        for o in &self.view.observed {
            if seen.insert((o.kind, o.name.as_str())) {
                names.push((o.kind, o.name.clone()));
            }
        }
        let loaded = self.caches.loaded.lock().ok().and_then(|l| l.as_ref().map(|(_, st)| st.clone()));
        let specs: std::collections::HashMap<(desired_state_schema::Kind, &str), &desired_state_schema::Resource> =
            loaded.iter().flat_map(|st| st.resources.iter()).map(|r| ((r.kind, r.name()), r)).collect();
        for (kind, name) in names {
            let o = observed.get(&(kind, name.as_str())).copied();
            let state = match o.map(|o| &o.state) {
                Some(RunState::Running) => "running",
                Some(RunState::NotRunning) => "stopped",
                None => "missing",
            };
            let health = match self.view.health.get(&(kind, name.clone())) {
                Some(true) => "healthy",
                Some(false) => "unhealthy",
                None => "unknown",
            };
            let detail = specs.get(&(kind, name.as_str())).and_then(|r| self.drivers.get(kind).ok()?.describe(r));
            resources.push(ResourceView {
                kind: kind.to_string(),
                name,
                state: state.into(),
                health: health.into(),
                revision: o.map(|o| o.revision.clone()).filter(|r| !r.is_empty()),
                detail,
            });
        }
        StatusView {
            host: self.cfg.host.clone(),
            environment: c.environment.clone(),
            source: SourceView {
                url: c.source.url.clone(),
                reference: self.cfg.selector.to_string(),
                path: c.source.path.clone(),
            },
            phase: if self.state.paused { Phase::Paused.to_string() } else { self.state.phase.to_string() },
            desired_revision: self.state.desired.clone(),
            applied_revision: self.state.applied.clone(),
            last_good_revision: self.state.last_good.clone(),
            applied_subject: self.state.applied.as_ref().and_then(|a| {
                self.state
                    .history
                    .iter()
                    .find(|h| h.revision.as_ref() == Some(a))
                    .and_then(|h| h.commit.as_ref())
                    .map(|c| c.subject.clone())
            }),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            failed_revisions: self.state.failed.clone(),
            paused: self.state.paused,
            pinned_revision: self.state.pinned.clone(),
            held_revisions: self
                .state
                .held
                .iter()
                .map(|(revision, why)| crate::wire::HeldView { revision: revision.clone(), why: why.clone() })
                .collect(),
            ignore_rollout: self.state.ignore_rollout.clone(),
            baking_until: self
                .state
                .bake
                .as_ref()
                .filter(|b| self.state.applied.as_deref().is_some_and(|a| b.holds(a, crate::state::unix_now_ms())))
                .map(|b| {
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(b.until_ms),
                    )
                    .to_string()
                }),
            last_sync: self.state.last_sync.clone(),
            next_sync: self.view.next_sync.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            message: if self.state.paused {
                Some("paused by agentctl pause; agentctl resume restarts reconciliation".into())
            } else {
                self.state.message.clone()
            },
            resources,
            report: self.view.report.clone(),
        }
    }

    fn history(&mut self, record: Record) {
        let Record { revision, outcome, changes, message, started, diagnostics } = record;
        let message = if self.ctx.ref_notes.is_empty() {
            message
        } else {
            format!("{}; {message}", std::mem::take(&mut self.ctx.ref_notes).join("; "))
        };
        let elapsed = started.1.elapsed();
        match outcome {
            Outcome::Applied => self.metrics.deployments.inc(),
            Outcome::RolledBack => self.metrics.rollbacks.inc(),
            Outcome::Failed => self.metrics.failures.inc(),
            Outcome::Invalid => self.metrics.invalid.inc(),
            Outcome::DriftRepaired => self.metrics.drift_repairs.inc(),
        };
        if matches!(outcome, Outcome::Applied | Outcome::RolledBack | Outcome::Failed) {
            self.metrics.apply_duration.observe(elapsed.as_secs_f64());
        }
        let event = match outcome {
            Outcome::Applied => NotifyEvent::Applied,
            Outcome::RolledBack => NotifyEvent::RolledBack,
            Outcome::Failed => NotifyEvent::Failed,
            Outcome::Invalid => NotifyEvent::Invalid,
            Outcome::DriftRepaired => NotifyEvent::DriftRepaired,
        };
        let commit = self.caches.commits.get(revision.as_str()).cloned();
        let n = Notification {
            changes: changes.clone(),
            diagnostics: diagnostics.clone(),
            ..self.notification(event, Some(&revision), message.clone())
        };
        self.notify(n);
        let entry = HistoryEntry {
            started: started.0,
            finished: now_rfc3339(),
            revision: Some(revision.to_string()),
            result: outcome,
            changes,
            message,
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            trigger: Some(
                trigger_word(if outcome == Outcome::DriftRepaired { Trigger::Drift } else { self.ctx.trigger })
                    .to_string(),
            ),
            diagnostics,
            commit,
        };
        let limit = self.cfg.config.history_limit;
        self.state.record(entry, limit);
    }

    /// An apply of `revision` that changes something begins.
    pub(super) fn notify_started(&mut self, revision: &Revision, changes: &[String]) {
        let message = format!("applying {} ({} change(s))", revision.short(), changes.len());
        let n = Notification {
            changes: changes.to_vec(),
            ..self.notification(NotifyEvent::Started, Some(revision), message)
        };
        self.notify(n);
    }

    /// A new revision waits for its rollout gates (`Waiting`) or is held (`Held`): said once
    /// per revision and phase.
    pub(super) fn notify_gated(&mut self, revision: &Revision, phase: Phase, why: &str) {
        let event = if phase == Phase::Held { NotifyEvent::Held } else { NotifyEvent::Waiting };
        let n = self.notification(event, Some(revision), why.to_string());
        self.notify(n);
    }

    /// How the last fetch of the source went: `Some(fault)` or `None` (it worked). Notifies
    /// `source_failed` once per distinct fault and `source_recovered` when it clears.
    pub(super) fn source_health(&mut self, fault: Option<String>) {
        self.metrics.source_up.set(i64::from(fault.is_none()));
        let (event, message) = match (fault, &self.state.source_fault) {
            (Some(f), last) if last.as_ref() != Some(&f) => {
                self.state.source_fault = Some(f.clone());
                (NotifyEvent::SourceFailed, f)
            }
            (None, Some(_)) => {
                self.state.source_fault = None;
                (NotifyEvent::SourceRecovered, format!("fetching {} works again", self.cfg.config.source.url))
            }
            _ => return,
        };
        let n = self.notification(event, None, message);
        // Not deduplicated by revision: the state above says when to send.
        self.send_now(n);
    }

    /// Send `n` now (a state transition decided it: no deduplication by revision).
    pub(super) fn send_now(&mut self, n: Notification) {
        if self.announcer.notifier.wants(n.event) {
            self.announcer.notifier.send(n);
        }
    }

    /// A notification of `event` about this host (and `revision`, with its commit).
    pub(super) fn notification(
        &self,
        event: NotifyEvent,
        revision: Option<&Revision>,
        message: String,
    ) -> Notification {
        Notification {
            event,
            host: self.cfg.host.clone(),
            environment: self.cfg.config.environment.clone(),
            revision: revision.map(|r| r.to_string()),
            commit: revision.and_then(|r| self.caches.commits.get(r.as_str()).cloned()),
            message,
            changes: Vec::new(),
            time: now_rfc3339(),
            diagnostics: Vec::new(),
        }
    }

    /// Send `n` unless its (event, revision) was sent before.
    fn notify(&mut self, n: Notification) {
        if !self.announcer.notifier.wants(n.event) {
            return;
        }
        let key = format!("{}:{}", n.event.as_str(), n.revision.as_deref().unwrap_or_default());
        if self.state.notified.contains(&key) {
            return;
        }
        self.state.notified.push_back(key);
        while self.state.notified.len() > 256 {
            self.state.notified.pop_front();
        }
        self.announcer.notifier.send(n);
    }

    /// Read subject, author and date of `revisions` (and of the applied, last good and
    /// desired ones) from the mirror, once each, for the history and notifications.
    pub(super) async fn learn_commits(&mut self, revisions: &[&Revision]) {
        let mut want: Vec<String> = revisions.iter().map(|r| r.to_string()).collect();
        want.extend([&self.state.applied, &self.state.last_good].into_iter().flatten().cloned());
        want.sort();
        want.dedup();
        want.retain(|r| !self.caches.commits.contains_key(r));
        if want.is_empty() {
            return;
        }
        let src = self.source.clone();
        let found = tokio::task::spawn_blocking(move || {
            want.into_iter()
                .filter_map(|r| {
                    let info = src.commit_info(Revision::new(r.clone()).oid()?).ok()?;
                    Some((r, info))
                })
                .collect::<Vec<_>>()
        })
        .await;
        if let Ok(found) = found {
            if self.caches.commits.len() > 64 {
                self.caches.commits.clear();
            }
            self.caches.commits.extend(found);
        }
    }
}

fn trigger_word(t: Trigger) -> &'static str {
    match t {
        Trigger::Start => "start",
        Trigger::Poll => "poll",
        Trigger::Watch => "watch",
        Trigger::Webhook => "webhook",
        Trigger::Manual => "manual",
        Trigger::Drift => "drift",
    }
}

/// Each resource's health, as `driftless_resource_healthy` says it: running and not unhealthy.
fn healths(status: &StatusView) -> Vec<crate::state::ResourceHealth> {
    status
        .resources
        .iter()
        .map(|r| crate::state::ResourceHealth {
            kind: r.kind.clone(),
            name: r.name.clone(),
            healthy: r.state == "running" && r.health != "unhealthy",
        })
        .collect()
}

#[cfg(test)]
mod save_tests {
    use super::*;

    #[test]
    fn only_clock_changes_skip_a_write() {
        let a = crate::state::AgentState { last_sync: Some("t1".into()), ..Default::default() };
        let b = crate::state::AgentState { last_sync: Some("t2".into()), last_success_ms: Some(5), ..a.clone() };
        assert!(same_but_clocks(&a, &b));
        let c = crate::state::AgentState { phase: Phase::Degraded, ..b.clone() };
        assert!(!same_but_clocks(&b, &c));
        let mut d = b.clone();
        d.counters.faults += 1;
        assert!(!same_but_clocks(&b, &d), "counters are saved");
    }
}
