//! The report format (PRODUCT.md "One report format"): what a host pushes to
//! `refs/driftless/hosts/<host>` — `status.json` ([`ReportStatus`]: what `agentctl status
//! --json` prints, with `report_format` and `report_interval_seconds`) and `outcomes.json` (a
//! list of [`OutcomeRecord`]) — and the one parser every reader uses ([`HostReport::parse`]).
//! The writer (`fleet::reporter`) and the readers (`agentctl fleet`, the rollout gates) share
//! these types; readers match on `Phase` and `Outcome`, never on strings.
//!
//! Versioned: a report whose `report_format` this build does not know is named, never
//! guessed at. A report without the key was written before it existed, in the same shape,
//! and reads as version 1. The JSON Schemas in `dist/report/` are generated from these types
//! (`tests/dist.rs` keeps them current).

use serde::{Deserialize, Serialize};

use crate::state::{Outcome, Phase};
use crate::wire::StatusView;

/// The version of the format this build writes and reads.
pub const REPORT_FORMAT: u32 = 1;

/// How many outcomes a report carries (and, beyond them, the newest `applied` outcome of
/// each other revision the history holds, up to twice as many).
pub const OUTCOMES: usize = 50;

/// A report older than this many of its host's intervals is stale: `agentctl fleet` marks
/// it, and the rollout gates do not count it.
pub const STALE_INTERVALS: u64 = 3;

/// The interval assumed of a report that does not say its own (the default `report.interval`).
pub const DEFAULT_INTERVAL_SECONDS: u64 = 300;

fn format_one() -> u32 {
    REPORT_FORMAT
}

fn default_interval() -> u64 {
    DEFAULT_INTERVAL_SECONDS
}

/// `status.json`: the host's status as `agentctl status --json` prints it, and two keys of
/// the report's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportStatus {
    /// The version of this format (1).
    #[serde(default = "format_one")]
    pub report_format: u32,
    /// The host's `report.interval`, in seconds: a reader counts a report older than three
    /// of them as stale.
    #[serde(default = "default_interval")]
    pub report_interval_seconds: u64,
    /// What `agentctl status --json` prints.
    #[serde(flatten)]
    pub status: StatusView,
}

/// One outcome in `outcomes.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutcomeRecord {
    /// The revision (a full commit id).
    pub revision: String,
    /// What happened to it (as in `agentctl history`).
    pub result: Outcome,
    /// When the outcome was reached (RFC 3339).
    pub at: String,
    /// Until when the revision ran healthy as the outcome left it: the first of a drift
    /// repair, a rollback, another revision applied, or a moment it was seen unhealthy or
    /// `Degraded`; `null` while none of these happened.
    pub until: Option<String>,
}

/// One host's report, read and typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostReport {
    /// What `agentctl status --json` printed on the host.
    pub status: StatusView,
    /// `status.phase`, typed.
    pub phase: Phase,
    /// Its report interval, in seconds (at least 1).
    pub interval: u64,
    /// Its outcomes, newest first.
    pub outcomes: Vec<OutcomeRecord>,
}

impl HostReport {
    /// Read a report from the bytes of its two files; `Err` names what cannot be read (a file
    /// that is not JSON, a format version this build does not know, an unknown phase).
    pub fn parse(status: &[u8], outcomes: &[u8]) -> Result<HostReport, String> {
        let value: serde_json::Value =
            serde_json::from_slice(status).map_err(|e| format!("status.json is not JSON: {e}"))?;
        if let Some(v) = value.get("report_format") {
            match v.as_u64() {
                Some(n) if n == u64::from(REPORT_FORMAT) => {}
                Some(n) => {
                    return Err(format!(
                        "status.json: report_format {n}, which this build (driftless {}) does not read (it reads {REPORT_FORMAT}); upgrade it to read this host's report",
                        env!("CARGO_PKG_VERSION")
                    ))
                }
                None => return Err(format!("status.json: report_format {v} is not a version number")),
            }
        }
        let s: ReportStatus =
            serde_json::from_value(value).map_err(|e| format!("status.json is not a report of format 1: {e}"))?;
        let phase: Phase = serde_json::from_value(serde_json::Value::String(s.status.phase.clone()))
            .map_err(|_| format!("status.json: unknown phase {:?}", s.status.phase))?;
        let outcomes: Vec<OutcomeRecord> =
            serde_json::from_slice(outcomes).map_err(|e| format!("outcomes.json is not a list of outcomes: {e}"))?;
        Ok(HostReport { status: s.status, phase, interval: s.report_interval_seconds.max(1), outcomes })
    }

    /// The bytes of `status.json` for `status`, pushed every `interval_seconds`.
    pub fn status_json(status: &StatusView, interval_seconds: u64) -> Vec<u8> {
        let s = ReportStatus {
            report_format: REPORT_FORMAT,
            report_interval_seconds: interval_seconds,
            status: status.clone(),
        };
        serde_json::to_vec_pretty(&s).unwrap_or_default()
    }

    /// The outcomes of `revision` (a full id, or a prefix of one), newest first.
    pub fn outcomes_of<'a>(&'a self, revision: &'a str) -> impl Iterator<Item = &'a OutcomeRecord> + 'a {
        self.outcomes.iter().filter(move |o| !revision.is_empty() && o.revision.starts_with(revision))
    }
}

/// The JSON Schemas of `status.json` and `outcomes.json` (shipped in `dist/report/`).
pub fn schemas() -> [(&'static str, serde_json::Value); 2] {
    let status = schemars::schema_for!(ReportStatus);
    let outcomes = schemars::schema_for!(Vec<OutcomeRecord>);
    [("status", status.to_value()), ("outcomes", outcomes.to_value())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_once_and_an_unknown_format_is_named() {
        let ok = HostReport::parse(
            br#"{"report_format": 1, "report_interval_seconds": 10, "phase": "Degraded", "host": "web-1"}"#,
            br#"[{"revision": "c1", "result": "rolled_back", "at": "2026-12-01T00:00:00Z", "until": null}]"#,
        )
        .unwrap();
        assert_eq!((ok.phase, ok.interval, ok.outcomes[0].result), (Phase::Degraded, 10, Outcome::RolledBack));
        let older = HostReport::parse(br#"{"phase": "Synced"}"#, b"[]").unwrap();
        assert_eq!(older.interval, DEFAULT_INTERVAL_SECONDS, "written before report_format: read as 1");
        let e = HostReport::parse(br#"{"report_format": 2, "phase": "Synced"}"#, b"[]").unwrap_err();
        assert!(e.contains("report_format 2") && e.contains("upgrade"), "{e}");
        let e = HostReport::parse(br#"{"phase": "Sleeping"}"#, b"[]").unwrap_err();
        assert!(e.contains("unknown phase \"Sleeping\""), "{e}");
        let e = HostReport::parse(
            br#"{"phase": "Synced"}"#,
            br#"[{"revision": "c", "result": "exploded", "at": "", "until": null}]"#,
        )
        .unwrap_err();
        assert!(e.starts_with("outcomes.json"), "{e}");
    }

    #[test]
    fn what_is_written_reads_back() {
        let status = StatusView { host: "web-1".into(), phase: "Synced".into(), ..Default::default() };
        let r = HostReport::parse(&HostReport::status_json(&status, 60), b"[]").unwrap();
        assert_eq!((r.status, r.interval, r.phase), (status, 60, Phase::Synced));
    }
}
