//! Compose files as desired state: a `compose.yaml`, `compose.yml`, `docker-compose.yaml` or
//! `docker-compose.yml` becomes `driftless/v1` Container documents, one per service, with the
//! file's networks, volumes and secrets — what `agentctl convert` prints, and what the loader
//! then types and checks like any other document. Positions point back into the compose file.
//!
//! What the compose specification says holds (its text is the reference): interpolation of
//! `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `$VAR` and `$$` from the `.env` beside the file — never from the agent's own
//! environment; an unset variable without a default becomes empty, with a warning; short and
//! long syntax of ports, volumes and `depends_on`; relative paths relative to the compose
//! file's folder; `profiles`; `x-` extension fields; YAML anchors and merge keys. A key
//! Driftless does not support is refused with its position and what to write instead: nothing
//! is silently ignored. `x-driftless: { health, environments }` on a service adds health
//! checks and per-environment overlays.
//!
//! Names: a service's Container is named after the service (or its `container_name`); the
//! file's networks and volumes get compose's names (`<project>_<key>`, or their `name:`), the
//! project being `name:` or the compose file's folder name.

pub mod dotenv;
pub mod interpolate;
pub mod merge;

pub use interpolate::{interpolate, InterpolationError};

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use crate::diagnostic::Diagnostic;
use crate::source_map::{map_documents, DocMap, YamlPath};
use crate::types::Origin;

/// The file names read as compose files, in compose's order of preference: of several in
/// one folder, compose reads the first (compose-go's `DefaultFileNames`).
pub const FILE_NAMES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];

/// The override file names, in compose's order of preference (`DefaultOverrideFileNames`):
/// the first beside the main file is merged into it, as `docker compose up` does.
pub const OVERRIDE_NAMES: [&str; 4] =
    ["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"];

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `path` names a compose file or a compose override file.
pub fn is_compose_file(path: &str) -> bool {
    FILE_NAMES.contains(&file_name(path)) || is_override_file(path)
}

/// Whether `path` names a compose override file (`compose.override.yaml`, …).
pub fn is_override_file(path: &str) -> bool {
    OVERRIDE_NAMES.contains(&file_name(path))
}

/// What compose reads of the compose files in one folder (`paths`, any order): the main file
/// and the override merged into it, by compose's preference; every other one with why it
/// is not read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Project<'a> {
    pub main: Option<&'a str>,
    pub override_file: Option<&'a str>,
    /// Files compose does not read (a second main file, a second override), and why.
    pub unread: Vec<(&'a str, String)>,
    /// An override with no main file: compose reads nothing here; refused, and why.
    pub orphan: Option<(&'a str, String)>,
}

/// Pick, as compose does, what it reads of the compose files in one folder.
pub fn project<'a>(paths: &[&'a str]) -> Project<'a> {
    let first = |names: &[&str]| names.iter().find_map(|n| paths.iter().copied().find(|p| file_name(p) == *n));
    let main = first(&FILE_NAMES);
    let override_file = first(&OVERRIDE_NAMES);
    let mut unread = Vec::new();
    for p in paths.iter().copied() {
        if Some(p) == main || Some(p) == override_file {
            continue;
        }
        let why = if is_override_file(p) {
            format!(
                "not read: compose merges only the first override it finds ({}), here {}; merge the two, or remove this one",
                OVERRIDE_NAMES.join(", "),
                override_file.map_or("", file_name)
            )
        } else {
            format!(
                "not read: compose reads only the first compose file it finds ({}), here {}; move this one to a folder of its own, or remove it",
                FILE_NAMES.join(", "),
                main.map_or("", file_name)
            )
        };
        unread.push((p, why));
    }
    let orphan = override_file.filter(|_| main.is_none()).map(|o| {
        (
            o,
            format!(
                "an override with no compose file beside it: compose reads {} only merged into a compose.yaml; add that file, or rename this one compose.yaml",
                file_name(o)
            ),
        )
    });
    Project { main, override_file: override_file.filter(|_| main.is_some()), unread, orphan }
}

/// A `driftless/v1` document made from one service.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The document: `apiVersion`, `kind`, `metadata`, `spec`, `environments`.
    pub doc: Value,
    /// Positions of the document's nodes, in the compose file.
    pub map: DocMap,
    pub origin: Origin,
}

/// What a compose file means.
#[derive(Clone, Debug, Default)]
pub struct Converted {
    pub docs: Vec<Generated>,
    pub errors: Vec<Diagnostic>,
    /// Not errors, but worth saying (`validate` prints them): unset variables made empty.
    pub warnings: Vec<Diagnostic>,
    /// Repository paths the file reads or mounts into its containers (bind sources,
    /// `env_file`, secret files, build contexts), also of services whose profiles are not
    /// enabled: what lies there belongs to the containers, not to the desired state.
    pub claims: Vec<Claim>,
}

/// A repository path a compose file reads or mounts, and where it says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Relative to the root; `""` is the root itself.
    pub path: String,
    /// The compose file's path, as shown.
    pub file: String,
    /// Its line, and the key saying it (`services.grafana.volumes[0]`).
    pub line: usize,
    pub at: String,
}

/// Where a compose file sits, beyond its path.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The enabled profiles.
    pub profiles: &'a [String],
    /// The part of `path` that stands for the root (`agentctl validate /srv/state` shows
    /// `/srv/state/compose.yaml`); repository paths are relative to what follows it.
    pub root: &'a str,
    /// The root folder's own name: the project name of a compose file at the root.
    pub root_name: Option<&'a str>,
    /// The home folder of whoever runs the file (the agent's user), for `~` in bind sources,
    /// as compose expands it; `None`: `~` is refused.
    pub home: Option<&'a str>,
}

/// Convert the compose file `path` (its `text`), with the `.env` beside it (`dotenv`) and the
/// enabled `profiles`; `path` is relative to the root.
pub fn convert(path: &str, text: &str, dotenv: Option<&str>, profiles: &[String]) -> Converted {
    convert_in(path, text, dotenv, &Context { profiles, root: "", root_name: None, home: None })
}

/// `convert` for a file shown as `path` under `ctx.root`.
pub fn convert_in(path: &str, text: &str, dotenv: Option<&str>, ctx: &Context<'_>) -> Converted {
    convert_files(&[(path, text)], dotenv, ctx)
}

/// `convert_in` for a compose file and its overrides (`files[0]` the main file, then each
/// override in order: `compose.override.yaml`), merged by compose's rules
/// (`merge::merge`) after each is interpolated on its own, as compose loads them. The
/// files sit in one folder and share its `.env`.
pub fn convert_files(files: &[(&str, &str)], dotenv: Option<&str>, ctx: &Context<'_>) -> Converted {
    let profiles = ctx.profiles;
    let mut out = Converted::default();
    let Some(&(path, _)) = files.first() else { return out };
    // The compose file's folder, relative to the root (what repository paths join to).
    let rel = path.strip_prefix(ctx.root).map(|r| r.trim_start_matches('/')).unwrap_or(path);
    let dir = parent(rel);
    let vars = match dotenv.map(self::dotenv::parse).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => {
            let shown = parent(path);
            let env_path = if shown.is_empty() { ".env".to_string() } else { format!("{shown}/.env") };
            out.errors.push(Diagnostic {
                file: env_path,
                line: e.line,
                column: 1,
                message: format!("{}: fix the .env beside {path} (compose's .env format)", e.message),
            });
            return out;
        }
    };
    let mut merged: Option<merge::Doc> = None;
    for (i, &(file, text)) in files.iter().enumerate() {
        let Some(doc) = read_one(file, text, &dir, &vars, ctx, &mut out) else {
            if i == 0 {
                return out; // nothing to merge the overrides into
            }
            continue;
        };
        match merged.as_mut() {
            None => merged = Some(doc),
            Some(base) => {
                let omap = doc.map.clone();
                for c in merge::merge(base, doc) {
                    out.errors.push(diag(file, &omap, &c.at, &c.message, false));
                }
            }
        }
    }
    let Some(merge::Doc { mut value, mut map }) = merged else { return out };
    merge::resolve_tags(&mut value);
    merge::enforce_unicity(&mut value, &mut map);
    let mut cx = Cx {
        file: path,
        map: &map,
        dir: dir.clone(),
        vars: vars.clone(),
        errors: std::mem::take(&mut out.errors),
        warnings: std::mem::take(&mut out.warnings),
        home: ctx.home.map(str::to_string),
        claims: Vec::new(),
    };
    let Some(top) = value.as_mapping() else {
        cx.err(&YamlPath::root(), "a compose file is a mapping with `services:`");
        out.errors = cx.errors;
        return out;
    };
    // `name:`, else the folder's name, as compose makes it — whether the folder was reached
    // as `.`, by a relative or an absolute path, or is the repository's root.
    let project = match top.get("name").and_then(Value::as_str) {
        Some(n) => n.to_string(),
        None => dir
            .rsplit('/')
            .find(|s| !s.is_empty() && *s != "." && *s != "..")
            .or(ctx.root_name)
            .unwrap_or("default")
            .to_string(),
    };
    let project =
        project.to_ascii_lowercase().replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'), "");
    for (k, _) in top {
        let key = k.as_str().unwrap_or("");
        let at = YamlPath::root().key(key);
        match key {
            "services" | "networks" | "volumes" | "secrets" | "name" => {}
            "version" => {} // obsolete in the specification; accepted and not used
            "configs" => cx.err(&at, "`configs` is not supported: mount the file with a relative bind (./file:/path:ro) or a secret"),
            "include" => cx.err(&at, "`include` is not supported: put the included services in this file, or in their own folder under source.path"),
            "models" => cx.err(&at, "`models` is not supported by Driftless"),
            k if k.starts_with("x-") => {}
            other => cx.err(&at, &format!("unknown top-level key `{other}`; a compose file holds services, networks, volumes, secrets, name and x- extensions")),
        }
    }
    let mut marked: BTreeMap<&str, std::collections::BTreeSet<String>> = BTreeMap::new();
    let networks = top_level(
        &mut cx,
        top,
        "networks",
        &project,
        &["name", "external", "driver", "labels", "internal"],
        &mut marked,
    );
    let volumes = top_level(&mut cx, top, "volumes", &project, &["name", "external", "driver", "labels"], &mut marked);
    let secrets = top_secrets(&mut cx, top);
    let Some(services) = top.get("services").and_then(Value::as_mapping) else {
        cx.err(&YamlPath::root(), "no `services:` in this compose file");
        out.errors = cx.errors;
        out.warnings = cx.warnings;
        out.claims = cx.claims;
        return out;
    };
    // How many containers each service runs (`deploy.replicas`, `scale`; 1 by default).
    let replicas: BTreeMap<String, u64> = services
        .iter()
        .filter_map(|(k, v)| {
            let s = k.as_str()?;
            Some((s.to_string(), replica_count(&mut cx, &YamlPath::root().key("services").key(s), v)))
        })
        .collect();
    // Container names of every service (for depends_on and network_mode: service:x): a
    // replicated service's first container, `<service>-1`.
    let names: BTreeMap<String, String> = services
        .iter()
        .filter_map(|(k, v)| {
            let s = k.as_str()?;
            if replicas.get(s).is_some_and(|n| *n != 1) {
                return Some((s.to_string(), format!("{s}-1")));
            }
            let name = v.get("container_name").and_then(Value::as_str).unwrap_or(s);
            Some((s.to_string(), name.to_string()))
        })
        .collect();
    // A service others wait for with service_completed_successfully runs to completion: a
    // oneshot (compose's migration pattern).
    let completes: std::collections::BTreeSet<String> = services
        .iter()
        .filter_map(|(_, v)| v.get("depends_on").and_then(Value::as_mapping))
        .flat_map(|m| m.iter())
        .filter(|(_, c)| c.get("condition").and_then(Value::as_str) == Some("service_completed_successfully"))
        .map(|(n, _)| key_text(n))
        .collect();
    for (k, svc) in services {
        let Some(service) = k.as_str() else { continue };
        let at = YamlPath::root().key("services").key(service);
        let Some(svc) = svc.as_mapping() else {
            cx.err(&at, "a service is a mapping of its keys");
            continue;
        };
        let declared: Vec<String> = seq_of_strings(svc.get("profiles"));
        let enabled = declared.is_empty() || declared.iter().any(|p| profiles.contains(p));
        let count = replicas.get(service).copied().unwrap_or(1);
        let sv = Service {
            name: service,
            at: at.clone(),
            names: &names,
            replicas: &replicas,
            networks: &networks,
            volumes: &volumes,
            secrets: &secrets,
            project: &project,
            marked: &marked,
        };
        if !enabled {
            // A service with profiles runs only when one of them is enabled. What it mounts
            // is still its own (which files are desired state must not depend on profiles):
            // read it for its claims alone.
            let (errors, warnings) = (cx.errors.len(), cx.warnings.len());
            let _ = cx.service(&sv, svc);
            cx.errors.truncate(errors);
            cx.warnings.truncate(warnings);
            continue;
        }
        if let Some(mut g) = cx.service(&sv, svc) {
            if completes.contains(service) {
                if let Some(spec) = g.doc.get_mut("spec").and_then(Value::as_mapping_mut) {
                    spec.insert("oneshot".into(), true.into());
                    spec.remove("restart");
                }
            }
            if count == 1 {
                out.docs.push(g);
                continue;
            }
            // `deploy.replicas: N`: N containers `<service>-1` … `<service>-N`, each reachable
            // by the service's name on its networks, as compose runs them on one host.
            for i in 1..=count {
                let mut r = Generated { doc: g.doc.clone(), map: g.map.clone(), origin: g.origin.clone() };
                if let Some(meta) = r.doc.get_mut("metadata").and_then(Value::as_mapping_mut) {
                    meta.insert("name".into(), format!("{service}-{i}").into());
                }
                out.docs.push(r);
            }
        }
    }
    out.errors = cx.errors;
    out.warnings = cx.warnings;
    out.claims = cx.claims;
    out
}

/// Read one compose file of a project: its YAML, merge keys, interpolation (with the
/// folder's `.env`), positions tagged with its name. `None` (errors in `out`): it cannot
/// be read.
fn read_one(
    file: &str,
    text: &str,
    dir: &str,
    vars: &BTreeMap<String, String>,
    ctx: &Context<'_>,
    out: &mut Converted,
) -> Option<merge::Doc> {
    if let Err((line, column, message)) = crate::limits::prescan(text) {
        out.errors.push(Diagnostic { file: file.into(), line, column, message });
        return None;
    }
    let mut map = map_documents(text).into_iter().next().unwrap_or_default();
    map.set_file(file);
    let mut value: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            out.errors.push(Diagnostic {
                file: file.into(),
                line,
                column,
                message: format!("YAML syntax: {}", strip_marks(&e.to_string())),
            });
            return None;
        }
    };
    if let Err(why) = merge_keys(&mut value) {
        out.errors.push(Diagnostic {
            file: file.into(),
            line: 1,
            column: 1,
            message: format!("YAML merge key: {why}"),
        });
        return None;
    }
    let mut cx = Cx {
        file,
        map: &map,
        dir: dir.to_string(),
        vars: vars.clone(),
        errors: Vec::new(),
        warnings: Vec::new(),
        home: ctx.home.map(str::to_string),
        claims: Vec::new(),
    };
    interpolate_tree(&mut cx, &mut value, &YamlPath::root(), vars);
    let (errors, warnings) = (cx.errors, cx.warnings);
    out.errors.extend(errors);
    out.warnings.extend(warnings);
    if value.is_null() {
        value = Value::Mapping(Mapping::new()); // an empty override changes nothing
    }
    if !value.is_mapping() {
        out.errors.push(diag(file, &map, &YamlPath::root(), "a compose file is a mapping with `services:`", false));
        return None;
    }
    Some(merge::Doc { value, map })
}

/// One service being converted, with what the file declares around it.
struct Service<'a> {
    name: &'a str,
    at: YamlPath,
    names: &'a BTreeMap<String, String>,
    /// Containers per service (`deploy.replicas`): a dependency on a replicated service is
    /// a dependency on each of its containers.
    replicas: &'a BTreeMap<String, u64>,
    networks: &'a BTreeMap<String, String>,
    volumes: &'a BTreeMap<String, String>,
    /// Top-level secrets: key → (source path, the `.env` variable holding it, if any).
    secrets: &'a BTreeMap<String, (String, Option<String>)>,
    project: &'a str,
    /// Engine names of the top-level objects marked `external` (under `volumes`,
    /// `networks`) or `internal` (under `internal`: networks).
    marked: &'a BTreeMap<&'a str, std::collections::BTreeSet<String>>,
}

struct Cx<'a> {
    file: &'a str,
    map: &'a DocMap,
    /// The compose file's folder (repository-relative; `""` for the root).
    dir: String,
    /// The `.env` beside the file (interpolation, and `environment` keys without a value).
    vars: BTreeMap<String, String>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// `Context::home`.
    home: Option<String>,
    /// Every repository path `repo_path` resolved (`Converted::claims`).
    claims: Vec<Claim>,
}

fn diag(file: &str, map: &DocMap, path: &YamlPath, msg: &str, key: bool) -> Diagnostic {
    let pos = if key { map.key_pos(path) } else { map.value_pos(path) };
    let message = if path.is_empty() { msg.to_string() } else { format!("{path}: {msg}") };
    // A merged override's nodes name their own file.
    let file = map.file_at(path).unwrap_or(file);
    Diagnostic { file: file.to_string(), line: pos.line, column: pos.column, message }
}

impl Cx<'_> {
    fn err(&mut self, path: &YamlPath, msg: &str) {
        self.errors.push(diag(self.file, self.map, path, msg, false));
    }

    fn key_err(&mut self, path: &YamlPath, msg: &str) {
        self.errors.push(diag(self.file, self.map, path, msg, true));
    }

    fn warn(&mut self, path: &YamlPath, msg: &str) {
        self.warnings.push(diag(self.file, self.map, path, msg, false));
    }

    /// A path relative to the compose file's folder, as a repository path.
    fn repo_path(&mut self, at: &YamlPath, p: &str) -> Option<String> {
        if p.starts_with('~') {
            self.err(at, &format!("{p:?}: `~` is the home of whoever runs the file, and this reader was given none; write a path relative to the compose file, or an absolute host path"));
            return None;
        }
        match join(&self.dir, p) {
            Some(r) => {
                let line = self.map.value_pos(at).line;
                let file = self.map.file_at(at).unwrap_or(self.file).to_string();
                self.claims.push(Claim { path: r.clone(), file, line, at: at.to_string() });
                Some(r)
            }
            None => {
                self.err(
                    at,
                    &format!("{p:?} escapes the repository root: paths in a compose file stay inside the repository"),
                );
                None
            }
        }
    }

    /// Convert one service to a Container document.
    fn service(&mut self, sv: &Service<'_>, svc: &Mapping) -> Option<Generated> {
        let at = &sv.at;
        let mut spec = Mapping::new();
        let cmap: &DocMap = self.map;
        let mut docmap = DocMap::starting_at(cmap.value_pos(at));
        let spec_at = YamlPath::root().key("spec");
        docmap.alias_node(cmap, at, &YamlPath::root());
        docmap.alias_node(cmap, at, &spec_at);
        // Record that spec.<key> came from services.<svc>.<from>.
        let alias = |docmap: &mut DocMap, from: &str, to: &str| {
            docmap.alias_tree(cmap, &at.key(from), &spec_at.key(to));
        };
        let mut environments: Option<Value> = None;
        let mut health: Option<Value> = None;
        let container = sv.names.get(sv.name).cloned().unwrap_or_else(|| sv.name.to_string());
        let mut network_mode_set = false;
        let mut network_peer: Option<String> = None;
        for (k, v) in svc {
            let key = k.as_str().unwrap_or("");
            let kat = at.key(key);
            if let Some(why) = wrong_shape(key, v) {
                self.err(&kat, &why);
                continue;
            }
            match key {
                // One to one.
                "image" | "user" | "working_dir" | "hostname" | "init" | "privileged" | "read_only" | "cap_add"
                | "cap_drop" | "security_opt" | "shm_size" | "stop_signal" | "pids_limit" | "cpus" | "group_add"
                | "logging" | "ulimits" => {
                    let v = match key {
                        "group_add" | "cap_add" | "cap_drop" | "security_opt" => strings_of(v),
                        "cpus" | "shm_size" => scalar_text(v),
                        "pids_limit" => numberish(v),
                        "ulimits" => numbers_within(v),
                        _ => v.clone(),
                    };
                    spec.insert(key.into(), v);
                    alias(&mut docmap, key, key);
                }
                "container_name" | "profiles" => {}
                // Whether `docker compose up` prints the service's output: the agent runs
                // detached and prints no container's output, whatever it says.
                "attach" => {}
                "platform" => {
                    let p = scalar_string(v);
                    if !p.is_empty() && p != host_platform() {
                        self.err(&kat, &format!("platform {p:?} is not this host's ({}): Driftless runs images on the engine's own platform; remove it", host_platform()));
                    }
                }
                "tty" | "stdin_open" => {
                    spec.insert(key.into(), v.clone());
                    alias(&mut docmap, key, key);
                }
                k if k.starts_with("x-") && k != "x-driftless" => {}
                "x-driftless" => {
                    let Some(m) = v.as_mapping() else {
                        self.err(&kat, "x-driftless is a mapping: { health: [...], environments: {...} }");
                        continue;
                    };
                    for (xk, xv) in m {
                        match xk.as_str().unwrap_or("") {
                            "health" => {
                                health = Some(xv.clone());
                                alias(&mut docmap, "x-driftless", "health");
                                docmap.alias_tree(self.map, &kat.key("health"), &spec_at.key("health"));
                            }
                            "environments" => {
                                environments = Some(xv.clone());
                                docmap.alias_tree(
                                    self.map,
                                    &kat.key("environments"),
                                    &YamlPath::root().key("environments"),
                                );
                            }
                            other => self.key_err(
                                &kat.key(other),
                                &format!("unknown key `{other}` in x-driftless; expected health or environments"),
                            ),
                        }
                    }
                }
                "command" | "entrypoint" => match v {
                    Value::String(s) => match shell_words(s) {
                        Some(words) => {
                            spec.insert(key.into(), Value::Sequence(words.into_iter().map(Value::String).collect()));
                            alias(&mut docmap, key, key);
                        }
                        None => self.err(&kat, &format!("{key} has an unclosed quote")),
                    },
                    Value::Sequence(_) => {
                        spec.insert(key.into(), strings_of(v));
                        alias(&mut docmap, key, key);
                    }
                    Value::Null => {}
                    _ => self.err(&kat, &format!("{key} is a string or a list")),
                },
                "environment" => {
                    let mut env = Mapping::new();
                    match v {
                        Value::Mapping(m) => {
                            for (ek, ev) in m {
                                let name = key_text(ek);
                                let value =
                                    if ev.is_null() { self.vars.get(&name).cloned() } else { Some(scalar_string(ev)) };
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
                        _ => self.err(&kat, "environment is a mapping or a list of KEY=value"),
                    }
                    if !env.is_empty() {
                        spec.insert("env".into(), Value::Mapping(env));
                        alias(&mut docmap, key, "env");
                    }
                }
                "env_file" => {
                    let mut files = Vec::new();
                    let items: Vec<(YamlPath, &Value)> = match v {
                        Value::Sequence(s) => s.iter().enumerate().map(|(i, x)| (kat.index(i), x)).collect(),
                        other => vec![(kat.clone(), other)],
                    };
                    for (iat, item) in items {
                        let p = match item {
                            Value::String(p) => Some(p.clone()),
                            Value::Mapping(m) => {
                                if m.get("required").and_then(Value::as_bool) == Some(false) {
                                    self.err(&iat.key("required"), "required: false is not supported: the file is read from the repository at the revision; commit it, or remove the entry");
                                }
                                if m.get("format").is_some() {
                                    self.err(
                                        &iat.key("format"),
                                        "env_file format is not supported: write KEY=value lines",
                                    );
                                }
                                m.get("path").and_then(Value::as_str).map(str::to_string)
                            }
                            _ => None,
                        };
                        match p {
                            Some(p) if p.starts_with('/') => files.push(Value::String(p)),
                            Some(p) => {
                                if let Some(r) = self.repo_path(&iat, &p) {
                                    files.push(Value::String(r));
                                }
                            }
                            None => self.err(&iat, "env_file is a path, a list of paths, or { path }"),
                        }
                    }
                    spec.insert("env_files".into(), Value::Sequence(files));
                    alias(&mut docmap, key, "env_files");
                }
                "ports" => {
                    let mut ports = Vec::new();
                    for (i, p) in v.as_sequence().into_iter().flatten().enumerate() {
                        match port(p) {
                            Ok(s) => ports.push(Value::String(s)),
                            Err(why) => self.err(&kat.index(i), &why),
                        }
                    }
                    spec.insert("ports".into(), Value::Sequence(ports));
                    alias(&mut docmap, key, "ports");
                }
                "expose" => {
                    spec.insert("expose".into(), strings_of(v));
                    alias(&mut docmap, key, "expose");
                }
                "volumes" => {
                    let (mut vols, mut files, mut tmpfs) = (Vec::new(), Vec::new(), Vec::new());
                    for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
                        self.volume(sv, &kat.index(i), item, &mut vols, &mut files, &mut tmpfs);
                    }
                    if !vols.is_empty() {
                        spec.insert("volumes".into(), Value::Sequence(vols));
                        alias(&mut docmap, key, "volumes");
                    }
                    if !files.is_empty() {
                        spec.insert("files".into(), Value::Sequence(files));
                        alias(&mut docmap, key, "files");
                    }
                    if !tmpfs.is_empty() {
                        let mut all = spec.get("tmpfs").and_then(Value::as_sequence).cloned().unwrap_or_default();
                        all.extend(tmpfs);
                        spec.insert("tmpfs".into(), Value::Sequence(all));
                    }
                }
                "tmpfs" => {
                    let mut all = spec.get("tmpfs").and_then(Value::as_sequence).cloned().unwrap_or_default();
                    match strings_of(v) {
                        Value::Sequence(s) => all.extend(s),
                        other => all.push(other),
                    }
                    spec.insert("tmpfs".into(), Value::Sequence(all));
                    alias(&mut docmap, key, "tmpfs");
                }
                "networks" => {
                    let mut nets = Vec::new();
                    let entries = names_or_map(v);
                    for (n, conf) in entries {
                        let real = match sv.networks.get(&n) {
                            Some(r) => r.clone(),
                            None => {
                                self.err(&kat, &format!("network {n:?} is not declared under the top-level networks:"));
                                continue;
                            }
                        };
                        let mut aliases: Vec<Value> = Vec::new();
                        if let Some(Value::Mapping(c)) = conf {
                            for (ck, cv) in c {
                                match ck.as_str().unwrap_or("") {
                                    "aliases" => aliases = strings_of(cv).as_sequence().cloned().unwrap_or_default(),
                                    other => self.key_err(&kat.key(n.as_str()).key(other), &format!("`{other}` of a service's network is not supported; only aliases is (addresses are the engine's to assign)")),
                                }
                            }
                        }
                        if container != sv.name && !aliases.iter().any(|a| a.as_str() == Some(sv.name)) {
                            aliases.push(Value::String(sv.name.to_string())); // reachable by its service name, as in compose
                        }
                        if aliases.is_empty() {
                            nets.push(Value::String(real));
                        } else {
                            let mut m = Mapping::new();
                            m.insert("name".into(), real.into());
                            m.insert("aliases".into(), Value::Sequence(aliases));
                            nets.push(Value::Mapping(m));
                        }
                    }
                    spec.insert("networks".into(), Value::Sequence(nets));
                    alias(&mut docmap, key, "networks");
                }
                "network_mode" => {
                    network_mode_set = true;
                    let mode = scalar_string(v);
                    let mode = match mode.strip_prefix("service:") {
                        // Compose runs the service in x's network namespace and starts x first:
                        // the engine's `container:<x's container>`, and an implied depends_on.
                        Some(s) => match sv.names.get(s) {
                            Some(_) if sv.replicas.get(s) == Some(&0) => {
                                self.err(&kat, &format!("network_mode service:{s}: {s} runs no container (deploy.replicas: 0) whose network this one could share: give {s} a replica, or use another network_mode"));
                                continue;
                            }
                            // A replicated x: its first container, as compose takes it.
                            Some(c) => {
                                network_peer = Some(c.clone());
                                format!("container:{c}")
                            }
                            None => {
                                self.err(&kat, &format!("network_mode service:{s} names no service of this file; name one of its services (network_mode: service:<name>), or use container:<name> for a container outside it"));
                                continue;
                            }
                        },
                        None => mode,
                    };
                    spec.insert("network_mode".into(), mode.into());
                    alias(&mut docmap, key, "network_mode");
                }
                "depends_on" => {
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
                                    ("required", _) => self.err(&cat, "required: false is not supported: every dependency must be in the desired state"),
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
                    spec.insert("depends_on".into(), Value::Sequence(deps));
                    alias(&mut docmap, key, "depends_on");
                }
                "restart" => {
                    // When both are set, compose takes deploy.restart_policy.
                    if svc.get("deploy").and_then(|d| d.get("restart_policy")).is_none() {
                        spec.insert("restart".into(), scalar_text(v));
                        alias(&mut docmap, key, "restart");
                    }
                }
                "labels" => {
                    spec.insert("labels".into(), map_of_strings(v));
                    alias(&mut docmap, key, "labels");
                }
                "sysctls" => {
                    spec.insert("sysctls".into(), map_of_strings(v));
                    alias(&mut docmap, key, "sysctls");
                }
                "extra_hosts" => {
                    let hosts: Vec<Value> = match v {
                        Value::Mapping(m) => m
                            .iter()
                            .map(|(h, ip)| Value::String(format!("{}:{}", key_text(h), scalar_string(ip))))
                            .collect(),
                        other => strings_of(other).as_sequence().cloned().unwrap_or_default(),
                    };
                    spec.insert("extra_hosts".into(), Value::Sequence(hosts));
                    alias(&mut docmap, key, "extra_hosts");
                }
                "dns" => {
                    let list = match v {
                        Value::String(s) => Value::Sequence(vec![Value::String(s.clone())]),
                        other => strings_of(other),
                    };
                    spec.insert("dns".into(), list);
                    alias(&mut docmap, key, "dns");
                }
                "devices" => {
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
                    spec.insert("devices".into(), Value::Sequence(devs));
                    alias(&mut docmap, key, "devices");
                }
                "mem_limit" => {
                    spec.insert("memory".into(), scalar_text(v));
                    alias(&mut docmap, key, "memory");
                }
                "stop_grace_period" => {
                    spec.insert("stop_timeout".into(), scalar_text(v));
                    alias(&mut docmap, key, "stop_timeout");
                }
                "pull_policy" => {
                    let p = match scalar_string(v).as_str() {
                        "always" => Some("always"),
                        "missing" | "if_not_present" => Some("if-not-present"),
                        "never" => Some("never"),
                        "build" => None,
                        other => {
                            self.err(
                                &kat,
                                &format!("unknown pull_policy {other:?}; expected always, missing, never or build"),
                            );
                            None
                        }
                    };
                    if let Some(p) = p {
                        spec.insert("pull".into(), p.into());
                        alias(&mut docmap, key, "pull");
                    }
                }
                "build" => {
                    let mut b = Mapping::new();
                    match v {
                        Value::String(ctx) => {
                            if let Some(r) = self.repo_path(&kat, ctx) {
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
                                    other => self.key_err(&bat, &format!("build key `{other}` is not supported; Driftless builds with context, dockerfile, target and args (dockerfile_inline: commit the Dockerfile)")),
                                }
                            }
                            if !b.contains_key("context") {
                                if let Some(r) = self.repo_path(&kat, ".") {
                                    b.insert("context".into(), r.into());
                                }
                            }
                        }
                        _ => self.err(&kat, "build is a folder, or { context, dockerfile, target, args }"),
                    }
                    spec.insert("build".into(), Value::Mapping(b));
                    alias(&mut docmap, key, "build");
                }
                "healthcheck" => {
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
                            "retries" => {
                                h.insert(hkey.into(), numberish(hv));
                            }
                            "disable" => disabled = hv.as_bool() == Some(true),
                            "start_interval" => self.key_err(&kat.key(hkey), "start_interval is not supported (Docker 25+): remove it; interval applies from the start"),
                            other => self.key_err(&kat.key(other), &format!("unknown healthcheck key `{other}`; expected test, interval, timeout, retries, start_period or disable")),
                        }
                    }
                    if disabled {
                        h = Mapping::new();
                        h.insert("test".into(), Value::Sequence(vec!["NONE".into()]));
                    }
                    // `disable: false` alone changes nothing: the image's own check stays.
                    if !h.is_empty() {
                        spec.insert("healthcheck".into(), Value::Mapping(h));
                        alias(&mut docmap, key, "healthcheck");
                    }
                }
                "secrets" => {
                    let mut list = Vec::new();
                    for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
                        let iat = kat.index(i);
                        let (name, target) = match item {
                            Value::String(n) => (n.clone(), None),
                            Value::Mapping(m) => {
                                for (mk, _) in m {
                                    let mkey = mk.as_str().unwrap_or("");
                                    if !matches!(mkey, "source" | "target") {
                                        self.key_err(&iat.key(mkey), &format!("secret `{mkey}` is not supported: the file is mounted read-only as the agent wrote it (readable by the container's user)"));
                                    }
                                }
                                (
                                    m.get("source").map(scalar_string).unwrap_or_default(),
                                    m.get("target").map(scalar_string),
                                )
                            }
                            _ => continue,
                        };
                        let Some(source) = sv.secrets.get(&name) else {
                            self.err(&iat, &format!("secret {name:?} is not declared under the top-level secrets:"));
                            continue;
                        };
                        let mut m = Mapping::new();
                        m.insert("name".into(), name.clone().into());
                        m.insert("source".into(), source.0.clone().into());
                        if let Some(var) = &source.1 {
                            m.insert("env".into(), var.clone().into());
                        }
                        if let Some(t) = target {
                            m.insert("target".into(), t.into());
                        }
                        list.push(Value::Mapping(m));
                    }
                    spec.insert("secrets".into(), Value::Sequence(list));
                    alias(&mut docmap, key, "secrets");
                }
                "deploy" => self.deploy(&kat, v, &mut spec, &mut docmap, at),
                "scale" => {} // read by `replica_count`
                other => {
                    let hint = unsupported_hint(other);
                    self.key_err(&kat, &hint);
                }
            }
        }
        if !network_mode_set && !spec.contains_key("networks") {
            // Compose's default network: every service of the file on one, by project.
            let mut nets = Vec::new();
            let default = sv.networks.get("default").cloned().unwrap_or_else(|| format!("{}_default", sv.project));
            if container != sv.name {
                let mut m = Mapping::new();
                m.insert("name".into(), default.into());
                m.insert("aliases".into(), Value::Sequence(vec![Value::String(sv.name.to_string())]));
                nets.push(Value::Mapping(m));
            } else {
                nets.push(Value::String(default));
            }
            spec.insert("networks".into(), Value::Sequence(nets));
        }
        if let Some(peer) = network_peer {
            // The implied dependency of `network_mode: service:x` (unless written already).
            let mut deps = spec.get("depends_on").and_then(Value::as_sequence).cloned().unwrap_or_default();
            let named = |d: &Value| d.as_str().or_else(|| d.get("name").and_then(Value::as_str)) == Some(peer.as_str());
            if !deps.iter().any(named) {
                deps.push(Value::String(peer));
                spec.insert("depends_on".into(), Value::Sequence(deps));
            }
        }
        // The volumes and networks this service uses that are marked external (they must
        // exist already) or internal (created without a route out).
        let names = |key: &str, name: fn(&Value) -> Option<&str>| -> Vec<String> {
            let list = spec.get(key).and_then(Value::as_sequence).into_iter().flatten();
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
        if !internal.is_empty() {
            spec.insert("internal_networks".into(), Value::Sequence(internal));
        }
        if !used_volumes.is_empty() || !used_networks.is_empty() {
            let mut ext = Mapping::new();
            if !used_volumes.is_empty() {
                ext.insert("volumes".into(), Value::Sequence(used_volumes));
            }
            if !used_networks.is_empty() {
                ext.insert("networks".into(), Value::Sequence(used_networks));
            }
            spec.insert("external".into(), Value::Mapping(ext));
        }
        if !spec.contains_key("restart") {
            // Compose's default: a container that exits stays exited.
            spec.insert("restart".into(), "no".into());
        }
        if let Some(h) = health {
            spec.insert("health".into(), h);
        }
        let mut doc = Mapping::new();
        doc.insert("apiVersion".into(), "driftless/v1".into());
        doc.insert("kind".into(), "Container".into());
        let mut meta = Mapping::new();
        meta.insert("name".into(), container.into());
        doc.insert("metadata".into(), Value::Mapping(meta));
        doc.insert("spec".into(), Value::Mapping(spec));
        if let Some(e) = environments {
            doc.insert("environments".into(), e);
        }
        docmap.alias_node(cmap, at, &YamlPath::root().key("metadata").key("name"));
        let container_name_at = at.key("container_name");
        if cmap.contains(&container_name_at) {
            docmap.alias_node(cmap, &container_name_at, &YamlPath::root().key("metadata").key("name"));
        }
        let file = self.map.file_at(at).unwrap_or(self.file).to_string();
        let origin = Origin { file, line: self.map.key_pos(at).line };
        Some(Generated { doc: Value::Mapping(doc), map: docmap, origin })
    }

    /// One `volumes` entry of a service: a named volume, an absolute bind, a relative bind
    /// (a repository path: `files`), or a tmpfs.
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
                    if !matches!(mkey, "type" | "source" | "target" | "read_only" | "tmpfs" | "volume" | "bind") {
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
                vols.push(Value::String(format!("{}_{}_{path}:{target}{opts}", sv.project, sv.name)));
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
                None => self.err(at, &format!("volume {source:?} is not declared under the top-level volumes:")),
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
                    files.push(Value::Mapping(m));
                }
            }
            "tmpfs" => tmpfs.push(Value::String(if extra.is_empty() { target } else { format!("{target}:{extra}") })),
            other => self.err(at, &format!("volume type {other:?} is not supported; expected volume, bind or tmpfs")),
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
                        if rkey != "limits" {
                            self.key_err(&rat, &format!("deploy.resources.{rkey} is not supported; only limits (cpus, memory, pids) is"));
                            continue;
                        }
                        for (lk, lv) in rv.as_mapping().into_iter().flatten() {
                            let lkey = lk.as_str().unwrap_or("");
                            let to = match lkey {
                                "cpus" => "cpus",
                                "memory" => "memory",
                                "pids" => "pids_limit",
                                other => {
                                    self.key_err(&rat.key(other), &format!("deploy.resources.limits.{other} is not supported; only cpus, memory and pids are"));
                                    continue;
                                }
                            };
                            spec.insert(to.into(), if to == "pids_limit" { numberish(lv) } else { scalar_text(lv) });
                            docmap.alias_tree(self.map, &rat.key(lkey), &YamlPath::root().key("spec").key(to));
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
                            self.key_err(&dat.key(pkey), &format!("deploy.restart_policy.{pkey} is not supported; only condition and max_attempts are"));
                        }
                    }
                    spec.insert("restart".into(), policy.into());
                    docmap.alias_tree(self.map, &dat, &YamlPath::root().key("spec").key("restart"));
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
                other => self.key_err(&dat, &format!("deploy.{other} is not supported on a single host; Driftless reads deploy.replicas, deploy.mode, deploy.resources.limits and deploy.restart_policy")),
            }
        }
    }
}

/// How many containers a service runs: `deploy.replicas`, else `scale`, else 1 (compose's
/// rule; both set must agree). More than one is refused where the containers could not all
/// run on one host: a `container_name` (names are unique) or a fixed host port.
fn replica_count(cx: &mut Cx<'_>, at: &YamlPath, svc: &Value) -> u64 {
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
const MAX_REPLICAS: u64 = 100;

/// The fixed host port a `ports` entry publishes, if any (`"8080:80"`, `"127.0.0.1:8080:80"`,
/// `published: 8080`); `None` for a container port alone or an empty host port.
fn fixed_host_port(p: &Value) -> Option<String> {
    if let Some(m) = p.as_mapping() {
        let published = m.get("published").map(scalar_string).unwrap_or_default();
        return (!published.is_empty()).then_some(published);
    }
    // An entry that does not parse publishes nothing here; the port checks refuse it.
    let (lo, hi) = crate::checks::PortMapping::parse(&scalar_string(p)).ok()?.host?;
    Some(if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
}

/// What to write instead of a service key Driftless does not support.
fn unsupported_hint(key: &str) -> String {
    let why = match key {
        "links" | "external_links" => "services reach each other by name on a shared network; remove it",
        "extends" => "write the shared keys once with YAML anchors and merge keys (x-base: &base …, then <<: *base)",
        "volumes_from" => "mount the same named volume in both services",
        "configs" => "mount the file with a relative bind (./file:/path:ro)",
        "ipc" | "pid" | "uts" | "userns_mode" | "cgroup" | "cgroup_parent" | "isolation" | "runtime" => {
            "Driftless does not set this namespace or runtime; remove it, or run the container by hand"
        }
        "platform" => "set it to this host's platform, or remove it",
        "cpu_shares"
        | "cpu_quota"
        | "cpu_period"
        | "cpu_rt_runtime"
        | "cpu_rt_period"
        | "cpuset"
        | "cpu_count"
        | "cpu_percent"
        | "mem_reservation"
        | "mem_swappiness"
        | "memswap_limit"
        | "oom_kill_disable"
        | "oom_score_adj"
        | "blkio_config"
        | "device_cgroup_rules"
        | "storage_opt" => "use cpus, mem_limit and pids_limit instead",
        "dns_opt" | "dns_search" | "domainname" | "mac_address" => "use dns and extra_hosts instead",
        "credential_spec" | "gpus" | "annotations" | "develop" | "post_start" | "pre_stop" | "provider"
        | "use_api_socket" | "label_file" | "models" | "pull_refresh_after" => "remove it",
        _ => "it is not a compose service key Driftless knows; docs/compose.md lists the keys it reads",
    };
    format!("`{key}` is not supported: {why}")
}

/// `linux/amd64`, `linux/arm64`, …: what the engine here runs natively.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    format!("linux/{arch}")
}

/// Apply YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`) everywhere, innermost first, as
/// the YAML merge-key type says: keys already in the mapping win, then the merged mappings
/// in order.
fn merge_keys(v: &mut Value) -> Result<(), String> {
    match v {
        Value::Mapping(m) => {
            for (_, item) in m.iter_mut() {
                merge_keys(item)?;
            }
            if let Some(merged) = m.remove("<<") {
                let sources: Vec<Value> = match merged {
                    Value::Mapping(_) => vec![merged],
                    Value::Sequence(s) => s,
                    _ => return Err("<< takes a mapping or a list of mappings".into()),
                };
                for mut src in sources {
                    merge_keys(&mut src)?;
                    let Value::Mapping(src) = src else {
                        return Err("<< takes a mapping or a list of mappings".into());
                    };
                    for (k, val) in src {
                        if !m.contains_key(&k) {
                            m.insert(k, val);
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(s) => s.iter_mut().try_for_each(merge_keys),
        Value::Tagged(t) => merge_keys(&mut t.value),
        _ => Ok(()),
    }
}

/// Names of the top-level networks or volumes: key → the engine's name.
fn top_level<'w>(
    cx: &mut Cx<'_>,
    top: &Mapping,
    what: &'w str,
    project: &str,
    allowed: &[&str],
    marked: &mut BTreeMap<&'w str, std::collections::BTreeSet<String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if what == "networks" {
        out.insert("default".to_string(), format!("{project}_default"));
    }
    for (k, v) in top.get(what).and_then(Value::as_mapping).into_iter().flatten() {
        let key = key_text(k);
        let at = YamlPath::root().key(what).key(key.as_str());
        let mut name = format!("{project}_{key}");
        for (ck, cv) in v.as_mapping().into_iter().flatten() {
            let ckey = ck.as_str().unwrap_or("");
            match ckey {
                "name" => name = scalar_string(cv),
                "external" => match cv {
                    Value::Bool(true) if v.get("name").is_none() => name = key.clone(),
                    Value::Bool(_) => {}
                    // The legacy form (compose file format 3.3 and before): `external: { name:
                    // x }` names the existing object, as `name:` with `external: true` does.
                    Value::Mapping(m) => {
                        for (ek, ev) in m {
                            match ek.as_str().unwrap_or("") {
                                "name" if v.get("name").is_none() => name = scalar_string(ev),
                                "name" => {}
                                other => cx.key_err(
                                    &at.key("external").key(other),
                                    &format!("`external.{other}` is not supported; write external: true and name: <the existing {}'s name>", &what[..what.len() - 1]),
                                ),
                            }
                        }
                        if m.get("name").is_none() && v.get("name").is_none() {
                            name = key.clone();
                        }
                    }
                    _ => cx.err(&at.key("external"), "external is true or false (or the legacy { name: … })"),
                },
                "driver" => {
                    let d = scalar_string(cv);
                    let ok = if what == "networks" { d == "bridge" } else { d == "local" };
                    if !ok {
                        cx.err(
                            &at.key("driver"),
                            &format!(
                                "driver {d:?} is not supported; Driftless creates {} with the engine's default driver",
                                what
                            ),
                        );
                    }
                }
                "labels" => {}
                "internal" if what == "networks" => {
                    if cv.as_bool().is_none() {
                        cx.err(&at.key("internal"), "internal is true or false");
                    }
                }
                other if allowed.contains(&other) => {}
                other => cx.key_err(
                    &at.key(other),
                    &format!(
                        "`{other}` of a top-level {} entry is not supported; write name, external, driver, labels (or, for a network, internal)",
                        &what[..what.len() - 1]
                    ),
                ),
            }
        }
        let is_external = match v.get("external") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Mapping(_)) => true,
            _ => false,
        };
        if is_external {
            marked.entry(what).or_default().insert(name.clone());
        }
        if what == "networks" && v.get("internal").and_then(Value::as_bool) == Some(true) {
            marked.entry("internal").or_default().insert(name.clone());
        }
        out.insert(key, name);
    }
    out
}

/// Top-level `secrets`: key → repository path of its file.
fn top_secrets(cx: &mut Cx<'_>, top: &Mapping) -> BTreeMap<String, (String, Option<String>)> {
    let mut out = BTreeMap::new();
    for (k, v) in top.get("secrets").and_then(Value::as_mapping).into_iter().flatten() {
        let key = key_text(k);
        let at = YamlPath::root().key("secrets").key(key.as_str());
        match (v.get("file").and_then(Value::as_str), v.get("environment").and_then(Value::as_str)) {
            (Some(f), None) if f.starts_with('/') => {
                out.insert(key, (f.to_string(), None));
            }
            (Some(f), None) => {
                if let Some(r) = cx.repo_path(&at.key("file"), f) {
                    out.insert(key, (r, None));
                }
            }
            // Compose takes the variable's value from its environment; Driftless's is the
            // `.env` beside the file (never the agent's own environment): the secret is that
            // variable of that file, read at the revision.
            (None, Some(var)) => {
                if !cx.vars.contains_key(var) {
                    cx.err(&at.key("environment"), &format!("secret {key}: environment {var} is not in the .env beside the compose file (the agent's own environment is never read): define it there, or write file: ./path"));
                } else if let Some(r) = cx.repo_path(&at, ".env") {
                    out.insert(key, (r, Some(var.to_string())));
                }
            }
            (Some(_), Some(_)) => cx.err(&at, "a secret is file: or environment:, not both"),
            (None, None) => cx.err(
                &at,
                "a secret needs file: ./path or environment: VAR (a variable of the .env beside the compose file)",
            ),
        }
        for (ck, _) in v.as_mapping().into_iter().flatten() {
            let ckey = ck.as_str().unwrap_or("");
            if !matches!(ckey, "file" | "environment" | "name") {
                cx.key_err(
                    &at.key(ckey),
                    &format!("`{ckey}` of a secret is not supported; write file: ./path or environment: VAR"),
                );
            }
        }
    }
    out
}

/// What compose-go casts an interpolated value to at `at` (its `interpolateTypeCastMapping`):
/// `None` where a string stays a string.
fn cast_at(at: &YamlPath, value: &str) -> Option<Result<Value, String>> {
    use crate::source_map::Seg;
    let segs: Vec<Option<&str>> =
        at.0.iter()
            .map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect();
    // (pattern, kind): `*` matches any key, `[]` any list index.
    const BOOL: &[&[&str]] = &[
        &["services", "*", "init"],
        &["services", "*", "depends_on", "*", "required"],
        &["services", "*", "depends_on", "*", "restart"],
        &["services", "*", "healthcheck", "disable"],
        &["services", "*", "oom_kill_disable"],
        &["services", "*", "privileged"],
        &["services", "*", "read_only"],
        &["services", "*", "stdin_open"],
        &["services", "*", "tty"],
        &["services", "*", "volumes", "[]", "read_only"],
        &["services", "*", "volumes", "[]", "volume", "nocopy"],
        &["networks", "*", "external"],
        &["networks", "*", "internal"],
        &["networks", "*", "attachable"],
        &["networks", "*", "enable_ipv4"],
        &["networks", "*", "enable_ipv6"],
        &["volumes", "*", "external"],
        &["secrets", "*", "external"],
        &["configs", "*", "external"],
    ];
    const INT: &[&[&str]] = &[
        &["services", "*", "deploy", "replicas"],
        &["services", "*", "deploy", "restart_policy", "max_attempts"],
        &["services", "*", "healthcheck", "retries"],
        &["services", "*", "pids_limit"],
        &["services", "*", "ports", "[]", "target"],
        &["services", "*", "scale"],
        &["services", "*", "ulimits", "*"],
        &["services", "*", "ulimits", "*", "hard"],
        &["services", "*", "ulimits", "*", "soft"],
        &["services", "*", "oom_score_adj"],
    ];
    let matches = |pattern: &[&str]| {
        pattern.len() == segs.len()
            && pattern.iter().zip(&segs).all(|(p, s)| match (*p, s) {
                ("[]", None) => true,
                ("[]", Some(_)) => false,
                ("*", Some(_)) => true,
                (p, Some(s)) => p == *s,
                (_, None) => false,
            })
    };
    if BOOL.iter().any(|p| matches(p)) {
        return Some(match value.to_ascii_lowercase().as_str() {
            "true" | "y" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "n" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("{value:?} is not a boolean: write true or false (compose casts the interpolated value)")),
        });
    }
    if INT.iter().any(|p| matches(p)) {
        return Some(match value.parse::<i64>() {
            Ok(n) => Ok(Value::Number(n.into())),
            Err(_) => Err(format!("{value:?} is not a whole number (compose casts the interpolated value)")),
        });
    }
    None
}

/// Interpolate every string value (never keys) of `v` in place.
fn interpolate_tree(cx: &mut Cx<'_>, v: &mut Value, at: &YamlPath, vars: &BTreeMap<String, String>) {
    match v {
        Value::String(s) => {
            if !s.contains('$') {
                return;
            }
            let mut unset = Vec::new();
            match interpolate(s, vars, &mut unset) {
                Ok(r) => {
                    // As compose-go: a value interpolated where the specification wants a
                    // boolean or a number is cast (`read_only: ${RO}` with RO=false).
                    match cast_at(at, &r) {
                        Some(Ok(typed)) => *v = typed,
                        Some(Err(why)) => cx.err(at, &why),
                        None => *s = r,
                    }
                    for var in unset {
                        cx.warn(at, &format!("variable {var} is not set (not in the .env beside the compose file): it becomes an empty string"));
                    }
                    return;
                }
                Err(InterpolationError::Required { var, message }) => {
                    let why = if message.is_empty() { String::new() } else { format!(": {message}") };
                    cx.err(at, &format!("variable {var} is required{why}; set it in the .env beside the compose file"));
                }
                Err(InterpolationError::Syntax(m)) => cx.err(at, &m),
            }
            for var in unset {
                cx.warn(at, &format!("variable {var} is not set (not in the .env beside the compose file): it becomes an empty string"));
            }
        }
        Value::Sequence(seq) => {
            for (i, item) in seq.iter_mut().enumerate() {
                interpolate_tree(cx, item, &at.index(i), vars);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let key = key_text(k);
                interpolate_tree(cx, item, &at.key(key.as_str()), vars);
            }
        }
        Value::Tagged(t) => interpolate_tree(cx, &mut t.value, at, vars),
        _ => {}
    }
}

/// Split a command string the way compose does (POSIX shell words, no expansion).
pub fn shell_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return None,
                        },
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            other => {
                in_word = true;
                cur.push(other);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// A published port in Driftless's form, from compose's short or long syntax.
/// Keys whose value compose requires to be a list (or a list or a mapping): a single value
/// there is refused, as `docker compose` refuses it, never dropped.
fn wrong_shape(key: &str, v: &Value) -> Option<String> {
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

fn port(v: &Value) -> Result<String, String> {
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

/// A number written as a string (after interpolation: `retries: ${RETRIES}`) as a number,
/// as compose coerces interpolated values to the type its schema wants.
fn numberish(v: &Value) -> Value {
    match v {
        Value::String(s) => s.trim().parse::<i64>().map(|n| Value::Number(n.into())).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

/// `numberish` for every scalar in a mapping (ulimits).
fn numbers_within(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(m.iter().map(|(k, x)| (k.clone(), numbers_within(x))).collect()),
        other => numberish(other),
    }
}

/// The entries of a short-syntax list (`[a, b]`) or a long-syntax mapping (`{a: {...}}`):
/// each name, with its settings in the long form (`networks`, `depends_on`).
fn names_or_map(v: &Value) -> Vec<(String, Option<&Value>)> {
    match v {
        Value::Sequence(s) => s.iter().map(|n| (scalar_string(n), None)).collect(),
        Value::Mapping(m) => m.iter().map(|(n, c)| (key_text(n), Some(c))).collect(),
        _ => Vec::new(),
    }
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// A scalar as a YAML string (numbers keep their spelling: `0.5`, `64m`).
fn scalar_text(v: &Value) -> Value {
    Value::String(scalar_string(v))
}

fn key_text(k: &Value) -> String {
    scalar_string(k)
}

fn strings_of(v: &Value) -> Value {
    match v {
        Value::Sequence(s) => Value::Sequence(s.iter().map(|x| Value::String(scalar_string(x))).collect()),
        Value::Null => Value::Sequence(Vec::new()),
        other => Value::Sequence(vec![Value::String(scalar_string(other))]),
    }
}

fn seq_of_strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence).map(|s| s.iter().map(scalar_string).collect()).unwrap_or_default()
}

/// A mapping or a `KEY=value` list, as a mapping of strings.
fn map_of_strings(v: &Value) -> Value {
    let mut m = Mapping::new();
    match v {
        Value::Mapping(src) => {
            for (k, val) in src {
                m.insert(key_text(k).into(), scalar_string(val).into());
            }
        }
        Value::Sequence(s) => {
            for item in s {
                let text = scalar_string(item);
                let (k, val) = text.split_once('=').unwrap_or((text.as_str(), ""));
                m.insert(k.into(), val.into());
            }
        }
        _ => {}
    }
    Value::Mapping(m)
}

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((d, _)) => d.to_string(),
        None => String::new(),
    }
}

/// `dir` joined with the relative path `p`, normalized; `None` if it leaves the root.
fn join(dir: &str, p: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(if parts.is_empty() { ".".to_string() } else { parts.join("/") })
}

fn strip_marks(s: &str) -> String {
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The spec of service `name` in `c`, as YAML text (for readable assertions).
    fn spec(c: &Converted, name: &str) -> Value {
        c.docs
            .iter()
            .find(|g| g.doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) == Some(name))
            .and_then(|g| g.doc.get("spec").cloned())
            .unwrap_or(Value::Null)
    }

    fn errors(c: &Converted) -> String {
        c.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
    }

    /// Issue 26, "silently different": each case is what `docker compose` does.
    #[test]
    fn what_compose_runs_not_something_else() {
        // `.env` values built from earlier ones are interpolated; a quoted value followed by
        // a comment loses its quotes.
        let dotenv = "DOMAIN=example.org\nURL=https://${DOMAIN}/x\nSECRET_KEY=\"s3cret\"  # change me\n";
        let c = convert(
            "app/compose.yaml",
            "services:\n  web:\n    image: web\n    environment:\n      URL: ${URL}\n      KEY: ${SECRET_KEY}\n",
            Some(dotenv),
            &[],
        );
        assert_eq!(errors(&c), "");
        let env = spec(&c, "web").get("env").cloned().unwrap_or(Value::Null);
        assert_eq!(env.get("URL").and_then(Value::as_str), Some("https://example.org/x"));
        assert_eq!(env.get("KEY").and_then(Value::as_str), Some("s3cret"));

        // The legacy `external: { name: … }` names the existing volume and network.
        let text = "services:\n  db:\n    image: db\n    volumes: [\"data:/var/lib/db\"]\n    networks: [back]\nvolumes:\n  data:\n    external:\n      name: legacy_vol\nnetworks:\n  back:\n    external: { name: legacy_net }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        let db = spec(&c, "db");
        assert_eq!(db["volumes"][0].as_str(), Some("legacy_vol:/var/lib/db"), "{db:?}");
        assert_eq!(db["networks"][0].as_str(), Some("legacy_net"), "{db:?}");
        assert_eq!(db["external"]["volumes"][0].as_str(), Some("legacy_vol"), "never created: {db:?}");
        assert_eq!(db["external"]["networks"][0].as_str(), Some("legacy_net"), "{db:?}");

        // No `restart:` means compose's `no`; deploy's `any` is `always`; deploy wins.
        let text = "services:\n  aa: { image: x }\n  bb:\n    image: x\n    deploy: { restart_policy: { condition: any } }\n  cc:\n    image: x\n    deploy: { restart_policy: { condition: on-failure } }\n    restart: always\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "aa")["restart"].as_str(), Some("no"));
        assert_eq!(spec(&c, "bb")["restart"].as_str(), Some("always"));
        assert_eq!(spec(&c, "cc")["restart"].as_str(), Some("on-failure"));

        // `:z` on a relative bind and `volume.nocopy` are carried, not dropped.
        let text = "services:\n  web:\n    image: x\n    volumes:\n      - ./conf:/etc/app:z\n      - type: volume\n        source: cache\n        target: /cache\n        volume: { nocopy: true }\nvolumes: { cache: {} }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        let web = spec(&c, "web");
        assert_eq!(web["files"][0]["selinux"].as_str(), Some("z"), "{web:?}");
        assert_eq!(web["volumes"][0].as_str(), Some("app_cache:/cache:nocopy"), "{web:?}");
        let c = convert(
            "app/compose.yaml",
            "services:\n  web:\n    image: x\n    volumes: [\"./conf:/etc/app:nocopy\"]\n",
            None,
            &[],
        );
        assert!(errors(&c).contains("mode \"nocopy\" on a relative bind is not supported"), "{}", errors(&c));

        // `network_mode: service:x` runs in x's namespace and starts after x; an unknown x is
        // refused.
        let text = "services:\n  vpn: { image: x, container_name: the-vpn }\n  app: { image: y, network_mode: \"service:vpn\" }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        let app = spec(&c, "app");
        assert_eq!(app["network_mode"].as_str(), Some("container:the-vpn"));
        assert_eq!(app["depends_on"][0].as_str(), Some("the-vpn"), "{app:?}");
        let c =
            convert("app/compose.yaml", "services:\n  app: { image: y, network_mode: \"service:nope\" }\n", None, &[]);
        assert!(errors(&c).contains("network_mode service:nope names no service of this file"), "{}", errors(&c));
    }

    /// `deploy.replicas: N` (or `scale`) runs `<service>-1` … `<service>-N`, each reachable
    /// by the service's name; what depends on it waits for each; what cannot run N times on
    /// one host is refused, saying what to write.
    #[test]
    fn replicas_run_n_containers_named_after_the_service() {
        let text = "services:\n  worker:\n    image: w\n    deploy: { mode: replicated, replicas: 3 }\n    ports: [\"9000\", \"127.0.0.1::9001\"]\n  api:\n    image: a\n    depends_on: { worker: { condition: service_started, restart: true } }\n  side:\n    image: s\n    network_mode: \"service:worker\"\n  one:\n    image: o\n    scale: ${N}\n";
        let c = convert("app/compose.yaml", text, Some("N=1\n"), &[]);
        assert_eq!(errors(&c), "");
        let names: Vec<&str> = c.docs.iter().filter_map(|g| g.doc["metadata"]["name"].as_str()).collect();
        assert_eq!(names, ["worker-1", "worker-2", "worker-3", "api", "side", "one"]);
        let w2 = spec(&c, "worker-2");
        assert_eq!(w2["networks"][0]["name"].as_str(), Some("app_default"), "{w2:?}");
        assert_eq!(w2["networks"][0]["aliases"][0].as_str(), Some("worker"), "reachable by the service's name");
        let api = spec(&c, "api");
        let deps: Vec<&str> =
            api["depends_on"].as_sequence().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
        assert_eq!(deps, ["worker-1", "worker-2", "worker-3"], "{api:?}");
        assert_eq!(api["depends_on"][2]["restart"], Value::Bool(true));
        assert_eq!(spec(&c, "side")["network_mode"].as_str(), Some("container:worker-1"));

        // What N containers cannot share on one host.
        let text = "services:\n  web:\n    image: w\n    container_name: the-web\n    deploy: { replicas: 2 }\n    ports: [\"8080:80\", \"[::1]:8443:443\", { target: 81, published: 8081 }]\n    scale: 3\n";
        let e = errors(&convert("app/compose.yaml", text, None, &[]));
        for want in [
            "services.web.container_name: container_name names one container, and this service runs 2 (deploy.replicas): remove container_name",
            "services.web.ports[0]: host port 8080 can be published by one container only, and this service runs 2 (deploy.replicas): publish the container port alone",
            "services.web.ports[1]: host port 8443",
            "services.web.ports[2]: host port 8081",
            "services.web.scale: scale: 3 and deploy.replicas: 2 disagree: keep one of them",
        ] {
            assert!(e.contains(want), "{want:?} in:\n{e}");
        }
        // Zero replicas: no container, and nothing may wait for one.
        let text = "services:\n  off: { image: o, deploy: { replicas: 0 } }\n  on: { image: p, depends_on: [off] }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert!(errors(&c).contains("service \"off\" runs no container (deploy.replicas: 0)"), "{}", errors(&c));
        assert!(c.docs.iter().all(|g| g.doc["metadata"]["name"].as_str() != Some("off")));
        let e = errors(&convert(
            "app/compose.yaml",
            "services:\n  w: { image: w, deploy: { replicas: many } }\n",
            None,
            &[],
        ));
        assert!(
            e.contains("services.w.deploy.replicas: many is not a count: write a whole number of containers"),
            "{e}"
        );
    }

    /// Interpolated booleans and numbers are cast where the specification wants them, as
    /// compose-go does (`interpolateTypeCastMapping`); a `healthcheck` with only
    /// `disable: false` keeps the image's own check; `attach` is accepted.
    #[test]
    fn interpolated_booleans_and_numbers_are_cast() {
        let text = "services:\n  web:\n    image: x\n    read_only: ${RO}\n    init: ${INIT:-yes}\n    pids_limit: ${PIDS}\n    healthcheck: { disable: false }\n    attach: false\n    ports:\n      - target: ${PORT}\n        published: \"8080\"\n";
        let c = convert("app/compose.yaml", text, Some("RO=false\nPIDS=100\nPORT=80\n"), &[]);
        assert_eq!(errors(&c), "");
        let web = spec(&c, "web");
        assert_eq!(web["read_only"], Value::Bool(false), "{web:?}");
        assert_eq!(web["init"], Value::Bool(true));
        assert_eq!(web["pids_limit"].as_i64(), Some(100));
        assert!(web.get("healthcheck").is_none(), "the image's own check stays: {web:?}");
        assert_eq!(web["ports"][0].as_str(), Some("8080:80"));
        let c = convert(
            "app/compose.yaml",
            "services:\n  web: { image: x, privileged: \"${P}\" }\n",
            Some("P=maybe\n"),
            &[],
        );
        assert!(errors(&c).contains("\"maybe\" is not a boolean"), "{}", errors(&c));
    }

    /// A top-level secret from `environment:` is that variable of the `.env` beside the file.
    #[test]
    fn a_secret_from_environment_is_a_variable_of_the_dotenv() {
        let text = "services:\n  web: { image: x, secrets: [db_password] }\nsecrets:\n  db_password:\n    environment: DB_PASSWORD\n";
        let c = convert("app/compose.yaml", text, Some("DB_PASSWORD=s3cret\n"), &[]);
        assert_eq!(errors(&c), "");
        let s = &spec(&c, "web")["secrets"][0];
        assert_eq!((s["source"].as_str(), s["env"].as_str()), (Some("app/.env"), Some("DB_PASSWORD")), "{s:?}");
        let c = convert("app/compose.yaml", text, Some("OTHER=1\n"), &[]);
        assert!(errors(&c).contains("environment DB_PASSWORD is not in the .env"), "{}", errors(&c));
    }

    /// A top-level network with `internal: true` (mastodon) is created internal.
    #[test]
    fn an_internal_network_is_carried() {
        let text = "services:\n  db: { image: x, networks: [internal_network] }\nnetworks:\n  internal_network:\n    internal: true\n";
        let c = convert("mastodon/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "db")["internal_networks"][0].as_str(), Some("mastodon_internal_network"));
    }

    /// `~` in a bind source is the home of whoever runs the file (the agent's user).
    #[test]
    fn a_tilde_is_the_home_of_whoever_runs_the_file() {
        let text = "services:\n  mc:\n    image: x\n    volumes: [\"~/minecraft_data:/data\"]\n";
        let ctx = Context { profiles: &[], root: "", root_name: None, home: Some("/root") };
        let c = convert_in("app/compose.yaml", text, None, &ctx);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "mc")["volumes"][0].as_str(), Some("/root/minecraft_data:/data"));
        let c = convert("app/compose.yaml", text, None, &[]);
        assert!(errors(&c).contains("`~` is the home of whoever runs the file"), "{}", errors(&c));
    }

    /// Compose refuses a single value where it requires a list; so does Driftless, saying
    /// what to write (they used to be dropped without a word).
    #[test]
    fn a_single_value_where_compose_wants_a_list_is_refused() {
        for (key, value, want) in [
            ("ports", "8080", "write ports: [\"8080\"]"),
            ("volumes", "./site:/x", "write volumes: [\"./site:/x\"]"),
            ("networks", "front", "`networks` must be a list or a mapping"),
            ("depends_on", "db", "write depends_on: [\"db\"]"),
            ("cap_add", "NET_ADMIN", "`cap_add` must be a list"),
        ] {
            let text = format!("services:\n  web:\n    image: x\n    {key}: {value}\n");
            let c = convert("app/compose.yaml", &text, None, &[]);
            let e = errors(&c);
            assert!(e.contains(want) && e.contains("app/compose.yaml:4:"), "{key}: {e}");
        }
    }

    /// The project is `name:` or the folder's name, however the folder was reached.
    #[test]
    fn the_project_is_the_folders_name_however_it_was_reached() {
        let text = "services:\n  web: { image: x, volumes: [\"data:/d\", \"./conf:/c\"] }\nvolumes: { data: {} }\n";
        let volume = |c: &Converted| spec(c, "web")["volumes"][0].as_str().map(str::to_string);
        let files = |c: &Converted| spec(c, "web")["files"][0]["source"].as_str().map(str::to_string);
        for (path, root) in
            [("compose.yaml", ""), ("/srv/shop/compose.yaml", "/srv/shop"), ("../shop/compose.yaml", "../shop")]
        {
            let c = convert_in(path, text, None, &Context { profiles: &[], root, root_name: Some("shop"), home: None });
            assert_eq!(errors(&c), "", "{path}");
            assert_eq!(volume(&c).as_deref(), Some("shop_data:/d"), "{path}");
            assert_eq!(files(&c).as_deref(), Some("conf"), "{path}: repository paths are relative to the root");
        }
        // In a subfolder, the subfolder's name; `name:` wins.
        let c = convert_in(
            "/srv/state/web/compose.yaml",
            text,
            None,
            &Context { profiles: &[], root: "/srv/state", root_name: Some("state"), home: None },
        );
        assert_eq!(volume(&c).as_deref(), Some("web_data:/d"));
        assert_eq!(files(&c).as_deref(), Some("web/conf"));
        let named = format!("name: Shop-2\n{text}");
        let c = convert_in(
            "compose.yaml",
            &named,
            None,
            &Context { profiles: &[], root: "", root_name: Some("x"), home: None },
        );
        assert_eq!(volume(&c).as_deref(), Some("shop-2_data:/d"));
    }

    #[test]
    fn interpolation_follows_the_specification() {
        let v = vars(&[("TAG", "1.4"), ("EMPTY", ""), ("FOO", "foo")]);
        let mut unset = Vec::new();
        let table: &[(&str, &str)] = &[
            ("web:${TAG}", "web:1.4"),
            ("web:$TAG", "web:1.4"),
            ("${MISSING:-2.0}", "2.0"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${MISSING-d}", "d"),
            ("${MISSING:-${FOO:-x}}", "foo"),
            ("${MISSING:-${NOPE:-x}}", "x"),
            ("${TAG:+set}", "set"),
            ("${EMPTY:+set}", ""),
            ("${EMPTY+set}", "set"),
            ("$$VAR", "$VAR"),
            ("cost: 5$", "cost: 5$"),
            ("a $1 b", "a $1 b"),
        ];
        for (input, want) in table {
            assert_eq!(interpolate(input, &v, &mut unset).as_deref(), Ok(*want), "{input}");
        }
        assert!(unset.is_empty(), "{unset:?}");
        assert_eq!(interpolate("${NOPE}", &v, &mut unset).as_deref(), Ok(""));
        assert_eq!(unset, ["NOPE"]);
        assert_eq!(
            interpolate("${DB:?the database password}", &v, &mut Vec::new()),
            Err(InterpolationError::Required { var: "DB".into(), message: "the database password".into() })
        );
        assert!(interpolate("${EMPTY?x}", &v, &mut Vec::new()).is_ok());
        assert!(interpolate("${EMPTY:?x}", &v, &mut Vec::new()).is_err());
        assert!(matches!(interpolate("${TAG", &v, &mut Vec::new()), Err(InterpolationError::Syntax(_))));
        // Found by fuzzing (fuzz/artifacts/compose): a multi-byte character after the name
        // panicked on a byte index; it is an unknown operator.
        for odd in ["${POS\u{FFFD}TGRES_USER}", "${A:\u{e9}x}", "${A\u{1F600}}"] {
            assert!(matches!(interpolate(odd, &v, &mut Vec::new()), Err(InterpolationError::Syntax(_))), "{odd}");
        }
    }

    #[test]
    fn shell_words_split_as_a_shell_would() {
        assert_eq!(shell_words("sh -c 'echo hi; exit 0'").unwrap(), ["sh", "-c", "echo hi; exit 0"]);
        assert_eq!(shell_words(r#"a "b c" d\ e"#).unwrap(), ["a", "b c", "d e"]);
        assert!(shell_words("a 'b").is_none());
    }

    #[test]
    fn paths_stay_in_the_repository() {
        assert_eq!(join("hosts/web", "./nginx.conf").as_deref(), Some("hosts/web/nginx.conf"));
        assert_eq!(join("hosts/web", "../shared/x").as_deref(), Some("hosts/shared/x"));
        assert_eq!(join("", ".").as_deref(), Some("."));
        assert_eq!(join("a", "../../x"), None);
        assert!(is_compose_file("hosts/x/docker-compose.yml"));
        assert!(!is_compose_file("hosts/x/compose.yaml.bak"));
    }
}

#[cfg(test)]
mod positions {
    /// A file saphyr rejects part-way (a flow `]` at its parent's indentation) still gets
    /// positions for the keys after that spot.
    #[test]
    fn keys_after_a_lenient_flow_sequence_have_positions() {
        let text = "services:\n  a:\n    healthcheck:\n      test: [\n        \"CMD\", \"true\"\n      ]\n  nginx:\n    image: x\n    depends_on:\n      web:\n        restart: true\n";
        let maps = crate::source_map::map_documents(text);
        let m = &maps[0];
        let p = crate::source_map::YamlPath::of(&["services", "nginx", "depends_on", "web", "restart"]);
        let pos = m.key_pos(&p);
        assert_eq!((pos.line, pos.column), (11, 9), "{pos:?}");
    }
}
