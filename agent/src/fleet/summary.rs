//! `agentctl fleet` (PRODUCT.md "Fleets"): every host's last report, read from Git in one
//! fetch, judged (signed by the host its ref names? readable? stale?) and summed up per host.
//! No agent needed: the report repository and a signers file are all it reads.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::AuthConfig;
use crate::report_format::HostReport;
use crate::source::report::Report;
use crate::source::{GitSource, SourceError};
use crate::state::{Outcome, Phase};

pub use crate::report_format::STALE_INTERVALS;
/// The interval assumed when a report cannot be read.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(crate::report_format::DEFAULT_INTERVAL_SECONDS);

/// One host's row (`agentctl fleet --json` prints a list of them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub host: String,
    pub environment: Option<String>,
    pub phase: String,
    pub applied_revision: Option<String>,
    pub last_good_revision: Option<String>,
    /// Resources reported healthy.
    pub healthy: usize,
    /// Resources reported.
    pub resources: usize,
    /// When the report was made (RFC 3339).
    pub reported_at: String,
    /// Older than three of the host's report intervals.
    pub stale: bool,
    /// Signed by the host its ref names, per the signers file.
    pub verified: bool,
    /// Why the report is not verified or cannot be read (`null` when it is fine).
    pub problem: Option<String>,
    /// With `--revision`: where that revision stands on this host (`applied`, `applying`,
    /// `waiting`, `held`, `rolled back`, `failed`, `replaced`, `not seen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl Row {
    /// Whether this row makes `agentctl fleet` exit 1.
    pub fn is_bad(&self) -> bool {
        self.stale || !self.verified || matches!(self.phase.as_str(), "Failed" | "Invalid" | "RolledBack" | "unknown")
    }
}

/// Fetch every report from `url` into `scratch` (one fetch) and judge each.
pub fn read(
    url: &str,
    auth: Option<AuthConfig>,
    scratch: &Path,
    signers: Option<&Path>,
) -> Result<Vec<Report>, SourceError> {
    let src = GitSource::for_reports(url, auth, scratch.join("reports.git"));
    src.read_reports(signers.map(crate::source::report::Signers::load).as_ref())
}

/// The rows of `reports` (sorted by host), `now` being the time they are judged at.
pub fn rows(reports: &[Report], revision: Option<&str>, now: SystemTime) -> Vec<Row> {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut rows: Vec<Row> = reports.iter().map(|r| row(r, revision, now)).collect();
    rows.sort_by(|a, b| a.host.cmp(&b.host));
    rows
}

fn row(r: &Report, revision: Option<&str>, now: u64) -> Row {
    let report = r.content.as_ref().ok();
    let status = report.map(|h| &h.status);
    let interval = report.map_or(DEFAULT_INTERVAL, |h| Duration::from_secs(h.interval));
    let age = now.saturating_sub(u64::try_from(r.time).unwrap_or(0));
    // Both, when both are wrong: a signature by the wrong key on garbage says so twice.
    let mut problems: Vec<&str> =
        [r.verified.as_ref().err(), r.content.as_ref().err()].into_iter().flatten().map(String::as_str).collect();
    problems.dedup();
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    let resources = status.map(|s| s.resources.as_slice()).unwrap_or_default();
    Row {
        host: r.host.clone(),
        environment: status.and_then(|s| s.environment.clone()),
        phase: report.map_or_else(|| "unknown".into(), |h| h.phase.to_string()),
        applied_revision: status.and_then(|s| s.applied_revision.clone()),
        last_good_revision: status.and_then(|s| s.last_good_revision.clone()),
        healthy: resources.iter().filter(|x| x.health == "healthy").count(),
        resources: resources.len(),
        reported_at: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(r.time.max(0) as u64))
            .to_string(),
        stale: age > interval.as_secs() * STALE_INTERVALS,
        verified: r.verified.is_ok() && r.content.is_ok(),
        problem,
        revision: revision.map(|rev| report.map_or_else(|| "not seen".into(), |h| where_is(rev, h))),
    }
}

/// Where revision `rev` (a full id or a prefix of one) stands on a host.
pub fn where_is(rev: &str, report: &HostReport) -> String {
    let is = |v: Option<&String>| v.is_some_and(|s| !rev.is_empty() && s.starts_with(rev));
    let status = &report.status;
    if is(status.applied_revision.as_ref()) {
        return if report.phase == Phase::Progressing { "applying" } else { "applied" }.into();
    }
    let results: Vec<Outcome> = report.outcomes_of(rev).map(|o| o.result).collect();
    if results.contains(&Outcome::RolledBack) {
        return "rolled back".into();
    }
    if status.failed_revisions.iter().any(|f| is(Some(f))) || results.contains(&Outcome::Failed) {
        return "failed".into();
    }
    if is(status.desired_revision.as_ref()) {
        return match report.phase {
            Phase::Waiting => "waiting",
            Phase::Held => "held",
            Phase::Progressing => "applying",
            _ => "desired",
        }
        .into();
    }
    if results.contains(&Outcome::Applied) {
        return "replaced".into();
    }
    "not seen".into()
}

/// The signers file and URL `agentctl fleet` uses: its flags, else the agent config's.
pub fn defaults(config: Option<&crate::config::Config>) -> (Option<String>, Option<AuthConfig>, Option<PathBuf>) {
    let report = config.and_then(|c| c.report.as_ref());
    (
        report.map(|r| r.url.clone()),
        report.and_then(|r| r.auth.clone()),
        config.and_then(|c| c.rollout.as_ref()).and_then(|r| r.signers.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(status: serde_json::Value, outcomes: serde_json::Value) -> HostReport {
        HostReport::parse(&serde_json::to_vec(&status).unwrap(), &serde_json::to_vec(&outcomes).unwrap()).unwrap()
    }

    #[test]
    fn where_a_revision_stands() {
        let st = |phase: &str, applied: &str, desired: &str| json!({"phase": phase, "applied_revision": applied, "desired_revision": desired, "failed_revisions": []});
        let none = json!([]);
        let w = |rev: &str, s: serde_json::Value, o: &serde_json::Value| where_is(rev, &host(s, o.clone()));
        assert_eq!(w("c2", st("Synced", "c2aa", "c2aa"), &none), "applied");
        assert_eq!(w("c2", st("Waiting", "c1", "c2aa"), &none), "waiting");
        assert_eq!(w("c2", st("Held", "c1", "c2aa"), &none), "held");
        let rolled = json!([{"revision": "c2aa", "result": "rolled_back", "at": "", "until": null}]);
        assert_eq!(w("c2", st("RolledBack", "c1", "c2aa"), &rolled), "rolled back");
        let replaced = json!([{"revision": "c3", "result": "applied", "at": "", "until": null}, {"revision": "c2aa", "result": "applied", "at": "", "until": null}]);
        assert_eq!(w("c2", st("Synced", "c3", "c3"), &replaced), "replaced");
        assert_eq!(w("c9", st("Synced", "c3", "c3"), &replaced), "not seen");
    }

    #[test]
    fn stale_unverified_and_unreadable_reports_are_bad() {
        let now = SystemTime::now();
        let t = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let status = json!({"phase": "Synced", "environment": "production", "report_interval_seconds": 10,
                            "resources": [{"health": "healthy"}, {"health": "unknown"}]});
        let good = Report {
            key: None,
            host: "web-1".into(),
            commit: "c".into(),
            time: t - 5,
            verified: Ok(()),
            content: Ok(host(status.clone(), json!([]))),
        };
        let r = &rows(std::slice::from_ref(&good), None, now)[0];
        assert!(!r.is_bad(), "{r:?}");
        assert_eq!((r.healthy, r.resources), (1, 2));
        let old = Report { time: t - 31, ..good.clone() };
        assert!(rows(&[old], None, now)[0].stale);
        let forged = Report { verified: Err("not signed by a key allowed for web-1".into()), ..good.clone() };
        let r = &rows(&[forged], None, now)[0];
        assert!(!r.verified && r.is_bad());
        let garbage = Report { content: Err("status.json is not JSON".into()), ..good };
        let r = &rows(&[garbage], None, now)[0];
        assert!(r.is_bad());
        assert_eq!(r.problem.as_deref(), Some("status.json is not JSON"));
    }
}
