//! The command lines of `agentd` and `agentctl` (clap definitions only). They live in the
//! library so that the shell completions and man pages in `dist/` can be generated from them
//! (and a test can check that the committed files are current); the binaries parse with them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG;

#[derive(Parser)]
#[command(
    name = "agentd",
    version,
    about = "The Driftless GitOps agent: keeps this host on the desired state in Git",
    after_help = "Signals: SIGHUP re-reads the config (a bad one is refused, the old one stays); \
                  SIGTERM/SIGINT stop between steps; SIGUSR1 syncs now.\n\
                  Exit status: 0 ok; 1 invalid config, or (--once) the revision was rolled back, \
                  failed or is invalid; 64 usage error.\n\
                  Environment: DRIFTLESS_LOG (as --log-level), NO_COLOR (no colour in logs).\n\
                  Docs: /usr/share/doc/driftless/configuration.md and operations.md, or docs/ in the source."
)]
pub struct AgentdCli {
    /// The agent config.
    #[arg(long, short = 'c', value_name = "PATH", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Validate the config and exit: 0 valid, 1 invalid (each problem as file:line:column: key: what is wrong).
    #[arg(long)]
    pub check: bool,
    /// Run one reconcile and exit (cron on shared hosting): 0 synced or nothing to do,
    /// 1 the revision was rolled back, failed or is invalid.
    #[arg(long)]
    pub once: bool,
    /// Follow the source and validate each new revision, but connect no runtime and apply
    /// nothing: `status` shows the revision the agent would apply (a canary for a new source
    /// or credentials; fleet benchmarks). Give it a state_dir of its own.
    #[arg(long)]
    pub dry_run: bool,
    /// Log format: `text` for people, `json` for machines; `auto` is JSON under journald
    /// (JOURNAL_STREAM set), text otherwise.
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = ["auto", "text", "json"])]
    pub log_format: String,
    /// How much to log: error, warn, info, debug, trace, or target=level pairs
    /// (`info,driftless_agent::runtime=debug`). Before DRIFTLESS_LOG and the config's
    /// log_level; default info.
    #[arg(long, value_name = "LEVEL", env = "DRIFTLESS_LOG")]
    pub log_level: Option<String>,
}

#[derive(Parser)]
#[command(
    name = "agentctl",
    version,
    about = "Control and inspect the Driftless agent on this host",
    after_help = "Exit status: 0 ok; 1 error, invalid, or the revision was rolled back or failed; \
                  2 changes pending (diff); 3 no agent reachable on the control socket; \
                  4 timed out (wait, sync --wait --timeout); 64 usage error.\n\
                  Environment: DRIFTLESS_SOCKET (as --socket), DRIFTLESS_CONFIG (as --config).\n\
                  Docs: /usr/share/doc/driftless/cli.md and operations.md (runbook and troubleshooting), or docs/ in the source."
)]
pub struct AgentctlCli {
    /// The agent's control socket.
    #[arg(long, global = true, value_name = "PATH", env = "DRIFTLESS_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Read `control_socket` from this agent config.
    #[arg(long, global = true, value_name = "PATH", env = "DRIFTLESS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AgentctlCommand,
}

#[derive(Subcommand)]
pub enum AgentctlCommand {
    /// What runs, from which revision, whether it is healthy, and what the agent does next.
    Status {
        /// One JSON object (documented keys; stable).
        #[arg(long)]
        json: bool,
    },
    /// The plan for the desired revision, applying nothing. Exit 0: nothing to do; 2: changes.
    Diff {
        #[arg(long)]
        json: bool,
    },
    /// Reconcile now.
    Sync {
        /// Stream progress and wait; exit 1 if the revision was rolled back or failed.
        #[arg(long)]
        wait: bool,
        /// Try a revision again that failed before.
        #[arg(long)]
        retry: bool,
        /// Apply now, past the rollout gates (rollout.after) until that revision is applied
        /// or superseded; the history says so.
        #[arg(long)]
        ignore_rollout: bool,
        /// With --wait: give up waiting after this long (e.g. 10m) and exit 4; the sync goes on.
        #[arg(long, value_name = "DURATION", requires = "wait")]
        timeout: Option<desired_state_schema::Duration>,
    },
    /// Block until the agent is where a script needs it: exit 0 there, 4 at the timeout, 1
    /// when the revision waited for failed or was rolled back.
    Wait {
        /// `synced` (the desired revision runs and passed its gate), `healthy` (synced, every
        /// resource healthy), or `revision=REV` (REV, a commit id or its prefix, applied).
        #[arg(long = "for", value_name = "CONDITION", default_value = "synced")]
        condition: String,
        /// How long to wait (default 10m).
        #[arg(long, value_name = "DURATION", default_value = "10m")]
        timeout: desired_state_schema::Duration,
    },
    /// This agentctl's version and the running agent's (version, commit, started).
    Version {
        #[arg(long)]
        json: bool,
    },
    /// Past deployments, newest first.
    History {
        /// How many entries.
        #[arg(short = 'n', default_value_t = 20)]
        limit: usize,
        /// Print the newest entry of this revision (a commit id or its prefix) in full:
        /// changes, message, and per failing resource its state, exit code and last log lines.
        #[arg(long, value_name = "REV")]
        show: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Apply the last good (or the named) revision and hold the host there until `resume`.
    Rollback {
        /// A commit id (or a ref the agent's mirror knows); default: the last good revision.
        revision: Option<String>,
        /// Also put every snapshotted volume back as it was while that revision ran (its
        /// newest `before` snapshot taken then); the current data is snapshotted first.
        #[arg(long)]
        restore_data: bool,
    },
    /// List the data snapshots on this host, newest first: id, volume, kind (`before` or
    /// `failed-attempt`), the revision, age and size.
    Snapshots {
        /// Only this volume's (the engine's name, or `<app>.backup` for a PassengerApp's
        /// `backup:` files, as `agentctl snapshots` shows it).
        volume: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Restore one snapshot by hand: the volume's current data is snapshotted first, the
    /// containers that mount it are stopped, the data put back, and they start again on it.
    Restore {
        /// A snapshot id, as `agentctl snapshots` lists it.
        id: String,
    },
    /// Stop automatic reconciliation (maintenance).
    Pause,
    /// Restart automatic reconciliation (also lifts a rollback pin).
    Resume,
    /// Check a desired-state folder (or one file of it) offline, as CI would before merging;
    /// no agent needed.
    ///
    /// Checks the base documents and every environment they declare overlays for. Exit
    /// status: 0 valid, 1 invalid (every error is listed as file:line:column: message).
    Validate {
        /// The folder holding the desired-state *.yaml files, or one such file (read with the
        /// compose `.env` beside it).
        #[arg(default_value = ".", value_name = "DIR|FILE")]
        dir: PathBuf,
        /// Check only this environment's effective state.
        #[arg(long, short = 'e', value_name = "NAME")]
        environment: Option<String>,
        /// Check only this host's effective state (its `hosts:` overlays merged after the
        /// environment's); without it, every declared host's overlays are checked too.
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// Print the effective desired state (overlays applied, defaults filled in).
        #[arg(long)]
        render: bool,
        /// Enable a compose profile (repeatable), as the agent config's compose_profiles.
        #[arg(long = "profile", value_name = "PROFILE")]
        profiles: Vec<String>,
        /// Check that every .age file the state names decrypts with this identity (repeatable:
        /// age identity files or SSH private keys, as secrets.identities).
        #[arg(long = "identities", value_name = "FILE")]
        identities: Vec<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Refuse what is otherwise a warning: an environment or host name (-e, --host) that
        /// no document mentions. What CI runs.
        #[arg(long)]
        strict: bool,
    },
    /// Every host's last report from Git (report.url): phase, revisions, health, age; no
    /// agent needed. Exit 1 when a host is failed, rolled back, stale or unverified.
    Fleet {
        /// The report repository (default: report.url of the agent config).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// An allowed_signers file whose principals are host names (default: rollout.signers).
        #[arg(long, value_name = "FILE")]
        signers: Option<PathBuf>,
        /// Only hosts of this environment.
        #[arg(long, short = 'e', value_name = "NAME")]
        environment: Option<String>,
        /// Where this revision (a commit id or a prefix of one) stands on each host.
        #[arg(long, value_name = "REV")]
        revision: Option<String>,
        /// Print a JSON list of rows instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the driftless/v1 documents a compose file means (with the .env beside it).
    Convert {
        /// A compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml.
        file: PathBuf,
        /// Enable a compose profile (repeatable).
        #[arg(long = "profile", value_name = "PROFILE")]
        profiles: Vec<String>,
    },
}
