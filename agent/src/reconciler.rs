//! The reconciler: the one task that owns the agent's state. It consumes a closed set of
//! events (timer, ref change, webhook, control command, signal) and runs reconcile cycles:
//!
//! select (fetch, resolve, verify) → read and validate the desired state → observe → plan →
//! apply (each step journalled first) → gate → commit (last good) or revert.
//!
//! Between revisions a cycle re-observes the host and repairs drift. Everything that blocks
//! (git2, the file system) runs in `spawn_blocking`. Readers of the status do not wait for a
//! cycle: a snapshot is published on a watch channel after every change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use desired_state_schema::{DesiredState, Kind, Resource};
use futures_util::StreamExt;
use git2::Oid;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::{DriftMode, LoadedConfig};
use crate::control::wire::{ChangeView, DiffView, ResourceView, SourceView, StatusView, SyncView};
use crate::health;
use crate::metrics::Metrics;
use crate::notify::{Notification, Notifier};
use crate::plan::{self, Action, Observed, Plan, RunState};
use crate::runtime::Runtimes;
use crate::source::{GitSource, Pin, SourceError};
use crate::state::{now_rfc3339, AgentState, HistoryEntry, Journal, Outcome, Phase, StateError, Store, STATE_VERSION};

/// Everything the reconciler reacts to.
pub enum Event {
    /// The poll timer fired.
    Tick,
    /// A watched local repository's refs changed.
    RefChanged,
    /// A push notification arrived.
    Webhook,
    /// A request from `agentctl`.
    Control(Command),
    /// SIGTERM / SIGINT: stop between steps.
    Shutdown,
}

/// Requests that change or need the reconciler's state.
pub enum Command {
    Sync {
        retry: bool,
        reply: oneshot::Sender<SyncView>,
    },
    Diff {
        reply: oneshot::Sender<Result<DiffView, String>>,
    },
    Rollback {
        revision: Option<String>,
        reply: oneshot::Sender<Result<SyncView, String>>,
    },
    Pause {
        reply: oneshot::Sender<StatusView>,
    },
    Resume {
        reply: oneshot::Sender<StatusView>,
    },
    History {
        limit: Option<usize>,
        reply: oneshot::Sender<Vec<HistoryEntry>>,
    },
    /// A new, already validated config (SIGHUP).
    Reload(Box<LoadedConfig>),
}

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot create state_dir {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
}

/// How a cycle ended, for `sync` and `--once`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleResult {
    pub outcome: Option<Outcome>,
    pub message: Option<String>,
}

pub struct Reconciler {
    cfg: LoadedConfig,
    source: GitSource,
    runtimes: Runtimes,
    store: Store,
    state: AgentState,
    /// Per resource: health as last seen by a gate (`true` healthy).
    health: std::collections::BTreeMap<(Kind, String), bool>,
    observed: Vec<Observed>,
    desired_resources: Vec<(Kind, String)>,
    next_sync: Option<SystemTime>,
    status_tx: watch::Sender<StatusView>,
    progress: broadcast::Sender<String>,
    /// `agentd --dry-run`: select and validate revisions, apply nothing.
    dry_run: bool,
    stop: Arc<AtomicBool>,
    /// Force-pushes and deleted refs seen since the last history entry, for the next one.
    ref_notes: Vec<String>,
    metrics: Arc<Metrics>,
    notifier: Notifier,
}

/// Something that went wrong inside a cycle, already worded for the operator.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

impl Reconciler {
    pub fn new(cfg: LoadedConfig, runtimes: Runtimes) -> Result<(Reconciler, watch::Receiver<StatusView>), StartError> {
        let dir = cfg.config.state_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::StateDir { path: dir.display().to_string(), source: e })?;
        let store = Store::new(&dir);
        let mut state = store.load()?;
        state.version = STATE_VERSION;
        let source = GitSource::new(&cfg);
        let (status_tx, status_rx) = watch::channel(StatusView::default());
        let (progress, _) = broadcast::channel(256);
        let notifier = Notifier::new(cfg.config.notify.iter().map(|n| n.url.clone()).collect());
        let r = Reconciler {
            cfg,
            source,
            runtimes,
            store,
            state,
            health: Default::default(),
            observed: Vec::new(),
            desired_resources: Vec::new(),
            next_sync: None,
            status_tx,
            progress,
            dry_run: false,
            stop: Arc::new(AtomicBool::new(false)),
            ref_notes: Vec::new(),
            metrics: Metrics::new(),
            notifier,
        };
        r.publish();
        Ok((r, status_rx))
    }

    pub fn progress(&self) -> broadcast::Sender<String> {
        self.progress.clone()
    }

    /// Set when a shutdown is asked for; applies stop between steps.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn config(&self) -> &LoadedConfig {
        &self.cfg
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// `agentd --dry-run`: from now on, select and validate revisions but apply nothing.
    pub fn set_dry_run(&mut self, on: bool) {
        self.dry_run = on;
    }

    /// Replace the config (SIGHUP); the Git source follows the new one.
    pub fn reload(&mut self, cfg: LoadedConfig) {
        self.source = GitSource::new(&cfg);
        self.notifier = Notifier::new(cfg.config.notify.iter().map(|n| n.url.clone()).collect());
        self.cfg = cfg;
        self.say("config reloaded".into());
        self.publish();
    }

    fn say(&self, line: String) {
        crate::sdnotify::watchdog(); // the reconciler is making progress
        tracing::info!(target: "driftless", "{line}");
        let _ = self.progress.send(line);
    }

    fn save(&mut self) {
        if let Err(e) = self.store.save(&self.state) {
            tracing::error!("{e}");
        }
        self.publish();
    }

    /// Publish the status snapshot (and the phase to metrics and systemd).
    fn publish(&self) {
        let status = self.status();
        let phase = if self.state.paused { Phase::Paused } else { self.state.phase };
        self.metrics.set_phase(phase);
        self.metrics.set_revisions(self.state.applied.as_deref(), self.state.last_good.as_deref());
        crate::sdnotify::status(&format!(
            "{} {}{}",
            status.phase,
            status.applied_revision.as_deref().map(short).unwrap_or("-"),
            status.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        ));
        let _ = self.status_tx.send(status);
    }

    pub fn status(&self) -> StatusView {
        let c = &self.cfg.config;
        let mut resources: Vec<ResourceView> = Vec::new();
        let mut names: Vec<(Kind, String)> = self.desired_resources.clone();
        for o in &self.observed {
            if !names.contains(&(o.kind, o.name.clone())) {
                names.push((o.kind, o.name.clone()));
            }
        }
        for (kind, name) in names {
            let o = self.observed.iter().find(|o| o.kind == kind && o.name == name);
            let state = match o.map(|o| &o.state) {
                Some(RunState::Running) => "running",
                Some(RunState::NotRunning) => "stopped",
                None => "missing",
            };
            let health = match self.health.get(&(kind, name.clone())) {
                Some(true) => "healthy",
                Some(false) => "unhealthy",
                None => "unknown",
            };
            resources.push(ResourceView {
                kind: kind.to_string(),
                name,
                state: state.into(),
                health: health.into(),
                revision: o.map(|o| o.revision.clone()).filter(|r| !r.is_empty()),
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
            failed_revisions: self.state.failed.clone(),
            paused: self.state.paused,
            pinned_revision: self.state.pinned.clone(),
            last_sync: self.state.last_sync.clone(),
            next_sync: self.next_sync.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            message: self.state.message.clone(),
            resources,
        }
    }

    pub fn set_next_sync(&mut self, at: Option<SystemTime>) {
        self.next_sync = at;
        self.publish();
    }

    /// Handle one event. Returns `false` when the agent should stop.
    pub async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Tick | Event::RefChanged | Event::Webhook => {
                self.reconcile(false).await;
            }
            Event::Control(cmd) => self.command(cmd).await,
            Event::Shutdown => return false,
        }
        true
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Sync { retry, reply } => {
                let r = self.reconcile(retry).await;
                let _ = reply.send(self.sync_view(r));
            }
            Command::Diff { reply } => {
                let _ = reply.send(self.diff().await.map_err(|f| f.0));
            }
            Command::Rollback { revision, reply } => {
                let r = self.rollback(revision).await;
                let _ = reply.send(r.map(|r| self.sync_view(r)).map_err(|f| f.0));
            }
            Command::Pause { reply } => {
                self.state.paused = true;
                self.state.message = Some("paused by agentctl pause; agentctl resume restarts reconciliation".into());
                self.say("paused".into());
                self.save();
                let _ = reply.send(self.status());
            }
            Command::Resume { reply } => {
                self.state.paused = false;
                self.state.pinned = None;
                self.state.message = None;
                self.say("resumed".into());
                self.save();
                self.reconcile(false).await;
                let _ = reply.send(self.status());
            }
            Command::History { limit, reply } => {
                let n = limit.unwrap_or(usize::MAX);
                let _ = reply.send(self.state.history.iter().take(n).cloned().collect());
            }
            Command::Reload(cfg) => self.reload(*cfg),
        }
    }

    fn sync_view(&self, r: CycleResult) -> SyncView {
        let result = match r.outcome {
            None => "none",
            Some(Outcome::Applied) => "applied",
            Some(Outcome::RolledBack) => "rolled_back",
            Some(Outcome::Failed) => "failed",
            Some(Outcome::Invalid) => "invalid",
            Some(Outcome::DriftRepaired) => "drift_repaired",
        };
        SyncView {
            phase: self.status().phase,
            revision: self.state.applied.clone(),
            result: result.into(),
            message: r.message.or_else(|| self.state.message.clone()),
        }
    }

    /// Finish an apply or revert that a crash interrupted (a journal is on disk).
    pub async fn recover(&mut self) {
        if self.dry_run {
            return; // a dry run touches nothing, not even an unfinished apply
        }
        let journal = match self.store.journal() {
            Ok(Some(j)) => j,
            Ok(None) => return,
            Err(e) => {
                self.fail_phase(Phase::Failed, e.to_string());
                return;
            }
        };
        self.say(format!(
            "found an unfinished {} of {} (last step done: {}); finishing it",
            journal.operation,
            short(&journal.revision),
            journal.done.last().map(String::as_str).unwrap_or("none")
        ));
        let started = Instant::now();
        let rev = journal.revision.clone();
        if journal.operation == "revert" {
            let why = self.state.message.clone().unwrap_or_else(|| "an interrupted revert".into());
            self.revert_after_failure(&rev, why, started, Vec::new()).await;
        } else {
            // Gate everything: which resources the crash left ungated is unknown.
            self.apply_revision(&rev, started, true).await;
        }
    }

    /// One reconcile cycle, measured.
    pub async fn reconcile(&mut self, retry: bool) -> CycleResult {
        use tracing::Instrument;
        let t = Instant::now();
        // Every log line of the cycle carries the desired revision (recorded once selected).
        let span = tracing::info_span!("reconcile", revision = tracing::field::Empty);
        let r = self.reconcile_inner(retry).instrument(span).await;
        self.metrics.reconcile_duration.observe(t.elapsed().as_secs_f64());
        if self.state.phase == Phase::Synced && !self.state.paused {
            self.metrics.success_now();
        }
        r
    }

    async fn reconcile_inner(&mut self, retry: bool) -> CycleResult {
        self.state.last_sync = Some(now_rfc3339());
        if self.state.paused {
            self.publish();
            return CycleResult { outcome: None, message: Some("paused".into()) };
        }
        let started = Instant::now();
        let target = match self.select().await {
            Ok(t) => t,
            Err(f) => {
                self.say(format!("source: {}", f.0));
                self.fail_phase(Phase::Failed, f.0.clone());
                // The source is down; the host can still be held on what it runs.
                let _ = self.drift_check().await;
                return CycleResult { outcome: None, message: Some(f.0) };
            }
        };
        let desired = target.to_string();
        tracing::Span::current().record("revision", tracing::field::display(short(&desired)));
        self.state.desired = Some(desired.clone());
        if self.dry_run {
            let (phase, message) = match self.load_revision(&desired).await {
                Ok(s) => (
                    Phase::Synced,
                    format!(
                        "dry run: revision {} is valid ({} resource(s)); nothing is applied",
                        short(&desired),
                        s.resources.len()
                    ),
                ),
                Err(f) => (Phase::Invalid, format!("dry run: revision {} is invalid:\n{}", short(&desired), f.0)),
            };
            if self.state.message.as_deref() != Some(message.as_str()) {
                self.say(message.clone());
            }
            // No history is written in a dry run: say force-pushes and deleted refs now.
            for note in std::mem::take(&mut self.ref_notes) {
                self.say(format!("source: {note}"));
            }
            self.state.phase = phase;
            self.state.message = Some(message);
            self.save();
            return CycleResult { outcome: None, message: self.state.message.clone() };
        }
        let failed = self.state.failed.iter().any(|f| f == &desired);
        if self.state.applied.as_deref() == Some(desired.as_str()) && failed && !retry {
            // The host runs a revision that failed its gate (a first revision with nothing to
            // roll back to): repairing its drift would retry it on every poll.
            self.publish_observation().await;
            self.save();
            return CycleResult { outcome: None, message: self.state.message.clone() };
        }
        if self.state.applied.as_deref() == Some(desired.as_str()) && !failed {
            let r = self.drift_check().await;
            if r.outcome.is_none() && self.state.phase != Phase::Degraded {
                self.settle_phase(&desired);
            }
            self.save();
            return r;
        }
        if self.state.invalid.contains(&desired) {
            self.save();
            let _ = self.drift_check().await;
            return CycleResult { outcome: None, message: self.state.message.clone() };
        }
        if self.state.failed.contains(&desired) && !retry {
            self.save();
            let _ = self.drift_check().await;
            return CycleResult { outcome: None, message: self.state.message.clone() };
        }
        if retry {
            self.state.failed.retain(|f| f != &desired);
        }
        self.apply_revision(&desired, started, false).await
    }

    /// After a drift check with nothing to do: the phase that describes where the host is.
    fn settle_phase(&mut self, desired: &str) {
        if self.state.pinned.is_some() {
            return;
        }
        if self.state.failed.iter().any(|f| f == desired) {
            return;
        }
        if matches!(self.state.phase, Phase::Progressing | Phase::Failed | Phase::Synced) {
            self.state.phase = Phase::Synced;
            self.state.message = None;
        }
    }

    fn fail_phase(&mut self, phase: Phase, message: String) {
        self.state.phase = phase;
        self.state.message = Some(message);
        self.save();
    }

    /// Fetch, resolve (or take the pin), verify.
    async fn select(&mut self) -> Result<Oid, Failure> {
        if let Some(pin) = &self.state.pinned {
            return Oid::from_str(pin).map_err(Failure::from);
        }
        let src = self.source.clone();
        let t = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || -> Result<_, SourceError> {
            let report = src.fetch()?;
            let resolved = src.resolve()?;
            Ok((report, resolved))
        })
        .await
        .map_err(|e| Failure(format!("the fetch task failed: {e}")))?;
        self.metrics.fetch_duration.observe(t.elapsed().as_secs_f64());
        if matches!(fetched, Err(SourceError::Unreachable { .. } | SourceError::AuthRefused { .. })) {
            self.metrics.fetch_errors.inc();
        }
        let (report, resolved) = fetched?;
        for ch in &report.changes {
            let name = ch.name.trim_start_matches("refs/remotes/origin/").trim_start_matches("refs/");
            match ch.kind {
                crate::source::RefMove::Forced => self.ref_notes.push(format!(
                    "{name} was force-moved upstream ({} -> {})",
                    ch.old.as_deref().map(short).unwrap_or("none"),
                    ch.new.as_deref().map(short).unwrap_or("none")
                )),
                crate::source::RefMove::Deleted => self.ref_notes.push(format!(
                    "{name} was deleted upstream (it pointed to {})",
                    ch.old.as_deref().map(short).unwrap_or("none")
                )),
                _ => {}
            }
            self.say(format!(
                "source: {} {:?} {} -> {}",
                ch.name,
                ch.kind,
                ch.old.as_deref().map(short).unwrap_or("none"),
                ch.new.as_deref().map(short).unwrap_or("none")
            ));
        }
        if let Some(v) = &self.cfg.config.source.verify {
            let src = self.source.clone();
            let signers = v.allowed_signers.clone();
            let r = resolved.clone();
            let verdict = tokio::task::spawn_blocking(move || src.verify(&r, &signers))
                .await
                .map_err(|e| Failure(format!("the verify task failed: {e}")))?;
            verdict?;
        }
        Ok(resolved.commit)
    }

    /// Read and validate the desired state of `revision` (from Git objects).
    async fn load_revision(&self, revision: &str) -> Result<DesiredState, Failure> {
        let src = self.source.clone();
        let path = self.cfg.config.source.path.clone();
        let oid = Oid::from_str(revision)?;
        let files = tokio::task::spawn_blocking(move || src.read_state(oid, &path))
            .await
            .map_err(|e| Failure(format!("the read task failed: {e}")))??;
        let env = self.cfg.config.environment.clone();
        desired_state_schema::load(&files, env.as_deref()).map_err(|e| Failure(e.to_string()))
    }

    /// Observe the host and plan the way to `state` (the state of `revision`).
    async fn plan_for(&mut self, revision: &str, state: &DesiredState) -> Result<Plan, Failure> {
        self.observed = self.runtimes.observe().await?;
        let ordered = state.in_dependency_order();
        // Host-side inputs (image ids, env file digests) are looked up concurrently, in order.
        let runtimes = &self.runtimes;
        let inputs: Vec<_> = futures_util::stream::iter(ordered.iter().map(|r| runtimes.inputs(r, revision)))
            .buffered(PARALLEL_STEPS)
            .collect()
            .await;
        let mut desired: Vec<(&Resource, String)> = Vec::with_capacity(ordered.len());
        for (r, inputs) in ordered.into_iter().zip(inputs) {
            desired.push((r, plan::spec_hash(r, &inputs?)));
        }
        self.desired_resources = state.resources.iter().map(|r| (r.kind, r.name().to_string())).collect();
        Ok(plan::plan(&desired, &self.observed, &self.runtimes.managed_kinds()))
    }

    /// Carry out `plan` for `revision`, journalling each step before it runs.
    async fn execute(
        &mut self,
        operation: &str,
        revision: &str,
        state: &DesiredState,
        plan: &Plan,
    ) -> Result<(), Failure> {
        let mut journal = Journal {
            version: STATE_VERSION,
            operation: operation.into(),
            revision: revision.into(),
            started: now_rfc3339(),
            done: Vec::new(),
            next: None,
        };
        self.store.write_journal(&journal)?;
        for wave in plan::waves(plan, &state.resources) {
            if self.stop.load(Ordering::SeqCst) {
                return Err(Failure(
                    "stopping: the agent was asked to shut down; the journal finishes this on start".into(),
                ));
            }
            let lines: Vec<String> =
                wave.iter().map(|s| format!("{} {}/{}", plan::action_word(s.action), s.kind, s.name)).collect();
            journal.next = Some(lines.join("; "));
            self.store.write_journal(&journal)?;
            for (step, line) in wave.iter().zip(&lines) {
                self.say(format!("{operation} {}: {line} ({})", short(revision), step.reason));
            }
            // The steps of a wave run at once (bounded); a failure lets the others finish, so
            // no step is left half-done, and the first failure is reported.
            let runtimes = &self.runtimes;
            let progress = &self.progress;
            let mut results: Vec<(usize, Result<(), Failure>)> = futures_util::stream::iter(
                wave.iter()
                    .enumerate()
                    .map(|(i, step)| async move { (i, run_step(runtimes, state, revision, step, progress).await) }),
            )
            .buffer_unordered(PARALLEL_STEPS)
            .collect()
            .await;
            results.sort_by_key(|(i, _)| *i);
            let mut first_failure = None;
            for (i, result) in results {
                match result {
                    Ok(()) => {
                        journal.done.push(lines[i].clone());
                        self.health.remove(&(wave[i].kind, wave[i].name.clone()));
                    }
                    Err(f) => {
                        first_failure.get_or_insert(f);
                    }
                }
            }
            journal.next = None;
            self.store.write_journal(&journal)?;
            if let Some(f) = first_failure {
                return Err(f);
            }
        }
        Ok(())
    }

    /// Carry out `plan` for `revision`, then gate and commit what it changed (a revert, a
    /// drift repair); the observation is published after each half.
    async fn converge_and_gate(
        &mut self,
        operation: &str,
        revision: &str,
        state: &DesiredState,
        plan: &Plan,
    ) -> Result<(), Failure> {
        self.execute(operation, revision, state, plan).await?;
        self.publish_observation().await;
        self.gate_and_commit(state, plan, false).await?;
        self.publish_observation().await;
        Ok(())
    }

    /// Gate the resources `plan` changed (all of them with `gate_all`), then commit them
    /// (NixOS: the boot default is set only now).
    async fn gate_and_commit(&mut self, state: &DesiredState, plan: &Plan, gate_all: bool) -> Result<(), Failure> {
        let changed: Vec<&Resource> = state
            .resources
            .iter()
            .filter(|r| {
                gate_all || plan.changes().any(|s| s.kind == r.kind && s.name == r.name() && s.action != Action::Remove)
            })
            .collect();
        let gated: Vec<&Resource> = changed.iter().copied().filter(|r| Runtimes::gated(r)).collect();
        self.gate(&gated).await?;
        for r in changed {
            self.runtimes.commit(r).await?;
        }
        Ok(())
    }

    /// Gate `resources`; records health per resource.
    async fn gate(&mut self, resources: &[&Resource]) -> Result<(), Failure> {
        if resources.is_empty() {
            return Ok(());
        }
        self.say(format!("health gate: {} resource(s)", resources.len()));
        crate::failpoint::hit("gate");
        let progress = self.progress.clone();
        let report = move |line: String| {
            tracing::info!(target: "driftless", "{line}");
            let _ = progress.send(line);
        };
        let result = health::gate(&self.runtimes, &self.cfg.config.health, resources, &report).await;
        match result {
            Ok(()) => {
                for r in resources {
                    self.health.insert((r.kind, r.name().to_string()), true);
                }
                Ok(())
            }
            Err(f) => {
                self.metrics.health_failures.inc();
                for r in resources {
                    let ok = r.name() != f.resource;
                    self.health.insert((r.kind, r.name().to_string()), ok);
                }
                Err(Failure(f.to_string()))
            }
        }
    }

    /// Apply `revision`, gate it, commit or revert. `gate_all`: gate every resource, not only
    /// the changed ones (after a crash, which were gated is unknown).
    async fn apply_revision(&mut self, revision: &str, started: Instant, gate_all: bool) -> CycleResult {
        let t0 = now_rfc3339();
        let state = match self.load_revision(revision).await {
            Ok(s) => s,
            Err(f) => {
                if !self.state.invalid.iter().any(|i| i == revision) {
                    self.state.invalid.push(revision.to_string());
                }
                let msg = format!("revision {} is invalid and was not applied:\n{}", short(revision), f.0);
                self.say(msg.clone());
                self.state.phase = Phase::Invalid;
                self.state.message = Some(msg.clone());
                self.history(t0, revision, Outcome::Invalid, Vec::new(), msg.clone(), started);
                let _ = self.store.clear_journal();
                self.save();
                return CycleResult { outcome: Some(Outcome::Invalid), message: Some(msg) };
            }
        };
        self.state.phase = Phase::Progressing;
        self.state.message = Some(format!("applying {}", short(revision)));
        self.save();
        let plan = match self.plan_for(revision, &state).await {
            Ok(p) => p,
            Err(f) => return self.revert_after_failure(revision, f.0, started, Vec::new()).await,
        };
        let changes = plan.summary();
        if let Err(f) = self.execute("apply", revision, &state, &plan).await {
            if self.stop.load(Ordering::SeqCst) {
                return CycleResult { outcome: None, message: Some(f.0) };
            }
            return self.revert_after_failure(revision, f.0, started, changes).await;
        }
        self.publish_observation().await;
        if let Err(f) = self.gate_and_commit(&state, &plan, gate_all).await {
            return self.revert_after_failure(revision, f.0, started, changes).await;
        }
        self.publish_observation().await;
        // Commit: the revision is good.
        let src = self.source.clone();
        let oid = Oid::from_str(revision).ok();
        if let Some(oid) = oid {
            let _ = tokio::task::spawn_blocking(move || {
                src.pin(Pin::Applied, oid, "applied")?;
                src.pin(Pin::LastGood, oid, "last good")
            })
            .await;
        }
        self.state.applied = Some(revision.to_string());
        self.state.last_good = Some(revision.to_string());
        self.state.phase = if self.state.pinned.is_some() { Phase::Paused } else { Phase::Synced };
        self.state.message =
            self.state.pinned.as_ref().map(|p| {
                format!("pinned to {} by agentctl rollback; agentctl resume follows the source again", short(p))
            });
        let mut msg =
            if changes.is_empty() { "nothing to change".to_string() } else { format!("{} change(s)", changes.len()) };
        for r in &state.resources {
            if let Some(d) = self.runtimes.describe(r) {
                msg.push_str(&format!("; {d}"));
            }
        }
        self.say(format!("applied {}: {msg}", short(revision)));
        self.history(t0, revision, Outcome::Applied, changes, msg.clone(), started);
        let _ = self.store.clear_journal();
        self.save();
        CycleResult { outcome: Some(Outcome::Applied), message: Some(msg) }
    }

    /// `revision` failed (`why`): mark it and put the host back on the last good revision.
    async fn revert_after_failure(
        &mut self,
        revision: &str,
        why: String,
        started: Instant,
        changes: Vec<String>,
    ) -> CycleResult {
        let t0 = now_rfc3339();
        let is_revert = self.state.last_good.as_deref() == Some(revision);
        if !is_revert {
            self.state.mark_failed(revision);
            if let Ok(oid) = Oid::from_str(revision) {
                let src = self.source.clone();
                let _ = tokio::task::spawn_blocking(move || src.pin(Pin::Failed, oid, "failed")).await;
            }
            self.say(format!("revision {} failed: {why}", short(revision)));
            self.save();
        }
        let Some(good) = self.state.last_good.clone().filter(|g| g != revision) else {
            // Nothing to go back to (a first revision), or the last good one itself failed.
            let msg = if is_revert {
                format!(
                    "the last good revision {} failed too: {why}; the host needs an operator (see docs/operations.md)",
                    short(revision)
                )
            } else {
                format!("revision {} failed and there is no last good revision to roll back to: {why}", short(revision))
            };
            self.state.applied = Some(revision.to_string());
            self.state.phase = Phase::Degraded;
            self.state.message = Some(msg.clone());
            self.history(t0, revision, Outcome::Failed, changes, msg.clone(), started);
            let _ = self.store.clear_journal();
            self.save();
            return CycleResult { outcome: Some(Outcome::Failed), message: Some(msg) };
        };
        self.say(format!("rolling back to last good revision {}", short(&good)));
        crate::failpoint::hit("revert");
        let journal = Journal {
            version: STATE_VERSION,
            operation: "revert".into(),
            revision: good.clone(),
            started: now_rfc3339(),
            done: Vec::new(),
            next: None,
        };
        self.state.message = Some(format!("revision {} failed: {why}", short(revision)));
        if let Err(e) = self.store.write_journal(&journal) {
            tracing::error!("{e}");
        }
        let result: Result<(), Failure> = async {
            let state = self.load_revision(&good).await?;
            let plan = self.plan_for(&good, &state).await?;
            self.converge_and_gate("revert", &good, &state, &plan).await
        }
        .await;
        let _ = self.store.clear_journal();
        match result {
            Ok(()) => {
                self.state.applied = Some(good.clone());
                self.state.phase = Phase::RolledBack;
                let msg = format!(
                    "revision {} failed: {why}; rolled back to {}; it is not retried until a newer revision appears or agentctl sync --retry",
                    short(revision),
                    short(&good)
                );
                self.state.message = Some(msg.clone());
                self.say(format!("rolled back to {}", short(&good)));
                self.history(t0, revision, Outcome::RolledBack, changes, msg.clone(), started);
                self.save();
                CycleResult { outcome: Some(Outcome::RolledBack), message: Some(msg) }
            }
            Err(f) => {
                let msg = format!(
                    "revision {} failed: {why}; rolling back to {} failed too: {}",
                    short(revision),
                    short(&good),
                    f.0
                );
                self.state.phase = Phase::Degraded;
                self.state.message = Some(msg.clone());
                self.history(t0, revision, Outcome::Failed, changes, msg.clone(), started);
                self.save();
                CycleResult { outcome: Some(Outcome::Failed), message: Some(msg) }
            }
        }
    }

    async fn publish_observation(&mut self) {
        if let Ok(o) = self.runtimes.observe().await {
            self.observed = o;
        }
        self.publish();
    }

    /// Re-observe; put back what was changed by hand (or only report it).
    async fn drift_check(&mut self) -> CycleResult {
        let Some(applied) = self.state.applied.clone() else {
            self.publish_observation().await;
            return CycleResult { outcome: None, message: None };
        };
        let started = Instant::now();
        let t0 = now_rfc3339();
        let state = match self.load_revision(&applied).await {
            Ok(s) => s,
            Err(_) => {
                self.publish_observation().await;
                return CycleResult { outcome: None, message: None };
            }
        };
        let plan = match self.plan_for(&applied, &state).await {
            Ok(p) => p,
            Err(f) => {
                self.publish();
                return CycleResult { outcome: None, message: Some(f.0) };
            }
        };
        self.publish();
        if plan.is_noop() {
            return CycleResult { outcome: None, message: None };
        }
        let changes = plan.summary();
        if self.cfg.config.drift == DriftMode::Report {
            let msg = format!("drift (not repaired, drift: report): {}", changes.join("; "));
            self.say(msg.clone());
            self.state.message = Some(msg.clone());
            self.save();
            return CycleResult { outcome: None, message: Some(msg) };
        }
        self.say(format!("drift: {}", changes.join("; ")));
        let result = self.converge_and_gate("repair", &applied, &state, &plan).await;
        let _ = self.store.clear_journal();
        let (msg, phase_ok) = match result {
            Ok(()) => (format!("repaired {} drifted resource(s)", changes.len()), true),
            Err(f) => (format!("drift repair did not bring the host back to health: {}", f.0), false),
        };
        if !phase_ok {
            self.state.phase = Phase::Degraded;
            self.state.message = Some(msg.clone());
        }
        self.say(msg.clone());
        self.history(t0, &applied, Outcome::DriftRepaired, changes, msg.clone(), started);
        self.save();
        CycleResult { outcome: Some(Outcome::DriftRepaired), message: Some(msg) }
    }

    /// The plan for the desired revision, applying nothing.
    async fn diff(&mut self) -> Result<DiffView, Failure> {
        let target = self.select().await?.to_string();
        let state = match self.load_revision(&target).await {
            Ok(s) => s,
            Err(f) => {
                return Ok(DiffView {
                    revision: Some(target),
                    changes: Vec::new(),
                    message: Some(format!("invalid desired state:\n{}", f.0)),
                })
            }
        };
        let plan = self.plan_for(&target, &state).await?;
        self.publish();
        Ok(DiffView {
            revision: Some(target),
            changes: plan
                .changes()
                .map(|s| ChangeView {
                    kind: s.kind.to_string(),
                    name: s.name.clone(),
                    action: plan::action_word(s.action).into(),
                    reason: s.reason.clone(),
                })
                .collect(),
            message: None,
        })
    }

    /// Apply the last good (or a named) revision and hold the host there until `resume`.
    async fn rollback(&mut self, revision: Option<String>) -> Result<CycleResult, Failure> {
        let target = match revision {
            Some(r) => {
                let src = self.source.clone();
                let spec = r.clone();
                tokio::task::spawn_blocking(move || -> Result<String, String> {
                    let repo = src.repo().map_err(|e| e.to_string())?;
                    let obj = repo.revparse_single(&spec).map_err(|_| {
                        format!(
                            "revision {spec:?} is not in the agent's mirror; give a commit id from agentctl history"
                        )
                    })?;
                    let c = obj.peel_to_commit().map_err(|e| e.to_string())?;
                    Ok(c.id().to_string())
                })
                .await
                .map_err(|e| Failure(e.to_string()))?
                .map_err(Failure)?
            }
            None => self
                .state
                .last_good
                .clone()
                .ok_or_else(|| Failure("there is no last good revision to roll back to".into()))?,
        };
        self.state.pinned = Some(target.clone());
        self.state.failed.retain(|f| f != &target);
        self.say(format!("rollback: pinning the host to {}", short(&target)));
        self.save();
        let r = if self.state.applied.as_deref() == Some(target.as_str()) {
            self.state.phase = Phase::Paused;
            self.state.message = Some(format!(
                "pinned to {} by agentctl rollback; agentctl resume follows the source again",
                short(&target)
            ));
            self.save();
            CycleResult { outcome: None, message: self.state.message.clone() }
        } else {
            self.apply_revision(&target, Instant::now(), false).await
        };
        Ok(r)
    }

    fn history(
        &mut self,
        started: String,
        revision: &str,
        result: Outcome,
        changes: Vec<String>,
        message: String,
        t: Instant,
    ) {
        let message = if self.ref_notes.is_empty() {
            message
        } else {
            format!("{}; {message}", std::mem::take(&mut self.ref_notes).join("; "))
        };
        match result {
            Outcome::Applied => self.metrics.deployments.inc(),
            Outcome::RolledBack => self.metrics.rollbacks.inc(),
            Outcome::DriftRepaired => self.metrics.drift_repairs.inc(),
            Outcome::Failed | Outcome::Invalid => 0,
        };
        let event = match result {
            Outcome::Applied => "deployed",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed if self.state.phase == Phase::Degraded => "degraded",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
            Outcome::DriftRepaired => "drift_repaired",
        };
        self.notify(event, revision, &message);
        let entry = HistoryEntry {
            started,
            finished: now_rfc3339(),
            revision: Some(revision.to_string()),
            result,
            changes,
            message,
            duration_ms: u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let limit = self.cfg.config.history_limit;
        self.state.record(entry, limit);
    }
}

impl Reconciler {
    /// Send `event` for `revision` unless it was sent before.
    fn notify(&mut self, event: &str, revision: &str, message: &str) {
        if self.notifier.is_empty() {
            return;
        }
        let key = format!("{event}:{revision}");
        if self.state.notified.contains(&key) {
            return;
        }
        self.state.notified.push_back(key);
        while self.state.notified.len() > 256 {
            self.state.notified.pop_front();
        }
        self.notifier.send(Notification {
            event: event.to_string(),
            host: self.cfg.host.clone(),
            environment: self.cfg.config.environment.clone(),
            revision: Some(revision.to_string()),
            message: message.to_string(),
            time: now_rfc3339(),
        });
    }
}

/// At most this many steps of one wave run at once (Docker serialises much of the rest).
const PARALLEL_STEPS: usize = 16;

/// Carry out one step of a plan.
async fn run_step(
    runtimes: &Runtimes,
    state: &DesiredState,
    revision: &str,
    step: &plan::Step,
    progress: &broadcast::Sender<String>,
) -> Result<(), Failure> {
    match step.action {
        Action::Remove => runtimes.remove(step.kind, &step.name).await?,
        Action::Create | Action::Replace | Action::Repair => {
            let r = state.resources.iter().find(|r| r.kind == step.kind && r.name() == step.name).ok_or_else(|| {
                Failure(format!(
                    "{} {}/{}: not in the desired state",
                    plan::action_word(step.action),
                    step.kind,
                    step.name
                ))
            })?;
            let log = move |line: String| {
                tracing::info!(target: "driftless", "{line}");
                let _ = progress.send(line);
            };
            runtimes.converge(r, revision, &log).await?;
        }
        Action::Unchanged => {}
    }
    Ok(())
}

/// `0123456789ab` — twelve characters of a commit id.
pub fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// Drive the reconciler from an event channel until shutdown.
pub async fn run(mut r: Reconciler, mut events: mpsc::Receiver<Event>) {
    r.recover().await;
    r.reconcile(false).await;
    // Ready once the host has been observed (and what the journal left finished).
    crate::sdnotify::ready();
    // Ping at half the watchdog period from this loop: a stuck loop stops pinging.
    let ping = crate::sdnotify::watchdog_period().map(|p| p / 2);
    loop {
        // Read each time: SIGHUP may have changed `source.interval`.
        let wait = jittered(r.cfg.config.source.interval.as_std(), &r.cfg.host);
        let due = tokio::time::Instant::now() + wait;
        r.set_next_sync(SystemTime::now().checked_add(wait));
        let event = loop {
            crate::sdnotify::watchdog();
            let nap = ping.map_or(wait, |p| p.min(due.saturating_duration_since(tokio::time::Instant::now())));
            tokio::select! {
                e = events.recv() => break e,
                _ = tokio::time::sleep(nap) => {
                    if tokio::time::Instant::now() >= due {
                        break Some(Event::Tick);
                    }
                }
            }
        };
        let Some(event) = event else { break };
        if !r.handle(event).await {
            break;
        }
    }
    crate::sdnotify::stopping();
    r.say("agentd stopped".into());
}

/// The poll period with up to ±10% jitter, so a fleet does not poll in the same second.
pub fn jittered(interval: Duration, host: &str) -> Duration {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let seed = host.bytes().fold(u64::from(nanos), |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let spread = interval.as_millis() as u64 / 10;
    if spread == 0 {
        return interval;
    }
    let offset = seed % (2 * spread + 1);
    interval + Duration::from_millis(offset) - Duration::from_millis(spread)
}
