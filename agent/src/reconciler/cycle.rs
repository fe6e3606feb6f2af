//! One cycle: finish what a journal left, select the desired revision, and decide — drift
//! check, not again (failed, invalid), or apply. Also `diff` and `rollback`, which select
//! the same way.

use std::time::Instant;

use crate::fault::Classify;
use crate::plan;
use crate::revision::Revision;
use crate::source::{Pin, SourceError};
use crate::state::{now_rfc3339, Journal, JournalOp, Phase, Reason};
use crate::wire::{ChangeView, DiffView};

use super::error::CycleError;
use super::parts::Trigger;
use super::record::Exit;
use super::revert::Resumed;
use super::task::CycleResult;
use super::task::Reconciler;

impl Reconciler {
    /// One reconcile cycle, measured; every log line of it carries the desired revision.
    pub async fn reconcile(&mut self, trigger: Trigger, retry: bool) -> CycleResult {
        use tracing::Instrument;
        let t = Instant::now();
        self.ctx.trigger = trigger;
        self.ctx.start = self.state.reason.clone();
        let span = tracing::info_span!("reconcile", revision = tracing::field::Empty);
        let r = self.cycle(retry).instrument(span).await;
        self.metrics.reconcile_duration.observe(t.elapsed().as_secs_f64());
        r
    }

    async fn cycle(&mut self, retry: bool) -> CycleResult {
        self.state.last_sync = Some(now_rfc3339());
        if self.state.paused {
            return self.finish(Exit::Idle(Some("paused".into())));
        }
        if self.dry_run {
            return match self.select().await {
                Ok(desired) => {
                    self.selected(&desired);
                    self.dry_run_cycle(&desired).await
                }
                Err(e) => self.source_failed(e).await,
            };
        }
        let journal = match self.store.journal() {
            Ok(j) => j,
            Err(e) => return self.finish(Exit::Fault { error: e.into(), context: None, record: None }),
        };
        // A journal (a crash, or a fault that kept an apply from finishing) never keeps the
        // agent from fetching (PRODUCT.md behaviour 10): what is selected decides whether it
        // is finished or pre-empted.
        let selected = self.select().await;
        if let Ok(d) = &selected {
            self.selected(d);
        }
        self.proceed(journal, selected, retry).await
    }

    /// The desired revision is `desired`: say so in the log's span and the state.
    fn selected(&mut self, desired: &Revision) {
        tracing::Span::current().record("revision", tracing::field::display(desired.short()));
        self.state.desired = Some(desired.to_string());
    }

    /// Go on from a selection (`selected`: the desired revision, or why there is none) with
    /// the journal on disk, if any:
    /// - no journal: decide on the desired revision (`decide`);
    /// - an apply or repair that something else now supersedes — a newer desired revision, a
    ///   rollback pin, `sync --retry` — is pre-empted: the host is put back on the last good
    ///   revision (as a revert; the interrupted revision is not failed, a fault stopped it),
    ///   then the desired one is decided on (`preempt`);
    /// - otherwise the journal is finished (`resume_journal`), and a revert that finishes
    ///   goes on with the desired revision when it is one to apply.
    ///
    /// Without a selection (the remote down) a journal is finished as it is.
    pub(super) async fn proceed(
        &mut self,
        journal: Option<Journal>,
        selected: Result<Revision, CycleError>,
        retry: bool,
    ) -> CycleResult {
        let (journal, desired) = match (journal, selected) {
            (None, Ok(desired)) => return self.decide(desired, retry).await,
            (None, Err(e)) => return self.source_failed(e).await,
            (Some(j), Err(_)) => {
                return match self.resume_journal(j).await {
                    Resumed::Done(r) => r,
                    Resumed::GoOn => self.finish(Exit::Idle(None)),
                }
            }
            (Some(j), Ok(d)) => (j, d),
        };
        let supersedes = matches!(journal.operation, JournalOp::Apply | JournalOp::Repair)
            && (retry || journal.revision != desired.as_str());
        if supersedes {
            return self.preempt(journal, desired, retry).await;
        }
        match self.resume_journal(journal).await {
            Resumed::GoOn => self.decide(desired, retry).await,
            Resumed::Done(r) if r.fault || self.shutdown.is_shutdown() || !self.to_apply(&desired) => r,
            Resumed::Done(_) => self.decide(desired, false).await,
        }
    }

    /// Whether `desired` is a revision the host should now apply: not the one it runs, not
    /// failed, not invalid.
    fn to_apply(&self, desired: &Revision) -> bool {
        let id = desired.as_str();
        self.state.applied.as_deref() != Some(id)
            && !self.state.failed.iter().any(|f| f == id)
            && !self.state.invalid.iter().any(|i| i == id)
    }

    /// An interrupted apply (or repair) of `journal` is superseded by `desired` (a newer
    /// revision, a rollback pin, or `sync --retry`): put the host back on the last good
    /// revision, as a revert, then decide on `desired`. A fault during that revert leaves
    /// its journal (marked `superseded`), finished first by the next cycle, which then goes
    /// on the same way.
    async fn preempt(&mut self, mut journal: Journal, desired: Revision, retry: bool) -> CycleResult {
        // Containers an interrupted snapshot held are put back before anything else.
        if let Err(e) = self.release_after_crash(&mut journal).await {
            let context = Some("putting back the containers an interrupted snapshot paused".into());
            return self.finish(Exit::Fault { error: e, context, record: None });
        }
        let what = if retry {
            "agentctl sync --retry".to_string()
        } else if self.state.pinned.as_deref() == Some(desired.as_str()) {
            format!("agentctl rollback to {}", desired.short())
        } else {
            format!("the newer revision {}", desired.short())
        };
        let interrupted = Revision::new(journal.revision.clone());
        let op = journal.operation;
        let Some(good) = self.state.last_good.clone().map(Revision::new) else {
            // Nothing to go back to: applying the desired revision converges everything.
            let _ = self.store.clear_journal();
            self.ctx
                .ref_notes
                .push(format!("the interrupted {op} of {} was superseded by {what}", interrupted.short()));
            return self.decide(desired, retry).await;
        };
        self.say(format!(
            "the interrupted {op} of {} is superseded by {what}: putting the host back on the last good revision {} first",
            interrupted.short(),
            good.short()
        ));
        let mut revert = Journal::new(JournalOp::Revert, good.as_str());
        revert.superseded = Some(interrupted.to_string());
        revert.why = Some(what);
        match self.revert_superseded(&good, revert, op, Some(&desired)).await {
            Resumed::GoOn => self.decide(desired, retry).await,
            Resumed::Done(r) => r,
        }
    }

    /// Decide on the selected revision: a drift check when the host runs it, nothing when it
    /// failed or is invalid (unless `retry`), else — past the rollout gates — apply it.
    async fn decide(&mut self, desired: Revision, retry: bool) -> CycleResult {
        let id = desired.to_string();
        let failed = self.state.failed.contains(&id);
        let applied = self.state.applied.as_deref() == Some(id.as_str());
        if applied && failed && !retry {
            // The host runs a revision that failed its gate (a first revision with nothing to
            // roll back to): repairing its drift would retry it on every poll.
            self.publish_observation().await;
            return self.finish(Exit::Idle(None));
        }
        if applied && !failed {
            let d = self.check_drift().await;
            return self.finish(d.into_exit());
        }
        if (self.state.invalid.contains(&id) || failed) && !retry {
            // Not tried again; the host is held on what it runs.
            let d = self.check_drift().await;
            return self.finish(d.into_exit());
        }
        if retry {
            self.state.failed.retain(|f| f != &id);
        }
        let pinned = self.state.pinned.as_deref() == Some(id.as_str());
        // `sync --ignore-rollout` holds for the revision it met until that one is applied or
        // superseded: a fault in between does not lose it.
        if self.ctx.ignore_rollout {
            self.state.ignore_rollout = Some(id.clone());
        } else if self.state.ignore_rollout.as_ref().is_some_and(|r| *r != id) {
            self.state.ignore_rollout = None; // superseded
        }
        if self.state.ignore_rollout.as_deref() == Some(id.as_str()) {
            self.ctx.ref_notes.push("applied past the rollout gates (agentctl sync --ignore-rollout)".into());
        } else if let Some((phase, why)) = if pinned { None } else { self.rollout_gate(&desired).await } {
            // Not yet (or never): what runs is held, drift repaired as ever; the phase says why.
            self.metrics.rollout_waiting.set(1);
            let record = self.check_drift().await.into_record();
            let reason = if phase == Phase::Held {
                Reason::Held { why: why.clone() }
            } else {
                Reason::Waiting { why: why.clone() }
            };
            if self.state.reason.as_ref() != Some(&reason) {
                self.say(why.clone());
            }
            self.notify_gated(&desired, phase, &why);
            return match record {
                Some(r) => self.finish(Exit::Judged(r, Some(reason))),
                None => self.finish(Exit::Stay(reason)),
            };
        }
        self.metrics.rollout_waiting.set(0);
        let result = self.apply_revision(&desired, false).await;
        // Tried (applied, or failed its gate): the override has done its work. A fault that
        // kept the apply from starting leaves it in force for the next cycle.
        if self.state.applied.as_deref() == Some(id.as_str()) || self.state.failed.contains(&id) {
            self.state.ignore_rollout = None;
        }
        result
    }

    /// `rollout.windows` and `rollout.after`: `None` when `revision` may be applied now, else
    /// the phase (`Waiting`, `Held`) and why. One fetch of the reports; a report repository
    /// that cannot be read holds the revision back too (the host keeps what it runs) and says so.
    async fn rollout_gate(&mut self, revision: &Revision) -> Option<(Phase, String)> {
        let c = &self.cfg.config;
        let rollout = c.rollout.as_ref()?;
        if let Err(why) = crate::fleet::gate::window_open(&rollout.windows, jiff::Timestamp::now()) {
            return Some((Phase::Waiting, why));
        }
        if rollout.after.is_empty() {
            return None;
        }
        if let Some((_, why)) = self.state.held.iter().find(|(rev, _)| rev == revision.as_str()) {
            return Some((Phase::Held, why.clone()));
        }
        let report = c.report.as_ref()?;
        let src =
            crate::source::GitSource::for_reports(&report.url, report.auth.clone(), c.state_dir.join("rollout.git"));
        let signers = rollout.signers.clone()?;
        let read = tokio::task::spawn_blocking(move || {
            src.read_reports(Some(&crate::source::report::Signers::load(&signers))).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let reports = match read {
            Ok(r) => r,
            Err(e) => return Some((Phase::Waiting, format!("waiting: cannot read the fleet's reports: {e}"))),
        };
        let decision = crate::fleet::gate::judge(
            &rollout.after,
            &self.cfg.host,
            revision.as_str(),
            &reports,
            &self.state.report_seen,
            std::time::SystemTime::now(),
        );
        // The newest report of each host seen so far: an older one later is a replay.
        for r in reports.iter().filter(|r| r.verified.is_ok()) {
            let newest = self.state.report_seen.entry(r.host.clone()).or_insert(r.time);
            *newest = (*newest).max(r.time);
        }
        match decision {
            crate::fleet::gate::Decision::Open => None,
            crate::fleet::gate::Decision::Waiting(why) => Some((Phase::Waiting, why)),
            crate::fleet::gate::Decision::Held(why) => {
                // Bounded: a held revision never comes back once a newer one is desired.
                self.state.held.retain(|(r, _)| r != revision.as_str());
                self.state.held.push((revision.to_string(), why.clone()));
                let excess = self.state.held.len().saturating_sub(20);
                self.state.held.drain(..excess);
                Some((Phase::Held, why))
            }
        }
    }

    /// The source failed: a fault (remote down, auth, host key) leaves the host as it is and
    /// retries; a verdict on the selected revision (its signature refused) says so. Either
    /// way, what runs is held (drift repaired) if the engine answers.
    async fn source_failed(&mut self, e: CycleError) -> CycleResult {
        self.say(format!("source: {e}"));
        let record = self.check_drift().await.into_record();
        if e.is_fault() {
            return self.finish(Exit::Fault { error: e, context: Some("source".into()), record });
        }
        let reason = Reason::SignatureRefused { error: e.to_string() };
        match record {
            Some(r) => self.finish(Exit::Judged(r, Some(reason))),
            None => self.finish(Exit::Stay(reason)),
        }
    }

    async fn dry_run_cycle(&mut self, desired: &Revision) -> CycleResult {
        let (valid, message) = match self.load_revision(desired).await {
            Ok(s) => (
                true,
                format!(
                    "dry run: revision {} is valid ({} resource(s)); nothing is applied",
                    desired.short(),
                    s.resources.len()
                ),
            ),
            Err(e) if e.is_fault() => {
                return self.finish(Exit::Fault { error: e, context: Some("dry run".into()), record: None })
            }
            Err(e) => (false, format!("dry run: revision {} is invalid:\n{e}", desired.short())),
        };
        if self.state.message.as_deref() != Some(message.as_str()) {
            self.say(message.clone());
        }
        // No history is written in a dry run: say force-pushes and deleted refs now.
        for note in std::mem::take(&mut self.ctx.ref_notes) {
            self.say(format!("source: {note}"));
        }
        self.finish(Exit::Stay(Reason::DryRun { valid, message }))
    }

    /// Fetch, resolve (or take the pin), verify.
    pub(super) async fn select(&mut self) -> Result<Revision, CycleError> {
        if let Some(pin) = self.state.pinned.clone() {
            let rev = Revision::new(pin);
            self.verify_revision(&rev).await?;
            self.learn_commits(&[&rev]).await;
            return Ok(rev);
        }
        let src = self.source.clone();
        let t = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || -> Result<_, SourceError> {
            let report = src.fetch()?;
            let resolved = src.resolve()?;
            Ok((report, resolved))
        })
        .await?;
        self.metrics.fetch_duration.observe(t.elapsed().as_secs_f64());
        if matches!(fetched, Err(SourceError::Unreachable { .. } | SourceError::AuthRefused { .. })) {
            self.metrics.fetch_errors.inc();
        }
        match &fetched {
            Ok(_) => self.source_health(None),
            Err(e) if e.class() == crate::fault::Class::Fault => self.source_health(Some(e.to_string())),
            Err(_) => {}
        }
        let (report, resolved) = fetched?;
        for ch in &report.changes {
            let name = ch.name.trim_start_matches("refs/remotes/origin/").trim_start_matches("refs/");
            let short = |r: &Option<String>| r.as_deref().map(crate::revision::short).unwrap_or("none").to_string();
            match ch.kind {
                crate::source::RefMove::Forced => self.ctx.ref_notes.push(format!(
                    "{name} was force-moved upstream ({} -> {})",
                    short(&ch.old),
                    short(&ch.new)
                )),
                crate::source::RefMove::Deleted => {
                    self.ctx.ref_notes.push(format!("{name} was deleted upstream (it pointed to {})", short(&ch.old)))
                }
                _ => {}
            }
            self.say(format!("source: {} {:?} {} -> {}", ch.name, ch.kind, short(&ch.old), short(&ch.new)));
        }
        if let Some(v) = self.cfg.config.source.verify.clone() {
            let src = self.source.clone();
            let r = resolved.clone();
            tokio::task::spawn_blocking(move || src.trust(&v).and_then(|t| src.verify(&r, &t))).await??;
        }
        let desired = Revision::from(resolved.commit);
        self.learn_commits(&[&desired]).await;
        Ok(desired)
    }

    /// A revision that was not just resolved (a pin, a rollback target) must pass what
    /// `source.verify` would ask of it.
    async fn verify_revision(&self, rev: &Revision) -> Result<(), CycleError> {
        let Some(v) = self.cfg.config.source.verify.clone() else { return Ok(()) };
        let oid = rev.oid().ok_or_else(|| CycleError::Refused(format!("{rev} is not a commit id")))?;
        let src = self.source.clone();
        tokio::task::spawn_blocking(move || src.trust(&v).and_then(|t| src.verify_revision(oid, &t))).await??;
        Ok(())
    }

    /// The plan for the desired revision, applying nothing.
    pub(super) async fn diff(&mut self) -> Result<DiffView, CycleError> {
        let target = self.select().await?;
        let state = match self.load_revision(&target).await {
            Ok(s) => s,
            Err(e) if e.is_fault() => return Err(e),
            Err(e) => {
                return Ok(DiffView {
                    revision: Some(target.to_string()),
                    changes: Vec::new(),
                    message: Some(format!("invalid desired state:\n{e}")),
                })
            }
        };
        let plan = self.plan_for(&target, &state).await?;
        self.publish();
        let mut changes = Vec::new();
        for s in plan.changes() {
            let mut reason = s.reason.clone();
            if let (Some(r), Ok(d)) = (state.get(&s.name), self.drivers.get(s.kind)) {
                if let Some(more) = d.explain(r, &self.source.with_files(&target)).await {
                    reason = format!("{reason}; {more}");
                }
            }
            changes.push(ChangeView {
                kind: s.kind.to_string(),
                name: s.name.clone(),
                action: plan::action_word(s.action).into(),
                reason,
            });
        }
        Ok(DiffView { revision: Some(target.to_string()), changes, message: None })
    }

    /// Apply the last good (or a named) revision and hold the host there until `resume`.
    /// A revision that `source.verify` would refuse is refused here too.
    pub(super) async fn rollback(
        &mut self,
        revision: Option<String>,
        restore_data: bool,
    ) -> Result<CycleResult, CycleError> {
        self.ctx.trigger = Trigger::Manual;
        self.ctx.start = self.state.reason.clone();
        let target = match revision {
            Some(r) => {
                let src = self.source.clone();
                let spec = r.clone();
                let id = tokio::task::spawn_blocking(move || -> Result<String, CycleError> {
                    let repo = src.repo()?;
                    let obj = repo.revparse_single(&spec).map_err(|_| {
                        CycleError::Refused(format!(
                            "revision {spec:?} is not in the agent's mirror; give a commit id from agentctl history"
                        ))
                    })?;
                    let c = obj
                        .peel_to_commit()
                        .map_err(|e| CycleError::Refused(format!("{spec:?} is not a commit: {e}")))?;
                    Ok(c.id().to_string())
                })
                .await??;
                Revision::new(id)
            }
            None => Revision::new(
                self.state
                    .last_good
                    .clone()
                    .ok_or_else(|| CycleError::Refused("there is no last good revision to roll back to".into()))?,
            ),
        };
        self.verify_revision(&target).await?;
        self.learn_commits(&[&target]).await;
        // `--restore-data`: which snapshots, decided before anything is done (a volume
        // without one refuses the whole rollback).
        let restores = if restore_data { Some(self.snapshots_of_revision(&target).await?) } else { None };
        self.state.pinned = Some(target.to_string());
        self.state.failed.retain(|f| f != target.as_str());
        self.say(format!("rollback: pinning the host to {}", target.short()));
        self.save();
        // An interrupted apply is pre-empted as for a newer revision (`proceed`); without
        // one, the pin is decided on like any selection (never gated).
        let journal = self.store.journal().map_err(CycleError::from)?;
        self.state.desired = Some(target.to_string());
        let done = self.proceed(journal, Ok(target.clone()), false).await;
        match restores {
            Some(ids) if self.state.applied.as_deref() == Some(target.as_str()) && !done.fault => {
                let why = format!("agentctl rollback --restore-data to {}", target.short());
                self.restore_by_hand(ids, why).await
            }
            Some(_) => Err(CycleError::Refused(format!(
                "the rollback to {} did not finish ({}), so no data was restored; run it again once it has",
                target.short(),
                done.message.clone().unwrap_or_default()
            ))),
            None => Ok(done),
        }
    }

    /// Pin the mirror's refs for a committed revision (kept from garbage collection).
    pub(super) async fn pin_good(&self, revision: &Revision) {
        let Some(oid) = revision.oid() else { return };
        let src = self.source.clone();
        let r = tokio::task::spawn_blocking(move || {
            src.pin(Pin::Applied, oid, "applied")?;
            src.pin(Pin::LastGood, oid, "last good")
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::warn!("cannot pin {} in the mirror: {e}", oid);
        }
    }
}
