//! One compose service → one `Container` document (`Cx::service`): every key of the
//! specification's service schema carried one to one (`ONE_TO_ONE`, with how its value is
//! cast), converted by a function of its own (`key_*`, with `volume` and `deploy`), read
//! elsewhere (`extends`, `scale`, `profiles`), or refused with its position and what to
//! write; then what the keys imply together (`finish`: the default network, implied
//! dependencies, external objects). Replicas (`replica_count`) and the shape checks compose
//! itself makes (`wrong_shape`) too.
//!
//! Past 1,000 lines: the service schema of the compose specification is that long; each key
//! keeps its refusal beside its conversion.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::converted::Generated;
use super::cx::Cx;
use super::engine;
use super::paths::shown_path;
use super::values::*;
use crate::source_map::{DocMap, YamlPath};
use crate::types::Origin;

/// One service being converted, with what the file declares around it.
pub(super) struct Service<'a> {
    pub(super) name: &'a str,
    pub(super) at: YamlPath,
    pub(super) names: &'a BTreeMap<String, String>,
    /// Containers per service (`deploy.replicas`): a dependency on a replicated service is
    /// a dependency on each of its containers.
    pub(super) replicas: &'a BTreeMap<String, u64>,
    pub(super) networks: &'a BTreeMap<String, String>,
    pub(super) volumes: &'a BTreeMap<String, String>,
    /// Every key under the top-level `secrets` (also those refused there).
    pub(super) declared_secrets: &'a std::collections::BTreeSet<String>,
    /// Top-level secrets: key → (source path, the `.env` variable holding it, if any).
    pub(super) secrets: &'a BTreeMap<String, (String, Option<String>)>,
    /// Top-level configs, as secrets; and every key under `configs` (also those refused).
    pub(super) configs: &'a BTreeMap<String, (String, Option<String>)>,
    pub(super) declared_configs: &'a std::collections::BTreeSet<String>,
    pub(super) project: &'a str,
    /// Engine names of the top-level objects marked `external` (under `volumes`,
    /// `networks`) or `internal` (under `internal`: networks).
    pub(super) marked: &'a BTreeMap<&'a str, std::collections::BTreeSet<String>>,
    /// How the agent creates top-level networks (`enable_ipv6`, `ipam`) and volumes
    /// (`driver_opts`), by engine name.
    pub(super) network_options: &'a BTreeMap<String, Value>,
    pub(super) volume_options: &'a BTreeMap<String, Value>,
}

/// How a one-to-one key's value is carried into the spec.
#[derive(Clone, Copy, Debug)]
enum Cast {
    /// As written.
    Same,
    /// A list of strings (`cap_add: [NET_ADMIN]`).
    Strings,
    /// A scalar as text (`cpus: 0.5` → `"0.5"`).
    Text,
    /// A number, or a string that holds one.
    Number,
    /// Every number within (`ulimits`).
    Numbers,
}

impl Cast {
    fn apply(self, v: &Value) -> Value {
        match self {
            Cast::Same => v.clone(),
            Cast::Strings => strings_of(v),
            Cast::Text => scalar_text(v),
            Cast::Number => numberish(v),
            Cast::Numbers => numbers_within(v),
        }
    }
}

/// The service keys that map one to one onto the Container spec's key of the same name.
const ONE_TO_ONE: &[(&str, Cast)] = &[
    ("image", Cast::Same),
    ("user", Cast::Same),
    ("working_dir", Cast::Same),
    ("hostname", Cast::Same),
    ("init", Cast::Same),
    ("privileged", Cast::Same),
    ("read_only", Cast::Same),
    ("cap_add", Cast::Strings),
    ("cap_drop", Cast::Strings),
    ("security_opt", Cast::Strings),
    ("shm_size", Cast::Text),
    ("stop_signal", Cast::Same),
    ("pids_limit", Cast::Number),
    ("cpus", Cast::Text),
    ("group_add", Cast::Strings),
    ("logging", Cast::Same),
    ("ulimits", Cast::Numbers),
    ("cpu_shares", Cast::Number),
    ("cpu_period", Cast::Number),
    ("cpu_quota", Cast::Number),
    ("cpuset", Cast::Text),
    ("mem_reservation", Cast::Text),
    ("memswap_limit", Cast::Text),
    ("mem_swappiness", Cast::Number),
    ("oom_kill_disable", Cast::Same),
    ("oom_score_adj", Cast::Number),
    ("uts", Cast::Text),
    ("userns_mode", Cast::Text),
    ("cgroup", Cast::Text),
    ("cgroup_parent", Cast::Text),
    ("device_cgroup_rules", Cast::Strings),
    ("runtime", Cast::Text),
    ("tty", Cast::Same),
    ("stdin_open", Cast::Same),
    ("expose", Cast::Strings),
];

/// The Container document being made from one service.
pub(super) struct Draft {
    /// The `spec` mapping so far.
    spec: Mapping,
    /// Positions: the node of the compose file each node of the document came from.
    docmap: DocMap,
    /// `x-driftless.environments`, `x-driftless.hosts` and `x-driftless.health`.
    environments: Option<Value>,
    hosts: Option<Value>,
    health: Option<Value>,
    /// The container's name: `container_name`, else the service's.
    container: String,
    /// Whether `network_mode` was written (then no default network).
    network_mode_set: bool,
    /// Containers whose namespaces or volumes this one takes (`service:x`, `volumes_from`,
    /// `links`): implied dependencies.
    peers: Vec<String>,
}

impl Draft {
    /// An empty document for `sv`, whose errors name the service's path, not the generated one.
    fn new(cmap: &DocMap, sv: &Service<'_>) -> Draft {
        let at = &sv.at;
        let mut docmap = DocMap::starting_at(cmap.value_pos(at));
        docmap.alias_node(cmap, at, &YamlPath::root());
        docmap.alias_node(cmap, at, &spec_path());
        docmap.show_as(&YamlPath::root(), at);
        docmap.show_as(&spec_path(), at);
        docmap.show_as(&YamlPath::root().key("metadata"), at);
        docmap.show_as(&YamlPath::root().key("metadata").key("name"), at);
        Draft {
            spec: Mapping::new(),
            docmap,
            environments: None,
            hosts: None,
            health: None,
            container: sv.names.get(sv.name).cloned().unwrap_or_else(|| sv.name.to_string()),
            network_mode_set: false,
            peers: Vec::new(),
        }
    }

    /// Record that `spec.<to>` came from the service's `<from>` (at `at`).
    fn alias(&mut self, cmap: &DocMap, at: &YamlPath, from: &str, to: &str) {
        self.docmap.generated_from(cmap, &at.key(from), &spec_path().key(to));
    }
}

/// `spec`, the path of a document's spec.
fn spec_path() -> YamlPath {
    YamlPath::root().key("spec")
}

impl Cx<'_> {
    /// Convert one service to a Container document: each key of the service carried one to
    /// one (`ONE_TO_ONE`), converted by its own function (`key_*`), read elsewhere, or
    /// refused with what to write; then what the keys imply together (`finish`).
    pub(super) fn service(&mut self, sv: &Service<'_>, svc: &Mapping) -> Option<Generated> {
        let mut d = Draft::new(self.map, sv);
        for (k, v) in svc {
            let key = k.as_str().unwrap_or("");
            let kat = sv.at.key(key);
            if let Some(why) = wrong_shape(key, v) {
                self.err(&kat, &why);
                continue;
            }
            if let Some((_, cast)) = ONE_TO_ONE.iter().find(|(name, _)| *name == key) {
                d.spec.insert(key.into(), cast.apply(v));
                d.alias(self.map, &sv.at, key, key);
                continue;
            }
            match key {
                "container_name" | "profiles" => {}
                // Whether `docker compose up` prints the service's output: the agent runs
                // detached and prints no container's output, whatever it says.
                "attach" => {}
                // `docker compose watch` (and `up --watch`) read it; `up` does nothing with
                // it, and neither does the agent.
                "develop" => {}
                "platform" => self.key_platform(&mut d, sv, key, &kat, v),
                k if k.starts_with("x-") && k != "x-driftless" => {}
                "x-driftless" => self.key_x_driftless(&mut d, sv, key, &kat, v),
                "command" | "entrypoint" => self.key_command(&mut d, sv, key, &kat, v),
                "environment" => self.key_environment(&mut d, sv, key, &kat, v),
                "env_file" => self.key_env_file(&mut d, sv, key, &kat, v),
                "ports" => self.key_ports(&mut d, sv, key, &kat, v),
                "volumes" => self.key_volumes(&mut d, sv, key, &kat, v),
                "tmpfs" => self.key_tmpfs(&mut d, sv, key, &kat, v),
                "networks" => self.key_networks(&mut d, sv, key, &kat, v),
                "network_mode" | "ipc" | "pid" => self.key_network_mode(&mut d, sv, key, &kat, v),
                "depends_on" => self.key_depends_on(&mut d, sv, key, &kat, v),
                "restart" => self.key_restart(svc, &mut d, sv, key, &kat, v),
                "labels" | "label_file" => self.key_labels(svc, &mut d, sv, key, &kat, v),
                // Resolved before the files merged (`extends::apply`); one left here could not
                // be, and that is reported where it is written.
                "extends" => {}
                "sysctls" => self.key_sysctls(&mut d, sv, key, &kat, v),
                "extra_hosts" => self.key_extra_hosts(&mut d, sv, key, &kat, v),
                "dns" | "dns_search" | "dns_opt" => self.key_dns(&mut d, sv, key, &kat, v),
                "domainname" => self.key_domainname(&mut d, sv, key, &kat, v),
                "devices" => self.key_devices(&mut d, sv, key, &kat, v),
                "mem_limit" => self.key_mem_limit(&mut d, sv, key, &kat, v),
                "stop_grace_period" => self.key_stop_grace_period(&mut d, sv, key, &kat, v),
                "pull_policy" => self.key_pull_policy(&mut d, sv, key, &kat, v),
                "build" => self.key_build(&mut d, sv, key, &kat, v),
                "healthcheck" => self.key_healthcheck(&mut d, sv, key, &kat, v),
                "secrets" | "configs" => self.key_secrets(&mut d, sv, key, &kat, v),
                "volumes_from" => self.key_volumes_from(&mut d, sv, key, &kat, v),
                "links" | "external_links" => self.key_links(&mut d, sv, key, &kat, v),
                "gpus" | "post_start" | "pre_stop" | "blkio_config" => self.key_gpus(&mut d, sv, key, &kat, v),
                "storage_opt" | "annotations" => self.key_storage_opt(&mut d, sv, key, &kat, v),
                "mac_address" => self.key_mac_address(&mut d, sv, key, &kat, v),
                "deploy" => self.deploy(&kat, v, &mut d.spec, &mut d.docmap, &sv.at),
                "scale" => {} // read by `replica_count`
                other => {
                    let hint = unsupported_hint(other);
                    self.key_err(&kat, &hint);
                }
            }
        }
        self.finish(sv, d)
    }

    /// What the keys of a service imply together: compose's default network, the implied
    /// dependencies, the external and internal objects and the options of those it uses,
    /// compose's default restart, and the document with its positions.
    fn finish(&mut self, sv: &Service<'_>, mut d: Draft) -> Option<Generated> {
        let at = &sv.at;
        if !d.network_mode_set && !d.spec.contains_key("networks") {
            // Compose's default network: every service of the file on one, by project.
            let mut nets = Vec::new();
            let default = sv.networks.get("default").cloned().unwrap_or_else(|| format!("{}_default", sv.project));
            if d.container != sv.name {
                let mut m = Mapping::new();
                m.insert("name".into(), default.into());
                m.insert("aliases".into(), Value::Sequence(vec![Value::String(sv.name.to_string())]));
                nets.push(Value::Mapping(m));
            } else {
                nets.push(Value::String(default));
            }
            d.spec.insert("networks".into(), Value::Sequence(nets));
        }
        for peer in d.peers {
            // The implied dependency of `network_mode: service:x` and `ipc: service:x`
            // (unless written already).
            let mut deps = d.spec.get("depends_on").and_then(Value::as_sequence).cloned().unwrap_or_default();
            let named = |d: &Value| d.as_str().or_else(|| d.get("name").and_then(Value::as_str)) == Some(peer.as_str());
            if !deps.iter().any(named) {
                deps.push(Value::String(peer));
                d.spec.insert("depends_on".into(), Value::Sequence(deps));
            }
        }
        // The volumes and networks this service uses that are marked external (they must
        // exist already) or internal (created without a route out).
        let names = |key: &str, name: fn(&Value) -> Option<&str>| -> Vec<String> {
            let list = d.spec.get(key).and_then(Value::as_sequence).into_iter().flatten();
            list.filter_map(name).map(str::to_string).collect()
        };
        let volumes = names("volumes", |v| v.as_str().and_then(|s| s.split(':').next()));
        let networks = names("networks", |v| v.as_str().or_else(|| v.get("name").and_then(Value::as_str)));
        let among = |names: &[String], mark: &str| -> Vec<Value> {
            let set = sv.marked.get(mark);
            names.iter().filter(|n| set.is_some_and(|e| e.contains(*n))).map(|n| Value::String(n.clone())).collect()
        };
        let (used_volumes, used_networks, internal) =
            (among(&volumes, "volumes"), among(&networks, "networks"), among(&networks, "internal"));
        for (key, names, options) in
            [("network_options", &networks, sv.network_options), ("volume_options", &volumes, sv.volume_options)]
        {
            let used: Mapping =
                names.iter().filter_map(|n| options.get(n).map(|o| (Value::String(n.clone()), o.clone()))).collect();
            if !used.is_empty() {
                d.spec.insert(key.into(), Value::Mapping(used));
            }
        }
        if !internal.is_empty() {
            d.spec.insert("internal_networks".into(), Value::Sequence(internal));
        }
        if !used_volumes.is_empty() || !used_networks.is_empty() {
            let mut ext = Mapping::new();
            if !used_volumes.is_empty() {
                ext.insert("volumes".into(), Value::Sequence(used_volumes));
            }
            if !used_networks.is_empty() {
                ext.insert("networks".into(), Value::Sequence(used_networks));
            }
            d.spec.insert("external".into(), Value::Mapping(ext));
        }
        if !d.spec.contains_key("restart") {
            // Compose's default: a container that exits stays exited.
            d.spec.insert("restart".into(), "no".into());
        }
        if let Some(h) = d.health {
            d.spec.insert("health".into(), h);
        }
        let mut doc = Mapping::new();
        doc.insert("apiVersion".into(), "driftless/v1".into());
        doc.insert("kind".into(), "Container".into());
        let mut meta = Mapping::new();
        meta.insert("name".into(), d.container.into());
        doc.insert("metadata".into(), Value::Mapping(meta));
        doc.insert("spec".into(), Value::Mapping(d.spec));
        if let Some(h) = d.hosts {
            doc.insert("hosts".into(), h);
        }
        if let Some(e) = d.environments {
            doc.insert("environments".into(), e);
        }
        d.docmap.alias_node(self.map, at, &YamlPath::root().key("metadata").key("name"));
        let container_name_at = at.key("container_name");
        if self.map.contains(&container_name_at) {
            d.docmap.alias_node(self.map, &container_name_at, &YamlPath::root().key("metadata").key("name"));
        }
        let file = self.map.file_at(at).unwrap_or(self.file).to_string();
        let origin = Origin { file, line: self.map.key_pos(at).line };
        Some(Generated { doc: Value::Mapping(doc), map: d.docmap, origin })
    }

    /// `platform`.
    fn key_platform(&mut self, _d: &mut Draft, _sv: &Service<'_>, _key: &str, kat: &YamlPath, v: &Value) {
        let p = scalar_string(v);
        if !p.is_empty() && p != host_platform() {
            self.err(kat, &format!("platform {p:?} is not this host's ({}): Driftless runs images on the engine's own platform; remove it", host_platform()));
        }
    }

    /// `x-driftless`.
    fn key_x_driftless(&mut self, d: &mut Draft, sv: &Service<'_>, _key: &str, kat: &YamlPath, v: &Value) {
        let Some(m) = v.as_mapping() else {
            self.err(
                kat,
                "x-driftless is a mapping: { health: [...], proxy: {...}, environments: {...}, hosts: {...} }",
            );
            return;
        };
        for (xk, xv) in m {
            match xk.as_str().unwrap_or("") {
                "health" => {
                    d.health = Some(xv.clone());
                    d.alias(self.map, &sv.at, "x-driftless", "health");
                    d.docmap.generated_from(self.map, &kat.key("health"), &spec_path().key("health"));
                }
                "proxy" => {
                    d.spec.insert("proxy".into(), xv.clone());
                    d.docmap.generated_from(self.map, &kat.key("proxy"), &spec_path().key("proxy"));
                }
                "environments" => {
                    d.environments = Some(xv.clone());
                    d.docmap.generated_from(self.map, &kat.key("environments"), &YamlPath::root().key("environments"));
                }
                "hosts" => {
                    d.hosts = Some(xv.clone());
                    d.docmap.generated_from(self.map, &kat.key("hosts"), &YamlPath::root().key("hosts"));
                }
                other => self.key_err(
                    &kat.key(other),
                    &format!("unknown key `{other}` in x-driftless; expected health, proxy, environments or hosts"),
                ),
            }
        }
    }

    /// `command`, `entrypoint`.
    fn key_command(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        match v {
            Value::String(s) => match shell_words(s) {
                Some(words) => {
                    d.spec.insert(key.into(), Value::Sequence(words.into_iter().map(Value::String).collect()));
                    d.alias(self.map, &sv.at, key, key);
                }
                None => self.err(kat, &format!("{key} has an unclosed quote")),
            },
            Value::Sequence(_) => {
                d.spec.insert(key.into(), strings_of(v));
                d.alias(self.map, &sv.at, key, key);
            }
            Value::Null => {}
            _ => self.err(kat, &format!("{key} is a string or a list")),
        }
    }

    /// `environment`.
    fn key_environment(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut env = Mapping::new();
        match v {
            Value::Mapping(m) => {
                for (ek, ev) in m {
                    let name = key_text(ek);
                    let value = if ev.is_null() { self.vars.get(&name).cloned() } else { Some(scalar_string(ev)) };
                    match value {
                                Some(val) => {
                                    env.insert(name.into(), val.into());
                                }
                                None => self.warn(&kat.key(name.as_str()), &format!("{name} has no value and is not in the .env beside the compose file: it is left unset (the agent's own environment is never passed)")),
                            }
                }
            }
            Value::Sequence(s) => {
                for (i, item) in s.iter().enumerate() {
                    let text = scalar_string(item);
                    match text.split_once('=') {
                                Some((n, val)) => {
                                    env.insert(n.into(), val.into());
                                }
                                None => match self.vars.get(&text).cloned() {
                                    Some(val) => {
                                        env.insert(text.into(), val.into());
                                    }
                                    None => self.warn(&kat.index(i), &format!("{text} has no value and is not in the .env beside the compose file: it is left unset (the agent's own environment is never passed)")),
                                },
                            }
                }
            }
            Value::Null => {}
            _ => self.err(kat, "environment is a mapping or a list of KEY=value"),
        }
        if !env.is_empty() {
            d.spec.insert("env".into(), Value::Mapping(env));
            d.alias(self.map, &sv.at, key, "env");
        }
    }

    /// `env_file`.
    fn key_env_file(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut files = Vec::new();
        let items: Vec<(YamlPath, &Value)> = match v {
            Value::Sequence(s) => s.iter().enumerate().map(|(i, x)| (kat.index(i), x)).collect(),
            other => vec![(kat.clone(), other)],
        };
        for (iat, item) in items {
            let mut required = true;
            let p = match item {
                Value::String(p) => Some(p.clone()),
                Value::Mapping(m) => {
                    // compose-spec 05-services.md: `required: false` skips a file
                    // that is not there.
                    match m.get("required") {
                        None | Some(Value::Bool(true)) => {}
                        Some(Value::Bool(false)) => required = false,
                        Some(_) => self.err(&iat.key("required"), "required is true or false"),
                    }
                    if m.get("format").is_some() {
                        self.err(&iat.key("format"), "env_file format is not supported: write KEY=value lines");
                    }
                    m.get("path").and_then(Value::as_str).map(str::to_string)
                }
                _ => None,
            };
            let entry = |path: String| {
                if required {
                    return Value::String(path);
                }
                let mut m = Mapping::new();
                m.insert("path".into(), path.into());
                m.insert("required".into(), false.into());
                Value::Mapping(m)
            };
            match p {
                Some(p) if p.starts_with('/') => files.push(entry(p)),
                Some(p) => {
                    if let Some(r) = self.repo_path(&iat, &p) {
                        files.push(entry(r));
                    }
                }
                None => self.err(&iat, "env_file is a path, a list of paths, or { path, required }"),
            }
        }
        d.spec.insert("env_files".into(), Value::Sequence(files));
        d.alias(self.map, &sv.at, key, "env_files");
        // compose-go resolves an env_file's `${VAR}` from the project's
        // environment, the `.env` (loader/loader.go → types `GetEnvFromFile`
        // with the project environment as its lookup).
        if let Some(p) = &self.dotenv_path {
            d.spec.insert("env_files_vars".into(), Value::String(p.clone()));
        }
    }

    /// `ports`.
    fn key_ports(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut ports = Vec::new();
        for (i, p) in v.as_sequence().into_iter().flatten().enumerate() {
            match port(p) {
                Ok(s) => ports.push(Value::String(s)),
                Err(why) => self.err(&kat.index(i), &why),
            }
        }
        d.spec.insert("ports".into(), Value::Sequence(ports));
        d.alias(self.map, &sv.at, key, "ports");
    }

    /// `volumes`.
    fn key_volumes(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let (mut vols, mut files, mut tmpfs) = (Vec::new(), Vec::new(), Vec::new());
        for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
            self.volume(sv, &kat.index(i), item, &mut vols, &mut files, &mut tmpfs);
        }
        if !vols.is_empty() {
            d.spec.insert("volumes".into(), Value::Sequence(vols));
            d.alias(self.map, &sv.at, key, "volumes");
        }
        if !files.is_empty() {
            d.spec.insert("files".into(), Value::Sequence(files));
            d.alias(self.map, &sv.at, key, "files");
        }
        if !tmpfs.is_empty() {
            let mut all = d.spec.get("tmpfs").and_then(Value::as_sequence).cloned().unwrap_or_default();
            all.extend(tmpfs);
            d.spec.insert("tmpfs".into(), Value::Sequence(all));
        }
    }

    /// `tmpfs`.
    fn key_tmpfs(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        let mut all = d.spec.get("tmpfs").and_then(Value::as_sequence).cloned().unwrap_or_default();
        match strings_of(v) {
            Value::Sequence(s) => all.extend(s),
            other => all.push(other),
        }
        d.spec.insert("tmpfs".into(), Value::Sequence(all));
        d.alias(self.map, &sv.at, key, "tmpfs");
    }

    /// `networks`.
    fn key_networks(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut nets = Vec::new();
        let entries = names_or_map(v);
        for (n, conf) in entries {
            let real = match sv.networks.get(&n) {
                Some(r) => r.clone(),
                None => {
                    self.err(kat, &format!("network {n:?} is not declared: add it under the top-level networks: ({n}: {{}}), or remove it here"));
                    continue;
                }
            };
            let mut aliases: Vec<Value> = Vec::new();
            let mut addresses: Vec<(&str, Value)> = Vec::new();
            if let Some(Value::Mapping(c)) = conf {
                for (ck, cv) in c {
                    match ck.as_str().unwrap_or("") {
                                "aliases" => aliases = strings_of(cv).as_sequence().cloned().unwrap_or_default(),
                                k @ ("ipv4_address" | "ipv6_address") => addresses.push((k, Value::String(scalar_string(cv)))),
                                other => self.key_err(&kat.key(n.as_str()).key(other), "not supported by Driftless: a service's network holds aliases, ipv4_address and ipv6_address; remove it"),
                            }
                }
            }
            if d.container != sv.name && !aliases.iter().any(|a| a.as_str() == Some(sv.name)) {
                aliases.push(Value::String(sv.name.to_string())); // reachable by its service name, as in compose
            }
            if aliases.is_empty() && addresses.is_empty() {
                nets.push(Value::String(real));
            } else {
                let mut m = Mapping::new();
                m.insert("name".into(), real.into());
                m.insert("aliases".into(), Value::Sequence(aliases));
                for (k, a) in addresses {
                    m.insert(k.into(), a);
                }
                nets.push(Value::Mapping(m));
            }
        }
        d.spec.insert("networks".into(), Value::Sequence(nets));
        d.alias(self.map, &sv.at, key, "networks");
    }

    /// `network_mode`, `ipc`, `pid`.
    fn key_network_mode(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        d.network_mode_set |= key == "network_mode";
        let mode = scalar_string(v);
        let what = match key {
            "ipc" => "IPC namespace",
            "pid" => "PID namespace",
            _ => "network",
        };
        let mode = match mode.strip_prefix("service:") {
            // Compose runs the service in x's namespace and starts x first: the
            // engine's `container:<x's container>`, and an implied depends_on.
            Some(s) => match sv.names.get(s) {
                Some(_) if sv.replicas.get(s) == Some(&0) => {
                    self.err(kat, &format!("{key} service:{s}: {s} runs no container (deploy.replicas: 0) whose {what} this one could share: give {s} a replica, or use another {key}"));
                    return;
                }
                // A replicated x: its first container, as compose takes it.
                Some(c) => {
                    d.peers.push(c.clone());
                    format!("container:{c}")
                }
                None => {
                    self.err(kat, &format!("{key} service:{s} names no service of this file; name one of its services ({key}: service:<name>), or use container:<name> for a container outside it"));
                    return;
                }
            },
            None => mode,
        };
        d.spec.insert(key.into(), mode.into());
        d.alias(self.map, &sv.at, key, key);
    }

    /// `depends_on`.
    fn key_depends_on(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut deps = Vec::new();
        let entries = names_or_map(v);
        for (n, conf) in entries {
            let targets: Vec<String> = match sv.replicas.get(&n).copied() {
                Some(0) => {
                    self.err(&kat.key(n.as_str()), &format!("service {n:?} runs no container (deploy.replicas: 0), so nothing can be waited for: remove this dependency, or give {n:?} a replica"));
                    continue;
                }
                Some(c) if c > 1 => (1..=c).map(|i| format!("{n}-{i}")).collect(),
                _ => vec![sv.names.get(&n).cloned().unwrap_or(n.clone())],
            };
            let mut condition = "started";
            let mut restart = false;
            if let Some(Value::Mapping(c)) = conf {
                for (ck, cv) in c {
                    let cat = kat.key(n.as_str()).key(ck.as_str().unwrap_or(""));
                    match (ck.as_str().unwrap_or(""), cv) {
                                ("condition", Value::String(s)) => {
                                    condition = match s.as_str() {
                                        "service_started" => "started",
                                        "service_healthy" => "healthy",
                                        "service_completed_successfully" => "completed",
                                        other => {
                                            self.err(&cat, &format!("unknown condition {other:?}; expected service_started, service_healthy or service_completed_successfully"));
                                            "started"
                                        }
                                    }
                                }
                                ("required", Value::Bool(true)) => {}
                                ("required", _) => self.err(&cat, "not supported by Driftless: every dependency runs; remove required: false, or the dependency"),
                                ("restart", Value::Bool(b)) => restart = *b,
                                ("restart", _) => self.err(&cat, "restart is true or false"),
                                (other, _) => self.key_err(&cat, &format!("unknown key `{other}` of a dependency; expected condition, required or restart")),
                            }
                }
            }
            for target in targets {
                if condition == "started" && !restart {
                    deps.push(Value::String(target));
                } else {
                    let mut m = Mapping::new();
                    m.insert("name".into(), target.into());
                    m.insert("condition".into(), condition.into());
                    if restart {
                        m.insert("restart".into(), true.into());
                    }
                    deps.push(Value::Mapping(m));
                }
            }
        }
        d.spec.insert("depends_on".into(), Value::Sequence(deps));
        d.alias(self.map, &sv.at, key, "depends_on");
    }

    /// `restart`.
    fn key_restart(&mut self, svc: &Mapping, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        // When both are set, compose takes deploy.restart_policy.
        if svc.get("deploy").and_then(|d| d.get("restart_policy")).is_none() {
            d.spec.insert("restart".into(), scalar_text(v));
            d.alias(self.map, &sv.at, key, "restart");
        }
    }

    /// `labels`, `label_file`: compose-go's `WithServicesLabelsResolved`: each `label_file`'s labels over
    /// the files' before it, `labels` over them all.
    fn key_labels(&mut self, svc: &Mapping, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, _v: &Value) {
        if key == "label_file" && svc.contains_key("labels") {
            return; // read with `labels`
        }
        let mut labels = match svc.get("label_file") {
            Some(files) => self.label_files(&sv.at.key("label_file"), files),
            None => BTreeMap::new(),
        };
        if let (Some(own), "labels") = (svc.get("labels"), key) {
            if let Value::Mapping(own) = map_of_strings(own) {
                labels.extend(own.iter().map(|(k, v)| (key_text(k), scalar_string(v))));
            }
        }
        let m: Mapping = labels.into_iter().map(|(k, v)| (Value::String(k), Value::String(v))).collect();
        d.spec.insert("labels".into(), Value::Mapping(m));
        d.alias(self.map, &sv.at, key, "labels");
    }

    /// `sysctls`.
    fn key_sysctls(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        d.spec.insert("sysctls".into(), map_of_strings(v));
        d.alias(self.map, &sv.at, key, "sysctls");
    }

    /// `extra_hosts`.
    fn key_extra_hosts(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        let hosts: Vec<Value> = match v {
            Value::Mapping(m) => {
                m.iter().map(|(h, ip)| Value::String(format!("{}:{}", key_text(h), scalar_string(ip)))).collect()
            }
            other => strings_of(other).as_sequence().cloned().unwrap_or_default(),
        };
        d.spec.insert("extra_hosts".into(), Value::Sequence(hosts));
        d.alias(self.map, &sv.at, key, "extra_hosts");
    }

    /// `dns`, `dns_search`, `dns_opt`.
    fn key_dns(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        let list = match v {
            Value::String(s) => Value::Sequence(vec![Value::String(s.clone())]),
            other => strings_of(other),
        };
        d.spec.insert(key.into(), list);
        d.alias(self.map, &sv.at, key, key);
    }

    /// `domainname`.
    fn key_domainname(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        d.spec.insert("domainname".into(), scalar_text(v));
        d.alias(self.map, &sv.at, key, "domainname");
    }

    /// `devices`.
    fn key_devices(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut devs = Vec::new();
        for (i, d) in v.as_sequence().into_iter().flatten().enumerate() {
            match d {
                Value::String(s) => devs.push(Value::String(s.clone())),
                Value::Mapping(m) => {
                    let src = m.get("source").and_then(Value::as_str).unwrap_or("");
                    let tgt = m.get("target").and_then(Value::as_str).unwrap_or(src);
                    let perms = m.get("permissions").and_then(Value::as_str).unwrap_or("rwm");
                    devs.push(Value::String(format!("{src}:{tgt}:{perms}")));
                }
                _ => self.err(&kat.index(i), "a device is /dev/host[:/dev/container[:rwm]]"),
            }
        }
        d.spec.insert("devices".into(), Value::Sequence(devs));
        d.alias(self.map, &sv.at, key, "devices");
    }

    /// `mem_limit`.
    fn key_mem_limit(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        d.spec.insert("memory".into(), scalar_text(v));
        d.alias(self.map, &sv.at, key, "memory");
    }

    /// `stop_grace_period`.
    fn key_stop_grace_period(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, _kat: &YamlPath, v: &Value) {
        d.spec.insert("stop_timeout".into(), scalar_text(v));
        d.alias(self.map, &sv.at, key, "stop_timeout");
    }

    /// `pull_policy`.
    fn key_pull_policy(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let p = match scalar_string(v).as_str() {
            "always" => Some("always"),
            "missing" | "if_not_present" => Some("if-not-present"),
            "never" => Some("never"),
            "build" => None,
            other => {
                self.err(kat, &format!("unknown pull_policy {other:?}; expected always, missing, never or build"));
                None
            }
        };
        if let Some(p) = p {
            d.spec.insert("pull".into(), p.into());
            d.alias(self.map, &sv.at, key, "pull");
        }
    }

    /// `build`.
    fn key_build(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut b = Mapping::new();
        match v {
            Value::String(ctx) => {
                if let Some(r) = self.repo_path(kat, ctx) {
                    b.insert("context".into(), r.into());
                }
            }
            Value::Mapping(m) => {
                for (bk, bv) in m {
                    let bkey = bk.as_str().unwrap_or("");
                    let bat = kat.key(bkey);
                    match bkey {
                                "context" => {
                                    if let Some(r) = self.repo_path(&bat, &scalar_string(bv)) {
                                        b.insert("context".into(), r.into());
                                    }
                                }
                                "dockerfile" | "target" => {
                                    b.insert(bkey.into(), scalar_text(bv));
                                }
                                "args" => {
                                    b.insert("args".into(), map_of_strings(bv));
                                }
                                "cache_from" => {
                                    // An image reference, or buildx's `type=registry,ref=…`
                                    // (the engine's builder reads images only).
                                    let mut refs = Vec::new();
                                    for (i, item) in bv.as_sequence().into_iter().flatten().enumerate() {
                                        let t = scalar_string(item);
                                        let image = match t.strip_prefix("type=registry,ref=") {
                                            Some(r) => Some(r.split(',').next().unwrap_or(r).to_string()),
                                            None if t.starts_with("type=") => None,
                                            None => Some(t.clone()),
                                        };
                                        match image {
                                            Some(r) => refs.push(Value::String(r)),
                                            None => self.err(&bat.index(i), &format!("cache_from {t:?} is not supported: the engine's builder takes an image (write an image reference, or type=registry,ref=<image>)")),
                                        }
                                    }
                                    if bv.as_sequence().is_none() {
                                        self.err(&bat, "cache_from is a list of images");
                                    }
                                    b.insert("cache_from".into(), Value::Sequence(refs));
                                }
                                _ => self.key_err(&bat, "not supported by Driftless: it builds with context, dockerfile, target, args and cache_from (for dockerfile_inline, commit the Dockerfile); remove it"),
                            }
                }
                if !b.contains_key("context") {
                    if let Some(r) = self.repo_path(kat, ".") {
                        b.insert("context".into(), r.into());
                    }
                }
            }
            _ => self.err(kat, "build is a folder, or { context, dockerfile, target, args }"),
        }
        d.spec.insert("build".into(), Value::Mapping(b));
        d.alias(self.map, &sv.at, key, "build");
    }

    /// `healthcheck`.
    fn key_healthcheck(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut h = Mapping::new();
        let mut disabled = false;
        for (hk, hv) in v.as_mapping().into_iter().flatten() {
            let hkey = hk.as_str().unwrap_or("");
            match hkey {
                        "test" => {
                            h.insert("test".into(), match hv {
                                Value::String(s) => Value::String(s.clone()),
                                other => strings_of(other),
                            });
                        }
                        "interval" | "timeout" | "start_period" => {
                            h.insert(hkey.into(), scalar_text(hv));
                        }
                        "start_interval" => {
                            // Passed where the engine takes it (API 1.44); an older one
                            // ignores it, as compose lets it be ignored there.
                            h.insert(hkey.into(), scalar_text(hv));
                            self.warn(&kat.key(hkey), "start_interval needs Docker API 1.44 (Docker 25+): an older engine ignores it (interval applies from the start), and agentctl status says so");
                        }
                        "retries" => {
                            h.insert(hkey.into(), numberish(hv));
                        }
                        "disable" => disabled = hv.as_bool() == Some(true),
                        other => self.key_err(&kat.key(other), "unknown healthcheck key: write test, interval, timeout, retries, start_period, start_interval or disable"),
                    }
        }
        if disabled {
            h = Mapping::new();
            h.insert("test".into(), Value::Sequence(vec!["NONE".into()]));
        }
        // `disable: false` alone changes nothing: the image's own check stays.
        if !h.is_empty() {
            d.spec.insert("healthcheck".into(), Value::Mapping(h));
            d.alias(self.map, &sv.at, key, "healthcheck");
        }
    }

    /// `secrets`, `configs`.
    fn key_secrets(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        // compose-spec 09-secrets.md and 08-configs.md: a file mounted read-only,
        // at /run/secrets/<name> or, for a config, /<name> — unless `target`.
        // A config is carried as a secret entry named `config.<name>`.
        let is_config = key == "configs";
        let (known, declared) =
            if is_config { (sv.configs, sv.declared_configs) } else { (sv.secrets, sv.declared_secrets) };
        let one = if is_config { "config" } else { "secret" };
        let mut list = d.spec.get("secrets").and_then(Value::as_sequence).cloned().unwrap_or_default();
        for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
            let iat = kat.index(i);
            let (name, target) = match item {
                Value::String(n) => (n.clone(), None),
                Value::Mapping(m) => {
                    for (mk, _) in m {
                        let mkey = mk.as_str().unwrap_or("");
                        if !matches!(mkey, "source" | "target") {
                            self.key_err(&iat.key(mkey), "not supported by Driftless: the file is mounted read-only, readable by the container's user; remove it");
                        }
                    }
                    (m.get("source").map(scalar_string).unwrap_or_default(), m.get("target").map(scalar_string))
                }
                _ => continue,
            };
            let Some(source) = known.get(&name) else {
                if declared.contains(&name) {
                    continue; // declared, and refused there
                }
                self.err(&iat, &format!("{one} {name:?} is not declared: add it under the top-level {key}: ({name}: {{ file: ./path }}), or remove it here"));
                continue;
            };
            let mut m = Mapping::new();
            // A config mounted twice (two targets) is two entries: `config.x`,
            // `config.x.2`.
            let entry = if is_config {
                let base = format!("config.{name}");
                let taken = |n: &str| list.iter().any(|e| e.get("name").and_then(Value::as_str) == Some(n));
                let mut entry = base.clone();
                let mut k = 1;
                while taken(&entry) {
                    k += 1;
                    entry = format!("{base}.{k}");
                }
                entry
            } else {
                name.clone()
            };
            m.insert("name".into(), entry.into());
            m.insert("source".into(), source.0.clone().into());
            if let Some(var) = &source.1 {
                m.insert("env".into(), var.clone().into());
            }
            match (target, is_config) {
                (Some(t), _) => {
                    m.insert("target".into(), t.into());
                }
                (None, true) => {
                    m.insert("target".into(), format!("/{name}").into());
                }
                (None, false) => {}
            }
            list.push(Value::Mapping(m));
        }
        d.spec.insert("secrets".into(), Value::Sequence(list));
        d.alias(self.map, &sv.at, key, "secrets");
    }

    /// `volumes_from`: compose-spec 05-services.md `volumes_from`: a service (its container) or
    /// `container:<name>`, `:ro`/`:rw` after; the service starts first.
    fn key_volumes_from(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut list = Vec::new();
        for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
            let t = scalar_string(item);
            let (from, mode) = match t.rsplit_once(':') {
                Some((f, m @ ("ro" | "rw"))) => (f.to_string(), Some(m)),
                _ => (t.clone(), None),
            };
            let container = match from.strip_prefix("container:") {
                Some(c) => c.to_string(),
                None => match sv.names.get(&from) {
                    Some(c) => {
                        d.peers.push(c.clone());
                        c.clone()
                    }
                    None => {
                        self.err(&kat.index(i), &format!("volumes_from {from:?} names no service of this file; name one, or write container:<name> for a container outside it"));
                        continue;
                    }
                },
            };
            list.push(Value::String(match mode {
                Some(m) => format!("{container}:{m}"),
                None => container,
            }));
        }
        d.spec.insert("volumes_from".into(), Value::Sequence(list));
        d.alias(self.map, &sv.at, key, "volumes_from");
    }

    /// `links`, `external_links`: compose's `getLinks`: a service's container under the link name (its
    /// service's name by default), and a container outside the file as named;
    /// a linked service starts first (compose-go's `GetDependencies`).
    fn key_links(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let mut list = d.spec.get("links").and_then(Value::as_sequence).cloned().unwrap_or_default();
        for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
            let t = scalar_string(item);
            let (target, link) = t.split_once(':').unwrap_or((t.as_str(), t.as_str()));
            let container = if key == "external_links" {
                target.to_string()
            } else {
                match sv.names.get(target) {
                    Some(c) => {
                        d.peers.push(c.clone());
                        c.clone()
                    }
                    None => {
                        self.err(&kat.index(i), &format!("links {target:?} names no service of this file; name one, or move it to external_links for a container outside it"));
                        continue;
                    }
                }
            };
            list.push(Value::String(format!("{container}:{link}")));
        }
        d.spec.insert("links".into(), Value::Sequence(list));
        d.alias(self.map, &sv.at, key, "links");
    }

    /// `gpus`, `post_start`, `pre_stop`, `blkio_config`.
    fn key_gpus(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        let (to, made) = match key {
            "gpus" => ("device_requests", engine::device_requests(v, true)),
            "blkio_config" => (key, engine::blkio(v)),
            _ => (key, engine::hooks(v)),
        };
        match made {
            Ok(val) => {
                let mut list = d.spec.get(to).and_then(Value::as_sequence).cloned().unwrap_or_default();
                match val {
                    Value::Sequence(more) if to == "device_requests" => {
                        list.extend(more);
                        d.spec.insert(to.into(), Value::Sequence(list));
                    }
                    val => {
                        d.spec.insert(to.into(), val);
                    }
                }
                d.alias(self.map, &sv.at, key, to);
            }
            Err(why) => self.err(kat, &format!("{key}: {why}")),
        }
    }

    /// `storage_opt`, `annotations`.
    fn key_storage_opt(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        if key == "annotations" {
            self.warn(kat, "annotations need Docker API 1.43 (Docker 24+): an older engine cannot take them, so they are not passed there, and agentctl status says so");
        }
        d.spec.insert(key.into(), map_of_strings(v));
        d.alias(self.map, &sv.at, key, key);
    }

    /// `mac_address`.
    fn key_mac_address(&mut self, d: &mut Draft, sv: &Service<'_>, key: &str, kat: &YamlPath, v: &Value) {
        self.warn(kat, "mac_address needs Docker API 1.44 (Docker 25+): the agent sets it on the container's first network, and an older engine refuses the revision before anything is touched");
        d.spec.insert(key.into(), scalar_text(v));
        d.alias(self.map, &sv.at, key, key);
    }

    /// The labels of a service's `label_file` (one path or a list, relative to the compose
    /// file), read from the folder in order, each file's over the ones before it; a
    /// `${VAR}` in one names a label read before it (compose-go's `loadLabelFile`).
    fn label_files(&mut self, at: &YamlPath, v: &Value) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let paths: Vec<String> = match v {
            Value::Sequence(s) => s.iter().map(scalar_string).collect(),
            other => vec![scalar_string(other)],
        };
        let Some(files) = self.files else {
            self.err(at, "label_file reads another file of the folder, and this reader was given none: run agentctl validate on the folder");
            return labels;
        };
        for (i, p) in paths.iter().enumerate() {
            let pat = if v.is_sequence() { at.index(i) } else { at.clone() };
            if p.starts_with('/') {
                self.err(
                    &pat,
                    &format!(
                        "{p:?} is a host path: a label file is a file of the repository, relative to the compose file"
                    ),
                );
                continue;
            }
            let Some(rel) = self.repo_path(&pat, p) else { continue };
            let shown = shown_path(self.root, &rel);
            let Some(text) = (files.0)(&shown) else {
                self.err(&pat, &format!("label file {shown} not found (compose refuses a missing label file): add it to the repository, or remove it from label_file"));
                continue;
            };
            let so_far = labels.clone();
            match super::dotenv::parse_with(&text, &|k| so_far.get(k).cloned()) {
                Ok(read) => labels.extend(read),
                Err(e) => self.err(
                    &pat,
                    &format!("{shown}:{}: {} (label files are KEY=value lines, as .env files)", e.line, e.message),
                ),
            }
        }
        labels
    }

    /// One `volumes` entry of a service: a named volume, an absolute bind, a relative bind
    /// (a repository path: `files`), or a tmpfs. One piece: compose's short and long syntax
    /// both end in the same four kinds of mount, decided in one place.
    fn volume(
        &mut self,
        sv: &Service<'_>,
        at: &YamlPath,
        item: &Value,
        vols: &mut Vec<Value>,
        files: &mut Vec<Value>,
        tmpfs: &mut Vec<Value>,
    ) {
        let (kind, source, target, read_only, extra) = match item {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let (src, tgt, mode) = match parts.as_slice() {
                    [t] => ("", *t, ""),
                    [s2, t] => (*s2, *t, ""),
                    [s2, t, m] => (*s2, *t, *m),
                    _ => {
                        self.err(at, &format!("volume {s:?} has too many ':'"));
                        return;
                    }
                };
                let kind = if src.is_empty() {
                    "anonymous"
                } else if src.starts_with('.') || src.starts_with('/') || src.starts_with('~') {
                    "bind"
                } else {
                    "volume"
                };
                let ro = mode.split(',').any(|m| m == "ro");
                let extra: Vec<&str> = mode.split(',').filter(|m| !m.is_empty() && *m != "ro" && *m != "rw").collect();
                for m in &extra {
                    let known = matches!(*m, "z" | "Z" | "nocopy" | "cached" | "delegated" | "consistent")
                        || m.ends_with("shared")
                        || m.ends_with("slave")
                        || m.ends_with("private");
                    if !known {
                        self.err(at, &format!("volume mode {m:?} is not one docker knows; write ro, rw, z, Z, nocopy or a propagation (rprivate, …)"));
                        return;
                    }
                }
                (kind.to_string(), src.to_string(), tgt.to_string(), ro, extra.join(","))
            }
            Value::Mapping(m) => {
                for (mk, _) in m {
                    let mkey = mk.as_str().unwrap_or("");
                    if !matches!(
                        mkey,
                        "type" | "source" | "target" | "read_only" | "tmpfs" | "volume" | "bind" | "x-driftless"
                    ) {
                        self.key_err(
                            &at.key(mkey),
                            &format!("volume key `{mkey}` is not supported; write type, source, target, read_only"),
                        );
                    }
                }
                let mut opts: Vec<String> = Vec::new();
                if let Some(b) = m.get("bind").and_then(Value::as_mapping) {
                    for (bk, bv) in b {
                        let bkey = bk.as_str().unwrap_or("");
                        match bkey {
                            "create_host_path" => {}
                            "selinux" => match scalar_string(bv).as_str() {
                                l @ ("z" | "Z") => opts.push(l.to_string()),
                                other => self.err(&at.key("bind").key("selinux"), &format!("bind.selinux {other:?}: write z (shared) or Z (private)")),
                            },
                            "propagation" => opts.push(scalar_string(bv)),
                            _ => self.key_err(&at.key("bind").key(bkey), &format!("bind option `{bkey}` is not supported; write selinux, propagation or create_host_path")),
                        }
                    }
                }
                if let Some(vo) = m.get("volume").and_then(Value::as_mapping) {
                    for (vk, vv) in vo {
                        let vkey = vk.as_str().unwrap_or("");
                        match vkey {
                            "nocopy" => {
                                if vv.as_bool() == Some(true) {
                                    opts.push("nocopy".into());
                                }
                            }
                            _ => self.key_err(&at.key("volume").key(vkey), &format!("volume option `{vkey}` is not supported (the engine's API 1.41 has no subpath); write nocopy, or mount the volume whole")),
                        }
                    }
                }
                let kind = m.get("type").map(scalar_string).unwrap_or_else(|| "volume".into());
                let extra = match (kind.as_str(), m.get("tmpfs").and_then(|t| t.get("size"))) {
                    ("tmpfs", Some(size)) => format!("size={}", scalar_string(size)),
                    _ => opts.join(","),
                };
                (
                    kind,
                    m.get("source").map(scalar_string).unwrap_or_default(),
                    m.get("target").map(scalar_string).unwrap_or_default(),
                    m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                    extra,
                )
            }
            _ => {
                self.err(at, "a volume is SOURCE:TARGET[:MODE] or { type, source, target }");
                return;
            }
        };
        if target.is_empty() {
            self.err(at, "a volume needs a target path in the container");
            return;
        }
        // `x-driftless: { snapshot: … }` on a data folder's entry (a top-level volume takes
        // it where it is declared).
        let mut snapshot = None;
        if let Some(x) = item.get("x-driftless") {
            let xat = at.key("x-driftless");
            for (xk, xv) in x.as_mapping().into_iter().flatten() {
                match xk.as_str().unwrap_or("") {
                    "snapshot" if kind == "bind" && !source.starts_with('/') && !source.starts_with('~') => {
                        snapshot = Some(if xv.is_null() { Value::Mapping(Mapping::new()) } else { xv.clone() });
                    }
                    "snapshot" => self.err(
                        &xat.key("snapshot"),
                        "x-driftless.snapshot on a service's volume entry is for a relative bind (a data folder, ./data); a named volume takes it on its top-level declaration (volumes: { name: { x-driftless: { snapshot: … } } })",
                    ),
                    other => self.key_err(&xat.key(other), &format!("unknown key `{other}` in a volume's x-driftless; expected snapshot")),
                }
            }
        }
        let ro = if read_only { ":ro" } else { "" };
        match kind.as_str() {
            "anonymous" => {
                // Compose keeps an anonymous volume across recreations; a named one per service
                // and path does the same here (and, like every volume, is never removed).
                let path: String = target
                    .trim_matches('/')
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
                    .collect();
                let opts = if read_only { ":ro" } else { "" };
                // Never a declared volume's engine name (`web_data` declared beside `/data` of
                // `web`) nor another anonymous volume's (`web` `/x_data`, `web_x` `/data`):
                // compose gives each anonymous volume a name of its own, so the two never
                // share data. The later one takes `-anon` until the name is its own.
                let owner = (sv.name.to_string(), target.clone());
                let mut name = format!("{}_{}_{path}", sv.project, sv.name);
                while sv.volumes.values().any(|v| *v == name)
                    || self.anonymous.get(&name).is_some_and(|o| *o != owner)
                {
                    name.push_str("-anon");
                }
                self.anonymous.insert(name.clone(), owner);
                vols.push(Value::String(format!("{name}:{target}{opts}")));
            }
            "volume" => match sv.volumes.get(&source) {
                Some(real) => {
                    let opts = if extra.is_empty() {
                        ro.to_string()
                    } else if read_only {
                        format!(":ro,{extra}")
                    } else {
                        format!(":{extra}")
                    };
                    vols.push(Value::String(format!("{real}:{target}{opts}")));
                }
                None => self.err(at, &format!("volume {source:?} is not declared: add it under the top-level volumes: ({source}: {{}}), or write a path (./{source}) for a bind")),
            },
            // `~` is the home of whoever runs the file: the agent's user (root's is /root),
            // as compose expands it for whoever runs `docker compose`.
            "bind" if (source == "~" || source.starts_with("~/")) && self.home.is_some() => {
                let home = self.home.clone().unwrap_or_default();
                let host = format!("{}{}", home.trim_end_matches('/'), &source[1..]);
                let opts = if extra.is_empty() {
                    ro.to_string()
                } else if read_only {
                    format!(":ro,{extra}")
                } else {
                    format!(":{extra}")
                };
                vols.push(Value::String(format!("{host}:{target}{opts}")));
            }
            "bind" if source.starts_with('/') => {
                let opts = if extra.is_empty() {
                    ro.to_string()
                } else if read_only {
                    format!(":ro,{extra}")
                } else {
                    format!(":{extra}")
                };
                vols.push(Value::String(format!("{source}:{target}{opts}")));
            }
            "bind" => {
                // A repository path, exported by the agent: the SELinux label goes with it;
                // `nocopy` and a propagation mean nothing for a folder only this mount uses;
                // macOS's consistency hints (cached, …) mean nothing on Linux, as for docker.
                let mut selinux = None;
                for m in extra.split(',').filter(|m| !m.is_empty()) {
                    match m {
                        "z" | "Z" => selinux = Some(m.to_string()),
                        "cached" | "delegated" | "consistent" => {}
                        other => {
                            self.err(at, &format!("mode {other:?} on a relative bind is not supported: the agent exports {source:?} from the repository for this container alone; remove it"));
                            return;
                        }
                    }
                }
                if let Some(r) = self.repo_path(at, &source) {
                    let mut m = Mapping::new();
                    m.insert("source".into(), r.into());
                    m.insert("target".into(), target.into());
                    if read_only {
                        m.insert("read_only".into(), true.into());
                    }
                    if let Some(label) = selinux {
                        m.insert("selinux".into(), label.into());
                    }
                    if let Some(snap) = snapshot {
                        m.insert("snapshot".into(), snap);
                    }
                    files.push(Value::Mapping(m));
                }
            }
            "tmpfs" => tmpfs.push(Value::String(if extra.is_empty() { target } else { format!("{target}:{extra}") })),
            other => self.err(at, &format!("volume type {other:?} is not supported; expected volume, bind or tmpfs")),
        }
    }

    /// `deploy.resources.reservations`, as compose's `setReservations` reads it on one
    /// host: `memory` is the soft limit (`mem_reservation`), `devices` are device requests;
    /// `cpus` is a swarm scheduling option compose does not pass (said, not dropped).
    fn reservations(&mut self, at: &YamlPath, v: &Value, spec: &mut Mapping, docmap: &mut DocMap) {
        for (k, x) in v.as_mapping().into_iter().flatten() {
            let key = k.as_str().unwrap_or("");
            let kat = at.key(key);
            match key {
                "memory" => {
                    if !spec.contains_key("mem_reservation") {
                        spec.insert("mem_reservation".into(), scalar_text(x));
                        docmap.generated_from(self.map, &kat, &YamlPath::root().key("spec").key("mem_reservation"));
                    }
                }
                "devices" => match engine::device_requests(x, false) {
                    Ok(Value::Sequence(more)) => {
                        let mut list = spec.get("device_requests").and_then(Value::as_sequence).cloned().unwrap_or_default();
                        list.extend(more);
                        spec.insert("device_requests".into(), Value::Sequence(list));
                        docmap.generated_from(self.map, &kat, &YamlPath::root().key("spec").key("device_requests"));
                    }
                    Ok(_) => {}
                    Err(why) => self.err(&kat, &format!("devices: {why}")),
                },
                "cpus" => self.warn(&kat, "a CPU reservation is a swarm scheduling option: docker compose does not pass it to the engine on one host, and neither does Driftless (limits.cpus caps CPU)"),
                _ => self.key_err(&kat, "not supported by Driftless: a reservation on one host is memory or devices"),
            }
        }
    }

    /// `deploy:` as far as a single host means anything: resource limits and restart policy.
    fn deploy(&mut self, at: &YamlPath, v: &Value, spec: &mut Mapping, docmap: &mut DocMap, svc_at: &YamlPath) {
        let _ = svc_at;
        for (dk, dv) in v.as_mapping().into_iter().flatten() {
            let dkey = dk.as_str().unwrap_or("");
            let dat = at.key(dkey);
            match dkey {
                "resources" => {
                    for (rk, rv) in dv.as_mapping().into_iter().flatten() {
                        let rkey = rk.as_str().unwrap_or("");
                        let rat = dat.key(rkey);
                        if rkey == "reservations" {
                            self.reservations(&rat, rv, spec, docmap);
                            continue;
                        }
                        if rkey != "limits" {
                            self.key_err(&rat, "not supported by Driftless: write deploy.resources.limits (cpus, memory, pids) or reservations (memory, devices)");
                            continue;
                        }
                        for (lk, lv) in rv.as_mapping().into_iter().flatten() {
                            let lkey = lk.as_str().unwrap_or("");
                            let to = match lkey {
                                "cpus" => "cpus",
                                "memory" => "memory",
                                "pids" => "pids_limit",
                                other => {
                                    self.key_err(&rat.key(other), "not supported by Driftless: limit cpus, memory or pids");
                                    continue;
                                }
                            };
                            spec.insert(to.into(), if to == "pids_limit" { numberish(lv) } else { scalar_text(lv) });
                            docmap.generated_from(self.map, &rat.key(lkey), &YamlPath::root().key("spec").key(to));
                        }
                    }
                }
                "restart_policy" => {
                    let cond = dv.get("condition").map(scalar_string).unwrap_or_else(|| "any".into());
                    let max = dv.get("max_attempts").and_then(Value::as_u64);
                    let policy = match (cond.as_str(), max) {
                        ("none", _) => "no".to_string(),
                        ("on-failure", Some(n)) => format!("on-failure:{n}"),
                        ("on-failure", None) => "on-failure".to_string(),
                        ("any", _) => "always".to_string(),
                        (other, _) => {
                            self.err(&dat.key("condition"), &format!("unknown restart condition {other:?}; expected none, on-failure or any"));
                            continue;
                        }
                    };
                    for (pk, _) in dv.as_mapping().into_iter().flatten() {
                        let pkey = pk.as_str().unwrap_or("");
                        if !matches!(pkey, "condition" | "max_attempts") {
                            self.key_err(&dat.key(pkey), "not supported by Driftless: write condition and max_attempts");
                        }
                    }
                    spec.insert("restart".into(), policy.into());
                    docmap.generated_from(self.map, &dat, &YamlPath::root().key("spec").key("restart"));
                }
                "update_config" => {
                    for (uk, uv) in dv.as_mapping().into_iter().flatten() {
                        let ukey = uk.as_str().unwrap_or("");
                        let uat = dat.key(ukey);
                        if ukey != "order" {
                            self.key_err(&uat, "not supported by Driftless: one host replaces one container at a time, and a failed health check rolls the whole revision back; write only update_config.order");
                            continue;
                        }
                        match scalar_string(uv).as_str() {
                            o @ ("start-first" | "stop-first") => {
                                spec.insert("update".into(), o.into());
                                docmap.generated_from(self.map, &uat, &YamlPath::root().key("spec").key("update"));
                            }
                            other => self.err(&uat, &format!("unknown update order {other:?}; expected start-first or stop-first")),
                        }
                    }
                }
                "replicas" => {} // read by `replica_count`
                "mode" => match dv.as_str() {
                    Some("replicated") => {}
                    Some("global") => {
                        if v.get("replicas").is_some() {
                            self.err(&dat, "deploy.mode: global runs one container per node, and deploy.replicas does not go with it: remove one of them");
                        }
                    }
                    _ => self.err(&dat, "deploy.mode is replicated (the default) or global (one container on this host)"),
                },
                _ => self.key_err(&dat, "not supported on a single host: Driftless reads deploy.replicas, deploy.mode, deploy.resources.limits, deploy.restart_policy and deploy.update_config.order; remove it"),
            }
        }
    }
}

/// How many containers a service runs: `deploy.replicas`, else `scale`, else 1 (compose's
/// rule; both set must agree). More than one is refused where the containers could not all
/// run on one host: a `container_name` (names are unique) or a fixed host port.
pub(super) fn replica_count(cx: &mut Cx<'_>, at: &YamlPath, svc: &Value) -> u64 {
    let read = |cx: &mut Cx<'_>, path: &YamlPath, v: Option<&Value>| -> Option<u64> {
        let v = v?;
        match v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(n) => Some(n),
            None => {
                cx.err(
                    path,
                    &format!("{} is not a count: write a whole number of containers, e.g. 3", scalar_string(v)),
                );
                None
            }
        }
    };
    let replicas_at = at.key("deploy").key("replicas");
    let replicas = read(cx, &replicas_at, svc.get("deploy").and_then(|d| d.get("replicas")));
    let scale = read(cx, &at.key("scale"), svc.get("scale"));
    let n = match (replicas, scale) {
        (Some(r), Some(s)) if r != s => {
            cx.err(&at.key("scale"), &format!("scale: {s} and deploy.replicas: {r} disagree: keep one of them"));
            r
        }
        (Some(r), _) => r,
        (None, Some(s)) => s,
        (None, None) => 1,
    };
    let count_at = if replicas.is_some() { replicas_at } else { at.key("scale") };
    if n > 1 && svc.get("container_name").is_some() {
        cx.err(&at.key("container_name"), &format!("container_name names one container, and this service runs {n} (deploy.replicas): remove container_name; the containers are named after the service, -1 to -{n}"));
    }
    if n > MAX_REPLICAS {
        cx.err(&count_at, &format!("{n} containers of one service on one host: the limit is {MAX_REPLICAS}"));
        return 1;
    }
    if n > 1 {
        for (i, p) in svc.get("ports").and_then(Value::as_sequence).into_iter().flatten().enumerate() {
            if let Some(host) = fixed_host_port(p) {
                cx.err(
                    &at.key("ports").index(i),
                    &format!("host port {host} can be published by one container only, and this service runs {n} (deploy.replicas): publish the container port alone (e.g. \"80\", an ephemeral host port each), or put a reverse proxy in front of the replicas"),
                );
            }
        }
    }
    n
}

/// Replicas of one service on one host, at most.
pub(super) const MAX_REPLICAS: u64 = 100;

/// The fixed host port a `ports` entry publishes, if any (`"8080:80"`, `"127.0.0.1:8080:80"`,
/// `published: 8080`); `None` for a container port alone or an empty host port.
pub(super) fn fixed_host_port(p: &Value) -> Option<String> {
    if let Some(m) = p.as_mapping() {
        let published = m.get("published").map(scalar_string).unwrap_or_default();
        return (!published.is_empty()).then_some(published);
    }
    // An entry that does not parse publishes nothing here; the port checks refuse it.
    let (lo, hi) = crate::checks::PortMapping::parse(&scalar_string(p)).ok()?.host?;
    Some(if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
}

/// What to write instead of a service key Driftless does not support.
pub(super) fn unsupported_hint(key: &str) -> String {
    let why = match key {
        "isolation" => "it is for Windows containers; remove it",
        "cpu_rt_runtime" | "cpu_rt_period" => "real-time CPU time needs the engine's own cgroup setting; remove it",
        "cpu_count" | "cpu_percent" => "they are for Windows containers; limit CPU with cpus instead",
        "credential_spec" => "it is for Windows containers; remove it",
        "provider" => "a service delegated to a compose CLI plugin (compose's `provider`) is run by that plugin on the machine running docker compose, and no such plugin runs on this host; run the service it stands for as a service of its own, or remove it",
        "use_api_socket" => "it is Docker Desktop's: it mounts the engine's socket and the user's registry credentials into the container; mount /var/run/docker.sock as a volume if the container needs the engine, or remove it",
        "models" => "AI models are served by Docker Desktop's Model Runner, which a host engine does not have; remove it",
        "pull_refresh_after" => "it goes with pull_policy: refresh, a schedule of re-pulls that compose runs when `up` runs again; Driftless pulls what a revision names (pull: always re-pulls on every apply); remove it",
        _ => {
            let hint = crate::checks::did_you_mean(key, SERVICE_KEYS.iter().copied())
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            return format!(
                "unknown service key: {hint}docs/compose.md lists every key of the specification and what Driftless does with it"
            );
        }
    };
    format!("not supported by Driftless: {why}")
}

/// Every key of the compose specification's service schema (for "did you mean").
const SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_shares",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_runtime",
    "cpu_rt_period",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// `linux/amd64`, `linux/arm64`, …: what the engine here runs natively.
pub(super) fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    format!("linux/{arch}")
}

/// Keys whose value compose requires to be a list (or a list or a mapping): a single value
/// there is refused, as `docker compose` refuses it, never dropped.
pub(super) fn wrong_shape(key: &str, v: &Value) -> Option<String> {
    const LIST: &[&str] = &[
        "ports",
        "volumes",
        "expose",
        "cap_add",
        "cap_drop",
        "devices",
        "group_add",
        "security_opt",
        "profiles",
        "secrets",
        "dns_opt",
        "volumes_from",
        "links",
        "external_links",
    ];
    const LIST_OR_MAP: &[&str] = &["networks", "depends_on", "environment", "labels", "extra_hosts", "sysctls"];
    let list = LIST.contains(&key);
    if !list && !LIST_OR_MAP.contains(&key) {
        return None;
    }
    match v {
        Value::Sequence(_) | Value::Null => None,
        Value::Mapping(_) if !list => None,
        Value::Mapping(_) => Some(format!("`{key}` must be a list, not a mapping (as docker compose requires)")),
        single => {
            let text = scalar_string(single);
            Some(format!(
                "`{key}` must be a list{} (docker compose refuses a single value): write {key}: [{text:?}]",
                if list { "" } else { " or a mapping" }
            ))
        }
    }
}

/// A published port in Driftless's form, from compose's short or long syntax.
pub(super) fn port(v: &Value) -> Result<String, String> {
    match v {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        Value::Mapping(m) => {
            for (k, _) in m {
                let key = k.as_str().unwrap_or("");
                if !matches!(key, "target" | "published" | "host_ip" | "protocol" | "mode" | "name" | "app_protocol") {
                    return Err(format!(
                        "port key `{key}` is not supported; write target, published, host_ip, protocol"
                    ));
                }
            }
            if m.get("mode").and_then(Value::as_str).is_some_and(|x| x != "host" && x != "ingress") {
                return Err("port mode must be host or ingress".into());
            }
            let target = m.get("target").map(scalar_string).ok_or("a port needs a target")?;
            let mut s = String::new();
            if let Some(ip) = m.get("host_ip").map(scalar_string) {
                s.push_str(&ip);
                s.push(':');
            }
            if let Some(p) = m.get("published").map(scalar_string) {
                s.push_str(&p);
                s.push(':');
            } else if !s.is_empty() {
                s.push(':');
            }
            s.push_str(&target);
            if let Some(proto) = m.get("protocol").map(scalar_string) {
                s.push('/');
                s.push_str(&proto);
            }
            Ok(s)
        }
        _ => Err("a port is \"HOST:CONTAINER\" or { target, published }".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_yaml_ng::Value;

    use crate::compose::convert;

    /// The spec of service `web` in `services:` (indented by four), and the errors' text.
    fn web(service: &str) -> (Value, String) {
        let text = format!("services:\n  web:\n    image: app:1\n{service}");
        let c = convert("compose.yaml", &text, None, &[]);
        let errors = c.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
        let spec = c.docs.first().and_then(|d| d.doc.get("spec").cloned()).unwrap_or(Value::Null);
        (spec, errors)
    }

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn one_to_one_keys_are_cast_as_the_engine_takes_them() {
        let (s, e) = web("    cpus: 0.5\n    pids_limit: \"100\"\n    cap_add: [NET_ADMIN]\n    tty: true\n");
        assert_eq!(e, "");
        assert_eq!(s["cpus"], yaml("\"0.5\""));
        assert_eq!(s["pids_limit"], yaml("100"));
        assert_eq!(s["tty"], yaml("true"));
    }

    #[test]
    fn ports_take_short_and_long_syntax() {
        let (s, e) = web("    ports: [\"8080:80\", { target: 443, published: \"8443\", host_ip: 127.0.0.1 }]\n");
        assert_eq!(e, "");
        assert_eq!(s["ports"], yaml("[\"8080:80\", \"127.0.0.1:8443:443\"]"));
    }

    #[test]
    fn volumes_are_named_bound_or_repository_files() {
        let (s, e) =
            web("    volumes: [\"data:/data\", \"/srv/x:/x:ro\", \"./conf:/etc/app\"]\nvolumes:\n  data: {}\n");
        assert_eq!(e, "");
        assert_eq!(s["volumes"], yaml("[\"default_data:/data\", \"/srv/x:/x:ro\"]"), "{s:?}");
        assert_eq!(s["files"][0]["source"], yaml("conf"), "{s:?}");
        assert_eq!(s["files"][0]["target"], yaml("/etc/app"));
    }

    #[test]
    fn networks_carry_aliases_and_addresses_and_default_to_the_projects() {
        let (s, e) = web("");
        assert_eq!((s["networks"].clone(), e), (yaml("[default_default]"), String::new()));
        let (s, e) =
            web("    networks: { front: { aliases: [www], ipv4_address: 10.0.0.5 } }\nnetworks:\n  front: {}\n");
        assert_eq!(e, "");
        assert_eq!(s["networks"], yaml("[{ name: default_front, aliases: [www], ipv4_address: 10.0.0.5 }]"));
        let (_, e) = web("    networks: [nowhere]\n");
        assert!(e.contains("network \"nowhere\" is not declared"), "{e}");
    }

    #[test]
    fn healthcheck_keeps_its_timings_and_disable_means_none() {
        let (s, e) = web("    healthcheck: { test: \"curl -f localhost\", interval: 5s, retries: 3 }\n");
        assert_eq!(e, "");
        assert_eq!(s["healthcheck"]["test"], yaml("curl -f localhost"));
        assert_eq!(s["healthcheck"]["interval"], yaml("5s"));
        assert_eq!(s["healthcheck"]["retries"], yaml("3"));
        let (s, _) = web("    healthcheck: { disable: true }\n");
        assert_eq!(s["healthcheck"]["test"], yaml("[NONE]"));
    }

    #[test]
    fn deploy_maps_resources_restart_and_update_order() {
        let (s, e) = web(
            "    deploy:\n      resources: { limits: { memory: 64m, cpus: \"0.5\" } }\n      restart_policy: { condition: on-failure, max_attempts: 3 }\n      update_config: { order: start-first }\n",
        );
        assert_eq!(e, "");
        assert_eq!(s["memory"], yaml("64m"), "{s:?}");
        assert_eq!(s["restart"], yaml("on-failure:3"), "{s:?}");
        assert_eq!(s["update"], yaml("start-first"), "{s:?}");
    }
}
