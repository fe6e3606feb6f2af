//! What the agent remembers across restarts, in `state_dir`: `state.json` (revisions, phase,
//! pause and pin, bounded history) and `journal.json` (the apply or revert in flight, written
//! before each step). Both are small, versioned JSON, replaced atomically (`fsutil`). A
//! journal on start means the agent stopped mid-apply: the reconciler finishes the job.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

pub const STATE_VERSION: u32 = 1;

/// Where the host stands (PRODUCT.md's phases).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Synced,
    #[default]
    Progressing,
    Degraded,
    RolledBack,
    Paused,
    Failed,
    Invalid,
    /// A new revision waits for its rollout gates or a deploy window (`rollout:`); the host
    /// keeps what it runs.
    Waiting,
    /// A host this one waits on rolled the revision back or failed it: never applied here.
    Held,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The outcome of one deployment, as `agentctl history` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    RolledBack,
    Failed,
    Invalid,
    DriftRepaired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub started: String,
    pub finished: String,
    pub revision: Option<String>,
    pub result: Outcome,
    pub changes: Vec<String>,
    pub message: String,
    pub duration_ms: u64,
    /// What started the cycle: `start`, `poll`, `watch`, `webhook`, `manual` (`drift` for
    /// a drift repair).
    #[serde(default)]
    pub trigger: Option<String>,
    /// Why, per failing resource, when the revision failed or was rolled back.
    #[serde(default)]
    pub diagnostics: Vec<Diagnostic>,
    /// The revision's commit: subject, author, date (`null` when the mirror no longer has it).
    #[serde(default)]
    pub commit: Option<CommitInfo>,
}

/// Who made a revision and why, from its commit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// The first line of the commit message.
    pub subject: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// The author date, RFC 3339 in UTC.
    pub date: String,
}

/// Counters of the metrics that must survive a restart (Prometheus's `increase()` and the
/// shipped alerts read them); saved with the state, restored into the metrics at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub deployments: u64,
    pub rollbacks: u64,
    pub failures: u64,
    pub invalid: u64,
    pub drift: u64,
    pub drift_repairs: u64,
    pub health_check_failures: u64,
    pub git_fetch_errors: u64,
    pub faults: u64,
}

/// What a failing resource looked like (PRODUCT.md behaviour 9).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub kind: String,
    pub name: String,
    /// `exited`, `restarting`, `running`, `not created`, …
    pub state: String,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The last 50 lines of its log (or of its build).
    pub logs: Vec<String>,
}

/// The agent's durable state. Fields added later default when missing (older state files).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentState {
    pub version: u32,
    /// The revision the selector picked last.
    pub desired: Option<String>,
    /// The revision the host runs (applied and gated, or being reverted to).
    pub applied: Option<String>,
    pub last_good: Option<String>,
    /// Revisions that failed their gate; not tried again until a newer one or `sync --retry`.
    pub failed: Vec<String>,
    /// Revisions whose desired state is invalid.
    pub invalid: Vec<String>,
    pub paused: bool,
    /// Set by `agentctl rollback`: hold the host on this revision until `resume`.
    pub pinned: Option<String>,
    pub phase: Phase,
    pub message: Option<String>,
    pub last_sync: Option<String>,
    pub history: VecDeque<HistoryEntry>,
    /// `event:revision` keys of notifications already sent (newest last, bounded).
    pub notified: VecDeque<String>,
    /// A fault of the host or network that the last cycle met (PRODUCT.md behaviour 8), and
    /// the phase and message it covers; cleared by the first cycle that meets none.
    pub fault: Option<FaultNote>,
    /// Drift seen and not repaired (`drift: report`), one line per resource; kept visible
    /// until repaired or gone.
    pub drift: Vec<String>,
    /// The metrics' counters as of the last save.
    pub counters: Counters,
    /// Unix time, in milliseconds, of the end of the last cycle that left the host Synced.
    pub last_success_ms: Option<u64>,
    /// The source fault last notified (`source_failed`), until a fetch succeeds again
    /// (`source_recovered`): one notification per distinct fault, never one per retry.
    pub source_fault: Option<String>,
    /// Each resource's health as last published (`driftless_resource_healthy`): published
    /// again at start, so the gauges are there before the first observation (an alert on
    /// `== 0` does not miss a host that restarted unhealthy).
    pub resources: Vec<ResourceHealth>,
    /// Revisions the rollout gates held (a host this one waits on rolled it back or failed
    /// it), and why: each held for good, without asking the reports again (they may be gone,
    /// or have moved on); a newer revision starts over. (A state file of an agent that held
    /// one revision at most reads as a list of one.)
    #[serde(deserialize_with = "held_list")]
    pub held: Vec<(String, String)>,
    /// The revision `agentctl sync --ignore-rollout` let past the rollout gates: in force
    /// until it is applied (or fails) or a newer revision supersedes it, whatever faults the
    /// cycles meet meanwhile.
    pub ignore_rollout: Option<String>,
    /// The newest report time (seconds) seen of each other host by the rollout gates: a
    /// report older than that is a replay and never counts.
    pub report_seen: std::collections::BTreeMap<String, i64>,
    /// The revision committed last, while it bakes (`health.bake`, PRODUCT.md behaviour 6):
    /// a check that fails before `until_ms` reverts it to `previous`.
    pub bake: Option<Bake>,
    /// The data snapshots of the revision applied last (PRODUCT.md behaviour 11): what its
    /// revert puts back, until a newer revision's apply takes snapshots of its own.
    pub attempt: Option<Attempt>,
    /// Why the host is in `phase`: what the last way out of a cycle decided (`phase` and
    /// `message` are derived from it, by `Reason::phase` and `Reason::message`, and kept for
    /// readers of the file). Decisions match on it, never on the message's text. `None` in a
    /// state file from before it existed.
    pub reason: Option<Reason>,
}

/// The snapshots one revision's apply took before it touched anything, and what its
/// revert did with them (each step recorded as it is done, so that a revert resumed after a
/// crash neither takes a snapshot twice nor restores a volume it put back already).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attempt {
    /// The revision whose apply they precede.
    pub revision: String,
    /// Volume → the id of its `before` snapshot.
    pub before: std::collections::BTreeMap<String, String>,
    /// Volume → the id of the snapshot of the data as the failed attempt left it.
    pub failed: std::collections::BTreeMap<String, String>,
    /// Volumes put back from their `before` snapshot by the revert.
    pub restored: Vec<String>,
}

/// A data step in flight (a snapshot or a restore), journalled before it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataStep {
    /// `snapshot` or `restore`.
    pub action: String,
    pub volume: String,
    /// The containers a snapshot paused or stopped: put back if the agent dies meanwhile.
    pub holders: Vec<String>,
    /// A restore: the snapshot it puts back.
    pub from: Option<String>,
}

/// A committed revision within its `health.bake`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bake {
    /// The revision that bakes.
    pub revision: String,
    /// The last good revision before it: what a failing check within the bake puts back.
    pub previous: Option<String>,
    /// When it was committed and when the bake ends (Unix milliseconds).
    pub committed_ms: u64,
    pub until_ms: u64,
}

impl Bake {
    /// Whether `revision` still bakes at `now_ms`.
    pub fn holds(&self, revision: &str, now_ms: u64) -> bool {
        self.revision == revision && now_ms < self.until_ms
    }
}

/// Why the host is where it is: every way out of a cycle ends with one, and the phase and
/// the message shown in `status` are derived from it (`record.rs::finish` is their only
/// writer). The texts are the operator's; the variants are what code decides on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The host runs the desired revision, which passed its gate.
    Synced,
    /// It does, with drift seen and left as it is (`drift: report`), one line per resource.
    DriftReported { drift: Vec<String> },
    /// An apply of `revision` is under way.
    Progressing { revision: String },
    /// `agentctl rollback` pinned the host to `revision`, which it runs.
    Pinned { revision: String },
    /// `failed` failed its gate (`why`) and the host is back on `to`.
    RolledBack { failed: String, to: String, why: String },
    /// `revision` failed before anything was touched (an image that does not exist, a failed
    /// build, something the host lacks for it); `runs` is what the host still runs.
    FailedUntouched { revision: String, runs: Option<String>, why: String },
    /// `revision` failed and there was no last good revision to go back to.
    FailedNoLastGood { revision: String, why: String },
    /// The last good revision itself failed (a revert of it did not pass).
    LastGoodFailed { revision: String, why: String },
    /// `failed` failed (`why`) and putting the host back on `to` failed too (`error`).
    RevertFailed { failed: String, to: String, why: String, error: String },
    /// The selected revision's signature was refused (`source.verify`).
    SignatureRefused { error: String },
    /// `revision`'s desired state is invalid (every error, with file:line:column).
    Invalid { revision: String, errors: String },
    /// A drift repair did not bring the host back to health (a verdict; the next successful
    /// repair clears it).
    RepairFailed { error: String },
    /// A new revision waits for its rollout gates or a deploy window.
    Waiting { why: String },
    /// A host this one waits on rolled the revision back or failed it.
    Held { why: String },
    /// `agentd --dry-run` judged the desired revision (`valid` or not).
    DryRun { valid: bool, message: String },
    /// A fault of the host or network is in force (`state.fault` says since when).
    Fault { message: String },
    /// The host runs what it should, and the checks run after the gate fail for these
    /// resources (one line each: resource, check, why), `retries` times in a row. `behind`:
    /// the `Waiting` or `Held` it covers (a host that waits at a rollout gate runs what it
    /// ran, and is watched like any other), put back when the checks pass again.
    Unhealthy {
        resources: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        behind: Option<Box<Reason>>,
    },
}

impl Reason {
    /// The phase this reason puts the host in.
    pub fn phase(&self) -> Phase {
        match self {
            Reason::Synced | Reason::DriftReported { .. } => Phase::Synced,
            Reason::DryRun { valid: true, .. } => Phase::Synced,
            Reason::DryRun { valid: false, .. } => Phase::Invalid,
            Reason::Progressing { .. } => Phase::Progressing,
            Reason::Pinned { .. } => Phase::Paused,
            Reason::RolledBack { .. } => Phase::RolledBack,
            Reason::FailedUntouched { .. }
            | Reason::FailedNoLastGood { .. }
            | Reason::LastGoodFailed { .. }
            | Reason::RevertFailed { .. }
            | Reason::SignatureRefused { .. } => Phase::Failed,
            Reason::Invalid { .. } => Phase::Invalid,
            Reason::RepairFailed { .. } | Reason::Fault { .. } | Reason::Unhealthy { .. } => Phase::Degraded,
            Reason::Waiting { .. } => Phase::Waiting,
            Reason::Held { .. } => Phase::Held,
        }
    }

    /// What `status` says about it (`None`: nothing to say).
    pub fn message(&self) -> Option<String> {
        use crate::revision::short;
        let retry = "it is not retried until a newer revision appears or agentctl sync --retry";
        Some(match self {
            Reason::Synced => return None,
            Reason::DriftReported { drift } => format!("drift (not repaired, drift: report): {}", drift.join("; ")),
            Reason::Progressing { revision } => format!("applying {}", short(revision)),
            Reason::Pinned { revision } => {
                format!("pinned to {} by agentctl rollback; agentctl resume follows the source again", short(revision))
            }
            Reason::RolledBack { failed, to, why } => {
                format!("revision {} failed: {why}; rolled back to {}; {retry}", short(failed), short(to))
            }
            Reason::FailedUntouched { revision, runs, why } => {
                let runs = match runs {
                    Some(a) => format!("the host still runs {}", short(a)),
                    None => "nothing of it runs".to_string(),
                };
                format!("revision {} failed before anything was changed: {why}; {runs}; {retry}", short(revision))
            }
            Reason::FailedNoLastGood { revision, why } => {
                format!("revision {} failed and there is no last good revision to roll back to: {why}", short(revision))
            }
            Reason::LastGoodFailed { revision, why } => format!(
                "the last good revision {} failed too: {why}; the host needs an operator (see docs/operations.md)",
                short(revision)
            ),
            Reason::RevertFailed { failed, to, why, error } => {
                format!("revision {} failed: {why}; rolling back to {} failed too: {error}", short(failed), short(to))
            }
            Reason::SignatureRefused { error } => error.clone(),
            Reason::Invalid { revision, errors } => {
                format!("revision {} is invalid and was not applied:\n{errors}", short(revision))
            }
            Reason::RepairFailed { error } => format!("drift repair did not bring the host back to health: {error}"),
            Reason::Waiting { why } | Reason::Held { why } => why.clone(),
            Reason::DryRun { message, .. } | Reason::Fault { message } => message.clone(),
            Reason::Unhealthy { resources, behind } => {
                let mut m = format!(
                    "health after the gate: {}; the host keeps running it (a revision that passed its gate is not reverted for it) and is {} again when every check passes",
                    resources.join("; "),
                    behind.as_ref().map_or(Phase::Synced, |b| b.phase())
                );
                if let Some(why) = behind.as_ref().and_then(|b| b.message()) {
                    m.push_str(&format!("; meanwhile: {why}"));
                }
                m
            }
        })
    }
}

/// One resource's health as the metrics last said it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceHealth {
    pub kind: String,
    pub name: String,
    pub healthy: bool,
}

/// A fault in force: what is wrong, and where the host stood before it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultNote {
    /// The fault, worded for the operator (also the status message while it lasts).
    pub message: String,
    /// When it was first met in this streak.
    pub since: String,
    /// Cycles in a row that met a fault.
    pub cycles: u32,
    /// Why the host was where it was before the fault, restored when it clears.
    pub reason_before: Option<Reason>,
}

/// What a journal is the record of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalOp {
    /// Applying a new revision.
    Apply,
    /// Putting the host back on the last good revision.
    Revert,
    /// Putting back what drifted from the applied revision.
    Repair,
    /// Restoring data from a snapshot.
    Restore,
}

impl std::fmt::Display for JournalOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JournalOp::Apply => "apply",
            JournalOp::Revert => "revert",
            JournalOp::Repair => "repair",
            JournalOp::Restore => "restore",
        })
    }
}

/// The apply or revert in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    /// `apply` a new revision, `revert` to the last good one, `repair` drift.
    pub operation: JournalOp,
    pub revision: String,
    pub started: String,
    /// Steps done so far, newest last: `replace Container/web`.
    pub done: Vec<String>,
    /// The step about to run.
    pub next: Option<String>,
    /// For a revert: the revision that failed, and why (recorded when the revert finishes).
    #[serde(default)]
    pub failed: Option<String>,
    #[serde(default)]
    pub why: Option<String>,
    /// For a revert that undoes an interrupted apply or repair because something else was
    /// asked (a newer revision, `agentctl rollback`, `sync --retry`): the revision whose
    /// apply it undoes. That revision is not failed (a fault kept it from finishing, never a
    /// verdict).
    #[serde(default)]
    pub superseded: Option<String>,
    /// The data step in flight, if any (a snapshot's held containers, a restore's source).
    #[serde(default)]
    pub data: Option<DataStep>,
    /// A restore by hand (`agentctl restore`, `rollback --restore-data`): the snapshots it
    /// puts back, and those it put back already.
    #[serde(default)]
    pub restores: Vec<String>,
    #[serde(default)]
    pub restored: Vec<String>,
    /// A restore by hand: snapshot id → the snapshot of the data it replaced.
    #[serde(default)]
    pub kept: std::collections::BTreeMap<String, String>,
}

impl Journal {
    /// A fresh journal of `operation` towards `revision`, nothing done yet.
    pub fn new(operation: JournalOp, revision: &str) -> Journal {
        Journal {
            version: STATE_VERSION,
            operation,
            revision: revision.to_string(),
            started: now_rfc3339(),
            done: Vec::new(),
            next: None,
            failed: None,
            why: None,
            superseded: None,
            data: None,
            restores: Vec::new(),
            restored: Vec::new(),
            kept: Default::default(),
        }
    }
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: cannot read the agent's state: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{path}: the agent's state is corrupt ({detail}); move it aside to start afresh (the host is not touched)"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: cannot write the agent's state: {source}; check free space and permissions of state_dir")]
    Write { path: PathBuf, source: std::io::Error },
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Now, in milliseconds since the epoch (0 before it).
pub fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// An RFC 3339 time (as `now_rfc3339` writes it) in seconds since the epoch; `None` when it
/// does not parse.
pub fn unix_seconds(rfc3339: &str) -> Option<u64> {
    humantime::parse_rfc3339(rfc3339).ok()?.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// The files under `state_dir`.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.json")
    }

    pub fn load(&self) -> Result<AgentState, StateError> {
        match read_json::<AgentState>(&self.state_path())? {
            Some(s) => Ok(s),
            None => Ok(AgentState { version: STATE_VERSION, ..Default::default() }),
        }
    }

    pub fn save(&self, s: &AgentState) -> Result<(), StateError> {
        write_json(&self.state_path(), s)
    }

    pub fn journal(&self) -> Result<Option<Journal>, StateError> {
        read_json(&self.journal_path())
    }

    pub fn write_journal(&self, j: &Journal) -> Result<(), StateError> {
        write_json(&self.journal_path(), j)
    }

    pub fn clear_journal(&self) -> Result<(), StateError> {
        let p = self.journal_path();
        match std::fs::remove_file(&p) {
            Ok(()) => crate::fsutil::fsync_dir(&self.dir).map_err(|e| StateError::Write { path: p, source: e }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Write { path: p, source: e }),
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Read { path: path.to_path_buf(), source: e }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(v)
        .map_err(|e| StateError::Write { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) })?;
    write_atomic(path, &bytes).map_err(|e| StateError::Write { path: path.to_path_buf(), source: e })
}

impl AgentState {
    /// Add a history entry, newest first, keeping at most `limit`.
    pub fn record(&mut self, entry: HistoryEntry, limit: usize) {
        self.history.push_front(entry);
        self.history.truncate(limit.max(1));
    }

    pub fn mark_failed(&mut self, revision: &str) {
        if !self.failed.iter().any(|f| f == revision) {
            self.failed.push(revision.to_string());
        }
        // Bounded like the history: old failures matter less than the last ones.
        if self.failed.len() > 100 {
            self.failed.remove(0);
        }
    }
}

/// `held` as written now (a list of pairs) or by an older agent (one pair, or `null`).
fn held_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Held {
        Many(Vec<(String, String)>),
        One((String, String)),
        None(()),
    }
    Ok(match Held::deserialize(d)? {
        Held::Many(v) => v,
        Held::One(p) => vec![p],
        Held::None(()) => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every reason (a new variant fails to compile here until it is added, and then
    /// fails the doc test until docs/architecture.md has its row).
    fn every_reason() -> Vec<Reason> {
        let s = String::new;
        let all = vec![
            Reason::Synced,
            Reason::DriftReported { drift: vec![] },
            Reason::Progressing { revision: s() },
            Reason::Pinned { revision: s() },
            Reason::RolledBack { failed: s(), to: s(), why: s() },
            Reason::FailedUntouched { revision: s(), runs: None, why: s() },
            Reason::FailedNoLastGood { revision: s(), why: s() },
            Reason::LastGoodFailed { revision: s(), why: s() },
            Reason::RevertFailed { failed: s(), to: s(), why: s(), error: s() },
            Reason::SignatureRefused { error: s() },
            Reason::Invalid { revision: s(), errors: s() },
            Reason::RepairFailed { error: s() },
            Reason::Waiting { why: s() },
            Reason::Held { why: s() },
            Reason::DryRun { valid: true, message: s() },
            Reason::DryRun { valid: false, message: s() },
            Reason::Fault { message: s() },
            Reason::Unhealthy { resources: vec![], behind: None },
        ];
        for r in &all {
            match r {
                Reason::Synced
                | Reason::DriftReported { .. }
                | Reason::Progressing { .. }
                | Reason::Pinned { .. }
                | Reason::RolledBack { .. }
                | Reason::FailedUntouched { .. }
                | Reason::FailedNoLastGood { .. }
                | Reason::LastGoodFailed { .. }
                | Reason::RevertFailed { .. }
                | Reason::SignatureRefused { .. }
                | Reason::Invalid { .. }
                | Reason::RepairFailed { .. }
                | Reason::Unhealthy { .. }
                | Reason::Waiting { .. }
                | Reason::Held { .. }
                | Reason::DryRun { .. }
                | Reason::Fault { .. } => {}
            }
        }
        all
    }

    /// docs/architecture.md's table of phases is `Reason::phase`, row by row.
    #[test]
    fn the_phase_table_is_reason_phase() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/architecture.md")).unwrap();
        let table = doc.split("<!-- phases:begin -->").nth(1).and_then(|t| t.split("<!-- phases:end -->").next());
        let rows: Vec<(String, String)> = table
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].replace('`', ""), cells[2].replace('`', ""))
            })
            .collect();
        let all = every_reason();
        assert_eq!(rows.len(), all.len(), "one row per reason: {rows:?}");
        for r in all {
            let tag = serde_json::to_value(&r).unwrap()["reason"].as_str().unwrap().to_string();
            let key = match r {
                Reason::DryRun { valid, .. } => format!("{tag} ({})", if valid { "valid" } else { "invalid" }),
                _ => tag,
            };
            let row = rows.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("no row for {key}: {rows:?}"));
            assert_eq!(row.1, r.phase().to_string(), "{key}");
        }
    }

    #[test]
    fn journals_from_before_the_enum_still_read() {
        let old = r#"{"version":1,"operation":"revert","revision":"r","started":"t","done":[],"next":null,"failed":"f","why":"w"}"#;
        let j: Journal = serde_json::from_str(old).unwrap();
        assert_eq!((j.operation, j.superseded), (JournalOp::Revert, None));
        assert_eq!(serde_json::to_value(Journal::new(JournalOp::Apply, "r")).unwrap()["operation"], "apply");
    }

    #[test]
    fn round_trip_and_bounded_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut s = store.load().unwrap();
        assert_eq!(s.version, STATE_VERSION);
        for i in 0..5 {
            s.record(
                HistoryEntry {
                    started: now_rfc3339(),
                    finished: now_rfc3339(),
                    revision: Some(format!("r{i}")),
                    result: Outcome::Applied,
                    changes: vec![],
                    message: String::new(),
                    duration_ms: 1,
                    trigger: None,
                    diagnostics: vec![],
                    commit: None,
                },
                3,
            );
        }
        store.save(&s).unwrap();
        let back = store.load().unwrap();
        assert_eq!(back.history.len(), 3);
        assert_eq!(back.history[0].revision.as_deref(), Some("r4"), "newest first");
        std::fs::write(dir.path().join("state.json"), b"{ not json").unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn held_reads_as_an_older_agent_wrote_it() {
        for (json, want) in [
            (
                r#"{"held": ["abc", "canary rolled it back"]}"#,
                vec![("abc".to_string(), "canary rolled it back".to_string())],
            ),
            (r#"{"held": null}"#, vec![]),
            (r#"{"held": [["a", "x"], ["b", "y"]]}"#, vec![("a".into(), "x".into()), ("b".into(), "y".into())]),
        ] {
            let s: AgentState = serde_json::from_str(json).unwrap_or_default();
            assert_eq!(s.held, want, "{json}");
        }
    }
}
