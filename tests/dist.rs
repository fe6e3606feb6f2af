//! The generated files in `dist/` (shell completions and man pages, built from the clap
//! definitions in `driftless_agent::cli`) are committed so that packaging needs no build
//! step of its own; this test fails when they are stale.
//! Regenerate with `UPDATE_SNAPSHOTS=1 cargo nextest run -p driftless-agent --test dist`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use driftless_agent::cli::{AgentctlCli, AgentdCli};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn completions(cmd: &mut clap::Command, name: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (shell, file) in
        [(Shell::Bash, format!("{name}.bash")), (Shell::Zsh, format!("_{name}")), (Shell::Fish, format!("{name}.fish"))]
    {
        let mut buf = Vec::new();
        clap_complete::generate(shell, cmd, name, &mut buf);
        out.push((format!("dist/completions/{file}"), buf));
    }
    out
}

fn man(cmd: clap::Command, file: String, section: &str) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section)
        .manual("Driftless")
        .source(format!("Driftless {}", env!("CARGO_PKG_VERSION")))
        .render(&mut buf)
        .unwrap_or_else(|e| panic!("rendering {file}: {e}"));
    (format!("dist/man/{file}"), buf)
}

fn generated() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut ctl = AgentctlCli::command();
    ctl.build();
    let mut d = AgentdCli::command();
    d.build();
    files.extend(completions(&mut ctl, "agentctl"));
    files.extend(completions(&mut d, "agentd"));
    files.push(man(d.clone(), "agentd.8".into(), "8"));
    files.push(man(ctl.clone(), "agentctl.1".into(), "1"));
    for sub in ctl.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap names are &'static str without its `string` feature; leaking a few in a test is fine.
        let name: &'static str = Box::leak(format!("agentctl-{}", sub.get_name()).into_boxed_str());
        files.push(man(sub.clone().name(name), format!("{name}.1"), "1"));
    }
    files
}

#[test]
fn completions_and_man_pages_are_current() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for (rel, content) in generated() {
        let path = root().join(&rel);
        if update {
            std::fs::create_dir_all(path.parent().unwrap_or(&root())).unwrap_or_else(|e| panic!("{rel}: {e}"));
            std::fs::write(&path, &content).unwrap_or_else(|e| panic!("{rel}: {e}"));
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; regenerate with UPDATE_SNAPSHOTS=1 cargo nextest run -p driftless-agent --test dist"
    );
}
