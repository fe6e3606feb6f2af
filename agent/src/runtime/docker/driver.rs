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
//!
//! This file is the driver: it wires the parts of this folder into the steps the reconciler
//! asks for (`Driver`) and owns the images it brings (pull or build, `fetch` then
//! `converge`). It defines nothing the parts use; each part owns its data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::errors::Error as BollardError;
use desired_state_schema::{ContainerSpec, Kind, PullPolicy, Resource};
use futures_util::StreamExt;

use super::data;
use super::diagnose::{self, Notes};
use super::engine::Engine;
use super::errors::{being_removed, docker_err, files_err, is_not_found, proxy_err, unreachable};
use super::instance::Instance;
use super::mounts::Mounts;
use super::spec::{builds_first, container_spec, stop_secs, Made};
use super::start_first::{self, Routes};
use super::{events, image, networks};
use crate::plan::{Observed, RunState};
use crate::revision::Revision;
use crate::runtime::{Driver, Liveness, Log, RuntimeError};
use crate::state::Diagnostic;

/// The Docker driver; cheap to clone (every part is shared).
#[derive(Clone)]
pub struct DockerRuntime {
    /// The engine client and what is known of the engine between looks.
    engine: Engine,
    /// What containers read from the revision and the host (env files, secrets, files).
    mounts: Mounts,
    /// The routes of proxied containers in Caddy, and the drains of their old instances.
    routes: Routes,
    /// What a fetch or converge noted for the diagnostics.
    notes: Notes,
    /// Registry credentials (`registries:`, then Docker's `config.json`).
    credentials: image::Credentials,
    /// The images the agent pulled or built (only these are pruned).
    brought: image::Brought,
    /// Per resource, the image `fetch` pulled or built and the revision it was for: the next
    /// `converge` of that resource and revision takes it instead of pulling again (`pull:
    /// always` pulls once per apply, before anything runs); later converges — a drift
    /// repair — pull as before.
    fetched: std::sync::Arc<std::sync::Mutex<HashMap<String, (String, String)>>>,
    /// `prune_images` of the agent config.
    prune_images: bool,
    /// Held while networks and volumes are looked up and created: the steps of a wave run
    /// at once, and two creates of one network name make two networks on older engines.
    objects: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl DockerRuntime {
    /// Connect to the local engine (`DOCKER_HOST` or the default socket) and agree on an API
    /// version both sides speak.
    /// No request is made here: the engine may be down now and answer later.
    pub fn new(
        cfg: &crate::config::LoadedConfig,
        secrets: std::sync::Arc<crate::secrets::Secrets>,
    ) -> Result<DockerRuntime, RuntimeError> {
        if cfg.config.proxy.is_some() && !start_first::listeners_hand_over() {
            tracing::warn!(
                "net.ipv4.tcp_migrate_req is 0: each switch of a route in Caddy may reset a few connections under load; set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1, and in /etc/sysctl.d/; docs/operations.md, \"Zero-downtime replaces\")"
            );
        }
        Ok(DockerRuntime {
            engine: Engine::new(&cfg.host)?,
            mounts: Mounts::new(cfg, secrets),
            routes: Routes::new(cfg),
            notes: Notes::default(),
            credentials: image::Credentials::new(cfg.config.registries.clone()),
            brought: image::Brought::new(&cfg.config.state_dir),
            fetched: Default::default(),
            prune_images: cfg.config.prune_images,
            objects: Default::default(),
        })
    }

    /// The engine's version and API version, for logs and `status`.
    pub async fn version(&self) -> String {
        self.engine.version().await
    }

    /// Before anything is applied: what a proxied container needs of the host is there
    /// (`Routes::preflight`: else the revision fails untouched), the engine takes what the
    /// spec asks, and every `.age` file the spec names decrypts with this host's identities
    /// (else the revision is invalid, naming the file and its recipients).
    pub async fn preflight(&self, name: &str, spec: &ContainerSpec, revision: &Revision) -> Result<(), RuntimeError> {
        if let Some(mac) = &spec.mac_address {
            self.engine.api().await?; // negotiated: what the engine speaks
            if !self.engine.level().mac_address {
                return Err(RuntimeError::HostLacks {
                    resource: name.to_string(),
                    detail: format!("mac_address {mac}: this engine ({}) reads a container's MAC address only from a container-level field that API 1.44 replaced and this agent's engine client no longer sends: upgrade the engine to Docker 25 or later, or remove mac_address from the desired state", self.version().await),
                });
            }
        }
        if let Some(proxy) = &spec.proxy {
            self.routes.preflight(name, proxy).await?;
        }
        self.mounts.check_decrypts(name, spec, revision).await
    }

    /// Every managed container, grouped by resource.
    pub async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        if self.engine.changes_if_live().is_none() {
            self.engine.forget_image_ids(); // a new plan starts: without events, image ids are asked afresh
        }
        let mut by_resource: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for i in self.engine.instances(None).await? {
            by_resource.entry(i.resource.clone()).or_default().push(i);
        }
        let routes = self.routes.check(&by_resource).await?;
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
                        .saturating_sub(1 + inst.iter().filter(|i| self.routes.drains.contains(&i.id)).count()),
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
        revision: &Revision,
    ) -> Result<(String, Option<String>), RuntimeError> {
        match &spec.build {
            Some(b) if builds_first(spec) => {
                let tree = self.mounts.tree(name, revision, &b.context).await?;
                Ok((format!("driftless-build/{name}:{tree}"), Some(tree)))
            }
            // No build, or one only when the image cannot be pulled: the image is what runs.
            _ => Ok((image::normalize(&spec.image), None)),
        }
    }

    /// Host-side inputs of the spec hash: each env file's digest, each secret's digest, the
    /// build context's tree and the local image's id.
    pub async fn inputs(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &Revision,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let (image, _) = self.image_of(name, spec, revision).await?;
        let image_id = self.engine.image_id(&image).await?;
        self.mounts.inputs(name, spec, revision, &image_id).await
    }

    /// Make sure the image is here (built, or pulled per `pull`); its reference and id.
    async fn ensure_image(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &Revision,
        log: Log<'_>,
    ) -> Result<(String, String), RuntimeError> {
        let (image, tree) = self.image_of(name, spec, revision).await?;
        let api = self.engine.api().await?;
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
                    let tree = self.mounts.tree(name, revision, &b.context).await?;
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
        revision: &Revision,
        tag: &str,
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let api = self.engine.api().await?;
        let context = b.context.clone();
        let export = revision.read(move |files| files.export(&context)).await.map_err(|e| files_err(name, e))?;
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
        let tee = |line: String| {
            self.notes.push_line(name, line.clone());
            log(line);
        };
        image::build(api, &self.credentials, name, b, &export, tag, &tee).await
    }

    /// Make resource `r` run `spec` from `revision` (see the module doc for the steps).
    pub async fn converge(
        &self,
        r: &Resource,
        spec: &ContainerSpec,
        revision: &Revision,
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let name = r.name();
        self.notes.clear(name);
        let (image, image_id) = self.ensure_image(name, spec, revision, log).await?;
        let inputs = self.mounts.inputs(name, spec, revision, &image_id).await?;
        let hash = crate::plan::spec_hash(r, &inputs);
        networks::ensure(&self.engine, &self.objects, name, spec).await?;
        let mut binds = self.mounts.secret_binds(name, spec, revision).await?;
        binds.extend(self.mounts.file_binds(name, spec, revision).await?);
        let env_files = self.mounts.env_files(name, spec, revision).await?;
        let made = Made {
            revision: revision.as_str(),
            hash: &hash,
            image: &image,
            image_id: &image_id,
            binds: &binds,
            env_files: &env_files,
        };

        // A start-first converge and the end of a drain take turns (`drain.rs`): the
        // instances are listed after any drain that ended, and none ends during the converge.
        let start_first = spec.update == desired_state_schema::UpdateOrder::StartFirst && !spec.oneshot;
        let _turn = match start_first {
            true => Some(self.routes.drains.turn().await),
            false => None,
        };
        let instances = self.engine.instances(Some(name)).await?;
        // The name must be ours (or free): one of our instances holds it, or nothing does.
        if !instances.iter().any(|i| i.name == name) {
            self.engine.claim_name(name).await?;
        }

        if spec.oneshot {
            return self.run_oneshot(r, spec, &made, &instances, log).await;
        }
        if start_first {
            return self.routes.converge(&self.engine, &self.notes, r, spec, &made, &instances, log).await;
        }
        // Traffic no longer comes through Caddy: its route goes before the container it named.
        self.routes.drop_route(name, &instances).await?;
        let keep = instances.iter().filter(|i| i.hash == hash).max_by_key(|i| (i.name == name, i.running)).cloned();
        let keep = match keep {
            Some(k) => k,
            None => {
                // With nothing to keep running meanwhile, the new container takes the name at
                // once; otherwise it is made beside the old one and renamed after the stop.
                let next = if instances.is_empty() { name.to_string() } else { format!("{name}-next") };
                if let Some(stale) = instances.iter().find(|i| i.name == next) {
                    self.engine.stop_and_remove(name, &stale.id, stop_secs(spec)).await?;
                }
                crate::failpoint::hit("before-create").await;
                let id = self.engine.create(r, spec, &made, &next).await?;
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
            self.engine.stop_and_remove(name, &other.id, stop_secs(spec)).await?;
        }
        crate::failpoint::hit("after-stop-old").await;
        if keep.name != name {
            self.engine.rename(name, &keep.id, name).await?;
        }
        if !keep.running {
            self.engine.start(name, &keep.id).await?;
            self.engine.post_start(name, &keep.id, spec, log).await?;
        }
        Ok(())
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
                self.engine.stop_and_remove(name, &other.id, stop_secs(spec)).await?;
            }
            return Ok(());
        }
        for old in instances {
            self.engine.stop_and_remove(name, &old.id, stop_secs(spec)).await?;
        }
        let id = self.engine.create(r, spec, made, name).await?;
        self.engine.start(name, &id).await?;
        self.engine.post_start(name, &id, spec, log).await?;
        let api = self.engine.api().await?;
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
                    None => break self.engine.exit_code(name).await.unwrap_or(-1),
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

    /// Stop and remove every instance of a resource; its volumes stay.
    pub async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let instances = self.engine.instances(Some(name)).await?;
        self.routes.drop_route(name, &instances).await?;
        for i in instances {
            // The spec is gone; the container's own StopTimeout (set at create) applies.
            self.engine.stop_and_remove(name, &i.id, i.stop_timeout).await?;
        }
        Ok(())
    }

    /// After a commit: remove the managed networks no container uses any more, and (with
    /// `prune_images`) the images the agent brought that `keep` does not use.
    pub async fn prune(&self, keep: &[(&Resource, &Revision)]) -> Result<(), RuntimeError> {
        let resources: Vec<&Resource> = keep.iter().map(|(r, _)| *r).collect();
        networks::prune(&self.engine, &resources).await?;
        let api = self.engine.api().await?;
        if self.prune_images {
            let mut images = BTreeSet::new();
            for (r, revision) in keep {
                if let desired_state_schema::Spec::Container(c) = &r.spec {
                    // What it runs at the revision it is kept for (a built image's tag names
                    // its context's tree at that revision). An image a container still uses
                    // is never removed: the engine refuses without `force`.
                    if let Ok((image, _)) = self.image_of(r.name(), c, revision).await {
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
}

#[async_trait::async_trait]
impl Driver for DockerRuntime {
    fn kind(&self) -> Kind {
        Kind::Container
    }

    fn parallel(&self) -> bool {
        true
    }

    async fn reachable(&self) -> Result<(), RuntimeError> {
        self.engine.api().await?.ping().await.map(|_| ()).map_err(unreachable)?;
        if self.routes.proxied.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(c) = &self.routes.caddy {
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
        self.engine.changed();
        let result = self.routes.retire_old(&self.engine, r.name(), spec).await;
        self.engine.changed();
        result
    }

    async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        DockerRuntime::observe(self).await
    }

    async fn inputs(&self, r: &Resource, revision: &Revision) -> Result<BTreeMap<String, String>, RuntimeError> {
        DockerRuntime::inputs(self, r.name(), container_spec(r)?, revision).await
    }

    /// A container someone removes while the agent puts it back (`docker rm -f` racing a drift
    /// repair) cannot be started: once the removal is done, the converge runs again.
    async fn converge(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        let spec = container_spec(r)?;
        self.engine.changed();
        let result = match DockerRuntime::converge(self, r, spec, revision, log).await {
            Err(e) if being_removed(&e) => {
                tracing::info!("{}: removed while the agent converged it; once it is gone, again", r.name());
                self.engine.wait_removed(r.name()).await;
                DockerRuntime::converge(self, r, spec, revision, log).await
            }
            other => other,
        };
        // The engine's events for what it just did may come later than the next look.
        self.engine.changed();
        result
    }

    async fn diagnose(&self, r: &Resource) -> Option<Diagnostic> {
        diagnose::diagnose(&self.engine, &self.notes, r.name()).await
    }

    /// The engine's restart of the container (converged first if it is not as it should be).
    async fn restart(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        Driver::converge(self, r, revision, log).await?;
        self.engine.changed();
        let opts = bollard::query_parameters::RestartContainerOptions {
            t: Some(stop_secs(container_spec(r)?)),
            ..Default::default()
        };
        // As docker compose restarts a service (`restart.go`): pre_stop, restart, post_start.
        self.engine.pre_stop(r.name(), r.name()).await;
        let api = self.engine.api().await?;
        let result = api.restart_container(r.name(), Some(opts)).await.map_err(|e| docker_err(r.name(), e));
        self.engine.changed();
        result?;
        self.engine.post_start(r.name(), r.name(), container_spec(r)?, log).await
    }

    /// Pull or build the image (what a later `converge` of the same revision then reuses).
    async fn fetch(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        let spec = container_spec(r)?;
        self.notes.clear(r.name());
        networks::check_external(&self.engine, r.name(), spec).await?;
        match self.ensure_image(r.name(), spec, revision, log).await {
            Ok((image, _)) => {
                if let Ok(mut fetched) = self.fetched.lock() {
                    fetched.insert(r.name().to_string(), (image, revision.to_string()));
                }
                // A build that succeeded is no diagnostic (its output went to the log).
                self.notes.forget_output(r.name());
                Ok(())
            }
            Err(e) => {
                let state = if spec.build.is_some() { "image build failed" } else { "image pull failed" };
                self.notes.fetch_failed(r.name(), state, &e.to_string());
                Err(e)
            }
        }
    }

    async fn preflight(&self, r: &Resource, revision: &Revision) -> Result<(), RuntimeError> {
        DockerRuntime::preflight(self, r.name(), container_spec(r)?, revision).await
    }

    async fn prune(&self, keep: &[(&Resource, &Revision)]) -> Result<(), RuntimeError> {
        DockerRuntime::prune(self, keep).await
    }

    /// The engine's event stream, filtered to managed containers' die, stop, kill, destroy,
    /// rename and health changes (oom, restart and pause too); re-established with backoff
    /// after the engine goes away (a fault), with a change reported on each reconnect.
    fn subscribe(
        &self,
        on_change: std::sync::Arc<dyn Fn(String) + Send + Sync>,
        shutdown: crate::listen::Shutdown,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.routes.drains.resume(&self.engine);
        if let Some(caddy) = self.routes.caddy.clone() {
            // Caddy sends no events: a restart that forgot the routes is seen here.
            let proxied = self.routes.proxied.clone();
            tokio::spawn(start_first::watch_caddy(caddy, proxied, on_change.clone(), shutdown.clone()));
        }
        Some(events::feed(self.engine.clone(), on_change, shutdown))
    }

    /// Its data folders (`files` entries the revision does not hold) with `snapshot`: the
    /// agent copies them itself, since they are folders of its own under `state_dir`.
    fn data_sets(&self, r: &Resource) -> Vec<crate::snapshots::DataSet> {
        let Ok(spec) = container_spec(r) else { return Vec::new() };
        spec.files
            .iter()
            .filter_map(|m| {
                let s = m.snapshot.as_ref()?;
                let (root, rel) = self.mounts.data_folder(&m.source);
                Some(crate::snapshots::DataSet {
                    name: format!("{}.data", rel.replace('/', "_")),
                    keep: s.keep,
                    consistency: s.consistency.clone(),
                    place: crate::snapshots::Place::Files { root, entries: vec![rel] },
                })
            })
            .collect()
    }

    async fn data_holders(&self, volume: &str) -> Result<Vec<String>, RuntimeError> {
        data::holders(&self.engine, volume).await
    }

    async fn data_size(&self, volume: &str) -> Result<u64, RuntimeError> {
        data::size(&self.engine, volume).await
    }

    async fn snapshot(
        &self,
        volume: &str,
        consistency: &desired_state_schema::Consistency,
        holders: &[String],
        into: &std::path::Path,
    ) -> Result<Vec<crate::snapshots::ContentFile>, RuntimeError> {
        data::snapshot(&self.engine, volume, consistency, holders, into).await
    }

    async fn restore(
        &self,
        volume: &str,
        manifest: &crate::snapshots::Manifest,
        from: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        data::restore(&self.engine, volume, manifest, from).await
    }

    async fn release(&self, holders: &[String]) -> Result<(), RuntimeError> {
        data::release(&self.engine, holders).await
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
        self.engine.changed();
        let result = DockerRuntime::remove(self, name).await;
        self.engine.changed();
        result
    }

    fn observation_token(&self) -> Option<u64> {
        if self.routes.proxied.load(std::sync::atomic::Ordering::SeqCst) {
            return None; // routes in Caddy change without an engine event
        }
        self.engine.changes_if_live()
    }

    fn settle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(300)
    }

    async fn watch(&self, name: &str) -> Liveness {
        self.engine.watch(name).await
    }

    /// What the engine of this host cannot honour of the spec, said in `status` and the
    /// history (as compose names it once): `healthcheck.start_interval` before API 1.44.
    fn describe(&self, r: &Resource) -> Option<String> {
        let c = container_spec(r).ok()?;
        let (major, minor) = self.engine.api_version()?;
        let level = self.engine.level();
        let mut ignored = Vec::new();
        if c.healthcheck.as_ref().is_some_and(|h| h.start_interval.is_some()) && !level.start_interval {
            ignored.push("healthcheck.start_interval ignored (it needs API 1.44, Docker 25+)");
        }
        if !c.annotations.is_empty() && !level.annotations {
            ignored.push("annotations not passed (they need API 1.43, Docker 24+)");
        }
        (!ignored.is_empty())
            .then(|| format!("{}: {}: this engine speaks API {}.{}", r.name(), ignored.join("; "), major, minor))
    }

    async fn self_check(&self, name: &str) -> Result<(), String> {
        self.engine.healthcheck_status(name).await
    }
}
