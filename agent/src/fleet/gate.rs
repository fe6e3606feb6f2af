//! Rollout gates (PRODUCT.md "Fleets", `rollout.after`): whether this host may apply a new
//! desired revision, judged from other hosts' reports — pure (reports and the time in, a
//! decision out), so that the reconciler's one fetch of the reports is its only I/O.
//!
//! For every entry of `rollout.after`, at least `min` matching hosts (distinct signing keys)
//! must report that same commit run healthy for `healthy_for` without a break: from when it
//! passed its gate there until the end the reporter recorded (a drift repair, a Degraded
//! phase or unhealthy resource, a rollback, a newer revision), or until the report if the
//! host still runs it healthy now. A matching host that rolled the revision back or failed
//! it holds it here for good (`Held`); otherwise the host waits (`Waiting`). Only reports
//! signed by the host their ref names count, and only fresh ones by this host's clock (no
//! older than three of their intervals, not dated over a minute ahead, never older than one
//! seen before for that host: a replay); this host's own report never does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{parse_hours, AfterRule, Day, WindowConfig};
use crate::report_format::{HostReport, OutcomeRecord, STALE_INTERVALS};
use crate::revision::short;
use crate::source::report::Report;
use crate::state::unix_seconds;
use crate::state::Outcome;

/// Whether `now` is inside one of `windows` (none: always); else which windows there are and
/// the time now in the first one's zone. Overnight ranges (`22:00-02:00`) belong to the day
/// they start on.
pub fn window_open(windows: &[WindowConfig], now: jiff::Timestamp) -> Result<(), String> {
    if windows.is_empty() {
        return Ok(());
    }
    let mut shown = Vec::new();
    let mut local_now = String::new();
    for w in windows {
        let (Ok((start, end)), Ok(tz)) = (parse_hours(&w.hours), jiff::tz::TimeZone::get(&w.tz)) else {
            continue; // refused when the config was read
        };
        let zoned = now.to_zoned(tz);
        let minute = u32::try_from(zoned.hour()).unwrap_or(0) * 60 + u32::try_from(zoned.minute()).unwrap_or(0);
        let today = day_of(zoned.weekday());
        let yesterday = day_of(zoned.weekday().previous());
        let on = |d: Day| w.days.is_empty() || w.days.contains(&d);
        let inside = if start < end {
            on(today) && start <= minute && minute < end
        } else {
            (on(today) && minute >= start) || (on(yesterday) && minute < end)
        };
        if inside {
            return Ok(());
        }
        if local_now.is_empty() {
            local_now = format!("{:?} {:02}:{:02} {}", today, zoned.hour(), zoned.minute(), w.tz).to_lowercase();
        }
        let days = if w.days.is_empty() {
            "every day".to_string()
        } else {
            w.days.iter().map(|d| format!("{d:?}").to_lowercase()).collect::<Vec<_>>().join(", ")
        };
        shown.push(format!("{days} {} {}", w.hours, w.tz));
    }
    Err(format!("waiting for a deploy window ({}); now it is {local_now}", shown.join("; ")))
}

fn day_of(w: jiff::civil::Weekday) -> Day {
    use jiff::civil::Weekday as W;
    match w {
        W::Monday => Day::Mon,
        W::Tuesday => Day::Tue,
        W::Wednesday => Day::Wed,
        W::Thursday => Day::Thu,
        W::Friday => Day::Fri,
        W::Saturday => Day::Sat,
        W::Sunday => Day::Sun,
    }
}

/// What the gates say of a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every entry is met: apply.
    Open,
    /// Not yet: why (which entry, what it waits for).
    Waiting(String),
    /// A host it waits on rolled the revision back or failed it: which host and why.
    Held(String),
}

/// What `rule` asks for, for people.
pub fn describe(rule: &AfterRule) -> String {
    let who = match (&rule.environment, rule.hosts.is_empty()) {
        (Some(e), _) => format!("environment {e}"),
        (None, false) => format!("host(s) {}", rule.hosts.join(", ")),
        (None, true) => "no host".to_string(),
    };
    format!("{} of {who} healthy for {}", rule.min, rule.healthy_for)
}

/// How far ahead of the reader's clock a report may be dated.
const AHEAD: u64 = 60;

/// Why a verified report does not count at `now`, if it does not: a replay (older than the
/// newest one seen for its host), stale (older than three of its intervals), or dated ahead.
fn untimely(r: &Report, report: &HostReport, seen: &BTreeMap<String, i64>, now: u64) -> Option<String> {
    let time = u64::try_from(r.time).unwrap_or(0);
    if seen.get(&r.host).is_some_and(|newest| *newest > r.time) {
        return Some(format!("{}: replayed (older than a report of it seen before)", r.host));
    }
    let interval = report.interval;
    if now.saturating_sub(time) > STALE_INTERVALS * interval {
        return Some(format!(
            "{}: stale (its last report is {}s old, over three of its {interval}s intervals)",
            r.host,
            now.saturating_sub(time)
        ));
    }
    if time > now + AHEAD {
        return Some(format!("{}: dated {}s ahead of this host's clock", r.host, time - now));
    }
    None
}

/// Judge `revision` for host `me` against `rules` with `reports` (read at `now`); `seen`: the
/// newest report time this host has seen of each other host (an older one is a replay).
pub fn judge(
    rules: &[AfterRule],
    me: &str,
    revision: &str,
    reports: &[Report],
    seen: &BTreeMap<String, i64>,
    now: SystemTime,
) -> Decision {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut waiting = Vec::new();
    for rule in rules {
        let matching: Vec<&Report> = reports
            .iter()
            .filter(|r| r.host != me)
            .filter(|r| match &rule.environment {
                Some(e) => r.content.as_ref().is_ok_and(|h| h.status.environment.as_ref() == Some(e)),
                None => rule.hosts.contains(&r.host),
            })
            .collect();
        let unverified: Vec<&str> =
            matching.iter().filter(|r| r.verified.is_err() || r.content.is_err()).map(|r| r.host.as_str()).collect();
        let counted: Vec<&Report> =
            matching.iter().copied().filter(|r| r.verified.is_ok() && r.content.is_ok()).collect();
        // Distinct signing keys (a host's name when the key is not known): one key listed for
        // two host names counts once.
        let mut healthy: BTreeSet<&str> = BTreeSet::new();
        let mut progress = Vec::new();
        let mut untimely_hosts = Vec::new();
        for r in &counted {
            let Ok(report) = &r.content else { continue };
            let this = |o: &&OutcomeRecord| o.revision == revision;
            if let Some(bad) =
                report.outcomes.iter().filter(this).find(|o| matches!(o.result, Outcome::RolledBack | Outcome::Failed))
            {
                let result = if bad.result == Outcome::RolledBack { "rolled back" } else { "failed" };
                let why = report.status.message.as_deref().unwrap_or("its health gate failed");
                return Decision::Held(format!(
                    "held: {} {result} {} ({why}); this host does not apply it (a newer revision starts over)",
                    r.host,
                    short(revision)
                ));
            }
            if let Some(why) = untimely(r, report, seen, now) {
                untimely_hosts.push(why);
                continue;
            }
            // The newest time it passed its gate there, and until when it ran healthy since:
            // the end the reporter recorded (a drift repair, a Degraded phase, a failed check,
            // a rollback, a newer revision), else now if it still runs it healthy.
            let applied = report.outcomes.iter().filter(this).find(|o| o.result == Outcome::Applied);
            let Some(applied) = applied else {
                progress.push(format!("{}: not applied", r.host));
                continue;
            };
            let Some(since) = unix_seconds(&applied.at) else {
                progress.push(format!("{}: no time of applying", r.host));
                continue;
            };
            let runs = report.status.applied_revision.as_deref() == Some(revision);
            let until = match applied.until.as_deref() {
                Some(u) => unix_seconds(u).unwrap_or(since),
                None if runs && report.status.healthy_now() => u64::try_from(r.time).unwrap_or(0),
                None if runs => {
                    progress.push(format!("{}: runs it, not healthy now", r.host));
                    continue;
                }
                None => since,
            };
            let ran = Duration::from_secs(until.saturating_sub(since));
            if ran >= rule.healthy_for.as_std() {
                healthy.insert(r.key.as_deref().unwrap_or(r.host.as_str()));
            } else {
                progress.push(format!("{}: healthy for {}s", r.host, ran.as_secs()));
            }
        }
        if healthy.len() >= rule.min {
            continue;
        }
        let mut why = format!(
            "waiting for {}: {} of {} host(s) ran {} healthy for {} so far",
            match &rule.environment {
                Some(e) => format!("environment {e}"),
                None => format!("host(s) {}", rule.hosts.join(", ")),
            },
            healthy.len(),
            rule.min,
            short(revision),
            rule.healthy_for
        );
        if counted.is_empty() {
            why.push_str(" (no such host has reported; check rollout.after and the hosts' report:)");
        } else if !progress.is_empty() {
            why.push_str(&format!(" ({})", progress.join(", ")));
        }
        if !untimely_hosts.is_empty() {
            why.push_str(&format!("; not counted: {}", untimely_hosts.join(", ")));
        }
        if !unverified.is_empty() {
            why.push_str(&format!("; not counted, not signed by the host their ref names: {}", unverified.join(", ")));
        }
        waiting.push(why);
    }
    if waiting.is_empty() {
        Decision::Open
    } else {
        Decision::Waiting(waiting.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(env: Option<&str>, hosts: &[&str], healthy_for: u64, min: usize) -> AfterRule {
        AfterRule {
            environment: env.map(str::to_string),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            healthy_for: desired_state_schema::Duration::from_secs(healthy_for),
            min,
        }
    }

    fn report(host: &str, env: &str, time: i64, status: serde_json::Value, outcomes: serde_json::Value) -> Report {
        let mut status = status;
        status["environment"] = json!(env);
        Report {
            host: host.into(),
            commit: "c".into(),
            time,
            verified: Ok(()),
            key: None,
            content: HostReport::parse(&serde_json::to_vec(&status).unwrap(), &serde_json::to_vec(&outcomes).unwrap()),
        }
    }

    const T0: i64 = 1_800_000_000;

    fn at(t: i64) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t as u64)).to_string()
    }

    fn window(days: &[Day], hours: &str, tz: &str) -> WindowConfig {
        WindowConfig { days: days.to_vec(), hours: hours.into(), tz: tz.into() }
    }

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn deploy_windows_in_their_own_time_zone() {
        let office = [window(&[Day::Mon, Day::Tue, Day::Wed, Day::Thu], "09:00-16:00", "Europe/Berlin")];
        // Wednesday 2026-12-02 10:00 in Berlin is 09:00 UTC (CET, +1).
        assert_eq!(window_open(&office, ts("2026-12-02T09:00:00Z")), Ok(()));
        assert!(window_open(&office, ts("2026-12-02T07:59:00Z")).is_err(), "08:59 in Berlin");
        assert!(window_open(&office, ts("2026-12-02T15:00:00Z")).is_err(), "16:00 in Berlin: closed");
        // Friday: closed all day.
        let why = window_open(&office, ts("2026-12-04T10:00:00Z")).unwrap_err();
        assert!(why.contains("mon, tue, wed, thu 09:00-16:00 Europe/Berlin") && why.contains("fri 11:00"), "{why}");
        // Summer time: 09:00 in Berlin is 07:00 UTC (CEST, +2) on Wednesday 2026-07-01.
        assert_eq!(window_open(&office, ts("2026-07-01T07:00:00Z")), Ok(()));
        assert!(window_open(&office, ts("2026-07-01T06:59:00Z")).is_err());
        // Overnight: Friday 22:00 to Saturday 02:00 belongs to Friday.
        let night = [window(&[Day::Fri], "22:00-02:00", "UTC")];
        assert_eq!(window_open(&night, ts("2026-12-04T23:30:00Z")), Ok(()));
        assert_eq!(window_open(&night, ts("2026-12-05T01:59:00Z")), Ok(()), "Saturday 01:59, Friday's window");
        assert!(window_open(&night, ts("2026-12-05T23:30:00Z")).is_err(), "Saturday night is not Friday's");
        // No windows: always; several: any of them.
        assert_eq!(window_open(&[], ts("2026-12-05T23:30:00Z")), Ok(()));
        let both = [night[0].clone(), window(&[], "00:00-24:00", "Asia/Tokyo")];
        assert_eq!(window_open(&both, ts("2026-12-05T12:00:00Z")), Ok(()));
    }

    fn judge(rules: &[AfterRule], me: &str, revision: &str, reports: &[Report], now: SystemTime) -> Decision {
        super::judge(rules, me, revision, reports, &BTreeMap::new(), now)
    }

    #[test]
    fn the_table() {
        let now = UNIX_EPOCH + Duration::from_secs(T0 as u64 + 1000);
        let synced = |rev: &str| json!({"phase": "Synced", "applied_revision": rev});
        let applied_at =
            |rev: &str, t: i64| json!([{"revision": rev, "result": "applied", "at": at(t), "until": null}]);
        let staging = [rule(Some("staging"), &[], 900, 1)];
        // Staging ran R for 20 minutes, reported a minute ago: open.
        let good = report("s1", "staging", T0 + 940, synced("R"), applied_at("R", T0 - 260));
        assert_eq!(judge(&staging, "p1", "R", std::slice::from_ref(&good), now), Decision::Open);
        // Only 5 minutes so far: waiting, saying so.
        let young = report("s1", "staging", T0 + 940, synced("R"), applied_at("R", T0 + 640));
        let Decision::Waiting(why) = judge(&staging, "p1", "R", &[young], now) else { panic!() };
        assert!(why.contains("0 of 1 host(s) ran R healthy for 15m") && why.contains("s1: healthy for 300s"), "{why}");
        // Staging never ran it: waiting.
        let other = report("s1", "staging", T0 + 940, synced("Q"), applied_at("Q", T0 - 2000));
        assert!(
            matches!(judge(&staging, "p1", "R", &[other], now), Decision::Waiting(w) if w.contains("s1: not applied"))
        );
        // Nobody reported: waiting, said so.
        assert!(
            matches!(judge(&staging, "p1", "R", &[], now), Decision::Waiting(w) if w.contains("no such host has reported"))
        );
        // Replaced by a newer revision after 20 minutes healthy: still counts.
        let replaced = json!([
            {"revision": "S", "result": "applied", "at": at(T0 + 900), "until": null},
            {"revision": "R", "result": "applied", "at": at(T0 - 300), "until": at(T0 + 900)}
        ]);
        let r = report("s1", "staging", T0 + 940, synced("S"), replaced);
        assert_eq!(judge(&staging, "p1", "R", &[r], now), Decision::Open);
        // The canary rolled it back: held, naming it.
        let canary = [rule(None, &["c1"], 600, 1)];
        let rolled = report(
            "c1",
            "production",
            T0 + 940,
            json!({"phase": "RolledBack", "applied_revision": "Q", "message": "health check failed"}),
            json!([{"revision": "R", "result": "rolled_back", "at": at(T0 + 900), "until": null}]),
        );
        let Decision::Held(why) = judge(&canary, "p1", "R", &[rolled], now) else { panic!() };
        assert!(why.contains("c1 rolled back R") && why.contains("health check failed"), "{why}");
        // A forged report (not signed by c1) does not count.
        let forged = Report { verified: Err("not signed by c1".into()), ..good.clone() };
        let forged = Report { host: "c1".into(), ..forged };
        assert!(matches!(judge(&canary, "p1", "R", &[forged], now), Decision::Waiting(w) if w.contains("not counted")));
        // Its own report never counts; min counts hosts.
        let two = [rule(Some("staging"), &[], 900, 2)];
        assert!(matches!(
            judge(&two, "s2", "R", &[good.clone(), Report { host: "s2".into(), ..good }], now),
            Decision::Waiting(_)
        ));
    }

    /// Evidence as PRODUCT.md "Fleets" states it, one row per case: a host counts for R only
    /// while its report is fresh by this host's clock and not a replay, only if it ran R
    /// healthy without a break for `healthy_for`, and — if it still runs R — only if it is
    /// healthy now; `min` counts signing keys.
    #[test]
    fn evidence_that_counts_and_evidence_that_does_not() {
        let now = UNIX_EPOCH + Duration::from_secs(T0 as u64 + 1000);
        let one = [rule(Some("staging"), &[], 900, 1)];
        let zero = [rule(Some("staging"), &[], 0, 1)];
        let runs = |phase: &str, health: &str| {
            json!({"phase": phase, "applied_revision": "R", "report_interval_seconds": 60,
                   "resources": [{"kind": "Container", "name": "web", "health": health}]})
        };
        let since = |t: i64, until: Option<i64>| json!([{"revision": "R", "result": "applied", "at": at(t), "until": until.map(at)}]);
        let waits = |d: Decision, want: &str| matches!(&d, Decision::Waiting(w) if w.contains(want));
        // Degraded now, or a resource unhealthy now, while it still runs R: not counted,
        // whatever it ran before, and even with healthy_for: 0s.
        for (phase, health) in [("Degraded", "healthy"), ("Synced", "unhealthy")] {
            let r = report("s1", "staging", T0 + 990, runs(phase, health), since(T0 - 2000, None));
            assert!(
                waits(judge(&one, "p1", "R", std::slice::from_ref(&r), now), "s1: runs it, not healthy now"),
                "{phase} {health}"
            );
            assert!(waits(judge(&zero, "p1", "R", &[r], now), "runs it, not healthy now"));
        }
        // A break the reporter recorded (a drift repair, a Degraded stretch between two Synced
        // reports) ends the span, though the host is healthy again now.
        let broken = report("s1", "staging", T0 + 990, runs("Synced", "healthy"), since(T0 - 2000, Some(T0 - 1700)));
        assert!(waits(judge(&one, "p1", "R", &[broken], now), "s1: healthy for 300s"));
        // healthy_for: 0s still asks that it passed its gate there.
        let never = report("s1", "staging", T0 + 990, runs("Synced", "healthy"), json!([]));
        assert!(waits(judge(&zero, "p1", "R", &[never], now), "s1: not applied"));
        let fine = report("s1", "staging", T0 + 990, runs("Synced", "healthy"), since(T0 - 2000, None));
        assert_eq!(judge(&zero, "p1", "R", std::slice::from_ref(&fine), now), Decision::Open);
        assert_eq!(judge(&one, "p1", "R", std::slice::from_ref(&fine), now), Decision::Open);
        // Stale by this host's clock (over three of its 60 s intervals), or dated ahead.
        let stale = Report { time: T0 + 1000 - 181, ..fine.clone() };
        assert!(waits(judge(&one, "p1", "R", &[stale], now), "s1: stale (its last report is 181s old"));
        let ahead = Report { time: T0 + 1000 + 61, ..fine.clone() };
        assert!(waits(judge(&one, "p1", "R", &[ahead], now), "s1: dated 61s ahead"));
        // A replay: older than a report of that host seen before.
        let seen: BTreeMap<String, i64> = [("s1".to_string(), T0 + 995)].into_iter().collect();
        let replay = super::judge(&one, "p1", "R", std::slice::from_ref(&fine), &seen, now);
        assert!(waits(replay, "s1: replayed"));
        // min counts keys: one key listed for two host names counts once.
        let two = [rule(Some("staging"), &[], 900, 2)];
        let k = |host: &str, key: &str| Report { host: host.into(), key: Some(key.into()), ..fine.clone() };
        assert!(waits(judge(&two, "p1", "R", &[k("s1", "k1"), k("s2", "k1")], now), "1 of 2 host(s)"));
        assert_eq!(judge(&two, "p1", "R", &[k("s1", "k1"), k("s2", "k2")], now), Decision::Open);
        // Superseded: replaced by a newer revision after running healthy long enough counts.
        let moved = json!({"phase": "Synced", "applied_revision": "S", "report_interval_seconds": 60, "resources": []});
        let replaced = json!([
            {"revision": "S", "result": "applied", "at": at(T0 + 900), "until": null},
            {"revision": "R", "result": "applied", "at": at(T0 - 300), "until": at(T0 + 900)}
        ]);
        assert_eq!(judge(&one, "p1", "R", &[report("s1", "staging", T0 + 990, moved, replaced)], now), Decision::Open);
    }
}
