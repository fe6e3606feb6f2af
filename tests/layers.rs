//! The layering rule of docs/architecture.md, checked: a module of the agent library, and of
//! the desired-state-schema library, uses only modules of lower layers (or itself). A
//! `crate::x` path in a module of a lower or the same layer than `x` fails this test, naming
//! the file and line. So no two modules import each other, directly or in a loop.
//!
//! A sub-module listed on its own (`fleet::gate`) has its own layer: its files, and the
//! paths that name it (`crate::fleet::gate::…`), are judged by it, not by its parent's.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. Keep in step with docs/architecture.md ("Layers").
const LAYERS: &[&[&str]] = &[
    &["revision", "fault", "fsutil", "failpoint", "sdnotify", "semver_range", "wire", "listen", "lock", "memory"],
    &["state", "config", "plan", "secrets", "snapshots"],
    &["report_format"],
    &["source", "metrics", "notify"],
    &["fleet::gate"],
    &["runtime"],
    &["health", "event", "validate", "webhook", "fleet"],
    &["reconciler", "control", "fleet::reporter"],
    &["cli", "fuzzing"],
];

fn layer_of(layers: &BTreeMap<&str, usize>, module: &str) -> usize {
    *layers
        .get(module)
        .unwrap_or_else(|| panic!("module {module} has no layer: add it to LAYERS and docs/architecture.md"))
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The desired-state-schema crate's layers, lowest first.
const SCHEMA_LAYERS: &[&[&str]] = &[
    &["duration", "source_map", "limits", "emit"],
    &["diagnostic"],
    &["types"],
    &["checks", "schema"],
    &["compose"],
    &["load"],
    &["fuzzing"],
];

#[test]
fn no_module_imports_a_higher_one() {
    check(LAYERS, &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

#[test]
fn no_module_of_the_format_library_imports_a_higher_one() {
    check(SCHEMA_LAYERS, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../desired-state-schema/src"));
}

fn check(layer_list: &[&[&str]], src: &Path) {
    let layers: BTreeMap<&str, usize> =
        layer_list.iter().enumerate().flat_map(|(i, ms)| ms.iter().map(move |m| (*m, i))).collect();
    let src = src.to_path_buf();
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut wrong = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let parts: Vec<String> =
            rel.components().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        let module = match parts.get(1).map(|sub| format!("{}::{sub}", parts[0])) {
            Some(m) if layers.contains_key(m.as_str()) => m,
            _ => parts[0].clone(),
        };
        if module == "lib" || module == "bin" {
            continue;
        }
        let mine = layer_of(&layers, &module);
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + 7..];
                let word =
                    |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
                let mut dep = word(rest);
                if let Some(sub) = rest[dep.len()..].strip_prefix("::").map(word) {
                    if layers.contains_key(format!("{dep}::{sub}").as_str()) {
                        dep = format!("{dep}::{sub}");
                    }
                }
                if dep.is_empty() || dep == module {
                    continue;
                }
                if layer_of(&layers, &dep) >= mine {
                    wrong.push(format!(
                        "{}:{}: {module} (layer {mine}) uses crate::{dep} (layer {})",
                        rel.display(),
                        n + 1,
                        layer_of(&layers, &dep)
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "modules that import a module of their own or a higher layer:\n{}", wrong.join("\n"));
}

/// Folders whose `mod.rs` only wires (declares its parts, re-exports from them) and whose
/// parts never import it: inside them, the arrows between files all run one way. Every
/// folder of both libraries is one (`a_part_never_imports_its_folders_mod_rs` checks that
/// no folder is left out).
const WIRING_ONLY: &[&str] = &[
    "agent/src/fleet",
    "agent/src/reconciler",
    "agent/src/runtime",
    "agent/src/runtime/docker",
    "agent/src/source",
    "desired-state-schema/src/compose",
];

/// The lines of `text` before its unit tests (a test module's `super` is its own file).
fn before_tests(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().take_while(|(_, l)| !l.starts_with("#[cfg(test)]"))
}

/// The first path segment after each `super::` of `line`, and each name of a `super::{…}`.
fn super_names(line: &str) -> Vec<String> {
    let word =
        |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '*').collect() };
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("super::") {
        rest = &rest[i + 7..];
        match rest.strip_prefix('{') {
            Some(list) => {
                let list = list.split('}').next().unwrap_or("");
                out.extend(list.split(',').map(|n| word(n.trim())).filter(|n| !n.is_empty()));
            }
            None => out.push(word(rest)),
        }
    }
    out
}

/// Inside a folder, a part never imports the folder's `mod.rs`: every `super::X` of a part
/// names a sibling part, `mod.rs` defines nothing, and `super::*` outside a file's tests is
/// refused (it hides which way an arrow runs).
#[test]
fn a_part_never_imports_its_folders_mod_rs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrong = Vec::new();
    for src in ["agent/src", "desired-state-schema/src"] {
        let mut files = Vec::new();
        walk(&root.join(src), &mut files);
        for f in files {
            let rel = f.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            let folder = rel.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
            let text = std::fs::read_to_string(&f).unwrap();
            let is_mod = rel.ends_with("/mod.rs");
            if is_mod && !WIRING_ONLY.contains(&folder.as_str()) {
                wrong.push(format!(
                    "{folder}/ is a folder of parts: list it in WIRING_ONLY and make its mod.rs only wire"
                ));
            }
            if is_mod && WIRING_ONLY.contains(&folder.as_str()) {
                for (n, line) in before_tests(&text) {
                    let t = line.trim_start();
                    let item = [
                        "fn ",
                        "pub fn ",
                        "struct ",
                        "pub struct ",
                        "enum ",
                        "pub enum ",
                        "impl ",
                        "impl<",
                        "trait ",
                        "const ",
                        "pub const ",
                        "static ",
                    ];
                    if item.iter().any(|p| t.starts_with(p))
                        || t.starts_with("pub(") && !t.contains(" mod ") && !t.contains(" use ")
                    {
                        wrong.push(format!(
                            "{rel}:{}: a mod.rs that only wires defines an item; move it to a part of the folder",
                            n + 1
                        ));
                    }
                }
            }
            if is_mod || !Path::new(&root.join(&folder)).join("mod.rs").exists() {
                continue;
            }
            let siblings: Vec<String> = std::fs::read_dir(root.join(&folder))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
                .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
                .filter(|n| n != "mod")
                .collect();
            for (n, line) in before_tests(&text) {
                for name in super_names(line) {
                    if name == "*" {
                        wrong.push(format!("{rel}:{}: `super::*` imports the folder's mod.rs whole; name what is used, from the part that owns it", n + 1));
                    } else if name != "super" && !siblings.contains(&name) && WIRING_ONLY.contains(&folder.as_str()) {
                        wrong.push(format!(
                            "{rel}:{}: super::{name} is the folder's mod.rs; import it from the part that owns it",
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "parts that import their folder's mod.rs:\n{}", wrong.join("\n"));
}

/// Drivers receive what they need of a revision with it (`Revision::files`: its files read
/// from Git objects, folders exported, tree ids, tags), handed over by the reconciler: no
/// file under `runtime/` reaches back into the source.
#[test]
fn no_driver_calls_back_into_the_source() {
    let mut files = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime"), &mut files);
    let mut wrong = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("crate::source") || line.contains("GitSource") {
                wrong.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(wrong.is_empty(), "drivers that reach into the source:\n{}", wrong.join("\n"));
}
