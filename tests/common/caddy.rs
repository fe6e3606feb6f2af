//! Debian's Caddy for end-to-end tests: one `caddy run` per test, its admin API on a unix
//! socket in a scratch folder (as `proxy.caddy_admin` names it), its data and config there
//! too. With CI=true a missing `caddy` fails the test.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Caddy {
    pub dir: tempfile::TempDir,
    /// The admin socket.
    pub admin: PathBuf,
    /// Caddy's own config besides the admin socket (what its "Caddyfile" says).
    apps: String,
    child: Option<Child>,
}

impl Caddy {
    /// Start Caddy with no config but its admin socket; `None` when the test is skipped.
    pub fn start() -> Option<Caddy> {
        Caddy::start_with("")
    }

    /// Start Caddy with `apps` (JSON of Caddy's `apps`, or "" for none) beside its admin
    /// socket, as a Caddyfile would have configured it; `None` when the test is skipped.
    pub fn start_with(apps: &str) -> Option<Caddy> {
        if Command::new("caddy").arg("version").output().map(|o| !o.status.success()).unwrap_or(true) {
            super::missing("caddy is not installed", "run .ci/setup (it installs Debian's caddy)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.sock");
        let mut c = Caddy { dir, admin, apps: apps.to_string(), child: None };
        c.spawn();
        Some(c)
    }

    /// The value of `proxy.caddy_admin` for this Caddy.
    pub fn endpoint(&self) -> String {
        format!("unix/{}", self.admin.display())
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.admin);
        let config = self.dir.path().join("caddy.json");
        let apps = if self.apps.is_empty() { String::new() } else { format!(",\"apps\":{}", self.apps) };
        std::fs::write(&config, format!("{{\"admin\":{{\"listen\":\"{}\"}}{apps}}}", self.endpoint())).unwrap();
        let log = std::fs::File::create(self.dir.path().join("caddy.log")).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--config"])
            .arg(&config)
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("caddy starts");
        self.child = Some(child);
        let start = Instant::now();
        while self.get("/config/").is_none() {
            assert!(start.elapsed() < Duration::from_secs(20), "caddy's admin socket does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop Caddy and start it again from its file: the routes the API added are gone, as
    /// after `systemctl restart caddy` with Debian's unit.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `GET path` on the admin API: the body, or `None` when it does not answer.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.admin).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: \r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    }

    /// `method path` with a JSON `body` on the admin API, as another writer would: the status.
    pub fn send(&self, method: &str, path: &str, body: &str) -> Option<u16> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.admin).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: \r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_whitespace().nth(1)?.parse().ok()
    }

    /// The upstream (`dial`) of resource `name`'s route, when there is one.
    pub fn upstream(&self, name: &str) -> Option<String> {
        let body = self.get(&format!("/id/driftless-{name}/handle/0/upstreams/0/dial"))?;
        serde_json::from_str::<String>(body.trim()).ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        self.stop();
    }
}
