//! The generated files in `dist/` (shell completions and man pages, built from the clap
//! definitions in `driftless_agent::cli`; the report format's JSON Schemas, from its types) are committed so that packaging needs no build
//! step of its own; this test fails when they are stale.
//! Regenerate with `UPDATE_SNAPSHOTS=1 cargo nextest run -p driftless-agent --test dist`.

mod common;

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

/// The sections a man page has beside what clap describes (roff, appended).
const AGENTD_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
0
ran and stopped cleanly; with \fB\-\-once\fR: synced, or nothing to do
.TP
1
the config is invalid (each problem as file:line:column); another agentd holds state_dir; with \fB\-\-once\fR: the revision was rolled back, failed or is invalid
.TP
64
usage error (an unknown flag or a missing argument)
.SH FILES
.TP
/etc/driftless/agent.yaml
the agent config (\fB\-\-config\fR overrides)
.TP
/var/lib/driftless/
state_dir: state, history, journal, the Git mirror, report repositories, drains.json
.TP
/run/driftless/agent.sock
the control socket agentctl talks to (mode 0660)
.TP
/usr/share/doc/driftless/
configuration.md, operations.md and the other docs
.SH ENVIRONMENT
.TP
DRIFTLESS_LOG
what to log, in tracing's filter syntax (as \fB\-\-log\-level\fR; default info)
.TP
NO_COLOR
no colour in the log, whatever the terminal
.TP
DOCKER_HOST, DOCKER_CONFIG
the Docker engine to use, and the folder of Docker's config.json (registry credentials)
.SH "SEE ALSO"
agentctl(1), driftless.service
"#;

const AGENTCTL_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
0
ok
.TP
1
error, invalid desired state, or the revision was rolled back or failed
.TP
2
changes pending (\fBdiff\fR)
.TP
3
no agent reachable on the control socket
.TP
4
timed out (\fBwait\fR, \fBsync \-\-wait \-\-timeout\fR)
.TP
64
usage error (an unknown flag or a missing argument)
.SH FILES
.TP
/run/driftless/agent.sock
the agent's control socket (\fB\-\-socket\fR, or \fBcontrol_socket\fR of \fB\-\-config\fR)
.TP
/etc/driftless/agent.yaml
the agent config, read for \fBfleet\fR's defaults and with \fB\-\-config\fR
.TP
/usr/share/doc/driftless/cli.md
every command, its flags and its \fB\-\-json\fR output
.SH ENVIRONMENT
.TP
DRIFTLESS_SOCKET
as \fB\-\-socket\fR
.TP
DRIFTLESS_CONFIG
as \fB\-\-config\fR
.TP
NO_COLOR
no colour, whatever the terminal
.SH "SEE ALSO"
agentd(8)
"#;

fn generated() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut ctl = AgentctlCli::command();
    ctl.build();
    let mut d = AgentdCli::command();
    d.build();
    files.extend(completions(&mut ctl, "agentctl"));
    files.extend(completions(&mut d, "agentd"));
    let mut agentd = man(d.clone(), "agentd.8".into(), "8");
    agentd.1.extend_from_slice(AGENTD_SECTIONS.as_bytes());
    files.push(agentd);
    let mut agentctl = man(ctl.clone(), "agentctl.1".into(), "1");
    agentctl.1.extend_from_slice(AGENTCTL_SECTIONS.as_bytes());
    files.push(agentctl);
    for sub in ctl.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap names are &'static str without its `string` feature; leaking a few in a test is fine.
        let name: &'static str = Box::leak(format!("agentctl-{}", sub.get_name()).into_boxed_str());
        files.push(man(sub.clone().name(name), format!("{name}.1"), "1"));
    }
    // The report format's JSON Schemas (PRODUCT.md "One report format").
    for (name, schema) in driftless_agent::report_format::schemas() {
        let mut text = serde_json::to_vec_pretty(&schema).unwrap_or_default();
        text.push(b'\n');
        files.push((format!("dist/report/{name}.schema.json"), text));
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

/// `promtool`; its absence fails the test unless DRIFTLESS_SKIP_MISSING=1 (never in CI), as
/// for every real part (tests/common/mod.rs, `missing`).
fn promtool() -> Option<&'static str> {
    if std::process::Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some("promtool");
    }
    // Fails the test, unless DRIFTLESS_SKIP_MISSING=1 chose a skip (which it says).
    common::missing("promtool is missing", "run .ci/setup (it installs Debian's prometheus)");
    None
}

/// The shipped alert rules are valid and pass their unit tests.
#[test]
fn prometheus_rules_pass_promtool() {
    let Some(tool) = promtool() else { return };
    let dir = root().join("dist/prometheus");
    for args in [["check", "rules", "driftless.rules.yaml"], ["test", "rules", "driftless.rules.test.yaml"]] {
        let out = std::process::Command::new(tool).args(args).current_dir(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every metric the rules and the dashboard read is one the agent exports, and the
/// dashboard is a Grafana dashboard (JSON with panels, each with a query).
#[test]
fn rules_and_dashboard_read_only_exported_metrics() {
    let m = driftless_agent::metrics::Metrics::new();
    m.set_phase(driftless_agent::state::Phase::Synced);
    m.set_revisions(None, None, None);
    m.set_resources([("Container", "web", true)].into_iter());
    let exported: std::collections::BTreeSet<String> = m
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(exported.contains("driftless_phase"), "{exported:?}");
    let rules = std::fs::read_to_string(root().join("dist/prometheus/driftless.rules.yaml")).unwrap();
    let dashboard = std::fs::read_to_string(root().join("dist/grafana/driftless.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 6, "phase, revisions, deploys, durations, drift, …");
    for p in panels {
        assert!(!p["targets"].as_array().unwrap().is_empty(), "panel {} has no query", p["title"]);
    }
    let mut read = 0;
    for text in [&rules, &dashboard] {
        let mut rest = text.as_str();
        while let Some(i) = rest.find("driftless_") {
            let name: String =
                rest[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
            rest = &rest[i + name.len()..];
            if name.ends_with("_seconds_bucket") || name.ends_with("_total") || name.starts_with("driftless_phase") {
                read += 1;
            }
            let family = ["_bucket", "_total", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            if family == "driftless_" || name.ends_with(".json") || family.contains("fleet") {
                continue;
            }
            assert!(exported.contains(&family), "{name} is read by dist/ but not exported; exported: {exported:?}");
        }
    }
    assert!(read > 5);
}
