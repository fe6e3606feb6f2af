//! Commit-to-applied latency by trigger: `watch: true` on a local repository, a signed
//! webhook delivery, and polling every 10 s. One container (a shell that exits on SIGTERM,
//! so a replace is not held up by a stop timeout) is replaced per commit; for each commit the
//! time until the agent has picked it up (status shows it as desired) and until it is applied
//! and Synced. The clock starts when `git push` has returned.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::host::{self, Bench, Daemon};

const RUNS: usize = 9;

fn deliver(port: u16, secret: &str) -> Result<()> {
    let body = br#"{"ref":"refs/heads/main"}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(body);
    let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Driftless-Signature: sha256={sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 2") {
        bail!("webhook answered {}", answer.lines().next().unwrap_or(""));
    }
    Ok(())
}

pub fn bench_latency(bin: &Path) -> Result<()> {
    host::ensure_tools()?;
    host::clear()?;
    let secret = "bench-secret";
    for mode in ["watch", "webhook", "poll"] {
        let bench = Bench::with(1)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let secret_file = bench.dir.path().join("webhook.secret");
        std::fs::write(&secret_file, secret)?;
        let (interval, extra) = match mode {
            "watch" => ("1h", String::new()),
            "webhook" => {
                ("1h", format!("webhook: {{ listen: \"127.0.0.1:{port}\", secret_file: {} }}\n", secret_file.display()))
            }
            _ => ("10s", String::new()),
        };
        let mut files = bench.agent_config(mode, interval, &extra)?;
        if mode == "watch" {
            let text =
                std::fs::read_to_string(&files.config)?.replace("  interval: 1h\n", "  interval: 1h\n  watch: true\n");
            std::fs::write(&files.config, text)?;
        }
        files.log = bench.dir.path().join(format!("{mode}.log"));
        let daemon = Daemon::start(bin, files)?;
        let first = host::git(&bench.work, &["rev-parse", "HEAD"])?;
        daemon.wait_applied(&first, Duration::from_secs(60))?;
        let (mut picked, mut applied) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            if mode == "poll" {
                // A push right after an apply lands just after a poll; spread the pushes over
                // the interval instead, as real pushes are.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                std::thread::sleep(Duration::from_millis(u64::from(nanos) % 10_000));
            }
            let rev = bench.push_services(&format!("{}", run + 2))?;
            let t = Instant::now();
            if mode == "webhook" {
                deliver(port, secret)?;
            }
            let mut seen = None;
            loop {
                let s = daemon.status()?;
                if seen.is_none() && s["desired_revision"] == rev.as_str() {
                    seen = Some(t.elapsed());
                }
                if s["applied_revision"] == rev.as_str() && s["phase"] == "Synced" {
                    applied.push(t.elapsed());
                    picked.push(seen.unwrap_or_else(|| t.elapsed()));
                    break;
                }
                if t.elapsed() > Duration::from_secs(60) {
                    bail!("{mode}: {rev} not applied in 60 s: {s}");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let what = match mode {
            "watch" => "`watch: true` (inotify on the local repository)",
            "webhook" => "signed webhook delivery",
            _ => "polling every 10 s (±10% jitter)",
        };
        crate::row(&format!("commit to picked up: {what}"), picked);
        crate::row(&format!("commit to applied and Synced (1 container replaced): {what}"), applied);
        drop(daemon);
        host::clear()?;
    }
    Ok(())
}
