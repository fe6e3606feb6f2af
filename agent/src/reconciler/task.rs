//! The task itself: `Reconciler` (the state it owns and the parts it wires), how it starts,
//! its run loop over events, and the backoff with full jitter between cycles after a fault.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use desired_state_schema::Kind;
use tokio::sync::{broadcast, mpsc, watch};

use super::parts;
pub use super::parts::Trigger;
use crate::event::{Command, Event};

use crate::config::LoadedConfig;
use crate::listen::Shutdown;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::runtime::Drivers;
use crate::source::GitSource;
use crate::state::{AgentState, Outcome, StateError, Store, STATE_VERSION};
use crate::wire::{StatusView, SyncView};

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),
    #[error("cannot create state_dir {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
}

/// How a cycle ended, for `sync` and `--once`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleResult {
    /// What happened to a revision (`None`: nothing was judged).
    pub outcome: Option<Outcome>,
    pub message: Option<String>,
    /// The cycle met a fault of the host or network (it is retried with backoff).
    pub fault: bool,
}

/// The one task that owns the agent's state. It wires the parts below as comin's manager
/// wires its stages: each part owns its data, and the reconciler decides (`cycle.rs`) and
/// records (`record.rs`).
pub struct Reconciler {
    /// The agent config in force (replaced on SIGHUP).
    pub(super) cfg: LoadedConfig,
    /// The Git mirror and ref selection.
    pub(super) source: GitSource,
    /// One driver per kind of resource.
    pub(super) drivers: Drivers,
    /// `state.json` and `journal.json`.
    pub(super) store: Store,
    /// What survives a restart (revisions, the reason of the phase, history, fault in force).
    pub(super) state: AgentState,
    /// When the state was last written, and as what (a no-op cycle skips the write).
    pub(super) saved: Option<(std::time::Instant, AgentState)>,
    /// Held for the life of the reconciler: one agent per `state_dir`.
    pub(super) _lock: crate::lock::StateLock,
    /// The Prometheus registry (shared with the metrics listener).
    pub(super) metrics: Arc<Metrics>,
    /// `agentd --dry-run`: select and validate revisions, apply nothing.
    pub(super) dry_run: bool,
    /// SIGTERM/SIGINT: applies stop between steps, the event loop ends (the one signal the
    /// listeners, the feeds and the reconciler all follow).
    pub(super) shutdown: Shutdown,
    /// What `status` shows beyond the state, and the channel it is published on.
    pub(super) view: parts::View,
    /// What a no-op cycle need not read, parse or hash again.
    pub(super) caches: parts::Caches,
    /// Log lines, `sync --wait` progress and notifications.
    pub(super) announcer: parts::Announcer,
    /// What the cycle under way carries (its trigger, the reason it began in, notes for its
    /// history entry, a one-time pass of the rollout gates).
    pub(super) ctx: parts::CycleContext,
}

impl Reconciler {
    /// Take the lock on `state_dir`, load the state, publish a first status.
    pub fn new(cfg: LoadedConfig, drivers: Drivers) -> Result<(Reconciler, watch::Receiver<StatusView>), StartError> {
        let dir = cfg.config.state_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::StateDir { path: dir.display().to_string(), source: e })?;
        let lock = crate::lock::lock(&dir)?;
        // What a crash left of snapshots being made is no snapshot.
        crate::snapshots::Store::new(&cfg.config.snapshots_dir()).clean_partials();
        let store = Store::new(&dir);
        let mut state = store.load()?;
        state.version = STATE_VERSION;
        let source = GitSource::new(&cfg);
        let (status_tx, status_rx) = watch::channel(StatusView::default());
        let (progress, _) = broadcast::channel(256);
        let notifier = Notifier::new(&cfg.config.notify);
        let metrics = Metrics::new();
        metrics.restore(&state.counters, state.last_success_ms);
        // The resource gauges as last published: there before the first observation.
        metrics.set_resources(state.resources.iter().map(|h| (h.kind.as_str(), h.name.as_str(), h.healthy)));
        let r = Reconciler {
            cfg,
            source,
            drivers,
            store,
            ctx: parts::CycleContext::new(state.reason.clone()),
            state,
            saved: None,
            _lock: lock,
            metrics,
            dry_run: false,
            shutdown: Shutdown::never(),
            view: parts::View::new(status_tx),
            caches: Default::default(),
            announcer: parts::Announcer { progress, notifier },
        };
        r.publish();
        Ok((r, status_rx))
    }

    pub fn progress(&self) -> broadcast::Sender<String> {
        self.announcer.progress.clone()
    }

    /// Follow `shutdown` (SIGTERM/SIGINT): applies stop between steps, and `run` ends.
    pub fn set_shutdown(&mut self, shutdown: Shutdown) {
        self.shutdown = shutdown;
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

    /// Replace the config (SIGHUP); the Git source follows the new one. A new config that
    /// changes a key read only at start (`LoadedConfig::start_only_changes`) is refused
    /// whole: the old one stays in force, and the refusal names the keys and says to
    /// restart. `Err` carries that refusal.
    pub fn reload(&mut self, cfg: LoadedConfig) -> Result<(), String> {
        let start_only = self.cfg.start_only_changes(&cfg);
        if !start_only.is_empty() {
            let msg = format!(
                "SIGHUP: the new config is refused, the old one stays in force: {} {} read only when agentd starts; restart agentd to apply {} (systemctl restart driftless)",
                start_only.join(", "),
                if start_only.len() == 1 { "is" } else { "are" },
                if start_only.len() == 1 { "it" } else { "them" },
            );
            tracing::error!("{msg}");
            let _ = self.announcer.progress.send(msg.clone());
            return Err(msg);
        }
        self.source = GitSource::new(&cfg);
        self.announcer.notifier = Notifier::new(&cfg.config.notify);
        self.cfg = cfg;
        if let Ok(mut l) = self.caches.loaded.lock() {
            *l = None; // the path, environment or profiles may have changed
        }
        self.caches.spec_hashes.clear();
        self.say("config reloaded".into());
        self.publish();
        Ok(())
    }

    /// A progress line: to the log, to `sync --wait`, and as progress for the watchdog.
    pub(super) fn say(&self, line: String) {
        self.announcer.say(line);
    }

    /// When the next poll is due. Only that field of the published status changes: the
    /// rest of the snapshot is not built again.
    pub fn set_next_sync(&mut self, at: Option<SystemTime>) {
        self.view.next_sync = at;
        let next = at.map(|t| humantime::format_rfc3339_seconds(t).to_string());
        self.view.status_tx.send_if_modified(|s| {
            let changed = s.next_sync != next;
            s.next_sync = next;
            changed
        });
    }

    /// How long to wait before the next cycle: the poll interval (jittered), or, while a
    /// fault lasts, a backoff of 1 s doubling per faulty cycle, capped at the interval, with
    /// full jitter (a random wait up to that bound), so that a fleet whose registry blinks
    /// does not come back in lockstep.
    pub fn next_wait(&self) -> Duration {
        let interval = self.cfg.config.source.interval.as_std();
        match &self.state.fault {
            Some(f) => {
                let exp = f.cycles.saturating_sub(1).min(16);
                full_jitter(Duration::from_secs(1u64 << exp).min(interval))
            }
            None => jittered(interval, &self.cfg.host),
        }
    }

    /// Handle one event. Returns `false` when the agent should stop.
    pub async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Tick => {
                self.reconcile(Trigger::Poll, false).await;
            }
            Event::RefChanged => {
                self.reconcile(Trigger::Watch, false).await;
            }
            Event::Webhook => {
                self.reconcile(Trigger::Webhook, false).await;
            }
            Event::Changed { .. } => {
                self.changed().await;
            }
            Event::HealthWatch => self.watch_health().await,
            Event::Control(cmd) => self.command(cmd).await,
            Event::Reported { error } => {
                let url = self.cfg.config.report.as_ref().map(|r| r.url.clone()).unwrap_or_default();
                let last = self.view.report.take().and_then(|r| r.last_success);
                if error.is_none() {
                    self.metrics.report_last_success.set(crate::metrics::unix_now());
                }
                self.metrics.report_up.set(i64::from(error.is_none()));
                if let Some(e) = &error {
                    tracing::warn!("report to {url} not pushed (retried with backoff; deploys go on): {e}");
                }
                let last_success = if error.is_none() { Some(crate::state::now_rfc3339()) } else { last };
                self.view.report = Some(crate::wire::ReportView { url, last_success, error });
                self.publish();
            }
        }
        !self.shutdown.is_shutdown()
    }

    /// A runtime saw a managed resource change: look for drift at once (no fetch). Drift the
    /// agent's own apply caused is not reported: events are handled after the cycle that
    /// caused them, when the host matches the applied revision again.
    pub async fn changed(&mut self) -> CycleResult {
        let quiet = CycleResult { outcome: None, message: None, fault: false };
        let applied = self.state.applied.clone();
        let held_back = self.state.paused
            || self.dry_run
            || applied.is_none()
            || applied.as_ref().is_some_and(|a| self.state.failed.contains(a))
            || self.state.fault.is_some()
            || matches!(self.store.journal(), Ok(Some(_)) | Err(_));
        if held_back {
            return quiet; // the next cycle decides (it finishes journals, retries faults)
        }
        self.ctx.trigger = Trigger::Drift;
        self.ctx.start = self.state.reason.clone();
        let d = self.check_drift().await;
        self.finish(d.into_exit())
    }

    /// Start the runtimes' change feeds (the Docker engine's events): each change becomes an
    /// `Event::Changed` on `events`. Returns the feeds' tasks.
    pub fn subscribe(
        &self,
        events: mpsc::Sender<Event>,
        shutdown: &crate::listen::Shutdown,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let on_change: Arc<dyn Fn(Kind, String) + Send + Sync> = Arc::new(move |kind, name| {
            let _ = events.try_send(Event::Changed { kind, name });
        });
        self.drivers.subscribe(on_change, shutdown)
    }

    pub(super) async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Sync { retry, ignore_rollout, reply } => {
                if ignore_rollout && self.state.ignore_rollout.is_none() {
                    // In force for what is desired now even if this cycle cannot fetch; the
                    // cycle's decision moves it to the revision it selects.
                    self.state.ignore_rollout = self.state.desired.clone();
                }
                self.ctx.ignore_rollout = ignore_rollout;
                let r = self.reconcile(Trigger::Manual, retry).await;
                self.ctx.ignore_rollout = false;
                let _ = reply.send(self.sync_view(r));
            }
            Command::Diff { reply } => {
                let _ = reply.send(self.diff().await.map_err(|e| e.to_string()));
            }
            Command::Rollback { revision, restore_data, reply } => {
                let r = self.rollback(revision, restore_data).await;
                let _ = reply.send(r.map(|r| self.sync_view(r)).map_err(|e| e.to_string()));
            }
            Command::Snapshots { volume, reply } => {
                let _ = reply.send(self.snapshot_list(volume.as_deref()));
            }
            Command::Restore { id, reply } => {
                let why = format!("agentctl restore {id}");
                let r = self.restore_by_hand(vec![id], why).await;
                let _ = reply.send(r.map(|r| self.sync_view(r)).map_err(|e| e.to_string()));
            }
            Command::Pause { reply } => {
                // The reason in force stays; the pause overlays it in `status`.
                self.state.paused = true;
                self.say("paused".into());
                self.save();
                let _ = reply.send(self.status());
            }
            Command::Resume { reply } => {
                self.state.paused = false;
                self.state.pinned = None;
                self.say("resumed".into());
                self.save();
                self.reconcile(Trigger::Manual, false).await;
                let _ = reply.send(self.status());
            }
            Command::History { limit, reply } => {
                let n = limit.unwrap_or(usize::MAX);
                let _ = reply.send(self.state.history.iter().take(n).cloned().collect());
            }
            Command::Reload(cfg) => {
                let _ = self.reload(*cfg);
            }
        }
    }

    pub(super) fn sync_view(&self, r: CycleResult) -> SyncView {
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
}

/// Drive the reconciler from an event channel until shutdown. The caller has sent `READY=1`
/// (the control socket answers) and started the watchdog heartbeat; this loop reports
/// progress on every turn, so only a stuck cycle starves the watchdog.
pub async fn run(mut r: Reconciler, mut events: mpsc::Receiver<Event>) {
    let mut shutdown = r.shutdown.clone();
    r.reconcile(Trigger::Start, false).await;
    crate::memory::release(); // what reading and applying at start freed
    let mut health_due = r.next_health_watch();
    loop {
        // A SIGHUP may have turned the watch after the gate on (it turns itself off at its
        // next round when the new config says 0s).
        if health_due.is_none() {
            health_due = r.next_health_watch();
        }
        // Read each time: SIGHUP may have changed `source.interval`; a fault shortens it.
        let wait = r.next_wait();
        let due = tokio::time::Instant::now() + wait;
        r.set_next_sync(SystemTime::now().checked_add(wait));
        // Waiting is progress: under a watchdog the loop wakes four times a period to say so;
        // otherwise it sleeps until the next poll (an idle agent costs nothing meanwhile).
        let step =
            crate::sdnotify::watchdog_period().map_or(Duration::MAX, |p| (p / 4).max(Duration::from_millis(100)));
        let event = loop {
            crate::sdnotify::progress();
            let first = health_due.map_or(due, |h| h.min(due));
            let nap = step.min(first.saturating_duration_since(tokio::time::Instant::now()));
            if shutdown.is_shutdown() {
                break None;
            }
            tokio::select! {
                e = events.recv() => break e,
                _ = shutdown.recv() => break None,
                _ = tokio::time::sleep(nap) => {
                    let now = tokio::time::Instant::now();
                    if now >= due {
                        break Some(Event::Tick);
                    }
                    if health_due.is_some_and(|h| now >= h) {
                        health_due = r.next_health_watch();
                        break Some(Event::HealthWatch);
                    }
                }
            }
        };
        let Some(mut event) = event else { break };
        loop {
            let mut next = None;
            if matches!(event, Event::Changed { .. }) {
                // One look for a burst (kill, die, destroy of one `docker rm -f`): let it
                // settle, then drop the rest of it.
                tokio::time::sleep(Duration::from_millis(300)).await;
                loop {
                    match events.try_recv() {
                        Ok(Event::Changed { .. }) => continue,
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            if !r.handle(event).await {
                crate::sdnotify::stopping();
                r.say("agentd stopped".into());
                return;
            }
            match next {
                Some(e) => event = e,
                None => break,
            }
        }
    }
    crate::sdnotify::stopping();
    r.say("agentd stopped".into());
}

/// The shortest wait a backoff gives: a retry never spins.
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// "Full jitter" (as AWS's architecture blog names it): a random wait between
/// `MIN_BACKOFF` and `bound`.
pub fn full_jitter(bound: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    if bound <= MIN_BACKOFF {
        return bound;
    }
    // std's RandomState is seeded from the OS once per thread and moves on each use: random
    // enough to spread a fleet, with no crate for it.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let span = (bound - MIN_BACKOFF).as_millis() as u64;
    MIN_BACKOFF + Duration::from_millis(h.finish() % (span + 1))
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
