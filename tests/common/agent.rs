//! A real `agentd` for end-to-end tests: a config in a scratch folder, the daemon started as a
//! child process with its log in a file, `agentctl` pointed at its socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{agentctl, run, Run};

pub struct Agent {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Extra arguments for `agentd` (e.g. `--dry-run`).
    pub args: Vec<String>,
    child: Option<Child>,
}

impl Agent {
    /// Write an agent config (`extra` is appended as YAML) without starting the daemon.
    pub fn configure(url: &str, reference: &str, extra: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.yaml");
        let text = format!(
            "host: e2e\nsource:\n  url: \"{url}\"\n  ref: {reference}\n  path: hosts/e2e\n  interval: 1h\nstate_dir: {}\ncontrol_socket: {}\nhealth: {{ timeout: 15s, interval: 500ms }}\n{extra}",
            dir.path().join("state").display(),
            dir.path().join("agent.sock").display(),
        );
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("agentd.log");
        Agent { dir, config, log, args: Vec::new(), child: None }
    }

    /// Start the daemon (with `env` set) and wait for its socket to answer.
    pub fn start_with(&mut self, env: &[(&str, &str)]) {
        self.spawn(env);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.ctl(&["status", "--json"]).code == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("agentd did not answer within 30s; log:\n{}", self.log_text());
    }

    /// Start the daemon without waiting for it.
    pub fn spawn(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentd"));
        cmd.arg("--config").arg(&self.config).args(&self.args).stdout(Stdio::null()).stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("agentd starts"));
    }

    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Start the daemon with `DRIFTLESS_PAUSEPOINT=<point>#1` and wait until it waits there
    /// (the failpoints build only: see `common::needs_failpoints`).
    pub fn start_paused_at(&mut self, point: &str) {
        self.start_with(&[("DRIFTLESS_PAUSEPOINT", &format!("{point}#1"))]);
        super::wait_for(
            &format!("agentd to reach the pause point {point}"),
            Duration::from_secs(60),
            || self.log_text().contains(&format!("pausepoint {point}: waiting")),
            || self.log_text(),
        );
    }

    /// Add `keys` (YAML flow-mapping entries, `watch_interval: 1s, bake: 1h`) to the test
    /// config's `health:` (before `start`).
    pub fn set_health(&self, keys: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replacen(
            "health: { timeout: 15s, interval: 500ms }",
            &format!("health: {{ timeout: 15s, interval: 500ms, {keys} }}"),
            1,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// Wait for the daemon to exit by itself (e.g. at a failpoint); its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("started");
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return s;
            }
            assert!(start.elapsed() < timeout, "agentd did not exit; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    pub fn ctl(&self, args: &[&str]) -> Run {
        run(agentctl().arg("--config").arg(&self.config).args(args))
    }

    pub fn status(&self) -> serde_json::Value {
        let r = self.ctl(&["status", "--json"]);
        assert_eq!(r.code, 0, "status failed: {}{}", r.stderr, self.log_text());
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// `agentctl sync --wait`, asserting the exit code.
    pub fn sync(&self, want_code: i32) -> Run {
        let r = self.ctl(&["sync", "--wait"]);
        assert_eq!(r.code, want_code, "sync --wait: {}\n{}\nlog:\n{}", r.stdout, r.stderr, self.log_text());
        r
    }

    /// A round trip through the reconciler's queue (`agentctl history -n 1` is answered by
    /// the reconciler task, in turn): when it returns, every event queued before it — a
    /// webhook delivery, a timer, an engine event — has been handled. The positive sign a
    /// "nothing happened" check waits for.
    pub fn settle(&self) {
        let r = self.ctl(&["history", "-n", "1", "--json"]);
        assert_eq!(r.code, 0, "history: {}{}\nlog:\n{}", r.stdout, r.stderr, self.log_text());
    }

    /// The final line of `sync --wait` (after the streamed progress).
    pub fn result_line(r: &Run) -> String {
        r.stdout.lines().last().unwrap_or("").to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Wait until the log says `text` `n` times.
    pub fn wait_log(&self, text: &str, n: usize, timeout: Duration) {
        let t = Instant::now();
        while self.log_text().matches(text).count() < n {
            assert!(t.elapsed() < timeout, "the log never said {text:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until `status` says `phase` with a message that contains `needle`.
    pub fn wait_phase_message(&self, phase: &str, needle: &str, timeout: Duration) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let s = self.status();
            if s["phase"] == phase && s["message"].as_str().is_some_and(|m| m.contains(needle)) {
                return s;
            }
            assert!(t.elapsed() < timeout, "not {phase} with {needle:?}: {s}\nlog:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Wait until `status` says `phase`.
    pub fn wait_phase(&self, phase: &str, timeout: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.status();
            if s["phase"] == phase {
                return s;
            }
            assert!(start.elapsed() < timeout, "phase is {} not {phase}: {s}\nlog:\n{}", s["phase"], self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
