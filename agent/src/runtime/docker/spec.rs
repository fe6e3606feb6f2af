//! The container spec: what the engine is asked to create for a resource — desired spec in,
//! engine body out (`create_body`), with nothing read from the engine, the disk or the
//! revision (the driver resolves the environment, the bind mounts and the image first and
//! hands them over in `Made`). Table-tested without an engine.
//!
//! Architecture Invariant: pure. What the engine speaks comes in as `Level`, decided once
//! by the engine client; every label the agent reads back later is written here.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, RestartPolicy as DockerRestart, RestartPolicyNameEnum,
};
use desired_state_schema::checks::PortMapping;
use desired_state_schema::{ContainerSpec, Resource, RestartPolicy};

use super::hooks;
use super::instance::{
    LABEL_HOST, LABEL_IMAGE_ID, LABEL_MANAGED, LABEL_ONESHOT, LABEL_PROXY, LABEL_RESOURCE, LABEL_REVISION,
    LABEL_SPEC_HASH, LABEL_STOP_TIMEOUT,
};
use crate::runtime::RuntimeError;

/// What a converge prepared for the container it creates.
pub(super) struct Made<'a> {
    /// The revision the container comes from (a label).
    pub revision: &'a str,
    /// Its spec hash, with the host-side inputs (a label).
    pub hash: &'a str,
    /// The image reference it runs, and that image's id (a label).
    pub image: &'a str,
    pub image_id: &'a str,
    /// Extra bind mounts: secrets and exported files.
    pub binds: &'a [String],
    /// The variables of its `env_files`, resolved and decrypted (`spec.env` goes over them).
    pub env_files: &'a BTreeMap<String, String>,
}

/// What the engine of this host takes beyond API 1.41, as negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Level {
    /// `healthcheck.start_interval` (API 1.44, Docker 25+).
    pub start_interval: bool,
    /// A network endpoint's MAC address (API 1.44).
    pub mac_address: bool,
    /// `annotations` (API 1.43, Docker 24+).
    pub annotations: bool,
}

impl Level {
    /// What an engine speaking API 1.`minor` takes.
    pub fn of(minor: usize) -> Level {
        Level { start_interval: minor >= 44, mac_address: minor >= 44, annotations: minor >= 43 }
    }
}

/// Whether the image of `spec` is built before anything else (`build` without `when:
/// missing`, or without an image to pull), rather than pulled first.
pub(super) fn builds_first(spec: &ContainerSpec) -> bool {
    spec.build.as_ref().is_some_and(|b| b.when == desired_state_schema::BuildWhen::Always || spec.image.is_empty())
}

/// The seconds a stop of the container waits.
pub(super) fn stop_secs(spec: &ContainerSpec) -> i32 {
    i32::try_from(spec.stop_timeout.as_std().as_secs()).unwrap_or(i32::MAX)
}

/// The Container spec of `r` (the Docker driver runs nothing else).
pub(super) fn container_spec(r: &Resource) -> Result<&ContainerSpec, RuntimeError> {
    match &r.spec {
        desired_state_schema::Spec::Container(c) => Ok(c),
        _ => Err(RuntimeError::Unsupported {
            kind: r.kind,
            detail: "the Docker driver runs Container resources only".into(),
        }),
    }
}

/// A container's settings on network `n` (aliases, static addresses); `None` when it has
/// none beyond being attached.
pub(super) fn endpoint(
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

/// The engine's create body for `r` (agent `host`, an engine that takes `level`): the
/// process and its identity here, the rest from the pieces below, one per area.
pub(super) fn create_body(
    host: &str,
    level: Level,
    r: &Resource,
    spec: &ContainerSpec,
    made: &Made<'_>,
) -> Result<ContainerCreateBody, RuntimeError> {
    let mut env = made.env_files.clone();
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.0.clone());
    }
    let (exposed, bindings) = ports(r.name(), spec)?;
    let mut binds = spec.volumes.clone();
    binds.extend(made.binds.iter().cloned());
    let (network_mode, networking_config) = networking(spec, level);
    let healthcheck = health_config(spec, level);
    Ok(ContainerCreateBody {
        image: Some(made.image.to_string()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels(host, r, spec, made)),
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
        host_config: Some(host_config(spec, level, binds, bindings, restart_policy(spec), network_mode)),
        ..Default::default()
    })
}

/// Exposed ports and host bindings: `ports` (each port of a range its own binding),
/// `expose`, and a proxied container's `proxy.port` published on the loopback.
fn ports(name: &str, spec: &ContainerSpec) -> Result<(Vec<String>, Bindings), RuntimeError> {
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
    if let Some(p) = &spec.proxy {
        // Published on the loopback at a port the engine picks: each instance its own, so
        // the old and the new container answer side by side, and Caddy dials it.
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
    Ok((exposed, bindings))
}

/// Host port bindings by `port/proto`, as the engine takes them.
type Bindings = HashMap<String, Option<Vec<PortBinding>>>;

/// The engine's restart policy (a oneshot never restarts).
fn restart_policy(spec: &ContainerSpec) -> DockerRestart {
    if spec.oneshot {
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
            RestartPolicy::OnFailure(n) => {
                DockerRestart { name: Some(RestartPolicyNameEnum::ON_FAILURE), maximum_retry_count: n.map(i64::from) }
            }
        }
    }
}

/// The spec's labels, then the agent's own (what it reads back: `instance.rs`).
fn labels(host: &str, r: &Resource, spec: &ContainerSpec, made: &Made<'_>) -> HashMap<String, String> {
    let name = r.name();
    let mut labels: HashMap<String, String> = spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
    labels.insert(LABEL_HOST.to_string(), host.to_string());
    labels.insert(LABEL_RESOURCE.to_string(), name.to_string());
    labels.insert(LABEL_REVISION.to_string(), made.revision.to_string());
    labels.insert(LABEL_SPEC_HASH.to_string(), made.hash.to_string());
    labels.insert(LABEL_IMAGE_ID.to_string(), made.image_id.to_string());
    labels.insert(LABEL_STOP_TIMEOUT.to_string(), stop_secs(spec).to_string());
    if spec.oneshot {
        labels.insert(LABEL_ONESHOT.to_string(), "true".to_string());
    }
    if let Some(p) = &spec.proxy {
        labels.insert(LABEL_PROXY.to_string(), serde_json::to_string(p).unwrap_or_default());
    }
    if let Some(pre_stop) = hooks::encode(&spec.pre_stop) {
        labels.insert(hooks::LABEL.to_string(), pre_stop);
    }
    labels
}

/// The engine's healthcheck (`start_interval` only where the engine takes it).
fn health_config(spec: &ContainerSpec, level: Level) -> Option<bollard::models::HealthConfig> {
    spec.healthcheck.as_ref().map(|h| bollard::models::HealthConfig {
        // No test: the image's own, with these timings.
        test: (!h.test.is_unset()).then(|| h.test.engine_form()),
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        retries: h.retries.map(i64::from),
        start_period: nanos(h.start_period),
        start_interval: if level.start_interval { nanos(h.start_interval) } else { None },
    })
}

/// A duration as the engine's nanoseconds.
fn nanos(d: Option<desired_state_schema::Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_std().as_nanos()).unwrap_or(i64::MAX))
}

/// The network mode, and the first network's endpoint (the others are connected after the
/// create).
fn networking(spec: &ContainerSpec, level: Level) -> (Option<String>, Option<bollard::models::NetworkingConfig>) {
    let network_mode = spec.network_mode.clone().or_else(|| spec.networks.first().map(|n| n.name.clone()));
    // The MAC address goes to the first network's endpoint (API 1.44; the preflight
    // refused it on an older engine): its own, or the engine's default `bridge`.
    let mac = spec.mac_address.as_ref().filter(|_| level.mac_address);
    let first = spec.networks.first().cloned().or_else(|| {
        (spec.network_mode.is_none() && mac.is_some())
            .then(|| desired_state_schema::NetworkAttachment { name: "bridge".into(), ..Default::default() })
    });
    let networking_config = first.and_then(|n| {
        let mut endpoints = HashMap::new();
        endpoints.insert(n.name.clone(), endpoint(&n, &spec.links, mac)?);
        Some(bollard::models::NetworkingConfig { endpoints_config: Some(endpoints) })
    });
    (network_mode, networking_config)
}

/// Resources, privileges, namespaces and logging: the engine's host config.
fn host_config(
    spec: &ContainerSpec,
    level: Level,
    binds: Vec<String>,
    bindings: Bindings,
    restart: DockerRestart,
    network_mode: Option<String>,
) -> HostConfig {
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
    let map = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone().into_iter().collect());
    let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy: Some(restart),
        network_mode,
        ipc_mode: spec.ipc.clone(),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| {
            spec.extra_hosts.iter().map(|e| if e.contains('=') { e.replacen('=', ":", 1) } else { e.clone() }).collect()
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
            config: (!l.options.is_empty()).then(|| l.options.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()),
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
        annotations: if level.annotations { map(&spec.annotations) } else { None },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(spec: &str) -> Resource {
        let yaml = format!("apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n{spec}");
        let file = desired_state_schema::SourceFile { path: "s.yaml".into(), text: yaml };
        desired_state_schema::load(&[file], None).unwrap().resources.remove(0)
    }

    fn body(level: Level, spec: &str, env_files: &[(&str, &str)]) -> ContainerCreateBody {
        let r = resource(spec);
        let env_files: BTreeMap<String, String> =
            env_files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let binds = vec!["/state/secrets/web/token:/run/secrets/token:ro".to_string()];
        let made = Made {
            revision: "rev",
            hash: "hash",
            image: "img:1",
            image_id: "sha256:i",
            binds: &binds,
            env_files: &env_files,
        };
        create_body("h1", level, &r, container_spec(&r).unwrap(), &made).unwrap()
    }

    /// Desired spec in, engine body out: one row per key that needs more than a copy.
    #[test]
    fn the_engine_body_of_a_spec() {
        let old = Level::of(41);
        type Check = fn(&ContainerCreateBody) -> bool;
        let cases: &[(&str, Level, &str, Check)] = &[
            ("labels say whose and what", old, "  image: img:1\n", |b| {
                let l = b.labels.as_ref().unwrap();
                l[LABEL_MANAGED] == "true"
                    && l[LABEL_HOST] == "h1"
                    && l[LABEL_RESOURCE] == "web"
                    && l[LABEL_REVISION] == "rev"
                    && l[LABEL_SPEC_HASH] == "hash"
                    && l[LABEL_IMAGE_ID] == "sha256:i"
                    && l[LABEL_STOP_TIMEOUT] == "10"
                    && !l.contains_key(LABEL_ONESHOT)
            }),
            ("spec.env goes over the env files", old, "  image: img:1\n  env: { A: spec }\n", |b| {
                b.env.as_ref().unwrap() == &vec!["A=spec".to_string(), "B=file".to_string()]
            }),
            ("a port range binds each port", old, "  image: img:1\n  ports: [\"127.0.0.1:8080-8081:80-81\"]\n", |b| {
                let p = b.host_config.as_ref().unwrap().port_bindings.as_ref().unwrap();
                p["81/tcp"].as_ref().unwrap()[0].host_port.as_deref() == Some("8081")
                    && p["80/tcp"].as_ref().unwrap()[0].host_ip.as_deref() == Some("127.0.0.1")
            }),
            ("expose adds exposed ports only", old, "  image: img:1\n  expose: [\"9000-9001/udp\"]\n", |b| {
                b.exposed_ports.as_ref().unwrap() == &vec!["9000/udp".to_string(), "9001/udp".to_string()]
                    && b.host_config.as_ref().unwrap().port_bindings.is_none()
            }),
            ("a oneshot never restarts", old, "  image: img:1\n  oneshot: true\n  restart: always\n", |b| {
                let r = b.host_config.as_ref().unwrap().restart_policy.as_ref().unwrap();
                r.name == Some(RestartPolicyNameEnum::NO) && b.labels.as_ref().unwrap()[LABEL_ONESHOT] == "true"
            }),
            ("on-failure keeps its count", old, "  image: img:1\n  restart: on-failure:3\n", |b| {
                let r = b.host_config.as_ref().unwrap().restart_policy.as_ref().unwrap();
                r.name == Some(RestartPolicyNameEnum::ON_FAILURE) && r.maximum_retry_count == Some(3)
            }),
            (
                "a proxied container is published on the loopback",
                old,
                "  image: img:1\n  update: start-first\n  proxy: { listen: \"127.0.0.1:8080\", port: 80 }\n",
                |b| {
                    let p = b.host_config.as_ref().unwrap().port_bindings.as_ref().unwrap();
                    let bind = &p["80/tcp"].as_ref().unwrap()[0];
                    bind.host_ip.as_deref() == Some("127.0.0.1")
                        && bind.host_port.as_deref() == Some("")
                        && b.labels.as_ref().unwrap().contains_key(LABEL_PROXY)
                },
            ),
            ("extra_hosts take compose's = form", old, "  image: img:1\n  extra_hosts: [\"db=10.0.0.2\"]\n", |b| {
                b.host_config.as_ref().unwrap().extra_hosts.as_ref().unwrap() == &vec!["db:10.0.0.2".to_string()]
            }),
            ("memswap_limit -1 is unlimited", old, "  image: img:1\n  memswap_limit: \"-1\"\n  memory: 64m\n", |b| {
                let h = b.host_config.as_ref().unwrap();
                h.memory_swap == Some(-1) && h.memory == Some(64 * 1024 * 1024)
            }),
            (
                "binds: the spec's volumes, then the driver's",
                old,
                "  image: img:1\n  volumes: [\"data:/data\"]\n",
                |b| {
                    b.host_config.as_ref().unwrap().binds.as_ref().unwrap()
                        == &vec!["data:/data".to_string(), "/state/secrets/web/token:/run/secrets/token:ro".to_string()]
                },
            ),
            (
                "start_interval only where the engine takes it",
                old,
                "  image: img:1\n  healthcheck: { test: [\"CMD\", \"true\"], start_interval: 2s }\n",
                |b| b.healthcheck.as_ref().unwrap().start_interval.is_none(),
            ),
            (
                "start_interval on API 1.44",
                Level::of(44),
                "  image: img:1\n  healthcheck: { test: [\"CMD\", \"true\"], start_interval: 2s }\n",
                |b| b.healthcheck.as_ref().unwrap().start_interval == Some(2_000_000_000),
            ),
            ("annotations only from API 1.43", old, "  image: img:1\n  annotations: { a: b }\n", |b| {
                b.host_config.as_ref().unwrap().annotations.is_none()
            }),
            ("annotations on API 1.43", Level::of(43), "  image: img:1\n  annotations: { a: b }\n", |b| {
                b.host_config.as_ref().unwrap().annotations.as_ref().is_some_and(|a| a["a"] == "b")
            }),
            (
                "the first network is the mode, with its aliases",
                old,
                "  image: img:1\n  networks: [{ name: front, aliases: [www] }, back]\n",
                |b| {
                    let n = b.networking_config.as_ref().unwrap().endpoints_config.as_ref().unwrap();
                    b.host_config.as_ref().unwrap().network_mode.as_deref() == Some("front")
                        && n["front"].aliases.as_ref().unwrap() == &vec!["www".to_string()]
                        && !n.contains_key("back")
                },
            ),
        ];
        for (what, level, spec, check) in cases {
            let b = body(*level, spec, &[("A", "file"), ("B", "file")]);
            assert!(check(&b), "{what}: {b:#?}");
        }
    }
}
