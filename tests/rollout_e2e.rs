//! A staged fleet through Git, end to end (PRODUCT.md "Fleets", rollout gates): three real
//! agents on the real engine report to one repository — a staging host on `main`, and on the
//! `production` tag a canary gated on staging and a host gated on the canary. A good tag
//! reaches the canary only after staging ran it healthy, and the last host only after the
//! canary did; a tag whose commit fails on the canary is rolled back there only, and the
//! gated host holds it (`Held`, naming the canary) and never applies it; a tag on a commit
//! staging never ran waits.

mod common;
use common::agent::Agent;
use common::docker::{self, clear_managed, setup, IMAGE};
use common::git::Upstream;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

/// Each host's folder: one container `fl-<host>`; `broken` makes it exit at once.
fn folder(host: &str, v: usize, broken: bool) -> (String, String) {
    let pre = if broken { "exit 3; " } else { "" };
    (
        format!("hosts/{host}/app.yaml"),
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: fl-{host} }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"{pre}exec sleep 3600\"]\n  env: {{ V: \"{v}\" }}\n  stop_timeout: 1s\n"
        ),
    )
}

fn revision(up: &Upstream, v: usize, broken_canary: bool) -> String {
    let files: Vec<(String, String)> =
        vec![folder("s1", v, false), folder("c1", v, broken_canary), folder("p1", v, false)];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    up.commit(&refs, &format!("v{v}"))
}

struct Fleet {
    _dir: tempfile::TempDir,
    s1: Agent,
    c1: Agent,
    p1: Agent,
}

/// Where the fleet reports, and what a host's report is signed with and checked against.
struct Reporting<'a> {
    url: &'a str,
    sign: &'a Path,
    signers: &'a Path,
}

fn agent(up: &Upstream, host: &str, env: &str, reference: &str, r: &Reporting<'_>, after: &str) -> Agent {
    let rollout = if after.is_empty() {
        String::new()
    } else {
        format!("rollout: {{ signers: {}, after: [{after}] }}\n", r.signers.display())
    };
    let extra = format!(
        "environment: {env}\nreport: {{ url: \"{}\", sign: {}, interval: 1s }}\n{rollout}",
        r.url,
        r.sign.display()
    );
    let a = Agent::configure(&up.file_url(), reference, &extra);
    let text = std::fs::read_to_string(&a.config)
        .unwrap()
        .replacen("host: e2e\n", &format!("host: {host}\n"), 1)
        .replacen("path: hosts/e2e\n", &format!("path: hosts/{host}\n"), 1)
        .replacen("interval: 1h\n", "interval: 1s\n", 1);
    std::fs::write(&a.config, text).unwrap();
    a
}

fn fleet(up: &Upstream) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bare = d.join("fleet.git");
    assert!(Command::new("git").args(["init", "-q", "--bare"]).arg(&bare).status().unwrap().success());
    let reports = format!("file://{}", bare.display());
    let (ks, ps) = key(d, "s1");
    let (kc, pc) = key(d, "c1");
    let (kp, pp) = key(d, "p1");
    let signers = d.join("fleet_signers");
    std::fs::write(&signers, format!("s1 {ps}\nc1 {pc}\np1 {pp}\n")).unwrap();
    let rep = |sign| Reporting { url: &reports, sign, signers: &signers };
    let s1 = agent(up, "s1", "staging", "{ branch: main }", &rep(&ks), "");
    let c1 =
        agent(up, "c1", "production", "{ tag: production }", &rep(&kc), "{ environment: staging, healthy_for: 2s }");
    let p1 = agent(up, "p1", "production", "{ tag: production }", &rep(&kp), "{ hosts: [c1], healthy_for: 2s }");
    Fleet { _dir: dir, s1, c1, p1 }
}

fn wait(what: &str, timeout: Duration, agents: &[&Agent], mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            let logs: Vec<String> = agents.iter().map(|a| format!("{}\n{}", a.status(), a.log_text())).collect();
            panic!("{what} within {timeout:?}:\n{}", logs.join("\n----\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn applied(a: &Agent) -> String {
    a.status()["applied_revision"].as_str().unwrap_or("").to_string()
}

#[test]
fn a_staged_fleet_waits_for_staging_then_the_canary_and_holds_what_the_canary_rolled_back() {
    let Some(_g) = setup() else { return };
    let up = Upstream::new();
    let v1 = revision(&up, 1, false);
    up.tag("production");
    let mut f = fleet(&up);
    // The canary and the last host start first: nothing has reported yet, so they wait.
    f.c1.start();
    f.p1.start();
    let s = f.c1.wait_phase("Waiting", Duration::from_secs(30));
    assert!(s["message"].as_str().unwrap().contains("environment staging"), "{s}");
    assert!(docker::instances("fl-c1").is_empty(), "nothing applied while waiting");
    // Staging runs v1; then the canary; then the last host — in that order.
    f.s1.start();
    let all = [&f.s1, &f.c1, &f.p1];
    wait("the canary applies v1", Duration::from_secs(60), &all, || applied(&f.c1) == v1);
    assert_eq!(applied(&f.s1), v1);
    wait("the last host applies v1", Duration::from_secs(60), &all, || applied(&f.p1) == v1);
    let history =
        |a: &Agent| -> serde_json::Value { serde_json::from_str(&a.ctl(&["history", "--json"]).stdout).unwrap() };
    let at = |a: &Agent| history(a)[0]["finished"].as_str().unwrap().to_string();
    assert!(at(&f.s1) < at(&f.c1) && at(&f.c1) < at(&f.p1), "staging, then the canary, then the rest");

    // v2 breaks on the canary only: staging runs it healthy, the canary rolls it back, and
    // the last host holds it, naming the canary, and never applies it.
    let v2 = revision(&up, 2, true);
    up.tag("production");
    wait("staging runs v2", Duration::from_secs(60), &all, || applied(&f.s1) == v2);
    wait("the canary rolls v2 back", Duration::from_secs(90), &all, || f.c1.status()["phase"] == "RolledBack");
    assert_eq!(applied(&f.c1), v1);
    let s = f.p1.wait_phase("Held", Duration::from_secs(60));
    assert!(s["message"].as_str().unwrap().contains("c1 rolled back"), "{s}");
    assert_eq!(applied(&f.p1), v1, "never applied");
    assert!(!history(&f.p1).as_array().unwrap().iter().any(|h| h["revision"] == v2.as_str()), "p1 never tried v2");

    // A tag on a commit staging never ran (staging is down): the canary waits.
    f.s1.kill9();
    let v3 = revision(&up, 3, false);
    up.tag("production");
    wait("the canary waits for v3", Duration::from_secs(30), &[&f.c1, &f.p1], || {
        let s = f.c1.status();
        s["desired_revision"] == v3.as_str() && s["phase"] == "Waiting"
    });
    assert_eq!(applied(&f.c1), v1);
    // ... unless told: sync --ignore-rollout applies it, and the history says so.
    let r = f.c1.ctl(&["sync", "--wait", "--ignore-rollout"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(applied(&f.c1), v3);
    assert!(history(&f.c1)[0]["message"].as_str().unwrap().contains("--ignore-rollout"), "{}", history(&f.c1));
    clear_managed();
}

#[test]
fn outside_its_deploy_window_a_host_waits_and_a_bad_window_is_refused_on_sighup() {
    let Some(_g) = setup() else { return };
    let up = Upstream::new();
    let (path, text) = folder("w1", 1, false);
    let c1 = up.commit(&[(path.as_str(), text.as_str())], "v1");
    // A window that opens in two hours (UTC): now is outside it.
    let h = (jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).hour() + 2) % 24;
    let window = format!("rollout: {{ windows: [{{ hours: \"{h:02}:00-{:02}:00\", tz: UTC }}] }}\n", (h + 1) % 24);
    let mut a = Agent::configure(&up.file_url(), "{ branch: main }", &window);
    let text = std::fs::read_to_string(&a.config).unwrap().replacen("path: hosts/e2e\n", "path: hosts/w1\n", 1);
    std::fs::write(&a.config, &text).unwrap();
    a.start();
    let s = a.wait_phase("Waiting", Duration::from_secs(30));
    assert!(s["message"].as_str().unwrap().starts_with("waiting for a deploy window"), "{s}");
    assert!(docker::instances("fl-w1").is_empty(), "nothing applied outside the window");
    // A config with an unknown zone: refused on SIGHUP, the old one stays in force.
    std::fs::write(&a.config, text.replace("tz: UTC", "tz: Mars/Olympus_Mons")).unwrap();
    let _ = Command::new("kill").args(["-HUP", &a.pid().to_string()]).status();
    let start = Instant::now();
    while !a.log_text().contains("unknown time zone \"Mars/Olympus_Mons\"") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(a.status()["phase"], "Waiting");
    // sync --ignore-rollout applies now, and the history says so.
    let r = a.ctl(&["sync", "--wait", "--ignore-rollout"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = a.status();
    assert_eq!(s["applied_revision"], c1.as_str());
    let h: serde_json::Value = serde_json::from_str(&a.ctl(&["history", "--json"]).stdout).unwrap();
    assert!(h[0]["message"].as_str().unwrap().contains("--ignore-rollout"), "{h}");
    clear_managed();
}
