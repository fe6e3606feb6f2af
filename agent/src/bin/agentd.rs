//! `agentd`: the Driftless daemon. This edge parses arguments, loads the config and maps
//! failures to exit codes; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use driftless_agent::config::{LoadedConfig, DEFAULT_CONFIG};

#[derive(Parser)]
#[command(name = "agentd", version, about = "The Driftless GitOps agent: keeps this host on the desired state in Git")]
struct Cli {
    /// The agent config.
    #[arg(long, short = 'c', value_name = "PATH", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Validate the config and exit: 0 valid, 1 invalid (each problem as file:line:column: key: what is wrong).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    eprintln!("agentd: the reconciler is not part of this build yet; only --check works");
    ExitCode::from(1)
}
