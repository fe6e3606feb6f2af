//! Docker for end-to-end tests: the engine must answer (with CI=true a missing engine fails
//! the test; elsewhere too, unless DRIFTLESS_SKIP_MISSING=1 asks to skip), the test image is built once
//! from busybox-static (no registry), and managed containers are cleared between tests.

use std::process::Command;
use std::sync::Mutex;

pub const IMAGE: &str = "driftless-test/busybox:1";

/// Serialises Docker tests inside one process (`cargo test`); nextest runs them in a group of one.
pub static LOCK: Mutex<()> = Mutex::new(());

pub fn docker(args: &[&str]) -> (i32, String) {
    let out = Command::new("docker").args(args).output().expect("docker client runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (
        out.status.code().unwrap_or(-1),
        if out.status.success() { text } else { String::from_utf8_lossy(&out.stderr).to_string() },
    )
}

/// Whether Docker tests can run here. With CI=true, no engine is a failure.
pub fn available() -> bool {
    if docker(&["info"]).0 == 0 {
        return true;
    }
    super::missing("no Docker engine answers", "run .ci/setup (it installs docker.io and starts dockerd)")
}

/// Build the test image once (it must not be rebuilt while tests run: its id is an input of
/// every spec hash).
pub fn ensure_image() {
    let script = super::root().join("examples/containers/build-image.sh");
    let out = Command::new("flock")
        .arg("/tmp/driftless-test-image.lock")
        .arg("sh")
        .arg("-c")
        .arg(format!("docker image inspect {IMAGE} >/dev/null 2>&1 || {} {IMAGE}", script.display()))
        .output()
        .expect("flock runs");
    assert!(out.status.success(), "building {IMAGE}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Remove every container a Driftless agent manages (tests run one at a time).
pub fn clear_managed() {
    let (_, ids) = docker(&["ps", "-aq", "--filter", "label=driftless.managed=true"]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
}

/// Containers (name, running) labelled for resource `name`.
pub fn instances(name: &str) -> Vec<(String, bool)> {
    let (_, out) = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=driftless.resource={name}"),
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    out.lines().filter_map(|l| l.split_once(' ').map(|(n, s)| (n.to_string(), s == "running"))).collect()
}

pub fn label(container: &str, key: &str) -> String {
    docker(&["inspect", "-f", &format!("{{{{index .Config.Labels \"{key}\"}}}}"), container]).1
}

pub fn container_id(name: &str) -> String {
    docker(&["inspect", "-f", "{{.Id}}", name]).1
}

/// Wait for the engine (a failure with CI=true), build the test image, clear managed
/// containers; the guard serialises Docker tests within one process.
pub fn setup() -> Option<std::sync::MutexGuard<'static, ()>> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !available() {
        return None;
    }
    ensure_image();
    clear_managed();
    Some(guard)
}

/// `GET /` on 127.0.0.1:`port`: the whole answer, or "" when nothing answers.
pub fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Whether the engine answers.
pub fn engine_up() -> bool {
    docker(&["info"]).0 == 0
}

fn systemd_docker() -> bool {
    std::process::Command::new("systemctl").args(["is-active", "--quiet", "docker"]).status().is_ok_and(|s| s.success())
}

/// Stops the engine; starts it again when dropped (so a failing test leaves it running).
pub struct EngineStopped {
    systemd: bool,
    started: bool,
}

impl EngineStopped {
    pub fn stop() -> EngineStopped {
        let systemd = systemd_docker();
        if systemd {
            let _ = std::process::Command::new("systemctl").args(["stop", "docker.socket", "docker"]).status();
        } else {
            let _ = std::process::Command::new("pkill").args(["-TERM", "-x", "dockerd"]).status();
        }
        let t = std::time::Instant::now();
        // Gone means the process, not only the API: a new dockerd refuses to start while the
        // old one still holds its pid file.
        let running =
            || std::process::Command::new("pgrep").args(["-x", "dockerd"]).output().is_ok_and(|o| o.status.success());
        while engine_up() || running() {
            assert!(t.elapsed() < std::time::Duration::from_secs(60), "dockerd did not stop");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        EngineStopped { systemd, started: false }
    }

    pub fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        if self.systemd {
            let _ = std::process::Command::new("systemctl").args(["start", "docker"]).status();
        } else {
            let _ = std::process::Command::new("sh")
                .args(["-c", "nohup dockerd >>/tmp/driftless-dockerd.log 2>&1 &"])
                .status();
        }
        let t = std::time::Instant::now();
        while !engine_up() {
            assert!(t.elapsed() < std::time::Duration::from_secs(60), "dockerd did not start again");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for EngineStopped {
    fn drop(&mut self) {
        self.start();
    }
}
