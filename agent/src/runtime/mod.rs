//! Runtimes: the I/O edge between plans and the host. Every runtime answers the same five
//! questions, so the planning core and the reconciler never change when one is added:
//!
//! - **observe**: which resources of my kind do I manage, with which spec hash and revision,
//!   and are they running? (`plan::Observed`)
//! - **inputs**: what on the host feeds a resource's spec hash (env file contents, the local
//!   image id)?
//! - **converge**: make resource R run spec S from revision V. Idempotent, so that re-running
//!   it after a crash at any point finishes the job. Reverting to revision R is converging
//!   every resource to R's specs (a runtime may reuse what it kept: an image, a release
//!   folder, a Nix generation — never a rebuild when it can be avoided).
//! - **remove**: stop managing R on this host (data is kept: volumes, `shared/`, backups).
//! - **watch**: during the health gate, has R already failed (exited, restarting)?
//!
//! `Runtimes` dispatches by kind. Kinds whose runtime is not configured on this host are
//! refused at apply time with a message, and never removed.

pub mod docker;
pub mod nixos;
pub mod passenger;

use std::collections::BTreeMap;

use desired_state_schema::{Kind, Resource, Spec};

use crate::plan::Observed;

/// Why a runtime could not do what was asked. One line each, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("Docker is not reachable: {detail}; is dockerd running? (systemctl start docker)")]
    DockerUnreachable { detail: String },
    #[error("image {image} is not on this host and pull is `never`: build or load it on the host (docker build -t {image} …, docker load)")]
    ImageMissing { image: String },
    #[error("pulling image {image} failed: {detail}")]
    Pull { image: String, detail: String },
    #[error(
        "a container named {name} exists and is not managed by Driftless: remove or rename it, or rename the resource"
    )]
    NameTaken { name: String },
    #[error("env file {path} of {resource}: {detail}")]
    EnvFile { resource: String, path: String, detail: String },
    #[error("{resource}: {detail}")]
    Docker { resource: String, detail: String },
    #[error("{resource}: {detail}")]
    Passenger { resource: String, detail: String },
    #[error("{resource}: {detail}")]
    Nixos { resource: String, detail: String },
    #[error("{kind} resources need a runtime this agent does not have here: {detail}")]
    Unsupported { kind: Kind, detail: String },
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

/// Run `cmd`, passing each line it prints to `log` (prefixed with `prefix`), killing it after
/// `timeout`. `Ok(None)` means it timed out.
pub async fn run_streaming(
    mut cmd: tokio::process::Command,
    timeout: std::time::Duration,
    prefix: &str,
    log: Log<'_>,
) -> std::io::Result<Option<Streamed>> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take().map(|o| BufReader::new(o).lines());
    let mut err = child.stderr.take().map(|e| BufReader::new(e).lines());
    let mut tail = String::new();
    let mut keep = |line: String| {
        log(format!("{prefix}{line}"));
        tail.push_str(&line);
        tail.push('\n');
        if tail.len() > 64 * 1024 {
            let cut = tail.len() - 64 * 1024;
            let cut = (cut..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(tail.len());
            tail.drain(..cut);
        }
    };
    let work = async {
        loop {
            tokio::select! {
                line = async { match out.as_mut() { Some(o) => o.next_line().await, None => std::future::pending().await } } => {
                    match line { Ok(Some(l)) => keep(l), _ => out = None }
                }
                line = async { match err.as_mut() { Some(e) => e.next_line().await, None => std::future::pending().await } } => {
                    match line { Ok(Some(l)) => keep(l), _ => err = None }
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

/// What `watch` says about a resource during the health gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Failed already; the gate need not wait out its timeout.
    Failed(String),
}

/// The runtimes available on this host.
pub struct Runtimes {
    pub docker: Option<docker::DockerRuntime>,
    pub passenger: Option<passenger::PassengerRuntime>,
    pub nixos: Option<nixos::NixosRuntime>,
}

impl Runtimes {
    /// The kinds whose observations are complete (only these can have orphans removed).
    pub fn managed_kinds(&self) -> Vec<Kind> {
        let mut k = Vec::new();
        if self.docker.is_some() {
            k.push(Kind::Container);
        }
        if self.passenger.is_some() {
            k.push(Kind::PassengerApp);
        }
        if self.nixos.is_some() {
            k.push(Kind::NixosSystem);
        }
        k
    }

    fn docker(&self, kind: Kind) -> Result<&docker::DockerRuntime, RuntimeError> {
        self.docker.as_ref().ok_or(RuntimeError::Unsupported {
            kind,
            detail: "Docker was not reachable when the agent started; start dockerd and restart the agent".into(),
        })
    }

    pub async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        let mut out = Vec::new();
        if let Some(d) = &self.docker {
            out.extend(d.observe().await?);
        }
        if let Some(p) = &self.passenger {
            out.extend(p.observe().await?);
        }
        if let Some(n) = &self.nixos {
            out.extend(n.observe().await?);
        }
        Ok(out)
    }

    fn passenger(&self, kind: Kind) -> Result<&passenger::PassengerRuntime, RuntimeError> {
        self.passenger.as_ref().ok_or_else(|| self.unsupported(kind))
    }

    fn nixos(&self, kind: Kind) -> Result<&nixos::NixosRuntime, RuntimeError> {
        self.nixos.as_ref().ok_or_else(|| self.unsupported(kind))
    }

    /// After the gate passed: what a runtime does only for verified state (NixOS: make the
    /// system the boot default). A no-op for the others.
    pub async fn commit(&self, r: &Resource) -> Result<(), RuntimeError> {
        match &r.spec {
            Spec::NixosSystem(n) => self.nixos(r.kind)?.commit(r, n).await,
            _ => Ok(()),
        }
    }

    /// A line for the history about what `r` now runs (NixOS: generation and store path).
    pub fn describe(&self, r: &Resource) -> Option<String> {
        match &r.spec {
            Spec::PassengerApp(p) => passenger::describe(r.name(), p),
            Spec::NixosSystem(n) => {
                let path = std::fs::canonicalize(&n.profile).ok()?;
                let gen = nixos::NixosRuntime::generation(&n.profile)?;
                Some(format!("{}/{}: generation {gen}, {}", r.kind, r.name(), path.display()))
            }
            _ => None,
        }
    }

    /// Whether the live gate applies (`action: boot` is checked after the next boot).
    pub fn gated(r: &Resource) -> bool {
        !matches!(&r.spec, Spec::NixosSystem(n) if n.action == desired_state_schema::NixosAction::Boot)
    }

    /// Host-side inputs of `r`'s spec hash at `revision`.
    pub async fn inputs(&self, r: &Resource, revision: &str) -> Result<BTreeMap<String, String>, RuntimeError> {
        match &r.spec {
            Spec::Container(c) => self.docker(r.kind)?.inputs(r.name(), c).await,
            Spec::PassengerApp(p) => self.passenger(r.kind)?.inputs(r.name(), p, revision).await,
            Spec::NixosSystem(n) => self.nixos(r.kind)?.inputs(r.name(), n, revision).await,
        }
    }

    pub async fn converge(&self, r: &Resource, revision: &str, log: Log<'_>) -> Result<(), RuntimeError> {
        match &r.spec {
            Spec::Container(c) => self.docker(r.kind)?.converge(r, c, revision).await,
            Spec::PassengerApp(p) => self.passenger(r.kind)?.converge(r, p, revision, log).await,
            Spec::NixosSystem(n) => self.nixos(r.kind)?.converge(r, n, revision, log).await,
        }
    }

    pub async fn remove(&self, kind: Kind, name: &str) -> Result<(), RuntimeError> {
        match kind {
            Kind::Container => self.docker(kind)?.remove(name).await,
            Kind::PassengerApp => self.passenger(kind)?.remove(name).await,
            Kind::NixosSystem => self.nixos(kind)?.remove(name).await,
        }
    }

    pub async fn watch(&self, kind: Kind, name: &str) -> Liveness {
        match (kind, &self.docker) {
            (Kind::Container, Some(d)) => d.watch(name).await,
            _ => Liveness::Alive,
        }
    }

    /// Whether the container's own HEALTHCHECK reports healthy (`Err` says why not).
    pub async fn container_healthy(&self, name: &str) -> Result<(), String> {
        match &self.docker {
            Some(d) => d.healthcheck_status(name).await,
            None => Err("Docker is not available".into()),
        }
    }

    fn unsupported(&self, kind: Kind) -> RuntimeError {
        RuntimeError::Unsupported { kind, detail: "this build of the agent has no runtime for it yet".into() }
    }
}
