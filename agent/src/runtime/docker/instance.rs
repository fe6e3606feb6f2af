//! What the agent reads back from a container: the labels it writes (`LABEL_*`, PRODUCT.md
//! "Names and places") and the `Instance` they make of a container the engine lists.
//! Pure: the engine client lists, this file reads.

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};

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

/// One container that belongs to a resource.
#[derive(Clone, Debug)]
pub(super) struct Instance {
    pub resource: String,
    pub id: String,
    pub name: String,
    pub hash: String,
    pub revision: String,
    pub running: bool,
    /// Seconds a stop waits (the default; the container's own StopTimeout wins when set).
    pub stop_timeout: i32,
    /// A oneshot container (runs to completion).
    pub oneshot: bool,
    /// Exited with status 0 (a oneshot that is done).
    pub exited_ok: bool,
    /// No `driftless.host` label (made by an older agent): adopted only when desired.
    pub unclaimed: bool,
    /// Its `proxy` (from its label): the route in Caddy that should point at it.
    pub proxy: Option<desired_state_schema::ProxySpec>,
    /// The loopback port the engine published `proxy.port` on (while it runs).
    pub proxy_port: Option<u16>,
}

impl Instance {
    /// The instance a listed container is for this agent (`host`): `None` for one without a
    /// resource label, or another agent's (a different host on a shared engine: never ours
    /// to touch).
    pub fn of(c: ContainerSummary, host: &str) -> Option<Instance> {
        let labels = c.labels.unwrap_or_default();
        let res = labels.get(LABEL_RESOURCE)?;
        let owner = labels.get(LABEL_HOST);
        if owner.is_some_and(|h| *h != host) {
            return None;
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
        Some(Instance {
            proxy,
            proxy_port,
            resource: res.clone(),
            id: c.id.unwrap_or_default(),
            name,
            hash: labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default(),
            revision: labels.get(LABEL_REVISION).cloned().unwrap_or_default(),
            running: matches!(c.state, Some(ContainerSummaryStateEnum::RUNNING)),
            stop_timeout: labels.get(LABEL_STOP_TIMEOUT).and_then(|t| t.parse().ok()).unwrap_or(10),
            oneshot: labels.get(LABEL_ONESHOT).is_some_and(|v| v == "true"),
            exited_ok: matches!(c.state, Some(ContainerSummaryStateEnum::EXITED))
                && c.status.as_deref().is_some_and(|st| st.starts_with("Exited (0)")),
            unclaimed: owner.is_none(),
        })
    }
}
