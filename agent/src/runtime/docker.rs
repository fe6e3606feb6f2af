//! The Docker runtime (bollard; the API version is negotiated, so Debian's docker.io at API
//! 1.41 works). Owns the containers labelled `driftless.managed=true` and nothing else.
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

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, HealthStatusEnum, HostConfig, NetworkCreateRequest, PortBinding,
    RestartPolicy as DockerRestart, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
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

pub const LABEL_MANAGED: &str = "driftless.managed";
pub const LABEL_RESOURCE: &str = "driftless.resource";
pub const LABEL_REVISION: &str = "driftless.revision";
pub const LABEL_SPEC_HASH: &str = "driftless.spec-hash";
pub const LABEL_IMAGE_ID: &str = "driftless.image-id";
/// The stop timeout, so that removing a resource whose spec is gone still honours it.
pub const LABEL_STOP_TIMEOUT: &str = "driftless.stop-timeout";

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
}

#[derive(Clone)]
pub struct DockerRuntime {
    /// The client as configured (`DOCKER_HOST` or the default socket), not yet negotiated.
    client: Docker,
    /// The client with the API version both sides speak, once the engine answered.
    negotiated: std::sync::Arc<tokio::sync::OnceCell<Docker>>,
    /// Image ids looked up for spec hashes since the last `observe` (one plan): many
    /// resources share an image, and each reference is asked once per plan, not per resource.
    /// Applying always asks the engine afresh.
    image_ids: std::sync::Arc<std::sync::Mutex<BTreeMap<String, String>>>,
}

fn unreachable(e: BollardError) -> RuntimeError {
    RuntimeError::DockerUnreachable { detail: e.to_string() }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

/// An engine error about `resource`: the engine unreachable (a transport error) and host
/// conditions (a port taken, the disk full: `fault::text_is_fault`) are faults; the engine
/// refusing what the spec asks for is a verdict.
fn docker_err(resource: &str, e: BollardError) -> RuntimeError {
    match &e {
        BollardError::DockerResponseServerError { message, .. } => {
            if crate::fault::text_is_fault(message) {
                RuntimeError::Engine { resource: resource.to_string(), detail: message.clone() }
            } else {
                RuntimeError::Docker { resource: resource.to_string(), detail: message.clone() }
            }
        }
        _ if is_transport(&e) => unreachable(e),
        other => RuntimeError::Docker { resource: resource.to_string(), detail: other.to_string() },
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
    pub fn new() -> Result<DockerRuntime, RuntimeError> {
        let client = Docker::connect_with_local_defaults().map_err(unreachable)?;
        Ok(DockerRuntime { client, negotiated: Default::default(), image_ids: Default::default() })
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
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            out.push(Instance {
                resource: res.clone(),
                id: c.id.unwrap_or_default(),
                name,
                hash: labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default(),
                revision: labels.get(LABEL_REVISION).cloned().unwrap_or_default(),
                running: matches!(c.state, Some(bollard::models::ContainerSummaryStateEnum::RUNNING)),
                stop_timeout: labels.get(LABEL_STOP_TIMEOUT).and_then(|t| t.parse().ok()).unwrap_or(10),
            });
        }
        out.sort_by(|a, b| (&a.resource, &a.name).cmp(&(&b.resource, &b.name)));
        Ok(out)
    }

    /// Every managed container, grouped by resource.
    pub async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        if let Ok(mut ids) = self.image_ids.lock() {
            ids.clear(); // a new plan starts: image ids are asked afresh
        }
        let mut by_resource: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for i in self.instances(None).await? {
            by_resource.entry(i.resource.clone()).or_default().push(i);
        }
        Ok(by_resource
            .into_iter()
            .map(|(res, inst)| {
                let primary = inst.iter().find(|i| i.name == res);
                let state = match primary {
                    Some(p) if p.running => RunState::Running,
                    _ => RunState::NotRunning,
                };
                let p = primary.or(inst.first());
                Observed {
                    kind: Kind::Container,
                    name: res.clone(),
                    spec_hash: p.map(|p| p.hash.clone()).unwrap_or_default(),
                    revision: p.map(|p| p.revision.clone()).unwrap_or_default(),
                    state,
                    stray_instances: inst.len().saturating_sub(1),
                }
            })
            .collect())
    }

    /// Host-side inputs of the spec hash: each env file's digest and the local image's id.
    pub async fn inputs(&self, name: &str, spec: &ContainerSpec) -> Result<BTreeMap<String, String>, RuntimeError> {
        let cached = self.image_ids.lock().ok().and_then(|ids| ids.get(&spec.image).cloned());
        let image_id = match cached {
            Some(id) => id,
            None => {
                let id = match self.api().await?.inspect_image(&spec.image).await {
                    Ok(i) => i.id.unwrap_or_default(),
                    Err(e) if is_not_found(&e) => "absent".to_string(),
                    Err(e) => return Err(unreachable(e)),
                };
                if let Ok(mut ids) = self.image_ids.lock() {
                    ids.insert(spec.image.clone(), id.clone());
                }
                id
            }
        };
        self.inputs_for(name, spec, &image_id).await
    }

    /// The inputs with the image id already known.
    async fn inputs_for(
        &self,
        name: &str,
        spec: &ContainerSpec,
        image_id: &str,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let mut out = BTreeMap::new();
        for path in &spec.env_files {
            let bytes = tokio::fs::read(path).await.map_err(|e| RuntimeError::EnvFile {
                resource: name.to_string(),
                path: path.clone(),
                detail: e.to_string(),
            })?;
            out.insert(format!("env_file:{path}"), format!("{:x}", Sha256::digest(&bytes)));
        }
        out.insert("image_id".to_string(), image_id.to_string());
        Ok(out)
    }

    async fn ensure_image(&self, name: &str, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let present = match self.api().await?.inspect_image(&spec.image).await {
            Ok(i) => Some(i.id.unwrap_or_default()),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(unreachable(e)),
        };
        let pull = match (spec.pull, &present) {
            (PullPolicy::Always, _) => true,
            (PullPolicy::IfNotPresent, None) => true,
            (PullPolicy::Never, None) => return Err(RuntimeError::ImageMissing { image: spec.image.clone() }),
            _ => false,
        };
        if let (false, Some(id)) = (pull, present) {
            return Ok(id);
        }
        {
            let opts = CreateImageOptions { from_image: Some(spec.image.clone()), ..Default::default() };
            let mut stream = self.api().await?.create_image(Some(opts), None, None);
            while let Some(item) = stream.next().await {
                crate::sdnotify::progress(); // a pull that streams is progress
                if let Err(e) = item {
                    return Err(RuntimeError::Pull { image: spec.image.clone(), detail: e.to_string() });
                }
            }
        }
        match self.api().await?.inspect_image(&spec.image).await {
            Ok(i) => Ok(i.id.unwrap_or_default()),
            Err(e) => Err(docker_err(name, e)),
        }
    }

    async fn ensure_networks(&self, name: &str, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        for net in &spec.networks {
            match self.api().await?.inspect_network(net, None::<bollard::query_parameters::InspectNetworkOptions>).await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {
                    let mut labels = HashMap::new();
                    labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
                    let req = NetworkCreateRequest { name: net.clone(), labels: Some(labels), ..Default::default() };
                    self.api().await?.create_network(req).await.map_err(|e| docker_err(name, e))?;
                }
                Err(e) => return Err(docker_err(name, e)),
            }
        }
        Ok(())
    }

    /// Make resource `r` run `spec` from `revision` (see the module doc for the steps).
    pub async fn converge(&self, r: &Resource, spec: &ContainerSpec, revision: &str) -> Result<(), RuntimeError> {
        let name = r.name();
        let image_id = self.ensure_image(name, spec).await?;
        let inputs = self.inputs_for(name, spec, &image_id).await?;
        let hash = crate::plan::spec_hash(r, &inputs);
        self.ensure_networks(name, spec).await?;

        let instances = self.instances(Some(name)).await?;
        // The name must be ours (or free): one of our instances holds it, or nothing does.
        if !instances.iter().any(|i| i.name == name) {
            match self.api().await?.inspect_container(name, None::<InspectContainerOptions>).await {
                Ok(c) => {
                    let managed = c
                        .config
                        .and_then(|cfg| cfg.labels)
                        .is_some_and(|l| l.get(LABEL_MANAGED).map(String::as_str) == Some("true"));
                    if !managed {
                        return Err(RuntimeError::NameTaken { name: name.to_string() });
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(docker_err(name, e)),
            }
        }

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
                crate::failpoint::hit("before-create");
                let body = self.create_body(r, spec, revision, &hash, &image_id).await?;
                let opts = CreateContainerOptions { name: Some(next.clone()), ..Default::default() };
                let created =
                    self.api().await?.create_container(Some(opts), body).await.map_err(|e| docker_err(name, e))?;
                for extra in spec.networks.iter().skip(1) {
                    let req =
                        bollard::models::NetworkConnectRequest { container: created.id.clone(), ..Default::default() };
                    self.api().await?.connect_network(extra, req).await.map_err(|e| docker_err(name, e))?;
                }
                Instance {
                    resource: name.to_string(),
                    id: created.id,
                    name: next,
                    hash: hash.clone(),
                    revision: revision.to_string(),
                    running: false,
                    stop_timeout: stop_secs(spec),
                }
            }
        };
        for other in instances.iter().filter(|i| i.id != keep.id) {
            self.stop_and_remove(name, &other.id, stop_secs(spec)).await?;
        }
        crate::failpoint::hit("after-stop-old");
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
        }
        Ok(())
    }

    async fn create_body(
        &self,
        r: &Resource,
        spec: &ContainerSpec,
        revision: &str,
        hash: &str,
        image_id: &str,
    ) -> Result<ContainerCreateBody, RuntimeError> {
        let name = r.name();
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for path in &spec.env_files {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| RuntimeError::EnvFile {
                resource: name.to_string(),
                path: path.clone(),
                detail: e.to_string(),
            })?;
            for (k, v) in parse_env_file(&text) {
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
        let restart = match spec.restart {
            RestartPolicy::No => DockerRestart { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None },
            RestartPolicy::Always => {
                DockerRestart { name: Some(RestartPolicyNameEnum::ALWAYS), maximum_retry_count: None }
            }
            RestartPolicy::UnlessStopped => {
                DockerRestart { name: Some(RestartPolicyNameEnum::UNLESS_STOPPED), maximum_retry_count: None }
            }
            RestartPolicy::OnFailure(n) => {
                DockerRestart { name: Some(RestartPolicyNameEnum::ON_FAILURE), maximum_retry_count: n.map(i64::from) }
            }
        };
        let mut labels = HashMap::new();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_RESOURCE.to_string(), name.to_string());
        labels.insert(LABEL_REVISION.to_string(), revision.to_string());
        labels.insert(LABEL_SPEC_HASH.to_string(), hash.to_string());
        labels.insert(LABEL_IMAGE_ID.to_string(), image_id.to_string());
        labels.insert(LABEL_STOP_TIMEOUT.to_string(), stop_secs(spec).to_string());
        Ok(ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            stop_timeout: Some(i64::from(stop_secs(spec))),
            host_config: Some(HostConfig {
                binds: (!spec.volumes.is_empty()).then(|| spec.volumes.clone()),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                restart_policy: Some(restart),
                network_mode: spec.networks.first().cloned(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn stop_and_remove(&self, resource: &str, id: &str, secs: i32) -> Result<(), RuntimeError> {
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
        for i in self.instances(Some(name)).await? {
            // The spec is gone; the container's own StopTimeout (set at create) applies.
            self.stop_and_remove(name, &i.id, i.stop_timeout).await?;
        }
        Ok(())
    }

    /// During the gate: has the container exited or restarted?
    pub async fn watch(&self, name: &str) -> Liveness {
        let Ok(api) = self.api().await else { return Liveness::Alive }; // a fault: the gate's checks decide
        match api.inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(c) => {
                let state = c.state.unwrap_or_default();
                let restarts = c.restart_count.unwrap_or(0);
                if state.restarting == Some(true) || restarts > 0 {
                    let code = state
                        .exit_code
                        .filter(|c| *c != 0)
                        .map(|c| format!(", last exit code {c}"))
                        .unwrap_or_default();
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
        self.api().await?.ping().await.map(|_| ()).map_err(unreachable)
    }

    async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        DockerRuntime::observe(self).await
    }

    async fn inputs(&self, r: &Resource, _revision: &Revision) -> Result<BTreeMap<String, String>, RuntimeError> {
        DockerRuntime::inputs(self, r.name(), container_spec(r)?).await
    }

    async fn converge(&self, r: &Resource, revision: &Revision, _log: Log<'_>) -> Result<(), RuntimeError> {
        DockerRuntime::converge(self, r, container_spec(r)?, revision.as_str()).await
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        DockerRuntime::remove(self, name).await
    }

    fn settle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(300)
    }

    async fn watch(&self, name: &str) -> Liveness {
        DockerRuntime::watch(self, name).await
    }

    async fn self_check(&self, name: &str) -> Result<(), String> {
        self.healthcheck_status(name).await
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

fn stop_secs(spec: &ContainerSpec) -> i32 {
    i32::try_from(spec.stop_timeout.as_std().as_secs()).unwrap_or(i32::MAX)
}

/// `KEY=value` lines; `#` comments and blank lines skipped; `export ` prefixes allowed.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files() {
        let got = parse_env_file("# c\nA=1\nexport B = two\nC=\"quoted value\"\n\nnot a pair\n");
        assert_eq!(
            got,
            [("A".into(), "1".into()), ("B".into(), "two".into()), ("C".into(), "quoted value".into())].to_vec()
        );
    }
}
