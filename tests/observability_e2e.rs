//! The operator's view, end to end on the real Docker engine and Debian's real Prometheus:
//! a history entry that says who pushed what and why it rolled back, notifications in both
//! formats (filtered, once per event, `source_failed` once per fault), metrics that survive a
//! restart, and the shipped alert rules firing exactly where they should on three agents.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::docker::{clear_managed, setup, IMAGE};
use common::git::{free_port, Upstream};

/// `web` serving on `port` with `LOG_LEVEL: level`; `pre` runs first (`exit 3;` breaks it).
fn web(v: &str, port: u16, level: &str, pre: &str) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  env: {{ LOG_LEVEL: {level} }}\n  command: [\"sh\", \"-c\", \"mkdir -p /www && echo 'version {v}' > /www/index.html && {pre} exec httpd -f -p 8080 -h /www\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: \"version {v}\" }}\n      timeout: 5s\n"
    )
}

/// A webhook receiver on 127.0.0.1: every POST body, by path.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let sink = sink.clone();
                std::thread::spawn(move || {
                    if let Some((path, body)) = read_request(&mut s) {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                        sink.lock().unwrap().push((path, v));
                    }
                });
            }
        });
        Receiver { port, got }
    }

    /// The bodies received on `path`.
    fn on(&self, path: &str) -> Vec<serde_json::Value> {
        self.got.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, v)| v.clone()).collect()
    }

    /// `event` fields received on `path`, in order.
    fn events(&self, path: &str) -> Vec<String> {
        self.on(path).iter().map(|v| v["event"].as_str().unwrap_or("?").to_string()).collect()
    }

    /// Wait until `path` has received `n` bodies (deliveries run in the background).
    fn wait(&self, path: &str, n: usize) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let got = self.on(path);
            if got.len() >= n || start.elapsed() > Duration::from_secs(20) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One HTTP/1.1 request: its path and body (by content-length).
fn read_request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            return Some((path, buf[end + 4..].to_vec()));
        }
    }
}

/// GET `path` from 127.0.0.1:`port`: the body.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

fn metric_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn history_notifications_and_metrics_tell_the_story() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let metrics = free_port();
    let hooks = Receiver::start();
    let up = Upstream::new();
    let good = up.commit(&[("hosts/e2e/web.yaml", &web("1", port, "INFO", ""))], "web 1");
    let extra = format!(
        "metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\nnotify:\n  - {{ url: \"http://127.0.0.1:{hp}/json\" }}\n  - {{ url: \"http://127.0.0.1:{hp}/chat\", format: slack, events: [rolled_back, source_failed] }}\n",
        hp = hooks.port
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", &extra);
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));

    // A broken revision that also changes the log level: rolled back, and the history says
    // who, what changed in the spec, and why it failed.
    let bad = up.commit(&[("hosts/e2e/web.yaml", &web("2", port, "DEBUG", "exit 3;"))], "web: debug logging");
    agent.sync(1);
    let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json"]).stdout).unwrap();
    let e = &h[0];
    assert_eq!(e["result"], "rolled_back", "{e}");
    assert_eq!(e["revision"], bad.as_str());
    assert_eq!(e["commit"]["subject"], "web: debug logging", "{e}");
    assert_eq!(e["commit"]["author"], "Test <test@example.invalid>", "{e}");
    assert!(e["commit"]["date"].as_str().unwrap().ends_with('Z'), "{e}");
    let changes = e["changes"].to_string();
    assert!(changes.contains("env.LOG_LEVEL: INFO → DEBUG"), "{changes}");
    assert!(changes.contains("replace Container/web (spec changed:"), "{changes}");
    assert_eq!(e["diagnostics"][0]["exit_code"], 3, "{e}");
    assert_eq!(h[1]["commit"]["subject"], "web 1", "{}", h[1]);
    let show = agent.ctl(&["history", "--show", &bad[..12]]);
    assert_eq!(show.code, 0, "{}{}", show.stdout, show.stderr);
    eprintln!("agentctl history --show {}:\n{}", &bad[..12], show.stdout);
    for want in ["commit:    web: debug logging", "author:    Test <test@example.invalid>", "result:    rolled_back"] {
        assert!(show.stdout.contains(want), "{want:?} in:\n{}", show.stdout);
    }
    assert!(
        show.stdout.contains("env.LOG_LEVEL: INFO → DEBUG") && show.stdout.contains("exit code 3"),
        "{}",
        show.stdout
    );

    // Notifications: every event as JSON on one target; only the rollback, for people, on
    // the other.
    let json = hooks.wait("/json", 4);
    assert_eq!(hooks.events("/json"), ["started", "applied", "started", "rolled_back"], "{json:?}");
    assert_eq!(json[3]["commit"]["subject"], "web: debug logging");
    assert!(json[3]["changes"].to_string().contains("env.LOG_LEVEL"), "{}", json[3]);
    assert_eq!(json[3]["diagnostics"][0]["exit_code"], 3);
    let chat = hooks.wait("/chat", 1);
    assert_eq!(chat.len(), 1, "{chat:?}");
    let text = chat[0]["text"].as_str().unwrap();
    assert!(text.contains("*e2e* rolled back") && text.contains("“web: debug logging” by Test"), "{text}");

    // The source goes away: `source_failed` once, however many retries; then recovered.
    let moved = up.bare.with_extension("moved");
    std::fs::rename(&up.bare, &moved).unwrap();
    for _ in 0..3 {
        agent.ctl(&["sync", "--wait"]);
    }
    std::fs::rename(&moved, &up.bare).unwrap();
    agent.sync(0);
    hooks.wait("/json", 6);
    let events = hooks.events("/json");
    assert_eq!(events[4..], ["source_failed", "source_recovered"], "{events:?}");
    assert_eq!(hooks.wait("/chat", 2).len(), 2, "source_failed reaches the chat once");
    assert_eq!(hooks.events("/chat").len(), 2);

    // Metrics, then again after a restart: the counters go on from where they were.
    let check = |what: &str| {
        let m = get(metrics, "/metrics");
        let info = format!("driftless_revision_info{{desired=\"{bad}\",applied=\"{good}\",last_good=\"{good}\"}} 1");
        assert!(m.contains(&info), "{what}: {info} in\n{m}");
        for line in [
            "driftless_resource_healthy{kind=\"Container\",name=\"web\"} 1",
            "driftless_phase{phase=\"RolledBack\"} 1",
            "driftless_rollbacks_total 1",
            "driftless_deployments_total 1",
            "driftless_source_up 1",
        ] {
            assert!(m.contains(line), "{what}: {line} in\n{m}");
        }
        assert!(metric_line(&m, "driftless_apply_duration_seconds_count").is_some(), "{m}");
        let faults = metric_line(&m, "driftless_faults_total ").unwrap_or("");
        assert_ne!(faults, "driftless_faults_total 0", "{what}: the source faults were counted");
        let fetch_errors = metric_line(&m, "driftless_git_fetch_errors_total ").unwrap_or("").to_string();
        assert!(fetch_errors.ends_with(" 3"), "{what}: {fetch_errors}");
    };
    check("before the restart");
    agent.kill9();
    agent.start();
    agent.wait_phase("RolledBack", Duration::from_secs(30));
    // The phase and the resource gauges come back from the state file at once, before the
    // start-up cycle has observed anything.
    check("after the restart");
    // Nothing is notified twice after a restart. The positive sign that the restarted agent
    // has had its chance to: it notifies the next revision (its start-up cycle ran first).
    let next = up.commit(&[("hosts/e2e/web.yaml", &web("3", port, "INFO", ""))], "web 3");
    agent.sync(0);
    assert_eq!(agent.status()["applied_revision"], next.as_str());
    hooks.wait("/json", 8);
    let events = hooks.events("/json");
    assert_eq!(
        events[4..],
        ["source_failed", "source_recovered", "started", "applied"],
        "nothing is notified twice after a restart: {events:?}"
    );
    drop(agent);
    clear_managed();
}

/// Debian's `prometheus`; its absence fails the test unless DRIFTLESS_SKIP_MISSING=1 (never
/// in CI), as for every real part (tests/common/mod.rs, `missing`).
fn prometheus_available() -> bool {
    if Command::new("prometheus").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    common::missing("prometheus is missing", "run .ci/setup (it installs Debian's prometheus)")
}

struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start Prometheus scraping `targets` every second with the shipped rules, their `for:`
/// durations shortened to 2 s (the expressions are the shipped ones; promtool's unit tests
/// prove the durations).
fn prometheus(targets: &[u16]) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(common::root().join("dist/prometheus/driftless.rules.yaml")).unwrap();
    let fast: String = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 2s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(fast.contains("for: 2s"));
    std::fs::write(dir.path().join("rules.yaml"), fast).unwrap();
    let list: Vec<String> = targets.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nrule_files: [rules.yaml]\nscrape_configs:\n  - job_name: driftless\n    static_configs: [{{ targets: [{}] }}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let p = Prometheus { child, port, dir };
    let start = Instant::now();
    while !TcpStream::connect(("127.0.0.1", port)).is_ok_and(|_| get(port, "/-/ready").contains("Ready")) {
        assert!(start.elapsed() < Duration::from_secs(30), "prometheus did not become ready: {}", p.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    p
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// (alert name, instance, state) of every pending or firing alert, sorted.
    fn alerts(&self) -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_json::from_str(&get(self.port, "/api/v1/alerts")).unwrap_or_default();
        let mut out: Vec<(String, String, String)> = v["data"]["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        let s = |k: &str| x["labels"][k].as_str().unwrap_or("").to_string();
                        (s("alertname"), s("instance"), x["state"].as_str().unwrap_or("").to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// When the rule groups were last evaluated (`/api/v1/rules`), joined.
    fn last_evaluation(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&get(self.port, "/api/v1/rules")).unwrap_or_default();
        let groups = v["data"]["groups"].as_array().cloned().unwrap_or_default();
        groups.iter().map(|g| g["lastEvaluation"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join(",")
    }

    /// Wait until Prometheus has evaluated its rules `n` more times.
    fn wait_evaluations(&self, n: usize) {
        let start = Instant::now();
        let mut last = self.last_evaluation();
        let mut seen = 0;
        while seen < n {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{seen} of {n} rule evaluations in 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
            let now = self.last_evaluation();
            if now != last {
                seen += 1;
                last = now;
            }
        }
    }
}

/// Three agents — one Synced, one rolled back, one whose source is unreachable — scraped by
/// a real Prometheus with the shipped rules: exactly the expected alerts fire.
#[test]
fn prometheus_fires_exactly_the_expected_alerts() {
    let Some(_g) = setup() else { return };
    if !prometheus_available() {
        return;
    }
    let port = free_port();
    let up = Upstream::new();
    up.commit(&[("hosts/e2e/web.yaml", &web("1", port, "INFO", ""))], "web 1");
    up.tag("v1");
    let (m_synced, m_rolled, m_cut) = (free_port(), free_port(), free_port());
    let metrics = |p: u16| format!("metrics: {{ listen: \"127.0.0.1:{p}\" }}\n");

    // The rolled-back host: applies web 1, then a broken web 2 that it rolls back.
    let mut rolled = Agent::configure(&up.file_url(), "{ branch: main }", &metrics(m_rolled));
    rolled.start();
    rolled.wait_phase("Synced", Duration::from_secs(60));
    up.commit(&[("hosts/e2e/web.yaml", &web("2", port, "INFO", "exit 3;"))], "web 2 (broken)");
    rolled.sync(1);
    rolled.wait_phase("RolledBack", Duration::from_secs(5));
    // The synced host follows tag v1: the same container, already running as it wants it.
    // (Three agents share one engine here; on a fleet each host has its own.)
    let mut synced = Agent::configure(&up.file_url(), "{ tag: v1 }", &metrics(m_synced));
    synced.start();
    synced.wait_phase("Synced", Duration::from_secs(60));
    // The cut-off host: its remote does not exist.
    let mut cut = Agent::configure("file:///nonexistent/driftless/state.git", "{ branch: main }", &metrics(m_cut));
    cut.start();
    cut.wait_phase("Degraded", Duration::from_secs(30));

    let prom = prometheus(&[m_synced, m_rolled, m_cut]);
    let inst = |p: u16| format!("127.0.0.1:{p}");
    let want: Vec<(String, String, String)> = {
        let mut w = vec![
            ("DriftlessRolledBack".to_string(), inst(m_rolled), "firing".to_string()),
            ("DriftlessDegraded".to_string(), inst(m_cut), "firing".to_string()),
            ("DriftlessSourceFailing".to_string(), inst(m_cut), "firing".to_string()),
        ];
        w.sort();
        w
    };
    let start = Instant::now();
    let mut seen = prom.alerts();
    while seen != want && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        seen = prom.alerts();
    }
    assert_eq!(seen, want, "alerts (prometheus log:\n{})", prom.log());
    // And it stays so: nothing else turns up over three more evaluations of the rules.
    prom.wait_evaluations(3);
    assert_eq!(prom.alerts(), want);
    eprintln!("alerts firing: {want:?}");
    if let Some(secs) = std::env::var("DRIFTLESS_E2E_HOLD_SECS").ok().and_then(|s| s.parse().ok()) {
        // For screenshots of the Prometheus pages (docs/operations.md, "Fleet view").
        eprintln!("holding for {secs} s: prometheus on http://127.0.0.1:{}/", prom.port);
        std::thread::sleep(Duration::from_secs(secs));
    }
    drop((synced, rolled, cut));
    clear_managed();
}

/// Health after the gate (PRODUCT.md behaviour 6) on the real engine: with
/// `health.watch_interval: 1s`, a container whose http check starts failing after the gate
/// makes the host `Degraded` once its `retries` are used up — `status` names it, its health is
/// `unhealthy`, `driftless_resource_healthy` is 0, one `degraded` notification — and a poll
/// in between keeps it Degraded (the revision is not reverted); when the check passes again
/// the host is `Synced` and `recovered` is sent once.
#[test]
fn checks_run_after_the_gate_and_a_failing_one_degrades_the_host_until_it_passes() {
    let Some(_g) = setup() else { return };
    let (port, metrics) = (free_port(), free_port());
    let up = Upstream::new();
    let doc = format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: up }}\n      timeout: 5s\n      retries: 2\n"
    );
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &doc)], "v1");
    let (hook, got) = common::notify::receiver();
    let extra = format!(
        "metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\nnotify: [ {{ url: \"http://127.0.0.1:{hook}/\", events: [degraded, recovered] }} ]\n"
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", &extra);
    agent.set_health("watch_interval: 1s");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    let events = || -> Vec<String> {
        got.lock().unwrap().iter().map(|v| v["event"].as_str().unwrap_or("?").to_string()).collect()
    };

    // The page goes away: the check fails, twice in a row, and the host is Degraded.
    common::docker::docker(&["exec", "web", "rm", "/www/index.html"]);
    let s = agent.wait_phase("Degraded", Duration::from_secs(30));
    let message = s["message"].as_str().unwrap_or("");
    assert!(message.contains("health after the gate: Container/web:") && message.contains("2 checks in a row"), "{s}");
    assert_eq!(s["resources"][0]["health"], "unhealthy", "{s}");
    assert_eq!(s["applied_revision"], c1.as_str(), "not reverted");
    let m = get(metrics, "/metrics");
    assert!(m.contains("driftless_resource_healthy{kind=\"Container\",name=\"web\"} 0"), "{m}");
    assert!(m.contains("driftless_phase{phase=\"Degraded\"} 1"), "{m}");
    // A poll in between finds the host running what it should, and it stays Degraded (sync
    // --wait exits 1 on a Degraded host, as on a fault).
    agent.sync(1);
    assert_eq!(agent.status()["phase"], "Degraded");

    // The page comes back: Synced again, and each notification was sent once.
    common::docker::docker(&["exec", "web", "sh", "-c", "echo up > /www/index.html"]);
    let s = agent.wait_phase("Synced", Duration::from_secs(30));
    assert_eq!(s["resources"][0]["health"], "healthy", "{s}");
    common::wait_for(
        "the recovered notification",
        Duration::from_secs(10),
        || events().len() >= 2,
        || format!("{:?}", events()),
    );
    assert_eq!(events(), ["degraded", "recovered"]);
    clear_managed();
}

/// `health.bake` (PRODUCT.md behaviour 6): a revision whose page goes away seconds after its
/// gate passed is failed and the host put back on the revision last good before it, recorded
/// as a rollback that names the bake and the failing check; the revision is not tried again.
#[test]
fn a_check_failing_within_the_bake_reverts_the_revision_as_a_failed_gate_would() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web("1", port, "INFO", ""))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.set_health("watch_interval: 1s, bake: 1h");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert!(s["baking_until"].as_str().is_some_and(|t| t.starts_with("20")), "{s}");

    // v2 passes its gate, and its page is gone 6 s after it started.
    let c2 =
        up.commit(&[("hosts/e2e/web.yaml", &web("2", port, "INFO", "true; (sleep 6; rm /www/index.html) &"))], "v2");
    agent.sync(0);
    assert_eq!(agent.status()["applied_revision"], c2.as_str(), "v2 passed its gate");
    let s = agent.wait_phase("RolledBack", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str(), "{s}");
    assert_eq!(s["last_good_revision"], c1.as_str(), "{s}");
    assert!(s["failed_revisions"].as_array().unwrap().iter().any(|f| f == c2.as_str()), "{s}");
    let h = agent.ctl(&["history", "--json"]);
    let h: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let top = &h[0];
    assert_eq!(top["result"], "rolled_back", "{top}");
    assert_eq!(top["revision"], c2.as_str(), "{top}");
    let msg = top["message"].as_str().unwrap_or("");
    assert!(msg.contains("within health.bake (1h)") && msg.contains("Container/web"), "{msg}");
    assert!(get(port, "/").contains("version 1"), "v1 serves again");
    // The failed revision is not tried again.
    let _ = agent.ctl(&["sync", "--wait"]);
    assert_eq!(agent.status()["applied_revision"], c1.as_str());
    clear_managed();
}
