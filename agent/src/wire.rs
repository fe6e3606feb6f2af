//! The control protocol's wire types, kept apart from the logic that fills them: what
//! `agentctl` sends over the Unix socket and what `agentd` answers. One JSON object per line.
//! A request is answered by zero or more `progress` lines and one final `result` line.
//!
//! The `--json` output of `agentctl status`, `history` and `diff` is these types, so their
//! field names are a stable, documented contract (docs/cli.md).

use serde::{Deserialize, Serialize};

/// A request from `agentctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    Status,
    Diff,
    Sync {
        #[serde(default)]
        wait: bool,
        #[serde(default)]
        retry: bool,
        /// Apply past the rollout gates (recorded as such in the history).
        #[serde(default)]
        ignore_rollout: bool,
    },
    History {
        #[serde(default)]
        limit: Option<usize>,
    },
    Rollback {
        #[serde(default)]
        revision: Option<String>,
        /// Put every snapshotted volume back as it was while that revision ran (its newest
        /// `before` snapshot taken then), the current data snapshotted first.
        #[serde(default)]
        restore_data: bool,
    },
    /// The data snapshots on this host (`agentctl snapshots`), of one volume or all.
    Snapshots {
        #[serde(default)]
        volume: Option<String>,
    },
    /// Restore one snapshot by hand (`agentctl restore ID`).
    Restore {
        id: String,
    },
    Pause,
    Resume,
    /// The agent's version, build commit and start time (`agentctl version`).
    Version,
}

/// One data snapshot (`agentctl snapshots --json`; the same keys head its `manifest.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotView {
    /// Its folder's name under the snapshots folder: the time and the volume.
    pub id: String,
    /// The engine's name of the volume.
    pub volume: String,
    /// `before` (taken before `revision` touched anything, or before a restore by hand) or
    /// `failed-attempt` (the data as the failed `revision` left it, kept when it was reverted).
    pub kind: String,
    /// The revision it was taken before (`before`) or the failed attempt of (full commit id).
    pub revision: Option<String>,
    /// What the host ran when it was taken (full commit id).
    pub running: Option<String>,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Its size on disk.
    pub bytes: u64,
    /// `pause`, `stop` or `exec`.
    pub consistency: String,
    /// Why it was taken, when not before a revision (`before restoring 20261208T…-db-data`).
    pub note: Option<String>,
}

/// `agentctl version --json`: what runs on the socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionView {
    pub version: String,
    /// The commit it was built from (`DRIFTLESS_COMMIT` at build time), or `unknown`.
    pub commit: String,
    /// When this agent started (RFC 3339).
    pub started: String,
}

impl VersionView {
    /// This build's version and commit, started at `started`.
    pub fn of_this_build(started: &str) -> VersionView {
        VersionView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: option_env!("DRIFTLESS_COMMIT").filter(|c| !c.is_empty()).unwrap_or("unknown").to_string(),
            started: started.to_string(),
        }
    }
}

/// One line of an answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// Something happened (streamed with `sync --wait`).
    Progress(String),
    /// The final answer.
    Result(Reply),
}

/// The final answer to a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reply {
    Ok { data: serde_json::Value },
    Error { message: String },
}

/// `agentctl status --json`. Read leniently (a key missing is its default): readers of other
/// hosts' reports meet agents older and newer than themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct StatusView {
    pub host: String,
    pub environment: Option<String>,
    pub source: SourceView,
    pub phase: String,
    pub desired_revision: Option<String>,
    pub applied_revision: Option<String>,
    pub last_good_revision: Option<String>,
    /// The first line of the applied revision's commit message, when the history has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_subject: Option<String>,
    /// The version of the `agentd` that answers.
    #[serde(default)]
    pub agent_version: String,
    pub failed_revisions: Vec<String>,
    pub paused: bool,
    /// Set by `agentctl rollback` until `agentctl resume`.
    pub pinned_revision: Option<String>,
    /// Revisions the rollout gates hold for good (a host this one waits on rolled them back
    /// or failed them), with why; empty without `rollout.after`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_revisions: Vec<HeldView>,
    /// The revision `agentctl sync --ignore-rollout` lets past the gates, until it is applied
    /// or superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_rollout: Option<String>,
    /// While the applied revision bakes (`health.bake`): until when (RFC 3339) a failing
    /// check reverts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baking_until: Option<String>,
    pub last_sync: Option<String>,
    pub next_sync: Option<String>,
    pub message: Option<String>,
    pub resources: Vec<ResourceView>,
    /// This host's report (`report:` in the agent config): when it was last pushed, and why
    /// the last push failed. Absent without `report:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportView>,
}

impl StatusView {
    /// Whether the host runs what it runs healthy now: `Synced`, or gated on something newer
    /// (`Waiting`, `Held`), with no resource unhealthy. What the reporter notes as a break,
    /// and what a rollout gate asks of a host that still runs the revision.
    pub fn healthy_now(&self) -> bool {
        matches!(self.phase.as_str(), "Synced" | "Waiting" | "Held")
            && !self.resources.iter().any(|r| r.health == "unhealthy")
    }
}

/// A revision the rollout gates hold (`status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeldView {
    pub revision: String,
    pub why: String,
}

/// The reporter's state in `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportView {
    pub url: String,
    /// RFC 3339; `null` until a push succeeded.
    pub last_success: Option<String>,
    /// Why the last push failed (`null` when it did not).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceView {
    pub url: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ResourceView {
    pub kind: String,
    pub name: String,
    /// `running`, `stopped`, `missing`.
    pub state: String,
    /// `healthy`, `unhealthy`, `unknown`.
    pub health: String,
    pub revision: Option<String>,
    /// What the runtime says the resource runs (NixOS: generation, what dry-activate said,
    /// "reboot needed"; Passenger: the live release). Absent when it has nothing to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `agentctl diff --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffView {
    pub revision: Option<String>,
    pub changes: Vec<ChangeView>,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeView {
    pub kind: String,
    pub name: String,
    /// `create`, `replace`, `repair`, `remove`.
    pub action: String,
    pub reason: String,
}

/// The outcome of `sync`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncView {
    pub phase: String,
    pub revision: Option<String>,
    /// `applied`, `rolled_back`, `failed`, `invalid`, `drift_repaired`, or `none` when
    /// nothing needed doing.
    pub result: String,
    pub message: Option<String>,
}
