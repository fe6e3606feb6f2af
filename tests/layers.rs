//! The layering rule of docs/architecture.md, checked: a module of the agent library, and of
//! the desired-state-schema library, uses only modules of lower layers (or itself). A
//! `crate::x` path in a module of a lower or the same layer than `x` fails this test, naming
//! the file and line. So no two modules import each other, directly or in a loop.
//!
//! A sub-module listed on its own (`fleet::format`) has its own layer: its files, and the
//! paths that name it (`crate::fleet::format::…`), are judged by it, not by its parent's.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. Keep in step with docs/architecture.md ("Layers").
const LAYERS: &[&[&str]] = &[
    &["revision", "fault", "fsutil", "failpoint", "sdnotify", "semver_range", "wire", "listen", "lock", "memory"],
    &["state", "config", "plan", "secrets"],
    &["fleet::format"],
    &["source", "metrics", "notify"],
    &["fleet::gate"],
    &["runtime"],
    &["health", "event", "validate", "webhook", "fleet"],
    &["reconciler", "control", "fleet::reporter"],
    &["cli"],
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
