//! The entry points: which files of a folder compose reads (`project`), and the conversion
//! of a compose file with its override and includes into `driftless/v1` documents
//! (`convert_files`: read, merge, interpolate, then `top` and `service` for each part).
//!
//! Past 1,000 lines because half of it is the conversion's tests, read beside the loader
//! stages they pin down.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::converted::*;
use super::cx::{diag, strip_marks, Cx};
use super::interpolate;
use super::paths::shown_path;
use super::paths::{join, parent};
use super::service::*;
use super::top::*;
use super::values::*;
use super::{extends, merge};
use crate::diagnostic::Diagnostic;
use crate::source_map::{map_documents, DocMap, YamlPath};

/// How deep includes may nest (compose has no limit; a cycle is refused before this).
const MAX_INCLUDE_DEPTH: usize = 8;

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

/// The shown paths of the files `text` (the compose file shown as `path`, under `root`)
/// includes or extends services of, as written (not interpolated): the loader reads them
/// only through it.
pub fn included_paths(path: &str, text: &str, root: &str) -> Vec<String> {
    let Ok(v) = serde_yaml_ng::from_str::<Value>(text) else { return Vec::new() };
    let rel = path.strip_prefix(root).map(|r| r.trim_start_matches('/')).unwrap_or(path);
    let dir = parent(rel);
    let extended = v
        .get("services")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(_, s)| s.get("extends")?.get("file")?.as_str().map(str::to_string));
    include_entries(v.get("include"))
        .into_iter()
        .flat_map(|e| e.paths)
        .chain(extended)
        .filter_map(|p| join(&dir, &p))
        .map(|r| shown_path(root, &r))
        .collect()
}

/// One `include` entry: `path` (one or several files, merged as overrides), `env_file`,
/// `project_directory` (compose-spec 14-include.md).
struct IncludeEntry {
    paths: Vec<String>,
    env_files: Vec<String>,
    project_directory: Option<String>,
    /// Keys compose does not define for an entry.
    unknown: Vec<String>,
}

fn include_entries(v: Option<&Value>) -> Vec<IncludeEntry> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(s)) => s.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        }
    };
    let entries = match v {
        Some(Value::Sequence(s)) => s.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    };
    entries
        .iter()
        .map(|e| match e {
            Value::Mapping(m) => IncludeEntry {
                paths: strings(m.get("path")),
                env_files: strings(m.get("env_file")),
                project_directory: m.get("project_directory").and_then(Value::as_str).map(str::to_string),
                unknown: m
                    .keys()
                    .map(key_text)
                    .filter(|k| !matches!(k.as_str(), "path" | "env_file" | "project_directory"))
                    .collect(),
            },
            other => IncludeEntry {
                paths: strings(Some(other)),
                env_files: Vec::new(),
                project_directory: None,
                unknown: Vec::new(),
            },
        })
        .collect()
}

/// Convert the compose file `path` (its `text`), with the `.env` beside it (`dotenv`) and the
/// enabled `profiles`; `path` is relative to the root.
pub fn convert(path: &str, text: &str, dotenv: Option<&str>, profiles: &[String]) -> Converted {
    convert_in(path, text, dotenv, &Context { profiles, ..Default::default() })
}

/// `convert` for a file shown as `path` under `ctx.root`.
pub fn convert_in(path: &str, text: &str, dotenv: Option<&str>, ctx: &Context<'_>) -> Converted {
    convert_files(&[(path, text)], dotenv, ctx)
}

/// `convert_in` for a compose file and its overrides (`files[0]` the main file, then each
/// override in order: `compose.override.yaml`), merged by compose's rules
/// (`merge::merge`) after each is interpolated on its own, as compose loads them. The
/// files sit in one folder and share its `.env`. The stages of compose's loader in its
/// order: the project's settings, each file read and merged, the top-level declarations,
/// then the services.
pub fn convert_files(files: &[(&str, &str)], dotenv: Option<&str>, ctx: &Context<'_>) -> Converted {
    let mut out = Converted::default();
    let Some(&(path, _)) = files.first() else { return out };
    let Some(settings) = settings(files, dotenv, ctx, &mut out) else { return out };
    let Some(merge::Doc { value, map }) = read_and_merge(files, &settings, ctx, &mut out) else { return out };
    let Settings { dir, vars, project, profiles } = settings;
    let mut cx = Cx {
        file: path,
        map: &map,
        dir: dir.clone(),
        vars: vars.clone(),
        errors: std::mem::take(&mut out.errors),
        warnings: std::mem::take(&mut out.warnings),
        home: ctx.home.map(str::to_string),
        claims: std::mem::take(&mut out.claims),
        dotenv_path: dotenv.map(|_| if dir.is_empty() { ".env".to_string() } else { format!("{dir}/.env") }),
        anonymous: BTreeMap::new(),
        files: ctx.files,
        root: ctx.root,
    };
    let Some(top) = value.as_mapping() else {
        cx.err(&YamlPath::root(), "a compose file is a mapping with `services:`");
        out.errors = cx.errors;
        return out;
    };
    let declared = declarations(&mut cx, ctx, top, &project, &vars, &mut out);
    let Some(services) = top.get("services").and_then(Value::as_mapping) else {
        if declared.included.is_empty() {
            cx.err(&YamlPath::root(), "no `services:` in this compose file");
        }
        out.errors = cx.errors;
        out.warnings = cx.warnings;
        out.claims = cx.claims;
        return out;
    };
    convert_services(&mut cx, services, &declared, &project, &profiles, &mut out);
    out.errors = cx.errors;
    out.warnings = cx.warnings;
    out.claims = cx.claims;
    out
}

/// What the project's settings are: the folder relative paths join to, the `.env`'s
/// variables, the project's name and the profiles enabled. `None` when the `.env` or the
/// name is refused (the error is in `out`).
struct Settings {
    /// The compose file's folder, relative to the root (what repository paths join to).
    dir: String,
    /// The `.env` beside the file, with `COMPOSE_PROJECT_NAME`.
    vars: BTreeMap<String, String>,
    /// The project's name.
    project: String,
    /// The profiles enabled.
    profiles: Vec<String>,
}

/// The project's settings for `files` (see `Settings`).
fn settings(files: &[(&str, &str)], dotenv: Option<&str>, ctx: &Context<'_>, out: &mut Converted) -> Option<Settings> {
    let &(path, _) = files.first()?;
    // The compose file's folder, relative to the root (what repository paths join to).
    let rel = path.strip_prefix(ctx.root).map(|r| r.trim_start_matches('/')).unwrap_or(path);
    // An included file's relative paths are resolved from its `project_directory`.
    let dir = ctx.included.map_or_else(|| parent(rel), |i| i.dir.to_string());
    let parsed_env = match ctx.included {
        Some(i) => Ok(Some(i.vars.clone())),
        None => dotenv.map(super::dotenv::parse).transpose(),
    };
    let mut vars = match parsed_env {
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
            return None;
        }
    };
    let env_file = || {
        let shown = parent(path);
        if shown.is_empty() {
            ".env".to_string()
        } else {
            format!("{shown}/.env")
        }
    };
    let project = match ctx
        .included
        .map(|i| Ok(i.project.to_string()))
        .unwrap_or_else(|| project_name(files, &dir, &vars, ctx))
    {
        Ok(p) => p,
        Err(ProjectNameError { from_env, message }) => {
            let file = if from_env { env_file() } else { path.to_string() };
            out.errors.push(Diagnostic { file, line: 1, column: 1, message });
            return None;
        }
    };
    // compose-go sets COMPOSE_PROJECT_NAME for interpolation when the environment lacks it
    // (loader/loader.go, `projectName`).
    vars.entry("COMPOSE_PROJECT_NAME".to_string()).or_insert_with(|| project.clone());
    // The profiles: the agent config's `compose_profiles` (compose's `--profile`), else
    // COMPOSE_PROFILES of the .env, comma-separated (compose's cli/options.go, `WithProfiles`
    // from the environment).
    let profiles: Vec<String> = if ctx.profiles.is_empty() {
        vars.get("COMPOSE_PROFILES")
            .map(|p| p.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    } else {
        ctx.profiles.to_vec()
    };
    Some(Settings { dir, vars, project, profiles })
}

/// Each file read, interpolated and its `extends` resolved, then merged into the first
/// (`None` when the main file cannot be read; the errors are in `out`).
fn read_and_merge(
    files: &[(&str, &str)],
    settings: &Settings,
    ctx: &Context<'_>,
    out: &mut Converted,
) -> Option<merge::Doc> {
    let (dir, vars) = (&settings.dir, &settings.vars);
    let mut merged: Option<merge::Doc> = None;
    for (i, &(file, text)) in files.iter().enumerate() {
        let Some(mut doc) = read_one(file, text, dir, vars, ctx, out) else {
            if i == 0 {
                return None; // nothing to merge the overrides into
            }
            continue;
        };
        // compose-go's loadYamlFile: each file's `extends` before the files merge.
        let mut read = Converted::default();
        let mut load = |p: &str, from: &str, map: &DocMap, at: &YamlPath, errors: &mut Vec<Diagnostic>| {
            extended_file(p, from, map, at, vars, ctx, &mut read, errors)
        };
        let mut errors = Vec::new();
        extends::apply(&mut doc, file, dir, &mut load, &mut errors);
        out.errors.extend(errors);
        out.errors.extend(read.errors);
        out.warnings.extend(read.warnings);
        out.claims.extend(read.claims);
        match merged.as_mut() {
            None => merged = Some(doc),
            Some(base) => {
                for c in merge::merge(base, doc) {
                    let (line, column) = (c.pos.line, c.pos.column);
                    out.errors.push(Diagnostic {
                        file: file.into(),
                        line,
                        column,
                        message: format!("{}: {}", c.at, c.message),
                    });
                }
            }
        }
    }
    let merge::Doc { mut value, mut map } = merged?;
    merge::resolve_tags(&mut value);
    merge::enforce_unicity(&mut value, &mut map);
    Some(merge::Doc { value, map })
}

/// What the top level declares, with what included files declare (the file's own win).
struct Declared {
    /// The models of the included files.
    included: Vec<Model>,
    /// Engine names of the objects marked `external` or `internal`, by section.
    marked: BTreeMap<&'static str, std::collections::BTreeSet<String>>,
    /// How the agent creates networks and volumes, by engine name.
    network_options: BTreeMap<String, Value>,
    volume_options: BTreeMap<String, Value>,
    /// Networks and volumes: key → engine name.
    networks: BTreeMap<String, String>,
    volumes: BTreeMap<String, String>,
    /// Secrets and configs, and every key under each (also those refused).
    secrets: BTreeMap<String, (String, Option<String>)>,
    declared_secrets: std::collections::BTreeSet<String>,
    configs: BTreeMap<String, (String, Option<String>)>,
    declared_configs: std::collections::BTreeSet<String>,
}

/// The top-level keys other than `services`: each refused, read (`include`, networks,
/// volumes, secrets, configs) or passed over (`name`, `version`, `x-`).
fn declarations(
    cx: &mut Cx<'_>,
    ctx: &Context<'_>,
    top: &Mapping,
    project: &str,
    vars: &BTreeMap<String, String>,
    out: &mut Converted,
) -> Declared {
    let mut included_models: Vec<Model> = Vec::new();
    for (k, _) in top {
        let key = k.as_str().unwrap_or("");
        let at = YamlPath::root().key(key);
        match key {
            "services" | "networks" | "volumes" | "secrets" | "configs" | "name" => {}
            "version" => {} // obsolete in the specification; accepted and not used
            "include" => {
                let entries = include_entries(top.get("include"));
                for (i, e) in entries.iter().enumerate() {
                    let (model, converted) = include_one(cx, ctx, &at.index(i), e, project, vars);
                    included_models.push(model);
                    if let Some(c) = converted {
                        out.docs.extend(c.docs);
                        cx.errors.extend(c.errors);
                        cx.warnings.extend(c.warnings);
                        cx.claims.extend(c.claims);
                        out.refused.extend(c.refused);
                    }
                }
            }
            "models" => cx.err(&at, "not supported by Driftless (AI models are a Docker Desktop feature): remove it"),
            k if k.starts_with("x-") => {}
            _ => cx.key_err(&at, "unknown top-level key: a compose file holds services, networks, volumes, secrets, name and x- extensions (x-anything for your own)"),
        }
    }
    let mut marked: BTreeMap<&str, std::collections::BTreeSet<String>> = BTreeMap::new();
    let (mut network_options, mut volume_options) = (BTreeMap::new(), BTreeMap::new());
    let networks = top_level(
        cx,
        top,
        "networks",
        project,
        &["name", "external", "driver", "labels", "internal", "enable_ipv6", "ipam"],
        &mut marked,
        &mut network_options,
    );
    let volumes = top_level(
        cx,
        top,
        "volumes",
        project,
        &["name", "external", "driver", "labels", "driver_opts"],
        &mut marked,
        &mut volume_options,
    );
    out.docs.extend(volume_documents(cx, top, &volumes));
    // What included files declare, the including file's services may name (its own win).
    let (mut networks, mut volumes) = (networks, volumes);
    for m in &included_models {
        for (k, v) in &m.networks {
            networks.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &m.volumes {
            volumes.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (mark, names) in &m.marked {
            let key = match mark.as_str() {
                "networks" => "networks",
                "volumes" => "volumes",
                _ => "internal",
            };
            marked.entry(key).or_default().extend(names.iter().cloned());
        }
        for (k, v) in &m.network_options {
            network_options.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &m.volume_options {
            volume_options.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let secrets = top_secrets(cx, top);
    let declared_secrets: std::collections::BTreeSet<String> =
        top.get("secrets").and_then(Value::as_mapping).into_iter().flatten().map(|(k, _)| key_text(k)).collect();
    let configs = top_configs(cx, top);
    let declared_configs: std::collections::BTreeSet<String> =
        top.get("configs").and_then(Value::as_mapping).into_iter().flatten().map(|(k, _)| key_text(k)).collect();
    Declared {
        included: included_models,
        marked,
        network_options,
        volume_options,
        networks,
        volumes,
        secrets,
        declared_secrets,
        configs,
        declared_configs,
    }
}

/// Every service a Container document (or one per replica), or refused; a service whose
/// profiles are off is read for its claims alone.
fn convert_services(
    cx: &mut Cx<'_>,
    services: &Mapping,
    declared: &Declared,
    project: &str,
    profiles: &[String],
    out: &mut Converted,
) {
    let Declared {
        included: included_models,
        marked,
        network_options,
        volume_options,
        networks,
        volumes,
        secrets,
        declared_secrets,
        configs,
        declared_configs,
    } = declared;
    // How many containers each service runs (`deploy.replicas`, `scale`; 1 by default).
    // A service whose profiles are off runs nothing: what it could not run is not refused.
    let replicas: BTreeMap<String, u64> = services
        .iter()
        .filter_map(|(k, v)| {
            let s = k.as_str()?;
            let declared = seq_of_strings(v.get("profiles"));
            let enabled = declared.is_empty() || declared.iter().any(|p| profiles.contains(p));
            let errors = cx.errors.len();
            let n = replica_count(cx, &YamlPath::root().key("services").key(s), v);
            if !enabled {
                cx.errors.truncate(errors);
            }
            Some((s.to_string(), n))
        })
        .collect();
    // Container names of every service (for depends_on and network_mode: service:x): a
    // replicated service's first container, `<service>-1`.
    let mut names: BTreeMap<String, String> = services
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
    // The model a file including this one sees: this file's own declarations.
    out.model = Model {
        services: names.clone(),
        networks: networks.clone(),
        volumes: volumes.clone(),
        marked: marked.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        network_options: network_options.clone(),
        volume_options: volume_options.clone(),
    };
    for m in included_models {
        for (k, v) in &m.services {
            names.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // A service others wait for with service_completed_successfully runs to completion: a
    // oneshot (compose's migration pattern).
    let completes: std::collections::BTreeSet<String> = services
        .iter()
        .filter_map(|(_, v)| v.get("depends_on").and_then(Value::as_mapping))
        .flat_map(|m| m.iter())
        .filter(|(_, c)| c.get("condition").and_then(Value::as_str) == Some("service_completed_successfully"))
        .map(|(n, _)| key_text(n))
        .collect();
    // A service others wait for with service_healthy is healthy when its container says so:
    // its healthcheck, else the image's own HEALTHCHECK (compose waits on the container's
    // health status either way: compose's pkg/compose/convergence.go, `isServiceHealthy`).
    let awaited_healthy: std::collections::BTreeSet<String> = services
        .iter()
        .filter_map(|(_, v)| v.get("depends_on").and_then(Value::as_mapping))
        .flat_map(|m| m.iter())
        .filter(|(_, c)| c.get("condition").and_then(Value::as_str) == Some("service_healthy"))
        .map(|(n, _)| key_text(n))
        .collect();
    for (k, svc) in services {
        let Some(service) = k.as_str() else { continue };
        let at = YamlPath::root().key("services").key(service);
        let Some(svc) = svc.as_mapping() else {
            cx.err(&at, "a service is a mapping of its keys");
            out.refused.push(names.get(service).cloned().unwrap_or_else(|| service.to_string()));
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
            networks,
            volumes,
            secrets,
            declared_secrets,
            configs,
            declared_configs,
            project,
            marked,
            network_options,
            volume_options,
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
        let made = cx.service(&sv, svc);
        if made.is_none() {
            out.refused.push(names.get(service).cloned().unwrap_or_else(|| service.to_string()));
        }
        if let Some(mut g) = made {
            as_compose_runs(&mut g, svc, service, &completes, &awaited_healthy);
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
}

/// What compose does with a service beyond its own keys: one that others wait for with
/// `service_completed_successfully` runs to completion (a oneshot), `image` with `build`
/// pulls first and builds when the image is missing (unless `pull_policy: build`), and one
/// others wait for with `service_healthy` is gated on its container's health.
fn as_compose_runs(
    g: &mut Generated,
    svc: &Mapping,
    service: &str,
    completes: &std::collections::BTreeSet<String>,
    awaited_healthy: &std::collections::BTreeSet<String>,
) {
    if completes.contains(service) {
        if let Some(spec) = g.doc.get_mut("spec").and_then(Value::as_mapping_mut) {
            spec.insert("oneshot".into(), true.into());
            spec.remove("restart");
        }
    }
    // compose-spec build.md: with both `image` and `build` and no `pull_policy: build`,
    // compose pulls the image and builds only when it is not found.
    let builds_always = svc.get("pull_policy").and_then(Value::as_str) == Some("build");
    if let Some(spec) = g.doc.get_mut("spec").and_then(Value::as_mapping_mut) {
        let has_image = spec.get("image").and_then(Value::as_str).is_some_and(|i| !i.is_empty());
        if let (Some(Value::Mapping(b)), true, false) = (spec.get_mut("build"), has_image, builds_always) {
            b.insert("when".into(), "missing".into());
        }
    }
    if awaited_healthy.contains(service) {
        if let Some(spec) = g.doc.get_mut("spec").and_then(Value::as_mapping_mut) {
            if !spec.contains_key("health") && !spec.contains_key("healthcheck") {
                let mut probe = Mapping::new();
                probe.insert("container".into(), true.into());
                spec.insert("health".into(), Value::Sequence(vec![Value::Mapping(probe)]));
            }
        }
    }
}

/// Read one compose file of a project: its YAML, merge keys, interpolation (with the
/// folder's `.env`), positions tagged with its name. `None` (errors in `out`): it cannot
/// be read.
/// Convert the files of one `include` entry (at `at`) of a file whose project is `project`
/// and whose variables are `vars`: each named file read through `ctx.files` (a file outside
/// the folder is refused, naming it), its `env_file`s (default: the `.env` of its project
/// directory) over `vars`, converted as a compose file of its own — its paths resolved from
/// its `project_directory` (default: its folder), its errors at its own lines — under
/// `project`. Its model is what the including file may name.
fn include_one(
    cx: &mut Cx<'_>,
    ctx: &Context<'_>,
    at: &YamlPath,
    e: &IncludeEntry,
    project: &str,
    vars: &BTreeMap<String, String>,
) -> (Model, Option<Converted>) {
    for k in &e.unknown {
        cx.key_err(&at.key(k.as_str()), "unknown key of an include: write path, env_file or project_directory");
    }
    let Some(files) = ctx.files else {
        cx.err(at, "include reads other files of the folder, and this reader was given none: run agentctl validate on the folder");
        return (Model::default(), None);
    };
    let depth = ctx.included.map_or(0, |i| i.depth);
    if depth >= MAX_INCLUDE_DEPTH {
        cx.err(at, &format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files (a file that includes itself?): include each file once"));
        return (Model::default(), None);
    }
    if e.paths.is_empty() {
        cx.err(at, "an include names a file: write - path/to/compose.yaml, or { path: … }");
        return (Model::default(), None);
    }
    let here = cx.dir.clone();
    let mut texts: Vec<(String, String)> = Vec::new();
    for p in &e.paths {
        let p = interpolate::interpolate(p, vars, &mut Vec::new()).unwrap_or_else(|_| p.clone());
        if p.starts_with('/') {
            cx.err(
                at,
                &format!("include {p:?} is a host path: include a file of the repository, relative to this one"),
            );
            continue;
        }
        let Some(rel) = cx.repo_path(at, &p) else { continue };
        let shown = shown_path(ctx.root, &rel);
        let chain: Vec<&String> = ctx.included.map(|i| i.chain.iter().collect()).unwrap_or_default();
        if chain.iter().any(|c| **c == shown) || cx.file == shown {
            cx.err(at, &format!("include {p:?}: {shown} includes itself (through the files that include this one): include each file once"));
            continue;
        }
        match (files.0)(&shown) {
            Some(t) => texts.push((shown, t)),
            None => cx.err(at, &format!("include {p:?}: {shown} is not among the files read (only the folder of desired state is: source.path, or the folder given to validate); move it there")),
        }
    }
    if texts.is_empty() {
        return (Model::default(), None);
    }
    let project_dir = match &e.project_directory {
        Some(d) => match join(&here, d) {
            Some(r) => r,
            None => {
                cx.err(&at.key("project_directory"), &format!("{d:?} escapes the repository root"));
                return (Model::default(), None);
            }
        },
        None => {
            let first = texts[0].0.strip_prefix(ctx.root).map(|r| r.trim_start_matches('/')).unwrap_or(&texts[0].0);
            parent(first)
        }
    };
    // compose-go: the including project's environment, with the included env files over it.
    let mut inc_vars = vars.clone();
    inc_vars.remove("COMPOSE_PROJECT_NAME");
    let (env_files, required) = if e.env_files.is_empty() {
        (vec![if project_dir.is_empty() { ".env".to_string() } else { format!("{project_dir}/.env") }], false)
    } else {
        (e.env_files.iter().filter_map(|f| join(&here, f)).collect(), true)
    };
    for f in &env_files {
        let shown = shown_path(ctx.root, f);
        match (files.0)(&shown) {
            Some(text) => match super::dotenv::parse(&text) {
                Ok(v) => inc_vars.extend(v),
                Err(err) => cx.err(&at.key("env_file"), &format!("{shown}:{}: {}", err.line, err.message)),
            },
            None if required => {
                cx.err(&at.key("env_file"), &format!("{shown} is not among the files read: move it into the folder"))
            }
            None => {}
        }
    }
    let mut chain: Vec<String> = ctx.included.map(|i| i.chain.to_vec()).unwrap_or_default();
    chain.push(cx.file.to_string());
    let sub = Context {
        included: Some(Included { project, dir: &project_dir, vars: &inc_vars, depth: depth + 1, chain: &chain }),
        ..*ctx
    };
    let refs: Vec<(&str, &str)> = texts.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let c = convert_files(&refs, None, &sub);
    (c.model.clone(), Some(c))
}

/// Read the compose file an `extends.file` names (`p`, relative to the folder `from` of the
/// file naming it at `at` of `map`) through `ctx.files`, interpolated with `vars` as the
/// extending file is; claimed (it is not desired state of its own). `None`: an error pushed.
#[allow(clippy::too_many_arguments)] // the reader's context, for one call site
fn extended_file(
    p: &str,
    from: &str,
    map: &DocMap,
    at: &YamlPath,
    vars: &BTreeMap<String, String>,
    ctx: &Context<'_>,
    read: &mut Converted,
    errors: &mut Vec<Diagnostic>,
) -> Option<extends::Loaded> {
    let file = map.file_at(at).unwrap_or("").to_string();
    let mut fail = |msg: String| errors.push(diag(&file, map, at, &msg, false));
    let Some(files) = ctx.files else {
        fail("extends reads another file of the folder, and this reader was given none: run agentctl validate on the folder".into());
        return None;
    };
    if p.starts_with('/') {
        fail(format!("{p:?} is a host path: extend a service of a file of the repository, relative to this one"));
        return None;
    }
    let Some(rel) = join(from, p) else {
        fail(format!("{p:?} escapes the repository root: paths in a compose file stay inside the repository"));
        return None;
    };
    let shown = shown_path(ctx.root, &rel);
    let Some(text) = (files.0)(&shown) else {
        fail(format!("{shown} is not among the files read (only the folder of desired state is: source.path, or the folder given to validate); move it there"));
        return None;
    };
    read.claims.push(Claim { path: rel.clone(), file: file.clone(), line: map.value_pos(at).line, at: at.to_string() });
    let doc = read_one(&shown, &text, &parent(&rel), vars, ctx, read)?;
    Some(extends::Loaded { shown, dir: parent(&rel), doc })
}

/// Why no project name could be had.
struct ProjectNameError {
    /// It is the .env's COMPOSE_PROJECT_NAME that is wrong (else the files' `name:`).
    from_env: bool,
    message: String,
}

/// compose-go's `loader.NormalizeProjectName` (loader/loader.go): lower case, only
/// `[a-z0-9_-]` kept, leading `_` and `-` trimmed.
pub fn normalize_project_name(s: &str) -> String {
    let kept: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// The project name as `docker compose` decides it: COMPOSE_PROJECT_NAME of the `.env`
/// (given explicitly, so it must be a valid name already: compose-go's
/// `InvalidProjectNameErr`), else the last `name:` of the files, interpolated and
/// normalized, else the folder's name normalized (`.`, a relative or an absolute path, or
/// the repository's root) — compose-go loader/loader.go, `projectName`.
fn project_name(
    files: &[(&str, &str)],
    dir: &str,
    vars: &BTreeMap<String, String>,
    ctx: &Context<'_>,
) -> Result<String, ProjectNameError> {
    if let Some(explicit) = vars.get("COMPOSE_PROJECT_NAME").filter(|v| !v.is_empty()) {
        if normalize_project_name(explicit) != *explicit {
            return Err(ProjectNameError {
                from_env: true,
                message: format!(
                    "COMPOSE_PROJECT_NAME {explicit:?} is not a valid project name: it must consist only of lowercase letters, digits, '-' and '_', and start with a letter or digit (as compose requires); write {:?}",
                    normalize_project_name(explicit)
                ),
            });
        }
        return Ok(explicit.clone());
    }
    let mut from_files = String::new();
    for (_, text) in files {
        let named = serde_yaml_ng::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string));
        if let Some(n) = named {
            from_files = interpolate::interpolate(&n, vars, &mut Vec::new()).unwrap_or(n);
        }
    }
    let from_files = normalize_project_name(&from_files);
    if !from_files.is_empty() {
        return Ok(from_files);
    }
    let folder =
        dir.rsplit('/').find(|s| !s.is_empty() && *s != "." && *s != "..").or(ctx.root_name).unwrap_or("default");
    let name = normalize_project_name(folder);
    if name.is_empty() {
        return Err(ProjectNameError {
            from_env: false,
            message: format!(
                "the folder name {folder:?} leaves no project name (compose keeps only a-z, 0-9, '-' and '_'): set name: in the compose file, or COMPOSE_PROJECT_NAME in its .env"
            ),
        });
    }
    Ok(name)
}

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
        dotenv_path: None,
        anonymous: BTreeMap::new(),
        files: ctx.files,
        root: ctx.root,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::interpolate::{interpolate, InterpolationError};

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
        // A port's `name` and `app_protocol` are accepted and reach nothing, as with docker
        // compose (the engine's API has no field for them); the port itself is published.
        let text = "services:\n  web:\n    image: x\n    ports:\n      - { target: 80, published: \"8080\", name: web, app_protocol: http }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "web")["ports"][0].as_str(), Some("8080:80"), "{:?}", spec(&c, "web"));

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

    /// Four files compose runs and Driftless refused (issue 35), now read as compose reads
    /// them.
    #[test]
    fn what_compose_runs_is_not_refused() {
        // compose-go loader/loader.go `NormalizeProjectName`: leading '_' and '-' trimmed.
        assert_eq!(normalize_project_name("_My.Stack-1"), "mystack-1");
        assert_eq!(normalize_project_name("--x"), "x");
        let c = convert("_stack/compose.yaml", "services:\n  web: { image: x }\n", None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "web")["networks"][0].as_str(), Some("stack_default"));
        // go-connections nat/nat.go `ParsePortSpec`: an empty host IP is every interface.
        let text = "services:\n  web:\n    image: x\n    ports: [\"${HTTPS_BIND:-}:443:443\"]\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "web")["ports"][0].as_str(), Some(":443:443"));
        // compose-spec schema: `logging.driver` is optional (the engine's default driver).
        let text = "services:\n  web:\n    image: x\n    logging: { options: { max-size: 10m } }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert!(spec(&c, "web")["logging"].get("driver").is_none(), "{:?}", spec(&c, "web"));
        // compose pkg/compose/convergence.go `isServiceHealthy`: service_healthy waits on the
        // container's health status, which the image's own HEALTHCHECK sets.
        let text = "services:\n  db: { image: postgres }\n  web:\n    image: x\n    depends_on: { db: { condition: service_healthy } }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "db")["health"][0]["container"].as_bool(), Some(true), "{:?}", spec(&c, "db"));
        assert!(spec(&c, "web").get("health").is_none());
    }

    /// An anonymous volume never takes a declared volume's name, nor another anonymous
    /// volume's: compose gives each its own (the engine names it; compose's
    /// pkg/compose/create.go `buildContainerVolumes` passes no name for it).
    #[test]
    fn an_anonymous_volume_never_takes_another_volumes_name() {
        let text = "services:\n  web:\n    image: x\n    volumes: [\"/data\", \"/x_data\", \"web_data:/kept\"]\n  web_x:\n    image: y\n    volumes: [\"/data\"]\nvolumes: { web_data: {} }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        let web = spec(&c, "web");
        let vols: Vec<&str> = web["volumes"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(vols, ["app_web_data-anon:/data", "app_web_x_data:/x_data", "app_web_data:/kept"]);
        assert_eq!(spec(&c, "web_x")["volumes"][0].as_str(), Some("app_web_x_data-anon:/data"));
    }

    /// Keys real projects use that Driftless refused: `dns_search`, `dns_opt`, `domainname`
    /// (compose-spec 05-services.md), `build.cache_from` (build.md; buildx's
    /// `type=registry,ref=` form read as the image it names, other cache types refused).
    #[test]
    fn dns_search_dns_opt_domainname_and_cache_from_are_carried() {
        let text = "services:\n  a:\n    image: x\n    dns_search: example.com\n    dns_opt: [ndots:2, use-vc]\n    domainname: corp.example\n  b:\n    image: r/b:1\n    build: { context: ., cache_from: [r/b:cache, \"type=registry,ref=r/b:buildcache,mode=max\"] }\n  c:\n    image: r/c:1\n    build: { context: ., cache_from: [\"type=gha\"] }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert!(
            errors(&c).contains("services.c.build.cache_from[0]: cache_from \"type=gha\" is not supported"),
            "{}",
            errors(&c)
        );
        assert_eq!(c.errors.len(), 1, "{}", errors(&c));
        let a = spec(&c, "a");
        assert_eq!(a["dns_search"][0].as_str(), Some("example.com"));
        assert_eq!(a["dns_opt"][1].as_str(), Some("use-vc"));
        assert_eq!(a["domainname"].as_str(), Some("corp.example"));
        let b = spec(&c, "b");
        assert_eq!(b["build"]["cache_from"][1].as_str(), Some("r/b:buildcache"), "{b:?}");
    }

    /// compose-spec 05-services.md, `env_file` long form: `required: false` is carried (a
    /// file that is not there is skipped at apply time); a required one stays a plain path.
    #[test]
    fn env_file_required_false_is_carried() {
        let text = "services:\n  a:\n    image: x\n    env_file: [base.env, { path: ./local.env, required: false }, { path: /etc/x.env, required: true }]\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        let a = spec(&c, "a");
        assert_eq!(a["env_files"][0].as_str(), Some("app/base.env"));
        assert_eq!(a["env_files"][1]["path"].as_str(), Some("app/local.env"));
        assert_eq!(a["env_files"][1]["required"].as_bool(), Some(false));
        assert_eq!(a["env_files"][2].as_str(), Some("/etc/x.env"));
    }

    /// `healthcheck.start_interval` is carried (passed where the engine takes it), with a
    /// warning that an engine before API 1.44 ignores it.
    #[test]
    fn start_interval_is_carried_with_a_warning() {
        let text = "services:\n  a:\n    image: x\n    healthcheck: { test: [CMD, \"true\"], start_period: 30s, start_interval: 2s }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "a")["healthcheck"]["start_interval"].as_str(), Some("2s"));
        let w: Vec<String> = c.warnings.iter().map(|d| d.to_string()).collect();
        assert!(
            w.iter().any(|w| w.contains("app/compose.yaml:4:") && w.contains("start_interval needs Docker API 1.44")),
            "{w:?}"
        );
    }

    /// compose-spec 06-networks.md and 07-volumes.md: `enable_ipv6`, `ipam.config`, a
    /// service's `ipv4_address`, and the local driver's `driver_opts` reach the containers
    /// that use them; an address outside the subnet is refused with its position.
    #[test]
    fn ipam_static_addresses_and_driver_opts() {
        let text = "services:\n  dns:\n    image: x\n    networks: { lan: { ipv4_address: 172.28.0.53 } }\n    volumes: [\"cache:/cache\"]\n  web:\n    image: y\n    networks: [lan]\nnetworks:\n  lan:\n    enable_ipv6: true\n    ipam: { driver: default, config: [{ subnet: 172.28.0.0/16, gateway: 172.28.0.1 }, { subnet: \"fd00:28::/64\" }] }\nvolumes:\n  cache: { driver_opts: { type: tmpfs, device: tmpfs, o: \"size=16m\" } }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        let dns = spec(&c, "dns");
        assert_eq!(dns["networks"][0]["ipv4_address"].as_str(), Some("172.28.0.53"), "{dns:?}");
        let o = &dns["network_options"]["app_lan"];
        assert_eq!(o["enable_ipv6"].as_bool(), Some(true));
        assert_eq!(o["subnets"][0]["gateway"].as_str(), Some("172.28.0.1"));
        assert_eq!(dns["volume_options"]["app_cache"]["driver_opts"]["o"].as_str(), Some("size=16m"));
        assert!(
            spec(&c, "web")["network_options"]["app_lan"].is_mapping(),
            "every container that may create it knows how"
        );
    }

    /// compose-spec 14-include.md: an included file is a compose file of its own — its
    /// relative paths from its folder (or `project_directory`), its variables from its
    /// `.env` (or `env_file`) over the includer's — under the includer's project name, and
    /// the includer's services may name its services, networks and volumes. What it names
    /// is claimed (never read as driftless/v1 documents); one the reader lacks is refused.
    #[test]
    fn include_as_the_specification_defines_it() {
        let files: BTreeMap<&str, &str> = [
            ("app/db/compose.yaml", "services:\n  db:\n    image: postgres:${PG}\n    volumes: [\"data:/d\", \"./init:/i:ro\"]\n    networks: [back]\nnetworks: { back: { internal: true } }\nvolumes: { data: {} }\n"),
            ("app/db/.env", "PG=16\n"),
            ("app/cache/compose.yaml", "services:\n  cache:\n    image: redis:${R}\n    volumes: [\"./conf:/c\"]\n"),
            ("app/cache.env", "R=7\n"),
        ]
        .into_iter()
        .collect();
        let lookup = |p: &str| files.get(p).map(|t| t.to_string());
        let ctx = Context { files: Some(Files(&lookup)), ..Default::default() };
        let text = "name: shop\ninclude:\n  - db/compose.yaml\n  - path: cache/compose.yaml\n    env_file: cache.env\n    project_directory: .\nservices:\n  web:\n    image: web\n    depends_on: [db, cache]\n    networks: [back]\n    volumes: [\"data:/d\"]\n";
        let c = convert_files(&[("app/compose.yaml", text)], None, &ctx);
        assert_eq!(errors(&c), "");
        let names: Vec<&str> = c.docs.iter().filter_map(|g| g.doc["metadata"]["name"].as_str()).collect();
        assert_eq!(names, ["db", "cache", "web"], "included first, as compose loads them");
        let db = spec(&c, "db");
        assert_eq!(db["image"].as_str(), Some("postgres:16"), "its own .env");
        assert_eq!(db["files"][0]["source"].as_str(), Some("app/db/init"), "its own folder");
        assert_eq!(db["volumes"][0].as_str(), Some("shop_data:/d"), "the includer's project");
        let cache = spec(&c, "cache");
        assert_eq!(cache["image"].as_str(), Some("redis:7"), "env_file");
        assert_eq!(cache["files"][0]["source"].as_str(), Some("app/conf"), "project_directory");
        let web = spec(&c, "web");
        assert_eq!(web["networks"][0].as_str(), Some("shop_back"));
        assert_eq!(web["internal_networks"][0].as_str(), Some("shop_back"), "the included network's marks");
        assert_eq!(web["volumes"][0].as_str(), Some("shop_data:/d"));
        assert_eq!(web["depends_on"][0].as_str(), Some("db"));
        let claimed: Vec<&str> = c.claims.iter().map(|c| c.path.as_str()).collect();
        assert!(claimed.contains(&"app/db/compose.yaml") && claimed.contains(&"app/db/init"), "{claimed:?}");
        // A file the reader lacks, a host path, a file that includes itself: each named.
        let c = convert_files(
            &[(
                "app/compose.yaml",
                "include: [nope.yaml, /etc/x.yaml, compose.yaml]\nservices:\n  web: { image: x }\n",
            )],
            None,
            &ctx,
        );
        let e = errors(&c);
        assert!(e.contains("nope.yaml is not among the files read"), "{e}");
        assert!(e.contains("\"/etc/x.yaml\" is a host path"), "{e}");
        assert!(e.contains("app/compose.yaml includes itself"), "{e}");
        // Without the folder's files (a reader given one file): said, not guessed.
        let c = convert("app/compose.yaml", text, None, &[]);
        assert!(errors(&c).contains("include reads other files of the folder"), "{}", errors(&c));
    }

    /// compose-go's loader/extends_test.go as oracle: `TestExtends` (same-file and
    /// other-file bases, a base that extends in turn), `TestExtendsRelativePath` (the base's
    /// `build: .` is its own folder), `TestLoadExtendsSameFile` (inside another file,
    /// `extends: base` names that file's service), `TestExtendsReset` (`!reset`),
    /// `TestLoadExtendsDependsOn` (`!override`), `TestExtendsUlimits`, `TestExtendsNil`, and
    /// `TestExtendsWihtMissingService` ("extends.<svc>.service is required").
    #[test]
    fn extends_as_compose_go_resolves_it() {
        let files: BTreeMap<&str, &str> = [
            ("app/base/base.yaml", "services:\n  base:\n    image: base\n  another:\n    extends: base\n  withUlimits:\n    image: test\n    ulimits:\n      nproc: 65535\n      nofile: { soft: 20000, hard: 40000 }\n  with-build:\n    extends: { file: sibling.yaml, service: test }\n  nil:\n"),
            ("app/base/sibling.yaml", "services:\n  test:\n    build: .\n    volumes: [\"./conf:/c:ro\", \"data:/d\"]\n    env_file: [./common.env]\n"),
            ("app/base/common.env", "A=1\n"),
            ("app/base/conf", "x"),
        ]
        .into_iter()
        .collect();
        let lookup = |p: &str| files.get(p).map(|t| t.to_string());
        let ctx = Context { files: Some(Files(&lookup)), ..Default::default() };
        let text = "name: test-extends\nservices:\n  test1:\n    extends: { file: base/base.yaml, service: base }\n    hostname: test1\n  test3:\n    extends: { file: base/base.yaml, service: another }\n    hostname: test3\n  limits:\n    extends: { file: base/base.yaml, service: withUlimits }\n  built:\n    extends: { file: base/base.yaml, service: with-build }\n    image: built\n  empty:\n    image: e\n    extends: { file: base/base.yaml, service: nil }\n  init:\n    image: alpine:latest\n    command: \"sleep infinity\"\n    depends_on: [test1]\n  reset:\n    extends: { service: init }\n    command: !reset\n    depends_on: !override [test3]\nvolumes: { data: {} }\n";
        let c = convert_files(&[("app/compose.yaml", text)], None, &ctx);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "test1")["image"].as_str(), Some("base"));
        assert_eq!(spec(&c, "test1")["hostname"].as_str(), Some("test1"));
        assert_eq!(spec(&c, "test3")["image"].as_str(), Some("base"), "a base that extends in turn");
        assert_eq!(spec(&c, "test3")["hostname"].as_str(), Some("test3"));
        assert_eq!(spec(&c, "limits")["ulimits"]["nproc"].as_u64(), Some(65535));
        let built = spec(&c, "built");
        assert_eq!(built["build"]["context"].as_str(), Some("app/base"), "the base's `.` is its own folder");
        assert_eq!(built["files"][0]["source"].as_str(), Some("app/base/conf"), "{built:?}");
        assert_eq!(built["env_files"][0].as_str(), Some("app/base/common.env"));
        assert_eq!(
            built["volumes"][0].as_str(),
            Some("test-extends_data:/d"),
            "a named volume of the extending project"
        );
        assert_eq!(spec(&c, "empty")["image"].as_str(), Some("e"), "a null base");
        let reset = spec(&c, "reset");
        assert_eq!(reset["image"].as_str(), Some("alpine:latest"));
        assert!(reset.get("command").is_none(), "!reset: {reset:?}");
        assert_eq!(reset["depends_on"], serde_yaml_ng::from_str::<Value>("[test3]").unwrap_or_default(), "!override");
        let claimed: Vec<&str> = c.claims.iter().map(|c| c.path.as_str()).collect();
        assert!(claimed.contains(&"app/base/base.yaml") && claimed.contains(&"app/base/sibling.yaml"), "{claimed:?}");
        assert_eq!(included_paths("app/compose.yaml", text, ""), ["app/base/base.yaml"; 5]);

        // Refusals, each where it is written: no service, a missing one, a circle, a file
        // the reader lacks, and a base's error shown in the base's file.
        let bad = "services:\n  a:\n    extends: { file: base/base.yaml }\n  b:\n    extends: nosuch\n  c:\n    extends: d\n  d:\n    extends: c\n  e:\n    extends: { file: nope.yaml, service: x }\n";
        let c = convert_files(&[("app/compose.yaml", bad)], None, &ctx);
        let e = errors(&c);
        assert!(e.contains("app/compose.yaml:3:14: services.a.extends: extends names the service it builds on"), "{e}");
        assert!(
            e.contains("app/compose.yaml:5:14: services.b.extends: service \"nosuch\" not found in app/compose.yaml"),
            "{e}"
        );
        assert!(
            e.contains(
                "extends goes round in a circle (app/compose.yaml: c → app/compose.yaml: d → app/compose.yaml: c)"
            ),
            "{e}"
        );
        assert!(e.contains("app/nope.yaml is not among the files read"), "{e}");
        assert!(!e.contains("not supported"), "{e}");
    }

    /// compose-go's types/project.go, `WithServicesLabelsResolved`: label files in order,
    /// each over the ones before, `${VAR}` naming a label read before; `labels` over all; a
    /// missing file refused (`loadLabelFile`: "label file … not found").
    #[test]
    fn label_file_labels_under_the_services_own() {
        let files: BTreeMap<&str, &str> =
            [("app/a.labels", "team=web\ntier=front\n"), ("app/b.labels", "tier=back\nowner=${team}-ops\n")]
                .into_iter()
                .collect();
        let lookup = |p: &str| files.get(p).map(|t| t.to_string());
        let ctx = Context { files: Some(Files(&lookup)), ..Default::default() };
        let text = "services:\n  web:\n    image: x\n    labels: { team: api }\n    label_file: [./a.labels, ./b.labels]\n  job:\n    image: x\n    label_file: ./a.labels\n";
        let c = convert_files(&[("app/compose.yaml", text)], None, &ctx);
        assert_eq!(errors(&c), "");
        let web = spec(&c, "web");
        assert_eq!(web["labels"]["team"].as_str(), Some("api"));
        assert_eq!(web["labels"]["tier"].as_str(), Some("back"));
        assert_eq!(web["labels"]["owner"].as_str(), Some("web-ops"));
        assert_eq!(spec(&c, "job")["labels"]["tier"].as_str(), Some("front"));
        let c = convert_files(
            &[("app/compose.yaml", "services:\n  web:\n    image: x\n    label_file: ./nope\n")],
            None,
            &ctx,
        );
        assert!(errors(&c).contains("label file app/nope not found"), "{}", errors(&c));
    }

    /// compose-spec 08-configs.md: a config is a file (or a `.env` variable) mounted
    /// read-only at `/<name>` or its `target`, carried as a secret entry `config.<name>`;
    /// `content:` and `external:` are refused, saying what to write.
    #[test]
    fn configs_are_read_only_files() {
        let text = "services:\n  web:\n    image: x\n    configs: [site, { source: site, target: /etc/site.conf }]\n    secrets: [key]\nconfigs:\n  site: { file: ./site.conf }\n  inline: { content: x }\nsecrets:\n  key: { file: ./key }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert!(
            errors(&c).contains("configs.inline.content: config inline: content: is not supported"),
            "{}",
            errors(&c)
        );
        assert_eq!(c.errors.len(), 1, "{}", errors(&c));
        let secrets = spec(&c, "web")["secrets"].as_sequence().cloned().unwrap_or_default();
        let got: Vec<(String, String)> = secrets
            .iter()
            .map(|s| (s["name"].as_str().unwrap_or("").to_string(), s["target"].as_str().unwrap_or("").to_string()))
            .collect();
        let want = [("config.site", "/site"), ("config.site.2", "/etc/site.conf"), ("key", "")];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    /// compose-spec build.md: with both `image` and `build`, compose pulls the image and
    /// builds only when it is not found, unless `pull_policy: build`; `build` alone builds.
    #[test]
    fn image_and_build_pull_first_unless_pull_policy_build() {
        let text = "services:\n  a: { image: r/a:1, build: ./ctx }\n  b: { image: r/b:1, build: ./ctx, pull_policy: build }\n  c: { build: ./ctx }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert_eq!(errors(&c), "");
        assert_eq!(spec(&c, "a")["build"]["when"].as_str(), Some("missing"));
        assert!(spec(&c, "b")["build"].get("when").is_none());
        assert!(spec(&c, "c")["build"].get("when").is_none());
    }

    /// What compose reads from the `.env` beside the file for itself (compose's
    /// cli/options.go and compose-go loader/loader.go `projectName`): COMPOSE_PROJECT_NAME
    /// before `name:` and the folder, `${COMPOSE_PROJECT_NAME}` set for interpolation,
    /// COMPOSE_PROFILES when the agent config names none.
    #[test]
    fn the_env_file_names_the_project_and_its_profiles() {
        let text = "name: from-file\nservices:\n  web:\n    image: x\n    volumes: [\"data:/data\"]\n    environment: { P: \"${COMPOSE_PROJECT_NAME}\" }\n  debug: { image: d, profiles: [debug] }\nvolumes: { data: {} }\n";
        let c = convert("app/compose.yaml", text, Some("COMPOSE_PROJECT_NAME=legacy\n"), &[]);
        assert_eq!(errors(&c), "");
        let web = spec(&c, "web");
        assert_eq!(web["volumes"][0].as_str(), Some("legacy_data:/data"), "{web:?}");
        assert_eq!(web["env"]["P"].as_str(), Some("legacy"));
        assert_eq!(c.docs.len(), 1, "no profile enabled");
        // Without it: `name:` (interpolated, normalized), and the variable is that name.
        let c = convert("app/compose.yaml", &text.replace("from-file", "${N}"), Some("N=Named\n"), &[]);
        assert_eq!(spec(&c, "web")["env"]["P"].as_str(), Some("named"));
        // COMPOSE_PROFILES enables; the agent config's compose_profiles win over it.
        let c = convert("app/compose.yaml", text, Some("COMPOSE_PROFILES=debug,other\n"), &[]);
        assert_eq!(c.docs.len(), 2, "{}", errors(&c));
        let c = convert("app/compose.yaml", text, Some("COMPOSE_PROFILES=debug\n"), &["other".to_string()]);
        assert_eq!(c.docs.len(), 1);
        // An explicit name must be valid already (compose-go `InvalidProjectNameErr`).
        let c = convert("app/compose.yaml", text, Some("COMPOSE_PROJECT_NAME=Legacy App\n"), &[]);
        assert!(
            errors(&c).contains("app/.env:1:1: COMPOSE_PROJECT_NAME \"Legacy App\" is not a valid project name"),
            "{}",
            errors(&c)
        );
    }

    /// `ipc: service:x` joins x's IPC namespace (its container) and starts after it, as
    /// compose; `ipc: host` passes through.
    #[test]
    fn ipc_is_carried_and_service_names_a_container() {
        let text = "services:\n  db: { image: pg, ipc: shareable }\n  app: { image: app, ipc: \"service:db\" }\n  tool: { image: t, ipc: host }\n  bad: { image: b, ipc: \"service:nope\" }\n";
        let c = convert("app/compose.yaml", text, None, &[]);
        assert!(
            errors(&c).contains("services.bad.ipc: ipc service:nope names no service of this file"),
            "{}",
            errors(&c)
        );
        assert_eq!(c.errors.len(), 1, "{}", errors(&c));
        let app = spec(&c, "app");
        assert_eq!(app["ipc"].as_str(), Some("container:db"), "{app:?}");
        assert_eq!(app["depends_on"][0].as_str(), Some("db"), "{app:?}");
        assert_eq!(spec(&c, "tool")["ipc"].as_str(), Some("host"));
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
        // A service whose profile is off runs nothing, so what it could not run is not
        // refused; with the profile on, it is.
        let text = "services:\n  w: { image: w, container_name: fixed, deploy: { replicas: 3 }, profiles: [debug] }\n";
        assert_eq!(errors(&convert("app/compose.yaml", text, None, &[])), "");
        let e = errors(&convert("app/compose.yaml", text, None, &["debug".to_string()]));
        assert!(e.contains("container_name"), "{e}");
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
        let ctx = Context { profiles: &[], root: "", root_name: None, home: Some("/root"), ..Default::default() };
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
            let c = convert_in(
                path,
                text,
                None,
                &Context { profiles: &[], root, root_name: Some("shop"), home: None, ..Default::default() },
            );
            assert_eq!(errors(&c), "", "{path}");
            assert_eq!(volume(&c).as_deref(), Some("shop_data:/d"), "{path}");
            assert_eq!(files(&c).as_deref(), Some("conf"), "{path}: repository paths are relative to the root");
        }
        // In a subfolder, the subfolder's name; `name:` wins.
        let c = convert_in(
            "/srv/state/web/compose.yaml",
            text,
            None,
            &Context { profiles: &[], root: "/srv/state", root_name: Some("state"), home: None, ..Default::default() },
        );
        assert_eq!(volume(&c).as_deref(), Some("web_data:/d"));
        assert_eq!(files(&c).as_deref(), Some("web/conf"));
        let named = format!("name: Shop-2\n{text}");
        let c = convert_in(
            "compose.yaml",
            &named,
            None,
            &Context { profiles: &[], root: "", root_name: Some("x"), home: None, ..Default::default() },
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
