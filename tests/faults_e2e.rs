//! Faults are not verdicts (PRODUCT.md behaviour 8) and systemd's promises, end to end: the
//! real Docker engine stopped while a good revision arrives, a real `git daemon` gone while
//! a good revision waits upstream — each time nothing is marked failed, nothing is reverted,
//! `status` says `Degraded` and names the fault, and once it clears the revision is applied
//! by itself. Then `READY=1` and `WATCHDOG=1` read from a notify socket the test listens on,
//! through a 15 s silent build, and the lock on `state_dir` refusing `agentd --once`.

mod common;
use common::agent::Agent;
use common::docker::{self, clear_managed, http_get, setup, EngineStopped, IMAGE};
use common::git::{free_port, git_daemon_on, Upstream};

use std::process::Command;
use std::time::{Duration, Instant};

fn web(v: &str, port: u16) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"mkdir -p /www && echo 'version {v}' > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: \"version {v}\" }}\n      timeout: 10s\n"
    )
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

    // A second agent on the same state_dir (cron's --once beside the daemon, mid-build) is
    // refused.
    agent.wait_phase("Progressing", Duration::from_secs(10));
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

// ---------------------------------------------------------------------------------------
// The fault matrix (docs/reliability.md): one fault each, on the real engine, registry,
// file systems and processes. For each: nothing lost, a clear message, and recovery by
// itself once the fault clears.

/// `web` with a named volume holding a file written at its first start (what must survive).
fn web_with_data(v: &str, port: u16, pre: &str) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"[ -f /data/keep ] || echo precious > /data/keep; mkdir -p /www && echo 'version {v}' > /www/index.html && {pre} exec httpd -f -p 8080 -h /www\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  volumes: [\"driftless-e2e-keep:/data\"]\n  restart: unless-stopped\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: \"version {v}\" }}\n      timeout: 10s\n"
    )
}

/// The named volume still holds what v1 wrote.
fn data_kept() {
    let (code, out) = docker::docker(&["run", "--rm", "-v", "driftless-e2e-keep:/data", IMAGE, "cat", "/data/keep"]);
    assert_eq!((code, out.trim()), (0, "precious"), "the volume's data survived");
}

/// `agentctl sync` without waiting (the test breaks something while it runs).
fn sync_in_background(agent: &Agent) {
    let r = agent.ctl(&["sync"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// Wait until the agent's log says `text` (`n` times).
fn remove_volume() {
    docker::docker(&["volume", "rm", "-f", "driftless-e2e-keep"]);
}

/// An agent serving v1 (with a named volume holding data), started with `pausepoint`; v2
/// (broken when `broken`) is committed and synced, and the engine is stopped while the agent
/// waits at the `nth` pause.
struct StoppedAt {
    agent: Agent,
    engine: EngineStopped,
    port: u16,
    c1: String,
    c2: String,
    _up: Upstream,
}

fn engine_stopped_at(pausepoint: &str, nth: usize, broken: bool) -> StoppedAt {
    remove_volume();
    let port = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web_with_data("1", port, ""))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    common::needs_failpoints();
    agent.start_with(&[("DRIFTLESS_PAUSEPOINT", pausepoint)]);
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    let pre = if broken { "exit 3;" } else { "" };
    let c2 = up.commit(&[("hosts/e2e/web.yaml", &web_with_data("2", port, pre))], "v2");
    sync_in_background(&agent);
    agent.wait_log(&format!("pausepoint {pausepoint}: waiting"), nth, Duration::from_secs(60));
    let engine = EngineStopped::stop();
    StoppedAt { agent, engine, port, c1, c2, _up: up }
}

impl StoppedAt {
    fn clean_up(self) {
        drop(self.agent);
        clear_managed();
        remove_volume();
    }
}

/// Fault: the engine stops between stopping the old container and creating the new one.
#[test]
fn the_engine_stopped_mid_apply_is_finished_like_a_crash_once_it_returns() {
    let Some(_g) = setup() else { return };
    // (The first pause is v1's create.)
    let mut x = engine_stopped_at("after-stop-old", 2, false);
    let s = x.agent.wait_phase_message("Degraded", "Docker is not reachable", Duration::from_secs(60));
    let log = x.agent.log_text();
    assert!(log.contains("interrupted; finished once the fault clears"), "{log}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    assert!(x.agent.state_dir().join("journal.json").exists(), "the journal stays for the fault");
    x.engine.start();
    wait_synced_at(&x.agent, &x.c2, Duration::from_secs(120));
    assert!(http_get(x.port).contains("version 2"));
    nothing_judged(&x.agent);
    data_kept();
    x.clean_up();
}

/// Fault: the engine stops while the health gate runs.
#[test]
fn the_engine_stopped_mid_gate_is_a_fault_not_a_failed_revision() {
    let Some(_g) = setup() else { return };
    // (The first pause is v1's gate.)
    let mut x = engine_stopped_at("gate", 2, false);
    let s = x.agent.wait_phase_message("Degraded", "not of the revision", Duration::from_secs(90));
    assert_eq!(s["failed_revisions"], serde_json::json!([]), "{s}");
    assert_eq!(s["last_good_revision"], x.c1.as_str());
    x.engine.start();
    wait_synced_at(&x.agent, &x.c2, Duration::from_secs(120));
    nothing_judged(&x.agent);
    data_kept();
    x.clean_up();
}

/// Fault: the engine stops while a failed revision is being rolled back.
#[test]
fn the_engine_stopped_mid_revert_is_finished_once_it_returns() {
    let Some(_g) = setup() else { return };
    let mut x = engine_stopped_at("revert", 1, true);
    let s = x.agent.wait_phase_message("Degraded", "Docker is not reachable", Duration::from_secs(60));
    let log = x.agent.log_text();
    assert!(log.contains("was interrupted and is finished once the fault clears"), "{log}");
    assert_eq!(s["failed_revisions"], serde_json::json!([x.c2.as_str()]), "v2's own failure is a verdict: {s}");
    x.engine.start();
    let s = x.agent.wait_phase("RolledBack", Duration::from_secs(120));
    assert_eq!(s["applied_revision"], x.c1.as_str(), "{s}");
    assert!(http_get(x.port).contains("version 1"));
    data_kept();
    x.clean_up();
}

fn app_from(image: &str, pull: &str) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n  pull: {pull}\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  stop_timeout: 1s\n"
    )
}

/// Faults: the registry is down (a fault; applied once it is back); a tag that no longer
/// exists in it (a verdict on the revision: rolled back, named).
#[test]
fn a_registry_down_is_a_fault_and_an_image_that_no_longer_exists_a_verdict() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let reg = common::registry::open_registry_on(port, data.path());
    let image = format!("127.0.0.1:{port}/team/app");
    for tag in ["1", "2"] {
        docker::docker(&["tag", IMAGE, &format!("{image}:{tag}")]);
        let (code, out) = docker::docker(&["push", &format!("{image}:{tag}")]);
        assert_eq!(code, 0, "push: {out}");
        docker::docker(&["rmi", &format!("{image}:{tag}")]);
    }
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/app.yaml", &app_from(&format!("{image}:1"), "if-not-present"))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));

    // The registry goes down while v2 (a new tag to pull) arrives.
    drop(reg);
    let c2 = up.commit(&[("hosts/e2e/app.yaml", &app_from(&format!("{image}:2"), "if-not-present"))], "v2");
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let s = agent.status();
    assert_eq!(s["phase"], "Degraded", "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("not of the revision"), "{msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    assert!(!docker::container_id("app").is_empty(), "v1 still runs");
    let _reg = common::registry::open_registry_on(port, data.path());
    wait_synced_at(&agent, &c2, Duration::from_secs(90));
    nothing_judged(&agent);

    // A tag that is not (or no longer) in the registry: the revision's own content, found
    // before anything runs is touched — failed, the running container the same one.
    let id = docker::container_id("app");
    let c3 = up.commit(&[("hosts/e2e/app.yaml", &app_from(&format!("{image}:gone"), "if-not-present"))], "v3");
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let s = agent.status();
    assert_eq!(s["phase"], "Failed", "{s}");
    assert_eq!(docker::container_id("app"), id, "nothing was touched");
    assert_eq!(s["failed_revisions"], serde_json::json!([c3.as_str()]));
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains(&format!("{image}:gone")), "the image is named: {msg}");
    assert_eq!(s["applied_revision"], c2.as_str());
    drop(agent);
    clear_managed();
    for tag in ["1", "2"] {
        docker::docker(&["rmi", &format!("{image}:{tag}")]);
    }
}

/// Faults of the host's own making: a port held by an unmanaged process, a container name
/// held by an unmanaged container. Neither is touched; the revision is refused with what to
/// do, and the host stays on what it ran.
#[test]
fn a_taken_port_or_container_name_is_named_and_nothing_unmanaged_is_touched() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let taken = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web("1", port))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));

    // A port another process listens on: a fault of the host (the apply waits, journalled,
    // and finishes once the port is free), not a verdict on the revision.
    let holder = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
    let c2 = up.commit(&[("hosts/e2e/web.yaml", &web("2", taken))], "v2 on a taken port");
    agent.ctl(&["sync", "--wait"]);
    let s = agent.status();
    assert_eq!(s["phase"], "Degraded", "{s}");
    let msg = s["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains(&format!("127.0.0.1:{taken}")) && msg.contains("address already in use"), "{msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]), "{s}");
    drop(holder);
    wait_synced_at(&agent, &c2, Duration::from_secs(60));
    assert!(http_get(taken).contains("version 2"));

    // A container name held by a container the agent does not manage.
    let c3 = up.commit(
        &[
            ("hosts/e2e/web.yaml", &web("2", taken)),
            ("hosts/e2e/other.yaml", &app_from(IMAGE, "never").replace("name: app", "name: squatter")),
        ],
        "v3 wants a name in use",
    );
    let (code, out) = docker::docker(&["run", "-d", "--name", "squatter", IMAGE, "sleep", "3600"]);
    assert_eq!(code, 0, "{out}");
    let squatter = docker::container_id("squatter");
    agent.ctl(&["sync", "--wait"]);
    let s = agent.status();
    assert_eq!(s["phase"], "Degraded", "{s}");
    let msg = s["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("a container named squatter exists and is not managed"), "{msg}");
    assert_eq!(docker::container_id("squatter"), squatter, "the unmanaged container is untouched");
    assert!(http_get(taken).contains("version 2"), "what ran runs");
    docker::docker(&["rm", "-f", "squatter"]);
    wait_synced_at(&agent, &c3, Duration::from_secs(60));
    nothing_judged(&agent);
    drop(agent);
    clear_managed();
}

/// A mount the test made, unmounted when dropped (also when the test fails).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str], at: &std::path::Path) -> Mounted {
    std::fs::create_dir_all(at).unwrap();
    let out = Command::new("mount").args(args).arg(at).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {} (the fault tests need root and mount): {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Mounted(at.to_path_buf())
}

/// Fault: `state_dir` full (a 3 MiB tmpfs the test fills): the fetch and the state cannot
/// be written; nothing is judged; once space is free the waiting revision is applied.
#[test]
fn a_full_state_dir_is_a_fault_and_the_agent_carries_on_when_space_returns() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web("1", port))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    let _tmpfs = mount(&["-t", "tmpfs", "-o", "size=3m", "tmpfs"], &agent.state_dir());
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    // Fill it.
    let filler = agent.state_dir().join("filler");
    let _ = Command::new("dd").args(["if=/dev/zero", "bs=64k"]).arg(format!("of={}", filler.display())).output();
    let c2 = up.commit(
        &[("hosts/e2e/web.yaml", &web("2", port)), ("padding.txt", &"x".repeat(200_000))],
        "v2 (and some weight)",
    );
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let s = agent.status();
    assert_eq!(s["phase"], "Degraded", "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.to_lowercase().contains("no space left"), "the fault is named: {msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    assert!(http_get(port).contains("version 1"), "the host keeps running what it ran");
    std::fs::remove_file(&filler).unwrap();
    wait_synced_at(&agent, &c2, Duration::from_secs(90));
    nothing_judged(&agent);
    drop(agent);
    clear_managed();
}

/// Faults: a corrupt journal (named, `Degraded`, the host untouched; gone once moved aside)
/// and a corrupt state file (`agentd` refuses to start, naming it; the host untouched).
#[test]
fn a_corrupt_journal_or_state_file_is_named_and_the_host_is_untouched() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web("1", port))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    let before = docker::container_id("web");
    agent.kill9();

    let journal = agent.state_dir().join("journal.json");
    std::fs::write(&journal, "{\"version\": 1, \"operation\": \"apply\", \"revis").unwrap();
    agent.start();
    let s = agent.wait_phase_message("Degraded", "journal.json", Duration::from_secs(30));
    assert!(s["message"].as_str().unwrap().contains("corrupt"), "{s}");
    assert!(s["message"].as_str().unwrap().contains("move it aside"), "says what to do: {s}");
    assert_eq!(docker::container_id("web"), before, "the host is not touched");
    std::fs::rename(&journal, agent.state_dir().join("journal.json.bad")).unwrap();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    agent.kill9();

    let state = agent.state_dir().join("state.json");
    std::fs::write(&state, "{ \"version\": 1, \"applied\": ").unwrap();
    let r = common::run(common::agentd().arg("--config").arg(&agent.config).arg("--once"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("state.json") && r.stderr.contains("corrupt"), "{}", r.stderr);
    assert!(r.stderr.contains("move it aside"), "{}", r.stderr);
    assert_eq!(docker::container_id("web"), before, "the host is not touched");
    std::fs::rename(&state, agent.state_dir().join("state.json.bad")).unwrap();
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    assert_eq!(docker::container_id("web"), before, "a fresh state finds the host as it wants it");
    drop(agent);
    clear_managed();
}

/// A health check that flaps (passes, fails, passes…): the gate passes when it passes; later
/// polls do not redeploy, roll back or flood the history.
#[test]
fn a_flapping_health_check_is_gated_once_and_causes_no_loop() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let flapping = format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"mkdir -p /www; (while true; do echo ok > /www/health; sleep 1; rm -f /www/health; sleep 1; done) & exec httpd -f -p 8080 -h /www\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/health\", status: 200 }}\n      timeout: 10s\n      interval: 300ms\n"
    );
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &flapping)], "flapping");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    let id = docker::container_id("web");
    // Four syncs spread over the health endpoint's 2-s flap, so some look while it fails
    // (a deliberate spacing in time, not a wait for a condition).
    for _ in 0..4 {
        agent.sync(0);
        std::thread::sleep(Duration::from_millis(700));
    }
    let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json"]).stdout).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 1, "one deployment, nothing more: {h}");
    assert_eq!(docker::container_id("web"), id, "never redeployed");
    drop(agent);
    clear_managed();
}

/// SIGTERM and SIGKILL while an image builds: a clean stop (TERM) or a crash (KILL); either
/// way the next start finishes the apply.
#[test]
fn sigterm_and_sigkill_mid_build_end_on_the_revision_after_a_restart() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let state = format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: site }}\nspec:\n  build: {{ context: site }}\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: \"built\" }}\n      timeout: 10s\n"
    );
    // A nonce: a context seen before (an earlier run of this test) would be reused, not built.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dockerfile = |n: u32| {
        format!(
            "FROM {IMAGE}\n# run {nonce}\nRUN echo building {n}; sleep 6\nRUN mkdir -p /www && echo built {n} > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        )
    };
    for (signal, n) in [("-TERM", 1), ("-KILL", 2)] {
        let c = up.commit(&[("hosts/e2e/site.yaml", &state), ("site/Dockerfile", &dockerfile(n))], "build");
        let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
        agent.start();
        agent.wait_log(&format!("building {n}"), 1, Duration::from_secs(60));
        let pid = agent.pid().to_string();
        let _ = Command::new("kill").args([signal, &pid]).status();
        let status = agent.wait_exit(Duration::from_secs(30));
        if signal == "-TERM" {
            assert!(status.success(), "a clean stop: {status}\n{}", agent.log_text());
        }
        agent.start();
        wait_synced_at(&agent, &c, Duration::from_secs(120));
        assert!(http_get(port).contains(&format!("built {n}")), "{}", agent.log_text());
        nothing_judged(&agent);
        drop(agent);
        clear_managed();
    }
}

/// Fault: the Passenger `app_root` is on a read-only file system (a read-only bind mount):
/// `Degraded`, named; applied by itself once it is writable.
#[test]
fn a_passenger_app_root_that_is_not_writable_is_a_fault_until_it_is() {
    let up = Upstream::new();
    let scratch = tempfile::tempdir().unwrap();
    let app_root = scratch.path().join("app");
    std::fs::create_dir_all(app_root.join("shared")).unwrap();
    std::fs::write(app_root.join("shared/app.db"), "precious\n").unwrap();
    let state = format!(
        "apiVersion: driftless/v1\nkind: PassengerApp\nmetadata: {{ name: api }}\nspec:\n  app_root: {}\n  source: apps/api\n  shared: [app.db]\n  backup: [app.db]\n  health:\n    - exec: [\"true\"]\n",
        app_root.display()
    );
    let c1 = up.commit(&[("hosts/e2e/api.yaml", &state), ("apps/api/passenger_wsgi.py", "application = None\n")], "v1");
    let ro = mount(&["--bind", app_root.to_str().unwrap()], &app_root);
    let out = Command::new("mount").args(["-o", "remount,ro,bind"]).arg(&app_root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase_message("Degraded", "not of the revision", Duration::from_secs(30));
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains(&app_root.display().to_string()) && msg.contains("Read-only file system"), "{msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    drop(ro);
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    assert_eq!(std::fs::read_to_string(app_root.join("shared/app.db")).unwrap(), "precious\n");
    nothing_judged(&agent);
}

/// Fault: the branch the host follows is deleted upstream: named, the host keeps what it
/// runs; once the branch is back, its revision is applied.
#[test]
fn a_deleted_branch_is_named_and_its_return_is_followed() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &web("1", port))], "v1");
    common::git::git(&up.work, &["push", "-q", "origin", "main:release"]);
    let mut agent = Agent::configure(&up.file_url(), "{ branch: release }", "");
    agent.start();
    wait_synced_at(&agent, &c1, Duration::from_secs(60));
    common::git::git(&up.work, &["push", "-q", "origin", ":release"]);
    agent.ctl(&["sync", "--wait"]);
    let s = agent.status();
    let msg = s["message"].as_str().unwrap_or_default();
    assert!(msg.contains("release"), "the branch is named: {s}");
    assert_ne!(s["phase"], "Synced", "{s}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    assert!(http_get(port).contains("version 1"), "the host keeps what it runs");
    eprintln!("deleted branch: phase {} — {msg}", s["phase"]);
    let c2 = up.commit(&[("hosts/e2e/web.yaml", &web("2", port))], "v2");
    common::git::git(&up.work, &["push", "-q", "origin", "main:release"]);
    agent.ctl(&["sync", "--wait"]);
    wait_synced_at(&agent, &c2, Duration::from_secs(60));
    nothing_judged(&agent);
    drop(agent);
    clear_managed();
}

/// Bad input on the control socket: a request line past 64 KiB is refused, and a client that
/// connects and says nothing is answered after 10 s; neither holds a connection or memory,
/// and `status` keeps answering.
#[test]
fn the_control_socket_bounds_what_a_client_can_send() {
    use std::io::{Read, Write};
    let mut agent = Agent::configure("file:///nonexistent/driftless/state.git", "{ branch: main }", "");
    agent.start();
    let mut long = std::os::unix::net::UnixStream::connect(agent.socket()).unwrap();
    let _ = long.write_all(&vec![b'x'; 200 * 1024]);
    let mut answer = String::new();
    let _ = long.read_to_string(&mut answer);
    assert!(answer.contains("request longer than 65536 bytes"), "{answer}");
    let t = Instant::now();
    let mut silent = std::os::unix::net::UnixStream::connect(agent.socket()).unwrap();
    assert_eq!(agent.ctl(&["status", "--json"]).code, 0, "others are served meanwhile");
    let mut answer = String::new();
    let _ = silent.read_to_string(&mut answer);
    assert!(answer.contains("no request within 10 s"), "{answer}");
    assert!(t.elapsed() >= Duration::from_secs(9), "{:?}", t.elapsed());
    assert_eq!(agent.ctl(&["status", "--json"]).code, 0);
}
