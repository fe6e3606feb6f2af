//! One cycle: finish what a journal left, select the desired revision, and decide — drift
//! check, not again (failed, invalid), or apply. Also `diff` and `rollback`, which select
//! the same way.

use std::time::Instant;

use crate::fault::Classify;
use crate::plan;
use crate::revision::Revision;
use crate::source::{Pin, SourceError};
use crate::state::{now_rfc3339, Phase};
use crate::wire::{ChangeView, DiffView};

use super::record::Exit;
use super::{CycleError, CycleResult, Reconciler, Trigger};

impl Reconciler {
    /// One reconcile cycle, measured; every log line of it carries the desired revision.
    pub async fn reconcile(&mut self, trigger: Trigger, retry: bool) -> CycleResult {
        use tracing::Instrument;
        let t = Instant::now();
        self.trigger = trigger;
        self.cycle_start = (self.state.phase, self.state.message.clone());
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
        // An apply or revert that a crash or a fault interrupted is finished first.
        if !self.dry_run {
            match self.store.journal() {
                Ok(Some(journal)) => return self.resume_journal(journal).await,
                Ok(None) => {}
                Err(e) => return self.finish(Exit::Fault { error: e.into(), context: None, record: None }),
            }
        }
        let desired = match self.select().await {
            Ok(t) => t,
            Err(e) => return self.source_failed(e).await,
        };
        tracing::Span::current().record("revision", tracing::field::display(desired.short()));
        self.state.desired = Some(desired.to_string());
        if self.dry_run {
            return self.dry_run_cycle(&desired).await;
        }
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
        if self.ignore_rollout {
            self.ref_notes.push("applied past the rollout gates (agentctl sync --ignore-rollout)".into());
        } else if let Some((phase, why)) = self.rollout_gate(&desired).await {
            // Not yet (or never): what runs is held, drift repaired as ever; the phase says why.
            self.metrics.rollout_waiting.set(1);
            let record = self.check_drift().await.into_record();
            if self.state.phase != phase || self.state.message.as_deref() != Some(why.as_str()) {
                self.say(why.clone());
            }
            self.notify_gated(&desired, phase, &why);
            self.state.phase = phase;
            self.state.message = Some(why);
            return match record {
                Some(r) => self.finish(Exit::Judged(r)),
                None => self.finish(Exit::Stay(None)),
            };
        }
        self.metrics.rollout_waiting.set(0);
        self.apply_revision(&desired, false).await
    }

    /// `rollout.windows` and `rollout.after`: `None` when `revision` may be applied now, else
    /// the phase (`Waiting`, `Held`) and why. One fetch of the reports; a report repository
    /// that cannot be read holds the revision back too (the host keeps what it runs) and says so.
    async fn rollout_gate(&mut self, revision: &Revision) -> Option<(Phase, String)> {
        let c = &self.cfg.config;
        let rollout = c.rollout.as_ref()?;
        if let Err(why) = crate::rollout::window_open(&rollout.windows, jiff::Timestamp::now()) {
            return Some((Phase::Waiting, why));
        }
        if rollout.after.is_empty() {
            return None;
        }
        if let Some((rev, why)) = &self.state.held {
            if rev == revision.as_str() {
                return Some((Phase::Held, why.clone()));
            }
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
        match crate::rollout::judge(
            &rollout.after,
            &self.cfg.host,
            revision.as_str(),
            &reports,
            std::time::SystemTime::now(),
        ) {
            crate::rollout::Decision::Open => None,
            crate::rollout::Decision::Waiting(why) => Some((Phase::Waiting, why)),
            crate::rollout::Decision::Held(why) => {
                self.state.held = Some((revision.to_string(), why.clone()));
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
        self.state.phase = Phase::Failed;
        self.state.message = Some(e.to_string());
        match record {
            Some(r) => self.finish(Exit::Judged(r)),
            None => self.finish(Exit::Stay(Some(e.to_string()))),
        }
    }

    async fn dry_run_cycle(&mut self, desired: &Revision) -> CycleResult {
        let (phase, message) = match self.load_revision(desired).await {
            Ok(s) => (
                Phase::Synced,
                format!(
                    "dry run: revision {} is valid ({} resource(s)); nothing is applied",
                    desired.short(),
                    s.resources.len()
                ),
            ),
            Err(e) if e.is_fault() => {
                return self.finish(Exit::Fault { error: e, context: Some("dry run".into()), record: None })
            }
            Err(e) => (Phase::Invalid, format!("dry run: revision {} is invalid:\n{e}", desired.short())),
        };
        if self.state.message.as_deref() != Some(message.as_str()) {
            self.say(message.clone());
        }
        // No history is written in a dry run: say force-pushes and deleted refs now.
        for note in std::mem::take(&mut self.ref_notes) {
            self.say(format!("source: {note}"));
        }
        self.state.phase = phase;
        self.state.message = Some(message.clone());
        self.finish(Exit::Stay(Some(message)))
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
                crate::source::RefMove::Forced => self.ref_notes.push(format!(
                    "{name} was force-moved upstream ({} -> {})",
                    short(&ch.old),
                    short(&ch.new)
                )),
                crate::source::RefMove::Deleted => {
                    self.ref_notes.push(format!("{name} was deleted upstream (it pointed to {})", short(&ch.old)))
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
                if let Some(more) = d.explain(r, &target).await {
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
    pub(super) async fn rollback(&mut self, revision: Option<String>) -> Result<CycleResult, CycleError> {
        self.trigger = Trigger::Manual;
        self.cycle_start = (self.state.phase, self.state.message.clone());
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
        self.state.pinned = Some(target.to_string());
        self.state.failed.retain(|f| f != target.as_str());
        self.say(format!("rollback: pinning the host to {}", target.short()));
        self.save();
        if self.state.applied.as_deref() == Some(target.as_str()) {
            self.state.phase = Phase::Paused;
            self.state.message = Some(format!(
                "pinned to {} by agentctl rollback; agentctl resume follows the source again",
                target.short()
            ));
            return Ok(self.finish(Exit::Stay(None)));
        }
        Ok(self.apply_revision(&target, false).await)
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
