//! What the reconciler consumes: a closed set of events (timer, ref change, webhook, control
//! command, a change a runtime saw, a report pushed); shutdown is `listen::Shutdown`, which
//! every task follows and the control commands with their reply channels. Kept below both the
//! reconciler and the control socket, so that neither imports the other.

use tokio::sync::oneshot;

use crate::config::LoadedConfig;
use crate::state::HistoryEntry;
use crate::wire::{DiffView, StatusView, SyncView};

/// Everything the reconciler reacts to.
pub enum Event {
    /// The poll timer fired (or SIGUSR1).
    Tick,
    /// A watched local repository's refs changed.
    RefChanged,
    /// A push notification arrived.
    Webhook,
    /// A runtime reported that a managed resource may have changed (the Docker engine's
    /// events): look for drift now, without a fetch. `name` is empty for "look at all".
    Changed { kind: desired_state_schema::Kind, name: String },
    /// A request from `agentctl`.
    Control(Command),
    /// The checks of what runs are due again (`health.watch_interval`, PRODUCT.md
    /// behaviour 6).
    HealthWatch,
    /// The reporter pushed this host's report (`error: None`) or failed to (a fault: it
    /// never holds a deploy; retried with backoff).
    Reported { error: Option<String> },
}

/// Requests that change or need the reconciler's state.
pub enum Command {
    Sync {
        retry: bool,
        /// `agentctl sync --ignore-rollout`: past the rollout gates, this once.
        ignore_rollout: bool,
        reply: oneshot::Sender<SyncView>,
    },
    Diff {
        reply: oneshot::Sender<Result<DiffView, String>>,
    },
    Rollback {
        revision: Option<String>,
        /// Put the snapshotted volumes back as they were while that revision ran.
        restore_data: bool,
        reply: oneshot::Sender<Result<SyncView, String>>,
    },
    /// The data snapshots (of one volume, or all), oldest first.
    Snapshots {
        volume: Option<String>,
        reply: oneshot::Sender<Vec<crate::wire::SnapshotView>>,
    },
    /// Restore snapshot `id` by hand (the current data snapshotted first).
    Restore {
        id: String,
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
