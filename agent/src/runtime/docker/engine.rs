//! The engine client: one connection to the host's Docker engine, negotiated on first use
//! (an engine that is down now is a fault that clears by itself), and what the agent knows
//! of the engine between looks — the change counter that tells whether the last list still
//! holds, the image ids behind tags, the last exit codes. Every container operation the
//! other parts need (list this host's instances, create, start, hooks, stop and remove,
//! inspect) is one method here, so the parts above share one way of judging the engine's
//! answers (`errors.rs`).
//!
//! Architecture Invariant: an agent touches only containers labelled with its own `host`
//! (`instances`), and a removal never removes a volume (`v: false`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bollard::errors::Error as BollardError;
use bollard::models::HealthStatusEnum;
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use desired_state_schema::{ContainerSpec, Resource};
use futures_util::StreamExt;

use super::errors::{docker_err, is_not_found, unreachable};
use super::hooks;
use super::instance::{Instance, LABEL_HOST, LABEL_MANAGED, LABEL_ONESHOT, LABEL_RESOURCE};
use super::spec::{self, Level, Made};
use crate::runtime::{Liveness, Log, RuntimeError};

/// This agent's connection to the engine, cheap to clone (every field is shared).
#[derive(Clone)]
pub(super) struct Engine {
    /// The client as configured (`DOCKER_HOST` or the default socket), not yet negotiated.
    client: Docker,
    /// The client with the API version both sides speak, once the engine answered.
    negotiated: Arc<tokio::sync::OnceCell<Docker>>,
    /// This agent's `host`: what it labels and the only host's objects it touches.
    pub host: String,
    /// Moves on every event that may change what `observe` lists (a managed container
    /// created, started, stopped, removed, renamed …), on every (re)connect of the feed and
    /// on every change the agent makes: while the feed is live, an unchanged count means the
    /// last list still holds (`changes_if_live`).
    changes: Arc<AtomicU64>,
    /// Set while the engine's event feed (containers and images) is connected: image ids are
    /// then kept between plans and forgotten on each image event.
    pub events_live: Arc<AtomicBool>,
    /// Image ids looked up for spec hashes: many resources share an image, and each reference
    /// is asked once per plan, not per resource — and, while the event feed is live, once
    /// until the next image event (a no-op poll then inspects no image). Applying always asks
    /// the engine afresh.
    image_ids: Arc<Mutex<BTreeMap<String, String>>>,
    /// The last non-zero exit code of each container (from the engine's `die` events and the
    /// gate's looks): a container that restarts reports 0 again while it runs.
    last_exit: Arc<Mutex<HashMap<String, i64>>>,
}

impl Engine {
    /// The local engine (`DOCKER_HOST` or the default socket), for the agent `host`. No
    /// request is made here: the engine may be down now and answer later.
    pub fn new(host: &str) -> Result<Engine, RuntimeError> {
        Ok(Engine {
            client: Docker::connect_with_local_defaults().map_err(unreachable)?,
            negotiated: Default::default(),
            host: host.to_string(),
            changes: Default::default(),
            events_live: Default::default(),
            image_ids: Default::default(),
            last_exit: Default::default(),
        })
    }

    /// The negotiated client; negotiates on first use (a fault while the engine is down).
    pub async fn api(&self) -> Result<&Docker, RuntimeError> {
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

    /// What the engine takes beyond API 1.41 (nothing more before it answered).
    pub fn level(&self) -> Level {
        Level::of(self.negotiated.get().map_or(41, |d| d.client_version().minor_version))
    }

    /// The negotiated API version (major, minor), once the engine answered.
    pub fn api_version(&self) -> Option<(usize, usize)> {
        self.negotiated.get().map(|d| {
            let v = d.client_version();
            (v.major_version, v.minor_version)
        })
    }

    /// Something that `observe` lists may have changed (see `changes`).
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The change count while the event feed is live (`None` when it is not).
    pub fn changes_if_live(&self) -> Option<u64> {
        self.events_live.load(Ordering::SeqCst).then(|| self.changes.load(Ordering::SeqCst))
    }

    /// The id of the local image `image` ("absent" when the engine has none), asked once
    /// while the cache holds (see `image_ids`).
    pub async fn image_id(&self, image: &str) -> Result<String, RuntimeError> {
        if let Some(id) = self.image_ids.lock().ok().and_then(|ids| ids.get(image).cloned()) {
            return Ok(id);
        }
        let id = match self.api().await?.inspect_image(image).await {
            Ok(i) => i.id.unwrap_or_default(),
            Err(e) if is_not_found(&e) => "absent".to_string(),
            Err(e) => return Err(unreachable(e)),
        };
        if let Ok(mut ids) = self.image_ids.lock() {
            ids.insert(image.to_string(), id.clone());
        }
        Ok(id)
    }

    /// This agent's instances (of `resource`, or of every resource), by resource and name.
    pub async fn instances(&self, resource: Option<&str>) -> Result<Vec<Instance>, RuntimeError> {
        let mut filters = HashMap::new();
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(r) = resource {
            labels.push(format!("{LABEL_RESOURCE}={r}"));
        }
        filters.insert("label".to_string(), labels);
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self.api().await?.list_containers(Some(opts)).await.map_err(unreachable)?;
        let mut out: Vec<Instance> = list.into_iter().filter_map(|c| Instance::of(c, &self.host)).collect();
        out.sort_by(|a, b| (&a.resource, &a.name).cmp(&(&b.resource, &b.name)));
        Ok(out)
    }

    /// The name `name` is ours to take: free, or held by a managed container of this host.
    pub async fn claim_name(&self, name: &str) -> Result<(), RuntimeError> {
        match self.api().await?.inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(c) => {
                let labels = c.config.and_then(|cfg| cfg.labels).unwrap_or_default();
                if labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
                    return Err(RuntimeError::NameTaken { name: name.to_string() });
                }
                if let Some(owner) = labels.get(LABEL_HOST).filter(|h| **h != self.host) {
                    return Err(RuntimeError::NameTakenByAgent { name: name.to_string(), host: owner.clone() });
                }
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(docker_err(name, e)),
        }
    }

    /// Start container `id` of resource `name`.
    pub async fn start(&self, name: &str, id: &str) -> Result<(), RuntimeError> {
        self.api()
            .await?
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| docker_err(name, e))
    }

    /// Rename container `id` of resource `name` to `to`.
    pub async fn rename(&self, name: &str, id: &str, to: &str) -> Result<(), RuntimeError> {
        let opts = bollard::query_parameters::RenameContainerOptions { name: to.to_string() };
        self.api().await?.rename_container(id, opts).await.map_err(|e| docker_err(name, e))
    }

    /// Run the `post_start` hooks of `spec` in the container `id`, just started: one that
    /// exits non-zero is a verdict on the revision, with what it printed last.
    pub async fn post_start(
        &self,
        name: &str,
        id: &str,
        spec: &ContainerSpec,
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
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
    pub async fn pre_stop(&self, name: &str, id: &str) {
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
    pub async fn create(
        &self,
        r: &Resource,
        spec: &ContainerSpec,
        made: &Made<'_>,
        as_name: &str,
    ) -> Result<String, RuntimeError> {
        let name = r.name();
        let api = self.api().await?;
        let body = spec::create_body(&self.host, self.level(), r, spec, made)?;
        let opts = CreateContainerOptions { name: Some(as_name.to_string()), ..Default::default() };
        let created = api.create_container(Some(opts), body).await.map_err(|e| docker_err(name, e))?;
        for extra in spec.networks.iter().skip(1) {
            let req = bollard::models::NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: spec::endpoint(extra, &spec.links, None),
            };
            api.connect_network(&extra.name, req).await.map_err(|e| docker_err(name, e))?;
        }
        Ok(created.id)
    }

    /// The exit code the engine keeps for container `name`.
    pub async fn exit_code(&self, name: &str) -> Option<i64> {
        let c = self.api().await.ok()?.inspect_container(name, None::<InspectContainerOptions>).await.ok()?;
        c.state?.exit_code
    }

    /// Stop (after its `pre_stop` hooks) and remove container `id` of `resource`, waiting
    /// `secs`; one already gone is removed.
    pub async fn stop_and_remove(&self, resource: &str, id: &str, secs: i32) -> Result<(), RuntimeError> {
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

    /// Wait (up to 10 s) until the container `name` is gone.
    pub async fn wait_removed(&self, name: &str) {
        let Ok(api) = self.api().await else { return };
        for _ in 0..50 {
            match api.inspect_container(name, None::<InspectContainerOptions>).await {
                Err(e) if is_not_found(&e) => return,
                _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }

    /// Image ids are asked afresh from now on.
    pub fn forget_image_ids(&self) {
        if let Ok(mut ids) = self.image_ids.lock() {
            ids.clear();
        }
    }

    /// A non-zero exit of container `name`, seen in an event or a look.
    pub fn remember_exit(&self, name: &str, code: i64) {
        if let Ok(mut all) = self.last_exit.lock() {
            all.insert(name.to_string(), code);
        }
    }

    /// The last non-zero exit code of container `name`.
    pub fn last_exit(&self, name: &str) -> Option<i64> {
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
    pub async fn tail_logs(&self, id: &str) -> Vec<String> {
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

    /// Why the container `name` is not running now (`None` while it runs, or when the
    /// engine does not say).
    pub async fn down(&self, name: &str) -> Option<String> {
        let c = self.api().await.ok()?.inspect_container(name, None::<InspectContainerOptions>).await.ok()?;
        let state = c.state?;
        if state.restarting == Some(true) {
            Some(format!("container {name} keeps exiting (last exit code {})", state.exit_code.unwrap_or(0)))
        } else if state.running != Some(true) {
            Some(format!("container {name} exited with code {}", state.exit_code.unwrap_or(0)))
        } else {
            None
        }
    }

    /// The loopback port the engine published container port `port` of `id` on.
    pub async fn published_port(&self, name: &str, id: &str, port: u16) -> Result<u16, RuntimeError> {
        let c = self
            .api()
            .await?
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| docker_err(name, e))?;
        let key = format!("{port}/tcp");
        c.network_settings
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove(&key))
            .flatten()
            .into_iter()
            .flatten()
            .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
            .ok_or_else(|| RuntimeError::Docker {
                resource: name.to_string(),
                detail: format!(
                    "the engine published no loopback port for proxy.port {port}: is the container running?"
                ),
            })
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
