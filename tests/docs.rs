//! The runbook's troubleshooting table (docs/operations.md) names every error message an
//! operator can see: each `#[error("…")]` of the agent and the format library must appear
//! there by its first fixed fragment (the text before or between its placeholders). A new
//! error without a row fails here.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The string literal of every `#[error("…")]` in `src` (escapes `\"` and `\\` undone).
fn error_messages(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("#[error(") {
        rest = &rest[i + "#[error(".len()..];
        let trimmed = rest.trim_start();
        let Some(body) = trimmed.strip_prefix('"') else { continue };
        let mut lit = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('\n') => {
                        // A line continuation: skip the next line's indentation.
                        let skipped: String = chars.clone().take_while(|c| c.is_whitespace()).collect();
                        for _ in skipped.chars() {
                            chars.next();
                        }
                    }
                    Some(e) => lit.push(e),
                    None => break,
                },
                '"' => break,
                c => lit.push(c),
            }
        }
        out.push(lit);
    }
    out
}

/// The first fixed fragment of a message worth searching for (placeholders cut out).
fn first_fragment(msg: &str) -> Option<String> {
    let mut fragments = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in msg.chars() {
        match c {
            '{' => {
                depth += 1;
                fragments.push(std::mem::take(&mut cur));
            }
            '}' => depth -= 1,
            c if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    fragments.push(cur);
    fragments
        .into_iter()
        .map(|f| f.trim_matches(|c: char| c.is_whitespace() || ":;,".contains(c)).to_string())
        .find(|f| f.len() >= 8)
}

#[test]
fn the_runbook_names_every_error_message() {
    let runbook = std::fs::read_to_string(root().join("docs/operations.md")).unwrap_or_default();
    let mut files = Vec::new();
    rust_files(&root().join("agent/src"), &mut files);
    rust_files(&root().join("desired-state-schema/src"), &mut files);
    let mut checked = 0;
    let mut missing = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap_or_default();
        for msg in error_messages(&src) {
            let Some(fragment) = first_fragment(&msg) else { continue };
            checked += 1;
            if !runbook.contains(&fragment) {
                missing.push(format!("{}: {fragment:?} (from {msg:?})", f.strip_prefix(root()).unwrap_or(f).display()));
            }
        }
    }
    assert!(checked >= 30, "found only {checked} error messages; is the scan broken?");
    assert!(missing.is_empty(), "docs/operations.md has no troubleshooting row for:\n{}", missing.join("\n"));
}

/// The workspace's `rust-version` is the truth: no locked dependency built for this platform
/// needs a newer Rust (`cargo metadata` carries each package's `rust_version`).
#[test]
fn rust_version_covers_every_locked_dependency() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap_or_default();
    let declared = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_default()
        .to_string();
    let version = |v: &str| -> (u64, u64, u64) {
        let mut it = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    assert!(!declared.is_empty(), "Cargo.toml has a rust-version");
    let host = std::process::Command::new("rustc").arg("-vV").output().expect("rustc runs");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap_or_default();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", &host])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let built: std::collections::HashSet<&str> =
        m["resolve"]["nodes"].as_array().into_iter().flatten().filter_map(|n| n["id"].as_str()).collect();
    let mut newer = Vec::new();
    for p in m["packages"].as_array().into_iter().flatten() {
        let (Some(id), Some(rv)) = (p["id"].as_str(), p["rust_version"].as_str()) else { continue };
        if built.contains(id) && version(rv) > version(&declared) {
            newer.push(format!("{} {} needs Rust {rv}", p["name"], p["version"]));
        }
    }
    assert!(newer.is_empty(), "rust-version = {declared} in Cargo.toml is untrue: {newer:?}; raise it");
}

/// docs/architecture.md's listing of the `Driver` trait names every method the trait has, and
/// no other.
#[test]
fn the_driver_interface_in_the_architecture_doc_is_the_trait() {
    let fns = |text: &str| -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("fn ") {
            rest = &rest[i + 3..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && rest[name.len()..].starts_with('(') {
                out.insert(name);
            }
        }
        out
    };
    let src = std::fs::read_to_string(root().join("agent/src/runtime/driver.rs")).unwrap_or_default();
    let start = src.find("pub trait Driver").unwrap_or(0);
    let end = src[start..].find("\n}\n").map_or(src.len(), |e| start + e);
    // The trait's own methods: indented once (bodies' calls are indented deeper).
    let trait_text: String = src[start..end]
        .lines()
        .filter(|l| l.starts_with("    fn ") || l.starts_with("    async fn "))
        .collect::<Vec<_>>()
        .join("\n");
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap_or_default();
    let at = doc.find("## The driver interface").unwrap_or(0);
    let block_start = doc[at..].find("```rust").map_or(at, |b| at + b);
    let block_end = doc[block_start + 7..].find("```").map_or(doc.len(), |e| block_start + 7 + e);
    let (in_trait, in_doc) = (fns(&trait_text), fns(&doc[block_start..block_end]));
    assert!(!in_trait.is_empty());
    assert_eq!(
        in_doc, in_trait,
        "docs/architecture.md lists other Driver methods than agent/src/runtime/driver.rs has"
    );
}

/// The keys SIGHUP cannot change (`LoadedConfig::start_only_changes`) are the ones
/// docs/configuration.md, cli.md and operations.md list as needing a restart, no more.
#[test]
fn the_start_only_keys_in_the_docs_are_the_code_s() {
    let src = std::fs::read_to_string(root().join("agent/src/config.rs")).unwrap_or_default();
    let start = src.find("pub fn start_only_changes").expect("start_only_changes in config.rs");
    let body = &src[start..start + src[start..].find("\n    }\n").unwrap_or(0)];
    let keys: Vec<&str> =
        body.lines().filter_map(|l| l.trim().strip_prefix("(\"")).filter_map(|l| l.split('"').next()).collect();
    assert!(keys.len() >= 10, "{keys:?}");
    let key_list = |text: &str| -> std::collections::BTreeSet<String> {
        text.split('`').skip(1).step_by(2).map(str::to_string).collect()
    };
    let mine: std::collections::BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
    // cli.md: the sentence between "read only at start" and "the log names them".
    let cli = std::fs::read_to_string(root().join("docs/cli.md")).unwrap_or_default();
    let a = cli.find("read only at start").expect("cli.md names the start-only keys");
    let b = a + cli[a..].find("the log names them").unwrap_or(0);
    assert_eq!(key_list(&cli[a..b]), mine, "docs/cli.md");
    // operations.md: the SIGHUP row of the troubleshooting table.
    let ops = std::fs::read_to_string(root().join("docs/operations.md")).unwrap_or_default();
    let row = ops.lines().find(|l| l.starts_with("| SIGHUP: the new config is refused")).expect("the SIGHUP row");
    let cell = row.split(" | ").nth(1).unwrap_or("");
    assert_eq!(key_list(cell), mine, "docs/operations.md's SIGHUP row");
    // configuration.md: the right-hand column of the Reloading table.
    let conf = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap_or_default();
    let at = conf.find("## Reloading").expect("configuration.md has Reloading");
    let row = conf[at..].lines().find(|l| l.starts_with("| `source`")).expect("the Reloading row");
    let right = row.split(" | ").nth(1).unwrap_or("");
    let right: std::collections::BTreeSet<String> = key_list(right);
    assert_eq!(right, mine, "docs/configuration.md's Reloading table");
}

/// Every module of the agent library is named in docs/architecture.md's code map.
#[test]
fn every_module_is_in_the_code_map() {
    let lib = std::fs::read_to_string(root().join("agent/src/lib.rs")).unwrap_or_default();
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap_or_default();
    let missing: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .filter(|m| !doc.contains(&format!("`{m}.rs`")) && !doc.contains(&format!("`{m}/`")))
        .collect();
    assert!(missing.is_empty(), "docs/architecture.md's code map lacks {missing:?}");
}

/// Every `agentctl` command, and every long flag of it, appears in docs/cli.md.
#[test]
fn every_agentctl_command_and_flag_is_in_cli_md() {
    use clap::CommandFactory;
    let cli = std::fs::read_to_string(root().join("docs/cli.md")).unwrap_or_default();
    let mut missing = Vec::new();
    let cmd = driftless_agent::cli::AgentctlCli::command();
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        if !cli.contains(&format!("`{name}")) && !cli.contains(&format!("/ `{name}`")) {
            missing.push(name.to_string());
        }
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                if !cli.contains(&format!("--{long}")) {
                    missing.push(format!("{name} --{long}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/cli.md does not mention {missing:?}");
}
