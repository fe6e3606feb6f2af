//! Requests lost while a web app is replaced under load.
//! A load of `BENCH_RPS` (default 200) requests per second on 127.0.0.1, each on a new
//! connection (as separate clients would), runs through `BENCH_REPLACES` (default 10)
//! replaces of one web server, done four ways: the agent (a Container publishing the port,
//! `update: stop-first`), `docker-compose up -d` on the same container,
//! and Passenger (`passenger-config restart-app` after a release switch, what the agent does
//! for a PassengerApp), plus the agent's start-first replace behind Debian's Caddy. Printed
//! per way: requests sent, failed (refused, reset, timed out after 2 s, or not 2xx), and
//! p50/p99 latency of all of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host::{self, docker, git, Daemon, IMAGE};

fn rps() -> u64 {
    std::env::var("BENCH_RPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

fn replaces() -> usize {
    std::env::var("BENCH_REPLACES").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
}

/// One request: whether it succeeded, and how long it took.
type Sample = (bool, Duration);

/// A steady load on 127.0.0.1:`port` until stopped: 8 threads, each pacing its share of
/// `rps` on a fixed schedule (a slow request delays its thread's next ones, which then go
/// out at once, as impatient clients would).
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Sample>>>,
}

const THREADS: u64 = 8;

fn get(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut out = Vec::new();
    if s.read_to_end(&mut out).is_err() {
        return false;
    }
    out.starts_with(b"HTTP/1.0 2") || out.starts_with(b"HTTP/1.1 2")
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let every = Duration::from_micros(1_000_000 * THREADS / rps().max(1));
        let threads = (0..THREADS)
            .map(|t| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let start = Instant::now() + every / THREADS as u32 * t as u32;
                    let mut samples = Vec::new();
                    for k in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let due = start + every * k;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let t0 = Instant::now();
                        let ok = get(addr);
                        samples.push((ok, t0.elapsed()));
                    }
                    samples
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stop, and (sent, failed, p50, p99).
    fn finish(self) -> (usize, usize, Duration, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Sample> = self.threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect();
        let failed = all.iter().filter(|(ok, _)| !ok).count();
        all.sort_by_key(|(_, d)| *d);
        let at = |q: f64| {
            all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).map_or(Duration::ZERO, |s| s.1)
        };
        (all.len(), failed, at(0.50), at(0.99))
    }
}

fn wait_answering(port: u16, what: &str) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while !get(addr) {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{what} does not answer on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A busybox httpd answering with its version; `init` so that SIGTERM stops it at once.
const SERVE: &str =
    r#"["sh", "-c", "mkdir -p /www && echo $VERSION > /www/index.html && exec httpd -f -p 8080 -h /www"]"#;

fn row(way: &str, r: (usize, usize, Duration, Duration), secs: f64) {
    let (sent, failed, p50, p99) = r;
    println!(
        "| {way} | {} | {sent} | {failed} ({:.1} %) | {:.1} ms | {:.1} ms | {secs:.1} s |",
        replaces(),
        100.0 * failed as f64 / sent.max(1) as f64,
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
}

/// Debian's Caddy with only its admin socket (in `dir`), killed on drop.
struct Caddy(std::process::Child);

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_caddy(dir: &Path) -> Result<(Caddy, String)> {
    let admin = format!("unix/{}", dir.join("admin.sock").display());
    let config = dir.join("caddy.json");
    std::fs::write(&config, format!("{{\"admin\":{{\"listen\":\"{admin}\"}}}}"))?;
    let child = Command::new("caddy")
        .args(["run", "--config"])
        .arg(&config)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("caddy (apt install caddy)")?;
    let caddy = Caddy(child);
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(dir.join("admin.sock")).is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("caddy's admin socket does not answer");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((caddy, admin))
}

/// The agent replacing a web Container: stop-first with the port published, or start-first
/// behind Caddy listening on that port.
fn agent_replaces(bin: &Path, dir: &Path, start_first: bool) -> Result<()> {
    let port = host::free_port()?;
    let bench = host::Bench::with(0)?;
    let (caddy, extra) = if start_first {
        let cdir = dir.join("caddy");
        std::fs::create_dir_all(&cdir)?;
        let (c, admin) = start_caddy(&cdir)?;
        (Some(c), format!("proxy: {{ caddy_admin: \"{admin}\" }}\n"))
    } else {
        (None, String::new())
    };
    let traffic = if start_first {
        format!("  update: start-first\n  proxy: {{ listen: \"127.0.0.1:{port}\", port: 8080, drain: 1s }}\n")
    } else {
        format!("  ports: [\"127.0.0.1:{port}:8080\"]\n")
    };
    let web = |v: usize| {
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: dl-web }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: {SERVE}\n  env: {{ VERSION: \"{v}\" }}\n  init: true\n{traffic}  stop_timeout: 2s\n"
        )
    };
    let push = |v: usize| -> Result<String> {
        std::fs::write(bench.work.join("hosts/h/services.yaml"), web(v))?;
        git(&bench.work, &["add", "-A"])?;
        git(
            &bench.work,
            &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", &v.to_string()],
        )?;
        git(&bench.work, &["push", "-q", &bench.bare.display().to_string(), "main"])?;
        git(&bench.work, &["rev-parse", "HEAD"])
    };
    let first = push(0)?;
    let files = bench.agent_config("downtime", "1h", &extra)?;
    let d = Daemon::start(bin, files)?;
    d.sync()?;
    d.wait_applied(&first, Duration::from_secs(60))?;
    wait_answering(port, "the agent's container")?;
    let load = Load::start(port);
    let t0 = Instant::now();
    for v in 1..=replaces() {
        let c = push(v)?;
        d.sync()?;
        d.wait_applied(&c, Duration::from_secs(60))?;
        wait_answering(port, "the replaced container")?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let secs = t0.elapsed().as_secs_f64();
    let way = if start_first { "agent, start-first through Caddy" } else { "agent, stop-first (port published)" };
    row(way, load.finish(), secs);
    drop(d);
    drop(caddy);
    host::clear()
}

/// `docker-compose up -d` replacing the same container.
fn compose_up(dir: &Path) -> Result<()> {
    let port = host::free_port()?;
    let project = dir.join("dl");
    std::fs::create_dir_all(&project)?;
    let write = |v: usize| {
        std::fs::write(
            project.join("docker-compose.yml"),
            format!(
                "version: \"2.4\"\nservices:\n  web:\n    image: {IMAGE}\n    command: {SERVE}\n    environment: {{ VERSION: \"{v}\" }}\n    init: true\n    ports: [\"127.0.0.1:{port}:8080\"]\n    stop_grace_period: 2s\n"
            ),
        )
    };
    let up = || -> Result<()> {
        let out =
            Command::new("docker-compose").current_dir(&project).args(["-p", "drbench-dl", "up", "-d"]).output()?;
        if !out.status.success() {
            bail!("docker-compose up -d: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    write(0)?;
    up()?;
    wait_answering(port, "the compose container")?;
    let load = Load::start(port);
    let t0 = Instant::now();
    for v in 1..=replaces() {
        write(v)?;
        up()?;
        wait_answering(port, "the replaced compose container")?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let secs = t0.elapsed().as_secs_f64();
    row("`docker-compose up -d` (1.29)", load.finish(), secs);
    let _ = Command::new("docker-compose").current_dir(&project).args(["-p", "drbench-dl", "down", "-t", "1"]).output();
    Ok(())
}

/// Passenger: a new release, `current` switched, `passenger-config restart-app`.
fn passenger(dir: &Path) -> Result<()> {
    if Command::new("passenger").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("| Passenger `restart-app` | — | — | — | — | — | passenger is not installed |");
        return Ok(());
    }
    let port = host::free_port()?;
    let root = dir.join("app");
    let registry = dir.join("registry");
    std::fs::create_dir_all(&registry)?;
    let release = |v: usize| -> Result<()> {
        let r = root.join(format!("releases/{v:04}"));
        std::fs::create_dir_all(&r)?;
        std::fs::write(
            r.join("passenger_wsgi.py"),
            format!(
                "def application(e, s):\n    s('200 OK', [('Content-Type', 'text/plain')])\n    return [b'{v}\\n']\n"
            ),
        )?;
        let tmp = root.join("current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("releases/{v:04}"), &tmp)?;
        std::fs::rename(&tmp, root.join("current"))?;
        Ok(())
    };
    release(0)?;
    let out = Command::new("passenger")
        .arg("start")
        .arg(root.join("current"))
        .args(["--engine", "builtin", "--address", "127.0.0.1", "--port", &port.to_string(), "-d"])
        .args(["--environment", "production", "--min-instances", "2"])
        .arg("--pid-file")
        .arg(dir.join("passenger.pid"))
        .arg("--log-file")
        .arg(dir.join("passenger.log"))
        .arg("--instance-registry-dir")
        .arg(&registry)
        .output()?;
    if !out.status.success() {
        bail!("passenger start: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stop = || {
        let _ = Command::new("passenger")
            .arg("stop")
            .arg("--pid-file")
            .arg(dir.join("passenger.pid"))
            .arg("--port")
            .arg(port.to_string())
            .output();
    };
    let result = (|| -> Result<()> {
        wait_answering(port, "Passenger")?;
        let load = Load::start(port);
        let t0 = Instant::now();
        for v in 1..=replaces() {
            release(v)?;
            let out = Command::new("passenger-config")
                .arg("restart-app")
                .arg(root.join("current"))
                .arg("--ignore-app-not-running")
                .env("PASSENGER_INSTANCE_REGISTRY_DIR", &registry)
                .output()
                .context("passenger-config")?;
            if !out.status.success() {
                bail!("passenger-config restart-app: {}", String::from_utf8_lossy(&out.stderr));
            }
            wait_answering(port, "Passenger after a restart")?;
            std::thread::sleep(Duration::from_millis(500));
        }
        let secs = t0.elapsed().as_secs_f64();
        row("Passenger `restart-app`", load.finish(), secs);
        Ok(())
    })();
    stop();
    result
}

pub fn bench_downtime(bin: &Path) -> Result<()> {
    host::ensure_tools()?;
    host::clear()?;
    docker(&["image", "inspect", IMAGE])?;
    let dir = tempfile::tempdir()?;
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").unwrap_or_default();
    println!(
        "\n### Requests lost during replaces ({} requests/s on 127.0.0.1, each on a new connection; net.ipv4.tcp_migrate_req = {})\n",
        rps(),
        migrate.trim()
    );
    println!("| way | replaces | requests | failed | p50 | p99 | time |");
    println!("|---|---|---|---|---|---|---|");
    agent_replaces(bin, dir.path(), true)?;
    agent_replaces(bin, dir.path(), false)?;
    if host::with_compose() {
        compose_up(dir.path())?;
    }
    passenger(dir.path())
}
