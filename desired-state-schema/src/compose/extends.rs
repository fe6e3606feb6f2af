//! `extends` (compose-spec 05-services.md; compose-go's `loader/extends.go`): a service
//! written as another service — of the same file, or of another file of the repository
//! (`file:`) — with its own keys merged over it by the override rules
//! (`merge::extend_service`, compose-go's `override.ExtendService`). Resolved in each file
//! after interpolation and before the file merges with its overrides, as compose-go's
//! `loadYamlFile` does; bases are resolved first (`extends` chains), what an extended file
//! wrote with relative paths is rebased to the extending file's folder (compose-go's
//! `paths.ResolveRelativePaths` on the base), and a chain that comes back to itself or names
//! a service that is not there is refused where it is written. Reading another file is the
//! caller's (`Load`): this module sees trees and positions only.

use serde_yaml_ng::Value;

use super::merge::{self, Doc};
use super::paths::rebase;
use crate::diagnostic::Diagnostic;
use crate::source_map::{DocMap, YamlPath};

/// Another compose file an `extends.file` names, read and interpolated as the extending
/// file is.
pub(super) struct Loaded {
    /// How it is shown (in errors).
    pub shown: String,
    /// Its repository folder: what its relative paths are relative to.
    pub dir: String,
    pub doc: Doc,
}

/// Reads the file an `extends.file` names: the path as written, the folder of the file that
/// names it, and where it is written (for the caller's errors, pushed to the vector); `None`
/// when it cannot be read (an error pushed).
pub(super) type Load<'l> = dyn FnMut(&str, &str, &DocMap, &YamlPath, &mut Vec<Diagnostic>) -> Option<Loaded> + 'l;

/// Resolve every service's `extends` in `doc` (the file shown as `file`, whose relative paths
/// are relative to `dir`). Errors are pushed with the position of what is wrong; a service
/// whose `extends` cannot be resolved keeps its own keys only.
pub(super) fn apply(doc: &mut Doc, file: &str, dir: &str, load: &mut Load<'_>, errors: &mut Vec<Diagnostic>) {
    let names: Vec<String> = match doc.value.get("services") {
        Some(Value::Mapping(m)) => m.keys().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => return,
    };
    for name in names {
        let mut chain = Vec::new();
        resolve(doc, file, dir, &name, load, &mut chain, errors);
    }
}

fn err(errors: &mut Vec<Diagnostic>, file: &str, map: &DocMap, at: &YamlPath, key: bool, msg: &str) {
    errors.push(Diagnostic::at_node(file, map, at, msg, key));
}

fn service<'v>(doc: &'v Doc, name: &str) -> Option<&'v Value> {
    doc.value.get("services").and_then(|s| s.get(name))
}

/// Resolve `services.<name>.extends` of `doc`, its bases first. `chain`: the services being
/// resolved, outermost first (file, service). `false`: it could not be (an error pushed).
fn resolve(
    doc: &mut Doc,
    file: &str,
    dir: &str,
    name: &str,
    load: &mut Load<'_>,
    chain: &mut Vec<(String, String)>,
    errors: &mut Vec<Diagnostic>,
) -> bool {
    let at = YamlPath::root().key("services").key(name);
    let ext_at = at.key("extends");
    let Some(ext) = service(doc, name).and_then(|s| s.get("extends")).cloned() else { return true };
    let (base_name, other) = match &ext {
        Value::String(s) => (s.clone(), None),
        Value::Mapping(m) => {
            for k in m.keys() {
                let k = k.as_str().unwrap_or("");
                if !matches!(k, "service" | "file") {
                    err(
                        errors,
                        file,
                        &doc.map,
                        &ext_at.key(k),
                        true,
                        "unknown key of extends: write service (and file, when the service is in another file)",
                    );
                }
            }
            let Some(s) = m.get("service").and_then(Value::as_str) else {
                err(errors, file, &doc.map, &ext_at, false, "extends names the service it builds on: write extends: { service: base } (with file: path/to/other.yaml when it is in another file)");
                return false;
            };
            let f = match m.get("file") {
                None => None,
                Some(Value::String(f)) => Some(f.clone()),
                Some(_) => {
                    err(
                        errors,
                        file,
                        &doc.map,
                        &ext_at.key("file"),
                        false,
                        "extends.file is the path of a compose file, relative to this one",
                    );
                    return false;
                }
            };
            (s.to_string(), f)
        }
        _ => {
            err(
                errors,
                file,
                &doc.map,
                &ext_at,
                false,
                "extends is the name of a service of this file, or { service: base, file: other.yaml }",
            );
            return false;
        }
    };
    let me = (file.to_string(), name.to_string());
    if chain.contains(&me) {
        let path: Vec<String> = chain.iter().chain(std::iter::once(&me)).map(|(f, s)| format!("{f}: {s}")).collect();
        err(
            errors,
            file,
            &doc.map,
            &ext_at,
            false,
            &format!(
                "extends goes round in a circle ({}): a service cannot build on itself; break the chain",
                path.join(" → ")
            ),
        );
        return false;
    }
    chain.push(me);
    let base = base_of(doc, file, dir, &base_name, other.as_deref(), &ext_at, load, chain, errors);
    chain.pop();
    let Some((base, base_map, bp)) = base else { return false };
    let Some(over) = service(doc, name).cloned() else { return false };
    let (mut merged, map, conflicts) = merge::extend_service(&base, &base_map, &bp, &over, &doc.map, &at);
    for c in conflicts {
        let file = doc.map.file_at(&c.at).unwrap_or(file).to_string();
        errors.push(Diagnostic {
            file,
            line: c.pos.line,
            column: c.pos.column,
            message: format!("{}: {}", c.at, c.message),
        });
    }
    if let Value::Mapping(m) = &mut merged {
        m.remove("extends");
    }
    if let Some(Value::Mapping(services)) = doc.value.get_mut("services") {
        services.insert(name.into(), merged);
    }
    doc.map.remove_tree(&at);
    doc.map.alias_tree(&map, &at, &at);
    doc.map.remove_tree(&ext_at);
    true
}

/// The service `name` that an `extends` at `ext_at` builds on, resolved, with its positions
/// and its path in them: of `doc`, or of the file `other` (its relative paths rebased to
/// `dir`).
#[allow(clippy::too_many_arguments)] // resolve's state, passed down one level
fn base_of(
    doc: &mut Doc,
    file: &str,
    dir: &str,
    name: &str,
    other: Option<&str>,
    ext_at: &YamlPath,
    load: &mut Load<'_>,
    chain: &mut Vec<(String, String)>,
    errors: &mut Vec<Diagnostic>,
) -> Option<(Value, DocMap, YamlPath)> {
    let bp = YamlPath::root().key("services").key(name);
    let Some(f) = other else {
        if service(doc, name).is_none() {
            err(errors, file, &doc.map, ext_at, false, &format!("service {name:?} not found in {file}: extends names a service of this file, or give file: for one of another"));
            return None;
        }
        if !resolve(doc, file, dir, name, load, chain, errors) {
            return None;
        }
        return Some((service(doc, name).cloned().unwrap_or(Value::Null), doc.map.subtree(&bp), bp));
    };
    let mut loaded = load(f, dir, &doc.map, &ext_at.key("file"), errors)?;
    if service(&loaded.doc, name).is_none() {
        err(
            errors,
            file,
            &doc.map,
            ext_at,
            false,
            &format!("service {name:?} not found in {}: name one of its services", loaded.shown),
        );
        return None;
    }
    if !resolve(&mut loaded.doc, &loaded.shown, &loaded.dir, name, load, chain, errors) {
        return None;
    }
    let mut base = service(&loaded.doc, name).cloned().unwrap_or(Value::Null);
    if let Err(p) = rebase_paths(&mut base, &loaded.dir, dir) {
        err(errors, file, &doc.map, ext_at, false, &format!("{p:?} in {} escapes the repository root", loaded.shown));
        return None;
    }
    Some((base, loaded.doc.map.subtree(&bp), bp))
}

/// The relative paths a service wrote in folder `from` (`build`, `env_file`, `label_file`,
/// bind sources of `volumes`), re-expressed from folder `to`. `Err`: one leaves the root.
fn rebase_paths(svc: &mut Value, from: &str, to: &str) -> Result<(), String> {
    if from == to {
        return Ok(());
    }
    let relative = |p: &str| !p.starts_with('/') && !p.starts_with('~') && !p.contains("://") && !p.starts_with("git@");
    let fix = |v: &mut Value| -> Result<(), String> {
        if let Value::String(p) = v {
            if relative(p) {
                *p = rebase(p, from, to).ok_or_else(|| p.clone())?;
            }
        }
        Ok(())
    };
    let Value::Mapping(m) = svc else { return Ok(()) };
    match m.get_mut("build") {
        Some(Value::Mapping(b)) => {
            if let Some(c) = b.get_mut("context") {
                fix(c)?;
            }
        }
        Some(v) => fix(v)?,
        None => {}
    }
    for key in ["env_file", "label_file"] {
        match m.get_mut(key) {
            Some(Value::Sequence(s)) => {
                for e in s {
                    match e {
                        Value::Mapping(e) => {
                            if let Some(p) = e.get_mut("path") {
                                fix(p)?;
                            }
                        }
                        e => fix(e)?,
                    }
                }
            }
            Some(v) => fix(v)?,
            None => {}
        }
    }
    if let Some(Value::Sequence(vols)) = m.get_mut("volumes") {
        for v in vols {
            match v {
                // Short syntax: a source starting with `.` is a bind (else a named volume).
                Value::String(s) if s.starts_with('.') => {
                    let (src, rest) = s.split_once(':').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
                    let new = rebase(src, from, to).ok_or_else(|| src.to_string())?;
                    *s = match rest {
                        Some(r) => format!("{new}:{r}"),
                        None => new,
                    };
                }
                Value::Mapping(l) if l.get("type").and_then(Value::as_str) == Some("bind") => {
                    if let Some(src) = l.get_mut("source") {
                        fix(src)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
