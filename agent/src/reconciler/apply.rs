//! Apply: read the revision, plan against what the drivers observe, fetch what the changes
//! need from outside (pulls, builds) before anything runs is touched, carry the plan out in
//! journalled waves, gate what changed, commit. A verdict while fetching fails the revision
//! with the host untouched; a verdict later goes to `revert`; a fault leaves the journal on
//! disk and ends the cycle `Degraded`, to be finished once it clears.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use desired_state_schema::{DesiredState, Kind, Resource};
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::fault::Classify;
use crate::health;
use crate::plan::{self, Action, Plan};
use crate::revision::Revision;
use crate::runtime::Drivers;
use crate::state::{now_rfc3339, Journal, JournalOp, Outcome, Reason};

use super::error::CycleError;
use super::parts::step_log;
use super::record::{Exit, Record};
use super::task::CycleResult;
use super::task::Reconciler;

/// At most this many steps of one wave run at once (Docker serialises much of the rest).
const PARALLEL_STEPS: usize = 16;
/// At most this many pulls and builds run at once while fetching (the engine downloads
/// three layers of each pull at a time on its own).
const PARALLEL_FETCHES: usize = 4;

impl Reconciler {
    /// Read and validate the desired state of `revision` (from Git objects); the last one
    /// read is kept, so a no-op cycle does not read and parse it again.
    pub(super) async fn load_revision(&self, revision: &Revision) -> Result<Arc<DesiredState>, CycleError> {
        let c = &self.cfg.config;
        let key = format!("{revision}\0{}\0{:?}\0{:?}", c.source.path, c.environment, c.compose_profiles);
        if let Ok(cached) = self.caches.loaded.lock() {
            if let Some((k, state)) = cached.as_ref() {
                if *k == key {
                    return Ok(state.clone());
                }
            }
        }
        let state = Arc::new(self.read_revision(revision).await?);
        if let Ok(mut cached) = self.caches.loaded.lock() {
            *cached = Some((key, state.clone()));
        }
        Ok(state)
    }

    /// Read and validate the desired state of `revision`, bypassing the cache (an older
    /// revision, read to say what a replace changes).
    pub(super) async fn read_revision(&self, revision: &Revision) -> Result<DesiredState, CycleError> {
        let c = &self.cfg.config;
        let src = self.source.clone();
        let path = c.source.path.clone();
        let oid = revision.oid().ok_or_else(|| CycleError::Refused(format!("{revision} is not a commit id")))?;
        let env = c.environment.clone();
        let host = self.cfg.host.clone();
        let opts = desired_state_schema::ParseOptions {
            compose_profiles: c.compose_profiles.clone(),
            root: String::new(),
            // A compose file at the repository's root takes the repository's name as its project.
            root_name: crate::source::repo_name(&c.source.url),
            home: crate::fsutil::home_dir(),
            // A label_file or an include's env_file: read from the same revision's objects.
            read_other: Some(desired_state_schema::ReadOther({
                let src = src.clone();
                std::sync::Arc::new(move |p: &str| {
                    let (_, bytes) = src.read_file(oid, p).ok()?;
                    (bytes.len() as u64 <= desired_state_schema::load::MAX_FILE_BYTES as u64)
                        .then(|| String::from_utf8_lossy(&bytes).into_owned())
                })
            })),
        };
        // Reading the objects and parsing them (up to 32 MiB of YAML) is blocking work: off
        // the runtime's one thread, so the control socket keeps answering meanwhile.
        let built = tokio::task::spawn_blocking(move || {
            src.read_state(oid, &path)
                .map(|files| desired_state_schema::parse_with(&files, &opts).build_for(env.as_deref(), Some(&host)))
        })
        .await??;
        Ok(built?)
    }

    /// Each driver's checks of `state` before anything is applied (an `.age` file that no
    /// identity decrypts): a verdict here makes the revision invalid.
    pub(super) async fn preflight(
        &self,
        revision: &Revision,
        state: Arc<DesiredState>,
    ) -> Result<Arc<DesiredState>, CycleError> {
        let revision = &self.source.with_files(revision);
        for r in &state.resources {
            if let Ok(d) = self.drivers.get(r.kind) {
                d.preflight(r, revision).await?;
            }
        }
        Ok(state)
    }

    /// Observe the host and plan the way to `state` (the state of `revision`).
    pub(super) async fn plan_for(&mut self, revision: &Revision, state: &DesiredState) -> Result<Plan, CycleError> {
        let needed: Vec<Kind> = state.resources.iter().map(|r| r.kind).collect();
        let observation = self.drivers.observe(&needed).await?;
        self.view.observed = observation.resources;
        self.view.looked = true;
        let ordered = state.in_dependency_order();
        // Host-side inputs (image ids, env file digests) are looked up concurrently, in order.
        let revision = &self.source.with_files(revision);
        let drivers = &self.drivers;
        let inputs: Vec<_> = futures_util::stream::iter(
            ordered.iter().map(|r| async move { drivers.get(r.kind)?.inputs(r, revision).await }),
        )
        .buffered(PARALLEL_STEPS)
        .collect()
        .await;
        let mut desired: Vec<(&Resource, String)> = Vec::with_capacity(ordered.len());
        let mut new_inputs: Vec<BTreeMap<String, String>> = Vec::with_capacity(ordered.len());
        for (r, inputs) in ordered.into_iter().zip(inputs) {
            let inputs = inputs?;
            // A resource of the same revision with the same inputs has the same hash.
            let key = (r.kind, r.name().to_string());
            let hash = match self.caches.spec_hashes.get(&key) {
                Some((rev, seen, hash)) if rev == revision.as_str() && *seen == inputs => hash.clone(),
                _ => {
                    let hash = plan::spec_hash(r, &inputs);
                    self.caches.spec_hashes.insert(key, (revision.to_string(), inputs.clone(), hash.clone()));
                    hash
                }
            };
            desired.push((r, hash));
            new_inputs.push(inputs);
        }
        if self.caches.spec_hashes.len() > 2 * desired.len() + 64 {
            let wanted: std::collections::HashSet<(Kind, &str)> =
                desired.iter().map(|(r, _)| (r.kind, r.name())).collect();
            self.caches.spec_hashes.retain(|(kind, name), _| wanted.contains(&(*kind, name.as_str())));
        }
        self.view.desired_resources = state.resources.iter().map(|r| (r.kind, r.name().to_string())).collect();
        let mut plan = plan::plan(&desired, &self.view.observed, &observation.kinds);
        let inputs_of = |kind: Kind, name: &str| {
            desired.iter().position(|(r, _)| r.kind == kind && r.name() == name).map(|i| &new_inputs[i])
        };
        // Each revision the replaced instances came from is read once per plan.
        let mut old_states: std::collections::HashMap<String, Option<DesiredState>> = Default::default();
        for step in plan.steps.iter_mut().filter(|s| s.action == Action::Replace) {
            let (Some(new), Some(inputs)) = (state.get(&step.name), inputs_of(step.kind, &step.name)) else { continue };
            let Some(seen) = self.view.observed.iter().find(|o| o.kind == step.kind && o.name == step.name) else {
                continue;
            };
            if !old_states.contains_key(&seen.revision) {
                let from = Revision::new(seen.revision.clone());
                let read = match from.oid() {
                    Some(_) => self.read_revision(&from).await.ok(),
                    None => None,
                };
                old_states.insert(seen.revision.clone(), read);
            }
            let Some(Some(old_state)) = old_states.get(&seen.revision) else { continue };
            if let Some(why) = self.what_changed(seen, old_state, new, inputs).await {
                step.reason = why;
            }
        }
        Ok(plan)
    }

    /// What a replace changes, for people: the running instance `seen`'s spec (in
    /// `old_state`, the revision it was applied from) against `new`. `None`: nothing to say
    /// beyond "spec changed".
    async fn what_changed(
        &self,
        seen: &plan::Observed,
        old_state: &DesiredState,
        new: &Resource,
        new_inputs: &BTreeMap<String, String>,
    ) -> Option<String> {
        let from = self.source.with_files(&Revision::new(seen.revision.clone()));
        let old = old_state.resources.iter().find(|r| r.kind == seen.kind && r.name() == new.name())?;
        let old_inputs = self.drivers.get(seen.kind).ok()?.inputs(old, &from).await.ok()?;
        let lines = plan::spec_changes(old, &old_inputs, new, new_inputs);
        let as_applied = plan::spec_hash(old, &old_inputs) == seen.spec_hash;
        let host =
            "a host-side input changed since it was applied (an env file's content, or the image behind its tag)";
        Some(match (lines.is_empty(), as_applied) {
            (true, true) => return None,
            (true, false) => host.to_string(),
            (false, true) => format!("spec changed: {}", lines.join(", ")),
            (false, false) => format!("spec changed: {}; and {host}", lines.join(", ")),
        })
    }

    /// Bring from outside everything the changing resources of `plan` need (pull, build), all
    /// of them, in parallel, before anything that runs is touched (PRODUCT.md behaviour 8).
    /// Every fetch runs to its end; a fault wins over a verdict (nothing is judged while the
    /// host or the network is at fault).
    pub(super) async fn fetch_all(
        &self,
        revision: &Revision,
        state: &DesiredState,
        plan: &Plan,
    ) -> Result<(), CycleError> {
        let resources: Vec<&Resource> = plan
            .changes()
            .filter(|s| s.action != Action::Remove)
            .filter_map(|s| state.resources.iter().find(|r| r.kind == s.kind && r.name() == s.name))
            .collect();
        if resources.is_empty() {
            return Ok(());
        }
        self.say(format!(
            "fetching what {} resource(s) of {} need before anything is changed",
            resources.len(),
            revision.short()
        ));
        let progress = &self.announcer.progress;
        let drivers = &self.drivers;
        let revision = &self.source.with_files(revision);
        let results: Vec<Result<(), CycleError>> = futures_util::stream::iter(resources.iter().map(|r| async move {
            let log = step_log(progress);
            drivers.get(r.kind)?.fetch(r, revision, &log).await.map_err(CycleError::from)
        }))
        .buffer_unordered(PARALLEL_FETCHES)
        .collect()
        .await;
        let mut failure: Option<CycleError> = None;
        for e in results.into_iter().filter_map(Result::err) {
            if failure.as_ref().is_none_or(|f| !f.is_fault() && e.is_fault()) {
                failure = Some(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Carry out `plan` for `revision`, journalling each wave before it runs. `journal` is
    /// already on disk (written by the caller before anything changes).
    pub(super) async fn execute(
        &mut self,
        journal: &mut Journal,
        revision: &Revision,
        state: &DesiredState,
        plan: &Plan,
    ) -> Result<(), CycleError> {
        let operation = journal.operation;
        let waves = {
            let drivers = &self.drivers;
            plan::waves(plan, &state.resources, &|k| drivers.parallel(k))
        };
        for wave in waves {
            if self.shutdown.is_shutdown() {
                return Err(CycleError::Stopping);
            }
            let lines: Vec<String> =
                wave.iter().map(|s| format!("{} {}/{}", plan::action_word(s.action), s.kind, s.name)).collect();
            journal.next = Some(lines.join("; "));
            self.store.write_journal(journal)?;
            for (step, line) in wave.iter().zip(&lines) {
                self.say(format!("{operation} {}: {line} ({})", revision.short(), step.reason));
            }
            // The steps of a wave run at once (bounded); a failure lets the others finish, so
            // no step is left half-done, and the first failure (a fault before a verdict) is
            // reported.
            let progress = &self.announcer.progress;
            let drivers = &self.drivers;
            let revision = &self.source.with_files(revision);
            let mut results: Vec<(usize, Result<(), CycleError>)> = futures_util::stream::iter(
                wave.iter()
                    .enumerate()
                    .map(|(i, step)| async move { (i, run_step(drivers, state, revision, step, progress).await) }),
            )
            .buffer_unordered(PARALLEL_STEPS)
            .collect()
            .await;
            results.sort_by_key(|(i, _)| *i);
            let mut failure: Option<CycleError> = None;
            for (i, result) in results {
                match result {
                    Ok(()) => {
                        journal.done.push(lines[i].clone());
                        self.view.health.remove(&(wave[i].kind, wave[i].name.clone()));
                    }
                    Err(e) => {
                        if failure.as_ref().is_none_or(|f| !f.is_fault() && e.is_fault()) {
                            failure = Some(e);
                        }
                    }
                }
            }
            journal.next = None;
            self.store.write_journal(journal)?;
            if let Some(f) = failure {
                return Err(f);
            }
            // `depends_on: { condition: healthy }`: what this wave changed and others wait on
            // must pass its checks before the next wave starts.
            let awaited: Vec<&Resource> = state
                .resources
                .iter()
                .filter(|r| wave.iter().any(|s| s.kind == r.kind && s.name == r.name()))
                .filter(|r| {
                    state.resources.iter().any(|o| {
                        o.spec
                            .depends_on()
                            .iter()
                            .any(|d| d.name == r.name() && d.condition == desired_state_schema::Condition::Healthy)
                    })
                })
                .collect();
            if !awaited.is_empty() {
                self.gate(&awaited).await?;
            }
        }
        Ok(())
    }

    /// Gate the resources `plan` changed (all of them with `gate_all`), then let each driver
    /// commit them (NixOS: the boot default is set only now).
    pub(super) async fn gate_and_commit(
        &mut self,
        state: &DesiredState,
        plan: &Plan,
        gate_all: bool,
    ) -> Result<(), CycleError> {
        let changed: Vec<&Resource> = state
            .resources
            .iter()
            .filter(|r| {
                gate_all || plan.changes().any(|s| s.kind == r.kind && s.name == r.name() && s.action != Action::Remove)
            })
            .collect();
        let gated: Vec<&Resource> =
            changed.iter().copied().filter(|r| self.drivers.get(r.kind).is_ok_and(|d| d.gated(r))).collect();
        self.gate(&gated).await?;
        for r in changed {
            self.drivers.get(r.kind)?.commit(r).await?;
        }
        Ok(())
    }

    /// Gate `resources`; records health per resource.
    async fn gate(&mut self, resources: &[&Resource]) -> Result<(), CycleError> {
        if resources.is_empty() {
            return Ok(());
        }
        self.say(format!("health gate: {} resource(s)", resources.len()));
        crate::failpoint::hit("gate").await;
        let report = step_log(&self.announcer.progress);
        let result = health::gate(&self.drivers, &self.cfg.config.health, resources, &report).await;
        match result {
            Ok(()) => {
                for r in resources {
                    self.view.health.insert((r.kind, r.name().to_string()), true);
                }
                Ok(())
            }
            Err(f) => {
                self.metrics.health_failures.inc();
                for r in resources {
                    let ok = r.name() != f.resource;
                    self.view.health.insert((r.kind, r.name().to_string()), ok);
                }
                Err(CycleError::Gate(f))
            }
        }
    }

    /// A verdict-looking failure while a driver of `state` is unreachable is that fault (a
    /// container "exits" because the engine stopped; a gate fails because the engine is
    /// gone). Asked twice, a second apart, so that an engine on its way down is caught.
    pub(super) async fn classify(&self, e: CycleError, state: &DesiredState) -> CycleError {
        if e.is_fault() || matches!(e, CycleError::Invalid(_)) {
            return e;
        }
        let kinds: Vec<Kind> = state.resources.iter().map(|r| r.kind).collect();
        for wait in [Duration::ZERO, Duration::from_secs(1)] {
            tokio::time::sleep(wait).await;
            if let Some(fault) = self.drivers.fault(&kinds).await {
                tracing::info!("{e}: judged a fault, not a verdict: {fault}");
                return CycleError::Runtime(fault);
            }
        }
        e
    }

    /// Apply `revision`, gate it, commit or revert. `gate_all`: gate every resource, not only
    /// the changed ones (after a crash or a fault, which were gated is unknown).
    pub(super) async fn apply_revision(&mut self, revision: &Revision, gate_all: bool) -> CycleResult {
        let started = (now_rfc3339(), Instant::now());
        let loaded = match self.load_revision(revision).await {
            Ok(s) => self.preflight(revision, s).await,
            Err(e) => Err(e),
        };
        let state = match loaded {
            Ok(s) => s,
            Err(e) if e.is_fault() => {
                return self.finish(Exit::Fault {
                    error: e,
                    context: Some(format!("reading {}", revision.short())),
                    record: None,
                })
            }
            Err(e) if lacks_for(&e) => {
                // What the host lacks for the revision's own content (a proxied container on
                // an agent without Caddy, a listen address another process holds).
                return self
                    .verdict_before_touching(revision, gate_all, e.to_string(), started, Vec::new(), Vec::new())
                    .await;
            }
            Err(e) => {
                if !self.state.invalid.iter().any(|i| i == revision.as_str()) {
                    self.state.invalid.push(revision.to_string());
                }
                let reason = Reason::Invalid { revision: revision.to_string(), errors: e.to_string() };
                let msg = reason.message().unwrap_or_default();
                self.say(msg.clone());
                let _ = self.store.clear_journal();
                let record = Record::new(revision, Outcome::Invalid, Vec::new(), msg, &started);
                return self.finish(Exit::Judged(record, Some(reason)));
            }
        };
        self.begin(revision);
        let plan = match self.plan_for(revision, &state).await {
            Ok(p) => p,
            Err(e) => {
                let e = self.classify(e, &state).await;
                if e.is_fault() {
                    return self.finish(Exit::Fault {
                        error: e,
                        context: Some(format!("applying {}", revision.short())),
                        record: None,
                    });
                }
                return self.revert_after_failure(revision, e.to_string(), started, Vec::new(), Vec::new()).await;
            }
        };
        let changes = plan.summary();
        if !plan.is_noop() {
            self.notify_started(revision, &changes);
        }
        // Everything from outside first: a missing image or a failed build found here leaves
        // every running thing exactly as it was.
        if let Err(e) = self.fetch_all(revision, &state, &plan).await {
            if matches!(e, CycleError::Stopping) {
                return self.stopping();
            }
            let e = self.classify(e, &state).await;
            if e.is_fault() {
                let context = if gate_all {
                    format!(
                        "fetching images for {} (the interrupted apply is finished once the fault clears)",
                        revision.short()
                    )
                } else {
                    format!("fetching images for {} (nothing was changed)", revision.short())
                };
                return self.finish(Exit::Fault { error: e, context: Some(context), record: None });
            }
            let diagnostics = self.diagnose(&state, &plan, e.resource()).await;
            return self
                .verdict_before_touching(revision, gate_all, e.to_string(), started, changes, diagnostics)
                .await;
        }
        let mut journal = Journal::new(JournalOp::Apply, revision.as_str());
        if let Err(e) = self.store.write_journal(&journal) {
            return self.finish(Exit::Fault {
                error: e.into(),
                context: Some(format!("applying {}", revision.short())),
                record: None,
            });
        }
        // The data it may change, snapshotted before the first running thing is touched
        // (PRODUCT.md behaviour 11): a fault here leaves everything as it ran (the journal
        // stays, to be finished), a verdict (a Volume's exec dump that fails) fails the
        // revision untouched.
        if !plan.is_noop() {
            if let Err(e) = self.snapshot_before(&mut journal, revision, &state, gate_all).await {
                if matches!(e, CycleError::Stopping) {
                    return self.stopping();
                }
                let e = self.classify(e, &state).await;
                if e.is_fault() {
                    let context = format!(
                        "snapshotting the data of {} before it is applied (nothing was changed; finished once the fault clears)",
                        revision.short()
                    );
                    return self.finish(Exit::Fault { error: e, context: Some(context), record: None });
                }
                let _ = self.store.clear_journal();
                return self
                    .verdict_before_touching(revision, gate_all, e.to_string(), started, changes, Vec::new())
                    .await;
            }
        }
        let mut result = self.execute(&mut journal, revision, &state, &plan).await;
        if result.is_ok() {
            self.publish_observation().await;
            result = self.gate_and_commit(&state, &plan, gate_all).await;
        }
        if let Err(e) = result {
            if matches!(e, CycleError::Stopping) {
                return self.stopping();
            }
            let e = self.classify(e, &state).await;
            if e.is_fault() {
                // The journal stays: the apply is finished like after a crash once it clears.
                self.publish_observation().await;
                return self.finish(Exit::Fault {
                    error: e,
                    context: Some(format!(
                        "applying {} (interrupted; finished once the fault clears)",
                        revision.short()
                    )),
                    record: None,
                });
            }
            let diagnostics = self.diagnose(&state, &plan, e.resource()).await;
            return self.revert_after_failure(revision, e.to_string(), started, changes, diagnostics).await;
        }
        self.publish_observation().await;
        // Commit: the revision is good.
        self.pin_good(revision).await;
        self.state.bake = self.bake_of(revision);
        // While it bakes, what the bake would put back stays on the host (its images).
        let now = self.source.with_files(revision);
        let before = self
            .state
            .bake
            .as_ref()
            .and_then(|b| b.previous.clone())
            .map(|p| self.source.with_files(&Revision::new(p)));
        let previous = match &before {
            // Read past the cache, which keeps the revision just committed.
            Some(p) => self.read_revision(p).await.ok().map(|state| (state, p)),
            None => None,
        };
        let keep: Vec<(&Resource, &Revision)> = state
            .resources
            .iter()
            .map(|r| (r, &now))
            .chain(previous.iter().flat_map(|(state, p)| state.resources.iter().map(move |r| (r, *p))))
            .collect();
        for kind in self.drivers.kinds().collect::<Vec<_>>() {
            if let Ok(d) = self.drivers.get(kind) {
                if let Err(e) = d.prune(&keep).await {
                    tracing::warn!("pruning {kind}: {e}");
                }
            }
        }
        self.state.applied = Some(revision.to_string());
        self.state.last_good = Some(revision.to_string());
        self.state.drift.clear();
        let reason = match self.state.pinned.clone() {
            Some(p) => Reason::Pinned { revision: p },
            None => Reason::Synced,
        };
        let _ = self.store.clear_journal();
        let mut msg =
            if changes.is_empty() { "nothing to change".to_string() } else { format!("{} change(s)", changes.len()) };
        for r in &state.resources {
            if let Some(d) = self.drivers.get(r.kind).ok().and_then(|d| d.describe(r)) {
                msg.push_str(&format!("; {d}"));
            }
        }
        self.say(format!("applied {}: {msg}", revision.short()));
        self.finish(Exit::Judged(Record::new(revision, Outcome::Applied, changes, msg, &started), Some(reason)))
    }

    /// Diagnostics of a failed apply: every changed resource that is not running well, and
    /// the one the failure names.
    pub(super) async fn diagnose(
        &self,
        state: &DesiredState,
        plan: &Plan,
        failing: Option<&str>,
    ) -> Vec<crate::state::Diagnostic> {
        let mut out = Vec::new();
        for step in plan.changes().filter(|s| s.action != Action::Remove) {
            let Ok(d) = self.drivers.get(step.kind) else { continue };
            let Some(r) = state.resources.iter().find(|r| r.kind == step.kind && r.name() == step.name) else {
                continue;
            };
            if let Some(diag) = d.diagnose(r).await {
                let bad = diag.state != "running" || diag.exit_code.is_some_and(|c| c != 0) || diag.oom_killed;
                if bad || failing == Some(step.name.as_str()) {
                    out.push(diag);
                }
            }
        }
        out
    }

    pub(super) async fn publish_observation(&mut self) {
        let kinds: Vec<Kind> = self.drivers.kinds().collect();
        if let Ok(o) = self.drivers.observe(&kinds).await {
            self.view.observed = o.resources;
            self.view.looked = true;
        }
        self.publish();
    }
}

/// Whether `e`, from reading a revision and the drivers' preflight, is something the host
/// lacks for the revision's own content (a verdict that fails the revision untouched)
/// rather than a problem of the desired state itself (invalid).
fn lacks_for(e: &CycleError) -> bool {
    matches!(e, CycleError::Runtime(crate::runtime::RuntimeError::HostLacks { .. }))
}

/// Carry out one step of a plan.
async fn run_step(
    drivers: &Drivers,
    state: &DesiredState,
    revision: &Revision,
    step: &plan::Step,
    progress: &broadcast::Sender<String>,
) -> Result<(), CycleError> {
    let driver = drivers.get(step.kind)?;
    match step.action {
        Action::Remove => driver.remove(&step.name).await?,
        Action::Create | Action::Replace | Action::Repair | Action::Restart => {
            let r = state.resources.iter().find(|r| r.kind == step.kind && r.name() == step.name).ok_or_else(|| {
                CycleError::Refused(format!(
                    "{} {}/{}: not in the desired state",
                    plan::action_word(step.action),
                    step.kind,
                    step.name
                ))
            })?;
            let log = step_log(progress);
            if step.action == Action::Restart {
                driver.restart(r, revision, &log).await?;
            } else {
                driver.converge(r, revision, &log).await?;
            }
        }
        Action::Unchanged => {}
    }
    Ok(())
}
