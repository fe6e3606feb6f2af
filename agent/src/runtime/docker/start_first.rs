//! Start-first replaces (`update: start-first`) and the routes of proxied containers
//! (PRODUCT.md "Zero-downtime replaces"). The sequence of one converge:
//!
//! 1. keep the instance that already has the desired spec, else create one beside the old
//!    (named `web-<hash>`; the old one keeps the name `web` and keeps serving);
//! 2. start it; with `proxy`, probe it on its own loopback port at `proxy.path` until it
//!    answers 2xx — a new container that never does is removed, and the old one never
//!    stopped serving;
//! 3. switch the route in Caddy to it (one config change);
//! 4. it takes the name `web`; the old one, renamed `web-old-<id>`, runs on.
//!
//! The reconciler then gates the resource; `retire_old` (the driver's commit) stops every
//! other instance, after `drain` by a task that does not hold up the reconciler
//! (`drain.rs`). A revert converges the last good spec the same way, which finds the old
//! instance still running and switches back to it. A crash between any two
//! steps leaves instances and a route that the next converge sorts out (the journal makes
//! it run): the instance with the desired spec serves, behind the route, under the name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use desired_state_schema::{ContainerSpec, Resource};

use super::diagnose::Notes;
use super::engine::Engine;
use super::errors::proxy_err;
use super::instance::Instance;
use super::spec::{stop_secs, Made};
use super::{caddy, drain};
use crate::revision::short; // the first 12 characters, for ids and hashes in instance names
use crate::runtime::{Log, RuntimeError};

/// Whether the kernel hands the connections queued on a closing listener to another one of
/// its `SO_REUSEPORT` group (`net.ipv4.tcp_migrate_req`, Linux 5.14+). Caddy applies every
/// config change by opening new listeners beside the old ones and closing the old: without
/// it, each switch resets the few connections that wait in an old listener's queue
/// (measured: 113 of 134,324 requests over 60 changes at about 2,200 requests/s; none with it).
pub(super) fn listeners_hand_over() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").map_or(true, |v| v.trim() != "0")
}

/// The routes of proxied containers in the host's Caddy, and the drains of their old
/// instances; cheap to clone (shared).
#[derive(Clone)]
pub(super) struct Routes {
    /// The host's Caddy (`proxy.caddy_admin`), for proxied containers.
    pub caddy: Option<caddy::Caddy>,
    /// How long a start-first container may take to answer its `proxy.path` (the agent
    /// config's `health.timeout`), and how often it is asked.
    probe: (Duration, Duration),
    /// Resources whose routes the last `check` looked at: while there are any, every poll
    /// looks (a Caddy restart forgets routes and sends no event).
    pub proxied: Arc<AtomicBool>,
    /// Old instances of start-first containers that drain before they are stopped, by a
    /// task of their own (`drain.rs`).
    pub drains: drain::Drains,
}

impl Routes {
    /// The routes of an agent with `cfg`.
    pub fn new(cfg: &crate::config::LoadedConfig) -> Routes {
        Routes {
            caddy: cfg
                .config
                .proxy
                .as_ref()
                .and_then(|p| crate::config::AdminEndpoint::parse(&p.caddy_admin).ok())
                .map(caddy::Caddy::new),
            probe: (cfg.config.health.timeout.as_std(), cfg.config.health.interval.as_std()),
            proxied: Default::default(),
            drains: drain::Drains::load(&cfg.config.state_dir),
        }
    }

    /// What a proxied container needs of the host, checked before anything is touched
    /// (verdicts on the revision, PRODUCT.md behaviour 10): the agent drives a Caddy
    /// (`proxy.caddy_admin`), and the address Caddy will listen on for it — `listen`, or
    /// `:443` for a `hosts`-only route when Caddy has no server there yet — is Caddy's
    /// already or free, not held by another process (asked of the kernel: `EADDRINUSE`).
    /// Caddy not answering is left to the converge (a fault there).
    pub async fn preflight(&self, name: &str, proxy: &desired_state_schema::ProxySpec) -> Result<(), RuntimeError> {
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

    /// Converge a start-first container (see the module doc). One piece: the steps of the
    /// module doc in their order, each undoing what the one before made when it fails.
    #[allow(clippy::too_many_arguments)] // the converge's own inputs, each used once
    pub async fn converge(
        &self,
        engine: &Engine,
        notes: &Notes,
        r: &Resource,
        spec: &ContainerSpec,
        made: &Made<'_>,
        instances: &[Instance],
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let name = r.name();
        let caddy = match (&spec.proxy, &self.caddy) {
            // The preflight refuses this before anything is touched; a revert to a revision
            // that asked it (applied under another config) meets it here, as the same verdict.
            (Some(p), None) => {
                self.preflight(name, p).await?;
                None
            }
            (Some(p), Some(c)) => Some((p, c)),
            _ => None,
        };
        let keep = instances.iter().filter(|i| i.hash == made.hash).max_by_key(|i| (i.running, i.name == name));
        let (id, as_name, fresh, running) = match keep {
            Some(k) => (k.id.clone(), k.name.clone(), false, k.running),
            None => {
                let as_name = if instances.iter().any(|i| i.name == name) {
                    format!("{name}-{}", short(made.hash))
                } else {
                    name.to_string()
                };
                crate::failpoint::hit("before-create").await;
                let id = engine.create(r, spec, made, &as_name).await?;
                (id, as_name, true, false)
            }
        };
        if !running {
            engine.start(name, &id).await?;
            if fresh && as_name != name {
                log(format!("{name}: started the new container {as_name} beside the old one"));
            }
            if let Err(e) = engine.post_start(name, &id, spec, log).await {
                if fresh && as_name != name {
                    // Before any traffic reached it: the old container keeps serving.
                    engine.stop_and_remove(name, &id, stop_secs(spec)).await?;
                }
                return Err(e);
            }
        }
        match caddy {
            Some((proxy, caddy)) => {
                let answered = match engine.published_port(name, &id, proxy.port).await {
                    Ok(port) => {
                        let dial = caddy::dial(port);
                        self.probe_until(engine, &as_name, fresh, &dial, &proxy.path).await.map(|()| dial)
                    }
                    Err(e) => Err(e.to_string()),
                };
                let dial = match answered {
                    Ok(d) => d,
                    Err(why) => {
                        if fresh {
                            // Its logs say why; the diagnostic of the revision keeps them.
                            notes.keep_output(name, engine.tail_logs(&id).await);
                            notes.fetch_failed(name, "never answered; removed (the old container kept serving)", &why);
                            engine.stop_and_remove(name, &id, stop_secs(spec)).await?;
                        }
                        let kept = if instances.iter().any(|i| i.running) {
                            "; it was removed before any traffic reached it, and the old container kept serving"
                        } else if fresh {
                            "; it was removed"
                        } else {
                            ""
                        };
                        return Err(RuntimeError::Docker {
                            resource: name.to_string(),
                            detail: format!(
                                "the new container never answered GET {} with 2xx: {why}{kept}",
                                proxy.path
                            ),
                        });
                    }
                };
                crate::failpoint::hit("before-switch").await;
                caddy.switch(name, proxy, &dial).await.map_err(|e| proxy_err(name, e))?;
                log(format!("{name}: traffic switched to {as_name} ({dial})"));
                crate::failpoint::hit("after-switch").await;
            }
            None => self.drop_route(name, instances).await?,
        }
        // The serving instance takes the resource's name; the one that held it runs on under
        // another until the commit retires it.
        if as_name != name {
            if let Some(holder) = instances.iter().find(|i| i.name == name && i.id != id) {
                engine.rename(name, &holder.id, &format!("{name}-old-{}", short(&holder.id))).await?;
            }
            crate::failpoint::hit("before-rename").await;
            engine.rename(name, &id, name).await?;
        }
        Ok(())
    }

    /// After the gate (the driver's commit): every instance but the serving one stops, after
    /// `proxy.drain` when it took traffic until the switch.
    pub async fn retire_old(&self, engine: &Engine, name: &str, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let instances = engine.instances(Some(name)).await?;
        let Some(serving) = instances.iter().find(|i| i.name == name) else { return Ok(()) };
        let old: Vec<&Instance> = instances.iter().filter(|i| i.id != serving.id).collect();
        if old.is_empty() {
            return Ok(());
        }
        crate::failpoint::hit("before-retire").await;
        if let Some(p) = spec.proxy.as_ref().filter(|_| old.iter().any(|i| i.running)) {
            // Journalled, then stopped by a task after `drain`: the reconciler goes on.
            let until_ms = crate::state::unix_now_ms().saturating_add(p.drain.as_std().as_millis() as u64);
            let list: Vec<(String, drain::Drain)> = old
                .iter()
                .map(|o| {
                    (o.id.clone(), drain::Drain { resource: name.to_string(), stop_timeout: o.stop_timeout, until_ms })
                })
                .collect();
            self.drains.add(&list).map_err(|e| RuntimeError::Host {
                resource: name.to_string(),
                detail: format!("cannot journal the drain of the old container in state_dir/drains.json: {e}"),
            })?;
            tracing::info!("{name}: the old container drains for {}, then a task stops it", p.drain);
            for (id, d) in list {
                self.drains.spawn(engine, id, d);
            }
            return Ok(());
        }
        for o in old {
            engine.stop_and_remove(name, &o.id, o.stop_timeout).await?;
        }
        Ok(())
    }

    /// Take `name`'s route out of Caddy when one of its instances was proxied (its traffic no
    /// longer comes through Caddy, or it is removed).
    pub async fn drop_route(&self, name: &str, instances: &[Instance]) -> Result<(), RuntimeError> {
        if !instances.iter().any(|i| i.proxy.is_some()) {
            return Ok(());
        }
        match &self.caddy {
            Some(c) => c.remove(name).await.map_err(|e| proxy_err(name, e)),
            None => Ok(()), // never routed by this agent's config
        }
    }

    /// Per resource whose serving instance is proxied: why its route is not as it should be
    /// (missing, or pointing elsewhere). Caddy not answering is a fault.
    pub async fn check(
        &self,
        by_resource: &BTreeMap<String, Vec<Instance>>,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let mut out = BTreeMap::new();
        let mut any = false;
        for (res, inst) in by_resource {
            let Some(serving) = inst.iter().find(|i| i.name == *res && i.running) else { continue };
            let (Some(proxy), Some(port), Some(caddy)) = (&serving.proxy, serving.proxy_port, &self.caddy) else {
                continue;
            };
            any = true;
            if !caddy.routes_to(res, proxy, &caddy::dial(port)).await.map_err(|e| proxy_err(res, e))? {
                out.insert(
                    res.clone(),
                    format!(
                        "its route in Caddy ({}) is missing or does not point at it (did Caddy restart?)",
                        caddy::route_id(res)
                    ),
                );
            }
        }
        self.proxied.store(any, Ordering::SeqCst);
        Ok(out)
    }

    /// Ask `http://<dial><path>` until it answers 2xx (within the agent config's
    /// `health.timeout`); fails early when the container `as_name` exits (a `fresh` one: also
    /// when it restarted at all, as the gate judges; an older one may have restarted long
    /// ago, so it fails early only while it is down).
    async fn probe_until(
        &self,
        engine: &Engine,
        as_name: &str,
        fresh: bool,
        dial: &str,
        path: &str,
    ) -> Result<(), String> {
        let (timeout, interval) = self.probe;
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().map_err(|e| e.to_string())?;
        let url = format!("http://{dial}{path}");
        let deadline = Instant::now() + timeout;
        loop {
            crate::sdnotify::progress();
            let last = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("{url} answered {}", r.status().as_u16()),
                Err(e) => format!("{url}: {}", crate::fault::error_chain(&e)),
            };
            if fresh {
                if let crate::runtime::Liveness::Failed(why) = engine.watch(as_name).await {
                    return Err(why);
                }
            } else if let Some(why) = engine.down(as_name).await {
                return Err(why);
            }
            if Instant::now() + interval > deadline {
                return Err(format!("{last} (for {}s)", timeout.as_secs()));
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// How often the routes in Caddy are looked at while there are proxied containers.
const CADDY_LOOK: Duration = Duration::from_secs(2);

/// While proxied containers run: look at Caddy's HTTP config every `CADDY_LOOK` and call
/// `on_change` when it changed (a restart that forgot the routes, a hand edit, Caddy gone),
/// so that the drift check repairs a lost route at once instead of at the next poll.
pub(super) async fn watch_caddy(
    caddy: caddy::Caddy,
    proxied: std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_change: std::sync::Arc<dyn Fn(String) + Send + Sync>,
    mut shutdown: crate::listen::Shutdown,
) {
    let mut last: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CADDY_LOOK) => {}
            _ = shutdown.recv() => return,
        }
        if !proxied.load(Ordering::SeqCst) {
            last = None;
            continue;
        }
        let now = caddy.fingerprint().await;
        if last.as_ref().is_some_and(|l| *l != now) {
            tracing::debug!("caddy: its config changed; checking the routes");
            on_change(String::new());
        }
        last = Some(now);
    }
}
