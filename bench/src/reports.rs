//! Host reports at fleet scale (issue 29): `agentctl fleet` over `BENCH_HOSTS` (default
//! 1,000) signed reports served by smart HTTP (`git http-backend`) on 127.0.0.1 — one fetch,
//! then every report judged (signature, content) — and the server's cost of those hosts
//! each pushing a report every 5 minutes: the CPU the HTTP server and its `git` children
//! spend per push, measured over a run of pushes, times the rate.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use driftless_agent::source::GitSource;

use crate::host::{self, git};

fn hosts() -> usize {
    std::env::var("BENCH_HOSTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

/// CPU (user + system) the process `pid` and its waited-for children used so far.
fn cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("").split_whitespace().collect();
    // After the command: state(0) … utime(11) stime(12) cutime(13) cstime(14), in ticks.
    let ticks: u64 = [11, 12, 13, 14].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    Ok(Duration::from_millis(ticks * 10))
}

pub fn bench_reports(bin: &Path) -> Result<()> {
    let n = hosts();
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let srv = d.join("srv");
    std::fs::create_dir_all(&srv)?;
    let bare = srv.join("fleet.git");
    git(d, &["init", "-q", "--bare", bare.to_str().unwrap_or_default()])?;
    // Smart HTTP takes pushes only when told (there is no authenticated user here).
    git(&bare, &["config", "http.receivepack", "true"])?;
    // One key pair per host, and the signers file naming each.
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys)?;
    let mut signers = String::new();
    let t = Instant::now();
    for i in 0..n {
        let path = keys.join(format!("h{i:04}"));
        let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&path).output()?;
        if !out.status.success() {
            bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        }
        let public = std::fs::read_to_string(path.with_extension("pub"))?;
        let public: Vec<&str> = public.split_whitespace().take(2).collect();
        signers.push_str(&format!("h{i:04} {}\n", public.join(" ")));
    }
    let signers_file = d.join("fleet_signers");
    std::fs::write(&signers_file, signers)?;
    eprintln!("reports: {n} keys in {:.1} s", t.elapsed().as_secs_f64());

    // Each host's report, pushed as the agent pushes it, to the server's repository.
    let (server, port, pid) = host::start_git_http(&srv)?;
    let url = format!("http://127.0.0.1:{port}/fleet.git");
    let status = |i: usize| {
        serde_json::json!({
            "host": format!("h{i:04}"), "environment": "production", "phase": "Synced",
            "applied_revision": "4be1c2d0e6a1b2c3d4e5f60718293a4b5c6d7e8f", "last_good_revision": "4be1c2d0e6a1b2c3d4e5f60718293a4b5c6d7e8f",
            "desired_revision": "4be1c2d0e6a1b2c3d4e5f60718293a4b5c6d7e8f", "failed_revisions": [], "paused": false,
            "message": null, "report_interval_seconds": 300,
            "resources": [{"kind": "Container", "name": "web", "state": "running", "health": "healthy", "revision": null}]
        })
    };
    let outcomes = serde_json::json!([{"revision": "4be1c2d0e6a1b2c3d4e5f60718293a4b5c6d7e8f", "result": "applied", "at": "2026-12-02T12:00:00Z", "until": null}]);
    let before = cpu(pid)?;
    let t = Instant::now();
    for i in 0..n {
        let src = GitSource::for_reports(&url, None, d.join(format!("agents/h{i:04}.git")));
        let files = vec![
            ("status.json", serde_json::to_vec_pretty(&status(i))?),
            ("outcomes.json", serde_json::to_vec_pretty(&outcomes)?),
        ];
        src.push_report(&format!("h{i:04}"), &files, &keys.join(format!("h{i:04}")), "report")
            .with_context(|| format!("pushing h{i:04}'s report"))?;
    }
    let push_wall = t.elapsed();
    let server_cpu = cpu(pid)? - before;
    let per_push = server_cpu / n as u32;
    // 1,000 hosts every 5 minutes: 3.3 pushes a second.
    let load = per_push.as_secs_f64() * 1000.0 / 300.0;

    // agentctl fleet: one fetch of every report, each verified.
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new(bin.join("agentctl"))
            .args(["fleet", "--url", &url, "--json", "--signers"])
            .arg(&signers_file)
            .output()?;
        runs.push(t.elapsed());
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let verified = rows.as_array().map_or(0, |r| r.iter().filter(|x| x["verified"] == true).count());
        if verified != n {
            bail!("agentctl fleet verified {verified} of {n}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    runs.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| `agentctl fleet` over {n} signed reports (smart HTTP, one fetch, all verified) | {} | {} | {} | 3 |",
        ms(runs[1]),
        ms(runs[0]),
        ms(runs[2])
    );
    println!("| server CPU per report push (git http-backend, receive-pack) | {} | — | — | {n} |", ms(per_push));
    println!(
        "| server load of {n} hosts reporting every 5 min | {:.3} cores | — | — | from the line above |",
        load * n as f64 / 1000.0
    );
    println!(
        "| pushing {n} reports one after another (client wall time) | {:.1} s | — | — | 1 |",
        push_wall.as_secs_f64()
    );
    drop(server);
    Ok(())
}
