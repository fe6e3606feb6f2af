//! The top-level objects of a compose file: `networks` and `volumes` (their engine names,
//! `external` and `internal`), and `secrets`.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::converted::Generated;
use super::cx::Cx;
use super::values::*;
use crate::source_map::YamlPath;

/// Names of the top-level networks or volumes: key → the engine's name. One piece: both
/// sections share compose's rules for `name`, `external` and the creation options, read in
/// one pass over each entry.
pub(super) fn top_level<'w>(
    cx: &mut Cx<'_>,
    top: &Mapping,
    what: &'w str,
    project: &str,
    allowed: &[&str],
    marked: &mut BTreeMap<&'w str, std::collections::BTreeSet<String>>,
    options: &mut BTreeMap<String, Value>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if what == "networks" {
        out.insert("default".to_string(), format!("{project}_default"));
    }
    for (k, v) in top.get(what).and_then(Value::as_mapping).into_iter().flatten() {
        let key = key_text(k);
        let at = YamlPath::root().key(what).key(key.as_str());
        let mut name = format!("{project}_{key}");
        let mut opts = Mapping::new();
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
                                    &format!("not supported by Driftless: write external: true and name: <the existing {}'s name>", &what[..what.len() - 1]),
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
                                "driver {d:?} is not supported by Driftless: it creates {} with the engine's default driver ({}); remove it",
                                what,
                                if what == "networks" { "bridge" } else { "local" }
                            ),
                        );
                    }
                }
                "labels" => {}
                // compose-spec 06-networks.md: `enable_ipv6` and `ipam` (the default driver's
                // `config` of subnet, ip_range, gateway) — `network_options` of the containers.
                "enable_ipv6" if what == "networks" => match cv {
                    Value::Bool(b) => {
                        opts.insert("enable_ipv6".into(), (*b).into());
                    }
                    _ => cx.err(&at.key("enable_ipv6"), "enable_ipv6 is true or false"),
                },
                "ipam" if what == "networks" => {
                    let mut subnets = Vec::new();
                    for (ik, iv) in cv.as_mapping().into_iter().flatten() {
                        let ikey = ik.as_str().unwrap_or("");
                        let iat = at.key("ipam").key(ikey);
                        match ikey {
                            "driver" if scalar_string(iv) == "default" => {}
                            "driver" => cx.err(&iat, "only the engine's default IPAM driver is supported: remove driver, or write default"),
                            "config" => {
                                for (i, c) in iv.as_sequence().into_iter().flatten().enumerate() {
                                    let mut sn = Mapping::new();
                                    for (ck, cv) in c.as_mapping().into_iter().flatten() {
                                        let ckey = ck.as_str().unwrap_or("");
                                        match ckey {
                                            "subnet" | "gateway" | "ip_range" => {
                                                sn.insert(ckey.into(), Value::String(scalar_string(cv)));
                                            }
                                            other => cx.key_err(&iat.index(i).key(other), "not supported by Driftless: an ipam config holds subnet, ip_range and gateway; remove it"),
                                        }
                                    }
                                    if sn.contains_key("subnet") {
                                        subnets.push(Value::Mapping(sn));
                                    } else {
                                        cx.err(&iat.index(i), "an ipam config needs a subnet, e.g. subnet: 172.28.0.0/16");
                                    }
                                }
                            }
                            other => cx.key_err(&iat, &format!("not supported by Driftless: ipam holds driver (default) and config; remove {other}")),
                        }
                    }
                    if !subnets.is_empty() {
                        opts.insert("subnets".into(), Value::Sequence(subnets));
                    }
                }
                // compose-spec 07-volumes.md: the local driver's options (tmpfs, a bind, nfs).
                "driver_opts" if what == "volumes" => {
                    let mut o = Mapping::new();
                    for (dk, dv) in cv.as_mapping().into_iter().flatten() {
                        let dkey = key_text(dk);
                        match dkey.as_str() {
                            "type" | "device" | "o" => {
                                o.insert(dkey.into(), Value::String(scalar_string(dv)));
                            }
                            other => cx.key_err(&at.key("driver_opts").key(other), "not supported by Driftless: the local driver takes type, device and o; remove it"),
                        }
                    }
                    opts.insert("driver_opts".into(), Value::Mapping(o));
                }
                "internal" if what == "networks" => {
                    if cv.as_bool().is_none() {
                        cx.err(&at.key("internal"), "internal is true or false");
                    }
                }
                // Read by `volume_documents`.
                "x-driftless" if what == "volumes" => {}
                other if allowed.contains(&other) => {}
                other => cx.key_err(
                    &at.key(other),
                    &format!(
                        "not supported by Driftless{}: a top-level {} entry holds name, external, driver, labels{}; remove it",
                        if other == "attachable" || other == "driver_opts" { " (bridge networks take no driver options here)" } else { "" },
                        &what[..what.len() - 1],
                        if what == "networks" { ", internal" } else { "" }
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
        if !opts.is_empty() && !is_external {
            options.insert(name.clone(), Value::Mapping(opts));
        }
        out.insert(key, name);
    }
    out
}

/// Top-level volumes with `x-driftless: { snapshot: … }`: a `Volume` document each, named
/// as the engine names the volume (`names`: key → engine name), its positions in the
/// compose file.
pub(super) fn volume_documents(cx: &mut Cx<'_>, top: &Mapping, names: &BTreeMap<String, String>) -> Vec<Generated> {
    let mut out = Vec::new();
    for (k, v) in top.get("volumes").and_then(Value::as_mapping).into_iter().flatten() {
        let key = key_text(k);
        let Some(x) = v.get("x-driftless") else { continue };
        let at = YamlPath::root().key("volumes").key(key.as_str());
        let xat = at.key("x-driftless");
        let Some(m) = x.as_mapping() else {
            cx.err(&xat, "x-driftless on a volume is a mapping: { snapshot: { keep: 5, consistency: pause } }");
            continue;
        };
        let mut spec = Mapping::new();
        for (xk, xv) in m {
            match xk.as_str().unwrap_or("") {
                "snapshot" => {
                    // `snapshot:` with nothing under it: every default.
                    let value = if xv.is_null() { Value::Mapping(Mapping::new()) } else { xv.clone() };
                    spec.insert("snapshot".into(), value);
                }
                other => cx.key_err(
                    &xat.key(other),
                    &format!("unknown key `{other}` in a volume's x-driftless; expected snapshot"),
                ),
            }
        }
        if spec.is_empty() {
            continue;
        }
        let Some(name) = names.get(&key) else { continue };
        let mut map = crate::source_map::DocMap::starting_at(cx.map.value_pos(&at));
        map.alias_node(cx.map, &at, &YamlPath::root());
        map.show_as(&YamlPath::root(), &at);
        map.alias_node(cx.map, &at, &YamlPath::root().key("metadata").key("name"));
        map.show_as(&YamlPath::root().key("metadata").key("name"), &at);
        map.generated_from(cx.map, &xat, &YamlPath::root().key("spec"));
        let mut meta = Mapping::new();
        meta.insert("name".into(), name.clone().into());
        let mut doc = Mapping::new();
        doc.insert("apiVersion".into(), "driftless/v1".into());
        doc.insert("kind".into(), "Volume".into());
        doc.insert("metadata".into(), Value::Mapping(meta));
        doc.insert("spec".into(), Value::Mapping(spec));
        let file = cx.map.file_at(&at).unwrap_or(cx.file).to_string();
        let origin = crate::types::Origin { file, line: cx.map.key_pos(&at).line };
        out.push(Generated { doc: Value::Mapping(doc), map, origin });
    }
    out
}

/// Top-level `secrets`: key → repository path of its file.
pub(super) fn top_secrets(cx: &mut Cx<'_>, top: &Mapping) -> BTreeMap<String, (String, Option<String>)> {
    top_files(cx, top, "secrets")
}

/// Top-level `configs` (compose-spec 08-configs.md): as secrets — a file (a repository path,
/// or absolute on the host) or a variable of the `.env` — mounted read-only where a service
/// asks (`/<name>` by default).
pub(super) fn top_configs(cx: &mut Cx<'_>, top: &Mapping) -> BTreeMap<String, (String, Option<String>)> {
    top_files(cx, top, "configs")
}

/// Top-level `secrets` or `configs` (`what`): key → (its file, the `.env` variable holding
/// it, if any).
fn top_files(cx: &mut Cx<'_>, top: &Mapping, what: &str) -> BTreeMap<String, (String, Option<String>)> {
    let one = if what == "secrets" { "secret" } else { "config" };
    let mut out = BTreeMap::new();
    for (k, v) in top.get(what).and_then(Value::as_mapping).into_iter().flatten() {
        let key = key_text(k);
        let at = YamlPath::root().key(what).key(key.as_str());
        if what == "configs" {
            if v.get("content").is_some() {
                cx.err(&at.key("content"), &format!("config {key}: content: is not supported: write it into a file of the repository and use file: ./path"));
                continue;
            }
            if v.get("external").is_some() {
                cx.err(
                    &at.key("external"),
                    &format!("config {key}: external configs are a swarm's: write file: ./path"),
                );
                continue;
            }
        }
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
                    cx.err(&at.key("environment"), &format!("{one} {key}: environment {var} is not in the .env beside the compose file (the agent's own environment is never read): define it there, or write file: ./path"));
                } else if let Some(r) = cx.repo_path(&at, ".env") {
                    out.insert(key, (r, Some(var.to_string())));
                }
            }
            (Some(_), Some(_)) => cx.err(&at, &format!("a {one} is file: or environment:, not both: remove one")),
            (None, None) => cx.err(
                &at,
                &format!(
                    "a {one} needs file: ./path or environment: VAR (a variable of the .env beside the compose file)"
                ),
            ),
        }
        for (ck, _) in v.as_mapping().into_iter().flatten() {
            let ckey = ck.as_str().unwrap_or("");
            if !matches!(ckey, "file" | "environment" | "name") {
                cx.key_err(
                    &at.key(ckey),
                    &format!("not supported by Driftless: a {one} is file: ./path or environment: VAR"),
                );
            }
        }
    }
    out
}
