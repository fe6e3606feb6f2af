//! What a driver is (`Driver`, the trait every runtime implements; see the folder's doc for
//! what each method answers), how a runtime fails (`RuntimeError`, each variant judged a
//! verdict or a fault), what a long step prints through (`Log`), and what a gate's watch
//! sees (`Liveness`).

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
    /// Each resource comes with the revision it is kept for (with its files): the committed
    /// one, and while it bakes the previous one, whose revert must not rebuild anything.
    async fn prune(&self, _keep: &[(&Resource, &Revision)]) -> Result<(), RuntimeError> {
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

    /// Data (PRODUCT.md "Data: snapshots and restore") of `r` beyond the `Volume` documents,
    /// which the agent snapshots before a revision and puts back with its revert: files it
    /// reaches itself (a PassengerApp's `backup:` paths).
    fn data_sets(&self, _r: &Resource) -> Vec<crate::snapshots::DataSet> {
        Vec::new()
    }

    /// What runs now and would be paused or
    /// stopped for a snapshot of `volume` (the reconciler journals them before, so that a
    /// crash never leaves them so).
    async fn data_holders(&self, _volume: &str) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }

    /// About how many bytes `volume` holds (the free space is checked against it first).
    async fn data_size(&self, _volume: &str) -> Result<u64, RuntimeError> {
        Err(no_data(self.kind()))
    }

    /// Copy `volume`'s data into the folder `into`, consistent as `consistency` says: the
    /// `holders` are paused or stopped for the copy and put back after, whatever happened.
    /// No content files: the volume does not exist (yet), and there is nothing to keep.
    async fn snapshot(
        &self,
        _volume: &str,
        _consistency: &desired_state_schema::Consistency,
        _holders: &[String],
        _into: &std::path::Path,
    ) -> Result<Vec<crate::snapshots::ContentFile>, RuntimeError> {
        Err(no_data(self.kind()))
    }

    /// Put `volume`'s data back as the snapshot `manifest` (its folder `from`, verified
    /// already) holds it. What mounts the volume is stopped and removed first; what converges
    /// next starts it again, on the restored data. Idempotent: a restore cut short is run
    /// again from the start.
    async fn restore(
        &self,
        _volume: &str,
        _manifest: &crate::snapshots::Manifest,
        _from: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        Err(no_data(self.kind()))
    }

    /// After a crash during a snapshot: put `holders` back as they were (unpause them).
    async fn release(&self, _holders: &[String]) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Checks the gate runs besides the resource's own `health` (a Container's
    /// `healthcheck` is gated as `container: true`).
    fn implicit_checks(&self, _r: &Resource) -> Vec<desired_state_schema::HealthCheck> {
        Vec::new()
    }
}

/// The refusal of a runtime that keeps no data.
fn no_data(kind: Kind) -> RuntimeError {
    RuntimeError::Unsupported { kind, detail: "this runtime takes no data snapshots".into() }
}

/// Where a runtime reports what a long step prints (build output), line by line: the
/// reconciler forwards it to the log and to `agentctl sync --wait`.
pub type Log<'a> = &'a (dyn Fn(String) + Sync);

/// What `watch` says about a resource during the health gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Failed already; the gate need not wait out its timeout.
    Failed(String),
}
