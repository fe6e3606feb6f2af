//! docs/getting-started.md, run as written: every ```sh block of it, in order, in one bash
//! (`set -euo pipefail`), against the real Docker engine and the built binaries. What the test
//! changes is only where things live and how the daemon runs: `/srv`, `/etc/driftless`,
//! `/var/lib/driftless` and `/run/driftless` move into a scratch folder (the agent config gets
//! `state_dir` and `control_socket` there, `DRIFTLESS_SOCKET` points agentctl at it), and
//! `systemctl enable --now driftless` / `systemctl reload driftless` start `agentd` in the
//! background / send it SIGHUP. The image `busybox:1.36` is the local test image under that
//! name (no registry is reachable here). So the walk-through cannot rot.

mod common;

use std::path::Path;
use std::process::Command;

use common::docker::{clear_managed, docker, setup, IMAGE};

/// The ```sh blocks of a Markdown text, in order.
fn sh_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```sh") => cur = Some(String::new()),
            (Some(_), "```") => out.extend(cur.take()),
            (Some(c), l) => {
                c.push_str(l);
                c.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_getting_started_walk_through_runs_as_written() {
    let Some(_g) = setup() else { return };
    let md = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/getting-started.md")).unwrap();
    let blocks = sh_blocks(&md);
    assert!(blocks.len() >= 5, "the walk-through has its sh blocks: {}", blocks.len());
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path().display().to_string();
    let bin = Path::new(env!("CARGO_BIN_EXE_agentctl")).parent().unwrap().display().to_string();
    let socket = format!("{s}/run/driftless/agent.sock");
    let start = format!(
        "mkdir -p {s}/run/driftless; {bin}/agentd --config {s}/etc/driftless/agent.yaml > {s}/agentd.log 2>&1 & echo $! > {s}/agentd.pid\n\
         for i in $(seq 200); do [ -S {socket} ] && break; sleep 0.05; done"
    );
    let mut script = String::from("set -euo pipefail\n");
    for b in &blocks {
        // Places first, then the daemon (whose lines name the moved places already).
        let b = b
            .replace("/srv/", &format!("{s}/srv/"))
            .replace("/etc/driftless", &format!("{s}/etc/driftless"))
            .replace("systemctl enable --now driftless", &start)
            .replace(
                "systemctl reload driftless",
                &format!(
                    "kill -HUP $(cat {s}/agentd.pid)\nfor i in $(seq 200); do grep -q 'config reloaded' {s}/agentd.log && break; sleep 0.05; done"
                ),
            )
            .replace(
                "host: web-1\n",
                &format!("host: web-1\nstate_dir: {s}/var/lib/driftless\ncontrol_socket: {socket}\n"),
            );
        script.push_str(&b);
    }
    docker(&["tag", IMAGE, "busybox:1.36"]);
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()))
        .env("DRIFTLESS_SOCKET", &socket)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(scratch.path().join("agentd.log")).unwrap_or_default();
    if let Ok(pid) = std::fs::read_to_string(scratch.path().join("agentd.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "the walk-through failed:\n{stdout}\n{stderr}\nagentd:\n{log}");
    // Where it ends: production, on the tag, serving the production greeting.
    assert!(stdout.contains("Synced"), "{stdout}");
    let (_, body) = docker(&["exec", "hello", "cat", "/tmp/index.html"]);
    assert_eq!(body.trim(), "hello from production", "{stdout}\n{log}");
    clear_managed();
    docker(&["rmi", "busybox:1.36"]);
}
