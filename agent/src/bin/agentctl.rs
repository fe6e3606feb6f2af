//! `agentctl`: the operator's command line. Parses arguments, calls the library, prints, and
//! maps outcomes to the documented exit codes (0 ok, 1 error or invalid, 2 changes pending,
//! 3 agent not reachable).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use driftless_agent::validate::validate;

#[derive(Parser)]
#[command(name = "agentctl", version, about = "Control and inspect the Driftless agent on this host")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a desired-state folder offline, as CI would before merging; no agent needed.
    ///
    /// Checks the base documents and every environment they declare overlays for. Exit
    /// status: 0 valid, 1 invalid (every error is listed as file:line:column: message).
    Validate {
        /// The folder holding the desired-state *.yaml files.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Check only this environment's effective state.
        #[arg(long, short = 'e', value_name = "NAME")]
        environment: Option<String>,
        /// Print the effective desired state (overlays applied, defaults filled in).
        #[arg(long)]
        render: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { dir, environment, render, json } => cmd_validate(dir, environment, render, json),
    }
}

fn cmd_validate(dir: PathBuf, environment: Option<String>, render: bool, json: bool) -> ExitCode {
    let report = match validate(&dir, environment.as_deref(), render) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentctl validate: {e}");
            return ExitCode::from(1);
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
                return ExitCode::from(1);
            }
        }
    } else {
        if let Some(resources) = &report.resources {
            for r in resources {
                match serde_yaml_ng::to_string(r) {
                    Ok(s) => {
                        let _ = write!(out, "---\n{s}");
                    }
                    Err(e) => {
                        eprintln!("agentctl validate: cannot render {}: {e}", r.name());
                        return ExitCode::from(1);
                    }
                }
            }
        }
        for line in report.error_lines() {
            eprintln!("{line}");
        }
        eprintln!("{}", report.summary());
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
