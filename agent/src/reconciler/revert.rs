//! Putting the host back: revert to the last good revision after a verdict, finish what a
//! journal left (a crash, or a fault mid-apply or mid-revert), and drift — re-observe between
//! revisions and put back what was changed by hand (or only report it).

use std::time::Instant;

use desired_state_schema::DesiredState;

use crate::config::DriftMode;
use crate::fault::Classify;
use crate::plan::Plan;
use crate::revision::Revision;
use crate::state::{now_rfc3339, Journal, JournalOp, Outcome, Reason};

use super::error::CycleError;
use super::record::{Exit, Record};
use super::task::CycleResult;
use super::task::Reconciler;

/// What a drift check found and did (the caller ends the cycle with it).
pub(super) enum Drift {
    /// Nothing applied yet, or nothing drifted.
    None,
    /// Drift seen and left (`drift: report`).
    Reported,
    /// Drift repaired, with the reason it leaves (`RepairFailed` when the repair failed its
    /// gate; `Synced` when it cleared such a failure; `None`: the reason in force stays).
    Repaired(Record, Option<Reason>),
    /// The host could not be observed or repaired for a fault.
    Fault(CycleError),
}

impl Drift {
    pub fn into_exit(self) -> Exit {
        match self {
            Drift::None | Drift::Reported => Exit::Idle(None),
            Drift::Repaired(r, reason) => Exit::Judged(r, reason),
            Drift::Fault(error) => Exit::Fault { error, context: Some("drift check".into()), record: None },
        }
    }

    /// Only what must reach the history (when the cycle ends for another reason).
    pub fn into_record(self) -> Option<Record> {
        match self {
            Drift::Repaired(r, _) => Some(r),
            _ => None,
        }
    }
}

/// What finishing a journal left to do.
pub(super) enum Resumed {
    /// The cycle is over (finished, or a fault kept the journal).
    Done(CycleResult),
    /// A revert that pre-empted an interrupted apply finished: the host is on the last good
    /// revision, and the cycle goes on with what is desired.
    GoOn,
}

impl Reconciler {
    /// Finish an apply, revert or repair that a crash or a fault interrupted (a journal is on
    /// disk).
    pub(super) async fn resume_journal(&mut self, mut journal: Journal) -> Resumed {
        self.say(format!(
            "found an unfinished {} of {} (last step done: {}); finishing it",
            journal.operation,
            crate::revision::short(&journal.revision),
            journal.done.last().map(String::as_str).unwrap_or("none")
        ));
        // Containers a snapshot held when the agent died are put back first.
        if let Err(e) = self.release_after_crash(&mut journal).await {
            return Resumed::Done(self.finish(Exit::Fault {
                error: e,
                context: Some("putting back the containers an interrupted snapshot paused".into()),
                record: None,
            }));
        }
        let rev = Revision::new(journal.revision.clone());
        let failed = journal.failed.clone().map(Revision::new);
        self.learn_commits(&[&rev]).await;
        if let Some(f) = &failed {
            self.learn_commits(&[f]).await;
        }
        match journal.operation {
            JournalOp::Revert if journal.superseded.is_some() => {
                self.revert_superseded(&rev, journal, JournalOp::Apply, None).await
            }
            JournalOp::Restore => Resumed::Done(self.finish_restores(journal).await),
            JournalOp::Revert => {
                let failed = failed.unwrap_or_else(|| rev.clone());
                let why = journal.why.clone().unwrap_or_else(|| "an interrupted revert".into());
                let started = (journal.started.clone(), Instant::now());
                Resumed::Done(self.revert_after_failure(&failed, why, started, Vec::new(), Vec::new()).await)
            }
            // Gate everything: which resources the interruption left ungated is unknown.
            JournalOp::Apply | JournalOp::Repair => Resumed::Done(self.apply_revision(&rev, true).await),
        }
    }

    /// Put the host on `good` under the revert `journal`, which undoes the interrupted `op`
    /// of `journal.superseded` for `journal.why` (a newer revision, a rollback pin, `sync
    /// --retry`): the one way a pre-emption (`cycle.rs::preempt`) and its resumption after a
    /// fault or a crash both take. `then`, when known, is the revision applied after it (for
    /// the status while a fault holds the revert). A verdict on the last good revision goes
    /// on too: what comes next converges everything.
    pub(super) async fn revert_superseded(
        &mut self,
        good: &Revision,
        journal: Journal,
        op: JournalOp,
        then: Option<&Revision>,
    ) -> Resumed {
        let superseded = Revision::new(journal.superseded.clone().unwrap_or_default());
        let what = journal.why.clone().unwrap_or_else(|| "something newer".into());
        // Its data too (behaviour 11): the interrupted attempt never passed its gate.
        let mut journal = journal;
        let mut restored = Vec::new();
        let mut result: Result<(), CycleError> = self.store.write_journal(&journal).map_err(Into::into);
        if result.is_ok() {
            match self.restore_attempt(&superseded, &mut journal).await {
                Ok(lines) => restored = lines,
                Err(e) => result = Err(e),
            }
        }
        if result.is_ok() {
            result = self.revert_to(good, journal).await;
        }
        match result {
            Ok(()) => {
                self.state.applied = Some(good.to_string());
                let data = if restored.is_empty() {
                    String::new()
                } else {
                    self.state.attempt = None;
                    format!("; data: {}", restored.join("; "))
                };
                self.ctx.ref_notes.push(format!(
                    "the interrupted {op} of {} was put back to {} first ({what}){data}",
                    superseded.short(),
                    good.short()
                ));
                Resumed::GoOn
            }
            Err(CycleError::Stopping) => Resumed::Done(self.stopping()),
            Err(e) if e.is_fault() => {
                self.publish_observation().await;
                let then = then.map(|d| format!(", then {} is applied", d.short())).unwrap_or_default();
                let context = format!(
                    "the interrupted {op} of {} is put back to the last good revision {} before {what}; that is finished once the fault clears{then}",
                    superseded.short(),
                    good.short()
                );
                Resumed::Done(self.finish(Exit::Fault { error: e, context: Some(context), record: None }))
            }
            Err(e) => {
                let _ = self.store.clear_journal();
                self.ctx.ref_notes.push(format!(
                    "putting the interrupted {op} of {} back to {} failed ({e}); going on with {what}",
                    superseded.short(),
                    good.short()
                ));
                Resumed::GoOn
            }
        }
    }

    /// A shutdown was asked for between steps: the journal finishes the job on start.
    pub(super) fn stopping(&self) -> CycleResult {
        CycleResult { outcome: None, message: Some(CycleError::Stopping.to_string()), fault: false }
    }

    /// Carry out `plan` under a fresh journal, then gate and commit what it changed (a
    /// revert, a drift repair); the observation is published after each half.
    async fn converge_and_gate(
        &mut self,
        mut journal: Journal,
        revision: &Revision,
        state: &DesiredState,
        plan: &Plan,
    ) -> Result<(), CycleError> {
        self.store.write_journal(&journal)?;
        self.execute(&mut journal, revision, state, plan).await?;
        self.publish_observation().await;
        self.gate_and_commit(state, plan, false).await?;
        self.publish_observation().await;
        Ok(())
    }

    /// Put the host on `good` under `journal` (a revert: written before anything is
    /// touched): read its state, plan, converge, gate. On success the journal is cleared;
    /// an error is classified (a fault keeps the journal for the next cycle).
    pub(super) async fn revert_to(&mut self, good: &Revision, journal: Journal) -> Result<(), CycleError> {
        self.store.write_journal(&journal)?;
        crate::failpoint::hit("revert").await;
        let state = self.load_revision(good).await?;
        let plan = match self.plan_for(good, &state).await {
            Ok(p) => p,
            Err(e) => return Err(self.classify(e, &state).await),
        };
        match self.converge_and_gate(journal, good, &state, &plan).await {
            Ok(()) => {
                let _ = self.store.clear_journal();
                Ok(())
            }
            Err(e) => Err(self.classify(e, &state).await),
        }
    }

    /// Mark `revision` failed (once): in the state and as a pin in the mirror.
    async fn mark_revision_failed(&mut self, revision: &Revision, why: &str) {
        if self.state.failed.iter().any(|f| f == revision.as_str()) {
            return;
        }
        self.state.mark_failed(revision.as_str());
        if let Some(oid) = revision.oid() {
            let src = self.source.clone();
            let _ = tokio::task::spawn_blocking(move || src.pin(crate::source::Pin::Failed, oid, "failed")).await;
        }
        self.say(format!("revision {} failed: {why}", revision.short()));
        self.save();
    }

    /// A verdict on `revision` found before its apply touched anything (an image that cannot
    /// be had, what the host lacks for it): it fails untouched — unless this cycle finishes
    /// an interrupted apply (`finishing`), which may have left the host between revisions:
    /// then it is reverted.
    pub(super) async fn verdict_before_touching(
        &mut self,
        revision: &Revision,
        finishing: bool,
        why: String,
        started: (String, Instant),
        changes: Vec<String>,
        diagnostics: Vec<crate::state::Diagnostic>,
    ) -> CycleResult {
        if finishing {
            return self.revert_after_failure(revision, why, started, changes, diagnostics).await;
        }
        self.fail_untouched(revision, why, started, changes, diagnostics).await
    }

    /// `revision` failed (`why`, a verdict) before anything of it ran — an image the
    /// registry does not have, a build that failed, something the host lacks for it: it is
    /// marked failed and the host stays exactly on what it ran (nothing to revert). Phase
    /// `Failed`, until a newer revision or `agentctl sync --retry`.
    async fn fail_untouched(
        &mut self,
        revision: &Revision,
        why: String,
        started: (String, Instant),
        changes: Vec<String>,
        diagnostics: Vec<crate::state::Diagnostic>,
    ) -> CycleResult {
        self.mark_revision_failed(revision, &why).await;
        let reason = Reason::FailedUntouched { revision: revision.to_string(), runs: self.state.applied.clone(), why };
        let msg = reason.message().unwrap_or_default();
        self.say(msg.clone());
        let record = Record::new(revision, Outcome::Failed, changes, msg, &started).with_diagnostics(diagnostics);
        self.finish(Exit::Judged(record, Some(reason)))
    }

    /// `revision` failed (`why`, a verdict): mark it and put the host back on the last good
    /// revision. A fault during the revert leaves the revert's journal, to be finished.
    pub(super) async fn revert_after_failure(
        &mut self,
        revision: &Revision,
        why: String,
        started: (String, Instant),
        changes: Vec<String>,
        diagnostics: Vec<crate::state::Diagnostic>,
    ) -> CycleResult {
        let is_revert = self.state.last_good.as_deref() == Some(revision.as_str());
        if !is_revert {
            self.mark_revision_failed(revision, &why).await;
        }
        let failed_entry = |this: &mut Self, reason: Reason| {
            let msg = reason.message().unwrap_or_default();
            let record = Record::new(revision, Outcome::Failed, changes.clone(), msg, &started)
                .with_diagnostics(diagnostics.clone());
            this.finish(Exit::Judged(record, Some(reason)))
        };
        let Some(good) = self.state.last_good.clone().filter(|g| g != revision.as_str()).map(Revision::new) else {
            // Nothing to go back to (a first revision), or the last good one itself failed.
            let reason = if is_revert {
                Reason::LastGoodFailed { revision: revision.to_string(), why }
            } else {
                Reason::FailedNoLastGood { revision: revision.to_string(), why }
            };
            self.state.applied = Some(revision.to_string());
            let _ = self.store.clear_journal();
            return failed_entry(self, reason);
        };
        self.say(format!("rolling back to last good revision {}", good.short()));
        let mut journal = Journal::new(JournalOp::Revert, good.as_str());
        journal.started = started.0.clone();
        journal.failed = Some(revision.to_string());
        journal.why = Some(why.clone());
        // The data first (PRODUCT.md behaviour 11): the failed attempt's kept, each volume
        // put back as it was before the revision; the last good containers then start on it.
        let mut restored = Vec::new();
        let mut result = match self.store.write_journal(&journal) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if result.is_ok() && !is_revert {
            match self.restore_attempt(revision, &mut journal).await {
                Ok(lines) => restored = lines,
                Err(e) => result = Err(e),
            }
        }
        if result.is_ok() {
            result = self.revert_to(&good, journal).await;
        }
        match result {
            Ok(()) => {
                self.state.applied = Some(good.to_string());
                if !restored.is_empty() {
                    self.state.attempt = None;
                }
                let reason = Reason::RolledBack { failed: revision.to_string(), to: good.to_string(), why };
                let mut msg = reason.message().unwrap_or_default();
                if !restored.is_empty() {
                    msg.push_str(&format!("; data: {}", restored.join("; ")));
                    self.say(format!("data: {}", restored.join("; ")));
                }
                self.say(format!("rolled back to {}", good.short()));
                let record =
                    Record::new(revision, Outcome::RolledBack, changes, msg, &started).with_diagnostics(diagnostics);
                self.finish(Exit::Judged(record, Some(reason)))
            }
            Err(CycleError::Stopping) => self.stopping(),
            Err(e) if e.is_fault() => {
                // The revert's journal stays: it is finished once the fault clears.
                self.publish_observation().await;
                let context = format!(
                    "revision {} failed ({why}); rolling back to {} was interrupted and is finished once the fault clears",
                    revision.short(),
                    good.short()
                );
                self.finish(Exit::Fault { error: e, context: Some(context), record: None })
            }
            Err(e) => {
                let _ = self.store.clear_journal();
                let reason = Reason::RevertFailed {
                    failed: revision.to_string(),
                    to: good.to_string(),
                    why,
                    error: e.to_string(),
                };
                failed_entry(self, reason)
            }
        }
    }

    /// Re-observe; put back what was changed by hand (or only report it).
    pub(super) async fn check_drift(&mut self) -> Drift {
        let Some(applied) = self.state.applied.clone().map(Revision::new) else {
            self.publish_observation().await;
            return Drift::None;
        };
        let started = (now_rfc3339(), Instant::now());
        let state = match self.load_revision(&applied).await {
            Ok(s) => s,
            Err(e) if e.is_fault() => return Drift::Fault(e),
            Err(_) => {
                self.publish_observation().await;
                return Drift::None;
            }
        };
        let plan = match self.plan_for(&applied, &state).await {
            Ok(p) => p,
            Err(e) => {
                self.publish();
                let e = self.classify(e, &state).await;
                return if e.is_fault() { Drift::Fault(e) } else { Drift::None };
            }
        };
        if plan.is_noop() {
            if !self.state.drift.is_empty() {
                self.say("drift gone".into());
                self.state.drift.clear();
            }
            return Drift::None; // the cycle's end publishes what was observed
        }
        self.publish();
        let changes = plan.summary();
        let new_drift = changes.iter().filter(|c| !self.state.drift.contains(c)).count();
        self.metrics.drift.inc_by(u64::try_from(new_drift).unwrap_or(u64::MAX));
        if self.cfg.config.drift == DriftMode::Report {
            if self.state.drift != changes {
                self.say(format!("drift (not repaired, drift: report): {}", changes.join("; ")));
            }
            self.state.drift = changes;
            return Drift::Reported;
        }
        self.say(format!("drift: {}", changes.join("; ")));
        let journal = Journal::new(JournalOp::Repair, applied.as_str());
        let result = match self.converge_and_gate(journal, &applied, &state, &plan).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.classify(e, &state).await),
        };
        let (msg, reason) = match result {
            Ok(()) => {
                let _ = self.store.clear_journal();
                self.state.drift.clear();
                // A repair that failed before left the host Degraded; this one brought it
                // back, so the status says where it stands again (Synced when it runs the
                // revision it should).
                let desired = self.state.desired.clone();
                let held = self.state.paused
                    || self.state.pinned.is_some()
                    || desired
                        .as_ref()
                        .is_some_and(|d| self.state.failed.contains(d) || self.state.invalid.contains(d));
                let cleared = matches!(self.state.reason, Some(Reason::RepairFailed { .. }))
                    && !held
                    && desired == self.state.applied;
                (format!("repaired {} drifted resource(s)", changes.len()), cleared.then_some(Reason::Synced))
            }
            Err(CycleError::Stopping) => return Drift::Fault(CycleError::Stopping),
            Err(e) if e.is_fault() => return Drift::Fault(e),
            Err(e) => {
                let _ = self.store.clear_journal();
                let reason = Reason::RepairFailed { error: e.to_string() };
                (reason.message().unwrap_or_default(), Some(reason))
            }
        };
        self.say(msg.clone());
        Drift::Repaired(Record::new(&applied, Outcome::DriftRepaired, changes, msg, &started), reason)
    }
}
