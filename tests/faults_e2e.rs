//! Faults are not verdicts (PRODUCT.md behaviour 8) and systemd's promises, end to end: the
//! real Docker engine stopped while a good revision arrives, a real `git daemon` gone while
//! a good revision waits upstream — each time nothing is marked failed, nothing is reverted,
//! `status` says `Degraded` and names the fault, and once it clears the revision is applied
//! by itself. Then `READY=1` and `WATCHDOG=1` read from a notify socket the test listens on,
//! through a 15 s silent build, and the lock on `state_dir` refusing `agentd --once`.

mod common;
use common::agent::Agent;
use common::docker::{self, clear_managed, http_get, setup, IMAGE};
use common::git::{free_port, git_daemon_on, Upstream};

use std::process::Command;
use std::time::{Duration, Instant};

fn web(v: &str, port: u16) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"mkdir -p /www && echo 'version {v}' > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: \"version {v}\" }}\n      timeout: 10s\n"
    )
}

fn engine_up() -> bool {
    docker::docker(&["info"]).0 == 0
}

fn systemd_docker() -> bool {
    Command::new("systemctl").args(["is-active", "--quiet", "docker"]).status().is_ok_and(|s| s.success())
}

/// Stops the engine; starts it again when dropped (so a failing test leaves it running).
struct EngineStopped {
    systemd: bool,
    started: bool,
}

impl EngineStopped {
    fn stop() -> EngineStopped {
        let systemd = systemd_docker();
        if systemd {
            let _ = Command::new("systemctl").args(["stop", "docker.socket", "docker"]).status();
        } else {
            let _ = Command::new("pkill").args(["-TERM", "-x", "dockerd"]).status();
        }
        let t = Instant::now();
        // Gone means the process, not only the API: a new dockerd refuses to start while the
        // old one still holds its pid file.
        let running = || Command::new("pgrep").args(["-x", "dockerd"]).output().is_ok_and(|o| o.status.success());
        while engine_up() || running() {
            assert!(t.elapsed() < Duration::from_secs(60), "dockerd did not stop");
            std::thread::sleep(Duration::from_millis(200));
        }
        EngineStopped { systemd, started: false }
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        if self.systemd {
            let _ = Command::new("systemctl").args(["start", "docker"]).status();
        } else {
            let _ = Command::new("sh").args(["-c", "nohup dockerd >>/tmp/driftless-dockerd.log 2>&1 &"]).status();
        }
        let t = Instant::now();
        while !engine_up() {
            assert!(t.elapsed() < Duration::from_secs(60), "dockerd did not start again");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for EngineStopped {
    fn drop(&mut self) {
        self.start();
    }
}

fn wait_synced_at(agent: &Agent, rev: &str, timeout: Duration) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let s = agent.status();
        if s["phase"] == "Synced" && s["applied_revision"] == rev {
            return s;
        }
        assert!(t.elapsed() < timeout, "not Synced at {rev} within {timeout:?}: {s}\nlog:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn nothing_judged(agent: &Agent) {
    let h = agent.ctl(&["history", "--json"]);
    let h: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    for e in h.as_array().unwrap() {
        assert!(!matches!(e["result"].as_str(), Some("rolled_back" | "failed")), "a fault was judged: {e}");
    }
}

#[test]
fn the_engine_stopped_while_a_good_revision_arrives_is_a_fault_then_it_is_applied() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web("1", port))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));

    let mut engine = EngineStopped::stop();
    let c2 = up.commit(&[("hosts/e2e/web.yaml", &web("2", port))], "v2");
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "a Degraded host exits 1: {}{}", r.stdout, r.stderr);
    let s = agent.status();
    assert_eq!(s["phase"], "Degraded", "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains("Docker is not reachable"), "the fault is named: {msg}");
    assert!(msg.contains("not of the revision"), "{msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]), "{s}");
    assert_eq!(s["applied_revision"], c1.as_str(), "nothing reverted: {s}");
    assert_eq!(s["desired_revision"], c2.as_str());

    engine.start();
    // No sync asked for: the agent retries with backoff and applies v2 by itself.
    let s = wait_synced_at(&agent, &c2, Duration::from_secs(90));
    assert_eq!(s["failed_revisions"], serde_json::json!([]), "{s}");
    assert_eq!(s["last_good_revision"], c2.as_str());
    assert!(http_get(port).contains("version 2"));
    nothing_judged(&agent);
    assert!(agent.log_text().contains("fault cleared"), "{}", agent.log_text());
    clear_managed();
}

#[test]
fn an_unreachable_remote_is_a_fault_and_the_waiting_revision_is_applied_when_it_returns() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web("1", port))], "v1");
    let daemon_port = free_port();
    let daemon = git_daemon_on(&up, daemon_port);
    let url = format!("git://127.0.0.1:{daemon_port}/{}", up.bare.file_name().unwrap().to_string_lossy());
    let mut agent = Agent::configure(&url, "{ branch: main }", "");
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));

    drop(daemon);
    let c2 = up.commit(&[("hosts/e2e/web.yaml", &web("2", port))], "v2");
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let s = agent.status();
    assert_eq!(s["phase"], "Degraded", "{s}");
    assert!(s["message"].as_str().unwrap().contains("cannot reach git://127.0.0.1"), "{s}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert!(http_get(port).contains("version 1"), "the host keeps running what it ran");

    let _daemon = git_daemon_on(&up, daemon_port);
    wait_synced_at(&agent, &c2, Duration::from_secs(90));
    assert!(http_get(port).contains("version 2"));
    nothing_judged(&agent);
    clear_managed();
}

/// Datagrams received on a notify socket, with when they came.
fn listen_notify(path: &std::path::Path) -> std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>> {
    let sock = std::os::unix::net::UnixDatagram::bind(path).unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            g.lock().unwrap().push((Instant::now(), text));
        }
    });
    got
}

#[test]
fn ready_at_once_and_the_watchdog_fed_through_a_silent_build_and_one_agent_per_state_dir() {
    let up = Upstream::new();
    let scratch = tempfile::tempdir().unwrap();
    let app_root = scratch.path().join("app");
    let state = format!(
        "apiVersion: driftless/v1\nkind: PassengerApp\nmetadata: {{ name: api }}\nspec:\n  app_root: {}\n  source: apps/api\n  build: [\"sh\", \"-c\", \"sleep 15\"]\n  build_timeout: 60s\n  health:\n    - exec: [\"true\"]\n",
        app_root.display()
    );
    let c1 = up.commit(&[("hosts/e2e/api.yaml", &state), ("apps/api/passenger_wsgi.py", "application = None\n")], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    let notify = scratch.path().join("notify.sock");
    let got = listen_notify(&notify);
    let started = Instant::now();
    agent.spawn(&[("NOTIFY_SOCKET", notify.to_str().unwrap()), ("WATCHDOG_USEC", "4000000")]);

    // READY=1 once the control socket answers, long before the 15 s build ends.
    let ready_at = loop {
        if let Some((t, _)) = got.lock().unwrap().iter().find(|(_, m)| m.contains("READY=1")) {
            break *t;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no READY=1 within 5 s; log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(agent.ctl(&["status", "--json"]).code, 0, "the socket answers once READY=1 is sent");

    // A second agent on the same state_dir (cron's --once beside the daemon) is refused.
    std::thread::sleep(Duration::from_secs(2));
    let once = common::run(common::agentd().arg("--config").arg(&agent.config).arg("--once"));
    assert_eq!(once.code, 1, "{}{}", once.stdout, once.stderr);
    assert!(once.stderr.contains(&format!("pid {}", agent.pid())), "the holder is named: {}", once.stderr);

    wait_synced_at(&agent, &c1, Duration::from_secs(90));
    let done = Instant::now();
    assert!(done - ready_at >= Duration::from_secs(14), "the build ran after READY=1");
    let pings: Vec<Instant> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, m)| m.contains("WATCHDOG=1") && *t >= ready_at && *t <= done)
        .map(|(t, _)| *t)
        .collect();
    let mut last = ready_at;
    let mut worst = Duration::ZERO;
    for t in &pings {
        worst = worst.max(*t - last);
        last = *t;
    }
    worst = worst.max(done - last);
    eprintln!("{} WATCHDOG=1 pings over {:?}; the longest gap {:?}", pings.len(), done - ready_at, worst);
    assert!(worst <= Duration::from_secs(2), "a watchdog gap of {worst:?} exceeds half the 4 s period");
}
