//! `agentd`: the Driftless daemon. This edge parses arguments, loads the config, connects the
//! runtimes, wires the event sources (timer, control socket, signals) to the reconciler, and
//! maps outcomes to exit codes; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use driftless_agent::cli::AgentdCli as Cli;
use driftless_agent::config::LoadedConfig;
use driftless_agent::control;
use driftless_agent::event::{Command, Event};
use driftless_agent::listen::{Shutdown, ShutdownTrigger};
use driftless_agent::reconciler::{self, Reconciler, Trigger};
use driftless_agent::runtime::docker::DockerRuntime;
use driftless_agent::runtime::nixos::NixosRuntime;
use driftless_agent::runtime::passenger::PassengerRuntime;
use driftless_agent::runtime::Drivers;
use driftless_agent::state::Outcome;
use tokio::sync::mpsc;

fn main() -> ExitCode {
    driftless_agent::memory::limit_arenas(); // before any other thread starts
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let loaded = match LoadedConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("agentd: refusing to start: the config {} is invalid", cli.config.display());
            return ExitCode::from(1);
        }
    };
    if cli.check {
        let c = &loaded.config;
        println!(
            "{}: valid (host {}, environment {}, source {} {}, path {})",
            cli.config.display(),
            loaded.host,
            c.environment.as_deref().unwrap_or("(none)"),
            c.source.url,
            loaded.selector,
            c.source.path
        );
        return ExitCode::SUCCESS;
    }
    {
        use std::io::IsTerminal;
        let json = match cli.log_format.as_str() {
            "json" => true,
            "text" => false,
            _ => std::env::var_os("JOURNAL_STREAM").is_some(),
        };
        use tracing_subscriber::prelude::*;
        // --log-level (or DRIFTLESS_LOG), else the config's log_level, else info.
        let wanted = cli.log_level.clone().or_else(|| loaded.config.log_level.clone());
        let filter: tracing_subscriber::filter::Targets = match wanted.as_deref().unwrap_or("info").parse() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("agentd: --log-level/DRIFTLESS_LOG {wanted:?} is not a log level ({e}): write error, warn, info, debug or trace, or target=level pairs separated by commas");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let fmt = tracing_subscriber::fmt()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE); // `filter` decides
        if json {
            fmt.json().with_current_span(true).with_span_list(false).finish().with(filter).init();
        } else {
            // Colour only on a terminal, and never with NO_COLOR set (no-color.org).
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            fmt.with_ansi(ansi).finish().with(filter).init();
        }
    }
    // One thread runs every task (the reconciler, the control socket, the listeners): an
    // idle agent then has no cross-thread wake-ups. Blocking work (Git, file exports, YAML
    // parsing) goes to the blocking pool, whose threads outlive the poll interval so that
    // an idle poll does not start a thread each time (tokio's default lets them go after
    // 10 s). The interval is the one at start; a SIGHUP that changes it costs at most a
    // thread start per poll.
    let keep_alive = loaded
        .config
        .source
        .interval
        .as_std()
        .mul_f64(1.5)
        .clamp(std::time::Duration::from_secs(10), std::time::Duration::from_secs(3600));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().thread_keep_alive(keep_alive).build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli, loaded))
}

/// One driver per kind. None of them talks to its backend here: an engine that is down now
/// is a fault that clears by itself, never a missing runtime.
fn drivers(cfg: &LoadedConfig, secrets: std::sync::Arc<driftless_agent::secrets::Secrets>) -> Drivers {
    let mut d = Drivers::new();
    match DockerRuntime::new(cfg, secrets.clone()) {
        Ok(docker) => d = d.with(Box::new(docker)),
        Err(e) => tracing::warn!("{e}; Container resources cannot be applied (check DOCKER_HOST)"),
    }
    // Passenger needs no engine: releases are files, restarts go through passenger-config.
    d = d.with(Box::new(PassengerRuntime::new(&cfg.config.state_dir, secrets)));
    // NixOS needs nix on the PATH only when a NixosSystem is applied.
    d.with(Box::new(NixosRuntime::new(&cfg.config.state_dir, &cfg.host)))
}

async fn run(cli: Cli, loaded: LoadedConfig) -> ExitCode {
    let socket = loaded.config.control_socket.clone();
    // The identities are read once, at start (a SIGHUP does not re-read them).
    let secrets = match driftless_agent::secrets::Secrets::load(&loaded.config.secrets.identities) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            eprintln!("agentd: {e}");
            return ExitCode::from(1);
        }
    };
    let drivers = if cli.dry_run { Drivers::new() } else { drivers(&loaded, secrets) };
    // Takes the lock on state_dir: a second agent on the same state stops here, naming the first.
    let (mut reconciler, status_rx) = match Reconciler::new(loaded, drivers) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentd: {e}");
            return ExitCode::from(1);
        }
    };
    reconciler.set_dry_run(cli.dry_run);

    if cli.once {
        let r = reconciler.reconcile(Trigger::Start, false).await;
        let status = reconciler.status();
        println!(
            "{} {}: {}",
            status.phase,
            status.applied_revision.as_deref().map(reconciler::short).unwrap_or("(none)"),
            r.message.as_deref().unwrap_or("nothing to do")
        );
        return match r.outcome {
            Some(Outcome::RolledBack) | Some(Outcome::Failed) | Some(Outcome::Invalid) => ExitCode::from(1),
            _ if r.fault => ExitCode::from(1),
            _ => ExitCode::SUCCESS,
        };
    }

    let listener = match control::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("agentd: {e}");
            return ExitCode::from(1);
        }
    };
    let (trigger, shutdown) = Shutdown::new();
    let (tx, rx) = mpsc::channel::<Event>(64);
    // The engine's events: drift is seen in about a second, not at the next poll.
    let _feeds = reconciler.subscribe(tx.clone(), &shutdown);
    // `report:`: this host's signed report, pushed beside the reconciler (never in its way).
    tokio::spawn(driftless_agent::fleet::reporter::run(
        reconciler.config().clone(),
        status_rx.clone(),
        tx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(control::serve(listener, tx.clone(), status_rx, reconciler.progress(), shutdown.clone()));
    reconciler.set_shutdown(shutdown.clone());
    spawn_signals(tx.clone(), cli.config.clone(), trigger);
    // Kept alive for the life of the daemon.
    let _watcher = start_watch(reconciler.config(), tx.clone());
    if let Err(e) = start_webhook(reconciler.config(), tx.clone(), shutdown.clone()).await {
        eprintln!("agentd: {e}");
        return ExitCode::from(1);
    }
    if let Some(m) = &reconciler.config().config.metrics {
        match tokio::net::TcpListener::bind(&m.listen).await {
            Ok(l) => {
                tracing::info!("metrics on http://{}/metrics", m.listen);
                tokio::spawn(driftless_agent::metrics::serve(l, reconciler.metrics(), shutdown.clone()));
            }
            Err(e) => {
                eprintln!("agentd: cannot listen on metrics.listen {}: {e}", m.listen);
                return ExitCode::from(1);
            }
        }
    }
    // Ready once the control socket answers, before the first apply: a first deploy (a NixOS
    // build, ten pulls) may take longer than any start timeout. The heartbeat feeds the
    // watchdog while the reconciler makes progress.
    driftless_agent::sdnotify::ready();
    driftless_agent::sdnotify::spawn_heartbeat();
    tracing::info!(
        "agentd started: host {}, source {} ({}), control socket {}",
        reconciler.config().host,
        reconciler.config().config.source.url,
        reconciler.config().selector,
        socket.display()
    );
    reconciler::run(reconciler, rx).await;
    let _ = std::fs::remove_file(&socket);
    ExitCode::SUCCESS
}

/// `webhook.listen`: a valid push delivery triggers a cycle at once.
async fn start_webhook(cfg: &LoadedConfig, tx: mpsc::Sender<Event>, shutdown: Shutdown) -> Result<(), String> {
    let Some(w) = &cfg.config.webhook else { return Ok(()) };
    let secret = std::fs::read_to_string(&w.secret_file)
        .map_err(|e| format!("cannot read webhook.secret_file {}: {e}", w.secret_file.display()))?;
    let secret = secret.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
    if secret.is_empty() {
        return Err(format!(
            "webhook.secret_file {} is empty: put a long random secret in it",
            w.secret_file.display()
        ));
    }
    let listener = tokio::net::TcpListener::bind(&w.listen)
        .await
        .map_err(|e| format!("cannot listen on webhook.listen {}: {e}", w.listen))?;
    tracing::info!("webhook listening on {}", w.listen);
    let on_push: std::sync::Arc<dyn Fn() + Send + Sync> = std::sync::Arc::new(move || {
        let _ = tx.try_send(Event::Webhook);
    });
    tokio::spawn(driftless_agent::webhook::serve(listener, secret, on_push, shutdown));
    Ok(())
}

/// `source.watch`: a ref change in the local repository triggers a cycle at once.
fn start_watch(cfg: &LoadedConfig, tx: mpsc::Sender<Event>) -> Option<notify::RecommendedWatcher> {
    let driftless_agent::config::RemoteKind::Local(path) = &cfg.remote else { return None };
    if !cfg.config.source.watch {
        return None;
    }
    match driftless_agent::source::watch::watch(path, move || {
        let _ = tx.try_send(Event::RefChanged);
    }) {
        Ok(w) => {
            tracing::info!("watching {} for ref changes", path.display());
            Some(w)
        }
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// Forward signals to the reconciler: SIGTERM/SIGINT stop between steps, SIGHUP reloads the
/// config (a bad one is refused and the old one stays), SIGUSR1 syncs now.
fn spawn_signals(tx: mpsc::Sender<Event>, config: PathBuf, shutdown: ShutdownTrigger) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = match signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM, SIGUSR1]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return;
        }
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let event = match sig {
                SIGTERM | SIGINT => {
                    // One signal for all: the listeners stop accepting, the reconciler stops
                    // between steps and its loop ends.
                    tracing::info!("stopping after the current step");
                    shutdown.trigger();
                    continue;
                }
                SIGHUP => match LoadedConfig::load(&config) {
                    Ok(c) => Event::Control(Command::Reload(Box::new(c))),
                    Err(e) => {
                        tracing::error!("SIGHUP: the new config is refused, the old one stays in force:\n{e}");
                        continue;
                    }
                },
                SIGUSR1 => Event::Tick,
                _ => continue,
            };
            if tx.blocking_send(event).is_err() {
                break;
            }
        }
    });
}

/// A usage error (an unknown flag, a missing argument): clap's words, exit 64 (EX_USAGE);
/// `--help` and `--version` exit 0.
fn usage(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_USAGE),
    }
}

/// sysexits.h's EX_USAGE.
const EXIT_USAGE: u8 = 64;
