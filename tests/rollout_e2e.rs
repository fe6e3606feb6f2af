//! A staged fleet through Git, end to end (PRODUCT.md "Fleets", rollout gates): six real
//! agents on the real engine report over SSH (Debian's openssh-server on 127.0.0.1) to one
//! repository — two staging hosts on `main`, and on the `production` tag a canary gated on
//! staging and three hosts gated on the canary. A good tag reaches the canary only after
//! staging ran it healthy, and the rest only after the canary did; a tag whose commit fails
//! on the canary is rolled back there only, and the gated hosts hold it (`Held`, naming the
//! canary) and never apply it; the report server stopped and started again changes nothing
//! decided; a tag on a commit staging never ran waits. `agentctl fleet --json` agrees with
//! each agent's own `status --json`.

mod common;
use common::agent::Agent;
use common::docker::{self, clear_managed, setup, IMAGE};
use common::git::{git, keypair, sshd, user, Upstream};
use common::{agentctl, run};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

const STAGING: [&str; 2] = ["s1", "s2"];
const REST: [&str; 3] = ["p1", "p2", "p3"];

fn revision(up: &Upstream, v: usize, broken_canary: bool) -> String {
    let mut files: Vec<(String, String)> = STAGING.iter().chain(&REST).map(|h| folder(h, v, false)).collect();
    files.push(folder("c1", v, broken_canary));
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    up.commit(&refs, &format!("v{v}"))
}

/// Where the fleet reports, and what a host's report is signed with and checked against.
struct Reporting<'a> {
    url: &'a str,
    auth: &'a str,
    sign: &'a Path,
    signers: &'a Path,
}

/// The report repository in `d`, served by sshd (pushes run git-receive-pack as the user),
/// with a signing key per host (in order) and the `allowed_signers` file naming them.
struct ReportRepository {
    bare: PathBuf,
    url: String,
    auth: String,
    keys: Vec<(PathBuf, String)>,
    signers: PathBuf,
}

impl ReportRepository {
    /// The repository, and the server serving it (kept running while it lives).
    fn new(d: &Path, hosts: &[&str]) -> (ReportRepository, common::git::Sshd) {
        let bare = d.join("fleet.git");
        git(d, &["init", "-q", "--bare", bare.to_str().unwrap()]);
        let server = sshd();
        let url = format!("ssh://{}@127.0.0.1:{}{}", user(), server.server.port, bare.display());
        let auth =
            format!("{{ ssh_key: {}, known_hosts: {} }}", server.client_key.display(), server.known_hosts.display());
        let keys: Vec<(PathBuf, String)> = hosts.iter().map(|h| keypair(d, h)).collect();
        let signers = d.join("fleet_signers");
        let lines: Vec<String> = hosts.iter().zip(&keys).map(|(h, (_, p))| format!("{h} {p}")).collect();
        std::fs::write(&signers, lines.join("\n") + "\n").unwrap();
        (ReportRepository { bare, url, auth, keys, signers }, server)
    }

    /// Where host `i` reports, and how it signs.
    fn reporting(&self, i: usize) -> Reporting<'_> {
        Reporting { url: &self.url, auth: &self.auth, sign: &self.keys[i].0, signers: &self.signers }
    }
}

fn agent(up: &Upstream, host: &str, env: &str, reference: &str, r: &Reporting<'_>, after: &str) -> Agent {
    let rollout = if after.is_empty() {
        String::new()
    } else {
        format!("rollout: {{ signers: {}, after: [{after}] }}\n", r.signers.display())
    };
    let extra = format!(
        "environment: {env}\nreport: {{ url: \"{}\", auth: {}, sign: {}, interval: 2s }}\n{rollout}",
        r.url,
        r.auth,
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

fn wait(what: &str, timeout: Duration, agents: &[&Agent], ok: impl FnMut() -> bool) {
    let context = || {
        let logs: Vec<String> = agents.iter().map(|a| format!("{}\n{}", a.status(), a.log_text())).collect();
        logs.join("\n----\n")
    };
    common::wait_for(what, timeout, ok, context);
}

fn applied(a: &Agent) -> String {
    a.status()["applied_revision"].as_str().unwrap_or("").to_string()
}

fn history(a: &Agent) -> serde_json::Value {
    serde_json::from_str(&a.ctl(&["history", "--json"]).stdout).unwrap()
}

/// One piece: a fleet's story in the order it happens (staging, the canary, the rest; a
/// revision rolled back on the canary and held everywhere after it), each step using the
/// state the one before left, as an operator would watch it.
#[test]
fn a_staged_fleet_waits_for_staging_then_the_canary_and_holds_what_the_canary_rolled_back() {
    let Some(_g) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hosts: Vec<&str> = STAGING.iter().chain(&["c1"]).chain(&REST).copied().collect();
    let (fleet, server) = ReportRepository::new(d, &hosts);
    let rep = |i: usize| fleet.reporting(i);

    let up = Upstream::new();
    let v1 = revision(&up, 1, false);
    up.tag("production");
    let mut staging: Vec<Agent> =
        STAGING.iter().enumerate().map(|(i, h)| agent(&up, h, "staging", "{ branch: main }", &rep(i), "")).collect();
    let mut c1 =
        agent(&up, "c1", "production", "{ tag: production }", &rep(2), "{ environment: staging, healthy_for: 3s }");
    let mut rest: Vec<Agent> = REST
        .iter()
        .enumerate()
        .map(|(i, h)| {
            agent(&up, h, "production", "{ tag: production }", &rep(3 + i), "{ hosts: [c1], healthy_for: 3s }")
        })
        .collect();
    // p1 tells a webhook what it waits for and what it holds.
    let (hook, got) = common::notify::receiver();
    let text = std::fs::read_to_string(&rest[0].config).unwrap();
    std::fs::write(
        &rest[0].config,
        format!("{text}notify: [ {{ url: \"http://127.0.0.1:{hook}/\", events: [waiting, held] }} ]\n"),
    )
    .unwrap();
    // Production starts first: nothing has reported yet, so it waits.
    c1.start();
    for a in &mut rest {
        a.start();
    }
    let s = c1.wait_phase("Waiting", Duration::from_secs(30));
    assert!(s["message"].as_str().unwrap().contains("environment staging"), "{s}");
    assert!(docker::instances("fl-c1").is_empty(), "nothing applied while waiting");
    for a in &mut staging {
        a.start();
    }
    let all: Vec<&Agent> = staging.iter().chain([&c1]).chain(rest.iter()).collect();
    wait("the canary applies v1", Duration::from_secs(90), &all, || applied(&c1) == v1);
    wait("the rest apply v1", Duration::from_secs(90), &all, || rest.iter().all(|a| applied(a) == v1));
    let finished = |a: &Agent| history(a)[0]["finished"].as_str().unwrap().to_string();
    let first_staging = staging.iter().map(finished).min().unwrap();
    for a in &rest {
        assert!(first_staging < finished(&c1) && finished(&c1) < finished(a), "staging, the canary, then the rest");
    }

    // v2 breaks on the canary only: staging runs it healthy, the canary rolls it back, and
    // the rest hold it, naming the canary, and never apply it.
    let v2 = revision(&up, 2, true);
    up.tag("production");
    wait("staging runs v2", Duration::from_secs(60), &all, || staging.iter().all(|a| applied(a) == v2));
    wait("the canary rolls v2 back", Duration::from_secs(90), &all, || c1.status()["phase"] == "RolledBack");
    assert_eq!(applied(&c1), v1);
    for a in &rest {
        let s = a.wait_phase("Held", Duration::from_secs(60));
        assert!(s["message"].as_str().unwrap().contains("c1 rolled back"), "{s}");
        assert_eq!(applied(a), v1, "never applied");
        assert!(!history(a).as_array().unwrap().iter().any(|h| h["revision"] == v2.as_str()), "never tried v2");
    }
    let start = Instant::now();
    let sent = |event: &str, rev: &str| {
        got.lock().unwrap().iter().filter(|n| n["event"] == event && n["revision"] == rev).count()
    };
    while sent("held", &v2) == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "no held notification: {:?}", got.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sent("held", &v2), 1, "once per revision");
    assert_eq!(sent("waiting", &v1), 1, "p1 waited for v1 once: {:?}", got.lock().unwrap());

    // `agentctl fleet` agrees with each agent's own status.
    let last = std::cell::RefCell::new(String::new());
    let agree = || {
        // The canary's agent config gives the URL, the SSH key and the signers file.
        let r = run(agentctl().arg("--config").arg(&c1.config).args(["fleet", "--json"]));
        let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        *last.borrow_mut() = format!("{}{}", r.stdout, r.stderr);
        all.iter().all(|a| {
            let s = a.status();
            rows.as_array().into_iter().flatten().any(|row| {
                row["host"] == s["host"]
                    && row["phase"] == s["phase"]
                    && row["applied_revision"] == s["applied_revision"]
                    && row["verified"] == true
            })
        })
    };
    let start = Instant::now();
    while !agree() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "agentctl fleet disagrees with status --json: {}",
            last.borrow()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The report server stops and comes back: nothing decided changes (the rest stay Held,
    // nobody applies or rolls back anything for it), and the reports flow again.
    let mut server = server;
    server.stop();
    std::thread::sleep(Duration::from_secs(3)); // reports fail meanwhile (what is waited for is that nothing happens)
    for a in &rest {
        assert_eq!(a.status()["phase"], "Held");
        assert_eq!(applied(a), v1);
    }
    assert_eq!(applied(&c1), v1);
    assert!(staging.iter().any(|a| a.status()["report"]["error"].is_string()), "the failed pushes are in status");
    // Back, on the same port with the same keys: the reports flow again, nothing changed.
    server.start_again();
    wait("the reports flow again", Duration::from_secs(30), &all, || {
        staging.iter().all(|a| a.status()["report"]["error"].is_null())
    });
    for a in &rest {
        assert_eq!(a.status()["phase"], "Held");
        assert_eq!(applied(a), v1);
    }

    // A tag on a commit staging never ran (staging is down): the canary waits.
    for a in &mut staging {
        a.kill9();
    }
    let v3 = revision(&up, 3, false);
    up.tag("production");
    wait("the canary waits for v3", Duration::from_secs(30), &[&c1], || {
        let s = c1.status();
        s["desired_revision"] == v3.as_str() && s["phase"] == "Waiting"
    });
    assert_eq!(applied(&c1), v1);
    // A forged report: s1's ref, saying v3 ran healthy for an hour, signed with p1's key.
    // Not counted: the canary keeps waiting, and says why.
    let status = format!(
        "{{\"host\": \"s1\", \"environment\": \"staging\", \"phase\": \"Synced\", \"applied_revision\": \"{v3}\"}}"
    );
    let outcomes = format!(
        "[{{\"revision\": \"{v3}\", \"result\": \"applied\", \"at\": \"2020-01-01T00:00:00Z\", \"until\": null}}]"
    );
    std::fs::write(d.join("status.json"), status).unwrap();
    std::fs::write(d.join("outcomes.json"), outcomes).unwrap();
    let blob = |f: &str| git(&fleet.bare, &["hash-object", "-w", d.join(f).to_str().unwrap()]);
    let listing = format!(
        "100644 blob {}\toutcomes.json\n100644 blob {}\tstatus.json\n",
        blob("outcomes.json"),
        blob("status.json")
    );
    std::fs::write(d.join("listing"), listing).unwrap();
    let out = Command::new("git")
        .arg("mktree")
        .current_dir(&fleet.bare)
        .stdin(std::fs::File::open(d.join("listing")).unwrap())
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let p1_key = format!("user.signingkey={}", fleet.keys[3].0.display());
    let forged = git(
        &fleet.bare,
        &[
            "-c",
            "user.name=s1",
            "-c",
            "user.email=s1@x",
            "-c",
            "gpg.format=ssh",
            "-c",
            &p1_key,
            "commit-tree",
            "-S",
            &tree,
            "-m",
            "forged",
        ],
    );
    git(&fleet.bare, &["update-ref", "refs/driftless/hosts/s1", &forged]);
    wait("the canary says the forged report is not counted", Duration::from_secs(30), &[&c1], || {
        c1.status()["message"].as_str().is_some_and(|m| m.contains("not counted") && m.contains("s1"))
    });
    assert_eq!(c1.status()["phase"], "Waiting");
    assert_eq!(applied(&c1), v1);
    // ... unless told: sync --ignore-rollout applies it, and the history says so.
    let r = c1.ctl(&["sync", "--wait", "--ignore-rollout"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(applied(&c1), v3);
    assert!(history(&c1)[0]["message"].as_str().unwrap().contains("--ignore-rollout"), "{}", history(&c1));
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

/// Evidence a gate can trust (issue 36), with two real agents reporting over SSH: a staging
/// host whose container is repaired right after it applied R opens no gate however long it
/// then runs; a staging agent that stopped reporting opens none either (its report goes
/// stale, and `Waiting` names it); `sync --ignore-rollout` outlives a fault in its cycle (a
/// registry down) and applies once the fault clears; and a rule that can never be met is
/// refused by `agentd --check`.
#[test]
fn a_gate_counts_fresh_unbroken_evidence_and_an_override_outlives_a_fault() {
    let Some(_g) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (fleet, _server) = ReportRepository::new(d, &["s1", "p1"]);
    let rep = |i: usize| fleet.reporting(i);
    // p1's image comes from a registry on 127.0.0.1 (down when the test says so).
    let (port, data) = (common::git::free_port(), tempfile::tempdir().unwrap());
    let image = format!("127.0.0.1:{port}/team/p1");
    {
        let _reg = common::registry::open_registry_on(port, data.path());
        docker::docker(&["tag", IMAGE, &format!("{image}:1")]);
        let (code, out) = docker::docker(&["push", &format!("{image}:1")]);
        assert_eq!(code, 0, "push: {out}");
        docker::docker(&["rmi", &format!("{image}:1")]);
    }
    let up = Upstream::new();
    let commit = |v: usize| {
        let (s1_path, s1) = folder("s1", v, false);
        let p1 = format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: fl-p1 }}\nspec:\n  image: {}\n  pull: {}\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  env: {{ V: \"{v}\" }}\n  stop_timeout: 1s\n",
            if v >= 3 { format!("{image}:1") } else { IMAGE.to_string() },
            if v >= 3 { "always" } else { "never" }
        );
        up.commit(&[(s1_path.as_str(), s1.as_str()), ("hosts/p1/app.yaml", p1.as_str())], &format!("v{v}"))
    };
    let v1 = commit(1);
    up.tag("production");
    let mut s1 = agent(&up, "s1", "staging", "{ branch: main }", &rep(0), "");
    let mut p1 =
        agent(&up, "p1", "production", "{ tag: production }", &rep(1), "{ environment: staging, healthy_for: 4s }");

    // A rule that can never be met: refused before anything starts.
    let bad = d.join("bad.yaml");
    let text = std::fs::read_to_string(&p1.config)
        .unwrap()
        .replace("{ environment: staging, healthy_for: 4s }", "{ hosts: [p1] }");
    std::fs::write(&bad, text).unwrap();
    let r = run(common::agentd().arg("--config").arg(&bad).arg("--check"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("rollout.after[0]: host p1 is gated on itself"), "{}", r.stderr);

    s1.start();
    p1.start();
    wait("p1 applies v1 after staging ran it", Duration::from_secs(60), &[&s1, &p1], || applied(&p1) == v1);

    // v2: s1's container is removed right after it applied v2, and recreated: the span of v2
    // there ended seconds after it began, so p1 never counts it, however long s1 then runs.
    p1.ctl(&["pause"]);
    let v2 = commit(2);
    up.tag("production");
    wait("s1 applies v2", Duration::from_secs(30), &[&s1], || applied(&s1) == v2);
    docker::docker(&["rm", "-f", "fl-s1"]); // gone: the agent recreates it (a drift repair)
    wait("s1 repairs the drift", Duration::from_secs(30), &[&s1], || history(&s1)[0]["result"] == "drift_repaired");
    let repaired = Instant::now();
    p1.ctl(&["resume"]);
    wait(
        "well past healthy_for since the repair, p1 still waits on s1's broken span",
        Duration::from_secs(30),
        &[&s1, &p1],
        || {
            let s = p1.status();
            repaired.elapsed() > Duration::from_secs(8)
                && s["phase"] == "Waiting"
                && s["message"].as_str().unwrap_or("").contains("s1: healthy for")
        },
    );
    assert_eq!(applied(&p1), v1, "no gate opened for v2");

    // v3: s1 runs it healthy for long enough, then its agent stops: its report goes stale
    // (three of its 2 s intervals) and opens nothing; p1 says which host is stale.
    p1.ctl(&["pause"]);
    let v3 = commit(3);
    up.tag("production");
    wait("s1 applies v3", Duration::from_secs(30), &[&s1], || applied(&s1) == v3);
    let ran = Instant::now();
    wait("s1 has run v3 past healthy_for", Duration::from_secs(30), &[&s1], || ran.elapsed() > Duration::from_secs(5));
    s1.kill9();
    let stopped = Instant::now();
    wait("s1's report is stale", Duration::from_secs(30), &[], || stopped.elapsed() > Duration::from_secs(8));
    // The registry p1 pulls v3's image from is down: a fault, whatever the gates say.
    p1.ctl(&["resume"]);
    wait("p1 waits, naming the stale host", Duration::from_secs(30), &[&p1], || {
        p1.status()["message"].as_str().unwrap_or("").contains("s1: stale")
    });
    assert_eq!(applied(&p1), v1);

    // The operator's override meets the registry down: a fault; it stays in force, and once
    // the registry answers, v3 is applied past the gate that still waits on the stale host.
    let r = p1.ctl(&["sync", "--wait", "--ignore-rollout"]);
    assert_ne!(r.code, 0, "a fault: {}{}", r.stdout, r.stderr);
    let s = p1.status();
    assert_eq!(s["ignore_rollout"], v3.as_str(), "still in force: {s}");
    assert_eq!(applied(&p1), v1);
    let _reg = common::registry::open_registry_on(port, data.path());
    wait("p1 applies v3 once the registry answers", Duration::from_secs(60), &[&p1], || applied(&p1) == v3);
    let h = history(&p1);
    assert!(h[0]["message"].as_str().unwrap_or("").contains("applied past the rollout gates"), "{}", h[0]);
    assert!(p1.status().get("ignore_rollout").is_none(), "spent once applied");
    clear_managed();
}
