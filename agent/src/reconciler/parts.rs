//! The parts the reconciler wires, each owning its data: `View` (what `status` shows beyond
//! the durable state, and the channel it is published on), `Caches` (what a no-op cycle need
//! not read, parse or hash again), `Announcer` (log lines, `sync --wait` progress,
//! notifications) and `CycleContext` (what the cycle under way carries). None of them
//! decides anything: the decisions are `cycle.rs`'s, the records `record.rs`'s. This file
//! imports nothing of its parent.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use desired_state_schema::{DesiredState, Kind};
use tokio::sync::{broadcast, watch};

use crate::notify::Notifier;
use crate::plan::Observed;
use crate::state::{CommitInfo, Reason};
use crate::wire::{ReportView, StatusView};

/// What started a cycle (recorded in the history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Poll,
    Watch,
    Webhook,
    Manual,
    /// Drift seen by a poll (recorded for drift repairs).
    Drift,
}

/// A resource's spec hash with the revision and host-side inputs it was computed from.
pub(super) type Hashed = (String, BTreeMap<String, String>, String);

/// What `status` shows beyond the durable state, and where it is published.
pub(super) struct View {
    /// Per resource: health as last seen by a gate or the watch after it (`true` healthy).
    pub health: BTreeMap<(Kind, String), bool>,
    /// Per resource: checks after the gate failed in a row so far (`health_watch.rs`).
    pub streaks: BTreeMap<(Kind, String), u32>,
    /// The last observation of the host.
    pub observed: Vec<Observed>,
    /// Whether this run has observed the host yet: until then the resource gauges restored
    /// from the state file stand.
    pub looked: bool,
    /// The resources of the last loaded desired state, in order.
    pub desired_resources: Vec<(Kind, String)>,
    /// When the next poll is due.
    pub next_sync: Option<SystemTime>,
    /// Readers of the status (`agentctl`, the reporter) never wait for a cycle: a snapshot
    /// is sent here after every change.
    pub status_tx: watch::Sender<StatusView>,
    /// The reporter's last word (`report:`).
    pub report: Option<ReportView>,
}

impl View {
    pub fn new(status_tx: watch::Sender<StatusView>) -> View {
        View {
            health: Default::default(),
            streaks: Default::default(),
            observed: Vec::new(),
            looked: false,
            desired_resources: Vec::new(),
            next_sync: None,
            status_tx,
            report: None,
        }
    }
}

/// What a no-op cycle need not read, parse or hash again.
#[derive(Default)]
pub(super) struct Caches {
    /// The last desired state read from Git, keyed by revision and what of the config shapes
    /// it (path, environment, compose profiles). Behind a lock: read while `&self` is lent
    /// to the drivers.
    pub loaded: Mutex<Option<(String, Arc<DesiredState>)>>,
    /// Each resource's last spec hash, with the revision and the host-side inputs it was
    /// computed from.
    pub spec_hashes: HashMap<(Kind, String), Hashed>,
    /// Subject, author and date of the revisions the history and notifications name, read
    /// from the mirror once per revision.
    pub commits: HashMap<String, CommitInfo>,
}

/// Log lines, `sync --wait` progress and notifications: what the agent says.
pub(super) struct Announcer {
    /// Progress lines for `sync --wait`.
    pub progress: broadcast::Sender<String>,
    /// Notification targets (`notify:`), replaced on SIGHUP.
    pub notifier: Notifier,
}

impl Announcer {
    /// A progress line: to the log, to `sync --wait`, and as progress for the watchdog.
    pub fn say(&self, line: String) {
        step_log(&self.progress)(line);
    }
}

/// What a step (a fetch, a converge, a gate) says as it goes, line by line: each goes to
/// the log and to `sync --wait`, and counts as progress for the watchdog. A function of the
/// sender alone, so that steps running at once each take one.
pub(super) fn step_log(progress: &broadcast::Sender<String>) -> impl Fn(String) + Sync + '_ {
    move |line: String| {
        crate::sdnotify::progress();
        tracing::info!(target: "driftless", "{line}");
        let _ = progress.send(line);
    }
}

/// What the cycle under way carries.
pub(super) struct CycleContext {
    /// What started it.
    pub trigger: Trigger,
    /// Why the host was where it was when it began (what a fault covers).
    pub start: Option<Reason>,
    /// Force-pushes, deleted refs and pre-emptions seen since the last history entry, for
    /// the next one.
    pub ref_notes: Vec<String>,
    /// Set for one `agentctl sync --ignore-rollout`: the rollout gates are passed this once.
    pub ignore_rollout: bool,
}

impl CycleContext {
    pub fn new(start: Option<Reason>) -> CycleContext {
        CycleContext { trigger: Trigger::Start, start, ref_notes: Vec::new(), ignore_rollout: false }
    }
}
