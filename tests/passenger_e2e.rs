//! The Passenger runtime end to end, with real Passenger Standalone (Debian's `passenger`,
//! builtin engine, 127.0.0.1) serving a WSGI app whose answer is computed at import time, so
//! only a real restart changes it: deploy v1, v2; v3 fails at import and is reverted to v2's
//! release (no rebuild); the shared data file is untouched and backed up; kill -9 before the
//! switch leaves `current` on a complete release; no Docker is needed. `agentd --once` is the
//! cron way shared hosting runs it.

mod common;
use common::git::{free_port, Upstream};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn available() -> bool {
    if Command::new("passenger").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    common::missing("Passenger is not installed", "run .ci/setup (apt-get install passenger)")
}

fn app(version: &str, broken: bool) -> String {
    let fail = if broken { "raise RuntimeError('broken at import')\n" } else { "" };
    format!(
        "import os\n{fail}HERE = os.path.dirname(os.path.abspath(__file__))\nwith open(os.path.join(HERE, 'REVISION')) as f:\n    REV = f.read().strip()\nBUILT = os.path.exists(os.path.join(HERE, 'vendor', 'BUILT'))\nBODY = ('hello {version} revision %s built %s\\n' % (REV, BUILT)).encode()\n\ndef application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [BODY]\n"
    )
}

fn state(app_root: &Path, port: u16, version: &str) -> String {
    state_with_build(
        app_root,
        port,
        version,
        "echo vendoring dependencies && mkdir -p vendor && echo ok > vendor/BUILT",
    )
}

fn state_with_build(app_root: &Path, port: u16, version: &str, build: &str) -> String {
    let log = app_root.parent().and_then(Path::parent).unwrap().join("passenger.log"); // passenger start --log-file
    format!(
        "apiVersion: driftless/v1\nkind: PassengerApp\nmetadata: {{ name: api }}\nspec:\n  app_root: {}\n  log_file: {}\n  source: apps/api\n  build: [\"sh\", \"-c\", \"{build}\"]\n  shared: [app.db, logs]\n  backup: [app.db]\n  keep_releases: 3\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", status: 200, body_contains: \"hello {version} \" }}\n      timeout: 20s\n",
        app_root.display(),
        log.display(),
    )
}

fn get(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

struct Passenger {
    port: u16,
    dir: PathBuf,
    registry: PathBuf,
}

impl Drop for Passenger {
    fn drop(&mut self) {
        let _ = Command::new("passenger")
            .args(["stop", "--port", &self.port.to_string(), "--pid-file"])
            .arg(self.dir.join("passenger.pid"))
            .env("PASSENGER_INSTANCE_REGISTRY_DIR", &self.registry)
            .output();
    }
}

fn once(config: &Path, registry: &Path, env: &[(&str, &str)]) -> common::Run {
    let mut cmd = common::agentd();
    cmd.arg("--config").arg(config).arg("--once");
    cmd.env("PASSENGER_INSTANCE_REGISTRY_DIR", registry);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock"); // a host without Docker
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run(&mut cmd)
}

fn live_release(app_root: &Path) -> PathBuf {
    std::fs::canonicalize(app_root.join("current")).unwrap()
}

/// One piece: one app's life in order (deploy, a failing release reverted, backups kept,
/// `kill -9` mid-deploy finished at restart), each step starting from what the last left.
#[test]
fn deploys_reverts_backs_up_and_survives_kill_9() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let app_root = tmp.path().join("apps/api");
    let registry = tmp.path().join("passenger-registry");
    std::fs::create_dir_all(&registry).unwrap();
    let port = free_port();

    // The host as an operator set it up: shared data, and Passenger serving `current`.
    let boot = app_root.join("releases/00000000000000-bootstrap");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(
        boot.join("passenger_wsgi.py"),
        "def application(e, s):\n    s('200 OK', [])\n    return [b'bootstrap\\n']\n",
    )
    .unwrap();
    std::fs::create_dir_all(app_root.join("shared")).unwrap();
    std::fs::write(app_root.join("shared/app.db"), "precious data\n").unwrap();
    std::os::unix::fs::symlink("releases/00000000000000-bootstrap", app_root.join("current")).unwrap();
    let out = Command::new("passenger")
        .arg("start")
        .arg(app_root.join("current"))
        .args(["--engine", "builtin", "--address", "127.0.0.1", "--port", &port.to_string(), "-d"])
        .args(["--environment", "production"])
        .arg("--pid-file")
        .arg(tmp.path().join("passenger.pid"))
        .arg("--log-file")
        .arg(tmp.path().join("passenger.log"))
        .arg("--instance-registry-dir")
        .arg(&registry)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "passenger start: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _passenger = Passenger { port, dir: tmp.path().to_path_buf(), registry: registry.clone() };
    let start = Instant::now();
    while !get(port).contains("bootstrap") {
        assert!(start.elapsed() < Duration::from_secs(30), "passenger does not serve the bootstrap app");
        std::thread::sleep(Duration::from_millis(200));
    }

    let up = Upstream::new();
    let commit = |v: &str, broken: bool| {
        up.commit(
            &[("hosts/e2e/api.yaml", &state(&app_root, port, v)), ("apps/api/passenger_wsgi.py", &app(v, broken))],
            v,
        )
    };
    let config = tmp.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "host: e2e\nsource:\n  url: \"{}\"\n  ref: {{ branch: main }}\n  path: hosts/e2e\nstate_dir: {}\ncontrol_socket: {}\nhealth: {{ timeout: 20s, interval: 500ms }}\n",
            up.file_url(),
            tmp.path().join("state").display(),
            tmp.path().join("agent.sock").display()
        ),
    )
    .unwrap();

    // v1, v2: deployed, restarted for real (the answer is computed at import).
    let c1 = commit("v1", false);
    let r = once(&config, &registry, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let body = get(port);
    assert!(body.contains(&format!("hello v1 revision {c1} built True")), "{body}");
    let rel1 = live_release(&app_root);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rel1.join("build_info.json")).unwrap()).unwrap();
    assert_eq!(info["revision"], c1.as_str());
    assert_eq!(info["tree_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(std::fs::read_to_string(rel1.join("REVISION")).unwrap().trim(), c1);
    assert_eq!(std::fs::read_link(rel1.join("app.db")).unwrap(), app_root.join("shared/app.db"));

    assert!(r.stderr.contains("build api: vendoring dependencies"), "build output is streamed: {}", r.stderr);
    let c2 = commit("v2", false);
    up.tag("v2.0.0");
    let r = once(&config, &registry, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let history = std::fs::read_to_string(tmp.path().join("state/state.json")).unwrap();
    assert!(history.contains("PassengerApp/api: release "), "{history}");
    assert!(history.contains("(tags v2.0.0), build output: vendoring dependencies"), "{history}");
    assert!(get(port).contains(&format!("hello v2 revision {c2}")));
    let rel2 = live_release(&app_root);
    assert_ne!(rel1, rel2);

    // v3 fails at import, after its build changed the shared database (a migration):
    // reverted to v2's release, not rebuilt, and app.db put back as it was before v3.
    let migrate = format!(
        "echo vendoring dependencies && mkdir -p vendor && echo ok > vendor/BUILT && echo migrated by v3 > {}/shared/app.db",
        app_root.display()
    );
    let c3 = up.commit(
        &[
            ("hosts/e2e/api.yaml", &state_with_build(&app_root, port, "v3", &migrate)),
            ("apps/api/passenger_wsgi.py", &app("v3", true)),
        ],
        "v3",
    );
    let r = once(&config, &registry, &[]);
    assert_eq!(r.code, 1, "rolled back: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("RolledBack"), "{}", r.stdout);
    assert!(get(port).contains(&format!("hello v2 revision {c2}")), "v2 served again");
    assert_eq!(live_release(&app_root), rel2, "the same v2 release, no rebuild");
    let state_json = std::fs::read_to_string(tmp.path().join("state/state.json")).unwrap();
    assert!(state_json.contains(&c3), "v3 is marked failed");
    // Its history entry carries the end of the app's log: why it failed.
    let st: serde_json::Value = serde_json::from_str(&state_json).unwrap();
    let d = &st["history"][0]["diagnostics"][0];
    assert_eq!(d["kind"], "PassengerApp", "{}", st["history"][0]);
    assert!(d["logs"].to_string().contains("broken at import"), "the app's log: {d}");

    // Shared data: put back as it was before v3, v3's kept as a failed-attempt snapshot, and
    // backed up before each switch.
    assert_eq!(std::fs::read_to_string(app_root.join("shared/app.db")).unwrap(), "precious data\n");
    assert!(
        st["history"][0]["message"].as_str().unwrap().contains("files of api.backup restored from snapshot"),
        "{}",
        st["history"][0]
    );
    let failed_attempt = std::fs::read_dir(tmp.path().join("state/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p.join("manifest.json"))
                .is_ok_and(|m| m.contains("failed-attempt") && m.contains(&c3))
        })
        .expect("a failed-attempt snapshot of v3");
    assert_eq!(std::fs::read_to_string(failed_attempt.join("files/app.db")).unwrap(), "migrated by v3\n");
    let backups: Vec<PathBuf> =
        std::fs::read_dir(app_root.join("backups")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!backups.is_empty());
    for b in &backups {
        let copy = std::fs::read_to_string(b.join("app.db")).unwrap();
        assert!(copy == "precious data\n" || copy == "migrated by v3\n", "{copy}");
    }
    assert!(app_root.join("shared/logs").is_dir(), "shared folders are created");

    // kill -9 before the switch of v4: `current` stays on a complete release; the next run finishes.
    let c4 = commit("v4", false);
    common::needs_failpoints();
    let r = once(&config, &registry, &[("DRIFTLESS_FAILPOINT", "before-switch")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("failpoint before-switch"), "{}", r.stderr);
    assert_eq!(live_release(&app_root), rel2, "current untouched by the crash");
    assert!(get(port).contains("hello v2"));
    let r = once(&config, &registry, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("found an unfinished apply"), "{}", r.stderr);
    assert!(get(port).contains(&format!("hello v4 revision {c4}")));
    assert!(live_release(&app_root).join("build_info.json").exists(), "current is a complete release");

    // Drift: `current` moved by hand is put back; so is a deployed file changed by hand.
    let rel4 = live_release(&app_root);
    let other = std::fs::read_dir(app_root.join("releases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p != &rel4 && p.join("build_info.json").exists())
        .unwrap();
    let tmp_link = app_root.join("current.by-hand");
    std::os::unix::fs::symlink(&other, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, app_root.join("current")).unwrap();
    let r = once(&config, &registry, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("repaired 1 drifted resource"), "{}", r.stdout);
    assert_eq!(live_release(&app_root), rel4, "switched back to the release of the applied revision");
    std::fs::write(
        rel4.join("passenger_wsgi.py"),
        "def application(e, s):\n    s('200 OK', [])\n    return [b'hacked']\n",
    )
    .unwrap();
    let r = once(&config, &registry, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("repaired 1 drifted resource"), "{}", r.stdout);
    assert!(get(port).contains(&format!("hello v4 revision {c4}")), "a fresh release of v4 serves again");
    assert_ne!(live_release(&app_root), rel4, "the modified release is not reused");

    // A build that prints 10 MB of binary output (no UTF-8, few newlines) on stdout and
    // stderr: drained to its end, not timed out, applied.
    let chatty = "head -c 6000000 /dev/urandom; head -c 4000000 /dev/urandom >&2; echo vendored && mkdir -p vendor && echo ok > vendor/BUILT";
    let c5 = up.commit(
        &[
            ("hosts/e2e/api.yaml", &state_with_build(&app_root, port, "v5", chatty)),
            ("apps/api/passenger_wsgi.py", &app("v5", false)),
        ],
        "v5",
    );
    let r = once(&config, &registry, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(get(port).contains(&format!("hello v5 revision {c5} built True")), "v5 serves");

    // Pruning: at most keep_releases (3), never the live one.
    let releases = std::fs::read_dir(app_root.join("releases")).unwrap().count();
    assert!(releases <= 3, "{releases} releases kept");
    assert!(live_release(&app_root).exists());
}
