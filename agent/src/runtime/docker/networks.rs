//! Networks and named volumes: created and labelled when the desired state uses them and
//! they are missing (`ensure`: never an `external` one, which must exist already:
//! `check_external`, before anything is touched), and networks no container uses any more
//! removed after a commit (`prune`).
//!
//! Architecture Invariant: volumes are never removed, and only this agent's networks (its
//! `host` label) are.

use std::collections::{BTreeSet, HashMap};

use bollard::models::NetworkCreateRequest;
use desired_state_schema::{ContainerSpec, Resource};

use super::engine::Engine;
use super::errors::{docker_err, external_missing, is_not_found, unreachable};
use super::instance::{LABEL_HOST, LABEL_MANAGED};
use crate::runtime::RuntimeError;

/// The spec's `external` volumes and networks exist (before anything runs is touched).
pub(super) async fn check_external(engine: &Engine, name: &str, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    if spec.external.is_empty() {
        return Ok(());
    }
    let api = engine.api().await?;
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
pub(super) async fn ensure(
    engine: &Engine,
    one_at_a_time: &tokio::sync::Mutex<()>,
    name: &str,
    spec: &ContainerSpec,
) -> Result<(), RuntimeError> {
    let api = engine.api().await?;
    let _held = one_at_a_time.lock().await;
    let mut labels = HashMap::new();
    labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
    labels.insert(LABEL_HOST.to_string(), engine.host.clone());
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

/// After a commit: remove the managed networks no container of `keep` uses and no
/// container is attached to.
pub(super) async fn prune(engine: &Engine, keep: &[&Resource]) -> Result<(), RuntimeError> {
    let api = engine.api().await?;
    let mut filters = HashMap::new();
    // This agent's networks only (not another host's on a shared engine, nor an older
    // agent's unlabelled ones, which may be anyone's).
    filters.insert("label".to_string(), vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_HOST}={}", engine.host)]);
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
    Ok(())
}
