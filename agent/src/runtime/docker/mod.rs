//! The Docker runtime (bollard; the API version is negotiated, so Debian's docker.io at API
//! 1.41 works). Owns the containers labelled `driftless.managed=true` and
//! `driftless.host=<its host>` and nothing else (an older agent's, with no host label, are
//! reported unclaimed: adopted only when desired), so several agents share one engine.
//!
//! A resource `web` runs as the container named `web`, labelled with its resource name, the
//! revision it came from, its spec hash and its image id. Converging is idempotent:
//!
//! 1. make sure the image is there (pull per `pull`); compute the spec hash;
//! 2. keep an existing instance with that hash, else create `web-next` (the old one still
//!    runs, so a failed create loses nothing);
//! 3. stop and remove every other instance of `web` (volumes are kept);
//! 4. rename the kept instance to `web` and start it.
//!
//! A crash between any two steps leaves instances that the next converge sorts out, and
//! never two running copies.
//!
//! The engine is connected lazily (and the API version negotiated on first answer), so an
//! engine that is down when the agent starts, or restarts later, is a fault that clears by
//! itself: never a missing runtime. Engine errors are classified: transport failures and
//! host conditions (a port taken, the disk full) are faults; a 4xx on what the spec asked
//! for is a verdict.

pub mod caddy;
mod drain;
mod hooks;
pub mod image;
mod start_first;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, HealthStatusEnum, HostConfig, NetworkCreateRequest, PortBinding,
    RestartPolicy as DockerRestart, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    RenameContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use desired_state_schema::checks::PortMapping;
use desired_state_schema::{ContainerSpec, Kind, PullPolicy, Resource, RestartPolicy};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{Liveness, Log, RuntimeError};
use crate::plan::{Observed, RunState};
use crate::revision::Revision;
use crate::source::GitSource;
use crate::state::Diagnostic;

pub const LABEL_MANAGED: &str = "driftless.managed";
/// The `host` of the agent that owns a container, network or volume (PRODUCT.md "Names and
/// places"): several agents with different hosts share one engine, each touching its own.
pub const LABEL_HOST: &str = "driftless.host";
pub const LABEL_RESOURCE: &str = "driftless.resource";
pub const LABEL_REVISION: &str = "driftless.revision";
pub const LABEL_SPEC_HASH: &str = "driftless.spec-hash";
pub const LABEL_IMAGE_ID: &str = "driftless.image-id";
/// The stop timeout, so that removing a resource whose spec is gone still honours it.
pub const LABEL_STOP_TIMEOUT: &str = "driftless.stop-timeout";
/// A container that runs to completion (`oneshot: true`): exited 0 is its done state.
pub const LABEL_ONESHOT: &str = "driftless.oneshot";
/// A proxied container's `proxy` (JSON): its route in Caddy is checked and put back from it.
pub const LABEL_PROXY: &str = "driftless.proxy";

/// Engine events of a managed container that may be drift: each triggers a check at once.
const DRIFT_EVENTS: &[&str] = &["die", "stop", "kill", "destroy", "rename", "health_status", "oom", "pause", "restart"];
/// Events that change what `observe` lists without being drift (the next poll looks).
const LIST_EVENTS: &[&str] = &["create", "start", "unpause"];

/// One container that belongs to a resource.
#[derive(Clone, Debug)]
struct Instance {
    resource: String,
    id: String,
    name: String,
    hash: String,
    revision: String,
    running: bool,
    /// Seconds a stop waits (the default; the container's own StopTimeout wins when set).
    stop_timeout: i32,
    /// A oneshot container (runs to completion).
    oneshot: bool,
    /// Exited with status 0 (a oneshot that is done).
    exited_ok: bool,
    /// No `driftless.host` label (made by an older agent): adopted only when desired.
    unclaimed: bool,
    /// Its `proxy` (from its label): the route in Caddy that should point at it.
    proxy: Option<desired_state_schema::ProxySpec>,
    /// The loopback port the engine published `proxy.port` on (while it runs).
    proxy_port: Option<u16>,
}

#[derive(Clone)]
pub struct DockerRuntime {
    /// The client as configured (`DOCKER_HOST` or the default socket), not yet negotiated.
    client: Docker,
    /// Reads build contexts and secret files at the revision.
    source: GitSource,
    /// `state_dir/secrets/<resource>/`: plain (not `.age`) secret files from the repository.
    secrets_dir: PathBuf,
    /// `<control socket's folder>/secrets/<resource>/` (`/run/driftless`, a tmpfs): the
    /// plaintext of `.age` secrets, which never goes under `state_dir`.
    runtime_secrets: PathBuf,
    /// Decrypts the repository's `.age` files.
    secrets: std::sync::Arc<crate::secrets::Secrets>,
    /// Registry credentials (`registries:`, then Docker's `config.json`).
    credentials: image::Credentials,
    /// The images the agent pulled or built (only these are pruned).
    brought: image::Brought,
    /// Per resource, the image `fetch` pulled or built and the revision it was for: the next
    /// `converge` of that resource and revision takes it instead of pulling again (`pull:
    /// always` pulls once per apply, before anything runs); later converges — a drift
    /// repair — pull as before.
    fetched: std::sync::Arc<std::sync::Mutex<HashMap<String, (String, String)>>>,
    /// Resources whose last `fetch` failed: (state for the diagnostic, the error). The old
    /// container still runs untouched, so its state and logs would say nothing of why.
    fetch_failed: std::sync::Arc<std::sync::Mutex<HashMap<String, (String, String)>>>,
    /// `prune_images` of the agent config.
    prune_images: bool,
    /// Held while networks and volumes are looked up and created: the steps of a wave run
    /// at once, and two creates of one network name make two networks on older engines.
    objects: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Build and oneshot output kept for diagnostics when no container is left to ask.
    last_output: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<String>>>>,
    /// The last non-zero exit code of each container (from the engine's `die` events and the
    /// gate's looks): a container that restarts reports 0 again while it runs.
    last_exit: std::sync::Arc<std::sync::Mutex<HashMap<String, i64>>>,
    /// Set while the engine's event feed (containers and images) is connected: image ids are
    /// then kept between plans and forgotten on each image event.
    events_live: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Moves on every event that may change what `observe` lists (a managed container
    /// created, started, stopped, removed, renamed …), on every (re)connect of the feed and
    /// on every change the agent makes: while the feed is live, an unchanged count means the
    /// last list still holds (`observation_token`).
    changes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The client with the API version both sides speak, once the engine answered.
    negotiated: std::sync::Arc<tokio::sync::OnceCell<Docker>>,
    /// Image ids looked up for spec hashes: many resources share an image, and each reference
    /// is asked once per plan, not per resource — and, while the event feed is live, once
    /// until the next image event (a no-op poll then inspects no image). Applying always asks
    /// the engine afresh.
    image_ids: std::sync::Arc<std::sync::Mutex<BTreeMap<String, String>>>,
    /// This agent's `host`: what it labels and the only host's objects it touches.
    host: String,
    /// The host's Caddy (`proxy.caddy_admin`), for proxied containers.
    caddy: Option<caddy::Caddy>,
    /// How long a start-first container may take to answer its `proxy.path` (the agent
    /// config's `health.timeout`), and how often it is asked.
    probe: (std::time::Duration, std::time::Duration),
    /// Resources whose routes the last `observe` checked: while there are any, every poll
    /// looks (a Caddy restart forgets routes and sends no event).
    proxied: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Old instances of start-first containers that drain before they are stopped, by a
    /// task of their own (`drain.rs`).
    drains: drain::Drains,
}

fn unreachable(e: BollardError) -> RuntimeError {
    RuntimeError::DockerUnreachable { detail: e.to_string() }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

/// An engine error about `resource`, judged by `judge_engine` (the HTTP status first); a
/// transport error (the engine did not answer) is a fault.
fn docker_err(resource: &str, e: BollardError) -> RuntimeError {
    match &e {
        BollardError::DockerResponseServerError { status_code, message } => match judge_engine(*status_code, message) {
            EngineJudgement::Refused => {
                RuntimeError::Docker { resource: resource.to_string(), detail: message.clone() }
            }
            EngineJudgement::Host => RuntimeError::Engine { resource: resource.to_string(), detail: message.clone() },
        },
        _ if is_transport(&e) => unreachable(e),
        // An answer the client could not read (JSON of another shape): the engine's side.
        other => RuntimeError::Engine { resource: resource.to_string(), detail: other.to_string() },
    }
}

/// What an engine's error answer says, whoever is to blame (PRODUCT.md behaviour 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineJudgement {
    /// The engine refused what the spec asks (a verdict on the revision).
    Refused,
    /// The host or the engine is at fault (retried with backoff).
    Host,
}

/// Judge an engine's error answer by its HTTP status: a 4xx is the engine refusing what was
/// asked (a bad parameter 400, a conflict 409, a missing object 404, a refused pool 403) — a
/// verdict; a 5xx other than 500 is the engine's trouble — a fault. A 500 is all the engine
/// says for both (Debian's 20.10 answers a taken port, a missing device, an unknown user and
/// an OCI runtime refusal all with 500), and only there its message is read: the host's
/// conditions (`fault::engine_message_is_fault`) are faults, the refusals of the spec below
/// are verdicts, and anything else is a fault (retrying loses nothing; a newer revision
/// still gets through, behaviour 10). The table is tested with answers recorded from the
/// real engine.
pub fn judge_engine(status: u16, message: &str) -> EngineJudgement {
    /// What a 500 says when the spec asks what cannot be (recorded from docker.io 20.10).
    const REFUSALS: &[&str] = &[
        "oci runtime create failed",          // runc refused the process: exec, a sysctl, a mount
        "oci runtime exec failed",            // the same for an exec
        "unable to find user",                // spec.user unknown to the image
        "unable to find group",               // spec.group_add unknown to the image
        "error gathering device information", // spec.devices names no device of the host
        "could not select device driver",     // spec.device_requests: no such driver (GPUs)
        "--storage-opt is supported only",    // spec.storage_opt on a driver without quotas
    ];
    match status {
        400..=499 => EngineJudgement::Refused,
        500 => {
            let m = message.to_ascii_lowercase();
            if crate::fault::engine_message_is_fault(&m) {
                EngineJudgement::Host
            } else if REFUSALS.iter().any(|r| m.contains(r)) {
                EngineJudgement::Refused
            } else {
                EngineJudgement::Host
            }
        }
        _ => EngineJudgement::Host,
    }
}

/// A container's settings on network `n` (aliases, static addresses); `None` when it has
/// none beyond being attached.
fn endpoint(
    n: &desired_state_schema::NetworkAttachment,
    links: &[String],
    mac: Option<&String>,
) -> Option<bollard::models::EndpointSettings> {
    if n.aliases.is_empty() && n.ipv4_address.is_none() && n.ipv6_address.is_none() && links.is_empty() && mac.is_none()
    {
        return None;
    }
    let ipam = (n.ipv4_address.is_some() || n.ipv6_address.is_some()).then(|| bollard::models::EndpointIpamConfig {
        ipv4_address: n.ipv4_address.clone(),
        ipv6_address: n.ipv6_address.clone(),
        ..Default::default()
    });
    Some(bollard::models::EndpointSettings {
        aliases: (!n.aliases.is_empty()).then(|| n.aliases.clone()),
        ipam_config: ipam,
        // docker compose sets a service's links on each of its networks (`createEndpointSettings`).
        links: (!links.is_empty()).then(|| links.to_vec()),
        mac_address: mac.cloned(),
        ..Default::default()
    })
}

/// Whether the image of `spec` is built before anything else (`build` without `when:
/// missing`, or without an image to pull), rather than pulled first.
fn builds_first(spec: &ContainerSpec) -> bool {
    spec.build.as_ref().is_some_and(|b| b.when == desired_state_schema::BuildWhen::Always || spec.image.is_empty())
}

/// Make the shared data folder `shared`. A data folder of an older agent, one per
/// container (`own`), becomes it by rename when it is not there yet, so no data is left
/// behind; the others' own folders stay where they are (never removed).
fn data_folder(own: &std::path::Path, shared: &std::path::Path) -> std::io::Result<()> {
    if shared.is_dir() {
        return Ok(());
    }
    if let Some(parent) = shared.parent() {
        std::fs::create_dir_all(parent)?;
        if own.is_dir() {
            std::fs::rename(own, shared)?;
            return crate::fsutil::fsync_dir(parent);
        }
    }
    std::fs::create_dir_all(shared)
}

/// An `external` volume or network that is not on the host: the host's state to fix (a
/// fault), and never a reason to create an empty one.
fn external_missing(resource: &str, what: &str, name: &str) -> RuntimeError {
    RuntimeError::Host {
        resource: resource.to_string(),
        detail: format!(
            "the {what} {name} is external (it must exist already) and is not on this host: create it (docker {what} create {name}), restore it, or fix its name in the desired state"
        ),
    }
}

/// Whether `e` says the container was being removed by someone else meanwhile.
fn being_removed(e: &RuntimeError) -> bool {
    match e {
        RuntimeError::Docker { detail, .. } | RuntimeError::Engine { detail, .. } => {
            let d = detail.to_ascii_lowercase();
            d.contains("marked for removal") || (d.contains("removal of container") && d.contains("in progress"))
        }
        _ => false,
    }
}

/// Whether the engine could not be talked to at all.
fn is_transport(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_)
            | BollardError::HyperLegacyError { .. }
    )
}

impl DockerRuntime {
    /// Connect to the local engine (`DOCKER_HOST` or the default socket) and agree on an API
    /// version both sides speak.
    /// No request is made here: the engine may be down now and answer later.
    pub fn new(
        cfg: &crate::config::LoadedConfig,
        secrets: std::sync::Arc<crate::secrets::Secrets>,
    ) -> Result<DockerRuntime, RuntimeError> {
        let client = Docker::connect_with_local_defaults().map_err(unreachable)?;
        if cfg.config.proxy.is_some() && !start_first::listeners_hand_over() {
            tracing::warn!(
                "net.ipv4.tcp_migrate_req is 0: each switch of a route in Caddy may reset a few connections under load; set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1, and in /etc/sysctl.d/; docs/operations.md, \"Zero-downtime replaces\")"
            );
        }
        let state_dir = &cfg.config.state_dir;
        let run_dir = cfg
            .config
            .control_socket
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("/run/driftless"));
        Ok(DockerRuntime {
            client,
            source: GitSource::new(cfg),
            secrets_dir: state_dir.join("secrets"),
            runtime_secrets: run_dir.join("secrets"),
            secrets,
            credentials: image::Credentials::new(cfg.config.registries.clone()),
            brought: image::Brought::new(state_dir),
            fetched: Default::default(),
            fetch_failed: Default::default(),
            prune_images: cfg.config.prune_images,
            last_output: Default::default(),
            last_exit: Default::default(),
            events_live: Default::default(),
            changes: Default::default(),
            objects: Default::default(),
            negotiated: Default::default(),
            image_ids: Default::default(),
            host: cfg.host.clone(),
            caddy: cfg
                .config
                .proxy
                .as_ref()
                .and_then(|p| crate::config::AdminEndpoint::parse(&p.caddy_admin).ok())
                .map(caddy::Caddy::new),
            probe: (cfg.config.health.timeout.as_std(), cfg.config.health.interval.as_std()),
            proxied: Default::default(),
            drains: drain::Drains::load(state_dir),
        })
    }

    /// The negotiated client; negotiates on first use (a fault while the engine is down).
    async fn api(&self) -> Result<&Docker, RuntimeError> {
        self.negotiated
            .get_or_try_init(|| async {
                let d = self.client.clone().negotiate_version().await.map_err(unreachable)?;
                d.ping().await.map_err(unreachable)?;
                Ok(d)
            })
            .await
    }

    /// Whether the engine takes `healthcheck.start_interval` (API 1.44, Docker 25+).
    fn takes_start_interval(&self) -> bool {
        self.speaks(44)
    }

    /// Whether the engine speaks API 1.`minor` or later (as negotiated; `false` before).
    fn speaks(&self, minor: usize) -> bool {
        self.negotiated
            .get()
            .is_some_and(|d| d.client_version() >= bollard::ClientVersion { major_version: 1, minor_version: minor })
    }

    /// The engine's version and API version, for logs and `status`.
    pub async fn version(&self) -> String {
        let api = match self.api().await {
            Ok(a) => a,
            Err(e) => return format!("unknown ({e})"),
        };
        match api.version().await {
            Ok(v) => format!("{} (API {})", v.version.unwrap_or_default(), v.api_version.unwrap_or_default()),
            Err(e) => format!("unknown ({e})"),
        }
    }

    async fn instances(&self, resource: Option<&str>) -> Result<Vec<Instance>, RuntimeError> {
        let mut filters = HashMap::new();
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(r) = resource {
            labels.push(format!("{LABEL_RESOURCE}={r}"));
        }
        filters.insert("label".to_string(), labels);
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self.api().await?.list_containers(Some(opts)).await.map_err(unreachable)?;
        let mut out = Vec::new();
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let Some(res) = labels.get(LABEL_RESOURCE) else { continue };
            // Another agent's (a different host on a shared engine): never ours to touch.
            let owner = labels.get(LABEL_HOST);
            if owner.is_some_and(|h| *h != self.host) {
                continue;
            }
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let proxy: Option<desired_state_schema::ProxySpec> =
                labels.get(LABEL_PROXY).and_then(|p| serde_json::from_str(p).ok());
            let proxy_port = proxy.as_ref().and_then(|p| {
                c.ports.iter().flatten().find(|b| b.private_port == p.port && b.public_port.is_some())?.public_port
            });
            out.push(Instance {
                proxy,
                proxy_port,
                resource: res.clone(),
                id: c.id.unwrap_or_default(),
                name,
                hash: labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default(),
                revision: labels.get(LABEL_REVISION).cloned().unwrap_or_default(),
                running: matches!(c.state, Some(bollard::models::ContainerSummaryStateEnum::RUNNING)),
                stop_timeout: labels.get(LABEL_STOP_TIMEOUT).and_then(|t| t.parse().ok()).unwrap_or(10),
                oneshot: labels.get(LABEL_ONESHOT).is_some_and(|v| v == "true"),
                exited_ok: matches!(c.state, Some(bollard::models::ContainerSummaryStateEnum::EXITED))
                    && c.status.as_deref().is_some_and(|st| st.starts_with("Exited (0)")),
                unclaimed: owner.is_none(),
            });
        }
        out.sort_by(|a, b| (&a.resource, &a.name).cmp(&(&b.resource, &b.name)));
        Ok(out)
    }

    /// Something that `observe` lists may have changed (see `changes`).
    fn changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every managed container, grouped by resource.
    pub async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        if !self.events_live.load(std::sync::atomic::Ordering::SeqCst) {
            self.forget_image_ids(); // a new plan starts: without events, image ids are asked afresh
        }
        let mut by_resource: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for i in self.instances(None).await? {
            by_resource.entry(i.resource.clone()).or_default().push(i);
        }
        let routes = self.check_routes(&by_resource).await?;
        Ok(by_resource
            .into_iter()
            .map(|(res, inst)| {
                let primary = inst.iter().find(|i| i.name == res);
                let state = match primary {
                    Some(p) if p.running => RunState::Running,
                    // A oneshot that ran to completion is where it should be.
                    Some(p) if p.oneshot && p.exited_ok => RunState::Running,
                    _ => RunState::NotRunning,
                };
                let p = primary.or(inst.first());
                Observed {
                    kind: Kind::Container,
                    name: res.clone(),
                    spec_hash: p.map(|p| p.hash.clone()).unwrap_or_default(),
                    revision: p.map(|p| p.revision.clone()).unwrap_or_default(),
                    state,
                    // An old instance that drains is not a stray one.
                    stray_instances: inst
                        .len()
                        .saturating_sub(1 + inst.iter().filter(|i| self.drains.contains(&i.id)).count()),
                    // Unclaimed only while every instance is (one of ours among them claims it).
                    unclaimed: inst.iter().all(|i| i.unclaimed),
                    out_of_place: routes.get(&res).cloned(),
                }
            })
            .collect())
    }

    /// The image reference a resource runs: the built tag (`driftless-build/<name>:<tree>`)
    /// for `build`, else `image` with `:latest` when it has no tag.
    async fn image_of(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &str,
    ) -> Result<(String, Option<String>), RuntimeError> {
        match &spec.build {
            Some(b) if builds_first(spec) => {
                let tree = self.tree(name, revision, &b.context).await?;
                Ok((format!("driftless-build/{name}:{tree}"), Some(tree)))
            }
            // No build, or one only when the image cannot be pulled: the image is what runs.
            _ => Ok((image::normalize(&spec.image), None)),
        }
    }

    async fn tree(&self, name: &str, revision: &str, folder: &str) -> Result<String, RuntimeError> {
        let oid = git2::Oid::from_str(revision)
            .map_err(|e| RuntimeError::Docker { resource: name.into(), detail: e.to_string() })?;
        let src = self.source.clone();
        let folder = folder.to_string();
        tokio::task::spawn_blocking(move || src.tree_id(oid, &folder))
            .await
            .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
            .map(|t| t.to_string())
            .map_err(|e| source_err(name, e))
    }

    /// Host-side inputs of the spec hash: each env file's digest, each secret's digest, the
    /// build context's tree and the local image's id.
    pub async fn inputs(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &str,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let (image, _) = self.image_of(name, spec, revision).await?;
        let cached = self.image_ids.lock().ok().and_then(|ids| ids.get(&image).cloned());
        let image_id = match cached {
            Some(id) => id,
            None => {
                let id = match self.api().await?.inspect_image(&image).await {
                    Ok(i) => i.id.unwrap_or_default(),
                    Err(e) if is_not_found(&e) => "absent".to_string(),
                    Err(e) => return Err(unreachable(e)),
                };
                if let Ok(mut ids) = self.image_ids.lock() {
                    ids.insert(image.clone(), id.clone());
                }
                id
            }
        };
        self.inputs_for(name, spec, revision, &image_id).await
    }

    /// The inputs with the image id already known.
    async fn inputs_for(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &str,
        image_id: &str,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let mut out = BTreeMap::new();
        for f in &spec.env_files {
            let digest = match self.env_file_entry(name, f, revision).await? {
                Some(bytes) => format!("{:x}", Sha256::digest(&bytes)),
                None => "absent".to_string(),
            };
            out.insert(format!("env_file:{}", f.path), digest);
        }
        if let Some(p) = spec.env_files_vars.as_ref().filter(|_| !spec.env_files.is_empty()) {
            let bytes = self.env_file(name, p, revision).await?;
            out.insert(format!("env_files_vars:{p}"), format!("{:x}", Sha256::digest(&bytes)));
        }
        for m in &spec.files {
            let id = match self.entry(name, revision, &m.source).await? {
                Some((_, id)) => id,
                None => "data folder".to_string(),
            };
            out.insert(format!("file:{}", m.source), id);
        }
        for sec in &spec.secrets {
            let digest = format!("{:x}", Sha256::digest(self.secret_content(name, sec, revision).await?));
            out.insert(format!("secret:{}", sec.name), digest);
        }
        if let Some(b) = spec.build.as_ref().filter(|_| builds_first(spec)) {
            out.insert("build_tree".to_string(), self.tree(name, revision, &b.context).await?);
        }
        out.insert("image_id".to_string(), image_id.to_string());
        Ok(out)
    }

    /// An `env_files` entry's content; `None` for one with `required: false` that is not
    /// there (a host file missing, or a repository path the revision does not hold).
    async fn env_file_entry(
        &self,
        name: &str,
        f: &desired_state_schema::EnvFile,
        revision: &str,
    ) -> Result<Option<Vec<u8>>, RuntimeError> {
        if !f.required {
            let there = if f.path.starts_with('/') {
                tokio::fs::try_exists(&f.path).await.unwrap_or(true)
            } else {
                self.entry(name, revision, &f.path).await?.is_some()
            };
            if !there {
                return Ok(None);
            }
        }
        self.env_file(name, &f.path, revision).await.map(Some)
    }

    /// An env file's content: a host file (absolute), else a repository file at the revision.
    async fn env_file(&self, name: &str, path: &str, revision: &str) -> Result<Vec<u8>, RuntimeError> {
        if path.starts_with('/') {
            return tokio::fs::read(path).await.map_err(|e| RuntimeError::EnvFile {
                resource: name.to_string(),
                path: path.to_string(),
                detail: e.to_string(),
            });
        }
        let oid = git2::Oid::from_str(revision)
            .map_err(|e| RuntimeError::Docker { resource: name.into(), detail: e.to_string() })?;
        let src = self.source.clone();
        let p = path.to_string();
        tokio::task::spawn_blocking(move || src.read_file(oid, &p))
            .await
            .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
            .map(|(_, bytes)| bytes)
            .map_err(|e| source_err(name, e))
    }

    /// What a `files` source is at the revision: (is a folder, its object id), or `None`.
    async fn entry(&self, name: &str, revision: &str, path: &str) -> Result<Option<(bool, String)>, RuntimeError> {
        let oid = git2::Oid::from_str(revision)
            .map_err(|e| RuntimeError::Docker { resource: name.into(), detail: e.to_string() })?;
        let src = self.source.clone();
        let p = path.to_string();
        tokio::task::spawn_blocking(move || src.entry(oid, &p))
            .await
            .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
            .map(|e| e.map(|(dir, id)| (dir, id.to_string())))
            .map_err(|e| source_err(name, e))
    }

    /// Bind mounts for `files`: each source exported at the revision to a stable path,
    /// `state_dir/files/<resource>/<source>` (replaced whole, by rename, when its content
    /// changed); a source the revision does not hold is a data folder, created once and never
    /// overwritten or removed, and one folder for every container that binds it —
    /// `state_dir/files/_shared/<source>` — as compose binds `./data` of several services to
    /// one folder of the host.
    async fn file_binds(&self, name: &str, spec: &ContainerSpec, revision: &str) -> Result<Vec<String>, RuntimeError> {
        let mut binds = Vec::new();
        let files = self.secrets_dir.with_file_name("files");
        let root = files.join(name);
        for m in &spec.files {
            let rel = m.source.trim_start_matches("./").trim_end_matches('/');
            let mut host = root.join(rel);
            let stamp = host.with_file_name(format!(
                ".{}.id",
                host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ));
            match self.entry(name, revision, &m.source).await? {
                None => {
                    // `_shared` can be no resource's folder: a container name starts with a
                    // letter or digit.
                    let shared = files.join("_shared").join(rel);
                    let (own, at) = (host.clone(), shared.clone());
                    tokio::task::spawn_blocking(move || data_folder(&own, &at))
                        .await
                        .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
                        .map_err(|e| {
                            RuntimeError::io(name, &shared, &e, |resource, detail| RuntimeError::Docker {
                                resource,
                                detail,
                            })
                        })?;
                    host = shared;
                }
                Some((is_dir, id)) => {
                    let current = tokio::fs::read_to_string(&stamp).await.unwrap_or_default();
                    if current.trim() != id || !host.exists() {
                        let oid = git2::Oid::from_str(revision)
                            .map_err(|e| RuntimeError::Docker { resource: name.into(), detail: e.to_string() })?;
                        let src = self.source.clone();
                        let (source, h, st) = (m.source.clone(), host.clone(), stamp.clone());
                        tokio::task::spawn_blocking(move || -> Result<(), String> {
                            let parent = h.parent().ok_or("no parent")?.to_path_buf();
                            std::fs::create_dir_all(&parent).map_err(|e| e.to_string())?;
                            let tmp = parent.join(format!(".tmp-{}", std::process::id()));
                            let _ = std::fs::remove_dir_all(&tmp);
                            let _ = std::fs::remove_file(&tmp);
                            if is_dir {
                                let export = src.export(oid, &source).map_err(|e| e.to_string())?;
                                crate::fsutil::copy_tree(&export.path, &tmp).map_err(|e| e.to_string())?;
                                let _ = std::fs::remove_dir_all(&h);
                            } else {
                                let (_, bytes) = src.read_file(oid, &source).map_err(|e| e.to_string())?;
                                std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
                                if h.is_dir() {
                                    let _ = std::fs::remove_dir_all(&h);
                                }
                            }
                            std::fs::rename(&tmp, &h).map_err(|e| e.to_string())?;
                            crate::fsutil::write_atomic(&st, id.as_bytes()).map_err(|e| e.to_string())
                        })
                        .await
                        .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
                        .map_err(|detail| RuntimeError::Host {
                            resource: name.into(),
                            detail: format!("exporting {}: {detail}", m.source),
                        })?;
                    }
                }
            }
            let mut opts: Vec<&str> = Vec::new();
            if m.read_only {
                opts.push("ro");
            }
            match m.selinux {
                Some(desired_state_schema::SelinuxLabel::Shared) => opts.push("z"),
                Some(desired_state_schema::SelinuxLabel::Private) => opts.push("Z"),
                None => {}
            }
            let opts = if opts.is_empty() { String::new() } else { format!(":{}", opts.join(",")) };
            binds.push(format!("{}:{}{opts}", host.display(), m.target));
        }
        Ok(binds)
    }

    /// The plaintext of `path`'s content: decrypted in memory when it is an `.age` file.
    fn plaintext(&self, name: &str, path: &str, bytes: Vec<u8>) -> Result<zeroize::Zeroizing<Vec<u8>>, RuntimeError> {
        if !crate::secrets::is_encrypted(path) {
            return Ok(zeroize::Zeroizing::new(bytes));
        }
        self.secrets
            .decrypt(path, &bytes)
            .map_err(|e| RuntimeError::Docker { resource: name.to_string(), detail: e.to_string() })
    }

    /// Before anything is applied: what a proxied container needs of the host is there
    /// (`preflight_proxy`: else the revision fails untouched), and every `.age` file the spec
    /// names decrypts with this host's identities (else the revision is invalid, naming the
    /// file and its recipients).
    pub async fn preflight(&self, name: &str, spec: &ContainerSpec, revision: &str) -> Result<(), RuntimeError> {
        if let Some(mac) = &spec.mac_address {
            self.api().await?; // negotiated: what the engine speaks
            if !self.speaks(44) {
                return Err(RuntimeError::HostLacks {
                    resource: name.to_string(),
                    detail: format!("mac_address {mac}: this engine ({}) reads a container's MAC address only from a container-level field that API 1.44 replaced and this agent's engine client no longer sends: upgrade the engine to Docker 25 or later, or remove mac_address from the desired state", self.version().await),
                });
            }
        }
        if let Some(proxy) = &spec.proxy {
            self.preflight_proxy(name, proxy).await?;
        }
        for f in spec.env_files.iter().filter(|f| crate::secrets::is_encrypted(&f.path)) {
            if let Some(bytes) = self.env_file_entry(name, f, revision).await? {
                self.plaintext(name, &f.path, bytes)?;
            }
        }
        for sec in spec.secrets.iter().filter(|s| crate::secrets::is_encrypted(&s.source)) {
            let bytes = self.secret_content(name, sec, revision).await?;
            if sec.env.is_none() {
                self.plaintext(name, &sec.source, bytes)?;
            }
        }
        Ok(())
    }

    /// What a proxied container needs of the host, checked before anything is touched
    /// (verdicts on the revision, PRODUCT.md behaviour 10): the agent drives a Caddy
    /// (`proxy.caddy_admin`), and the address Caddy will listen on for it — `listen`, or
    /// `:443` for a `hosts`-only route when Caddy has no server there yet — is Caddy's
    /// already or free, not held by another process (asked of the kernel: `EADDRINUSE`).
    /// Caddy not answering is left to the converge (a fault there).
    async fn preflight_proxy(&self, name: &str, proxy: &desired_state_schema::ProxySpec) -> Result<(), RuntimeError> {
        let Some(caddy) = &self.caddy else {
            return Err(RuntimeError::HostLacks {
                resource: name.to_string(),
                detail: "it takes traffic through the host's Caddy (proxy:), and this agent's config has no proxy.caddy_admin: add proxy: { caddy_admin: \"unix//run/caddy/admin.sock\" } to the agent config and restart agentd, or remove proxy: from the desired state (docs/operations.md, \"Zero-downtime replaces\")".into(),
            });
        };
        let (listen, what) = match &proxy.listen {
            Some(l) if caddy.listens_on(l).await.unwrap_or(true) => return Ok(()),
            Some(l) => (l.clone(), format!("proxy.listen {l}")),
            // Hosts only: the route joins Caddy's server on :443, or one the agent adds there.
            None if caddy.https_server().await.map_or(true, |s| s.is_some()) => return Ok(()),
            None => {
                (":443".to_string(), ":443 (where Caddy would serve proxy.hosts, having no server there yet)".into())
            }
        };
        let listen = &listen;
        let addr = match listen.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => listen.clone(),
        };
        let bound = tokio::task::spawn_blocking(move || std::net::TcpListener::bind(addr).map(drop))
            .await
            .map_err(|e| RuntimeError::Host { resource: name.to_string(), detail: e.to_string() })?;
        match bound {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(RuntimeError::HostLacks {
                resource: name.to_string(),
                detail: format!(
                    "{what} is held by another process on this host (not by Caddy), so Caddy cannot listen there: find it (ss -ltnp 'sport = :{port}') and stop it, or choose another proxy.listen in the desired state",
                    port = listen.rsplit(':').next().unwrap_or(listen)
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(RuntimeError::HostLacks {
                resource: name.to_string(),
                detail: format!(
                    "{what} names an address this host does not have: choose one of the host's addresses (ip -brief address) in the desired state"
                ),
            }),
            // Free (or only the agent may not bind it, e.g. a port below 1024: Caddy may).
            _ => Ok(()),
        }
    }

    /// A secret's content: a repository file at the revision, or a host file.
    async fn secret_content(
        &self,
        name: &str,
        sec: &desired_state_schema::SecretFile,
        revision: &str,
    ) -> Result<Vec<u8>, RuntimeError> {
        let whole = self.secret_file(name, sec, revision).await?;
        let Some(var) = &sec.env else { return Ok(whole) };
        // One variable of a `.env` file (compose's `environment:` secret), decrypted first
        // when the file is an `.age` one.
        let whole = self.plaintext(name, &sec.source, whole)?;
        let text = String::from_utf8_lossy(&whole);
        let vars = parse_env_file(&text).map_err(|e| RuntimeError::Docker {
            resource: name.into(),
            detail: format!("secret {}: {} {e}", sec.name, sec.source),
        })?;
        vars.get(var).map(|v| v.as_bytes().to_vec()).ok_or_else(|| RuntimeError::Docker {
            resource: name.into(),
            detail: format!("secret {}: {} defines no {var}: define it there", sec.name, sec.source),
        })
    }

    /// A secret's source file: a repository file at the revision, or a host file.
    async fn secret_file(
        &self,
        name: &str,
        sec: &desired_state_schema::SecretFile,
        revision: &str,
    ) -> Result<Vec<u8>, RuntimeError> {
        if sec.source.starts_with('/') {
            return tokio::fs::read(&sec.source).await.map_err(|e| RuntimeError::EnvFile {
                resource: name.to_string(),
                path: sec.source.clone(),
                detail: e.to_string(),
            });
        }
        let oid = git2::Oid::from_str(revision)
            .map_err(|e| RuntimeError::Docker { resource: name.into(), detail: e.to_string() })?;
        let src = self.source.clone();
        let path = sec.source.clone();
        tokio::task::spawn_blocking(move || src.read_file(oid, &path))
            .await
            .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
            .map(|(_, bytes)| bytes)
            .map_err(|e| source_err(name, e))
    }

    /// Bind mounts for the secrets: repository files are written under `state_dir/secrets`
    /// (atomically; the folder 0700 so no other host user reaches them, the file 0444 so the
    /// container's user, whoever it is, can read it) and mounted read-only; host files are
    /// mounted as they are.
    async fn secret_binds(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &str,
    ) -> Result<Vec<String>, RuntimeError> {
        let mut binds = Vec::new();
        for sec in &spec.secrets {
            let host = if sec.source.starts_with('/') && !crate::secrets::is_encrypted(&sec.source) && sec.env.is_none()
            {
                PathBuf::from(&sec.source)
            } else {
                let encrypted = crate::secrets::is_encrypted(&sec.source);
                // An `env` secret is already its variable's value, decrypted (secret_content).
                let bytes = match sec.env {
                    Some(_) => zeroize::Zeroizing::new(self.secret_content(name, sec, revision).await?),
                    None => {
                        let raw = self.secret_content(name, sec, revision).await?;
                        self.plaintext(name, &sec.source, raw)?
                    }
                };
                // The plaintext of an .age secret lives in the runtime folder, never in state_dir.
                let dir = if encrypted { self.runtime_secrets.join(name) } else { self.secrets_dir.join(name) };
                let file = dir.join(&sec.name);
                let (d, f) = (dir.clone(), file.clone());
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::create_dir_all(&d)?;
                    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
                    crate::fsutil::write_atomic(&f, &bytes)?;
                    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444))
                })
                .await
                .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
                .map_err(|e| {
                    RuntimeError::io(name, &file, &e, |resource, detail| RuntimeError::Docker { resource, detail })
                })?;
                file
            };
            binds.push(format!("{}:{}:ro", host.display(), sec.container_path()));
        }
        Ok(binds)
    }

    /// Make sure the image is here (built, or pulled per `pull`); its reference and id.
    async fn ensure_image(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &str,
        log: Log<'_>,
    ) -> Result<(String, String), RuntimeError> {
        let (image, tree) = self.image_of(name, spec, revision).await?;
        let api = self.api().await?;
        let present = match api.inspect_image(&image).await {
            Ok(i) => Some(i.id.unwrap_or_default()),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(unreachable(e)),
        };
        if let (Some(b), Some(tree)) = (&spec.build, tree) {
            if present.is_none() {
                // Rebuilt only when the context's tree changed: the tag names the tree.
                log(format!("build {name}: context {} (tree {})", b.context, &tree[..12.min(tree.len())]));
                self.build(name, b, revision, &image, log).await?;
            } else {
                log(format!(
                    "build {name}: context {} unchanged (tree {}): reusing {image}",
                    b.context,
                    &tree[..12.min(tree.len())]
                ));
            }
            // `driftless-build/*` images are the agent's by name, built now or reused.
            self.brought.add(&image);
            if !spec.image.is_empty() {
                image::tag(api, &image, &spec.image).await.map_err(|e| docker_err(name, e))?;
            }
        } else {
            let just_fetched = self.fetched.lock().ok().and_then(|mut f| f.remove(name));
            let fetched_now = present.is_some() && just_fetched == Some((image.clone(), revision.to_string()));
            let pull = match (spec.pull, &present) {
                (PullPolicy::Always, _) => !fetched_now,
                (PullPolicy::IfNotPresent, None) => true,
                (PullPolicy::Never, None) if spec.build.is_none() => {
                    return Err(RuntimeError::ImageMissing { image: image.clone() })
                }
                (PullPolicy::Never, None) => false,
                _ => false,
            };
            if let (false, Some(id)) = (pull, &present) {
                return Ok((image, id.clone()));
            }
            let pulled = match pull {
                true => image::pull(api, &self.credentials, &image, log).await,
                false => Err(RuntimeError::ImageMissing { image: image.clone() }),
            };
            match (pulled, &spec.build) {
                (Ok(()), _) => self.brought.add(&image),
                // `build.when: missing` (compose's image + build): the registry has no such
                // image (a 404, a verdict on pulling, never a fault), or `pull: never` and
                // the host has none: it is built from the context and tagged.
                (Err(e @ (RuntimeError::ImageUnknown { .. } | RuntimeError::ImageMissing { .. })), Some(b)) => {
                    let why = match e {
                        RuntimeError::ImageMissing { .. } => "pull is never and the host has none".to_string(),
                        other => other.to_string(),
                    };
                    log(format!("build {name}: {image} cannot be pulled ({why}); building it from {}", b.context));
                    let tree = self.tree(name, revision, &b.context).await?;
                    let built = format!("driftless-build/{name}:{tree}");
                    let exists = api.inspect_image(&built).await.is_ok();
                    if !exists {
                        self.build(name, b, revision, &built, log).await?;
                    }
                    self.brought.add(&built);
                    image::tag(api, &built, &spec.image).await.map_err(|e| docker_err(name, e))?;
                }
                (Err(e), _) => return Err(e),
            }
        }
        match api.inspect_image(&image).await {
            Ok(i) => Ok((image, i.id.unwrap_or_default())),
            Err(e) => Err(docker_err(name, e)),
        }
    }

    /// Build `b` (the context exported at `revision`) as `tag`; its output streams to `log`
    /// and its last 50 lines are kept for the diagnostics.
    async fn build(
        &self,
        name: &str,
        b: &desired_state_schema::BuildSpec,
        revision: &str,
        tag: &str,
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let api = self.api().await?;
        let oid = git2::Oid::from_str(revision)
            .map_err(|e| RuntimeError::Docker { resource: name.into(), detail: e.to_string() })?;
        let src = self.source.clone();
        let context = b.context.clone();
        let export = tokio::task::spawn_blocking(move || src.export(oid, &context))
            .await
            .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
            .map_err(|e| source_err(name, e))?;
        // `cache_from`: the engine's builder reuses the layers of images it has; one it lacks
        // is pulled first, and one that cannot be pulled is only a cache missed.
        for cache in &b.cache_from {
            let cache = image::normalize(cache);
            if api.inspect_image(&cache).await.is_err() {
                match image::pull(api, &self.credentials, &cache, log).await {
                    Ok(()) => self.brought.add(&cache),
                    Err(e) => log(format!("build {name}: cache {cache} not used: {e}")),
                }
            }
        }
        let keep = self.last_output.clone();
        let n = name.to_string();
        let tee = move |line: String| {
            if let Ok(mut all) = keep.lock() {
                let v = all.entry(n.clone()).or_default();
                v.push(line.clone());
                if v.len() > 50 {
                    v.remove(0);
                }
            }
            log(line);
        };
        image::build(api, &self.credentials, name, b, &export.path, tag, &tee).await
    }

    /// The spec's `external` volumes and networks exist (before anything runs is touched).
    async fn check_external(&self, name: &str, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        if spec.external.is_empty() {
            return Ok(());
        }
        let api = self.api().await?;
        for v in &spec.external.volumes {
            match api.inspect_volume(v).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Err(external_missing(name, "volume", v)),
                Err(e) => return Err(docker_err(name, e)),
            }
        }
        for n in &spec.external.networks {
            match api.inspect_network(n, None::<bollard::query_parameters::InspectNetworkOptions>).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Err(external_missing(name, "network", n)),
                Err(e) => return Err(docker_err(name, e)),
            }
        }
        Ok(())
    }

    /// Networks and named volumes the spec uses: created and labelled when missing (never
    /// an `external` one).
    async fn ensure_networks(&self, name: &str, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let api = self.api().await?;
        let _one_at_a_time = self.objects.lock().await;
        let mut labels = HashMap::new();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_HOST.to_string(), self.host.clone());
        for net in &spec.networks {
            match api.inspect_network(&net.name, None::<bollard::query_parameters::InspectNetworkOptions>).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) && spec.external.networks.contains(&net.name) => {
                    return Err(external_missing(name, "network", &net.name));
                }
                Err(e) if is_not_found(&e) => {
                    let options = spec.network_options.get(&net.name);
                    let ipam = options.filter(|o| !o.subnets.is_empty()).map(|o| bollard::models::Ipam {
                        config: Some(
                            o.subnets
                                .iter()
                                .map(|s| bollard::models::IpamConfig {
                                    subnet: Some(s.subnet.clone()),
                                    gateway: s.gateway.clone(),
                                    ip_range: s.ip_range.clone(),
                                    ..Default::default()
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    });
                    let req = NetworkCreateRequest {
                        name: net.name.clone(),
                        labels: Some(labels.clone()),
                        internal: spec.internal_networks.contains(&net.name).then_some(true),
                        enable_ipv6: options.is_some_and(|o| o.enable_ipv6).then_some(true),
                        ipam,
                        ..Default::default()
                    };
                    api.create_network(req).await.map_err(|e| docker_err(name, e))?;
                }
                Err(e) => return Err(docker_err(name, e)),
            }
        }
        for v in &spec.volumes {
            let Ok(vol) = desired_state_schema::checks::Volume::parse(v) else { continue };
            if vol.is_bind() {
                continue;
            }
            match api.inspect_volume(&vol.source).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) && spec.external.volumes.contains(&vol.source) => {
                    return Err(external_missing(name, "volume", &vol.source));
                }
                Err(e) if is_not_found(&e) => {
                    let opts = spec.volume_options.get(&vol.source).filter(|o| !o.driver_opts.is_empty());
                    let req = bollard::models::VolumeCreateRequest {
                        name: Some(vol.source.clone()),
                        labels: Some(labels.clone()),
                        driver_opts: opts.map(|o| o.driver_opts.clone().into_iter().collect()),
                        ..Default::default()
                    };
                    api.create_volume(req).await.map_err(|e| docker_err(name, e))?;
                }
                Err(e) => return Err(docker_err(name, e)),
            }
        }
        Ok(())
    }

    /// Make resource `r` run `spec` from `revision` (see the module doc for the steps).
    pub async fn converge(
        &self,
        r: &Resource,
        spec: &ContainerSpec,
        revision: &str,
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let name = r.name();
        if let Ok(mut all) = self.last_output.lock() {
            all.remove(name);
        }
        if let Ok(mut failed) = self.fetch_failed.lock() {
            failed.remove(name);
        }
        let (image, image_id) = self.ensure_image(name, spec, revision, log).await?;
        let inputs = self.inputs_for(name, spec, revision, &image_id).await?;
        let hash = crate::plan::spec_hash(r, &inputs);
        self.ensure_networks(name, spec).await?;
        let mut binds = self.secret_binds(name, spec, revision).await?;
        binds.extend(self.file_binds(name, spec, revision).await?);
        let made = Made { revision, hash: &hash, image: &image, image_id: &image_id, binds: &binds };

        // A start-first converge and the end of a drain take turns (`drain.rs`): the
        // instances are listed after any drain that ended, and none ends during the converge.
        let start_first = spec.update == desired_state_schema::UpdateOrder::StartFirst && !spec.oneshot;
        let _turn = match start_first {
            true => Some(self.drains.turn().await),
            false => None,
        };
        let instances = self.instances(Some(name)).await?;
        // The name must be ours (or free): one of our instances holds it, or nothing does.
        if !instances.iter().any(|i| i.name == name) {
            match self.api().await?.inspect_container(name, None::<InspectContainerOptions>).await {
                Ok(c) => {
                    let labels = c.config.and_then(|cfg| cfg.labels).unwrap_or_default();
                    if labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
                        return Err(RuntimeError::NameTaken { name: name.to_string() });
                    }
                    if let Some(owner) = labels.get(LABEL_HOST).filter(|h| **h != self.host) {
                        return Err(RuntimeError::NameTakenByAgent { name: name.to_string(), host: owner.clone() });
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(docker_err(name, e)),
            }
        }

        if spec.oneshot {
            return self.run_oneshot(r, spec, &made, &instances, log).await;
        }
        if start_first {
            return self.converge_start_first(r, spec, &made, &instances, log).await;
        }
        // Traffic no longer comes through Caddy: its route goes before the container it named.
        self.drop_route(name, &instances).await?;
        let keep = instances.iter().filter(|i| i.hash == hash).max_by_key(|i| (i.name == name, i.running)).cloned();
        let keep = match keep {
            Some(k) => k,
            None => {
                // With nothing to keep running meanwhile, the new container takes the name at
                // once; otherwise it is made beside the old one and renamed after the stop.
                let next = if instances.is_empty() { name.to_string() } else { format!("{name}-next") };
                if let Some(stale) = instances.iter().find(|i| i.name == next) {
                    self.stop_and_remove(name, &stale.id, stop_secs(spec)).await?;
                }
                crate::failpoint::hit("before-create").await;
                let id = self.create(r, spec, &made, &next).await?;
                Instance {
                    resource: name.to_string(),
                    id,
                    name: next,
                    hash: hash.clone(),
                    revision: revision.to_string(),
                    running: false,
                    stop_timeout: stop_secs(spec),
                    oneshot: false,
                    exited_ok: false,
                    unclaimed: false,
                    proxy: None,
                    proxy_port: None,
                }
            }
        };
        for other in instances.iter().filter(|i| i.id != keep.id) {
            self.stop_and_remove(name, &other.id, stop_secs(spec)).await?;
        }
        crate::failpoint::hit("after-stop-old").await;
        if keep.name != name {
            let opts = RenameContainerOptions { name: name.to_string() };
            self.api().await?.rename_container(&keep.id, opts).await.map_err(|e| docker_err(name, e))?;
        }
        if !keep.running {
            self.api()
                .await?
                .start_container(&keep.id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(|e| docker_err(name, e))?;
            self.post_start(name, &keep.id, spec, log).await?;
        }
        Ok(())
    }

    /// Run the `post_start` hooks of `spec` in the container `id`, just started: one that
    /// exits non-zero is a verdict on the revision, with what it printed last.
    async fn post_start(&self, name: &str, id: &str, spec: &ContainerSpec, log: Log<'_>) -> Result<(), RuntimeError> {
        let api = self.api().await?;
        for (i, hook) in spec.post_start.iter().enumerate() {
            log(format!("{name}: post_start[{i}]: {}", hook.command.join(" ")));
            match hooks::run(api, id, hook).await {
                Ok(()) => {}
                Err(hooks::HookError::Engine(e)) => return Err(docker_err(name, e)),
                Err(hooks::HookError::Exited { code, output }) => {
                    let said = if output.is_empty() { String::new() } else { format!(":\n{output}") };
                    return Err(RuntimeError::Docker {
                        resource: name.to_string(),
                        detail: format!("post_start[{i}] ({}) exited with status {code}{said}", hook.command.join(" ")),
                    });
                }
                Err(hooks::HookError::TimedOut { output }) => {
                    let said = if output.is_empty() { String::new() } else { format!(":\n{output}") };
                    return Err(RuntimeError::Docker {
                        resource: name.to_string(),
                        detail: format!(
                            "post_start[{i}] ({}) did not exit within {}s: a hook runs to completion; make it end, or run the work in the entrypoint{said}",
                            hook.command.join(" "),
                            hooks::LIMIT.as_secs()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Run the `pre_stop` hooks the running container `id` was created with (its label);
    /// a failure is logged and the stop goes on (an agent that could not stop a container
    /// could not revert either).
    async fn pre_stop(&self, name: &str, id: &str) {
        let Ok(api) = self.api().await else { return };
        let Ok(c) = api.inspect_container(id, None::<InspectContainerOptions>).await else { return };
        if !c.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
            return;
        }
        let hooks = hooks::decode(c.config.as_ref().and_then(|c| c.labels.as_ref()).and_then(|l| l.get(hooks::LABEL)));
        for (i, hook) in hooks.iter().enumerate() {
            match hooks::run(api, id, hook).await {
                Ok(()) => tracing::info!(resource = name, "pre_stop[{i}] ({}) ran", hook.command.join(" ")),
                Err(hooks::HookError::Exited { code, output }) => tracing::warn!(
                    resource = name,
                    "pre_stop[{i}] ({}) exited with status {code}; stopping the container anyway: {output}",
                    hook.command.join(" ")
                ),
                Err(hooks::HookError::Engine(e)) => {
                    tracing::warn!(resource = name, "pre_stop[{i}] could not run ({e}); stopping the container anyway")
                }
                Err(hooks::HookError::TimedOut { output }) => tracing::warn!(
                    resource = name,
                    "pre_stop[{i}] ({}) did not exit within {}s; stopping the container anyway: {output}",
                    hook.command.join(" "),
                    hooks::LIMIT.as_secs()
                ),
            }
        }
    }

    /// Create the container `as_name` for `r` and attach its extra networks; its id.
    async fn create(
        &self,
        r: &Resource,
        spec: &ContainerSpec,
        made: &Made<'_>,
        as_name: &str,
    ) -> Result<String, RuntimeError> {
        let name = r.name();
        let api = self.api().await?;
        let body = self.create_body(r, spec, made).await?;
        let opts = CreateContainerOptions { name: Some(as_name.to_string()), ..Default::default() };
        let created = api.create_container(Some(opts), body).await.map_err(|e| docker_err(name, e))?;
        for extra in spec.networks.iter().skip(1) {
            let req = bollard::models::NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: endpoint(extra, &spec.links, None),
            };
            api.connect_network(&extra.name, req).await.map_err(|e| docker_err(name, e))?;
        }
        Ok(created.id)
    }

    /// A oneshot: done when an instance with this spec exited 0; else the old ones go, a new
    /// one runs to completion, and anything but exit 0 is a verdict on the revision.
    async fn run_oneshot(
        &self,
        r: &Resource,
        spec: &ContainerSpec,
        made: &Made<'_>,
        instances: &[Instance],
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let name = r.name();
        if let Some(done) = instances.iter().find(|i| i.hash == made.hash && i.exited_ok) {
            for other in instances.iter().filter(|i| i.id != done.id) {
                self.stop_and_remove(name, &other.id, stop_secs(spec)).await?;
            }
            return Ok(());
        }
        for old in instances {
            self.stop_and_remove(name, &old.id, stop_secs(spec)).await?;
        }
        let id = self.create(r, spec, made, name).await?;
        let api = self.api().await?;
        api.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| docker_err(name, e))?;
        self.post_start(name, &id, spec, log).await?;
        log(format!("oneshot {name}: started; waiting for it to exit"));
        let opts = bollard::query_parameters::WaitContainerOptions { condition: "not-running".into() };
        let mut wait = api.wait_container(&id, Some(opts));
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let code = loop {
            tokio::select! {
                _ = tick.tick() => crate::sdnotify::progress(), // a live container is progress
                item = wait.next() => match item {
                    Some(Ok(w)) => break w.status_code,
                    Some(Err(BollardError::DockerContainerWaitError { code, .. })) => break code,
                    Some(Err(e)) => return Err(docker_err(name, e)),
                    None => break self.exit_code(name).await.unwrap_or(-1),
                },
            }
        };
        if code == 0 {
            log(format!("oneshot {name}: exited 0"));
            Ok(())
        } else {
            Err(RuntimeError::Docker {
                resource: name.to_string(),
                detail: format!("oneshot container {name} exited with code {code}"),
            })
        }
    }

    async fn exit_code(&self, name: &str) -> Option<i64> {
        let c = self.api().await.ok()?.inspect_container(name, None::<InspectContainerOptions>).await.ok()?;
        c.state?.exit_code
    }

    async fn create_body(
        &self,
        r: &Resource,
        spec: &ContainerSpec,
        made: &Made<'_>,
    ) -> Result<ContainerCreateBody, RuntimeError> {
        let name = r.name();
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        // `${VAR}` in an env file: the files read before it, then `env_files_vars` (compose:
        // the project's `.env`), as compose-go's `GetEnvFromFile` looks them up.
        let vars = match &spec.env_files_vars {
            Some(p) if !spec.env_files.is_empty() => {
                let bytes = self.env_file(name, p, made.revision).await?;
                desired_state_schema::compose::dotenv::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| {
                    RuntimeError::Docker { resource: name.into(), detail: format!("{p}: {e} (compose's .env format)") }
                })?
            }
            _ => BTreeMap::new(),
        };
        for f in &spec.env_files {
            let path = &f.path;
            let Some(bytes) = self.env_file_entry(name, f, made.revision).await? else { continue };
            let bytes = self.plaintext(name, path, bytes)?;
            let text = String::from_utf8_lossy(&bytes);
            let lookup = |k: &str| env.get(k).or_else(|| vars.get(k)).cloned();
            let parsed = desired_state_schema::compose::dotenv::parse_with(&text, &lookup);
            for (k, v) in parsed.map_err(|e| {
                let detail = format!("{e} (the .env format compose reads: KEY=value, quotes, # comments)");
                if path.starts_with('/') {
                    // A host-side file: the host's to fix, as when it is missing.
                    RuntimeError::EnvFile { resource: name.into(), path: path.clone(), detail }
                } else {
                    RuntimeError::Docker { resource: name.into(), detail: format!("env file {path}: {detail}") }
                }
            })? {
                env.insert(k, v);
            }
        }
        for (k, v) in &spec.env {
            env.insert(k.clone(), v.0.clone());
        }
        let mut exposed = Vec::new();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &spec.ports {
            let m = PortMapping::parse(p).map_err(|why| RuntimeError::Docker { resource: name.into(), detail: why })?;
            for (i, cport) in (m.container.0..=m.container.1).enumerate() {
                let key = format!("{cport}/{}", m.proto);
                exposed.push(key.clone());
                let host_port = m.host.map(|(lo, hi)| if lo == hi { lo } else { lo + i as u16 });
                bindings
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding { host_ip: m.ip.clone(), host_port: host_port.map(|p| p.to_string()) });
            }
        }
        for e in &spec.expose {
            let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
            let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else { continue };
            for port in lo..=hi {
                let key = format!("{port}/{proto}");
                if !exposed.contains(&key) {
                    exposed.push(key);
                }
            }
        }
        let restart = if spec.oneshot {
            DockerRestart { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }
        } else {
            match spec.restart {
                RestartPolicy::No => DockerRestart { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None },
                RestartPolicy::Always => {
                    DockerRestart { name: Some(RestartPolicyNameEnum::ALWAYS), maximum_retry_count: None }
                }
                RestartPolicy::UnlessStopped => {
                    DockerRestart { name: Some(RestartPolicyNameEnum::UNLESS_STOPPED), maximum_retry_count: None }
                }
                RestartPolicy::OnFailure(n) => DockerRestart {
                    name: Some(RestartPolicyNameEnum::ON_FAILURE),
                    maximum_retry_count: n.map(i64::from),
                },
            }
        };
        let mut labels: HashMap<String, String> = spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_HOST.to_string(), self.host.clone());
        labels.insert(LABEL_RESOURCE.to_string(), name.to_string());
        labels.insert(LABEL_REVISION.to_string(), made.revision.to_string());
        labels.insert(LABEL_SPEC_HASH.to_string(), made.hash.to_string());
        labels.insert(LABEL_IMAGE_ID.to_string(), made.image_id.to_string());
        labels.insert(LABEL_STOP_TIMEOUT.to_string(), stop_secs(spec).to_string());
        if spec.oneshot {
            labels.insert(LABEL_ONESHOT.to_string(), "true".to_string());
        }
        if let Some(p) = &spec.proxy {
            // Published on the loopback at a port the engine picks: each instance its own, so
            // the old and the new container answer side by side, and Caddy dials it.
            labels.insert(LABEL_PROXY.to_string(), serde_json::to_string(p).unwrap_or_default());
            let key = format!("{}/tcp", p.port);
            if !exposed.contains(&key) {
                exposed.push(key.clone());
            }
            bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) });
        }
        let mut binds = spec.volumes.clone();
        binds.extend(made.binds.iter().cloned());
        let tmpfs: HashMap<String, String> = spec
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, opts)) => (path.to_string(), opts.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect();
        let devices: Vec<bollard::models::DeviceMapping> = spec
            .devices
            .iter()
            .map(|d| {
                let mut parts = d.splitn(3, ':');
                let host = parts.next().unwrap_or("").to_string();
                let inside = parts.next().map(str::to_string).unwrap_or_else(|| host.clone());
                let perms = parts.next().unwrap_or("rwm").to_string();
                bollard::models::DeviceMapping {
                    path_on_host: Some(host),
                    path_in_container: Some(inside),
                    cgroup_permissions: Some(perms),
                }
            })
            .collect();
        let ulimits: Vec<bollard::models::ResourcesUlimits> = spec
            .ulimits
            .iter()
            .map(|(n, l)| {
                let (soft, hard) = l.soft_hard();
                bollard::models::ResourcesUlimits { name: Some(n.clone()), soft: Some(soft), hard: Some(hard) }
            })
            .collect();
        let bytes = |v: &Option<desired_state_schema::EnvValue>| {
            v.as_ref().and_then(|v| desired_state_schema::checks::parse_bytes(&v.0).ok())
        };
        let nanos = |d: Option<desired_state_schema::Duration>| {
            d.map(|d| i64::try_from(d.as_std().as_nanos()).unwrap_or(i64::MAX))
        };
        let healthcheck = spec.healthcheck.as_ref().map(|h| bollard::models::HealthConfig {
            // No test: the image's own, with these timings.
            test: (!h.test.is_unset()).then(|| h.test.engine_form()),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            retries: h.retries.map(i64::from),
            start_period: nanos(h.start_period),
            start_interval: if self.takes_start_interval() { nanos(h.start_interval) } else { None },
        });
        let network_mode = spec.network_mode.clone().or_else(|| spec.networks.first().map(|n| n.name.clone()));
        // The MAC address goes to the first network's endpoint (API 1.44; the preflight
        // refused it on an older engine): its own, or the engine's default `bridge`.
        let mac = spec.mac_address.as_ref().filter(|_| self.speaks(44));
        let first = spec.networks.first().cloned().or_else(|| {
            (spec.network_mode.is_none() && mac.is_some())
                .then(|| desired_state_schema::NetworkAttachment { name: "bridge".into(), ..Default::default() })
        });
        let networking_config = first.and_then(|n| {
            let mut endpoints = HashMap::new();
            endpoints.insert(n.name.clone(), endpoint(&n, &spec.links, mac)?);
            Some(bollard::models::NetworkingConfig { endpoints_config: Some(endpoints) })
        });
        let blkio = spec.blkio_config.clone().unwrap_or_default();
        let throttle = |list: &Vec<desired_state_schema::BlkioRate>| {
            (!list.is_empty()).then(|| {
                list.iter()
                    .map(|r| bollard::models::ThrottleDevice {
                        path: Some(r.path.clone()),
                        rate: desired_state_schema::checks::parse_bytes(&r.rate.0).ok(),
                    })
                    .collect()
            })
        };
        let device_requests: Vec<bollard::models::DeviceRequest> = spec
            .device_requests
            .iter()
            .map(|d| bollard::models::DeviceRequest {
                driver: d.driver.clone(),
                count: d.count,
                device_ids: (!d.device_ids.is_empty()).then(|| d.device_ids.clone()),
                capabilities: (!d.capabilities.is_empty()).then(|| vec![d.capabilities.clone()]),
                options: (!d.options.is_empty()).then(|| d.options.clone().into_iter().collect()),
            })
            .collect();
        if let Some(pre_stop) = hooks::encode(&spec.pre_stop) {
            labels.insert(hooks::LABEL.to_string(), pre_stop);
        }
        let map = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone().into_iter().collect());
        let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Ok(ContainerCreateBody {
            image: Some(made.image.to_string()),
            cmd: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            stop_timeout: Some(i64::from(stop_secs(spec))),
            stop_signal: spec.stop_signal.clone(),
            user: spec.user.clone(),
            working_dir: spec.working_dir.clone(),
            hostname: spec.hostname.clone(),
            domainname: spec.domainname.clone(),
            tty: spec.tty.then_some(true),
            open_stdin: spec.stdin_open.then_some(true),
            healthcheck,
            networking_config,
            host_config: Some(HostConfig {
                binds: (!binds.is_empty()).then_some(binds),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                restart_policy: Some(restart),
                network_mode,
                ipc_mode: spec.ipc.clone(),
                extra_hosts: (!spec.extra_hosts.is_empty()).then(|| {
                    spec.extra_hosts
                        .iter()
                        .map(|e| if e.contains('=') { e.replacen('=', ":", 1) } else { e.clone() })
                        .collect()
                }),
                dns: nonempty(&spec.dns),
                dns_search: nonempty(&spec.dns_search),
                dns_options: nonempty(&spec.dns_opt),
                cap_add: nonempty(&spec.cap_add),
                cap_drop: nonempty(&spec.cap_drop),
                privileged: spec.privileged.then_some(true),
                readonly_rootfs: spec.read_only.then_some(true),
                tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
                init: spec.init.then_some(true),
                devices: (!devices.is_empty()).then_some(devices),
                sysctls: (!spec.sysctls.is_empty())
                    .then(|| spec.sysctls.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()),
                ulimits: (!ulimits.is_empty()).then_some(ulimits),
                shm_size: bytes(&spec.shm_size),
                memory: bytes(&spec.memory),
                nano_cpus: spec.cpus.as_ref().and_then(|c| desired_state_schema::checks::parse_cpus(&c.0)),
                pids_limit: spec.pids_limit,
                cpu_shares: spec.cpu_shares,
                cpu_period: spec.cpu_period,
                cpu_quota: spec.cpu_quota,
                cpuset_cpus: spec.cpuset.clone(),
                memory_reservation: bytes(&spec.mem_reservation),
                memory_swap: spec.memswap_limit.as_ref().and_then(|v| {
                    if v.0 == "-1" {
                        Some(-1)
                    } else {
                        desired_state_schema::checks::parse_bytes(&v.0).ok()
                    }
                }),
                memory_swappiness: spec.mem_swappiness,
                oom_kill_disable: spec.oom_kill_disable.then_some(true),
                oom_score_adj: spec.oom_score_adj,
                pid_mode: spec.pid.clone(),
                uts_mode: spec.uts.clone(),
                userns_mode: spec.userns_mode.clone(),
                cgroupns_mode: spec.cgroup.as_deref().map(|c| match c {
                    "host" => bollard::models::HostConfigCgroupnsModeEnum::HOST,
                    _ => bollard::models::HostConfigCgroupnsModeEnum::PRIVATE,
                }),
                cgroup_parent: spec.cgroup_parent.clone(),
                device_cgroup_rules: nonempty(&spec.device_cgroup_rules),
                runtime: spec.runtime.clone(),
                volumes_from: nonempty(&spec.volumes_from),
                log_config: spec.logging.as_ref().map(|l| bollard::models::HostConfigLogConfig {
                    typ: l.driver.clone(),
                    config: (!l.options.is_empty())
                        .then(|| l.options.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()),
                }),
                security_opt: nonempty(&spec.security_opt),
                group_add: nonempty(&spec.group_add),
                links: nonempty(&spec.links),
                device_requests: (!device_requests.is_empty()).then_some(device_requests),
                blkio_weight: blkio.weight,
                blkio_weight_device: (!blkio.weight_device.is_empty()).then(|| {
                    blkio
                        .weight_device
                        .iter()
                        .map(|w| bollard::models::ResourcesBlkioWeightDevice {
                            path: Some(w.path.clone()),
                            weight: Some(w.weight.into()),
                        })
                        .collect()
                }),
                blkio_device_read_bps: throttle(&blkio.device_read_bps),
                blkio_device_write_bps: throttle(&blkio.device_write_bps),
                blkio_device_read_iops: throttle(&blkio.device_read_iops),
                blkio_device_write_iops: throttle(&blkio.device_write_iops),
                storage_opt: map(&spec.storage_opt),
                // Annotations are API 1.43 (Docker 24); `describe` names them on an older engine.
                annotations: if self.speaks(43) { map(&spec.annotations) } else { None },
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn stop_and_remove(&self, resource: &str, id: &str, secs: i32) -> Result<(), RuntimeError> {
        self.pre_stop(resource, id).await;
        let stop = StopContainerOptions { t: Some(secs), ..Default::default() };
        match self.api().await?.stop_container(id, Some(stop)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) => return Err(docker_err(resource, e)),
        }
        // v: false — volumes are never deleted.
        let rm = RemoveContainerOptions { v: false, force: true, link: false };
        match self.api().await?.remove_container(id, Some(rm)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(docker_err(resource, e)),
        }
    }

    /// Stop and remove every instance of a resource; its volumes stay.
    pub async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let instances = self.instances(Some(name)).await?;
        self.drop_route(name, &instances).await?;
        for i in instances {
            // The spec is gone; the container's own StopTimeout (set at create) applies.
            self.stop_and_remove(name, &i.id, i.stop_timeout).await?;
        }
        Ok(())
    }

    /// Wait (up to 10 s) until the container `name` is gone.
    async fn wait_removed(&self, name: &str) {
        let Ok(api) = self.api().await else { return };
        for _ in 0..50 {
            match api.inspect_container(name, None::<InspectContainerOptions>).await {
                Err(e) if is_not_found(&e) => return,
                _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }

    fn forget_image_ids(&self) {
        if let Ok(mut ids) = self.image_ids.lock() {
            ids.clear();
        }
    }

    fn remember_exit(&self, name: &str, code: i64) {
        if let Ok(mut all) = self.last_exit.lock() {
            all.insert(name.to_string(), code);
        }
    }

    fn last_exit(&self, name: &str) -> Option<i64> {
        self.last_exit.lock().ok().and_then(|all| all.get(name).copied())
    }

    /// During the gate: has the container exited or restarted?
    pub async fn watch(&self, name: &str) -> Liveness {
        let Ok(api) = self.api().await else { return Liveness::Alive }; // a fault: the gate's checks decide
        match api.inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(c) => {
                let oneshot = c
                    .config
                    .as_ref()
                    .and_then(|cfg| cfg.labels.as_ref())
                    .is_some_and(|l| l.get(LABEL_ONESHOT).is_some_and(|v| v == "true"));
                let state = c.state.unwrap_or_default();
                let restarts = c.restart_count.unwrap_or(0);
                if oneshot && state.running != Some(true) && state.exit_code == Some(0) {
                    Liveness::Alive // ran to completion
                } else if state.restarting == Some(true) || restarts > 0 {
                    if let Some(c) = state.exit_code.filter(|c| *c != 0) {
                        self.remember_exit(name, c);
                    }
                    let code = self.last_exit(name).map(|c| format!(", last exit code {c}")).unwrap_or_default();
                    Liveness::Failed(format!("container {name} keeps exiting: {restarts} restart(s){code}"))
                } else if state.running != Some(true) {
                    Liveness::Failed(format!("container {name} exited with code {}", state.exit_code.unwrap_or(0)))
                } else {
                    Liveness::Alive
                }
            }
            Err(e) if is_not_found(&e) => Liveness::Failed(format!("container {name} is gone")),
            Err(_) => Liveness::Alive, // the engine hiccuped; the checks decide
        }
    }

    /// The last 50 lines of container `id`'s (or name's) output, as the engine keeps them.
    async fn tail_logs(&self, id: &str) -> Vec<String> {
        let Ok(api) = self.api().await else { return Vec::new() };
        let opts = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: "50".into(),
            ..Default::default()
        };
        let mut stream = api.logs(id, Some(opts));
        let mut logs = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            logs.extend(chunk.to_string().lines().map(|l| l.trim_end().to_string()));
        }
        logs
    }

    /// Why `name` failed, for the history: state, exit code, OOM kill and the last 50 lines
    /// of its log (or of its build, when no container was made).
    pub async fn diagnose(&self, name: &str) -> Option<Diagnostic> {
        let kept = self.last_output.lock().ok().and_then(|all| all.get(name).cloned());
        let fetch_failed = self.fetch_failed.lock().ok().and_then(|f| f.get(name).cloned());
        if let Some((state, error)) = fetch_failed {
            // Nothing of the new revision was created; what runs is the old, untouched one.
            let mut logs = kept.unwrap_or_default();
            if logs.last() != Some(&error) {
                logs.push(error);
            }
            return Some(Diagnostic {
                kind: Kind::Container.to_string(),
                name: name.to_string(),
                state,
                exit_code: None,
                oom_killed: false,
                logs,
            });
        }
        let api = self.api().await.ok()?;
        let c = match api.inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(c) => c,
            Err(_) => {
                return kept.map(|logs| Diagnostic {
                    kind: Kind::Container.to_string(),
                    name: name.to_string(),
                    state: "not created".into(),
                    exit_code: None,
                    oom_killed: false,
                    logs,
                })
            }
        };
        let st = c.state.unwrap_or_default();
        let mut logs = self.tail_logs(name).await;
        let keep_from = logs.len().saturating_sub(50);
        let mut logs = logs.split_off(keep_from);
        if logs.is_empty() {
            logs = kept.unwrap_or_default();
        }
        let restarts = c.restart_count.unwrap_or(0);
        let state = match (&st.status, st.restarting) {
            (_, Some(true)) => format!("restarting ({restarts} restarts)"),
            _ if restarts > 0 => format!("restarting ({restarts} restarts)"),
            (Some(s), _) => s.to_string(),
            _ => "unknown".to_string(),
        };
        Some(Diagnostic {
            kind: Kind::Container.to_string(),
            name: name.to_string(),
            state,
            // A restarting container reports 0 while it runs again: only a real exit counts,
            // else the last one seen.
            exit_code: st.exit_code.filter(|c| *c != 0 || st.running != Some(true)).or_else(|| self.last_exit(name)),
            oom_killed: st.oom_killed.unwrap_or(false),
            logs,
        })
    }

    /// After a commit: remove the managed networks no container uses any more, and (with
    /// `prune_images`) the images the agent brought that `keep` does not use.
    pub async fn prune(&self, keep: &[&Resource]) -> Result<(), RuntimeError> {
        let api = self.api().await?;
        let mut filters = HashMap::new();
        // This agent's networks only (not another host's on a shared engine, nor an older
        // agent's unlabelled ones, which may be anyone's).
        filters
            .insert("label".to_string(), vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_HOST}={}", self.host)]);
        let opts = bollard::query_parameters::ListNetworksOptions { filters: Some(filters) };
        let wanted: BTreeSet<String> = keep
            .iter()
            .filter_map(|r| match &r.spec {
                desired_state_schema::Spec::Container(c) => Some(c.networks.iter().map(|n| n.name.clone())),
                _ => None,
            })
            .flatten()
            .collect();
        for net in api.list_networks(Some(opts)).await.map_err(unreachable)? {
            let Some(n) = net.name else { continue };
            if wanted.contains(&n) {
                continue;
            }
            let inspected = api.inspect_network(&n, None::<bollard::query_parameters::InspectNetworkOptions>).await;
            if inspected.is_ok_and(|i| i.containers.unwrap_or_default().is_empty()) {
                match api.remove_network(&n).await {
                    Ok(()) => tracing::info!("removed network {n}: no longer used"),
                    Err(e) => tracing::debug!("keeping network {n}: {e}"),
                }
            }
        }
        if self.prune_images {
            let mut images = BTreeSet::new();
            for r in keep {
                if let desired_state_schema::Spec::Container(c) = &r.spec {
                    let revision =
                        self.instances(Some(r.name())).await?.first().map(|i| i.revision.clone()).unwrap_or_default();
                    if let Ok((image, _)) = self.image_of(r.name(), c, &revision).await {
                        images.insert(image);
                    }
                    if !c.image.is_empty() {
                        images.insert(image::normalize(&c.image));
                    }
                }
            }
            for removed in image::prune(api, &self.brought, &images).await {
                tracing::info!("removed image {removed}: no longer used by the applied revision");
            }
        }
        Ok(())
    }

    /// The image's own HEALTHCHECK verdict.
    pub async fn healthcheck_status(&self, name: &str) -> Result<(), String> {
        let c = self
            .api()
            .await
            .map_err(|e| e.to_string())?
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| format!("cannot inspect {name}: {e}"))?;
        let status = c.state.and_then(|s| s.health).and_then(|h| h.status);
        match status {
            Some(HealthStatusEnum::HEALTHY) => Ok(()),
            Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) | None => {
                Err(format!("the image of {name} has no HEALTHCHECK; use an http, tcp or exec check"))
            }
            Some(other) => Err(format!("HEALTHCHECK of {name} reports {other}")),
        }
    }
}

#[async_trait::async_trait]
impl super::Driver for DockerRuntime {
    fn kind(&self) -> Kind {
        Kind::Container
    }

    fn parallel(&self) -> bool {
        true
    }

    async fn reachable(&self) -> Result<(), RuntimeError> {
        self.api().await?.ping().await.map(|_| ()).map_err(unreachable)?;
        if self.proxied.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(c) = &self.caddy {
                c.reachable().await.map_err(|e| proxy_err("caddy", e))?;
            }
        }
        Ok(())
    }

    /// A start-first container's old instance stops only now, after `drain`.
    async fn commit(&self, r: &Resource) -> Result<(), RuntimeError> {
        let spec = container_spec(r)?;
        if spec.update != desired_state_schema::UpdateOrder::StartFirst || spec.oneshot {
            return Ok(());
        }
        self.changed();
        let result = self.retire_old(r.name(), spec).await;
        self.changed();
        result
    }

    async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        DockerRuntime::observe(self).await
    }

    async fn inputs(&self, r: &Resource, revision: &Revision) -> Result<BTreeMap<String, String>, RuntimeError> {
        DockerRuntime::inputs(self, r.name(), container_spec(r)?, revision.as_str()).await
    }

    /// A container someone removes while the agent puts it back (`docker rm -f` racing a drift
    /// repair) cannot be started: once the removal is done, the converge runs again.
    async fn converge(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        let spec = container_spec(r)?;
        self.changed();
        let result = match DockerRuntime::converge(self, r, spec, revision.as_str(), log).await {
            Err(e) if being_removed(&e) => {
                tracing::info!("{}: removed while the agent converged it; once it is gone, again", r.name());
                self.wait_removed(r.name()).await;
                DockerRuntime::converge(self, r, spec, revision.as_str(), log).await
            }
            other => other,
        };
        // The engine's events for what it just did may come later than the next look.
        self.changed();
        result
    }

    async fn diagnose(&self, r: &Resource) -> Option<Diagnostic> {
        DockerRuntime::diagnose(self, r.name()).await
    }

    /// The engine's restart of the container (converged first if it is not as it should be).
    async fn restart(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        super::Driver::converge(self, r, revision, log).await?;
        self.changed();
        let opts = bollard::query_parameters::RestartContainerOptions {
            t: Some(stop_secs(container_spec(r)?)),
            ..Default::default()
        };
        // As docker compose restarts a service (`restart.go`): pre_stop, restart, post_start.
        self.pre_stop(r.name(), r.name()).await;
        let result =
            self.api().await?.restart_container(r.name(), Some(opts)).await.map_err(|e| docker_err(r.name(), e));
        self.changed();
        result?;
        self.post_start(r.name(), r.name(), container_spec(r)?, log).await
    }

    /// Pull or build the image (what a later `converge` of the same revision then reuses).
    async fn fetch(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        let spec = container_spec(r)?;
        if let Ok(mut all) = self.last_output.lock() {
            all.remove(r.name());
        }
        if let Ok(mut failed) = self.fetch_failed.lock() {
            failed.remove(r.name());
        }
        self.check_external(r.name(), spec).await?;
        match self.ensure_image(r.name(), spec, revision.as_str(), log).await {
            Ok((image, _)) => {
                if let Ok(mut fetched) = self.fetched.lock() {
                    fetched.insert(r.name().to_string(), (image, revision.to_string()));
                }
                // A build that succeeded is no diagnostic (its output went to the log).
                if let Ok(mut all) = self.last_output.lock() {
                    all.remove(r.name());
                }
                Ok(())
            }
            Err(e) => {
                let state = if spec.build.is_some() { "image build failed" } else { "image pull failed" };
                if let Ok(mut failed) = self.fetch_failed.lock() {
                    failed.insert(r.name().to_string(), (state.to_string(), e.to_string()));
                }
                Err(e)
            }
        }
    }

    async fn preflight(&self, r: &Resource, revision: &Revision) -> Result<(), RuntimeError> {
        DockerRuntime::preflight(self, r.name(), container_spec(r)?, revision.as_str()).await
    }

    async fn prune(&self, keep: &[&Resource]) -> Result<(), RuntimeError> {
        DockerRuntime::prune(self, keep).await
    }

    /// The engine's event stream, filtered to managed containers' die, stop, kill, destroy,
    /// rename and health changes (oom, restart and pause too); re-established with backoff
    /// after the engine goes away (a fault), with a change reported on each reconnect.
    fn subscribe(
        &self,
        on_change: std::sync::Arc<dyn Fn(String) + Send + Sync>,
        mut shutdown: crate::listen::Shutdown,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let me = self.clone();
        self.resume_drains();
        if let Some(caddy) = self.caddy.clone() {
            // Caddy sends no events: a restart that forgot the routes is seen here.
            tokio::spawn(start_first::watch_caddy(caddy, self.proxied.clone(), on_change.clone(), shutdown.clone()));
        }
        Some(tokio::spawn(async move {
            let mut backoff = std::time::Duration::from_secs(1);
            loop {
                if shutdown.is_shutdown() {
                    return;
                }
                let connected = std::time::Instant::now();
                let stream_ended = async {
                    let api = match me.api().await {
                        Ok(a) => a.clone(),
                        Err(e) => return Err::<(), String>(e.to_string()),
                    };
                    let mut filters = HashMap::new();
                    filters.insert("type".to_string(), vec!["container".to_string()]);
                    filters.insert("label".to_string(), vec![format!("{LABEL_MANAGED}=true")]);
                    // Not `exec_*`: a HEALTHCHECK runs one each interval and changes nothing.
                    filters.insert(
                        "event".to_string(),
                        DRIFT_EVENTS.iter().chain(LIST_EVENTS).map(|e| e.to_string()).collect(),
                    );
                    let opts =
                        bollard::query_parameters::EventsOptions { filters: Some(filters), ..Default::default() };
                    let containers = api.events(Some(opts));
                    // Image events tell when an image id behind a tag may have changed: while
                    // they flow, image ids are kept between plans instead of asked each poll.
                    let mut image_filters = HashMap::new();
                    image_filters.insert("type".to_string(), vec!["image".to_string()]);
                    let image_opts =
                        bollard::query_parameters::EventsOptions { filters: Some(image_filters), ..Default::default() };
                    let images = api.events(Some(image_opts));
                    let mut events = futures_util::stream::select(containers, images);
                    tracing::debug!("docker: watching the engine's events");
                    me.forget_image_ids();
                    me.changed();
                    me.events_live.store(true, std::sync::atomic::Ordering::SeqCst);
                    // Whatever happened while the feed was down: look once.
                    on_change(String::new());
                    while let Some(item) = events.next().await {
                        match item {
                            Ok(ev) if ev.typ == Some(bollard::models::EventMessageTypeEnum::IMAGE) => {
                                me.forget_image_ids();
                            }
                            Ok(ev) => {
                                let attrs = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
                                let name = attrs.get(LABEL_RESOURCE).cloned().unwrap_or_default();
                                let action = ev.action.unwrap_or_default();
                                if action == "die" {
                                    let code = attrs.get("exitCode").and_then(|c| c.parse::<i64>().ok());
                                    if let (Some(c), Ok(mut all)) = (code.filter(|c| *c != 0), me.last_exit.lock()) {
                                        all.insert(name.clone(), c);
                                    }
                                }
                                // A healthy report is no drift; an unhealthy one is. Health
                                // is not in what `observe` lists.
                                if action.starts_with("health_status") && !action.contains("unhealthy") {
                                    continue;
                                }
                                me.changed();
                                // A container created or started is no drift (one the agent
                                // does not expect is found by the next poll, which looks).
                                if DRIFT_EVENTS.iter().any(|d| action.starts_with(d)) {
                                    on_change(name);
                                }
                            }
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Err("the engine closed the event stream".to_string())
                };
                let why = tokio::select! {
                    r = stream_ended => r.err().unwrap_or_default(),
                    _ = shutdown.recv() => return,
                };
                me.events_live.store(false, std::sync::atomic::Ordering::SeqCst);
                me.changed();
                if connected.elapsed() > std::time::Duration::from_secs(60) {
                    backoff = std::time::Duration::from_secs(1); // it had been up: start over
                }
                tracing::debug!("docker: event stream lost ({why}); reconnecting in {}s", backoff.as_secs());
                // A lost feed is a fault of the engine; polls keep watching meanwhile.
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.recv() => return,
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
            }
        }))
    }

    /// A `healthcheck` in the spec is gated as `container: true`.
    fn implicit_checks(&self, r: &Resource) -> Vec<desired_state_schema::HealthCheck> {
        let Ok(c) = container_spec(r) else { return Vec::new() };
        let has_probe = c.health.iter().any(|h| h.container == Some(true));
        match &c.healthcheck {
            // Not for timings alone (`test` unset): whether the image has a check of its own
            // is the image's business; `x-driftless.health: [{ container: true }]` gates it.
            Some(h)
                if !has_probe
                    && !h.test.is_unset()
                    && h.test.engine_form().first().map(String::as_str) != Some("NONE") =>
            {
                vec![desired_state_schema::HealthCheck { container: Some(true), ..Default::default() }]
            }
            _ => Vec::new(),
        }
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.changed();
        let result = DockerRuntime::remove(self, name).await;
        self.changed();
        result
    }

    fn observation_token(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        if self.proxied.load(Ordering::SeqCst) {
            return None; // routes in Caddy change without an engine event
        }
        self.events_live.load(Ordering::SeqCst).then(|| self.changes.load(Ordering::SeqCst))
    }

    fn settle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(300)
    }

    async fn watch(&self, name: &str) -> Liveness {
        DockerRuntime::watch(self, name).await
    }

    /// What the engine of this host cannot honour of the spec, said in `status` and the
    /// history (as compose names it once): `healthcheck.start_interval` before API 1.44.
    fn describe(&self, r: &Resource) -> Option<String> {
        let c = container_spec(r).ok()?;
        let version = self.negotiated.get()?.client_version();
        let mut ignored = Vec::new();
        if c.healthcheck.as_ref().is_some_and(|h| h.start_interval.is_some()) && !self.takes_start_interval() {
            ignored.push("healthcheck.start_interval ignored (it needs API 1.44, Docker 25+)");
        }
        if !c.annotations.is_empty() && !self.speaks(43) {
            ignored.push("annotations not passed (they need API 1.43, Docker 24+)");
        }
        (!ignored.is_empty()).then(|| {
            format!(
                "{}: {}: this engine speaks API {}.{}",
                r.name(),
                ignored.join("; "),
                version.major_version,
                version.minor_version
            )
        })
    }

    async fn self_check(&self, name: &str) -> Result<(), String> {
        self.healthcheck_status(name).await
    }
}

/// Caddy's failure, for `resource`: the host's state, a fault.
/// An error of Caddy's admin API about `resource`'s route: Caddy refusing the change with a
/// 4xx is a verdict on the revision (its `proxy:` asks what Caddy will not do, e.g. listen
/// on an address another process holds), quoting Caddy; no answer or a 5xx is a fault.
fn proxy_err(resource: &str, e: caddy::CaddyError) -> RuntimeError {
    match &e {
        caddy::CaddyError::Refused { status: 400..=499, .. } => RuntimeError::ProxyRefused {
            resource: resource.to_string(),
            detail: format!(
                "{e} — Caddy refuses the route this revision's proxy: asks for; fix proxy: in the desired state (or free what Caddy needs on the host), then push a new revision or run agentctl sync --retry"
            ),
        },
        _ => RuntimeError::Host { resource: resource.to_string(), detail: e.to_string() },
    }
}

fn container_spec(r: &Resource) -> Result<&ContainerSpec, RuntimeError> {
    match &r.spec {
        desired_state_schema::Spec::Container(c) => Ok(c),
        _ => Err(RuntimeError::Unsupported {
            kind: r.kind,
            detail: "the Docker driver runs Container resources only".into(),
        }),
    }
}

/// What a converge prepared for the container it creates.
struct Made<'a> {
    revision: &'a str,
    hash: &'a str,
    image: &'a str,
    image_id: &'a str,
    /// Extra bind mounts (secrets).
    binds: &'a [String],
}

/// Reading the revision from the mirror failed: a fault when the mirror or the disk is to
/// blame, a verdict when the revision lacks what the spec names.
fn source_err(name: &str, e: crate::source::SourceError) -> RuntimeError {
    use crate::fault::Classify;
    if e.is_fault() {
        RuntimeError::Host { resource: name.to_string(), detail: e.to_string() }
    } else {
        RuntimeError::Docker { resource: name.to_string(), detail: e.to_string() }
    }
}

fn stop_secs(spec: &ContainerSpec) -> i32 {
    i32::try_from(spec.stop_timeout.as_std().as_secs()).unwrap_or(i32::MAX)
}

/// `KEY=value` lines; `#` comments and blank lines skipped; `export ` prefixes allowed.
/// An env file's variables, read as compose reads `env_file:` and `.env` (compose-go's
/// dotenv format: quotes, escapes, `#` comments, values built from earlier ones; nothing
/// from the agent's own environment).
pub fn parse_env_file(
    text: &str,
) -> Result<BTreeMap<String, String>, desired_state_schema::compose::dotenv::DotenvError> {
    desired_state_schema::compose::dotenv::parse_with(text, &|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files() {
        let got = parse_env_file(
            "# c\nA=1\nexport B = two\nC=\"quoted value\"  # a comment\nURL=https://${HOST:-h}/x\nD='lit $A'\n",
        );
        let got: Vec<(String, String)> = got.unwrap_or_default().into_iter().collect();
        let want: Vec<(String, String)> =
            [("A", "1"), ("B", "two"), ("C", "quoted value"), ("D", "lit $A"), ("URL", "https://h/x")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
        // A line compose refuses is refused (it used to be skipped without a word).
        assert!(parse_env_file("A=1\nnot a pair\n").is_err());
    }

    /// A data folder of an older agent (one per container) becomes the shared one by rename,
    /// once; another container's own copy is left where it is; nothing is removed.
    #[test]
    fn data_folders_move_to_the_shared_one_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, shared) =
            (dir.path().join("a/stack/data"), dir.path().join("b/stack/data"), dir.path().join("_shared/stack/data"));
        for (d, f) in [(&a, "from-a"), (&b, "from-b")] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("f"), f).unwrap();
        }
        data_folder(&a, &shared).unwrap();
        data_folder(&b, &shared).unwrap();
        assert_eq!(std::fs::read_to_string(shared.join("f")).unwrap(), "from-a");
        assert!(!a.exists(), "moved, not copied");
        assert_eq!(std::fs::read_to_string(b.join("f")).unwrap(), "from-b", "left where it was");
        let fresh = dir.path().join("_shared/other");
        data_folder(&dir.path().join("c/other"), &fresh).unwrap();
        assert!(fresh.is_dir());
    }

    /// Answers recorded from Debian's docker.io 20.10.24 (API 1.41) on this project's CI
    /// machine, with `curl --unix-socket` (docs/reliability.md, "Where text is still read").
    #[test]
    fn engine_answers_are_judged_by_status_first() {
        use EngineJudgement::{Host, Refused};
        let recorded: &[(u16, &str, EngineJudgement)] = &[
            (400, "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/nope\": stat /nope: no such file or directory: unknown", Refused),
            (400, "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/bin\": permission denied: unknown", Refused),
            (400, "invalid mount config for type \"bind\": bind source path does not exist: /does/not/exist", Refused),
            (400, "invalid reference format: repository name must be lowercase", Refused),
            (400, "the working directory 'rel' is invalid, it needs to be an absolute path", Refused),
            (400, "error looking up logging plugin nope: plugin \"nope\" not found", Refused),
            (400, "invalid CapAdd: unknown capability: \"CAP_NOPE\"", Refused),
            (400, "Minimum memory limit allowed is 6MB", Refused),
            (400, "invalid mount path: 'rel' mount path must be absolute", Refused),
            (403, "Pool overlaps with other one on this address space", Refused),
            (404, "create recv: error looking up volume plugin nope: plugin \"nope\" not found", Refused),
            (409, "Conflict. The container name \"/rec1\" is already in use by container \"3c85fc8eb414\". You have to remove (or rename) that container to be able to reuse that name.", Refused),
            (500, "driver failed programming external connectivity on endpoint rec4 (9f2f6f63127d): Error starting userland proxy: listen tcp4 127.0.0.1:28123: bind: address already in use", Host),
            (500, "error gathering device information while adding custom device \"/dev/nope\": no such file or directory", Refused),
            (500, "unable to find user nobody-here: no matching entries in passwd file", Refused),
            (500, "failed to create shim task: OCI runtime create failed: runc create failed: sysctl \"kernel.nope\" is not in a separate kernel namespace: unknown", Refused),
            (500, "could not select device driver \"\" with capabilities: [[gpu]]", Refused),
            (500, "--storage-opt is supported only for overlay over xfs with 'pquota' mount option", Refused),
            (400, "could not get container for nosuch: No such container: nosuch", Refused),
            // A 500 worded in a way the table does not know is the engine's trouble: retried.
            (500, "failed to create task: context deadline exceeded", Host),
            (500, "containerd: connection refused", Host),
            (500, "write /var/lib/docker/containers/x/config.v2.json: no space left on device", Host),
            // Whatever a 4xx says, the engine refused the spec; whatever a 503 says, it is down.
            (400, "no space left on device", Refused),
            (503, "invalid reference format", Host),
        ];
        for (status, message, want) in recorded {
            assert_eq!(judge_engine(*status, message), *want, "{status} {message}");
        }
    }
}
