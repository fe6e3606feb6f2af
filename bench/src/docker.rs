//! The agent against what users would do instead, on a real Docker engine with 50 containers:
//!
//! - `converge`: 50 new containers on an empty host — `agentd --once` vs `docker-compose up -d`
//!   on the equivalent compose file vs the floor, 50 `docker run -d` in parallel;
//! - `noop`: a cycle that finds nothing to do (50 managed containers) — the agent's sync vs
//!   the floor (`git fetch` with nothing new plus one Docker list call) vs the cron way
//!   (`git pull && docker-compose up -d`); wall time, and CPU of the client and of dockerd;
//! - `idle`: `agentd` RSS and CPU over a period (default 300 s, `BENCH_IDLE_SECS`) with a 10 s
//!   interval, and its peak RSS during the 50-container converge.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host::{self, Bench, Daemon, IMAGE};

const CONVERGE_RUNS: usize = 5;
const NOOP_RUNS: usize = 21;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn floor_converge() -> Result<()> {
    #[allow(non_snake_case)]
    let N = host::n();
    let children: Vec<_> = (0..N)
        .map(|i| {
            Command::new("docker")
                .args(["run", "-d", "--name", &format!("floor-{i:02}"), "--label", "drbench=1"])
                .args(["--restart", "unless-stopped", "-e", &format!("INDEX={i}"), "-e", "VERSION=1"])
                .args(host::RUN_FLAGS)
                .args([IMAGE, "/bin/sleep", "1000000"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for c in children {
        let out = c.wait_with_output()?;
        if !out.status.success() {
            bail!("docker run: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

pub fn bench_converge(bin: &Path) -> Result<()> {
    #[allow(non_snake_case)]
    let N = host::n();
    host::ensure_tools()?;
    let bench = Bench::new()?;
    host::clear()?;
    // Warm-up: the compose network exists from here on (as it would on a host), caches are warm.
    if host::with_compose() {
        host::run(bench.compose(&["up", "-d"]).stdout(Stdio::null()))?;
        host::clear()?;
    }
    let (mut floor, mut compose, mut agent) = (Vec::new(), Vec::new(), Vec::new());
    // BENCH_RUNS overrides the number of runs (the 200-container runs take minutes each).
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(CONVERGE_RUNS);
    for run in 0..runs {
        for which in 0..3 {
            let which = (which + run) % 3; // rotate the order between runs
            if which == 1 && !host::with_compose() {
                continue;
            }
            host::clear()?;
            std::thread::sleep(Duration::from_millis(500));
            let t = Instant::now();
            match which {
                0 => {
                    floor_converge()?;
                    floor.push(t.elapsed());
                }
                1 => {
                    let st = bench.compose(&["up", "-d"]).status()?;
                    compose.push(t.elapsed());
                    if !st.success() {
                        bail!("docker-compose up -d failed");
                    }
                }
                _ => {
                    let files = bench.agent_config(&format!("once-{run}"), "1h", "")?;
                    let out = Command::new(bin.join("agentd"))
                        .arg("--config")
                        .arg(&files.config)
                        .arg("--once")
                        .output()
                        .context("agentd --once")?;
                    agent.push(t.elapsed());
                    if !out.status.success() {
                        bail!("agentd --once failed: {}", String::from_utf8_lossy(&out.stderr));
                    }
                }
            }
            let running = host::count_running("status=running")?;
            if running < N {
                bail!("only {running} containers run after a converge");
            }
        }
    }
    host::clear()?;
    crate::row(&format!("converge {N} new containers: `agentd --once` (fetch, plan, apply)"), agent);
    if host::with_compose() {
        crate::row(&format!("converge {N} new containers: `docker-compose up -d` (Debian's 1.29)"), compose);
    }
    crate::row(&format!("converge {N} new containers: floor, {N} `docker run -d` in parallel"), floor);
    Ok(())
}

/// Wall times of `runs` calls of `f`, and the CPU per call of `pid` (0: this process's
/// children) and of dockerd.
fn measure(runs: usize, pid: u32, mut f: impl FnMut() -> Result<()>) -> Result<(Vec<Duration>, f64, f64)> {
    let dockerd = host::dockerd_pid()?;
    let cpu = || -> Result<Duration> {
        if pid == 0 {
            Ok(host::cpu_of(std::process::id())?.1)
        } else {
            Ok(host::cpu_of(pid)?.0)
        }
    };
    let (c0, d0) = (cpu()?, host::cpu_of(dockerd)?.0);
    let mut walls = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        walls.push(t.elapsed());
    }
    let (c1, d1) = (cpu()?, host::cpu_of(dockerd)?.0);
    Ok((walls, ms(c1.saturating_sub(c0)) / runs as f64, ms(d1.saturating_sub(d0)) / runs as f64))
}

pub fn bench_noop_and_idle(bin: &Path, idle: bool) -> Result<()> {
    #[allow(non_snake_case)]
    let N = host::n();
    host::ensure_tools()?;
    let bench = Bench::new()?;
    host::clear()?;

    // The agent converges the host as a daemon: its peak RSS is the converge's.
    let files = bench.agent_config("daemon", "1h", "")?;
    let config = files.config.clone();
    let daemon = Daemon::start(bin, files)?;
    let rev = host::git(&bench.work, &["rev-parse", "HEAD"])?;
    let took = daemon.wait_applied(&rev, Duration::from_secs(120))?;
    let (rss, hwm) = host::rss_of(daemon.pid())?;
    eprintln!("daemon converged {N} containers in {} ms; RSS {rss} KiB, peak {hwm} KiB", took.as_millis());
    if host::with_compose() {
        host::run(bench.compose(&["up", "-d"]).stdout(Stdio::null()))?;
    }

    let (walls, agent_cpu, agent_dockerd) = measure(NOOP_RUNS, daemon.pid(), || daemon.sync())?;
    let fetch_clone = bench.dir.path().join("fetch-clone");
    host::git(bench.dir.path(), &["clone", "-q", "--bare", &bench.url(), &fetch_clone.display().to_string()])?;
    let (floor_walls, floor_cpu, floor_dockerd) = measure(NOOP_RUNS, 0, || {
        host::git(&fetch_clone, &["fetch", "-q", "origin", "+refs/heads/main:refs/heads/main"])?;
        host::run(Command::new("curl").args([
            "-sf",
            "--unix-socket",
            "/var/run/docker.sock",
            "http://localhost/containers/json?all=1&filters=%7B%22label%22%3A%5B%22driftless.managed%3Dtrue%22%5D%7D",
        ]))?;
        Ok(())
    })?;
    let cron = if host::with_compose() {
        Some(measure(5, 0, || {
            host::git(&bench.compose_clone, &["pull", "-q"])?;
            host::run(bench.compose(&["up", "-d"]).stdout(Stdio::null()))?;
            Ok(())
        })?)
    } else {
        None
    };
    let cpu = |c: f64, d: f64| format!("CPU {c:.1} ms + dockerd {d:.1} ms per cycle");
    crate::row(
        &format!("no-op cycle, {N} managed containers: agent (`sync --wait`), {}", cpu(agent_cpu, agent_dockerd)),
        walls,
    );
    crate::row(
        &format!("no-op floor: `git fetch` (nothing new) + one Docker list call, {}", cpu(floor_cpu, floor_dockerd)),
        floor_walls,
    );
    if let Some((cron_walls, cron_cpu, cron_dockerd)) = cron {
        crate::row(
            &format!("no-op cron way: `git pull && docker-compose up -d`, {}", cpu(cron_cpu, cron_dockerd)),
            cron_walls,
        );
        host::run(bench.compose(&["rm", "-fs"]).stdout(Stdio::null()))?;
    }

    if idle {
        let secs: u64 = std::env::var("BENCH_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
        // Switch the daemon to a 10 s interval (SIGHUP re-reads the config).
        let text = std::fs::read_to_string(&config)?.replace("interval: 1h", "interval: 10s");
        std::fs::write(&config, text)?;
        host::run(Command::new("kill").args(["-HUP", &daemon.pid().to_string()]))?;
        std::thread::sleep(Duration::from_secs(2));
        // The first cycle after a reload reads the revision again: not idle cost.
        daemon.sync()?;
        let dockerd = host::dockerd_pid()?;
        let (c0, d0) = (host::cpu_of(daemon.pid())?.0, host::cpu_of(dockerd)?.0);
        let t = Instant::now();
        let mut max_rss = 0;
        let mut rss_samples = Vec::new();
        let mut anon_samples = Vec::new();
        while t.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_secs(1));
            let (rss, _, anon) = host::memory_of(daemon.pid())?;
            max_rss = max_rss.max(rss);
            rss_samples.push(rss);
            anon_samples.push(anon);
        }
        let wall = t.elapsed();
        let (c1, d1) = (host::cpu_of(daemon.pid())?.0, host::cpu_of(dockerd)?.0);
        let cycles = (wall.as_secs_f64() / 10.0).max(1.0);
        rss_samples.sort();
        anon_samples.sort();
        let cpu = c1.saturating_sub(c0);
        println!(
            "| `agentd` idle for {}s, {N} containers, 10 s interval: RSS median {:.1} MiB (max {:.1} MiB; anonymous {:.1} MiB, the rest the binary and shared libraries); CPU {:.0} ms in all = {:.3}% of one core, {:.1} ms per cycle; dockerd {:.1} ms per cycle | | | | 1 |",
            wall.as_secs(),
            rss_samples.get(rss_samples.len() / 2).copied().unwrap_or(0) as f64 / 1024.0,
            max_rss as f64 / 1024.0,
            anon_samples.get(anon_samples.len() / 2).copied().unwrap_or(0) as f64 / 1024.0,
            ms(cpu),
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            ms(cpu) / cycles,
            ms(d1.saturating_sub(d0)) / cycles,
        );
    }
    let (_, hwm_end) = host::rss_of(daemon.pid())?;
    println!(
        "| `agentd` peak RSS: {:.1} MiB after converging {N} containers as a daemon ({:.1} MiB at the end) | | | | 1 |",
        hwm as f64 / 1024.0,
        hwm_end as f64 / 1024.0
    );
    drop(daemon);
    host::clear()?;
    Ok(())
}

/// `build:` from the repository: a cold build, then applies with the context unchanged (a
/// new commit elsewhere): the image must be reused, never rebuilt. Beside it, what Docker's
/// own layer cache costs for the same unchanged context (`docker build`).
pub fn bench_build(bin: &Path) -> Result<()> {
    host::ensure_tools()?;
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("hosts/h"))?;
    std::fs::create_dir_all(work.join("site"))?;
    host::git(&work, &["init", "-q", "-b", "main"])?;
    std::fs::write(
        work.join("site/Dockerfile"),
        format!("FROM {IMAGE}\nRUN for i in $(seq 1 20000); do echo $i; done > /numbers\nCMD [\"/bin/sleep\", \"1000000\"]\n"),
    )?;
    std::fs::write(
        work.join("hosts/h/site.yaml"),
        "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: bench-site }\nspec:\n  build: { context: site }\n  stop_timeout: 1s\n",
    )?;
    let commit = |msg: &str| -> Result<()> {
        host::git(&work, &["add", "-A"])?;
        host::git(&work, &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", msg])?;
        Ok(())
    };
    commit("v1")?;
    let url = format!("file://{}", work.display());
    let files = host::write_agent_config(&dir.path().join("agent"), "h", &url, "{ branch: main }", "1h", "")?;
    let once = || agentd_once(bin, &files.config);
    host::clear()?;
    let _ = Command::new("sh")
        .args(["-c", "docker images -q driftless-build/bench-site | xargs -r docker rmi -f"])
        .output();
    let cold = vec![once()?];
    let image_id = || host::run(Command::new("docker").args(["inspect", "-f", "{{.Image}}", "bench-site"]));
    let first = image_id()?;
    let mut reuse = Vec::new();
    for i in 0..5 {
        std::fs::write(work.join("README.md"), format!("change {i} outside the build context\n"))?;
        commit(&format!("docs {i}"))?;
        reuse.push(once()?);
        if image_id()? != first {
            bail!("an unchanged context was rebuilt");
        }
    }
    let mut docker_cache = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        host::run(Command::new("docker").args(["build", "-q", "-t", "bench-site-cache"]).arg(work.join("site")))?;
        docker_cache.push(t.elapsed());
    }
    host::clear()?;
    let _ = Command::new("docker").args(["rmi", "-f", "bench-site-cache"]).output();
    crate::row("build: cold (`agentd --once`, the context built)", cold);
    crate::row("build: unchanged context, new commit (`agentd --once`: fetch, plan, reuse — no build)", reuse);
    crate::row("build: `docker build` of the unchanged context (the engine's layer cache)", docker_cache);
    Ok(())
}

/// The same 50 services as a compose file and as `driftless/v1` documents: converge from
/// nothing, and a no-op cycle, each `agentd --once` (process start, fetch, load, observe,
/// plan, apply), alternating between the two hosts.
pub fn bench_compose(bin: &Path) -> Result<()> {
    #[allow(non_snake_case)]
    let N = host::n();
    host::ensure_tools()?;
    let dir = tempfile::tempdir()?;
    let mk = |name: &str, file: &str, text: String| -> Result<host::AgentFiles> {
        let work = dir.path().join(name);
        std::fs::create_dir_all(work.join("hosts/h"))?;
        host::git(&work, &["init", "-q", "-b", "main"])?;
        std::fs::write(work.join("hosts/h").join(file), text)?;
        host::git(&work, &["add", "-A"])?;
        host::git(&work, &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "v1"])?;
        let url = format!("file://{}", work.display());
        host::write_agent_config(&dir.path().join(format!("{name}-agent")), "h", &url, "{ branch: main }", "1h", "")
    };
    // Native: the converge bench's documents, on the network compose would make.
    let native = host::services_yaml(N, "1")
        .replace("  stop_timeout: 1s\n", "  stop_timeout: 1s\n  networks: [bench_default]\n");
    let mut compose = String::from("name: bench\nservices:\n");
    for i in 0..N {
        compose.push_str(&format!(
            "  bench-{i:02}:\n    image: {IMAGE}\n    pull_policy: never\n    command: {}\n    environment: {{ INDEX: \"{i}\", VERSION: \"1\" }}\n    restart: unless-stopped\n    stop_grace_period: 1s\n{}",
            host::SLEEP,
            host::COMPOSE_KEYS
        ));
    }
    let native_files = mk("native", "services.yaml", native)?;
    let compose_files = mk("compose", "compose.yaml", compose)?;
    let once = |files: &host::AgentFiles| agentd_once(bin, &files.config);
    let (mut conv_native, mut conv_compose, mut noop_native, mut noop_compose) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..CONVERGE_RUNS {
        for which in 0..2 {
            let compose_first = (which + run) % 2 == 0;
            host::clear()?;
            let _ = Command::new("sh")
                .args(["-c", "rm -rf \"$0\"/state \"$1\"/state"])
                .arg(dir.path().join("native-agent"))
                .arg(dir.path().join("compose-agent"))
                .output();
            std::thread::sleep(Duration::from_millis(500));
            let files = if compose_first { &compose_files } else { &native_files };
            let d = once(files)?;
            let running = host::count_running("status=running")?;
            if running < N {
                bail!("only {running} containers run after a converge");
            }
            let mut noop = Vec::new();
            for _ in 0..3 {
                noop.push(once(files)?);
            }
            if compose_first {
                conv_compose.push(d);
                noop_compose.extend(noop);
            } else {
                conv_native.push(d);
                noop_native.extend(noop);
            }
        }
    }
    host::clear()?;
    let _ = Command::new("docker").args(["network", "rm", "bench_default"]).output();
    crate::row(&format!("converge {N} services: driftless/v1 documents (`agentd --once`)"), conv_native);
    crate::row(&format!("converge {N} services: the same as compose.yaml (`agentd --once`)"), conv_compose);
    crate::row(&format!("no-op cycle, {N} services: driftless/v1 documents (`agentd --once`)"), noop_native);
    crate::row(&format!("no-op cycle, {N} services: compose.yaml (`agentd --once`)"), noop_compose);
    Ok(())
}

/// One `agentd --once` with `config`: its wall time, or its output when it failed.
fn agentd_once(bin: &Path, config: &Path) -> Result<Duration> {
    let t = Instant::now();
    let out = Command::new(bin.join("agentd")).arg("--config").arg(config).arg("--once").output()?;
    let d = t.elapsed();
    if !out.status.success() {
        bail!("agentd --once: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(d)
}

/// The watch after the gate (issue 36): `agentd` idle with `BENCH_N` (50) containers, each
/// serving HTTP on its own loopback port with an `http` check, first with
/// `health.watch_interval: 0s` (no watch), then `30s`, each for `BENCH_IDLE_SECS` (300) at a
/// poll interval of 1 h: the agent CPU the watch costs, as a share of one core and per round,
/// measured after its first round (a start-up cost: with https checks it builds the TLS client).
pub fn bench_watch(bin: &Path) -> Result<()> {
    #[allow(non_snake_case)]
    let N = host::n();
    host::ensure_tools()?;
    host::clear()?;
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("hosts/h"))?;
    host::git(&work, &["init", "-q", "-b", "main"])?;
    let mut text = String::new();
    for i in 0..N {
        let port = host::free_port()?;
        text.push_str(&format!(
            "---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: bench-{i:02} }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"echo ok > /tmp/index.html && exec httpd -f -p 8080 -h /tmp\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  init: true\n  stop_timeout: 1s\n  health:\n    - http: {{ url: \"http://127.0.0.1:{port}/\", body_contains: ok }}\n"
        ));
    }
    std::fs::write(work.join("hosts/h/services.yaml"), text)?;
    host::git(&work, &["add", "-A"])?;
    host::git(&work, &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "v1"])?;
    let url = format!("file://{}", work.display());
    let files = host::write_agent_config(
        &dir.path().join("agent"),
        "h",
        &url,
        "{ branch: main }",
        "1h",
        "health: { watch_interval: 0s }\n",
    )?;
    let config = files.config.clone();
    let daemon = Daemon::start(bin, files)?;
    let rev = host::git(&work, &["rev-parse", "HEAD"])?;
    let took = daemon.wait_applied(&rev, Duration::from_secs(300))?;
    eprintln!("watch: {N} containers with http checks applied in {} ms", took.as_millis());
    let secs: u64 = std::env::var("BENCH_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    for every in ["0s", "30s"] {
        let text = std::fs::read_to_string(&config)?;
        let text = text
            .lines()
            .map(|l| {
                if l.starts_with("health:") {
                    format!("health: {{ watch_interval: {every} }}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&config, text + "\n")?;
        host::run(Command::new("kill").args(["-HUP", &daemon.pid().to_string()]))?;
        std::thread::sleep(Duration::from_secs(2));
        daemon.sync()?;
        // The first round is start-up work, not the steady cost measured here (with https
        // checks it builds the TLS client once: tens of ms parsing the system's roots).
        std::thread::sleep(Duration::from_secs(if every == "0s" { 0 } else { 32 }));
        let c0 = host::cpu_of(daemon.pid())?.0;
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let cpu = host::cpu_of(daemon.pid())?.0.saturating_sub(c0);
        let wall = t.elapsed();
        let rounds = if every == "0s" { 0.0 } else { wall.as_secs_f64() / 30.0 };
        println!(
            "| `agentd` idle {}s, {N} containers with an http check each, `watch_interval: {every}` (poll 1 h): CPU {:.0} ms = {:.3}% of one core{} | | | | 1 |",
            wall.as_secs(),
            ms(cpu),
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            if rounds > 0.0 { format!(", {:.1} ms per round of {N} checks", ms(cpu) / rounds) } else { String::new() }
        );
    }
    drop(daemon);
    host::clear()?;
    Ok(())
}
