//! Helpers shared by the end-to-end tests: run the real binaries, make scratch folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn agentctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agentctl"))
}

pub fn agentd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agentd"))
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output { status, stdout, stderr } = cmd.output().expect("the binary runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Poll `ok` every 100 ms until it holds; after `timeout`, fail naming `what`, with what
/// `context` says (logs, status) at that moment.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}:\n{}", context());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Write `files` (relative path, text) below `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

pub mod agent;
pub mod caddy;
pub mod docker;
pub mod git;
pub mod gpg;
pub mod notify;
pub mod registry;

/// A real part a test needs is missing (`what`, and `how` to get it). With CI=true that is a
/// failure; elsewhere too, unless `DRIFTLESS_SKIP_MISSING=1` says to skip the tests that need
/// it (they then say SKIPPED and pass without testing: the developer chose that, by name).
/// Returns `false` (skip) only then.
pub fn missing(what: &str, how: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {what}: {how}");
    }
    if std::env::var("DRIFTLESS_SKIP_MISSING").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED ({what}; DRIFTLESS_SKIP_MISSING=1)");
        return false;
    }
    panic!("{what}: {how}; or set DRIFTLESS_SKIP_MISSING=1 to skip the tests that need it (they then test nothing)");
}

/// A test that crashes or pauses `agentd` at a failpoint needs it built with them.
#[cfg(feature = "failpoints")]
pub fn needs_failpoints() {}

/// A test that crashes or pauses `agentd` at a failpoint needs it built with them.
#[cfg(not(feature = "failpoints"))]
pub fn needs_failpoints() {
    panic!(
        "this test stops agentd at a failpoint: run it as scripts/test does (cargo nextest run --workspace --features driftless-agent/failpoints)"
    );
}
