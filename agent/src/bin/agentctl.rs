//! `agentctl`: the operator's command line. Parses arguments, talks to `agentd` over the
//! control socket (or, for `validate`, works offline), prints, and maps outcomes to the
//! documented exit codes: 0 ok, 1 error (or invalid, or rolled back), 2 changes pending
//! (`diff`), 3 agent not reachable.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use driftless_agent::cli::{AgentctlCli as Cli, AgentctlCommand as Cmd};
use driftless_agent::config::{control_socket_of, DEFAULT_SOCKET};
use driftless_agent::control::wire::{DiffView, Reply, Request, SnapshotView, StatusView, SyncView};
use driftless_agent::control::{request, request_within, ClientError};
use driftless_agent::reconciler::short;
use driftless_agent::state::HistoryEntry;
use driftless_agent::validate::validate;

const EXIT_ERROR: u8 = 1;
const EXIT_CHANGES: u8 = 2;
const EXIT_UNREACHABLE: u8 = 3;
const EXIT_TIMEOUT: u8 = 4;
/// sysexits.h's EX_USAGE: an unknown flag or a missing argument (never 2, which `diff` uses).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    if let Cmd::Validate { .. } = cli.command {
        return cmd_validate(cli.command);
    }
    if let Cmd::Convert { file, profiles } = cli.command {
        return cmd_convert(&file, &profiles);
    }
    if let Cmd::Fleet { url, signers, environment, revision, json } = &cli.command {
        return cmd_fleet(
            cli.config.as_deref(),
            url.clone(),
            signers.clone(),
            environment.as_deref(),
            revision.as_deref(),
            *json,
        );
    }
    let socket = match socket_path(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agentctl: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match cli.command {
        Cmd::Status { json } => call(&socket, &Request::Status, false, |data| {
            let s: StatusView = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
            if json {
                print_json(data);
            } else {
                print_status(&s);
            }
            Ok(0)
        }),
        Cmd::Diff { json } => call(&socket, &Request::Diff, false, |data| {
            let d: DiffView = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
            if json {
                print_json(data);
            } else {
                print_diff(&d);
            }
            if let Some(m) = &d.message {
                if !json {
                    eprintln!("{m}");
                }
                return Ok(EXIT_ERROR);
            }
            Ok(if d.changes.is_empty() { 0 } else { EXIT_CHANGES })
        }),
        Cmd::Sync { wait, retry, ignore_rollout, timeout } => {
            // With --timeout only this wait ends: the request reaches the agent whole first,
            // and the sync goes on there.
            let limit = timeout.map(|t| t.as_std());
            call_within(&socket, &Request::Sync { wait, retry, ignore_rollout }, true, limit, |data| {
                if !wait {
                    println!("sync requested");
                    return Ok(0);
                }
                let v: SyncView = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
                print_sync(&v);
                Ok(sync_exit(&v))
            })
        }
        Cmd::Wait { condition, timeout } => cmd_wait(&socket, &condition, timeout),
        Cmd::Version { json } => cmd_version(&socket, json),
        Cmd::History { limit, show: Some(rev), json } => {
            call(&socket, &Request::History { limit: None }, false, |data| {
                let h: Vec<HistoryEntry> = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
                let Some(e) = h
                    .iter()
                    .find(|e| e.revision.as_deref().is_some_and(|r| !rev.is_empty() && r.starts_with(rev.as_str())))
                else {
                    eprintln!("agentctl: no history entry for revision {rev:?} (of the last {} kept); agentctl history lists them", h.len());
                    return Ok(EXIT_ERROR);
                };
                let _ = limit;
                if json {
                    print_json(&serde_json::to_value(e).map_err(|e| e.to_string())?);
                } else {
                    print_entry(e);
                }
                Ok(0)
            })
        }
        Cmd::History { limit, show: None, json } => {
            call(&socket, &Request::History { limit: Some(limit) }, false, |data| {
                let h: Vec<HistoryEntry> = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
                if json {
                    print_json(data);
                } else {
                    print_history(&h);
                }
                Ok(0)
            })
        }
        Cmd::Rollback { revision, restore_data } => {
            call(&socket, &Request::Rollback { revision, restore_data }, true, |data| {
                let v: SyncView = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
                print_sync(&v);
                Ok(sync_exit(&v))
            })
        }
        Cmd::Snapshots { volume, json } => call(&socket, &Request::Snapshots { volume }, false, |data| {
            if json {
                print_json(data);
                return Ok(0);
            }
            let list: Vec<SnapshotView> = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
            print_snapshots(&list);
            Ok(0)
        }),
        Cmd::Restore { id } => call(&socket, &Request::Restore { id }, true, |data| {
            let v: SyncView = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
            print_sync(&v);
            Ok(if v.result == "applied" { 0 } else { EXIT_ERROR })
        }),
        Cmd::Pause | Cmd::Resume => {
            let req = if matches!(cli.command, Cmd::Pause) { Request::Pause } else { Request::Resume };
            call(&socket, &req, false, |data| {
                let s: StatusView = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
                println!("phase: {}{}", s.phase, s.message.map(|m| format!(" ({m})")).unwrap_or_default());
                Ok(0)
            })
        }
        Cmd::Validate { .. } | Cmd::Convert { .. } | Cmd::Fleet { .. } => ExitCode::from(EXIT_ERROR), // handled above
    }
}

/// What `agentctl wait --for` waits for.
enum Condition {
    Synced,
    Healthy,
    Revision(String),
}

/// `agentctl wait`: ask the agent's status every 500 ms until `condition` holds (exit 0),
/// the revision waited for failed or was rolled back (1), or `timeout` passed (4).
fn cmd_wait(socket: &std::path::Path, condition: &str, timeout: desired_state_schema::Duration) -> ExitCode {
    let cond = match condition {
        "synced" => Condition::Synced,
        "healthy" => Condition::Healthy,
        c => match c.strip_prefix("revision=").filter(|r| r.len() >= 4 && r.chars().all(|c| c.is_ascii_hexdigit())) {
            Some(r) => Condition::Revision(r.to_ascii_lowercase()),
            None => {
                eprintln!("agentctl wait: --for {c:?}: write synced, healthy, or revision=REV (a commit id or a prefix of at least 4 hex digits)");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    let deadline = std::time::Instant::now() + timeout.as_std();
    loop {
        let data = match answer(request(socket, &Request::Status, |_| {})) {
            Ok(d) => d,
            Err(code) => return code,
        };
        let s: StatusView = match serde_json::from_value(data) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("agentctl: the agent's answer did not parse: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let synced = s.phase == "Synced" && s.applied_revision.is_some() && s.applied_revision == s.desired_revision;
        let done = match &cond {
            Condition::Synced => synced,
            Condition::Healthy => synced && s.resources.iter().all(|r| r.health == "healthy"),
            Condition::Revision(r) => {
                if let Some(f) = s.failed_revisions.iter().find(|f| f.starts_with(r.as_str())) {
                    eprintln!(
                        "agentctl wait: revision {} failed or was rolled back ({}): {}",
                        short(f),
                        s.phase,
                        s.message.as_deref().unwrap_or("agentctl history says why")
                    );
                    return ExitCode::from(EXIT_ERROR);
                }
                s.applied_revision.as_deref().is_some_and(|a| a.starts_with(r.as_str())) && s.phase == "Synced"
            }
        };
        if done {
            println!("{}: {} at {}", condition, s.phase, rev(&s.applied_revision));
            return ExitCode::SUCCESS;
        }
        if std::time::Instant::now() >= deadline {
            eprintln!(
                "agentctl wait: not {condition} after {timeout}: phase {} at {}{}",
                s.phase,
                rev(&s.applied_revision),
                s.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
            );
            return ExitCode::from(EXIT_TIMEOUT);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `agentctl version`: this client's, and the agent's on the socket (exit 3 when none
/// answers, after printing the client's).
fn cmd_version(socket: &std::path::Path, json: bool) -> ExitCode {
    let me = driftless_agent::control::wire::VersionView::of_this_build("");
    let (agent, older) = match request(socket, &Request::Version, |_| {}) {
        Ok(Reply::Ok { data }) => {
            (serde_json::from_value::<driftless_agent::control::wire::VersionView>(data).ok(), false)
        }
        // It answers, and does not know the request: an agent from before `version`.
        Ok(Reply::Error { .. }) => (None, true),
        Err(_) => (None, false),
    };
    if json {
        let v = serde_json::json!({
            "agentctl": { "version": me.version, "commit": me.commit },
            "agentd": agent,
        });
        print_json(&v);
    } else {
        println!("agentctl {} (commit {})", me.version, me.commit);
        match &agent {
            Some(a) => println!("agentd   {} (commit {}), started {}", a.version, a.commit, a.started),
            None if older => println!(
                "agentd   answers on {}, and is older than `version` (agentctl status works)",
                socket.display()
            ),
            None => println!("agentd   not reachable on {}", socket.display()),
        }
    }
    if agent.is_some() || older {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNREACHABLE)
    }
}

fn socket_path(cli: &Cli) -> Result<PathBuf, String> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    if let Some(c) = &cli.config {
        return control_socket_of(c).map_err(|e| e.to_string());
    }
    Ok(PathBuf::from(DEFAULT_SOCKET))
}

/// Send a request; stream progress to stdout when asked; hand the data to `done`.
fn call(
    socket: &std::path::Path,
    req: &Request,
    stream: bool,
    done: impl FnOnce(&serde_json::Value) -> Result<u8, String>,
) -> ExitCode {
    call_within(socket, req, stream, None, done)
}

/// [`call`], waiting at most `limit` for the answer (exit 4 after it; the agent goes on).
fn call_within(
    socket: &std::path::Path,
    req: &Request,
    stream: bool,
    limit: Option<std::time::Duration>,
    done: impl FnOnce(&serde_json::Value) -> Result<u8, String>,
) -> ExitCode {
    let mut shown = Progress::new();
    let reply = request_within(socket, req, limit, |line| {
        if stream {
            shown.line(line);
        }
    });
    shown.close();
    let data = match answer(reply) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match done(&data) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("agentctl: the agent's answer did not parse: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// How `sync --wait` and `rollback` show the agent's progress: each line as it comes; on a
/// terminal, a pull's progress (`pull IMAGE: 1.2 MiB of 4.5 MiB, 1/3 layers`) as one bar
/// redrawn in place.
struct Progress {
    tty: bool,
    /// The pull whose bar is open (its line not ended yet).
    open: Option<String>,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress { tty: std::io::stdout().is_terminal(), open: None }
    }

    fn line(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        match (self.tty, pull_progress(line)) {
            (true, Some((what, fraction, rest))) => {
                const WIDTH: usize = 24;
                let filled = ((fraction * WIDTH as f64).round() as usize).min(WIDTH);
                let bar = format!("{}{}", "#".repeat(filled), "-".repeat(WIDTH - filled));
                if self.open.as_deref().is_some_and(|o| o != what) {
                    let _ = writeln!(out);
                }
                let _ = write!(out, "\r\x1b[2K{what} [{bar}] {rest}");
                self.open = Some(what.to_string());
            }
            _ => {
                if self.open.take().is_some() {
                    let _ = writeln!(out);
                }
                let _ = writeln!(out, "{line}");
            }
        }
        let _ = out.flush();
    }

    fn close(&mut self) {
        if self.open.take().is_some() {
            println!();
        }
    }
}

/// `pull IMAGE: A MiB of B MiB, k/n layers` → (`pull IMAGE`, A/B, the rest after the colon).
fn pull_progress(line: &str) -> Option<(&str, f64, &str)> {
    if !line.starts_with("pull ") {
        return None;
    }
    let (what, rest) = line.rsplit_once(": ")?;
    let (got, all) = rest.split_once(" of ")?;
    let num = |s: &str| s.trim().split(' ').next()?.parse::<f64>().ok();
    let (got, all) = (num(got)?, num(all.split(',').next()?)?);
    Some((what, if all > 0.0 { (got / all).clamp(0.0, 1.0) } else { 0.0 }, rest))
}

/// The data of the agent's answer, or the exit code of why there is none (said on stderr):
/// 3 when no agent answers, 4 when it did not answer within the caller's limit, else 1.
fn answer(reply: Result<Reply, ClientError>) -> Result<serde_json::Value, ExitCode> {
    match reply {
        Ok(Reply::Ok { data }) => Ok(data),
        Ok(Reply::Error { message }) => {
            eprintln!("agentctl: {message}");
            Err(ExitCode::from(EXIT_ERROR))
        }
        Err(e @ (ClientError::Unreachable { .. } | ClientError::Forbidden { .. })) => {
            eprintln!("agentctl: {e}");
            Err(ExitCode::from(EXIT_UNREACHABLE))
        }
        Err(e @ ClientError::TimedOut { .. }) => {
            eprintln!("agentctl: {e}; agentctl status says where it is");
            Err(ExitCode::from(EXIT_TIMEOUT))
        }
        Err(e) => {
            eprintln!("agentctl: {e}");
            Err(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn rev(r: &Option<String>) -> String {
    r.as_deref().map(|r| short(r).to_string()).unwrap_or_else(|| "-".into())
}

fn print_status(s: &StatusView) {
    let env = s.environment.as_deref().map(|e| format!(" (environment {e})")).unwrap_or_default();
    println!("host:       {}{env}", s.host);
    println!("source:     {} {} (path {})", s.source.url, s.source.reference, s.source.path);
    println!("phase:      {}", s.phase);
    println!("desired:    {}", rev(&s.desired_revision));
    match &s.applied_subject {
        Some(subject) => println!("applied:    {} {subject}", rev(&s.applied_revision)),
        None => println!("applied:    {}", rev(&s.applied_revision)),
    }
    println!("last good:  {}", rev(&s.last_good_revision));
    if !s.failed_revisions.is_empty() {
        let f: Vec<&str> = s.failed_revisions.iter().map(|r| short(r)).collect();
        println!("failed:     {}", f.join(", "));
    }
    for h in &s.held_revisions {
        println!("held:       {} ({})", short(&h.revision), h.why);
    }
    if let Some(r) = &s.ignore_rollout {
        println!("override:   {} goes past the rollout gates (agentctl sync --ignore-rollout)", short(r));
    }
    if let Some(p) = &s.pinned_revision {
        println!("pinned:     {} (agentctl resume to follow the source again)", short(p));
    }
    println!(
        "last sync:  {}   next sync: {}",
        s.last_sync.as_deref().map(age).unwrap_or_else(|| "-".into()),
        if s.paused { "paused".into() } else { s.next_sync.as_deref().map(age).unwrap_or_else(|| "-".into()) }
    );
    if let Some(until) = &s.baking_until {
        println!("baking:     ends {}; until then a failing check reverts it (health.bake)", age(until));
    }
    if let Some(r) = &s.report {
        match (&r.error, &r.last_success) {
            (Some(e), _) => println!("report:     failing ({e}); pushes are retried"),
            (None, Some(t)) => println!("report:     pushed {} to {}", age(t), r.url),
            (None, None) => println!("report:     not pushed yet ({})", r.url),
        }
    }
    if !s.agent_version.is_empty() {
        println!("agent:      agentd {}", s.agent_version);
    }
    if let Some(m) = &s.message {
        println!("message:    {m}");
    }
    if !s.resources.is_empty() {
        println!();
        let rows: Vec<[String; 5]> = s
            .resources
            .iter()
            .map(|r| [r.kind.clone(), r.name.clone(), r.state.clone(), r.health.clone(), rev(&r.revision)])
            .collect();
        table(&["KIND", "NAME", "STATE", "HEALTH", "REVISION"], &rows);
        for r in s.resources.iter().filter(|r| r.detail.is_some()) {
            println!("  {}/{}: {}", r.kind, r.name, r.detail.as_deref().unwrap_or(""));
        }
    }
}

fn print_diff(d: &DiffView) {
    println!("desired revision: {}", rev(&d.revision));
    if d.changes.is_empty() && d.message.is_none() {
        println!("nothing to do");
    }
    for c in &d.changes {
        println!("  {} {}/{} ({})", c.action, c.kind, c.name, c.reason);
    }
}

fn print_sync(v: &SyncView) {
    println!(
        "{}: {} at {}{}",
        v.result,
        v.phase,
        rev(&v.revision),
        v.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    );
}

fn sync_exit(v: &SyncView) -> u8 {
    match v.result.as_str() {
        "rolled_back" | "failed" | "invalid" => EXIT_ERROR,
        _ if v.phase == "Failed" || v.phase == "Degraded" || v.phase == "Invalid" => EXIT_ERROR,
        _ => 0,
    }
}

/// One history entry in full, for a person.
fn print_entry(e: &HistoryEntry) {
    let result = serde_json::to_value(e.result).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    println!("revision:  {}", e.revision.as_deref().unwrap_or("-"));
    if let Some(c) = &e.commit {
        println!("commit:    {}", c.subject);
        println!("author:    {} ({})", c.author, c.date);
    }
    println!("result:    {result}");
    println!("started:   {}", e.started);
    println!("finished:  {} ({} ms)", e.finished, e.duration_ms);
    if let Some(t) = &e.trigger {
        println!("trigger:   {t}");
    }
    println!("message:   {}", e.message);
    if !e.changes.is_empty() {
        println!("changes:");
        for c in &e.changes {
            println!("  {c}");
        }
    }
    for d in &e.diagnostics {
        let code = d.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
        let oom = if d.oom_killed { ", killed for lack of memory (OOM)" } else { "" };
        println!("{}/{}: {}{code}{oom}", d.kind, d.name, d.state);
        if d.logs.is_empty() {
            println!("  (no log lines)");
        }
        for l in &d.logs {
            println!("  | {l}");
        }
    }
}

fn print_history(h: &[HistoryEntry]) {
    if h.is_empty() {
        println!("no deployments yet");
        return;
    }
    let rows: Vec<[String; 5]> = h
        .iter()
        .map(|e| {
            let result =
                serde_json::to_value(e.result).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let what = if e.changes.is_empty() { e.message.clone() } else { e.changes.join("; ") };
            [age(&e.started), rev(&e.revision), result, format!("{:.1}s", e.duration_ms as f64 / 1000.0), what]
        })
        .collect();
    table(&["STARTED", "REVISION", "RESULT", "DURATION", "CHANGES"], &rows);
}

/// The one table printer of `agentctl`: a header and rows, each column as wide as its
/// widest cell, two spaces between columns, the last one unpadded.
fn print_snapshots(list: &[SnapshotView]) {
    if list.is_empty() {
        println!("no snapshots (a Volume with snapshot: is snapshotted before each revision that changes anything)");
        return;
    }
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.volume.clone(),
                s.kind.clone(),
                rev(&s.revision),
                age(&s.time),
                driftless_agent::snapshots::human_bytes(s.bytes),
                s.note.clone().unwrap_or_else(|| s.consistency.clone()),
            ]
        })
        .collect();
    table(&["ID", "VOLUME", "KIND", "REVISION", "TAKEN", "SIZE", "NOTE"], &rows);
}

fn table<R: AsRef<[String]>>(head: &[&str], rows: &[R]) {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.as_ref().iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width.get(i).copied().unwrap_or(0)));
            }
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.as_ref().iter().map(String::as_str).collect());
    }
}

/// `agentctl fleet`: every host's last report (see `driftless_agent::fleet`).
fn cmd_fleet(
    config: Option<&std::path::Path>,
    url: Option<String>,
    signers: Option<PathBuf>,
    environment: Option<&str>,
    revision: Option<&str>,
    json: bool,
) -> ExitCode {
    // The agent config gives the defaults: the one named, else the default one if it is there.
    let default = std::path::Path::new(driftless_agent::config::DEFAULT_CONFIG);
    let path = config.or_else(|| default.exists().then_some(default));
    let loaded = match path.map(driftless_agent::config::LoadedConfig::load) {
        Some(Ok(l)) => Some(l),
        Some(Err(e)) if url.is_none() => {
            eprintln!("agentctl fleet: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
        _ => None,
    };
    let (cfg_url, auth, cfg_signers) = driftless_agent::fleet::defaults(loaded.as_ref().map(|l| &l.config));
    let Some(url) = url.or(cfg_url) else {
        eprintln!("agentctl fleet: no report repository: give --url, or set report.url in the agent config (--config)");
        return ExitCode::from(EXIT_ERROR);
    };
    let signers = signers.or(cfg_signers);
    if signers.is_none() {
        eprintln!("agentctl fleet: no signers file (--signers, or rollout.signers in the agent config): every report is shown unverified");
    }
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("agentctl fleet: cannot make a scratch folder: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let reports = match driftless_agent::fleet::read(&url, auth, scratch.path(), signers.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentctl fleet: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut rows = driftless_agent::fleet::rows(&reports, revision, std::time::SystemTime::now());
    if let Some(e) = environment {
        rows.retain(|r| r.environment.as_deref() == Some(e));
    }
    let bad = rows.iter().any(|r| r.is_bad());
    if json {
        print_json(&serde_json::to_value(&rows).unwrap_or_default());
    } else if rows.is_empty() {
        println!("no host has reported to {url}");
    } else {
        let mut head = vec!["HOST", "ENV", "PHASE", "APPLIED", "LAST GOOD", "HEALTHY", "REPORTED"];
        if revision.is_some() {
            head.push("REVISION");
        }
        head.push("NOTE");
        let mut lines: Vec<Vec<String>> = Vec::new();
        for r in &rows {
            let mut note = Vec::new();
            if r.stale {
                note.push("stale".to_string());
            }
            if let Some(p) = &r.problem {
                note.push(format!("unverified: {p}"));
            }
            let mut line = vec![
                r.host.clone(),
                r.environment.clone().unwrap_or_else(|| "-".into()),
                r.phase.clone(),
                rev(&r.applied_revision),
                rev(&r.last_good_revision),
                format!("{}/{}", r.healthy, r.resources),
                r.reported_at.clone(),
            ];
            if let Some(w) = &r.revision {
                line.push(w.clone());
            }
            line.push(note.join("; "));
            lines.push(line);
        }
        table(&head, &lines);
    }
    ExitCode::from(if bad { EXIT_ERROR } else { 0 })
}

/// `agentctl convert FILE`: the driftless/v1 documents a compose file means.
fn cmd_convert(file: &std::path::Path, profiles: &[String]) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("agentctl convert: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let shown = file.display().to_string();
    if !desired_state_schema::compose::is_compose_file(&shown) {
        eprintln!(
            "agentctl convert: {shown} is not named like a compose file ({}); the agent reads compose files by these names only",
            desired_state_schema::compose::FILE_NAMES.join(", ")
        );
        return ExitCode::from(EXIT_ERROR);
    }
    if desired_state_schema::compose::is_override_file(&shown) {
        eprintln!(
            "agentctl convert: {shown} is an override: convert the compose file beside it ({}), which it is merged into",
            desired_state_schema::compose::FILE_NAMES.join(", ")
        );
        return ExitCode::from(EXIT_ERROR);
    }
    // The override beside it is merged in, as `docker compose config` does.
    let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let here = canonical.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let override_file = desired_state_schema::compose::OVERRIDE_NAMES.iter().find_map(|n| {
        let p = here.join(n);
        std::fs::read_to_string(&p).ok().map(|t| (p.display().to_string(), t))
    });
    let dotenv = std::fs::read_to_string(here.join(".env")).ok();
    // Paths in the documents are the native format's: relative to the repository's root (the
    // Git checkout around the file), so that the output pasted into a folder of the same
    // repository means the same files. Outside a checkout, relative to the file's folder.
    let checkout = here.ancestors().find(|d| d.join(".git").exists()).map(std::path::Path::to_path_buf);
    if checkout.is_none() {
        eprintln!(
            "agentctl convert: {shown} is not in a Git checkout: paths are relative to its folder (in a repository they are relative to its root)"
        );
    }
    let root = checkout.unwrap_or_else(|| here.clone()).display().to_string();
    let path = canonical.display().to_string();
    // The project is the file's folder, however the file was named (`compose.yaml`,
    // `../app/compose.yaml`, an absolute path).
    let folder = here.file_name().map(|n| n.to_string_lossy().into_owned());
    let home = driftless_agent::fsutil::home_dir();
    // `include`: the files it names (and those they include), read from the disk; a path
    // outside the file's folder is refused by the converter.
    let mut included: Vec<(String, String)> = Vec::new();
    let mut queue = desired_state_schema::compose::included_paths(&path, &text, &root);
    while let Some(p) = queue.pop() {
        if included.len() >= 64 || included.iter().any(|(q, _)| *q == p) {
            continue;
        }
        if let Ok(t) = std::fs::read_to_string(&p) {
            queue.extend(desired_state_schema::compose::included_paths(&p, &t, &root));
            // The `.env` of its folder: its variables, when the include names no env_file.
            let env = std::path::Path::new(&p).with_file_name(".env");
            if let Ok(e) = std::fs::read_to_string(&env) {
                let env = env.display().to_string();
                if !included.iter().any(|(q, _)| *q == env) {
                    included.push((env, e));
                }
            }
            included.push((p, t));
        }
    }
    let lookup = |p: &str| match included.iter().find(|(q, _)| q == p) {
        Some((_, t)) => Some(t.clone()),
        None => driftless_agent::fsutil::read_settings_file(p), // a label_file, an include's env_file
    };
    let ctx = desired_state_schema::compose::Context {
        profiles,
        root: &root,
        root_name: folder.as_deref(),
        home: home.as_deref(),
        files: Some(desired_state_schema::compose::Files(&lookup)),
        included: None,
    };
    let mut project = vec![(path.as_str(), text.as_str())];
    if let Some((p, t)) = &override_file {
        eprintln!("agentctl convert: merging {p} into {path}, as docker compose does");
        project.push((p.as_str(), t.as_str()));
    }
    let c = desired_state_schema::compose::convert_files(&project, dotenv.as_deref(), &ctx);
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    // What `validate` would say of the documents too (types, checks across services): a file
    // that validate refuses is never printed as if it were good.
    let mut errors: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
    if errors.is_empty() {
        let mut files = vec![desired_state_schema::SourceFile { path: path.clone(), text: text.clone() }];
        if let Some((p, t)) = &override_file {
            files.push(desired_state_schema::SourceFile { path: p.clone(), text: t.clone() });
        }
        if let Some(env) = &dotenv {
            files.push(desired_state_schema::SourceFile {
                path: here.join(".env").display().to_string(),
                text: env.clone(),
            });
        }
        for (p, t) in &included {
            files.push(desired_state_schema::SourceFile { path: p.clone(), text: t.clone() });
        }
        let opts = desired_state_schema::ParseOptions {
            compose_profiles: profiles.to_vec(),
            root: root.clone(),
            root_name: folder.clone(),
            home: home.clone(),
            read_other: Some(desired_state_schema::ReadOther(std::sync::Arc::new(
                driftless_agent::fsutil::read_settings_file,
            ))),
        };
        if let Err(invalid) = desired_state_schema::parse_with(&files, &opts).build(None) {
            errors.extend(invalid.diagnostics.iter().map(ToString::to_string));
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("agentctl convert: {path}: {} error(s); nothing printed", errors.len());
        return ExitCode::from(EXIT_ERROR);
    }
    let mut out = std::io::stdout().lock();
    for g in &c.docs {
        let _ = write!(out, "---\n{}", desired_state_schema::emit::to_yaml(&g.doc));
    }
    ExitCode::SUCCESS
}

fn cmd_validate(cmd: Cmd) -> ExitCode {
    let Cmd::Validate { dir, environment, host, render, profiles, identities, json, strict } = cmd else {
        return ExitCode::from(EXIT_ERROR);
    };
    let (profiles, identities) = (profiles.as_slice(), identities.as_slice());
    let ids = if identities.is_empty() {
        None
    } else {
        match driftless_agent::secrets::Secrets::load(identities) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("agentctl validate: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    };
    let report = match validate(&dir, environment.as_deref(), host.as_deref(), render, profiles, ids.as_ref(), strict) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentctl validate: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => {
                let _ = writeln!(out, "{s}");
            }
            Err(e) => {
                eprintln!("agentctl validate: cannot encode the report: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    } else {
        if let Some(resources) = &report.resources {
            for r in resources {
                match serde_yaml_ng::to_value(r) {
                    Ok(mut v) => {
                        // A oneshot runs to completion and is never restarted, whatever the
                        // default restart policy says (the engine is given `no`).
                        if let Some(spec) = v.get_mut("spec").and_then(serde_yaml_ng::Value::as_mapping_mut) {
                            if spec.get("oneshot").and_then(serde_yaml_ng::Value::as_bool) == Some(true) {
                                spec.insert("restart".into(), "no".into());
                            }
                        }
                        let _ = write!(out, "---\n{}", desired_state_schema::emit::to_yaml(&v));
                    }
                    Err(e) => {
                        eprintln!("agentctl validate: cannot render {}: {e}", r.name());
                        return ExitCode::from(EXIT_ERROR);
                    }
                }
            }
        }
        for line in report.skipped_lines() {
            eprintln!("{line}");
        }
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        if render && environment.is_none() && !report.environments.is_empty() {
            eprintln!(
                "rendered the base documents, no environment overlay (-e ENV for one of: {})",
                report.environments.join(", ")
            );
        }
        for line in report.error_lines() {
            eprintln!("{line}");
        }
        eprintln!("{}", report.summary());
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ERROR)
    }
}

/// An RFC 3339 time as people read it in a table: `3m ago`, `in 40s` (the time itself in
/// `--json`); as given when it does not parse.
fn age(rfc3339: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339(rfc3339) else { return rfc3339.to_string() };
    let now = std::time::SystemTime::now();
    let (d, ago) = match now.duration_since(t) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    let secs = d.as_secs();
    let n = match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    if ago {
        format!("{n} ago")
    } else {
        format!("in {n}")
    }
}
