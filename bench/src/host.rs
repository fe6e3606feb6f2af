//! A bench host: 50 containers as desired state in a local Git repository, the same 50 as a
//! docker-compose file, and helpers to run `agentd`, read a process's CPU and memory from
//! /proc, and clear the engine between runs. Shared by the Docker benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use driftless_agent::control::wire::{Reply, Request};

pub const IMAGE: &str = "driftless-bench/busybox:1";
/// Containers per Docker benchmark: `BENCH_N` (default 50).
pub fn n() -> usize {
    std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(50)
}
/// Whether to run docker-compose beside the agent (`BENCH_COMPOSE=0` leaves it out: Debian's
/// docker-compose 1.29 takes over 20 minutes for `up -d` of 200 services).
pub fn with_compose() -> bool {
    std::env::var("BENCH_COMPOSE").map_or(true, |v| v != "0")
}
pub const PROJECT: &str = "drbench";

pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn docker(args: &[&str]) -> Result<String> {
    run(Command::new("docker").args(args))
}

pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    run(Command::new("git").args(args).current_dir(dir))
}

/// Child processes killed (and reaped) on drop: servers, a fleet of agents.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// Smart HTTP over `srv` (tests/fixtures/git_http.py, `git http-backend` per request) on
/// 127.0.0.1: the running server, its port, and its pid (for its CPU, children included).
/// It counts requests and bytes in `srv`'s parent folder (see `http_stats`).
pub fn start_git_http(srv: &Path) -> Result<(Children, u16, u32)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/git_http.py");
    let portfile = srv.with_file_name("port");
    let child = Command::new("python3")
        .arg(&script)
        .arg(srv)
        .arg(&portfile)
        .stderr(Stdio::null())
        .spawn()
        .context("python3 git_http.py")?;
    let pid = child.id();
    let server = Children(vec![child]);
    let start = Instant::now();
    let port: u16 = loop {
        if let Some(p) = std::fs::read_to_string(&portfile).ok().and_then(|p| p.trim().parse().ok()) {
            break p;
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("git_http.py did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    wait_port(port)?;
    Ok((server, port, pid))
}

/// Requests served and bytes sent so far by the `start_git_http` server whose root is below `dir`.
pub fn http_stats(dir: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(dir.join("http-stats")).unwrap_or_default();
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_port(port: u16) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on {port}")
}

/// An agent config in `root` (state and socket beside it) following `reference` (a YAML flow
/// mapping such as `{ branch: main }`) of `url`, folder `hosts/h`; `extra` is appended as YAML.
pub fn write_agent_config(
    root: &Path,
    host: &str,
    url: &str,
    reference: &str,
    interval: &str,
    extra: &str,
) -> Result<AgentFiles> {
    std::fs::create_dir_all(root)?;
    let config = root.join("agent.yaml");
    let socket = root.join("agent.sock");
    std::fs::write(
        &config,
        format!(
            "host: {host}\nsource:\n  url: \"{url}\"\n  ref: {reference}\n  path: hosts/h\n  interval: {interval}\nstate_dir: {}\ncontrol_socket: {}\n{extra}",
            root.join("state").display(),
            socket.display()
        ),
    )?;
    Ok(AgentFiles { config, socket, log: root.join("agentd.log") })
}

/// CPU time (user + system) of a process so far, and of its waited-for children.
pub fn cpu_of(pid: u32) -> Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").map(|(_, a)| a).unwrap_or("");
    let f: Vec<u64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let tick = |n: u64| Duration::from_millis(n * 10); // CLK_TCK is 100 on Linux x86_64
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    Ok((tick(get(11) + get(12)), tick(get(13) + get(14))))
}

/// Resident, peak resident and anonymous resident memory of a process, in KiB.
pub fn rss_of(pid: u32) -> Result<(u64, u64)> {
    let (rss, hwm, _) = memory_of(pid)?;
    Ok((rss, hwm))
}

/// VmRSS, VmHWM and RssAnon (the part not backed by the binary and shared libraries), KiB.
pub fn memory_of(pid: u32) -> Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:"), field("RssAnon:")))
}

pub fn dockerd_pid() -> Result<u32> {
    let out = run(Command::new("pidof").arg("dockerd")).context("dockerd is not running here")?;
    out.split_whitespace().next().and_then(|p| p.parse().ok()).context("pidof dockerd")
}

pub fn ensure_tools() -> Result<()> {
    docker(&["info", "--format", "{{.ServerVersion}}"]).context("no Docker engine answers: run .ci/setup")?;
    if with_compose() {
        run(Command::new("docker-compose").arg("version")).context(
            "docker-compose is missing: apt-get install docker-compose (Debian's, for the comparison), or set BENCH_COMPOSE=0",
        )?;
    }
    if docker(&["image", "inspect", IMAGE]).is_err() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/containers/build-image.sh");
        run(Command::new("sh").arg(script).arg(IMAGE))?;
    }
    Ok(())
}

/// Remove every container of the bench (agent-managed, compose project, floor).
pub fn clear() -> Result<()> {
    for filter in
        ["label=driftless.managed=true", &format!("label=com.docker.compose.project={PROJECT}"), "label=drbench=1"]
    {
        // A removal still in progress (the previous run's) fails `rm -f`: list again.
        for attempt in 0.. {
            let ids = docker(&["ps", "-aq", "--filter", filter])?;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if ids.is_empty() {
                break;
            }
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            match docker(&args) {
                Ok(_) => break,
                Err(e) if attempt < 10 && format!("{e:#}").contains("already in progress") => {
                    std::thread::sleep(std::time::Duration::from_secs(2))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

pub fn count_running(filter: &str) -> Result<usize> {
    Ok(docker(&["ps", "-q", "--filter", filter])?.split_whitespace().count())
}

pub struct Bench {
    /// How many containers the desired state holds.
    pub n: usize,
    pub dir: tempfile::TempDir,
    pub bare: PathBuf,
    pub work: PathBuf,
    pub compose_clone: PathBuf,
}

/// `sleep` as PID 1 ignores SIGTERM (a stop waits out `stop_timeout`); this shell exits on it.
const QUICK_STOP: &str = r#"["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]"#;
pub const SLEEP: &str = r#"["/bin/sleep", "1000000"]"#;

pub fn services_yaml(n: usize, version: &str) -> String {
    // The 50-container host matches the compose file (sleep); the latency host stops quickly.
    let command = if n == self::n() { SLEEP } else { QUICK_STOP };
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: bench-{i:02} }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: {command}\n  env: {{ INDEX: \"{i}\", VERSION: \"{version}\" }}\n  restart: unless-stopped\n  stop_timeout: 1s\n{SPEC_KEYS}"
        ));
    }
    text
}

/// The keys a real service carries (issue 13): every bench container has them, in all three
/// forms (desired state, compose file, `docker run` flags), so the comparison stays fair.
const SPEC_KEYS: &str = "  labels: { team: bench, traefik.enable: \"false\" }\n  user: \"1000:1000\"\n  working_dir: /tmp\n  read_only: true\n  tmpfs: [\"/tmp\"]\n  init: true\n  cap_drop: [MKNOD]\n  memory: 64m\n  cpus: 0.5\n  pids_limit: 64\n  shm_size: 16m\n  ulimits: { nofile: 1024 }\n  logging: { driver: json-file, options: { max-size: 1m } }\n  security_opt: [\"no-new-privileges:true\"]\n";

pub const COMPOSE_KEYS: &str = "    labels: { team: bench, traefik.enable: \"false\" }\n    user: \"1000:1000\"\n    working_dir: /tmp\n    read_only: true\n    tmpfs: [\"/tmp\"]\n    init: true\n    cap_drop: [MKNOD]\n    mem_limit: 64m\n    cpus: 0.5\n    pids_limit: 64\n    shm_size: 16m\n    ulimits: { nofile: 1024 }\n    logging: { driver: json-file, options: { max-size: 1m } }\n    security_opt: [\"no-new-privileges:true\"]\n";

/// The same as `docker run` flags (the floor).
pub const RUN_FLAGS: &[&str] = &[
    "--label",
    "team=bench",
    "--label",
    "traefik.enable=false",
    "--user",
    "1000:1000",
    "--workdir",
    "/tmp",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--init",
    "--cap-drop",
    "MKNOD",
    "--memory",
    "64m",
    "--cpus",
    "0.5",
    "--pids-limit",
    "64",
    "--shm-size",
    "16m",
    "--ulimit",
    "nofile=1024",
    "--log-driver",
    "json-file",
    "--log-opt",
    "max-size=1m",
    "--security-opt",
    "no-new-privileges:true",
];

fn compose_yaml() -> String {
    let mut text = String::from("version: \"2.4\"\nservices:\n");
    for i in 0..n() {
        text.push_str(&format!(
            "  bench-{i:02}:\n    image: {IMAGE}\n    command: [\"/bin/sleep\", \"1000000\"]\n    environment: {{ INDEX: \"{i}\", VERSION: \"1\" }}\n    restart: unless-stopped\n    stop_grace_period: 1s\n{COMPOSE_KEYS}"
        ));
    }
    text
}

impl Bench {
    /// A repository with `hosts/h/services.yaml` (50 containers) and `docker-compose.yml`.
    pub fn new() -> Result<Bench> {
        Bench::with(n())
    }

    /// The same with `n` containers in the desired state.
    pub fn with(n: usize) -> Result<Bench> {
        let dir = tempfile::tempdir()?;
        let work = dir.path().join("work");
        let bare = dir.path().join("state.git");
        std::fs::create_dir_all(work.join("hosts/h"))?;
        git(&work, &["init", "-q", "-b", "main"])?;
        std::fs::write(work.join("hosts/h/services.yaml"), services_yaml(n, "1"))?;
        std::fs::write(work.join("docker-compose.yml"), compose_yaml())?;
        git(&work, &["add", "-A"])?;
        git(&work, &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "v1"])?;
        git(dir.path(), &["clone", "-q", "--bare", &work.display().to_string(), &bare.display().to_string()])?;
        let compose_clone = dir.path().join("compose-clone");
        git(dir.path(), &["clone", "-q", &bare.display().to_string(), &compose_clone.display().to_string()])?;
        Ok(Bench { n, dir, bare, work, compose_clone })
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Commit the services file with `VERSION` set to `version` and push it; the new commit id.
    pub fn push_services(&self, version: &str) -> Result<String> {
        std::fs::write(self.work.join("hosts/h/services.yaml"), services_yaml(self.n, version))?;
        git(&self.work, &["add", "-A"])?;
        git(
            &self.work,
            &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", version],
        )?;
        git(&self.work, &["push", "-q", &self.bare.display().to_string(), "main"])?;
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Write an agent config in a fresh folder; `extra` is appended as YAML.
    pub fn agent_config(&self, name: &str, interval: &str, extra: &str) -> Result<AgentFiles> {
        let root = self.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&root);
        write_agent_config(&root, "h", &self.url(), "{ branch: main }", interval, extra)
    }

    /// One `docker-compose` command on the compose clone.
    pub fn compose(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker-compose");
        c.current_dir(&self.compose_clone).args(["-p", PROJECT]).args(args).stdout(Stdio::null()).stderr(Stdio::null());
        c
    }
}

pub struct AgentFiles {
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

/// A running `agentd`, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub files: AgentFiles,
}

impl Daemon {
    pub fn start(bin: &Path, files: AgentFiles) -> Result<Daemon> {
        let log = std::fs::File::create(&files.log)?;
        let child = Command::new(bin.join("agentd"))
            .arg("--config")
            .arg(&files.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting agentd")?;
        let d = Daemon { child, files };
        let start = Instant::now();
        while d.status().is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                bail!("agentd did not answer: {}", std::fs::read_to_string(&d.files.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn status(&self) -> Result<serde_json::Value> {
        status_of(&self.files.socket)
    }

    pub fn wait_applied(&self, revision: &str, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let s = self.status()?;
            if s["applied_revision"] == revision && s["phase"] == "Synced" {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!("{revision} not applied within {timeout:?}: {s}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `agentctl sync --wait`, in process.
    pub fn sync(&self) -> Result<()> {
        match driftless_agent::control::request(
            &self.files.socket,
            &Request::Sync { wait: true, retry: false, ignore_rollout: false },
            |_| {},
        ) {
            Ok(Reply::Ok { .. }) => Ok(()),
            Ok(Reply::Error { message }) => bail!("sync: {message}"),
            Err(e) => bail!("sync: {e}"),
        }
    }
}

pub fn status_of(socket: &Path) -> Result<serde_json::Value> {
    match driftless_agent::control::request(socket, &Request::Status, |_| {}) {
        Ok(Reply::Ok { data }) => Ok(data),
        Ok(Reply::Error { message }) => bail!("status: {message}"),
        Err(e) => bail!("status: {e}"),
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
