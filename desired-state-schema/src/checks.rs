//! Semantic checks: the rules serde cannot express. Per resource (names, image references,
//! ports, volumes, paths, health checks) and across resources (duplicate names, one
//! NixosSystem, `depends_on` targets and cycles, host ports published twice). Pure functions
//! over typed values; each finding carries a path so the loader can give it a position.
//!
//! Past 1,000 lines: one function per area of a spec, each seen whole, and their table
//! tests; splitting the file would part rules that share their helpers.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::source_map::YamlPath;
use crate::types::{
    Condition, Consistency, ContainerSpec, HealthCheck, Kind, NixosSystemSpec, PassengerAppSpec, Resource, Spec,
    UpdateOrder, VolumeSpec,
};

/// One semantic finding: what is wrong at which path of the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the resource (in the slice given to the check) the finding is about.
    pub resource: usize,
    pub path: YamlPath,
    pub message: String,
}

/// Run every check over the resources of one effective desired state.
///
/// `untyped`: names of documents that exist but could not be typed (their own errors are
/// reported): a dependency on one is not also called undeclared.
pub fn check_all(resources: &[Resource], untyped: &std::collections::BTreeSet<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let mut f = |path: YamlPath, message: String| out.push(Finding { resource: i, path, message });
        check_resource(r, &mut f);
    }
    check_names(resources, &mut out);
    check_dependencies(resources, untyped, &mut out);
    check_host_ports(resources, &mut out);
    check_ipc_peers(resources, &mut out);
    check_proxies(resources, &mut out);
    check_static_addresses(resources, &mut out);
    check_volume_mounts(resources, &mut out);
    out
}

/// A Volume's own keys: a snapshot policy, at least one snapshot kept, a whole `exec` form.
fn check_volume(v: &VolumeSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    let Some(s) = &v.snapshot else {
        f(spec.clone(), "a Volume says how its data is snapshotted: write snapshot: {} (keep 5, consistency pause) or snapshot: { keep: N, consistency: pause | stop | { exec: [argv], restore: [argv] } }".into());
        return;
    };
    let at = spec.key("snapshot");
    if s.keep == 0 {
        f(
            at.key("keep"),
            "keep is at least 1: the snapshot taken before a revision is what its revert restores".into(),
        );
    }
    if let Consistency::Exec(e) = &s.consistency {
        for (key, argv) in [("exec", &e.exec), ("restore", &e.restore)] {
            if argv.is_empty() || argv[0].trim().is_empty() {
                f(
                    at.key("consistency").key(key),
                    format!(
                        "{key} is a command and its arguments, e.g. [pg_dumpall, -U, postgres]; it may not be empty"
                    ),
                );
            }
        }
    }
}

/// Every Volume is mounted by a Container of the same host (a snapshot is taken through the
/// engine, beside what mounts it; a misspelt name would otherwise snapshot nothing), and
/// names are unique among Volumes.
fn check_volume_mounts(resources: &[Resource], out: &mut Vec<Finding>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        let Spec::Volume(v) = &r.spec else { continue };
        if let Some(&first) = seen.get(r.name()) {
            out.push(Finding {
                resource: i,
                path: YamlPath::of(&["metadata", "name"]),
                message: format!(
                    "volume {:?} is declared twice: also at {}; keep one",
                    r.name(),
                    resources[first].origin
                ),
            });
            continue;
        }
        seen.insert(r.name(), i);
        let mounted_by = |c: &ContainerSpec| {
            c.volumes.iter().any(|m| Volume::parse(m).is_ok_and(|m| !m.is_bind() && m.source == r.name()))
        };
        let mounts: Vec<&Resource> =
            resources.iter().filter(|o| matches!(&o.spec, Spec::Container(c) if mounted_by(c))).collect();
        if mounts.is_empty() {
            let exec = matches!(v.snapshot.as_ref().map(|s| &s.consistency), Some(Consistency::Exec(_)));
            let named: Vec<String> = resources
                .iter()
                .filter_map(|o| match &o.spec {
                    Spec::Container(c) => Some(c),
                    _ => None,
                })
                .flat_map(|c| c.volumes.iter().filter_map(|m| Volume::parse(m).ok()))
                .filter(|m| !m.is_bind())
                .map(|m| m.source)
                .collect();
            let hint = match did_you_mean(r.name(), named.iter().map(String::as_str)) {
                Some(near) => format!("did you mean {near:?}? "),
                None => String::new(),
            };
            out.push(Finding {
                resource: i,
                path: YamlPath::of(&["metadata", "name"]),
                message: format!(
                    "no Container of this host mounts volume {:?}{}: {hint}mount it (volumes: [\"{}:/path\"]), or fix the name (a compose volume's engine name is <project>_<key>)",
                    r.name(),
                    if exec { ", so there is no container to run the exec consistency's dump in" } else { "" },
                    r.name()
                ),
            });
        }
    }
}

/// A network's address range: `172.28.0.0/16`, `fd00:db8::/64`.
pub fn cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) =
        s.split_once('/').ok_or_else(|| format!("{s:?} is not a subnet: write ADDRESS/LENGTH, e.g. 172.28.0.0/16"))?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("{ip:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(n) if n <= max => Ok((ip, n)),
        _ => Err(format!(
            "{len:?} is not a prefix length of an {} subnet (0-{max})",
            if ip.is_ipv4() { "IPv4" } else { "IPv6" }
        )),
    }
}

/// Whether `addr` lies in `net`.
pub fn in_subnet(net: (IpAddr, u8), addr: IpAddr) -> bool {
    let bits = |ip: IpAddr| -> (u128, u32) {
        match ip {
            IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let ((n, width), (a, aw)) = (bits(net.0), bits(addr));
    if width != aw {
        return false;
    }
    let shift = width - u32::from(net.1);
    shift >= width || (n >> shift) == (a >> shift)
}

/// `network_options` (subnets, gateways, IPv6), `volume_options`, and the static addresses
/// of `networks`: each address parses, lies in a subnet of its network, and IPv6 only where
/// the network has it (the engine refuses a static address on a network without a
/// configured subnet).
fn check_addresses(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    for (name, o) in &c.network_options {
        let at = spec.key("network_options").key(name.clone());
        if !c.networks.iter().any(|a| a.name == *name) {
            f(at.clone(), format!("network {name:?} is not one of this container's networks: attach it (networks: [{name}]) or remove it here"));
        }
        for (i, sn) in o.subnets.iter().enumerate() {
            let sat = at.key("subnets").index(i);
            let net = match cidr(&sn.subnet) {
                Ok(n) => n,
                Err(why) => {
                    f(sat.key("subnet"), why);
                    continue;
                }
            };
            if net.0.is_ipv6() && !o.enable_ipv6 {
                f(
                    sat.key("subnet"),
                    format!("{} is an IPv6 subnet and the network has no IPv6: write enable_ipv6: true", sn.subnet),
                );
            }
            if let Some(g) = &sn.gateway {
                match g.parse::<IpAddr>() {
                    Ok(ip) if in_subnet(net, ip) => {}
                    Ok(_) => f(sat.key("gateway"), format!("gateway {g} is not in subnet {}", sn.subnet)),
                    Err(_) => f(sat.key("gateway"), format!("gateway {g:?} is not an IP address")),
                }
            }
            if let Some(r) = &sn.ip_range {
                match cidr(r) {
                    Ok(range) if in_subnet(net, range.0) && range.1 >= net.1 => {}
                    Ok(_) => f(sat.key("ip_range"), format!("ip_range {r} is not within subnet {}", sn.subnet)),
                    Err(why) => f(sat.key("ip_range"), why),
                }
            }
        }
    }
    for (i, a) in c.networks.iter().enumerate() {
        let subnets: Vec<(IpAddr, u8)> = c
            .network_options
            .get(&a.name)
            .map(|o| o.subnets.iter().filter_map(|s| cidr(&s.subnet).ok()).collect())
            .unwrap_or_default();
        for (key, addr, v6) in [("ipv4_address", &a.ipv4_address, false), ("ipv6_address", &a.ipv6_address, true)] {
            let Some(addr) = addr else { continue };
            let at = spec.key("networks").index(i).key(key);
            let ip = match addr.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv6() == v6 => ip,
                _ => {
                    f(at, format!("{addr:?} is not an {} address", if v6 { "IPv6" } else { "IPv4" }));
                    continue;
                }
            };
            if subnets.iter().all(|s| s.0.is_ipv6() != v6) {
                f(at, format!("a static address on network {:?} needs its subnet: declare one (compose: ipam: {{ config: [{{ subnet: … }}] }}), which the engine requires for addresses it does not pick", a.name));
            } else if !subnets.iter().any(|s| in_subnet(*s, ip)) {
                f(at, format!("{addr} is not in a subnet of network {:?}", a.name));
            }
        }
    }
    for (name, o) in &c.volume_options {
        let at = spec.key("volume_options").key(name.clone());
        let mounted = c.volumes.iter().any(|m| Volume::parse(m).is_ok_and(|m| !m.is_bind() && m.source == *name));
        if !mounted {
            f(
                at.clone(),
                format!("volume {name:?} is not one of this container's named volumes: mount it or remove it here"),
            );
        }
        for k in o.driver_opts.keys().filter(|k| !matches!(k.as_str(), "type" | "device" | "o")) {
            f(
                at.key("driver_opts").key(k.clone()),
                format!("driver option {k:?} is not one of the local driver's (type, device, o)"),
            );
        }
    }
}

/// Two containers cannot hold one static address of one network.
fn check_static_addresses(resources: &[Resource], out: &mut Vec<Finding>) {
    let mut taken: HashMap<(String, String), usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        let Spec::Container(c) = &r.spec else { continue };
        for (j, a) in c.networks.iter().enumerate() {
            for (key, addr) in [("ipv4_address", &a.ipv4_address), ("ipv6_address", &a.ipv6_address)] {
                let Some(addr) = addr else { continue };
                let canonical = addr.parse::<IpAddr>().map(|ip| ip.to_string()).unwrap_or_else(|_| addr.clone());
                match taken.get(&(a.name.clone(), canonical.clone())) {
                    Some(&k) if k != i => out.push(Finding {
                        resource: i,
                        path: YamlPath::of(&["spec", "networks"]).index(j).key(key),
                        message: format!(
                            "{addr} on network {:?} is already {:?}'s ({}): give each container its own",
                            a.name,
                            resources[k].name(),
                            resources[k].origin
                        ),
                    }),
                    _ => {
                        taken.insert((a.name.clone(), canonical), i);
                    }
                }
            }
        }
    }
}

fn check_resource(r: &Resource, f: &mut impl FnMut(YamlPath, String)) {
    // A Container is named as the engine names containers (compose's `immich_redis` and
    // `app.web` run as they are); the other kinds' names become folders and units of ours.
    let named = match r.kind {
        Kind::Container | Kind::Volume => container_name(r.name()),
        _ => dns_label(r.name()),
    };
    if let Err(why) = named {
        f(YamlPath::of(&["metadata", "name"]), format!("name {:?} {why}", r.name()));
    }
    let spec = YamlPath::of(&["spec"]);
    match &r.spec {
        Spec::Container(c) => check_container(c, &spec, f),
        Spec::PassengerApp(p) => check_passenger(p, &spec, f),
        Spec::NixosSystem(n) => check_nixos(n, &spec, f),
        Spec::Volume(v) => check_volume(v, &spec, f),
    }
    for (i, h) in r.spec.health().iter().enumerate() {
        check_health(h, r.kind, &spec.key("health").index(i), f);
    }
}

/// A container name as the Docker engine accepts it (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), at most
/// 128 characters.
pub fn container_name(name: &str) -> Result<(), &'static str> {
    let b = name.as_bytes();
    if b.len() < 2 {
        return Err(
            "is shorter than two characters, which the Docker engine refuses: write a name such as web or db_1",
        );
    }
    if b.len() > 128 {
        return Err("is longer than 128 characters");
    }
    if !b[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or digit (the Docker engine's rule)");
    }
    if !b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')) {
        return Err("may hold only letters, digits, '_', '.' and '-' (the Docker engine's rule for container names)");
    }
    Ok(())
}

/// A DNS label (RFC 1123): 1–63 of `a-z0-9-`, starting and ending alphanumeric.
/// A host name (RFC 1123): dot-separated DNS labels, at most 253 characters; case does not
/// matter. What an agent's `host` and a `hosts:` overlay key must be.
pub fn host_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("1 to 253 characters");
    }
    name.split('.').try_for_each(|l| dns_label(&l.to_ascii_lowercase()))
}

pub fn dns_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty: write a DNS label such as web or api-1");
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("may hold only lowercase letters, digits and '-' (a DNS label such as web or api-1)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// `links`, `device_requests`, `blkio_config`, `mac_address` and the hooks of a Container.
fn check_links_devices_hooks(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    for (i, l) in c.links.iter().enumerate() {
        let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
        if target.is_empty() || alias.is_empty() || alias.contains(':') {
            f(spec.key("links").index(i), format!("link {l:?} is not valid: write a container name, or name:alias"));
        }
    }
    for (i, d) in c.device_requests.iter().enumerate() {
        let at = spec.key("device_requests").index(i);
        if d.count.is_some_and(|n| n < -1) {
            f(at.key("count"), "count is a number of devices, or -1 for all of them".into());
        }
        if d.count.is_some_and(|n| n != 0) && !d.device_ids.is_empty() {
            f(at.clone(), "a device request names devices by count or by device_ids, not both (the engine refuses both): remove one".into());
        }
    }
    if let Some(b) = &c.blkio_config {
        let at = spec.key("blkio_config");
        let weight = |w: u16| w == 0 || (10..=1000).contains(&w);
        if b.weight.is_some_and(|w| !weight(w)) {
            f(at.key("weight"), "a block I/O weight is 10 to 1000".into());
        }
        for (i, w) in b.weight_device.iter().enumerate() {
            if !weight(w.weight) {
                f(at.key("weight_device").index(i).key("weight"), "a block I/O weight is 10 to 1000".into());
            }
            if let Err(why) = host_path(&w.path) {
                f(
                    at.key("weight_device").index(i).key("path"),
                    format!("{:?} {why} (a device of the host, /dev/…)", w.path),
                );
            }
        }
        for (key, rates) in [
            ("device_read_bps", &b.device_read_bps),
            ("device_write_bps", &b.device_write_bps),
            ("device_read_iops", &b.device_read_iops),
            ("device_write_iops", &b.device_write_iops),
        ] {
            for (i, r) in rates.iter().enumerate() {
                if let Err(why) = host_path(&r.path) {
                    f(at.key(key).index(i).key("path"), format!("{:?} {why} (a device of the host, /dev/…)", r.path));
                }
                if parse_bytes(&r.rate.0).is_err() {
                    f(
                        at.key(key).index(i).key("rate"),
                        format!("rate {:?} is not a number (bytes may take a unit: 20mb)", r.rate.0),
                    );
                }
            }
        }
    }
    if let Some(m) = &c.mac_address {
        let ok =
            m.split(':').count() == 6 && m.split(':').all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            f(spec.key("mac_address"), format!("{m:?} is not a MAC address: write six hex pairs, 02:42:ac:11:00:02"));
        }
    }
    for (key, hooks) in [("post_start", &c.post_start), ("pre_stop", &c.pre_stop)] {
        for (i, h) in hooks.iter().enumerate() {
            if h.command.is_empty() {
                f(spec.key(key).index(i).key("command"), "a hook runs a command: write command: [argv…]".into());
            }
        }
    }
}

/// One Container spec, area by area (each a function a reader sees whole); the loader sorts
/// what they find by position, so the order of the areas is not the order of the errors.
fn check_container(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    check_image(c, spec, f);
    check_process(c, spec, f);
    check_container_health(c, spec, f);
    check_resources(c, spec, f);
    check_networking(c, spec, f);
    check_mounts(c, spec, f);
}

/// What runs: an image or a build (its context and Dockerfile inside the repository).
fn check_image(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    if c.image.is_empty() && c.build.is_none() {
        f(
            spec.key("image"),
            "a Container needs an image or a build: write image: name[:tag], or build: { context: folder }".into(),
        );
    } else if !c.image.is_empty() {
        if let Err(why) = image_reference(&c.image) {
            f(spec.key("image"), format!("image {:?} is not a valid image reference: {why}", c.image));
        }
    }
    if let Some(b) = &c.build {
        let at = spec.key("build");
        if let Err(why) = repo_path(&b.context) {
            f(at.key("context"), format!("build context {:?} {why}", b.context));
        }
        if let Some(df) = &b.dockerfile {
            if let Err(why) = relative_path(df) {
                f(at.key("dockerfile"), format!("dockerfile {df:?} {why} (it is relative to the context)"));
            }
        }
        for (i, r) in b.cache_from.iter().enumerate() {
            if let Err(why) = image_reference(r) {
                f(at.key("cache_from").index(i), format!("cache_from {r:?} is not a valid image reference: {why}"));
            }
        }
        if b.when == crate::types::BuildWhen::Missing && c.image.is_empty() {
            f(
                at.key("when"),
                "when: missing builds only when image cannot be pulled, and there is no image: write image: name[:tag], or remove when".into(),
            );
        }
    }
}

/// The process and its settings: labels, working directory, host name, logging, stop signal,
/// links, devices and hooks, command, entrypoint and environment (`env`, `env_files`).
fn check_process(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    for key in c.labels.keys() {
        if key.starts_with("driftless.") {
            f(
                spec.key("labels").key(key.clone()),
                format!("label {key:?}: driftless.* labels are the agent's own; choose another prefix"),
            );
        }
    }
    if let Some(w) = &c.working_dir {
        if !w.starts_with('/') {
            f(spec.key("working_dir"), format!("working_dir {w:?} must be absolute, e.g. /app"));
        }
    }
    if let Some(h) = &c.hostname {
        if dns_label(h).is_err() && !h.split('.').all(|l| dns_label(l).is_ok()) {
            f(spec.key("hostname"), format!("hostname {h:?} is not a valid host name"));
        }
    }
    if let Some(l) = &c.logging {
        if l.driver.as_deref().is_some_and(str::is_empty) {
            f(
                spec.key("logging").key("driver"),
                "logging.driver is empty: write e.g. json-file, local or journald".into(),
            );
        }
    }
    if let Some(sig) = &c.stop_signal {
        let ok = sig.parse::<u32>().is_ok()
            || (sig.starts_with("SIG")
                && sig.len() > 3
                && sig[3..].chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '+' || ch == '-'));
        if !ok {
            f(spec.key("stop_signal"), format!("stop_signal {sig:?} is not a signal: write e.g. SIGQUIT or 3"));
        }
    }
    check_links_devices_hooks(c, spec, f);
    for (field, argv) in [("command", &c.command), ("entrypoint", &c.entrypoint)] {
        if argv.as_ref().is_some_and(|a| a.is_empty()) {
            f(spec.key(field), format!("{field} is an empty list: remove it to use the image's default"));
        }
    }
    for key in c.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            f(
                spec.key("env").key(key.clone()),
                format!("environment variable name {key:?} may not be empty or hold '='"),
            );
        }
    }
    for (i, p) in c.env_files.iter().map(|e| &e.path).enumerate() {
        let ok = if p.starts_with('/') { host_path(p) } else { repo_path(p) };
        if let Err(why) = ok {
            f(spec.key("env_files").index(i), format!("env file {p:?} {why}"));
        }
    }
    if let Some(p) = &c.env_files_vars {
        if let Err(why) = repo_path(p) {
            f(spec.key("env_files_vars"), format!("env_files_vars {p:?} {why}"));
        }
    }
}

/// Health: a oneshot has no checks of its own after it ran; the engine's `healthcheck`.
fn check_container_health(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    if c.oneshot && !c.health.is_empty() {
        f(
            spec.key("health"),
            "a oneshot container is judged by its exit code: remove health (exit 0 is success)".into(),
        );
    }
    if let Some(h) = c.healthcheck.as_ref().filter(|h| !h.test.is_unset()) {
        let test = h.test.engine_form();
        let ok = match test.first().map(String::as_str) {
            Some("NONE") => test.len() == 1,
            Some("CMD") | Some("CMD-SHELL") => test.len() > 1 && !test[1].is_empty(),
            _ => false,
        };
        if !ok {
            f(spec.key("healthcheck").key("test"), "healthcheck.test is not valid: write [\"CMD\", \"prog\", \"arg\"], [\"CMD-SHELL\", \"command\"], a command string, or [\"NONE\"]".into());
        }
    }
}

/// Limits and privileges: capabilities, tmpfs, devices, ulimits, cgroups, memory and CPUs.
fn check_resources(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    for (field, caps) in [("cap_add", &c.cap_add), ("cap_drop", &c.cap_drop)] {
        for (i, cap) in caps.iter().enumerate() {
            if cap.is_empty() || !cap.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch.is_ascii_digit()) {
                f(
                    spec.key(field).index(i),
                    format!("capability {cap:?} is not valid: write it in capitals, e.g. NET_ADMIN or ALL"),
                );
            }
        }
    }
    for (i, t) in c.tmpfs.iter().enumerate() {
        if !t.starts_with('/') {
            f(
                spec.key("tmpfs").index(i),
                format!("tmpfs {t:?} must start with an absolute path, e.g. /tmp or /run:size=64m"),
            );
        }
    }
    for (i, d) in c.devices.iter().enumerate() {
        let host = d.split(':').next().unwrap_or("");
        if !host.starts_with('/') {
            f(
                spec.key("devices").index(i),
                format!("device {d:?} is not valid: write /dev/host[:/dev/container[:rwm]]"),
            );
        }
    }
    for (name, limit) in &c.ulimits {
        let (soft, hard) = limit.soft_hard();
        if soft > hard {
            f(spec.key("ulimits").key(name.clone()), format!("ulimit {name}: soft {soft} is above hard {hard}"));
        }
    }
    for (field, v) in [("cgroup", &c.cgroup)] {
        if let Some(v) = v.as_deref().filter(|v| !matches!(*v, "host" | "private")) {
            f(spec.key(field), format!("cgroup {v:?} is host or private"));
        }
    }
    for (field, v) in [("mem_reservation", &c.mem_reservation), ("memswap_limit", &c.memswap_limit)] {
        if let Some(v) = v.as_ref().filter(|v| v.0 != "-1") {
            if let Err(why) = parse_bytes(&v.0) {
                f(spec.key(field), format!("{field} {:?} {why}", v.0));
            }
        }
    }
    for (field, v) in [("shm_size", &c.shm_size), ("memory", &c.memory)] {
        if let Some(v) = v {
            if let Err(why) = parse_bytes(&v.0) {
                f(spec.key(field), format!("{field} {:?} {why}", v.0));
            }
        }
    }
    if let Some(cpus) = &c.cpus {
        if parse_cpus(&cpus.0).is_none() {
            f(spec.key("cpus"), format!("cpus {:?} is not a positive number of CPUs, e.g. 0.5 or 2", cpus.0));
        }
    }
}

/// Networking: external and internal networks, extra hosts, DNS, exposed ports, network
/// and IPC modes, published ports, attached networks.
fn check_networking(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    for (i, v) in c.external.volumes.iter().enumerate() {
        let mounted = c.volumes.iter().any(|m| Volume::parse(m).is_ok_and(|m| !m.is_bind() && m.source == *v));
        if !mounted {
            f(spec.key("external").key("volumes").index(i), format!("external volume {v:?} is not one of this container's volumes: mount it (volumes: [\"{v}:/path\"]) or remove it here"));
        }
    }
    for (i, n) in c.internal_networks.iter().enumerate() {
        if !c.networks.iter().any(|a| a.name == *n) {
            f(spec.key("internal_networks").index(i), format!("internal network {n:?} is not one of this container's networks: attach it (networks: [{n}]) or remove it here"));
        }
    }
    check_addresses(c, spec, f);
    for (i, n) in c.external.networks.iter().enumerate() {
        if !c.networks.iter().any(|a| a.name == *n) {
            f(spec.key("external").key("networks").index(i), format!("external network {n:?} is not one of this container's networks: attach it (networks: [{n}]) or remove it here"));
        }
    }
    check_update(c, spec, f);
    for (i, e) in c.extra_hosts.iter().enumerate() {
        let ok = e
            .split_once(':')
            .or_else(|| e.split_once('='))
            .is_some_and(|(h, ip)| !h.is_empty() && (ip.parse::<std::net::IpAddr>().is_ok() || ip == "host-gateway"));
        if !ok {
            f(
                spec.key("extra_hosts").index(i),
                format!("extra_hosts entry {e:?} is not valid: write name:ip, e.g. \"db.internal:10.0.0.5\""),
            );
        }
    }
    for (i, d) in c.dns.iter().enumerate() {
        if d.parse::<std::net::IpAddr>().is_err() {
            f(spec.key("dns").index(i), format!("dns server {d:?} is not an IP address"));
        }
    }
    for (i, e) in c.expose.iter().enumerate() {
        let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        if port_range(ports).is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
            f(
                spec.key("expose").index(i),
                format!("expose {e:?} is not valid: write PORT[-PORT][/tcp|udp|sctp], e.g. 8080"),
            );
        }
    }
    if let Some(mode) = &c.network_mode {
        let ok = matches!(mode.as_str(), "host" | "none" | "bridge")
            || mode.strip_prefix("container:").is_some_and(|n| !n.is_empty());
        if !ok {
            f(
                spec.key("network_mode"),
                format!("network_mode {mode:?} is not valid: write host, none, bridge or container:<name>"),
            );
        } else if !c.networks.is_empty() {
            f(spec.key("network_mode"), "network_mode and networks exclude each other: keep one".into());
        }
        if mode == "host" && !c.ports.is_empty() {
            f(
                spec.key("ports"),
                "with network_mode: host the container uses the host's ports directly: remove ports".into(),
            );
        }
    }
    if let Some(ipc) = &c.ipc {
        let ok = matches!(ipc.as_str(), "private" | "shareable" | "host" | "none")
            || ipc.strip_prefix("container:").is_some_and(|n| !n.is_empty());
        if !ok {
            f(
                spec.key("ipc"),
                format!("ipc {ipc:?} is not valid: write private, shareable, host, none or container:<name>"),
            );
        }
    }
    for (i, p) in c.ports.iter().enumerate() {
        if let Err(why) = PortMapping::parse(p) {
            f(
                spec.key("ports").index(i),
                format!("port {p:?} is not valid: {why}; write [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp], e.g. \"127.0.0.1:8080:80\""),
            );
        }
    }
    for (i, n) in c.networks.iter().enumerate() {
        if !docker_object_name(&n.name) {
            f(spec.key("networks").index(i), format!("network name {:?} may hold only letters, digits, '_', '.' and '-', starting with a letter or digit", n.name));
        }
    }
}

/// What is mounted: secrets, repository `files`, volumes (named, bind, each target once).
fn check_mounts(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    let mut secret_names = std::collections::HashSet::new();
    for (i, sec) in c.secrets.iter().enumerate() {
        let at = spec.key("secrets").index(i);
        if !docker_object_name(&sec.name) {
            f(at.key("name"), format!("secret name {:?} may hold only letters, digits, '_', '.' and '-'", sec.name));
        }
        if !secret_names.insert(sec.name.as_str()) {
            f(at.key("name"), format!("secret {:?} is listed twice", sec.name));
        }
        let src = if sec.source.starts_with('/') { host_path(&sec.source) } else { repo_path(&sec.source) };
        if let Err(why) = src {
            f(at.key("source"), format!("secret source {:?} {why}", sec.source));
        }
    }
    let mut mounted: HashMap<String, usize> = HashMap::new();
    for (i, m) in c.files.iter().enumerate() {
        let at = spec.key("files").index(i);
        if let Err(why) = repo_path(&m.source) {
            f(at.key("source"), format!("files source {:?} {why}", m.source));
        }
        if let Err(why) = host_path(&m.target) {
            f(at.key("target"), format!("files target {:?} {why} (it is a path in the container)", m.target));
        } else if let Some(first) = mounted.insert(m.target.clone(), i) {
            f(at.key("target"), format!("{} is mounted twice (also by files[{first}])", m.target));
        }
        if let Some(snap) = &m.snapshot {
            if snap.keep == 0 {
                f(
                    at.key("snapshot").key("keep"),
                    "keep is at least 1: the snapshot taken before a revision is what its revert restores".into(),
                );
            }
            if snap.consistency != Consistency::Pause {
                f(at.key("snapshot").key("consistency"), "a data folder is copied by the agent without pausing or stopping its containers (SQLite databases through SQLite's online backup), so it takes no consistency: remove it, or keep a database that needs stop or exec in a named volume with a Volume document".into());
            }
        }
    }
    let mut targets: HashMap<String, usize> = HashMap::new();
    for (i, v) in c.volumes.iter().enumerate() {
        match Volume::parse(v) {
            Err(why) => f(
                spec.key("volumes").index(i),
                format!("volume {v:?} is not valid: {why}; write /host/path:/container/path[:ro] or name:/container/path[:ro]"),
            ),
            Ok(vol) => {
                if let Some(first) = targets.insert(vol.target.clone(), i) {
                    f(
                        spec.key("volumes").index(i),
                        format!("{} is mounted twice (also by volumes[{first}])", vol.target),
                    );
                }
            }
        }
    }
}

/// Bytes from `1024`, `512k`, `64m`, `2g` (also `kb`, `mb`, `gb`, `b`; powers of 1024, as
/// Docker reads them).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let unit = t[digits.len()..].trim();
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err("is not a size: write bytes or a number with k, m or g, e.g. 512m".into()),
    };
    let n: f64 =
        digits.parse().map_err(|_| "is not a size: write bytes or a number with k, m or g, e.g. 512m".to_string())?;
    let bytes = n * mult;
    if !(1.0..9.0e18).contains(&bytes) {
        return Err("is out of range".into());
    }
    Ok(bytes as i64)
}

/// Nano-CPUs from `0.5`, `2` (`None`: not a positive number of CPUs).
pub fn parse_cpus(s: &str) -> Option<i64> {
    let n: f64 = s.trim().parse().ok()?;
    (n > 0.0 && n < 1.0e6).then_some((n * 1e9) as i64)
}

fn check_passenger(p: &PassengerAppSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    for (i, sec) in p.secrets.iter().enumerate() {
        let at = spec.key("secrets").index(i);
        if let Err(why) = repo_path(&sec.source) {
            f(at.key("source"), format!("secret source {:?} {why}", sec.source));
        }
        if let Err(why) = relative_path(&sec.target) {
            f(at.key("target"), format!("secret target {:?} {why} (a path in the release)", sec.target));
        }
    }
    if let Some(Err(why)) = p.log_file.as_deref().map(host_path) {
        f(spec.key("log_file"), format!("log_file {:?} {why}", p.log_file.as_deref().unwrap_or_default()));
    }
    if let Err(why) = host_path(&p.app_root) {
        f(spec.key("app_root"), format!("app_root {:?} {why}", p.app_root));
    } else if p.app_root.trim_end_matches('/').is_empty() {
        f(spec.key("app_root"), "app_root may not be / itself: give the app its own folder, e.g. /var/www/api".into());
    }
    if let Err(why) = repo_path(&p.source) {
        f(spec.key("source"), format!("source {:?} {why}", p.source));
    }
    if p.build.as_ref().is_some_and(|b| b.is_empty()) {
        f(spec.key("build"), "build is an empty list: remove it, or give the command as a list of words".into());
    }
    if p.build_timeout.as_std().is_zero() {
        f(spec.key("build_timeout"), "build_timeout must be longer than 0s".into());
    }
    for (field, list) in [("shared", &p.shared), ("backup", &p.backup)] {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, s) in list.iter().enumerate() {
            if let Err(why) = relative_path(s) {
                f(
                    spec.key(field).index(i),
                    format!("{field} entry {s:?} {why} (it names a path under {}/shared)", p.app_root),
                );
            } else if let Some(first) = seen.insert(s.trim_end_matches('/'), i) {
                f(spec.key(field).index(i), format!("{s:?} is listed twice (also {field}[{first}])"));
            }
        }
    }
    for (i, b) in p.backup.iter().enumerate() {
        let b = b.trim_end_matches('/');
        let inside = p.shared.iter().any(|s| {
            let s = s.trim_end_matches('/');
            b == s || b.strip_prefix(s).is_some_and(|rest| rest.starts_with('/'))
        });
        if !inside && relative_path(b).is_ok() {
            f(
                spec.key("backup").index(i),
                format!("backup entry {b:?} is not in shared: backups copy shared data, so add {b:?} (or a folder holding it) to shared"),
            );
        }
    }
    if p.keep_releases < 2 {
        f(
            spec.key("keep_releases"),
            "keep_releases must be at least 2 (the live release and the last good one)".into(),
        );
    }
    if p.keep_backups < 1 {
        f(spec.key("keep_backups"), "keep_backups must be at least 1".into());
    }
}

fn check_nixos(n: &NixosSystemSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    if n.keep_generations == 0 {
        f(
            spec.key("keep_generations"),
            "keep_generations must be at least 1 (the applied system is always kept besides)".into(),
        );
    }
    if let Err(why) = repo_path(&n.flake) {
        f(spec.key("flake"), format!("flake {:?} {why}", n.flake));
    }
    if let Some(h) = &n.host {
        if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c == '"' || c == '.') {
            f(
                spec.key("host"),
                format!("host {h:?} is not a nixosConfigurations attribute name: write a plain name such as web-1"),
            );
        }
    }
    if let Err(why) = host_path(&n.profile) {
        f(spec.key("profile"), format!("profile {:?} {why}", n.profile));
    }
    if n.build_timeout.as_std().is_zero() {
        f(spec.key("build_timeout"), "build_timeout must be longer than 0s".into());
    }
}

fn check_health(h: &HealthCheck, kind: Kind, at: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    let probes = h.probes();
    if probes.is_empty() {
        f(at.clone(), "health check names no probe: give one of http, tcp, exec, container, systemd".into());
    } else if probes.len() > 1 {
        f(at.clone(), "health check names more than one probe: give each of http, tcp, exec, container, systemd its own list entry".into());
    }
    if let Some(http) = &h.http {
        if let Err(why) = http_url(&http.url) {
            f(at.key("http").key("url"), format!("url {:?} {why}", http.url));
        }
    }
    if let Some(tcp) = &h.tcp {
        if let Err(why) = host_port(&tcp.address) {
            f(at.key("tcp").key("address"), format!("address {:?} {why}", tcp.address));
        }
    }
    if h.exec.as_ref().is_some_and(|e| e.is_empty() || e[0].is_empty()) {
        f(
            at.key("exec"),
            "exec needs a command: write it as a list, e.g. [\"/usr/bin/test\", \"-f\", \"/srv/ready\"]".into(),
        );
    }
    match (h.container, kind) {
        (Some(false), _) => {
            f(at.key("container"), "container: false checks nothing: write container: true or remove the check".into())
        }
        (Some(true), k) if k != Kind::Container => f(
            at.key("container"),
            format!("a container health check needs a Container, not a {k}: use http, tcp, exec or systemd"),
        ),
        _ => {}
    }
    if let Some(units) = &h.systemd {
        if units.is_empty() {
            f(at.key("systemd"), "systemd needs at least one unit, e.g. [nginx.service]".into());
        }
        for (i, u) in units.iter().enumerate() {
            if u.is_empty() || u.chars().any(|c| c.is_whitespace() || c == '/') {
                f(at.key("systemd").index(i), format!("{u:?} is not a systemd unit name (e.g. nginx.service)"));
            }
        }
    }
    for (field, d) in [("timeout", h.timeout), ("interval", h.interval)] {
        if d.is_some_and(|d| d.as_std().is_zero()) {
            f(at.key(field), format!("{field} must be longer than 0s"));
        }
    }
    if h.retries == Some(0) {
        f(at.key("retries"), "retries must be at least 1 (leave it out to retry until the timeout)".into());
    }
}

fn check_names(resources: &[Resource], out: &mut Vec<Finding>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut nixos: Option<usize> = None;
    // Volumes name engine volumes, not what runs: their own check keeps them unique.
    for (i, r) in resources.iter().enumerate().filter(|(_, r)| r.kind != Kind::Volume) {
        if let Some(&first) = seen.get(r.name()) {
            let o = &resources[first];
            out.push(Finding {
                resource: i,
                path: YamlPath::of(&["metadata", "name"]),
                message: format!(
                    "name {:?} is used twice: also by the {} at {}; names must be unique on a host",
                    r.name(),
                    o.kind,
                    o.origin
                ),
            });
        } else {
            seen.insert(r.name(), i);
        }
        if r.kind == Kind::NixosSystem {
            if let Some(first) = nixos {
                out.push(Finding {
                    resource: i,
                    path: YamlPath::of(&["kind"]),
                    message: format!(
                        "a host runs one NixosSystem, and {} declares one already",
                        resources[first].origin
                    ),
                });
            } else {
                nixos = Some(i);
            }
        }
    }
}

fn check_dependencies(resources: &[Resource], untyped: &std::collections::BTreeSet<String>, out: &mut Vec<Finding>) {
    let index: HashMap<&str, usize> = resources.iter().enumerate().map(|(i, r)| (r.name(), i)).collect();
    let names: Vec<&str> = resources.iter().map(|r| r.name()).collect();
    for (i, r) in resources.iter().enumerate() {
        for (j, dep) in r.spec.depends_on().iter().enumerate() {
            let d = &dep.name;
            let path = YamlPath::of(&["spec", "depends_on"]).index(j);
            if let Some(&t) = index.get(d.as_str()) {
                let target = &resources[t];
                let oneshot = matches!(&target.spec, Spec::Container(c) if c.oneshot);
                let checked = !target.spec.health().is_empty()
                    || matches!(&target.spec, Spec::Container(c) if c.healthcheck.is_some());
                let why = match dep.condition {
                    Condition::Completed if !oneshot => {
                        Some(format!("condition completed needs {d:?} to be a oneshot container (oneshot: true)"))
                    }
                    Condition::Healthy if !checked => {
                        Some(format!("condition healthy needs {d:?} to have health checks (health or healthcheck)"))
                    }
                    Condition::Started if oneshot => {
                        Some(format!("{d:?} is a oneshot: depend on it with condition: completed"))
                    }
                    _ => None,
                };
                if let Some(why) = why {
                    out.push(Finding { resource: i, path: path.clone(), message: why });
                }
            }
            if d == r.name() {
                out.push(Finding {
                    resource: i,
                    path,
                    message: format!("{d:?} depends on itself: remove it from depends_on"),
                });
            } else if !index.contains_key(d.as_str()) && !untyped.contains(d) {
                let hint = did_you_mean(d, names.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                out.push(Finding {
                    resource: i,
                    path,
                    message: format!("depends_on names {d:?}, which no document declares{hint}"),
                });
            }
        }
    }
    // Cycles: depth-first search; report each cycle once, at the edge that closes it.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; resources.len()];
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        resources: &[Resource],
        index: &HashMap<&str, usize>,
        mark: &mut [Mark],
        stack: &mut Vec<usize>,
        out: &mut Vec<Finding>,
    ) {
        mark[i] = Mark::Active;
        stack.push(i);
        for (j, d) in resources[i].spec.depends_on().iter().enumerate() {
            let Some(&t) = index.get(d.name.as_str()) else { continue };
            if t == i {
                continue; // reported as self-dependency
            }
            match mark[t] {
                Mark::New => visit(t, resources, index, mark, stack, out),
                Mark::Active => {
                    let from = stack.iter().position(|&s| s == t).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].iter().map(|&s| resources[s].name()).collect();
                    cycle.push(resources[t].name());
                    out.push(Finding {
                        resource: i,
                        path: YamlPath::of(&["spec", "depends_on"]).index(j),
                        message: format!(
                            "depends_on forms a cycle: {}; remove one of these dependencies",
                            cycle.join(" -> ")
                        ),
                    });
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        mark[i] = Mark::Done;
    }
    for i in 0..resources.len() {
        if mark[i] == Mark::New {
            visit(i, resources, &index, &mut mark, &mut stack, out);
        }
    }
}

/// Host ports one revision may publish, in all (each is a listening proxy on the host). Also
/// bounds the work of the clash check below, which walks every published port.
pub const MAX_HOST_PORTS: usize = 65_536;

/// `ipc: container:<x>` joins x's IPC namespace, which the engine allows only when x's is
/// `shareable` (or the host's): say so before anything runs, not as a failed start.
fn check_ipc_peers(resources: &[Resource], out: &mut Vec<Finding>) {
    let ipc_of = |name: &str| {
        resources.iter().find(|r| r.name() == name).and_then(|r| match &r.spec {
            Spec::Container(c) => Some(c.ipc.clone()),
            _ => None,
        })
    };
    for (i, r) in resources.iter().enumerate() {
        let Spec::Container(c) = &r.spec else { continue };
        let Some(peer) = c.ipc.as_deref().and_then(|m| m.strip_prefix("container:")) else { continue };
        if let Some(theirs) = ipc_of(peer) {
            if !matches!(theirs.as_deref(), Some("shareable") | Some("host")) {
                out.push(Finding {
                    resource: i,
                    path: YamlPath::of(&["spec", "ipc"]),
                    message: format!(
                        "ipc container:{peer}: the engine lets a container join {peer}'s IPC namespace only when {peer} has ipc: shareable; write that on {peer}"
                    ),
                });
            }
        }
    }
}

fn check_host_ports(resources: &[Resource], out: &mut Vec<Finding>) {
    // (proto, port) -> every (ip, resource, ports index) publishing it: a clash is found by
    // one lookup per port, not by scanning every port taken so far (that was quadratic: 4.8 s
    // for one "1-65535:1-65535" entry; found by fuzzing).
    type Owners = Vec<(String, usize, usize)>;
    let mut taken: HashMap<(String, u16), Owners> = HashMap::new();
    let mut budget = MAX_HOST_PORTS;
    for (i, r) in resources.iter().enumerate() {
        let Spec::Container(c) = &r.spec else { continue };
        for (j, p) in c.ports.iter().enumerate() {
            let Ok(m) = PortMapping::parse(p) else { continue };
            let Some((lo, hi)) = m.host else { continue };
            let n = usize::from(hi - lo) + 1;
            if n > budget {
                out.push(Finding {
                    resource: i,
                    path: YamlPath::of(&["spec", "ports"]).index(j),
                    message: format!(
                        "publishes {n} host ports, past the limit of {MAX_HOST_PORTS} host ports per revision (each is a listening proxy): narrow the range"
                    ),
                });
                return;
            }
            budget -= n;
            let ip = m.ip.clone().unwrap_or_else(|| "0.0.0.0".into());
            for port in lo..=hi {
                let owners = taken.entry((m.proto.clone(), port)).or_default();
                let clash = owners.iter().find(|(kip, _, _)| kip == &ip || kip == "0.0.0.0" || ip == "0.0.0.0");
                if let Some(&(_, ri, rj)) = clash {
                    out.push(Finding {
                        resource: i,
                        path: YamlPath::of(&["spec", "ports"]).index(j),
                        message: format!(
                            "host port {port}/{} is already published by {:?} (ports[{rj}], {})",
                            m.proto,
                            resources[ri].name(),
                            resources[ri].origin
                        ),
                    });
                    break;
                }
                owners.push((ip.clone(), i, j));
            }
        }
    }
}

/// The longest `proxy.drain`: a drain holds the reconciler (and the old container) that long.
pub const MAX_DRAIN: std::time::Duration = std::time::Duration::from_secs(600);

/// `update` and `proxy` (PRODUCT.md "Zero-downtime replaces"): two containers of one resource
/// run side by side only where they can.
fn check_update(c: &ContainerSpec, spec: &YamlPath, f: &mut impl FnMut(YamlPath, String)) {
    let start_first = c.update == UpdateOrder::StartFirst;
    if start_first && c.oneshot {
        f(
            spec.key("update"),
            "a oneshot container runs to completion and is never replaced while it serves: remove update".into(),
        );
    }
    if start_first {
        for (i, a) in c.networks.iter().enumerate() {
            if a.ipv4_address.is_some() || a.ipv6_address.is_some() {
                f(
                    spec.key("networks").index(i),
                    "a static address cannot be held by two containers at once, and start-first runs the new one beside the old: remove the address, or update: start-first".into(),
                );
            }
        }
    }
    if start_first && c.network_mode.as_deref() == Some("host") {
        f(
            spec.key("update"),
            "with network_mode: host the new container would bind the old one's ports: remove update: start-first, or give the container a network and a proxy".into(),
        );
    }
    if start_first {
        for (i, p) in c.ports.iter().enumerate() {
            let Ok(m) = PortMapping::parse(p) else { continue };
            let Some((lo, _)) = m.host else { continue };
            let what = match &c.proxy {
                Some(_) => "with proxy, Caddy takes the traffic: remove this port (proxy.listen is where Caddy listens)".to_string(),
                None => format!(
                    "update: start-first runs the new container beside the old one, and two containers cannot hold host port {lo}: take the traffic through the host's Caddy instead (replace this port with proxy: {{ listen: \"127.0.0.1:{lo}\", port: {} }}), or write update: stop-first",
                    m.container.0
                ),
            };
            f(spec.key("ports").index(i), what);
        }
    }
    let Some(p) = &c.proxy else { return };
    let at = spec.key("proxy");
    if !start_first {
        f(
            at.clone(),
            "proxy moves traffic between the old and the new container of a start-first replace: add update: start-first".into(),
        );
    }
    if p.hosts.is_empty() && p.listen.is_none() {
        f(
            at.clone(),
            "proxy needs hosts (names Caddy serves, e.g. hosts: [app.example.com]) or listen (an address, e.g. listen: \"127.0.0.1:8080\"), or both".into(),
        );
    }
    for (i, h) in p.hosts.iter().enumerate() {
        if let Err(why) = proxy_host(h) {
            f(at.key("hosts").index(i), format!("host {h:?} {why}"));
        }
    }
    if let Some(l) = &p.listen {
        if let Err(why) = listen_address(l) {
            f(at.key("listen"), format!("listen {l:?} {why}"));
        }
    }
    if p.port == 0 {
        f(at.key("port"), "port is the container's port that serves HTTP, from 1 to 65535".into());
    }
    if !p.path.starts_with('/') {
        f(at.key("path"), format!("path {:?} must start with /, e.g. /up", p.path));
    }
    if p.drain.as_std() > MAX_DRAIN {
        f(
            at.key("drain"),
            format!(
                "drain {} is longer than 10m, and the old container would hold the agent that long: write at most 10m",
                p.drain
            ),
        );
    }
}

/// A host name Caddy can serve: DNS labels, an optional leading `*.` wildcard.
fn proxy_host(h: &str) -> Result<(), String> {
    let name = h.strip_prefix("*.").unwrap_or(h);
    if name.is_empty() || name.len() > 253 {
        return Err("is not a host name: write a name such as app.example.com".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("is not a host name: letters a-z, digits and '-' between dots, e.g. app.example.com (no scheme, port or path)".into());
        }
    }
    Ok(())
}

/// `IP:PORT`, `[IPv6]:PORT` or `:PORT` (every address).
pub fn listen_address(l: &str) -> Result<(), String> {
    let bad = || "is not a listen address: write IP:PORT or :PORT, e.g. 127.0.0.1:8080".to_string();
    let (host, port) = l.rsplit_once(':').ok_or_else(bad)?;
    if !host.is_empty() {
        let ip = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if ip.parse::<IpAddr>().is_err() || (host == ip && ip.contains(':')) {
            return Err(bad());
        }
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad()),
    }
}

/// Two containers cannot take one host name or one listen address, nor a listen address
/// that another container publishes as a host port.
fn check_proxies(resources: &[Resource], out: &mut Vec<Finding>) {
    let mut hosts: HashMap<&str, usize> = HashMap::new();
    let mut listens: HashMap<(String, u16), usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        let Spec::Container(c) = &r.spec else { continue };
        let Some(p) = &c.proxy else { continue };
        let at = YamlPath::of(&["spec", "proxy"]);
        for (j, h) in p.hosts.iter().enumerate() {
            match hosts.get(h.as_str()) {
                Some(&o) => out.push(Finding {
                    resource: i,
                    path: at.key("hosts").index(j),
                    message: format!(
                        "host {h:?} is already served by {:?} ({}): one host name goes to one container",
                        resources[o].name(),
                        resources[o].origin
                    ),
                }),
                None => {
                    hosts.insert(h, i);
                }
            }
        }
        let Some((ip, port)) = p.listen.as_deref().and_then(split_listen) else { continue };
        let clash =
            listens.iter().find(|((oip, oport), _)| *oport == port && (oip == &ip || oip.is_empty() || ip.is_empty()));
        if let Some((_, &o)) = clash {
            out.push(Finding {
                resource: i,
                path: at.key("listen"),
                message: format!(
                    "listen address {:?} is already taken by {:?} ({}): give each container its own",
                    p.listen.as_deref().unwrap_or(""),
                    resources[o].name(),
                    resources[o].origin
                ),
            });
            continue;
        }
        for (k, other) in resources.iter().enumerate() {
            let Spec::Container(oc) = &other.spec else { continue };
            let published = oc.ports.iter().filter_map(|s| PortMapping::parse(s).ok()).any(|m| {
                let oip = m.ip.clone().unwrap_or_default();
                let oip = if oip == "0.0.0.0" { String::new() } else { oip };
                m.host.is_some_and(|(lo, hi)| (lo..=hi).contains(&port))
                    && (oip == ip || oip.is_empty() || ip.is_empty())
            });
            if published && k != i {
                out.push(Finding {
                    resource: i,
                    path: at.key("listen"),
                    message: format!(
                        "listen address {:?} is a host port that {:?} publishes ({}): Caddy and the engine cannot both hold it",
                        p.listen.as_deref().unwrap_or(""),
                        other.name(),
                        other.origin
                    ),
                });
            }
        }
        listens.insert((ip, port), i);
    }
}

/// A valid listen address as (IP, or "" for every address; port).
pub fn split_listen(l: &str) -> Option<(String, u16)> {
    listen_address(l).ok()?;
    let (host, port) = l.rsplit_once(':')?;
    let ip = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip = if ip == "0.0.0.0" { "" } else { ip };
    Some((ip.to_string(), port.parse().ok()?))
}

/// A parsed `ports` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub ip: Option<String>,
    /// Host port range; `None` lets Docker choose.
    pub host: Option<(u16, u16)>,
    pub container: (u16, u16),
    pub proto: String,
}

impl PortMapping {
    pub fn parse(s: &str) -> Result<PortMapping, String> {
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, p)) if ["tcp", "udp", "sctp"].contains(&p) => (r, p.to_string()),
            Some((_, p)) => return Err(format!("unknown protocol {p:?} (use tcp, udp or sctp)")),
            None => (s, "tcp".to_string()),
        };
        let (ip, rest) = if let Some(after) = rest.strip_prefix('[') {
            let (addr, rest) = after.split_once(']').ok_or("an IPv6 address needs a closing ']'")?;
            let rest = rest.strip_prefix(':').ok_or("after [IPv6] write :HOST_PORT:CONTAINER_PORT")?;
            (Some(addr.to_string()), rest)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                1 | 2 => (None, rest),
                // An empty IP (`:443:443`, e.g. from `${BIND:-}:443:443`) is every interface,
                // as go-connections' `nat.ParsePortSpec` (nat/nat.go) takes it.
                3 => (Some(parts[0].to_string()).filter(|ip| !ip.is_empty()), &rest[parts[0].len() + 1..]),
                _ => return Err("too many ':' (put an IPv6 address in brackets)".into()),
            }
        };
        if let Some(ip) = &ip {
            ip.parse::<IpAddr>().map_err(|_| format!("{ip:?} is not an IP address"))?;
        }
        let (host, container) = match rest.split_once(':') {
            Some((h, c)) => (if h.is_empty() { None } else { Some(port_range(h)?) }, port_range(c)?),
            None => (None, port_range(rest)?),
        };
        if let Some((hl, hh)) = host {
            if container.0 != container.1 && hh - hl != container.1 - container.0 {
                return Err("host and container port ranges differ in length".into());
            }
        }
        if ip.is_some() && host.is_none() && !rest.contains(':') {
            return Err("an IP needs a host port (write IP::CONTAINER_PORT for a random one)".into());
        }
        Ok(PortMapping { ip, host, container, proto })
    }
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let one = |p: &str| -> Result<u16, String> {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(n) => Err(format!("port {n} is out of range 1-65535")),
            Err(_) => Err(format!("{p:?} is not a port number")),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(format!("port range {s} runs backwards"));
            }
            Ok((a, b))
        }
        None => one(s).map(|p| (p, p)),
    }
}

/// A parsed `volumes` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// An absolute host path, or a named volume.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub options: Vec<String>,
}

impl Volume {
    pub fn is_bind(&self) -> bool {
        self.source.starts_with('/')
    }

    pub fn parse(s: &str) -> Result<Volume, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [src, dst] => (*src, *dst, ""),
            [src, dst, opts] => (*src, *dst, *opts),
            [_] => return Err("no container path: a volume is SOURCE:/container/path".into()),
            _ => return Err("too many ':'".into()),
        };
        if src.starts_with('/') {
            host_path(src).map_err(|w| format!("host path {src:?} {w}"))?;
        } else if src.starts_with('.') || src.contains('/') {
            return Err(format!(
                "host path {src:?} must be absolute (desired state is applied on the host, not in the repo)"
            ));
        } else if !docker_object_name(src) {
            return Err(format!("{src:?} is neither an absolute host path nor a volume name"));
        }
        host_path(dst).map_err(|w| format!("container path {dst:?} {w}"))?;
        let mut read_only = false;
        let mut options = Vec::new();
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "z" | "Z" | "nocopy" | "shared" | "slave" | "private" | "rshared" | "rslave" | "rprivate"
                | "delegated" | "cached" | "consistent" => options.push(o.to_string()),
                _ => return Err(format!("unknown option {o:?} (ro, rw, z, Z, nocopy, or a propagation mode)")),
            }
        }
        Ok(Volume { source: src.to_string(), target: dst.to_string(), read_only, options })
    }
}

/// Docker names for volumes and networks: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn docker_object_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A path on the host: absolute, no `..`.
pub fn host_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err("must be an absolute path (start with /)".into());
    }
    if p.split('/').any(|c| c == "..") {
        return Err("may not contain '..': write the path it resolves to".into());
    }
    if p.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    Ok(())
}

/// A path inside the repository, relative to its root, that stays inside it.
pub fn repo_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        return Err("must be relative to the repository root (e.g. apps/api), not absolute".into());
    }
    let mut depth: i64 = 0;
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err("escapes the repository root: remove the '..'".into());
                }
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

/// A relative path that stays below its base and names something (not the base itself).
fn relative_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        return Err("must be relative, not absolute".into());
    }
    if p.split('/').any(|c| c == "..") {
        return Err("may not contain '..'".into());
    }
    if p.split('/').all(|c| c.is_empty() || c == ".") {
        return Err("names no file".into());
    }
    Ok(())
}

fn http_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return Err("has no host".into());
    }
    if let Some((_, port)) = hostport.rsplit_once(':').filter(|_| !hostport.ends_with(']')) {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("has a bad port {port:?}")),
        }
    }
    if u.chars().any(|c| c.is_whitespace()) {
        return Err("contains white space (encode it as %20)".into());
    }
    Ok(())
}

fn host_port(a: &str) -> Result<(), String> {
    let (host, port) = a.rsplit_once(':').ok_or("needs host:port, e.g. 127.0.0.1:5432")?;
    if host.is_empty() {
        return Err("needs a host before the ':'".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 address goes in brackets: [::1]:5432".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

/// Check an image reference against Docker's grammar:
/// `[host[:port]/]path[:tag][@algo:hex]`, path components lowercase.
pub fn image_reference(r: &str) -> Result<(), String> {
    if r.is_empty() {
        return Err("it is empty".into());
    }
    let (name_tag, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':').ok_or("a digest is sha256:<64 hex digits>")?;
        if algo != "sha256" || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err("a digest is sha256:<64 lowercase hex digits>".into());
        }
    }
    // A tag follows the last ':' that comes after the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
        None => (name_tag, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(format!("tag {t:?} may hold letters, digits, '_', '.', '-' (up to 128)"));
        }
    }
    let mut comps: Vec<&str> = name.split('/').collect();
    if comps.len() > 1 && (comps[0].contains('.') || comps[0].contains(':') || comps[0] == "localhost") {
        let host = comps.remove(0);
        let (h, port) = match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c)) {
            return Err(format!("registry host {host:?} is not a host name"));
        }
        if port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err(format!("registry host {host:?} has a bad port"));
        }
    }
    for c in &comps {
        if c.is_empty() {
            return Err("it has an empty path component".into());
        }
        if c.chars().any(|ch| ch.is_ascii_uppercase()) {
            return Err(format!("{c:?} must be lowercase"));
        }
        let valid_chars = c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
        let ends_ok =
            c.starts_with(|ch: char| ch.is_ascii_alphanumeric()) && c.ends_with(|ch: char| ch.is_ascii_alphanumeric());
        if !valid_chars || !ends_ok || c.contains("..") || c.contains("___") {
            return Err(format!("{c:?} may hold lowercase letters, digits and single separators (., _, __, -)"));
        }
    }
    Ok(())
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d > 0 && *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits and adjacent swaps (`imgae` → `image` is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Container names follow the engine (compose projects name services `immich_redis`,
    /// `realtime-dev.supabase-realtime`); the engine refuses one character (seen: "Invalid
    /// container name (a)") and a leading `_`, `.` or `-`.
    #[test]
    fn container_names_are_the_engines() {
        for ok in ["web", "immich_redis", "plausible_db", "realtime-dev.supabase-realtime", "Web-1", "db2"] {
            assert_eq!(container_name(ok), Ok(()), "{ok}");
        }
        for bad in ["a", "", "_x", ".x", "-x", "a/b", "web 1", "caf\u{e9}"] {
            assert!(container_name(bad).is_err(), "{bad}");
        }
        assert!(container_name(&"x".repeat(129)).is_err());
        // The other kinds keep DNS labels.
        assert!(dns_label("immich_redis").is_err());
    }

    #[test]
    fn image_references() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "library/busybox:latest",
            "registry.example.com/web:1.4.2",
            "localhost:5000/a/b_c/d-e:v1",
            "localhost/x",
            "web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "r.io/web:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "driftless-test/app:v2",
        ] {
            assert_eq!(image_reference(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Web:1", "web:", "web::1", "web@sha256:12", "-web", "web/", "a..b", "web:1 2", "host:x/web"] {
            assert!(image_reference(bad).is_err(), "{bad} should be refused");
        }
    }

    /// Subnets and static addresses as the engine takes them: an address in its network's
    /// subnet, IPv6 only with enable_ipv6, no address twice on one network.
    #[test]
    fn subnets_and_static_addresses() {
        let net = cidr("172.28.0.0/16").unwrap();
        assert!(in_subnet(net, "172.28.5.9".parse().unwrap()));
        assert!(!in_subnet(net, "172.29.0.1".parse().unwrap()));
        assert!(!in_subnet(net, "fd00::1".parse().unwrap()));
        assert!(in_subnet(cidr("0.0.0.0/0").unwrap(), "8.8.8.8".parse().unwrap()));
        assert!(in_subnet(cidr("fd00:db8::/64").unwrap(), "fd00:db8::42".parse().unwrap()));
        for bad in ["172.28.0.0", "172.28.0.0/33", "x/8", "fd00::/129"] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_mappings() {
        let p = PortMapping::parse("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (p.ip.as_deref(), p.host, p.container, p.proto.as_str()),
            (Some("127.0.0.1"), Some((8080, 8080)), (80, 80), "tcp")
        );
        let p = PortMapping::parse("[::1]:53:53/udp").unwrap();
        assert_eq!((p.ip.as_deref(), p.proto.as_str()), (Some("::1"), "udp"));
        assert_eq!(PortMapping::parse("80").unwrap().host, None);
        assert_eq!(PortMapping::parse("127.0.0.1::80").unwrap().host, None);
        assert_eq!(PortMapping::parse("8000-8001:9000-9001").unwrap().host, Some((8000, 8001)));
        // go-connections nat/nat.go `ParsePortSpec`: an empty IP is every interface.
        let p = PortMapping::parse(":443:443").unwrap();
        assert_eq!((p.ip, p.host, p.container), (None, Some((443, 443)), (443, 443)));
        for bad in
            ["", "0", "65536", "80:80:80:80", "a:80", "8080:80/icmp", "1.2.3:80:80", "8000-8002:9000-9001", "90-80"]
        {
            assert!(PortMapping::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn volumes() {
        let v = Volume::parse("/srv/web/data:/data:ro").unwrap();
        assert!(v.read_only && v.is_bind());
        assert!(!Volume::parse("webdata:/data").unwrap().is_bind());
        for bad in ["/data", "./data:/data", "/a:data", "/a:/b:rx", "/a/../b:/c", "a:b:c:d", "da ta:/x"] {
            assert!(Volume::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn paths() {
        assert!(repo_path("apps/api").is_ok());
        assert!(repo_path(".").is_ok());
        assert!(repo_path("a/../b").is_ok());
        assert!(repo_path("../x").is_err());
        assert!(repo_path("a/../../x").is_err());
        assert!(repo_path("/etc").is_err());
        assert!(host_path("/var/www/api").is_ok());
        assert!(host_path("var/www").is_err());
        assert!(host_path("/var/../etc").is_err());
    }

    #[test]
    fn typo_hints() {
        assert_eq!(did_you_mean("imgae", ["image", "ports", "env"]), Some("image"));
        assert_eq!(did_you_mean("zzz", ["image", "ports"]), None);
    }
}
