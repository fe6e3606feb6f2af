//! Runtimes: the I/O edge between plans and the host. Each kind of resource has one
//! `Driver`, and `Drivers` holds them as a map from kind to driver; nothing outside this
//! folder knows a kind's quirks. A driver answers:
//!
//! - **observe**: which resources of my kind do I manage, with which spec hash and revision,
//!   and are they running? (`plan::Observed`)
//! - **fetch**: bring from outside what R needs at revision V — pull its image, build it —
//!   without touching anything that runs. The reconciler fetches for every changing
//!   resource before the first running thing is touched (PRODUCT.md behaviour 8).
//! - **inputs**: what on the host feeds a resource's spec hash (env file contents, the local
//!   image id, the source tree)?
//! - **converge**: make resource R run spec S from revision V. Idempotent, so that re-running
//!   it after a crash or a fault at any point finishes the job. Reverting is converging every
//!   resource to the last good revision's specs (reusing what was kept: an image, a release
//!   folder, a Nix generation — never a rebuild when it can be avoided).
//! - **restart**: restart R, which is up to date, after a dependency it names with
//!   `restart: true` was updated.
//! - **remove**: stop managing R on this host (data is kept: volumes, `shared/`, backups).
//! - gate hooks: **gated** (does the live gate apply), **watch** (has R already failed?),
//!   **self_check** (the `container` probe: the runtime's own health verdict), **commit**
//!   (after the gate: NixOS makes the system the boot default).
//! - **describe**: a line for the history about what R now runs.
//! - **reachable**: is the backend there at all? A verdict-looking failure (a gate that
//!   failed, an engine error) while the backend is unreachable is a fault, not a verdict.
//! - **observation_token**: has anything it would observe changed since it last looked? A
//!   driver fed by its engine's events (Docker) answers from the feed, and `Drivers` then
//!   reuses the last observation instead of asking the engine again — for at most `RESYNC`,
//!   after which it looks anyway (the poll stays the safety net for a feed that stalls).
//!
//! Every method but `kind`, `observe`, `converge` and `remove` has a default for runtimes
//! with nothing to do. Adding a runtime: a variant in the schema's `Kind`/`Spec`, one file
//! here implementing `Driver`, one line in `agentd` registering it, and docs.

pub mod docker;
pub mod nixos;
pub mod passenger;

use std::collections::BTreeMap;

use async_trait::async_trait;
use desired_state_schema::{Kind, Resource};

use crate::fault::{Class, Classify};
use crate::plan::Observed;
use crate::revision::Revision;

/// Why a runtime could not do what was asked. One line each, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("Docker is not reachable: {detail}; is dockerd running? (systemctl start docker)")]
    DockerUnreachable { detail: String },
    #[error("image {image} is not on this host and pull is `never`: build or load it on the host (docker build -t {image} …, docker load)")]
    ImageMissing { image: String },
    #[error(
        "pulling image {image} failed: {detail}; check the registry, the network and the credentials (docker login)"
    )]
    Pull { image: String, detail: String },
    #[error("registry {registry} refused to let this host pull {image}: {detail}")]
    RegistryAuth { image: String, registry: String, detail: String },
    #[error("the registry has no image {image} ({detail}): the revision names an image that does not exist (any more); push it, or fix the reference in the desired state")]
    ImageUnknown { image: String, detail: String },
    #[error("{resource}: {detail}")]
    Build { resource: String, detail: String },
    #[error(
        "a container named {name} exists and is not managed by Driftless: remove or rename it, or rename the resource"
    )]
    NameTaken { name: String },
    #[error(
        "a container named {name} exists and belongs to the agent of host {host} (label driftless.host={host}) on this engine: rename the resource, or remove it from that host's desired state"
    )]
    NameTakenByAgent { name: String, host: String },
    #[error("env file {path} of {resource}: {detail}")]
    EnvFile { resource: String, path: String, detail: String },
    #[error("{resource}: {detail}")]
    Docker { resource: String, detail: String },
    #[error("{resource}: the Docker engine refused: {detail}; this is the host's state, not the revision's: fix it and the agent retries")]
    Engine { resource: String, detail: String },
    #[error("{resource}: {detail}")]
    Passenger { resource: String, detail: String },
    #[error("{resource}: {detail}")]
    Nixos { resource: String, detail: String },
    #[error("{resource}: {detail}; this is the host's state, not the revision's: fix it and the agent retries")]
    Host { resource: String, detail: String },
    #[error("{kind} resources need a runtime this agent does not have here: {detail}")]
    Unsupported { kind: Kind, detail: String },
    /// The host lacks or refuses what the revision's own content asks of it (PRODUCT.md
    /// behaviour 10): a verdict on the revision, found before anything is touched where it
    /// can be (`Driver::preflight`), which fails the revision with the host as it was.
    #[error("{resource}: {detail}")]
    HostLacks { resource: String, detail: String },
    /// The host's reverse proxy refused a change the revision asks for (Caddy's 4xx): a
    /// verdict on the revision; Caddy's own words are in `detail`.
    #[error("{resource}: {detail}")]
    ProxyRefused { resource: String, detail: String },
}

impl Classify for RuntimeError {
    fn class(&self) -> Class {
        match self {
            RuntimeError::DockerUnreachable { .. }
            | RuntimeError::ImageMissing { .. }
            | RuntimeError::Pull { .. }
            | RuntimeError::RegistryAuth { .. }
            | RuntimeError::NameTaken { .. }
            | RuntimeError::NameTakenByAgent { .. }
            | RuntimeError::EnvFile { .. }
            | RuntimeError::Engine { .. }
            | RuntimeError::Host { .. } => Class::Fault,
            RuntimeError::Docker { .. }
            | RuntimeError::Build { .. }
            | RuntimeError::ImageUnknown { .. }
            | RuntimeError::Passenger { .. }
            | RuntimeError::Nixos { .. }
            | RuntimeError::Unsupported { .. }
            | RuntimeError::HostLacks { .. }
            | RuntimeError::ProxyRefused { .. } => Class::Verdict,
        }
    }
}

impl RuntimeError {
    /// The resource the error is about, when it names one.
    pub fn resource(&self) -> Option<&str> {
        match self {
            RuntimeError::NameTaken { name } | RuntimeError::NameTakenByAgent { name, .. } => Some(name),
            RuntimeError::EnvFile { resource, .. }
            | RuntimeError::Docker { resource, .. }
            | RuntimeError::Build { resource, .. }
            | RuntimeError::Engine { resource, .. }
            | RuntimeError::Passenger { resource, .. }
            | RuntimeError::Nixos { resource, .. }
            | RuntimeError::HostLacks { resource, .. }
            | RuntimeError::ProxyRefused { resource, .. }
            | RuntimeError::Host { resource, .. } => Some(resource),
            _ => None,
        }
    }

    /// A file-system error of `resource` at `path`: a fault when the host is to blame (disk
    /// full, no permission), else `verdict` (what the revision asked cannot be done).
    pub fn io(resource: &str, path: &std::path::Path, e: &std::io::Error, verdict: fn(String, String) -> Self) -> Self {
        let detail = format!("{}: {e}", path.display());
        if crate::fault::io_is_fault(e) {
            RuntimeError::Host { resource: resource.to_string(), detail }
        } else {
            verdict(resource.to_string(), detail)
        }
    }
}

/// A driver: how one kind of resource is run on this host (see the module doc).
#[async_trait]
pub trait Driver: Send + Sync {
    /// The kind this driver runs.
    fn kind(&self) -> Kind;

    /// Whether steps of this kind may run side by side in one wave (containers may; a
    /// Passenger release or a NixOS switch runs alone).
    fn parallel(&self) -> bool {
        false
    }

    /// `Err` (a fault) when the backend is not there: the engine down, the daemon gone.
    async fn reachable(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Every resource of this kind the agent manages here.
    async fn observe(&self) -> Result<Vec<Observed>, RuntimeError>;

    /// A token that changes whenever what `observe` returns may have changed: the engine's
    /// event feed saw a managed object change or reconnected, or the driver itself changed
    /// something (`converge`, `remove`). `None` when the driver cannot tell (it has no feed,
    /// or the feed is down): then every observation asks the backend.
    fn observation_token(&self) -> Option<u64> {
        None
    }

    /// Before anything of `revision` is applied: what the driver can tell is wrong with `r`
    /// without changing the host (an `.age` file no identity decrypts). A verdict here makes
    /// the revision invalid; nothing is applied.
    async fn preflight(&self, _r: &Resource, _revision: &Revision) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Before anything of `revision` runs: bring what `r` needs from outside the host (pull
    /// its image, build it), changing nothing that runs. Called for every resource the plan
    /// creates, replaces or repairs before the first of them is touched; `converge` then
    /// finds it here. A verdict (an image the registry does not have, a build that fails)
    /// fails the revision with the host exactly as it was.
    async fn fetch(&self, _r: &Resource, _revision: &Revision, _log: Log<'_>) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Host-side inputs of `r`'s spec hash at `revision`.
    async fn inputs(&self, _r: &Resource, _revision: &Revision) -> Result<BTreeMap<String, String>, RuntimeError> {
        Ok(BTreeMap::new())
    }

    /// Make `r` run its spec from `revision`; idempotent.
    async fn converge(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError>;

    /// Restart `r`, up to date, because a dependency it names with `restart: true` was
    /// updated (compose's `depends_on.restart`). By default: converge it (a runtime whose
    /// converge of an up-to-date resource restarts nothing should say how to restart).
    async fn restart(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        self.converge(r, revision, log).await
    }

    /// Stop managing `name` (data is kept).
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;

    /// Whether the live gate applies to `r` (NixOS `action: boot` is checked after the boot).
    fn gated(&self, _r: &Resource) -> bool {
        true
    }

    /// How long the gate waits before its first look (a container that dies at once must be
    /// seen dying, not pass a first probe).
    fn settle(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// During the gate: has `name` failed already (exited, restarting)?
    async fn watch(&self, _name: &str) -> Liveness {
        Liveness::Alive
    }

    /// The `container` probe: the runtime's own health verdict on `name`.
    async fn self_check(&self, _name: &str) -> Result<(), String> {
        Err(format!("{} resources have no health check of their own; use http, tcp, exec or systemd", self.kind()))
    }

    /// After the gate passed: what a runtime does only for verified state.
    async fn commit(&self, _r: &Resource) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// A line for the history about what `r` now runs.
    fn describe(&self, _r: &Resource) -> Option<String> {
        None
    }

    /// For `agentctl diff`: what applying `r` would do, when the driver can tell without
    /// changing anything (NixOS: `dry-activate` of a system already built).
    async fn explain(&self, _r: &Resource, _revision: &Revision) -> Option<String> {
        None
    }

    /// Why `name` failed (state, exit code, OOM kill, the last log lines), for the history
    /// entry and the notification of a failed or rolled-back revision.
    async fn diagnose(&self, _r: &Resource) -> Option<crate::state::Diagnostic> {
        None
    }

    /// After a commit: remove what no resource in `keep` uses any more (networks, images).
    async fn prune(&self, _keep: &[&Resource]) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// A feed of changes to the resources this driver manages, made outside the agent or
    /// not (the Docker engine's events): `on_change` is called with the resource's name
    /// whenever one may have drifted, and once after the feed (re)connects. The feed runs
    /// until `shutdown`. `None`: this runtime has no feed; polls find its drift.
    fn subscribe(
        &self,
        _on_change: std::sync::Arc<dyn Fn(String) + Send + Sync>,
        _shutdown: crate::listen::Shutdown,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }

    /// Checks the gate runs besides the resource's own `health` (a Container's
    /// `healthcheck` is gated as `container: true`).
    fn implicit_checks(&self, _r: &Resource) -> Vec<desired_state_schema::HealthCheck> {
        Vec::new()
    }
}

/// How long an observation may be reused while its driver's token is unchanged: after
/// this, the engine is asked again even if its event feed reported nothing (a feed that
/// stalls without closing must not hide drift for longer).
pub const RESYNC: std::time::Duration = std::time::Duration::from_secs(300);

/// The drivers of this host, by kind.
#[derive(Default)]
pub struct Drivers {
    map: BTreeMap<Kind, Box<dyn Driver>>,
    /// The last observation of each kind whose driver gave a token, with that token (taken
    /// before asking) and when it was made.
    observed: std::sync::Mutex<BTreeMap<Kind, Looked>>,
}

/// One kind's last observation: the token read before it, when it was made, what it saw.
type Looked = (u64, std::time::Instant, Vec<Observed>);

impl Drivers {
    pub fn new() -> Drivers {
        Drivers::default()
    }

    /// Register `driver` for its kind (replacing one registered before).
    pub fn with(mut self, driver: Box<dyn Driver>) -> Drivers {
        if let Ok(cache) = self.observed.get_mut() {
            cache.remove(&driver.kind());
        }
        self.map.insert(driver.kind(), driver);
        self
    }

    /// The driver of `kind`, or why there is none.
    pub fn get(&self, kind: Kind) -> Result<&dyn Driver, RuntimeError> {
        self.map.get(&kind).map(|d| d.as_ref()).ok_or(RuntimeError::Unsupported {
            kind,
            detail: "this agent has no driver for it (agentd --dry-run connects none)".into(),
        })
    }

    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.map.keys().copied()
    }

    /// Observe every driver. A driver whose kind is in `needed` must answer (its failure is
    /// returned); one that is not needed and fails is left out, and so are its kind's
    /// resources (`observed_kinds` lists the kinds that answered: only they can lose orphans).
    pub async fn observe(&self, needed: &[Kind]) -> Result<Observation, RuntimeError> {
        let results = futures_util::future::join_all(
            self.map.values().map(|d| async move { (d.kind(), self.observe_one(d.as_ref()).await) }),
        )
        .await;
        let mut out = Observation::default();
        for (kind, result) in results {
            match result {
                Ok(o) => {
                    out.resources.extend(o);
                    out.kinds.push(kind);
                }
                Err(e) if needed.contains(&kind) => return Err(e),
                Err(e) => tracing::debug!("{kind} not observed (not needed by this revision): {e}"),
            }
        }
        Ok(out)
    }

    /// One driver's observation: the last one again while its token is unchanged and it is
    /// younger than `RESYNC`, else a fresh one. The token is read before asking, so a change
    /// during the look moves it and the next observation asks again.
    async fn observe_one(&self, d: &dyn Driver) -> Result<Vec<Observed>, RuntimeError> {
        let kind = d.kind();
        let token = d.observation_token();
        if let (Some(t), Ok(cache)) = (token, self.observed.lock()) {
            if let Some((seen, at, resources)) = cache.get(&kind) {
                if *seen == t && at.elapsed() < RESYNC {
                    return Ok(resources.clone());
                }
            }
        }
        let fresh = d.observe().await;
        if let Ok(mut cache) = self.observed.lock() {
            match (&fresh, token) {
                (Ok(resources), Some(t)) => {
                    cache.insert(kind, (t, std::time::Instant::now(), resources.clone()));
                }
                _ => {
                    cache.remove(&kind);
                }
            }
        }
        fresh
    }

    /// The first fault among the drivers of `kinds` (the engine down, …), if any.
    pub async fn fault(&self, kinds: &[Kind]) -> Option<RuntimeError> {
        for k in kinds {
            if let Some(d) = self.map.get(k) {
                if let Err(e) = d.reachable().await {
                    return Some(e);
                }
            }
        }
        None
    }

    /// Start every driver's change feed; `on_change(kind, name)` for each change.
    pub fn subscribe(
        &self,
        on_change: std::sync::Arc<dyn Fn(Kind, String) + Send + Sync>,
        shutdown: &crate::listen::Shutdown,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.map
            .values()
            .filter_map(|d| {
                let kind = d.kind();
                let f = on_change.clone();
                d.subscribe(std::sync::Arc::new(move |name| f(kind, name)), shutdown.clone())
            })
            .collect()
    }

    /// Whether steps of `kind` may share a wave.
    pub fn parallel(&self, kind: Kind) -> bool {
        self.map.get(&kind).is_some_and(|d| d.parallel())
    }
}

/// What the drivers observed.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub resources: Vec<Observed>,
    /// The kinds whose drivers answered (their observations are complete).
    pub kinds: Vec<Kind>,
}

/// Where a runtime reports what a long step prints (build output), line by line: the
/// reconciler forwards it to the log and to `agentctl sync --wait`.
pub type Log<'a> = &'a (dyn Fn(String) + Sync);

/// How a streamed command ended.
pub struct Streamed {
    pub status: std::process::ExitStatus,
    /// The last 64 KiB of what it printed (stdout and stderr, interleaved as read).
    pub tail: String,
}

/// The longest line `run_streaming` passes on at once: a longer one (binary output with no
/// newline for megabytes) is cut into pieces of this size.
const MAX_LINE: usize = 4096;

/// Run `cmd`, passing each line it prints to `log` (prefixed with `prefix`), killing it after
/// `timeout`. `Ok(None)` means it timed out. What it prints is drained as bytes until both
/// pipes close, whatever it is: lines are decoded lossily for display (binary output or
/// another encoding is no error, and never stops the draining, so a chatty child never
/// blocks on a full pipe), cut at `MAX_LINE`, and only the last 64 KiB are kept.
pub async fn run_streaming(
    mut cmd: tokio::process::Command,
    timeout: std::time::Duration,
    prefix: &str,
    log: Log<'_>,
) -> std::io::Result<Option<Streamed>> {
    use tokio::io::AsyncReadExt;
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut tail = String::new();
    let mut keep = |bytes: &[u8]| {
        let line = String::from_utf8_lossy(bytes);
        let line = line.trim_end_matches('\r');
        log(format!("{prefix}{line}"));
        tail.push_str(line);
        tail.push('\n');
        if tail.len() > 64 * 1024 {
            let cut = tail.len() - 64 * 1024;
            let cut = (cut..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(tail.len());
            tail.drain(..cut);
        }
    };
    // Each pipe's unfinished line.
    let (mut pending_out, mut pending_err) = (Vec::new(), Vec::new());
    let (mut buf_out, mut buf_err) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    // A live child is progress: the watchdog heartbeat keeps going through silent builds.
    let mut alive = tokio::time::interval(std::time::Duration::from_secs(1));
    let work = async {
        loop {
            tokio::select! {
                _ = alive.tick() => crate::sdnotify::progress(),
                n = async { match out.as_mut() { Some(o) => o.read(&mut buf_out).await, None => std::future::pending().await } } => {
                    match n {
                        Ok(0) => { out = None; flush(&mut pending_out, &mut keep) }
                        Ok(n) => split_lines(&mut pending_out, &buf_out[..n], &mut keep),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => { out = None; flush(&mut pending_out, &mut keep) }
                    }
                }
                n = async { match err.as_mut() { Some(e) => e.read(&mut buf_err).await, None => std::future::pending().await } } => {
                    match n {
                        Ok(0) => { err = None; flush(&mut pending_err, &mut keep) }
                        Ok(n) => split_lines(&mut pending_err, &buf_err[..n], &mut keep),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => { err = None; flush(&mut pending_err, &mut keep) }
                    }
                }
                status = child.wait(), if out.is_none() && err.is_none() => return status,
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(status) => Ok(Some(Streamed { status: status?, tail })),
        Err(_) => Ok(None),
    }
}

/// Add `chunk` to the unfinished line in `pending`, passing every finished line (and every
/// `MAX_LINE` piece of an overlong one) to `keep`.
fn split_lines(pending: &mut Vec<u8>, chunk: &[u8], keep: &mut impl FnMut(&[u8])) {
    for piece in chunk.split_inclusive(|b| *b == b'\n') {
        pending.extend_from_slice(piece);
        if pending.last() == Some(&b'\n') {
            pending.pop();
            keep(pending);
            pending.clear();
        }
        while pending.len() >= MAX_LINE {
            keep(&pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
    }
}

/// Pass what is left of a closed pipe's last line.
fn flush(pending: &mut Vec<u8>, keep: &mut impl FnMut(&[u8])) {
    if !pending.is_empty() {
        keep(pending);
        pending.clear();
    }
}

/// What `watch` says about a resource during the health gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Failed already; the gate need not wait out its timeout.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::plan::RunState;

    /// A driver that counts its observations and offers `token` (u64::MAX: none).
    struct Counted {
        looks: Arc<AtomicUsize>,
        token: Arc<AtomicU64>,
    }

    #[async_trait]
    impl Driver for Counted {
        fn kind(&self) -> Kind {
            Kind::Container
        }
        async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
            let n = self.looks.fetch_add(1, Ordering::SeqCst);
            Ok(vec![Observed {
                kind: Kind::Container,
                name: format!("look-{n}"),
                spec_hash: String::new(),
                revision: String::new(),
                state: RunState::Running,
                stray_instances: 0,
                out_of_place: None,
                unclaimed: false,
            }])
        }
        fn observation_token(&self) -> Option<u64> {
            Some(self.token.load(Ordering::SeqCst)).filter(|t| *t != u64::MAX)
        }
        async fn converge(&self, _r: &Resource, _v: &Revision, _log: Log<'_>) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn remove(&self, _name: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_unchanged_token_reuses_the_last_observation_and_a_moved_or_missing_one_looks() {
        let looks = Arc::new(AtomicUsize::new(0));
        let token = Arc::new(AtomicU64::new(u64::MAX));
        let drivers = Drivers::new().with(Box::new(Counted { looks: looks.clone(), token: token.clone() }));
        let name = |o: &Observation| o.resources[0].name.clone();
        // No token (no feed): every observation asks.
        drivers.observe(&[Kind::Container]).await.ok();
        drivers.observe(&[Kind::Container]).await.ok();
        assert_eq!(looks.load(Ordering::SeqCst), 2);
        // A token: asked once, then reused while it stands.
        token.store(7, Ordering::SeqCst);
        let first = drivers.observe(&[Kind::Container]).await.map(|o| name(&o)).ok();
        let again = drivers.observe(&[Kind::Container]).await.map(|o| name(&o)).ok();
        assert_eq!(looks.load(Ordering::SeqCst), 3);
        assert_eq!(first, again);
        // The token moved (an event, the agent's own change): asked again.
        token.store(8, Ordering::SeqCst);
        let moved = drivers.observe(&[Kind::Container]).await.map(|o| name(&o)).ok();
        assert_eq!(looks.load(Ordering::SeqCst), 4);
        assert_ne!(moved, again);
        // The feed went down: no token, and nothing cached is trusted when it comes back
        // with the same count.
        token.store(u64::MAX, Ordering::SeqCst);
        drivers.observe(&[Kind::Container]).await.ok();
        token.store(8, Ordering::SeqCst);
        drivers.observe(&[Kind::Container]).await.ok();
        assert_eq!(looks.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn lines_are_split_on_bytes_and_overlong_ones_are_cut() {
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut pending = Vec::new();
        let mut keep = |b: &[u8]| got.push(b.to_vec());
        split_lines(&mut pending, b"one\ntw", &mut keep);
        split_lines(&mut pending, b"o\xff\n", &mut keep);
        split_lines(&mut pending, &vec![b'x'; MAX_LINE + 10], &mut keep);
        flush(&mut pending, &mut keep);
        assert_eq!(got[0], b"one");
        assert_eq!(got[1], b"two\xff");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3].len(), 10);
        assert_eq!(got.len(), 4);
    }

    /// Megabytes of binary output (no UTF-8, few newlines) on both pipes are drained to the
    /// end: the child finishes, nothing blocks on a full pipe.
    #[tokio::test]
    async fn a_child_printing_binary_output_is_drained_to_its_end() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "head -c 3000000 /dev/urandom; head -c 2000000 /dev/urandom >&2; echo; echo done"]);
        let lines = std::sync::atomic::AtomicUsize::new(0);
        let log = |_l: String| {
            lines.fetch_add(1, Ordering::SeqCst);
        };
        let done = run_streaming(cmd, std::time::Duration::from_secs(60), "t: ", &log).await;
        let done = done.ok().flatten().map(|d| (d.status.success(), d.tail));
        let (ok, tail) = done.unwrap_or_default();
        assert!(ok, "the child ran to its end");
        assert!(tail.contains("\ndone\n"), "its last line is kept");
        assert!(tail.len() <= 64 * 1024 + MAX_LINE * 4);
        assert!(lines.load(Ordering::SeqCst) > 1000);
    }
}
