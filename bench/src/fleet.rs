//! A fleet: 200 `agentd --dry-run` processes (separate state dirs, no runtime) follow the
//! moving tag `production` of one smart-HTTP Git server on 127.0.0.1 (`git http-backend`
//! behind tests/fixtures/git_http.py), polling every 10 s. Measures the server's CPU per
//! poll (the server process and the http-backend processes it ran), the agents' memory and
//! CPU, and the time until all 200 have picked up a moved tag. `BENCH_FLEET` overrides 200.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host;

pub fn bench_fleet(bin: &Path) -> Result<()> {
    let agents: usize = std::env::var("BENCH_FLEET").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let tmp = tempfile::tempdir()?;
    let srv = tmp.path().join("srv");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("hosts/h"))?;
    std::fs::create_dir_all(&srv)?;
    host::git(&work, &["init", "-q", "-b", "main"])?;
    let commit = |version: &str| -> Result<String> {
        std::fs::write(
            work.join("hosts/h/web.yaml"),
            format!("apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec: {{ image: \"web:{version}\" }}\n"),
        )?;
        host::git(&work, &["add", "-A"])?;
        host::git(&work, &["-c", "user.name=B", "-c", "user.email=b@example.invalid", "commit", "-qm", version])?;
        host::git(&work, &["rev-parse", "HEAD"])
    };
    let v1 = commit("1")?;
    host::git(&work, &["tag", "-f", "production"])?;
    let bare = srv.join("state.git");
    host::git(tmp.path(), &["clone", "-q", "--bare", &work.display().to_string(), &bare.display().to_string()])?;

    let (_server, port, server_pid) = host::start_git_http(&srv)?;

    // Start the fleet, staggered a little as real hosts would be.
    let mut children = Vec::new();
    let mut sockets = Vec::new();
    let t_start = Instant::now();
    for i in 0..agents {
        let root = tmp.path().join(format!("agent-{i:03}"));
        let files = host::write_agent_config(
            &root,
            &format!("h{i}"),
            &format!("http://127.0.0.1:{port}/state.git"),
            "{ tag: production }",
            "10s",
            "",
        )?;
        let log = std::fs::File::create(&files.log)?;
        children.push(
            Command::new(bin.join("agentd"))
                .arg("--config")
                .arg(&files.config)
                .arg("--dry-run")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("agentd --dry-run")?,
        );
        sockets.push(files.socket);
        std::thread::sleep(Duration::from_millis(10));
    }
    let fleet = host::Children(children);
    let wait_all = |rev: &str, since: Instant| -> Result<Vec<Duration>> {
        let mut seen: Vec<Option<Duration>> = vec![None; sockets.len()];
        loop {
            for (i, s) in sockets.iter().enumerate() {
                if seen[i].is_none() {
                    if let Ok(st) = host::status_of(s) {
                        if st["desired_revision"] == rev {
                            seen[i] = Some(since.elapsed());
                        }
                    }
                }
            }
            if seen.iter().all(Option::is_some) {
                return Ok(seen.into_iter().flatten().collect());
            }
            if since.elapsed() > Duration::from_secs(120) {
                bail!("only {} of {} agents picked up {rev}", seen.iter().flatten().count(), seen.len());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let ready = wait_all(&v1, t_start)?;
    let started = ready.iter().max().copied().unwrap_or_default();
    eprintln!("{agents} agents started and fetched in {:.1} s", started.as_secs_f64());

    // Steady state: nothing new; the server's CPU per poll.
    std::thread::sleep(Duration::from_secs(5));
    let steady = Duration::from_secs(60);
    let (cpu0, child0) = host::cpu_of(server_pid)?;
    let (req0, bytes0) = host::http_stats(tmp.path());
    let agents_cpu0: Duration = fleet.0.iter().filter_map(|c| host::cpu_of(c.id()).ok()).map(|c| c.0).sum();
    std::thread::sleep(steady);
    let (cpu1, child1) = host::cpu_of(server_pid)?;
    let (req1, bytes1) = host::http_stats(tmp.path());
    let agents_cpu1: Duration = fleet.0.iter().filter_map(|c| host::cpu_of(c.id()).ok()).map(|c| c.0).sum();
    let rss: u64 = fleet.0.iter().filter_map(|c| host::rss_of(c.id()).ok()).map(|r| r.0).sum();
    let polls = req1.saturating_sub(req0).max(1);
    let server_cpu = (cpu1 + child1).saturating_sub(cpu0 + child0);
    println!(
        "| fleet of {agents} agents, 10 s interval, 60 s of no-op polls: {polls} requests ({:.1}/s), {} bytes each; server CPU {:.2} ms per poll ({:.1}% of one core); agents' CPU {:.2} ms per poll; agents' RSS {:.1} MiB each (sum {:.0} MiB) | | | | 1 |",
        polls as f64 / steady.as_secs_f64(),
        bytes1.saturating_sub(bytes0) / polls,
        server_cpu.as_secs_f64() * 1000.0 / polls as f64,
        100.0 * server_cpu.as_secs_f64() / steady.as_secs_f64(),
        agents_cpu1.saturating_sub(agents_cpu0).as_secs_f64() * 1000.0 / polls as f64,
        rss as f64 / 1024.0 / agents as f64,
        rss as f64 / 1024.0,
    );

    // Promote: move the tag; time until every agent has picked it up.
    let v2 = commit("2")?;
    host::git(&work, &["tag", "-f", "production"])?;
    host::git(&work, &["push", "-qf", &bare.display().to_string(), "refs/tags/production"])?;
    let t = Instant::now();
    let mut picked = wait_all(&v2, t)?;
    picked.sort();
    let p = |q: f64| picked[((picked.len() - 1) as f64 * q) as usize].as_secs_f64();
    println!(
        "| fleet of {agents}: moved tag picked up by all in {:.1} s (median agent {:.1} s, p90 {:.1} s, first {:.1} s) | | | | 1 |",
        p(1.0),
        p(0.5),
        p(0.9),
        p(0.0)
    );
    drop(fleet);
    Ok(())
}
