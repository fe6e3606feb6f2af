//! The main job end to end: a real `agentd` follows a real Git repository and runs containers
//! on the real Docker engine (images built locally, no registry). Deploy from main, promote by
//! tag, roll back a broken revision by itself and not retry it, repair drift, refuse invalid
//! state, leave unmanaged containers alone, pin with rollback until resume, and finish the
//! job after kill -9 at every step.

mod common;
use common::agent::Agent;
use common::docker::{self, clear_managed, http_get, instances, label, setup, IMAGE};
use common::git::{free_port, git, Upstream};

use std::io::{Read, Write};
use std::time::Duration;

/// A container `web` serving "version {v}" on `port`; `pre` runs before the server starts
/// (e.g. `exit 3;` to break it).
fn web(v: &str, port: u16, pre: &str) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"mkdir -p /www && echo 'version {v}' > /www/index.html && {pre} exec httpd -f -p 8080 -h /www\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: \"version {v}\" }}\n      timeout: 10s\n"
    )
}

fn push(up: &Upstream, text: &str, msg: &str) -> String {
    up.commit(&[("hosts/e2e/web.yaml", text)], msg)
}

#[test]
fn deploys_from_main_rolls_back_a_broken_revision_and_tells_the_story() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = push(&up, &web("1", port, ""), "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert_eq!(s["last_good_revision"], c1.as_str());
    assert!(http_get(port).contains("version 1"));
    assert_eq!(label("web", "driftless.managed"), "true");
    assert_eq!(label("web", "driftless.revision"), c1);
    assert_eq!(label("web", "driftless.spec-hash").len(), 64);
    for key in [
        "host",
        "environment",
        "source",
        "phase",
        "desired_revision",
        "applied_revision",
        "last_good_revision",
        "failed_revisions",
        "paused",
        "last_sync",
        "next_sync",
        "message",
        "resources",
    ] {
        assert!(s.get(key).is_some(), "status --json lacks {key}: {s}");
    }
    assert_eq!(s["resources"][0]["name"], "web");
    assert_eq!(s["resources"][0]["state"], "running");
    assert_eq!(s["resources"][0]["health"], "healthy");

    // A broken revision: rolled back by itself, marked failed, not retried.
    let c2 = push(&up, &web("2", port, "exit 3;"), "v2 broken");
    let r = agent.sync(1);
    assert!(r.stdout.contains("rolled back to"), "{}", r.stdout);
    let s = agent.status();
    assert_eq!(s["phase"], "RolledBack");
    assert_eq!(s["desired_revision"], c2.as_str());
    assert_eq!(s["applied_revision"], c1.as_str());
    assert_eq!(s["failed_revisions"], serde_json::json!([c2]));
    assert!(s["message"].as_str().unwrap().contains("failed"), "{s}");
    assert!(http_get(port).contains("version 1"));
    assert_eq!(instances("web"), [("web".to_string(), true)], "one copy, running");
    let before = docker::container_id("web");
    let r = agent.sync(0);
    assert!(Agent::result_line(&r).starts_with("none: RolledBack"), "not retried: {}", r.stdout);
    assert_eq!(docker::container_id("web"), before, "nothing touched");
    // --retry tries again (and rolls back again).
    let r = agent.ctl(&["sync", "--wait", "--retry"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("apply "), "{}", r.stdout);

    // A fixed revision is applied.
    let c3 = push(&up, &web("3", port, ""), "v3");
    agent.sync(0);
    let s = agent.status();
    assert_eq!(s["phase"], "Synced");
    assert_eq!(s["applied_revision"], c3.as_str());
    assert!(http_get(port).contains("version 3"));

    // The history tells the story, newest first.
    let h = agent.ctl(&["history", "--json"]);
    let h: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let results: Vec<&str> = h.as_array().unwrap().iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["applied", "rolled_back", "rolled_back", "applied"], "{h}");
    for key in ["started", "finished", "revision", "result", "changes", "message"] {
        assert!(h[0].get(key).is_some(), "history entry lacks {key}");
    }
    let table = agent.ctl(&["history"]);
    assert!(table.stdout.starts_with("STARTED"), "{}", table.stdout);
    assert!(
        table.stdout.lines().nth(1).is_some_and(|l| l.contains("s ago") || l.contains("m ago")),
        "ages: {}",
        table.stdout
    );
    let status = agent.ctl(&["status"]).stdout;
    assert!(status.contains("last sync:  ") && status.contains(" ago   next sync: in "), "{status}");
    clear_managed();
}

#[test]
fn a_tag_following_agent_is_promoted_by_pushing_the_tag() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = push(&up, &web("1", port, ""), "v1");
    up.tag("production");
    let mut agent = Agent::configure(&up.file_url(), "{ tag: production }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    push(&up, &web("2", port, ""), "v2 on main");
    agent.sync(0);
    assert_eq!(agent.status()["applied_revision"], c1.as_str(), "a commit to main does not reach production");
    let diff = agent.ctl(&["diff"]);
    assert_eq!(diff.code, 0, "nothing pending: {}", diff.stdout);
    up.tag("production");
    let diff = agent.ctl(&["diff"]);
    assert_eq!(diff.code, 2, "changes pending: {}{}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("replace Container/web"), "{}", diff.stdout);
    agent.sync(0);
    assert!(http_get(port).contains("version 2"));
    clear_managed();
}

#[test]
fn drift_is_repaired_and_unmanaged_containers_are_left_alone() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    push(&up, &web("1", port, ""), "v1");
    docker::docker(&["rm", "-f", "driftless-e2e-unmanaged"]);
    let (code, _) = docker::docker(&["run", "-d", "--name", "driftless-e2e-unmanaged", IMAGE, "sleep", "300"]);
    assert_eq!(code, 0);
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));

    docker::docker(&["stop", "-t", "1", "web"]);
    // Repaired by the engine's events at once, or by this sync, whichever comes first.
    let r = agent.sync(0);
    let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json", "-n", "1"]).stdout).unwrap();
    assert!(
        Agent::result_line(&r).starts_with("drift_repaired") || h[0]["result"] == "drift_repaired",
        "{}\n{h}",
        r.stdout
    );
    assert!(http_get(port).contains("version 1"));
    docker::docker(&["rm", "-f", "web"]);
    agent.sync(0);
    assert_eq!(instances("web"), [("web".to_string(), true)]);
    let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json", "-n", "1"]).stdout).unwrap();
    assert_eq!(h[0]["result"], "drift_repaired");

    let (code, state) = docker::docker(&["inspect", "-f", "{{.State.Running}}", "driftless-e2e-unmanaged"]);
    assert_eq!((code, state.as_str()), (0, "true"), "the unmanaged container is untouched");
    docker::docker(&["rm", "-f", "driftless-e2e-unmanaged"]);
    clear_managed();
}

#[test]
fn an_invalid_revision_is_reported_and_nothing_is_touched() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    push(&up, &web("1", port, ""), "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let before = docker::container_id("web");
    let bad = web("2", port, "").replace("  pull: never\n", "  pull: never\n  ports_typo: []\n");
    let c2 = push(&up, &bad, "typo");
    agent.sync(1);
    let s = agent.status();
    assert_eq!(s["phase"], "Invalid");
    assert_eq!(s["desired_revision"], c2.as_str());
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains("hosts/e2e/web.yaml:7:3: spec.ports_typo: unknown key `ports_typo`"), "{msg}");
    assert_eq!(docker::container_id("web"), before, "nothing touched");
    assert!(http_get(port).contains("version 1"));
    clear_managed();
}

#[test]
fn rollback_pins_the_host_until_resume() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = push(&up, &web("1", port, ""), "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let c2 = push(&up, &web("2", port, ""), "v2");
    agent.sync(0);
    assert!(http_get(port).contains("version 2"));

    let r = agent.ctl(&["rollback", &c1]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(http_get(port).contains("version 1"));
    let s = agent.status();
    assert_eq!(s["pinned_revision"], c1.as_str());
    assert_eq!(s["applied_revision"], c1.as_str());
    push(&up, &web("3", port, ""), "v3");
    agent.sync(0);
    assert!(http_get(port).contains("version 1"), "pinned: a new commit is not applied");

    let r = agent.ctl(&["resume"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(http_get(port).contains("version 3"), "resume follows the branch again");
    assert_ne!(agent.status()["applied_revision"], c2.as_str());

    let r = agent.ctl(&["pause"]);
    assert!(r.stdout.starts_with("phase: Paused"), "{}", r.stdout);
    push(&up, &web("4", port, ""), "v4");
    agent.sync(0);
    assert!(http_get(port).contains("version 3"), "paused");
    agent.ctl(&["resume"]);
    assert!(http_get(port).contains("version 4"));
    clear_managed();
}

#[test]
fn agentctl_without_an_agent_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let r = common::run(common::agentctl().arg("--socket").arg(dir.path().join("none.sock")).arg("status"));
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("no agent answers on"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
}

/// The CLI's conventions (PRODUCT.md `agentctl`, issue 39): usage errors exit 64 (never 2,
/// which `diff` uses); `DRIFTLESS_SOCKET` stands for `--socket`; `agentctl version` names
/// client and agent; `agentctl wait` exits 0 once there, 4 at its timeout and 1 when the
/// revision it waits for is rolled back; `sync --wait --timeout` exits 4 while the sync goes on.
#[test]
fn usage_errors_exit_64_and_wait_and_version_speak_for_scripts() {
    for args in [&["diff", "--bogus"][..], &[][..], &["wait", "--for", "sometime"][..]] {
        let r = common::run(common::agentctl().args(args));
        assert_eq!(r.code, 64, "agentctl {args:?}: {}", r.stderr);
    }
    assert_eq!(common::run(common::agentctl().arg("--help")).code, 0);
    assert_eq!(common::run(common::agentd().arg("--bogus")).code, 64);
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.sock");
    let r = common::run(common::agentctl().env("DRIFTLESS_SOCKET", &none).arg("status"));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&none.display().to_string()), "{}", r.stderr);

    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = push(&up, &web("1", port, ""), "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let r = agent.ctl(&["wait", "--for", "healthy", "--timeout", "60s"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = agent.ctl(&["wait", "--for", &format!("revision={}", &c1[..8])]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = agent.ctl(&["version"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("agentctl 0.") && r.stdout.contains("agentd   0.") && r.stdout.contains("started 20"),
        "{}",
        r.stdout
    );
    let r = agent.ctl(&["wait", "--for", "revision=deadbeef", "--timeout", "1s"]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not revision=deadbeef after 1s"), "{}", r.stderr);
    // A broken revision: waiting for it ends with 1 once it is rolled back.
    let c2 = push(&up, &web("2", port, "exit 3;"), "v2");
    let r = agent.ctl(&["sync", "--wait", "--timeout", "1ms"]);
    assert_eq!(r.code, 4, "the wait ends, the sync goes on: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the request was delivered and the agent goes on with it"), "{}", r.stderr);
    let r = agent.ctl(&["wait", "--for", &format!("revision={c2}"), "--timeout", "60s"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("failed or was rolled back"), "{}", r.stderr);
    clear_managed();
}

/// kill -9 at `failpoint` while applying v2 (or, with `break_v2`, while reverting from it);
/// restart; the host must end on v2 or v1 — one running copy, labels matching status.
fn crash_and_recover(failpoint: &str, break_v2: bool) {
    let port = free_port();
    let up = Upstream::new();
    let c1 = push(&up, &web("1", port, ""), "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    agent.kill9();

    let c2 = push(&up, &web("2", port, if break_v2 { "exit 3;" } else { "" }), "v2");
    // The startup cycle applies v2 and dies at the failpoint.
    common::needs_failpoints();
    agent.spawn(&[("DRIFTLESS_FAILPOINT", failpoint)]);
    let status = agent.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "agentd should have aborted at {failpoint}");
    assert!(agent.log_text().contains(&format!("failpoint {failpoint}")), "{}", agent.log_text());
    assert!(agent.state_dir().join("journal.json").exists(), "the journal survives the crash");

    agent.start();
    let s = agent.wait_phase(if break_v2 { "RolledBack" } else { "Synced" }, Duration::from_secs(90));
    let want = if break_v2 { &c1 } else { &c2 };
    assert_eq!(s["applied_revision"], want.as_str(), "{failpoint}: {s}");
    assert_eq!(instances("web"), [("web".to_string(), true)], "{failpoint}: exactly one running copy");
    assert_eq!(label("web", "driftless.revision"), *want, "{failpoint}");
    assert!(http_get(port).contains(if break_v2 { "version 1" } else { "version 2" }));
    assert!(!agent.state_dir().join("journal.json").exists(), "the journal is finished");
    assert!(agent.log_text().contains("found an unfinished"), "{}", agent.log_text());
    clear_managed();
}

#[test]
fn kill_9_before_a_create() {
    let Some(_g) = setup() else { return };
    crash_and_recover("before-create", false);
}

#[test]
fn kill_9_after_stopping_the_old_container() {
    let Some(_g) = setup() else { return };
    crash_and_recover("after-stop-old", false);
}

#[test]
fn kill_9_during_the_gate() {
    let Some(_g) = setup() else { return };
    crash_and_recover("gate", false);
}

#[test]
fn kill_9_during_a_revert() {
    let Some(_g) = setup() else { return };
    crash_and_recover("revert", true);
}

#[test]
fn a_first_revision_that_fails_ends_failed_not_in_a_loop() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    push(&up, &web("1", port, "exit 3;"), "broken from the start");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Failed", Duration::from_secs(60));
    assert!(s["message"].as_str().unwrap().contains("no last good revision"), "{s}");
    let before = docker::container_id("web");
    let r = agent.sync(1);
    assert!(Agent::result_line(&r).starts_with("none: Failed"), "not retried: {}", r.stdout);
    assert_eq!(docker::container_id("web"), before, "no repair loop");
    let _ = git; // (the helper is shared with other tests)
    clear_managed();
}

fn wait_applied(agent: &Agent, rev: &str, timeout: Duration) -> Duration {
    let start = std::time::Instant::now();
    loop {
        if agent.status()["applied_revision"] == rev {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{rev} not applied within {timeout:?}; log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_applies_a_push_to_a_local_repository_at_once() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    push(&up, &web("1", port, ""), "v1");
    // interval 1h: only the watch can explain a quick pickup.
    let mut agent = Agent::configure(&up.bare.display().to_string(), "{ branch: main }", "");
    let cfg =
        std::fs::read_to_string(&agent.config).unwrap().replace("  interval: 1h\n", "  interval: 1h\n  watch: true\n");
    std::fs::write(&agent.config, cfg).unwrap();
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let c2 = push(&up, &web("2", port, ""), "v2");
    let took = wait_applied(&agent, &c2, Duration::from_secs(20));
    eprintln!("watch: commit to applied (incl. a 1-container replace and gate) in {} ms", took.as_millis());
    assert!(agent.log_text().contains("watching"), "{}", agent.log_text());
    clear_managed();
}

fn post(port: u16, headers: &[(&str, String)], body: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req =
        format!("POST /hook HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let _ = s.write_all(req.as_bytes());
    let _ = s.write_all(body);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_signed_webhook_triggers_a_sync_over_smart_http_with_a_token() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let c1 = push(&up, &web("1", port, ""), "v1");
    let server = common::git::git_http(&up, Some("t0ken"));
    let hook_port = free_port();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("token"), "t0ken\n").unwrap();
    std::fs::write(secrets.path().join("hook"), "hook-secret\n").unwrap();
    let extra = format!(
        "webhook: {{ listen: \"127.0.0.1:{hook_port}\", secret_file: {} }}\n",
        secrets.path().join("hook").display()
    );
    let url = format!("http://127.0.0.1:{}/state.git", server.port);
    let mut agent = Agent::configure(&url, "{ branch: main }", &extra);
    let cfg = std::fs::read_to_string(&agent.config).unwrap().replace(
        "  interval: 1h\n",
        &format!("  interval: 1h\n  auth: {{ token_file: {} }}\n", secrets.path().join("token").display()),
    );
    std::fs::write(&agent.config, cfg).unwrap();
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());

    let c2 = push(&up, &web("2", port, ""), "v2");
    let body = br#"{"ref":"refs/heads/main"}"#;
    let good = driftless_agent::webhook::sign(b"hook-secret", body);
    let bad = driftless_agent::webhook::sign(b"wrong", body);
    assert_eq!(post(hook_port, &[("X-Hub-Signature-256", format!("sha256={bad}"))], body), 401);
    assert_eq!(post(hook_port, &[], body), 401);
    assert_eq!(post(hook_port, &[("X-Gitlab-Token", "nope".into())], body), 401);
    assert_eq!(
        post(hook_port, &[("X-Hub-Signature-256", format!("sha256={good}"))], &vec![b'x'; 1024 * 1024 + 1]),
        413
    );
    agent.settle();
    assert_eq!(agent.status()["applied_revision"], c1.as_str(), "refused deliveries trigger nothing");

    assert_eq!(post(hook_port, &[("X-Hub-Signature-256", format!("sha256={good}"))], body), 202);
    let took = wait_applied(&agent, &c2, Duration::from_secs(20));
    eprintln!("webhook: delivery to applied (incl. a 1-container replace and gate) in {} ms", took.as_millis());
    assert!(http_get(port).contains("version 2"));
    clear_managed();
}

#[test]
fn sighup_reloads_a_good_config_keeps_the_old_one_on_a_bad_one_sigusr1_syncs_sigterm_stops_cleanly() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    push(&up, &web("1", port, ""), "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let pid = agent.pid().to_string();

    // The socket is 0660 and refuses users outside its group.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(agent.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let as_nobody = common::run(
        std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_agentctl"))
            .arg("--socket")
            .arg(agent.socket())
            .arg("status"),
    );
    assert_eq!(as_nobody.code, 3, "{}", as_nobody.stderr);
    assert!(
        as_nobody.stderr.contains("permission denied; agentctl needs root or membership in the socket's group"),
        "{}",
        as_nobody.stderr
    );

    // A bad config: refused, the old one stays in force.
    let good = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(&agent.config, good.replace("interval: 1h", "interval: soon")).unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &pid]).status();
    let wait_log = |what: &str, n: usize| {
        let start = std::time::Instant::now();
        while agent.log_text().matches(what).count() < n {
            assert!(start.elapsed() < Duration::from_secs(10), "no {what:?} in the log: {}", agent.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_log("the new config is refused, the old one stays in force", 1);
    assert_eq!(agent.status()["phase"], "Synced");

    // A valid config that changes a key read only at start (host, metrics): refused whole,
    // naming the keys and saying to restart; the agent keeps running on the old one.
    std::fs::write(
        &agent.config,
        good.replace("host: e2e", "host: e2e-renamed").replace("interval: 1h", "interval: 40s")
            + "metrics: { listen: \"127.0.0.1:1\" }\n",
    )
    .unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &pid]).status();
    wait_log("the new config is refused, the old one stays in force", 2);
    let log = agent.log_text();
    assert!(log.contains("host, metrics are read only when agentd starts; restart agentd"), "{log}");
    let s = agent.status();
    assert_eq!(s["host"], "e2e", "the old config stays in force");
    assert_eq!(s["phase"], "Synced");

    // A good one is taken.
    std::fs::write(&agent.config, good.replace("interval: 1h", "interval: 40s") + "environment: reloaded\n").unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &pid]).status();
    let start = std::time::Instant::now();
    while agent.status()["environment"] != "reloaded" {
        assert!(start.elapsed() < Duration::from_secs(10), "not reloaded: {}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The new interval is in force at once (next sync within 40 s ± 10%, not an hour).
    let next = agent.status()["next_sync"].as_str().unwrap_or_default().to_string();
    let next = humantime::parse_rfc3339(&next).unwrap_or_else(|e| panic!("next_sync {next:?}: {e}"));
    let ahead = next.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(ahead < Duration::from_secs(45), "next sync in {ahead:?} after the interval became 40s");

    // SIGUSR1: sync now (the poll interval is an hour).
    let v2 = push(&up, &web("2", port, ""), "v2");
    let _ = std::process::Command::new("kill").args(["-USR1", &pid]).status();
    wait_applied(&agent, &v2, Duration::from_secs(30));
    assert_eq!(agent.status()["phase"], "Synced");
    // Every line of the cycle carries its revision (a tracing span).
    let tagged = format!("reconcile{{revision={}}}", &v2[..12]);
    assert!(
        agent.log_text().lines().any(|l| l.contains(&tagged) && l.contains("health gate")),
        "no log line carries {tagged}:\n{}",
        agent.log_text()
    );

    // SIGTERM: a clean stop, the socket removed, the containers left running.
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let status = agent.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(!agent.socket().exists());
    assert_eq!(instances("web"), [("web".to_string(), true)]);
    clear_managed();
}

#[test]
fn env_files_networks_volumes_once_and_drift_report() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let host = tempfile::tempdir().unwrap();
    let env_file = host.path().join("web.env");
    std::fs::write(&env_file, "# secrets\nSECRET_TOKEN=hunter2\nexport MODE=prod\n").unwrap();
    let data = host.path().join("data");
    let text = web("1", port, "")
        .replace("  stop_timeout: 1s\n", &format!(
            "  stop_timeout: 1s\n  env: {{ MODE: override }}\n  env_files: [{}]\n  networks: [driftless-e2e-net]\n  volumes: [\"{}:/data\"]\n",
            env_file.display(),
            data.display()
        ))
        .replace("echo 'version 1' > /www/index.html", "echo 'version 1' > /www/index.html && echo $SECRET_TOKEN $MODE > /data/seen");
    let c1 = push(&up, &text, "v1");
    let agent = Agent::configure(&up.file_url(), "{ branch: main }", "drift: report\n");

    // --once: one cycle, exit 0, no daemon.
    let r = common::run(common::agentd().arg("--config").arg(&agent.config).arg("--once"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with(&format!("Synced {}", &c1[..12])), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(data.join("seen")).unwrap().trim(),
        "hunter2 override",
        "env_files, then env over them"
    );
    let (_, nets) =
        docker::docker(&["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "web"]);
    assert_eq!(nets.trim(), "driftless-e2e-net");
    let log = std::fs::read_to_string(agent.state_dir().join("state.json")).unwrap();
    assert!(!log.contains("hunter2") && !r.stderr.contains("hunter2"), "secret values stay out of state and logs");

    // drift: report — a stopped container is reported, not started.
    docker::docker(&["stop", "-t", "1", "web"]);
    let r = common::run(common::agentd().arg("--config").arg(&agent.config).arg("--once"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("drift (not repaired, drift: report): repair Container/web (not running)"),
        "{}",
        r.stdout
    );
    assert_eq!(instances("web"), [("web".to_string(), false)], "reported, not repaired");

    // A changed env file changes the spec hash: with drift: repair it is applied.
    let cfg = std::fs::read_to_string(&agent.config).unwrap().replace("drift: report\n", "");
    std::fs::write(&agent.config, cfg).unwrap();
    std::fs::write(&env_file, "SECRET_TOKEN=rotated\n").unwrap();
    let r = common::run(common::agentd().arg("--config").arg(&agent.config).arg("--once"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("replace Container/web (a host-side input changed since it was applied"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(data.join("seen")).unwrap().trim(), "rotated override");
    assert!(data.join("seen").exists(), "the bind-mounted data survived the replace");
    clear_managed();
    docker::docker(&["network", "rm", "driftless-e2e-net"]);
}

#[test]
fn force_pushes_reach_the_history_and_unsigned_revisions_are_refused() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    push(&up, &web("1", port, ""), "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    git(&up.work, &["reset", "-q", "--hard", "HEAD~0"]);
    std::fs::write(up.work.join("hosts/e2e/web.yaml"), web("2", port, "")).unwrap();
    git(&up.work, &["commit", "-q", "--amend", "-am", "v1 rewritten"]);
    git(&up.work, &["push", "-q", "-f", "origin", "main"]);
    agent.sync(0);
    let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json", "-n", "1"]).stdout).unwrap();
    assert!(
        h[0]["message"].as_str().unwrap().starts_with("main was force-moved upstream"),
        "{h}\n{}",
        agent.log_text()
    );
    assert!(http_get(port).contains("version 2"));
    agent.kill9();

    // verify: an unsigned revision is refused and nothing is applied.
    let keys = tempfile::tempdir().unwrap();
    let pubkey = common::git::keygen(&keys.path().join("signer"));
    std::fs::write(keys.path().join("allowed_signers"), format!("ops@example.invalid {pubkey}\n")).unwrap();
    let cfg = std::fs::read_to_string(&agent.config).unwrap().replace(
        "  interval: 1h\n",
        &format!(
            "  interval: 1h\n  verify: {{ allowed_signers: {} }}\n",
            keys.path().join("allowed_signers").display()
        ),
    );
    std::fs::write(&agent.config, cfg).unwrap();
    let before = docker::container_id("web");
    push(&up, &web("3", port, ""), "v3 unsigned");
    agent.start();
    let s = agent.wait_phase("Failed", Duration::from_secs(30));
    assert!(s["message"].as_str().unwrap().contains("refused: the commit is not signed"), "{s}");
    assert_eq!(docker::container_id("web"), before, "nothing applied");
    clear_managed();
}

fn metrics_text(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn notifications_are_sent_once_per_outcome_and_metrics_are_served() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let (hook_port, got) = common::notify::receiver();
    let metrics_port = free_port();
    let up = Upstream::new();
    let c1 = push(&up, &web("1", port, ""), "v1");
    let extra = format!("notify: [ {{ url: \"http://127.0.0.1:{hook_port}/deploys\" }} ]\nmetrics: {{ listen: \"127.0.0.1:{metrics_port}\" }}\n");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", &extra);
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let c2 = push(&up, &web("2", port, "exit 3;"), "v2 broken");
    agent.sync(1);
    agent.sync(0); // not retried: no new event
    let r = agent.ctl(&["sync", "--wait", "--retry"]);
    assert_eq!(r.code, 1, "retried and rolled back again");

    // One event per outcome: the retry's second rollback of c2 is not notified again. The
    // positive sign that it had its chance to be: the next revision's events follow it.
    let c3 = push(&up, &web("3", port, ""), "v3");
    agent.sync(0);
    let start = std::time::Instant::now();
    while got.lock().unwrap().len() < 6 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let events: Vec<(String, String)> = got
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["revision"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        events,
        [
            ("started".to_string(), c1.clone()),
            ("applied".to_string(), c1.clone()),
            ("started".to_string(), c2.clone()),
            ("rolled_back".to_string(), c2.clone()),
            ("started".to_string(), c3.clone()),
            ("applied".to_string(), c3.clone())
        ],
        "one event per outcome"
    );
    let first = &got.lock().unwrap()[0];
    for key in ["event", "host", "environment", "revision", "message", "time"] {
        assert!(first.get(key).is_some(), "notification lacks {key}: {first}");
    }

    let m = metrics_text(metrics_port);
    for name in [
        "driftless_reconcile_duration_seconds_bucket",
        "driftless_reconcile_duration_seconds_count",
        "driftless_last_success_timestamp_seconds",
        "driftless_phase{phase=\"Synced\"} 1",
        "driftless_phase{phase=\"RolledBack\"} 0",
        "driftless_deployments_total 2",
        "driftless_rollbacks_total 2",
        "driftless_health_check_failures_total 2",
        "driftless_drift_repairs_total 0",
        "driftless_git_fetch_duration_seconds_count",
        "driftless_git_fetch_errors_total 0",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
    let info = format!("driftless_revision_info{{desired=\"{c3}\",applied=\"{c3}\",last_good=\"{c3}\"}} 1");
    assert!(m.contains(&info), "{m}");
    clear_managed();
}

#[test]
fn the_engines_events_repair_drift_in_seconds_not_at_the_next_poll() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    push(&up, &web("1", port, ""), "v1");
    // The poll interval is an hour: only the engine's events can bring it back quickly.
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    for how in [["rm", "-f"], ["stop", "-t0"]] {
        let t = std::time::Instant::now();
        let (code, out) = docker::docker(&[how[0], how[1], "web"]);
        assert_eq!(code, 0, "{out}");
        loop {
            if http_get(port).contains("version 1")
                && docker::instances("web").iter().any(|(n, running)| n == "web" && *running)
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "docker {} web: not back within 5 s\n{}",
                how[0],
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("docker {} web: serving again after {:?}", how[0], t.elapsed());
    }
    let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json"]).stdout).unwrap();
    let repairs: Vec<&serde_json::Value> =
        h.as_array().unwrap().iter().filter(|e| e["result"] == "drift_repaired").collect();
    assert_eq!(repairs.len(), 2, "two repairs, reported as drift: {h}");
    assert!(repairs.iter().all(|e| e["trigger"] == "drift"), "{h}");
    // The agent's own apply is not drift: a new revision replaces the container, and no
    // drift repair follows it. The positive sign that the replace's engine events were seen:
    // a real drift after them is repaired, and nothing stands between the two entries.
    let c2 = push(&up, &web("2", port, ""), "v2");
    agent.sync(0);
    let (code, out) = docker::docker(&["stop", "-t0", "web"]);
    assert_eq!(code, 0, "{out}");
    let t = std::time::Instant::now();
    let h = loop {
        let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json"]).stdout).unwrap();
        if h[0]["result"] == "drift_repaired" {
            break h;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the stop after v2 was not repaired: {h}\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(h[1]["result"], "applied", "no drift reported after the agent's own replace: {h}");
    assert_eq!(h[1]["revision"], c2.as_str(), "{h}");
    clear_managed();
}
