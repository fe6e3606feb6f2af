//! `bench/run snapshot`: a volume of `BENCH_SNAPSHOT_MIB` (1024) MiB — half random bytes,
//! half text, in 8 MiB files — snapshotted and restored by the agent (a revision's `before`
//! snapshot with `consistency: pause`, then `agentctl restore`), against the way an operator
//! does it by hand (`docker run --rm -v vol:/v busybox tar -c /v | zstd > file`, and back),
//! side by side in one run; and how long the container that mounts the volume stays paused
//! (the engine's own pause and unpause events). The agent's times are what it logs for the
//! copy alone ("snapshot … in S s", "restored … in S s").

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host::{self, docker, git, Bench, Daemon, IMAGE};
use crate::row;

const VOLUME: &str = "driftless-bench-snap";
const HOLDER: &str = "bench-holder";

fn state(version: usize) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Volume\nmetadata: {{ name: {VOLUME} }}\nspec:\n  snapshot: {{ keep: 2, consistency: pause }}\n---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: {HOLDER} }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: {}\n  env: {{ VERSION: \"{version}\" }}\n  volumes: [\"{VOLUME}:/data\"]\n  stop_timeout: 1s\n",
        host::SLEEP
    )
}

fn push(b: &Bench, version: usize) -> Result<String> {
    std::fs::write(b.work.join("hosts/h/services.yaml"), state(version))?;
    git(&b.work, &["add", "-A"])?;
    git(
        &b.work,
        &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", &format!("v{version}")],
    )?;
    git(&b.work, &["push", "-q", &b.bare.display().to_string(), "main"])?;
    git(&b.work, &["rev-parse", "HEAD"])
}

/// Seconds the agent logged last for `what` (`of volume X: … in S s`).
fn logged_secs(log: &Path, marker: &str) -> Result<Duration> {
    let text = std::fs::read_to_string(log)?;
    let line = text.lines().rev().find(|l| l.contains(marker)).with_context(|| format!("no {marker:?} in the log"))?;
    let secs: f64 = line
        .rsplit(" in ")
        .next()
        .and_then(|t| t.trim_end_matches(" s").trim().parse().ok())
        .with_context(|| format!("no time in {line:?}"))?;
    Ok(Duration::from_secs_f64(secs))
}

/// How long `HOLDER` was paused between `since` and now (the engine's events, in ns).
fn paused_for(since: i64) -> Result<Duration> {
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 1;
    let out = docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        &format!("container={HOLDER}"),
        "--filter",
        "event=pause",
        "--filter",
        "event=unpause",
        "--format",
        "{{.TimeNano}} {{.Action}}",
    ])?;
    let mut paused_at = None;
    let mut total = 0i64;
    for l in out.lines() {
        let (t, what) = l.split_once(' ').context("an event line")?;
        let t: i64 = t.parse()?;
        match (what, paused_at) {
            ("pause", _) => paused_at = Some(t),
            ("unpause", Some(p)) => {
                total += t - p;
                paused_at = None;
            }
            _ => {}
        }
    }
    if total == 0 {
        bail!("no pause of {HOLDER} seen: {out}");
    }
    Ok(Duration::from_nanos(total as u64))
}

fn sh(script: &str) -> Result<Duration> {
    let t = Instant::now();
    let out = Command::new("sh").arg("-c").arg(script).output()?;
    if !out.status.success() {
        bail!("{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed())
}

pub fn bench_snapshot(bin: &Path) -> Result<()> {
    host::ensure_tools()?;
    host::clear()?;
    let mib: usize = std::env::var("BENCH_SNAPSHOT_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let _ = docker(&["volume", "rm", "-f", VOLUME]);
    docker(&["volume", "create", VOLUME])?;
    let half = mib / 2 / 8;
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{VOLUME}:/v"),
        IMAGE,
        "sh",
        "-c",
        &format!(
            "for i in $(seq 1 {half}); do dd if=/dev/urandom of=/v/random-$i bs=1M count=8 2>/dev/null; yes \"row $i of a table that compresses well\" | head -c 8388608 > /v/text-$i; done"
        ),
    ])?;
    let b = Bench::with(0)?;
    let files = b.agent_config("snap", "1h", "")?;
    let log = files.log.clone();
    let socket = files.socket.clone();
    let d = Daemon::start(bin, files)?;
    let c = push(&b, 0)?;
    d.sync()?;
    d.wait_applied(&c, Duration::from_secs(120))?;
    let dump = b.dir.path().join("hand.tar.zst");
    let (mut agent_snap, mut agent_restore, mut paused, mut hand_snap, mut hand_restore) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 1..=runs {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        let c = push(&b, i)?;
        d.sync()?;
        d.wait_applied(&c, Duration::from_secs(600))?;
        agent_snap.push(logged_secs(&log, &format!("of volume {VOLUME}:"))?);
        paused.push(paused_for(since)?);
        let list = match driftless_agent::control::request(
            &socket,
            &driftless_agent::control::wire::Request::Snapshots { volume: Some(VOLUME.into()) },
            |_| {},
        ) {
            Ok(driftless_agent::control::wire::Reply::Ok { data }) => data,
            other => bail!("snapshots: {other:?}"),
        };
        let id = list[0]["id"].as_str().context("a snapshot id")?.to_string();
        let r = Command::new(bin.join("agentctl")).arg("--socket").arg(&socket).args(["restore", &id]).output()?;
        if !r.status.success() {
            bail!(
                "agentctl restore {id}: {}{}",
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            );
        }
        agent_restore.push(logged_secs(&log, &format!("volume {VOLUME} restored from {id} in"))?);
        hand_snap.push(sh(&format!(
            "docker run --rm -v {VOLUME}:/v {IMAGE} tar -c /v | zstd -q -T0 -f -o {}",
            dump.display()
        ))?);
        hand_restore.push(sh(&format!(
            "zstd -q -dc {} | docker run --rm -i -v {VOLUME}:/v {IMAGE} tar -x -C /",
            dump.display()
        ))?);
    }
    let size = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
    row(&format!("snapshot of {mib} MiB: agent (engine archive, pause, sha256)"), agent_snap);
    row(&format!("snapshot of {mib} MiB: by hand (tar, zstd -T0: {} MiB)", size >> 20), hand_snap);
    row("snapshot: the container paused (engine events)", paused);
    row(&format!("restore of {mib} MiB: agent (volume emptied, archive extracted)"), agent_restore);
    row(&format!("restore of {mib} MiB: by hand (zstd -d, tar -x; not emptied)"), hand_restore);
    drop(d);
    host::clear()?;
    let _ = docker(&["volume", "rm", "-f", VOLUME]);
    Ok(())
}
