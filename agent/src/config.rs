//! The agent's own config (`/etc/driftless/agent.yaml`): typed, defaulted and validated, with
//! every refusal naming the file, line, column and key. `Config::load` is what `agentd`
//! (at start, on SIGHUP and for `--check`) and `agentctl` (for `control_socket`) call.
//!
//! Past 1,000 lines because the config is one format: its types, defaults and every
//! refusal sit together so that docs/configuration.md maps onto one file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use desired_state_schema::checks::repo_path;
use desired_state_schema::{diagnostic_at, parse_single, Diagnostic, DocMap, Duration, YamlPath};
use serde::{Deserialize, Serialize};

use crate::semver_range::Range;

pub const DEFAULT_CONFIG: &str = "/etc/driftless/agent.yaml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/driftless";
pub const DEFAULT_SOCKET: &str = "/run/driftless/agent.sock";

/// The agent config, as written (defaults filled in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Default: the machine's hostname.
    #[serde(default)]
    pub host: Option<String>,
    /// Selects `environments.<name>` overlays in the desired state.
    #[serde(default)]
    pub environment: Option<String>,
    pub source: SourceConfig,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_socket")]
    pub control_socket: PathBuf,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    #[serde(default)]
    pub health: HealthDefaults,
    #[serde(default)]
    pub notify: Vec<NotifyTarget>,
    /// What to do when a managed resource was changed by hand.
    #[serde(default)]
    pub drift: DriftMode,
    /// How many deployments `agentctl history` keeps.
    #[serde(default = "default_history_limit")]
    pub history_limit: usize,
    /// How much agentd logs: a level (`error`, `warn`, `info`, `debug`, `trace`) or tracing's
    /// `target=level` list (`info,driftless_agent::runtime=debug`). `agentd --log-level` and
    /// `DRIFTLESS_LOG` go before it; default `info`. Read at start.
    #[serde(default)]
    pub log_level: Option<String>,
    /// Registry credentials that add to or override Docker's own (`config.json`).
    #[serde(default)]
    pub registries: Vec<RegistryConfig>,
    /// Remove images no longer used by the applied or the last good revision.
    #[serde(default = "default_true")]
    pub prune_images: bool,
    /// Compose profiles to enable: services with `profiles:` run only when one is listed.
    #[serde(default)]
    pub compose_profiles: Vec<String>,
    /// How `.age` files of the repository are decrypted.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// The host's reverse proxy, for Containers with `proxy` (start-first replaces).
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Push a signed report of this host's state to a Git repository (PRODUCT.md "Fleets").
    #[serde(default)]
    pub report: Option<ReportConfig>,
    /// How this host reads other hosts' reports.
    #[serde(default)]
    pub rollout: Option<RolloutConfig>,
    /// Where data snapshots are kept (PRODUCT.md "Data: snapshots and restore").
    #[serde(default)]
    pub snapshots: SnapshotsConfig,
}

/// `snapshots:` of the agent config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsConfig {
    /// The folder snapshots live in (absolute); default `state_dir/snapshots`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

impl Config {
    /// Where snapshots live: `snapshots.dir`, else `state_dir/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.snapshots.dir.clone().unwrap_or_else(|| self.state_dir.join("snapshots"))
    }
}

/// `report:` of the agent config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The repository the report is pushed to (`refs/driftless/hosts/<host>`): the
    /// desired-state repository or one of its own. Same forms as `source.url`.
    pub url: String,
    /// Credentials for the push (as `source.auth`).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// The SSH private key each report commit is signed with (e.g. the host key).
    pub sign: PathBuf,
    /// How often the report is pushed besides after every outcome.
    #[serde(default = "default_report_interval")]
    pub interval: Duration,
}

fn default_report_interval() -> Duration {
    Duration::from_secs(300)
}

/// `rollout:` of the agent config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// An `allowed_signers` file whose principals are host names: a report counts only when
    /// it verifies against it, signed by the host its ref names (also `agentctl fleet`'s).
    #[serde(default)]
    pub signers: Option<PathBuf>,
    /// Apply a new revision only once other hosts ran it healthy (read from the reports at
    /// `report.url`).
    #[serde(default)]
    pub after: Vec<AfterRule>,
    /// Apply new revisions only inside one of these windows (none: any time).
    #[serde(default)]
    pub windows: Vec<WindowConfig>,
}

/// One deploy window of `rollout.windows`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// The days it opens on (none: every day), in `tz`.
    #[serde(default)]
    pub days: Vec<Day>,
    /// `HH:MM-HH:MM` in `tz` (`22:00-02:00` runs past midnight; default all day).
    #[serde(default = "all_day")]
    pub hours: String,
    /// An IANA time zone (`Europe/Berlin`), read from the system's tzdata.
    #[serde(default = "utc")]
    pub tz: String,
}

fn all_day() -> String {
    "00:00-24:00".into()
}

fn utc() -> String {
    "UTC".into()
}

/// A day of the week, as `rollout.windows` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// `HH:MM-HH:MM` as minutes of the day (start, end); the error says what to write.
pub fn parse_hours(h: &str) -> Result<(u32, u32), String> {
    let bad = || {
        format!("hours {h:?} is not a range of the day: write HH:MM-HH:MM, e.g. \"09:00-16:00\" (24:00 is the end of the day)")
    };
    let (a, b) = h.split_once('-').ok_or_else(bad)?;
    let minutes = |t: &str| -> Option<u32> {
        let (hh, mm) = t.trim().split_once(':')?;
        let (hh, mm): (u32, u32) = (hh.parse().ok()?, mm.parse().ok()?);
        (hh < 24 && mm < 60 || hh == 24 && mm == 0).then_some(hh * 60 + mm)
    };
    let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
    if start == end {
        return Err(format!("hours {h:?} is empty: the end must differ from the start"));
    }
    Ok((start, end))
}

/// One entry of `rollout.after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterRule {
    /// Hosts whose reports say this environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Or these hosts by name.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// How long each of them must have run the revision healthy.
    #[serde(default)]
    pub healthy_for: Duration,
    /// How many of them.
    #[serde(default = "default_min")]
    pub min: usize,
}

fn default_min() -> usize {
    1
}

/// `proxy:` of the agent config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Caddy's admin endpoint, as Caddy's own `admin.listen` writes it:
    /// `unix//run/caddy/admin.sock` or `localhost:2019`.
    pub caddy_admin: String,
}

/// A repository URL `report.url` may name (the forms `source.url` takes).
pub fn report_url(u: &str) -> Result<(), String> {
    let hosted = ["ssh://", "https://", "http://", "git://"].iter().find_map(|p| u.strip_prefix(p));
    let ok = match hosted {
        Some(rest) => has_host(rest),
        None => u.starts_with("file:///") || u.starts_with('/') || is_scp_like(u),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{u:?} is not a repository URL: write ssh://…, git@host:path, https://…, file:///… or an absolute path"
        ))
    }
}

/// Where Caddy's admin API answers (`proxy.caddy_admin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminEndpoint {
    /// A unix socket (`unix//path`): requests carry an empty `Host`, as Caddy requires there.
    Unix(PathBuf),
    /// `host:port` on the loopback (`localhost:2019`, `127.0.0.1:2019`, `[::1]:2019`).
    Tcp(String),
}

impl AdminEndpoint {
    /// Parse `caddy_admin`; the error says what to write.
    pub fn parse(s: &str) -> Result<AdminEndpoint, String> {
        let what = "write Caddy's admin.listen address: unix//run/caddy/admin.sock (a socket) or localhost:2019";
        if let Some(path) = s.strip_prefix("unix/") {
            return if path.starts_with('/') && path.len() > 1 {
                Ok(AdminEndpoint::Unix(PathBuf::from(path)))
            } else {
                Err(format!("{s:?} names no absolute socket path: {what}"))
            };
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("{s:?} is not an admin endpoint: {what}"));
        };
        let ip = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let local = ip == "localhost" || ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
        if !local || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "{s:?} is not an admin endpoint on this host (Caddy's admin API must not leave it): {what}"
            ));
        }
        Ok(AdminEndpoint::Tcp(s.to_string()))
    }
}

/// `secrets:` of the agent config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// age identity files or SSH private keys (e.g. /etc/ssh/ssh_host_ed25519_key).
    #[serde(default)]
    pub identities: Vec<PathBuf>,
}

fn default_true() -> bool {
    true
}

/// Credentials for one registry host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// As in image references: `ghcr.io`, `registry.example.com:5000` (`docker.io` for Docker Hub).
    pub host: String,
    pub username: String,
    /// A file holding the password or token (its first line).
    pub password_file: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `ssh://…`, `user@host:path`, `https://…`, `http://…`, `git://…`, `file://…` or an absolute path.
    pub url: String,
    #[serde(rename = "ref")]
    pub reference: RefConfig,
    /// Folder of the repository holding this host's desired state.
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Local repositories: react to ref changes at once (inotify).
    #[serde(default)]
    pub watch: bool,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
}

/// `source.ref` as written: exactly one key must be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The ref selector, once validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefSelector {
    Branch(String),
    Tag(String),
    Semver(Range),
    Commit(String),
}

impl std::fmt::Display for RefSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefSelector::Branch(b) => write!(f, "branch {b}"),
            RefSelector::Tag(t) => write!(f, "tag {t}"),
            RefSelector::Semver(r) => write!(f, "semver {r}"),
            RefSelector::Commit(c) => write!(f, "commit {c}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// User name for HTTPS basic auth with `token_file` (default: `git`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// SSH signatures (gpg.format=ssh): git's allowed_signers format.
    #[serde(default)]
    pub allowed_signers: Option<PathBuf>,
    /// OpenPGP signatures: armored public keys.
    #[serde(default)]
    pub openpgp_keys: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub listen: String,
    pub secret_file: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthDefaults {
    #[serde(default = "default_health_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_health_interval")]
    pub interval: Duration,
    /// How often the checks of what runs are run again after the gate (PRODUCT.md behaviour
    /// 6); `0s`: never.
    #[serde(default = "default_watch_interval")]
    pub watch_interval: Duration,
    /// Within this long after a revision was committed, a check of the watch after the gate
    /// that fails (`retries` in a row) fails the revision and reverts it as a failed gate
    /// would; `0s` (the default): off. Needs `watch_interval` above 0s.
    #[serde(default)]
    pub bake: Duration,
}

fn default_watch_interval() -> Duration {
    Duration::from_secs(30)
}

impl Default for HealthDefaults {
    fn default() -> Self {
        HealthDefaults {
            timeout: default_health_timeout(),
            interval: default_health_interval(),
            watch_interval: default_watch_interval(),
            bake: Duration::default(),
        }
    }
}

/// One receiver of notifications (`notify: [...]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// Where each event is POSTed.
    pub url: String,
    /// `json` (the agent's own payload, the default) or `slack` (a Slack-compatible incoming
    /// webhook: Slack, Mattermost, Rocket.Chat).
    #[serde(default)]
    pub format: NotifyFormat,
    /// Only these events (default: all of them).
    #[serde(default)]
    pub events: Option<Vec<NotifyEvent>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    #[default]
    Json,
    Slack,
}

/// What a notification is about (PRODUCT.md, "Observability").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// An apply of a new revision began.
    Started,
    Applied,
    RolledBack,
    /// A revision failed with nothing to roll back to (or the rollback failed too).
    Failed,
    Invalid,
    DriftRepaired,
    /// The Git source cannot be fetched (once per distinct fault).
    SourceFailed,
    /// It can again.
    SourceRecovered,
    /// A new revision waits for its rollout gates or a deploy window (once per revision).
    Waiting,
    /// A host this one waits on rolled the revision back or failed it: held here for good.
    Held,
    /// A check after the gate failed `retries` times in a row (once per unhealthy stretch).
    Degraded,
    /// Every check passes again.
    Recovered,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Started => "started",
            NotifyEvent::Applied => "applied",
            NotifyEvent::RolledBack => "rolled_back",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Invalid => "invalid",
            NotifyEvent::DriftRepaired => "drift_repaired",
            NotifyEvent::SourceFailed => "source_failed",
            NotifyEvent::SourceRecovered => "source_recovered",
            NotifyEvent::Waiting => "waiting",
            NotifyEvent::Held => "held",
            NotifyEvent::Degraded => "degraded",
            NotifyEvent::Recovered => "recovered",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    /// Put drifted resources back (the default).
    #[default]
    Repair,
    /// Only report drift.
    Report,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}
fn default_path() -> String {
    ".".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_health_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_history_limit() -> usize {
    100
}

/// The kind of remote `source.url` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteKind {
    /// A path on this machine (`/srv/state.git` or `file://…`).
    Local(PathBuf),
    Ssh,
    Https,
    Http,
    Git,
}

/// Why the config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the agent config: {source}; create it (see examples/) or pass --config PATH")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    #[error("{path}: the agent config is {size} bytes, over the limit of {limit} bytes; an agent config is a few hundred bytes: check that --config names the right file")]
    TooLarge { path: PathBuf, size: u64, limit: u64 },
}

/// An agent config larger than this is refused unread (it is a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Read a config file, refusing one over `MAX_CONFIG_BYTES` before reading it.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    let read = |e| ConfigError::Read { path: path.to_path_buf(), source: e };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge { path: path.to_path_buf(), size, limit: MAX_CONFIG_BYTES });
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(read)?, MAX_CONFIG_BYTES),
        &mut text,
    )
    .map_err(read)?;
    Ok(text)
}

/// A loaded, validated config and what validation derived from it.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub config: Config,
    pub host: String,
    pub selector: RefSelector,
    pub remote: RemoteKind,
}

impl LoadedConfig {
    /// The keys that differ between this config (in force) and `new` and take effect only
    /// when `agentd` starts: they are read into the drivers, the listeners or the lock at
    /// start. A SIGHUP that changes any of them is refused whole, naming them; every other
    /// key (`source`, `environment`, `health`, `notify`, `drift`, `history_limit`,
    /// `compose_profiles`, `rollout`) takes effect on SIGHUP. docs/configuration.md, cli.md
    /// and operations.md list these keys; tests/docs.rs holds them to this list.
    pub fn start_only_changes(&self, new: &LoadedConfig) -> Vec<&'static str> {
        let (a, b) = (&self.config, &new.config);
        [
            ("host", self.host != new.host),
            ("state_dir", a.state_dir != b.state_dir),
            ("control_socket", a.control_socket != b.control_socket),
            ("webhook", a.webhook != b.webhook),
            ("metrics", a.metrics != b.metrics),
            ("registries", a.registries != b.registries),
            ("prune_images", a.prune_images != b.prune_images),
            ("secrets", a.secrets != b.secrets),
            ("proxy", a.proxy != b.proxy),
            ("report", a.report != b.report),
            ("snapshots", a.snapshots != b.snapshots),
            ("log_level", a.log_level != b.log_level),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }

    /// Read and validate `path`. Every problem is reported, not only the first.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = read_config(path)?;
        Self::from_text(path, &text)
    }

    pub fn from_text(path: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
        let file = path.display().to_string();
        let (config, map): (Config, DocMap) = parse_single(&file, text).map_err(|d| ConfigError::Invalid(vec![d]))?;
        let mut v = Validator { file: &file, map: &map, diags: Vec::new() };
        let host = match &config.host {
            Some(h) => h.clone(),
            None => system_hostname(),
        };
        v.config(&config, &host);
        let selector = v.selector(&config.source.reference);
        let remote = v.remote(&config.source);
        match (selector, remote) {
            (Some(selector), Some(remote)) if v.diags.is_empty() => {
                Ok(LoadedConfig { path: path.to_path_buf(), config, host, selector, remote })
            }
            _ => {
                v.diags.sort();
                Err(ConfigError::Invalid(v.diags))
            }
        }
    }
}

/// `control_socket` of a config file, read leniently: `agentctl --config` must reach the agent
/// even while the file holds an edit the agent refused (that is when an operator asks).
pub fn control_socket_of(path: &Path) -> Result<PathBuf, ConfigError> {
    let text = read_config(path)?;
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or(serde_yaml_ng::Value::Null);
    Ok(value
        .get("control_socket")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)))
}

/// The machine's hostname, as `hostname` prints it.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

struct Validator<'a> {
    file: &'a str,
    map: &'a DocMap,
    diags: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn err(&mut self, keys: &[&str], msg: impl Into<String>) {
        let d = diagnostic_at(self.file, self.map, &YamlPath::of(keys), &msg.into());
        self.diags.push(d);
    }

    /// Every cross-key rule of the agent config, key by key in the file's documented order
    /// (docs/configuration.md), so a reader checks one key's rules by finding it once.
    fn config(&mut self, c: &Config, host: &str) {
        if desired_state_schema::checks::host_name(host).is_err() {
            self.err(&["host"], format!("host {host:?} is not a host name: write e.g. web-1"));
        }
        if let Some(env) = &c.environment {
            if env.is_empty() || env.chars().any(|ch| ch.is_whitespace()) {
                self.err(&["environment"], format!("environment {env:?} must be a non-empty word such as staging"));
            }
        }
        if let Err(why) = repo_path(&c.source.path) {
            self.err(&["source", "path"], format!("path {:?} {why}", c.source.path));
        }
        if c.source.interval.as_std() < std::time::Duration::from_secs(1) {
            self.err(&["source", "interval"], "interval must be at least 1s");
        }
        let snapshots_dir = c.snapshots_dir();
        for (keys, p) in [
            (&["state_dir"][..], &c.state_dir),
            (&["control_socket"][..], &c.control_socket),
            (&["snapshots", "dir"][..], &snapshots_dir),
        ] {
            if !p.is_absolute() {
                self.err(keys, format!("{} must be an absolute path", p.display()));
            }
        }
        if let Some(a) = &c.source.auth {
            for (key, p) in [("ssh_key", &a.ssh_key), ("known_hosts", &a.known_hosts), ("token_file", &a.token_file)] {
                if let Some(p) = p {
                    self.readable_file(&["source", "auth", key], p);
                }
            }
        }
        if let Some(vc) = &c.source.verify {
            if let Some(p) = &vc.allowed_signers {
                self.readable_file(&["source", "verify", "allowed_signers"], p);
            }
            for (i, p) in vc.openpgp_keys.iter().enumerate() {
                self.readable_file_at(&YamlPath::of(&["source", "verify", "openpgp_keys"]).index(i), p);
            }
            if vc.allowed_signers.is_none() && vc.openpgp_keys.is_empty() {
                self.err(
                    &["source", "verify"],
                    "source.verify trusts nobody: give allowed_signers (SSH) and/or openpgp_keys (OpenPGP)",
                );
            }
        }
        for (i, p) in c.secrets.identities.iter().enumerate() {
            self.readable_file_at(&YamlPath::of(&["secrets", "identities"]).index(i), p);
        }
        for (i, r) in c.registries.iter().enumerate() {
            let at = YamlPath::of(&["registries"]).index(i);
            if r.host.is_empty() || r.host.contains('/') || r.host.contains("://") {
                let d = diagnostic_at(self.file, self.map, &at.key("host"), &format!("registry host {:?} is not a host: write it as in image references, e.g. ghcr.io or 127.0.0.1:5000", r.host));
                self.diags.push(d);
            }
            self.readable_file_at(&at.key("password_file"), &r.password_file);
        }
        if let Some(w) = &c.webhook {
            if w.listen.parse::<SocketAddr>().is_err() {
                self.err(
                    &["webhook", "listen"],
                    format!("{:?} is not an address to listen on: write IP:PORT, e.g. 127.0.0.1:9180", w.listen),
                );
            }
            self.readable_file(&["webhook", "secret_file"], &w.secret_file);
        }
        if let Some(m) = &c.metrics {
            if m.listen.parse::<SocketAddr>().is_err() {
                self.err(
                    &["metrics", "listen"],
                    format!("{:?} is not an address to listen on: write IP:PORT, e.g. 127.0.0.1:9181", m.listen),
                );
            }
        }
        if c.health.timeout.as_std().is_zero() {
            self.err(&["health", "timeout"], "timeout must be longer than 0s");
        }
        if c.health.interval.as_std().is_zero() {
            self.err(&["health", "interval"], "interval must be longer than 0s");
        } else if c.health.interval > c.health.timeout {
            self.err(
                &["health", "interval"],
                format!("interval {} is longer than timeout {}", c.health.interval, c.health.timeout),
            );
        }
        for (i, n) in c.notify.iter().enumerate() {
            if !(n.url.starts_with("http://") || n.url.starts_with("https://")) || n.url.len() <= "https://".len() {
                let d = diagnostic_at(
                    self.file,
                    self.map,
                    &YamlPath::of(&["notify"]).index(i).key("url"),
                    &format!("{:?} is not an http:// or https:// URL", n.url),
                );
                self.diags.push(d);
            }
        }
        if let Some(r) = &c.report {
            if let Err(why) = report_url(&r.url) {
                self.err(&["report", "url"], why);
            }
            self.readable_file(&["report", "sign"], &r.sign);
            if let Some(a) = &r.auth {
                for (key, p) in
                    [("ssh_key", &a.ssh_key), ("known_hosts", &a.known_hosts), ("token_file", &a.token_file)]
                {
                    if let Some(p) = p {
                        self.readable_file(&["report", "auth", key], p);
                    }
                }
            }
            if r.interval.as_std() < std::time::Duration::from_secs(1) {
                self.err(&["report", "interval"], "interval must be at least 1s (default 5m)");
            }
        }
        if let Some(r) = &c.rollout {
            match &r.signers {
                Some(p) => self.readable_file(&["rollout", "signers"], p),
                None if !r.after.is_empty() => self.err(
                    &["rollout"],
                    "rollout.after counts only reports signed by their hosts: add signers: /etc/driftless/fleet_signers (an allowed_signers file of host names)",
                ),
                None => {}
            }
            for (i, w) in r.windows.iter().enumerate() {
                let at = YamlPath::of(&["rollout", "windows"]).index(i);
                if let Err(why) = parse_hours(&w.hours) {
                    let d = diagnostic_at(self.file, self.map, &at.key("hours"), &why);
                    self.diags.push(d);
                }
                if jiff::tz::TimeZone::get(&w.tz).is_err() {
                    let why = format!(
                        "unknown time zone {:?}: write an IANA name such as Europe/Berlin or UTC (from /usr/share/zoneinfo; install tzdata)",
                        w.tz
                    );
                    let d = diagnostic_at(self.file, self.map, &at.key("tz"), &why);
                    self.diags.push(d);
                }
            }
            for (i, a) in r.after.iter().enumerate() {
                let at = YamlPath::of(&["rollout", "after"]).index(i);
                let listed: std::collections::BTreeSet<&String> = a.hosts.iter().collect();
                // Rules that can never be met (PRODUCT.md "Fleets"): refused, not waited on.
                let msg = match (&a.environment, a.hosts.is_empty()) {
                    (Some(_), false) => Some("give environment or hosts, not both".to_string()),
                    (None, true) => Some("name what to wait for: { environment: staging } or { hosts: [web-1] }".into()),
                    _ if a.min == 0 => Some("min is at least 1 (how many matching hosts must have run the revision)".into()),
                    (None, false) if listed.contains(&host.to_string()) => Some(format!(
                        "host {host} is gated on itself: its own report never counts, so this rule could never be met; remove {host} from hosts"
                    )),
                    (None, false) if a.min > listed.len() => Some(format!(
                        "min: {} is more than the {} host(s) listed, so this rule could never be met: lower min or list more hosts",
                        a.min,
                        listed.len()
                    )),
                    (Some(e), true) if c.environment.as_deref() == Some(e.as_str()) => Some(format!(
                        "environment {e} is gated on itself: every host of it would wait for the others, and none would go first; gate {e} on another environment, or on named hosts (canaries)"
                    )),
                    _ => None,
                };
                if let Some(m) = msg {
                    let d = diagnostic_at(self.file, self.map, &at, &m);
                    self.diags.push(d);
                }
            }
            if !r.after.is_empty() && c.report.is_none() {
                self.err(
                    &["rollout", "after"],
                    "rollout.after reads other hosts' reports from report.url: add report: { url, sign } (the repository the fleet reports to)",
                );
            }
        }
        if let Some(p) = &c.proxy {
            if let Err(why) = AdminEndpoint::parse(&p.caddy_admin) {
                self.err(&["proxy", "caddy_admin"], why);
            }
        }
        let watch = c.health.watch_interval.as_std();
        if !c.health.bake.as_std().is_zero() && watch.is_zero() {
            self.err(
                &["health", "bake"],
                "health.bake needs the checks after the gate, which watch_interval: 0s turns off: set watch_interval (default 30s) or write bake: 0s",
            );
        }
        if !watch.is_zero() && watch < std::time::Duration::from_secs(1) {
            self.err(
                &["health", "watch_interval"],
                "watch_interval is at least 1s (default 30s), or 0s for no checks after the gate",
            );
        }
        if let Some(l) = &c.log_level {
            if let Err(e) = l.parse::<tracing_subscriber::filter::Targets>() {
                self.err(&["log_level"], format!("{l:?} is not a log level: write error, warn, info, debug or trace, or target=level pairs separated by commas ({e})"));
            }
        }
        if c.history_limit == 0 {
            self.err(&["history_limit"], "history_limit must be at least 1");
        }
    }

    fn readable_file(&mut self, keys: &[&str], p: &Path) {
        self.readable_file_at(&YamlPath::of(keys), p);
    }

    /// `p` must be an absolute path to a file the agent can read (reported at `at`).
    fn readable_file_at(&mut self, at: &YamlPath, p: &Path) {
        let msg = if !p.is_absolute() {
            Some(format!("{} must be an absolute path", p.display()))
        } else {
            std::fs::File::open(p).err().map(|e| format!("cannot read {}: {e}", p.display()))
        };
        if let Some(msg) = msg {
            let d = diagnostic_at(self.file, self.map, at, &msg);
            self.diags.push(d);
        }
    }

    fn selector(&mut self, r: &RefConfig) -> Option<RefSelector> {
        let set: Vec<&str> = [("branch", &r.branch), ("tag", &r.tag), ("semver", &r.semver), ("commit", &r.commit)]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect();
        if set.len() != 1 {
            let what =
                if set.is_empty() { "none is set".to_string() } else { format!("{} are set", set.join(" and ")) };
            self.err(&["source", "ref"], format!("give exactly one of branch, tag, semver, commit ({what})"));
            return None;
        }
        let key = set[0];
        let at = ["source", "ref", key];
        if let Some(b) = &r.branch {
            if let Err(why) = ref_name(b) {
                self.err(&at, format!("branch {b:?} {why}"));
                return None;
            }
            return Some(RefSelector::Branch(b.clone()));
        }
        if let Some(t) = &r.tag {
            if let Err(why) = ref_name(t) {
                self.err(&at, format!("tag {t:?} {why}"));
                return None;
            }
            return Some(RefSelector::Tag(t.clone()));
        }
        if let Some(s) = &r.semver {
            return match Range::parse(s) {
                Ok(range) => Some(RefSelector::Semver(range)),
                Err(e) => {
                    self.err(&at, e.to_string());
                    None
                }
            };
        }
        let c = r.commit.as_deref().unwrap_or_default();
        if !(c.len() == 40 || c.len() == 64) || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.err(&at, format!("commit {c:?} must be a full commit id (40 hex digits)"));
            return None;
        }
        Some(RefSelector::Commit(c.to_ascii_lowercase()))
    }

    fn remote(&mut self, s: &SourceConfig) -> Option<RemoteKind> {
        let at = ["source", "url"];
        let u = s.url.as_str();
        let kind = if let Some(p) = u.strip_prefix("file://") {
            if !p.starts_with('/') {
                self.err(&at, format!("{u:?}: a file:// URL needs an absolute path (file:///srv/state.git)"));
                return None;
            }
            RemoteKind::Local(PathBuf::from(p))
        } else if u.starts_with('/') {
            RemoteKind::Local(PathBuf::from(u))
        } else if let Some(rest) = u.strip_prefix("ssh://") {
            if !has_host(rest) {
                self.err(&at, format!("{u:?} has no host: write ssh://git@host/path/repo.git"));
                return None;
            }
            RemoteKind::Ssh
        } else if let Some(rest) = u.strip_prefix("https://") {
            if !has_host(rest) {
                self.err(&at, format!("{u:?} has no host"));
                return None;
            }
            RemoteKind::Https
        } else if let Some(rest) = u.strip_prefix("http://") {
            if !has_host(rest) {
                self.err(&at, format!("{u:?} has no host"));
                return None;
            }
            RemoteKind::Http
        } else if let Some(rest) = u.strip_prefix("git://") {
            if !has_host(rest) {
                self.err(&at, format!("{u:?} has no host"));
                return None;
            }
            RemoteKind::Git
        } else if is_scp_like(u) {
            RemoteKind::Ssh
        } else {
            self.err(
                &at,
                format!("{u:?} is not a repository URL: write ssh://…, git@host:path, https://…, git://…, file:///… or an absolute path"),
            );
            return None;
        };
        let auth = s.auth.as_ref();
        match &kind {
            RemoteKind::Ssh => {
                if auth.is_some_and(|a| a.token_file.is_some()) {
                    self.err(
                        &["source", "auth", "token_file"],
                        "token_file is for https:// remotes; an ssh remote uses ssh_key",
                    );
                }
            }
            RemoteKind::Https | RemoteKind::Http => {
                if auth.is_some_and(|a| a.ssh_key.is_some()) {
                    self.err(
                        &["source", "auth", "ssh_key"],
                        "ssh_key is for ssh remotes; an https remote uses token_file",
                    );
                }
            }
            RemoteKind::Local(_) | RemoteKind::Git => {
                if auth.is_some_and(|a| a.ssh_key.is_some() || a.token_file.is_some()) {
                    self.err(&["source", "auth"], "this remote takes no credentials: remove auth");
                }
            }
        }
        if s.watch && !matches!(kind, RemoteKind::Local(_)) {
            self.err(
                &["source", "watch"],
                "watch works for a repository on this machine only; for a remote, use webhook: to sync on push",
            );
        }
        Some(kind)
    }
}

fn has_host(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    !host.is_empty() && !host.starts_with(':')
}

/// `user@host:path` (scp-like ssh syntax).
fn is_scp_like(u: &str) -> bool {
    match u.split_once(':') {
        Some((left, right)) => !left.is_empty() && !left.contains('/') && !right.is_empty() && !right.starts_with("//"),
        None => false,
    }
}

/// git's rules for ref names, as far as an operator can get them wrong.
fn ref_name(r: &str) -> Result<(), &'static str> {
    if r.is_empty() {
        return Err("is empty");
    }
    if r.starts_with("refs/") {
        return Err("should be a short name (main, production), not a full refs/ path");
    }
    let bad = r.starts_with('-')
        || r.starts_with('/')
        || r.ends_with('/')
        || r.ends_with('.')
        || r.ends_with(".lock")
        || r.contains("..")
        || r.contains("//")
        || r.contains("@{")
        || r.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if bad {
        return Err("is not a valid git ref name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<LoadedConfig, String> {
        LoadedConfig::from_text(Path::new("agent.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load("host: web-1\nsource:\n  url: /srv/state.git\n  ref: { branch: main }\n").unwrap();
        assert_eq!(c.host, "web-1");
        assert_eq!(c.selector, RefSelector::Branch("main".into()));
        assert_eq!(c.remote, RemoteKind::Local("/srv/state.git".into()));
        assert_eq!(c.config.source.interval, Duration::from_secs(60));
        assert_eq!(c.config.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(c.config.health.timeout, Duration::from_secs(120));
    }

    /// `ref: main` (a string where the selector mapping goes) says what to write.
    #[test]
    fn a_ref_written_as_a_string_says_what_to_write() {
        let e = load("host: web-1\nsource:\n  url: /srv/state.git\n  ref: main\n").unwrap_err();
        assert_eq!(
            e,
            "agent.yaml:4:8: source.ref: string \"main\" where a mapping is expected: write exactly one of `ref: { branch: main }`, `ref: { tag: production }` or `ref: { semver: \">=1.0.0\" }`"
        );
    }

    #[test]
    fn refusals_name_file_line_column_and_key() {
        let table = [
            ("source:\n  url: /x\n  ref: { branch: main }\n  intervall: 5s\n", "agent.yaml:4:3: source.intervall: unknown key `intervall` (did you mean `interval`?); expected one of: url, ref, path, interval, watch, auth, verify"),
            ("source:\n  url: /x\n  ref: { branch: main }\n  interval: 5\n", "agent.yaml:4:13: source.interval: 5 has no unit: write 5s (or ms, m, h)"),
            ("source:\n  url: /x\n  ref: { branch: main, tag: v1 }\n", "agent.yaml:3:8: source.ref: give exactly one of branch, tag, semver, commit (branch and tag are set)"),
            ("source:\n  url: /x\n  ref: { semver: \">=1.x.3\" }\n", "agent.yaml:3:18: source.ref.semver: \">=1.x.3\" is not a semver range: \"1.x.3\": a number after a wildcard; write e.g. \">=1.0.0\", \"^1.4\", \"~1.2.3\", \"1.x\", \"1.2.3 - 1.4\" or \">=1.0.0 <2.0.0 || >=3.0.0\""),
            ("source:\n  url: ftp://x/y\n  ref: { branch: main }\n", "agent.yaml:2:8: source.url: \"ftp://x/y\" is not a repository URL: write ssh://…, git@host:path, https://…, git://…, file:///… or an absolute path"),
            ("source:\n  url: https://git.example/ops.git\n  ref: { branch: main }\n  watch: true\n", "agent.yaml:4:10: source.watch: watch works for a repository on this machine only; for a remote, use webhook: to sync on push"),
            ("source:\n  url: /x\n  ref: { branch: \"a..b\" }\n", "agent.yaml:3:18: source.ref.branch: branch \"a..b\" is not a valid git ref name"),
            ("source:\n  url: /x\n  ref: { branch: main }\nwebhook: { listen: \"localhost\", secret_file: /nonexistent/secret }\n", "agent.yaml:4:20: webhook.listen: \"localhost\" is not an address to listen on: write IP:PORT, e.g. 127.0.0.1:9180\nagent.yaml:4:46: webhook.secret_file: cannot read /nonexistent/secret: No such file or directory (os error 2)"),
            ("host: web-1\n", "agent.yaml:1:1: missing key `source`: it is required here"),
            ("source:\n  url: /x\n  ref: { commit: abc }\n", "agent.yaml:3:18: source.ref.commit: commit \"abc\" must be a full commit id (40 hex digits)"),
            ("source:\n  url: /x\n  ref: { branch: main }\n  path: ../other\n", "agent.yaml:4:9: source.path: path \"../other\" escapes the repository root: remove the '..'"),
            ("source:\n  url: /x\n  ref: { branch: main }\nrollout:\n  windows: [{ days: [mon], hours: \"25:00-26:00\", tz: Europe/Berlin }]\n", "agent.yaml:5:35: rollout.windows[0].hours: hours \"25:00-26:00\" is not a range of the day: write HH:MM-HH:MM, e.g. \"09:00-16:00\" (24:00 is the end of the day)"),
            ("source:\n  url: /x\n  ref: { branch: main }\nrollout:\n  windows: [{ hours: \"09:00-16:00\", tz: Europe/Berlinn }]\n", "agent.yaml:5:41: rollout.windows[0].tz: unknown time zone \"Europe/Berlinn\": write an IANA name such as Europe/Berlin or UTC (from /usr/share/zoneinfo; install tzdata)"),
            ("source:\n  url: /x\n  ref: { branch: main }\nrollout:\n  windows: [{ days: [monday] }]\n", "agent.yaml:5:22: rollout.windows[0].days[0]: unknown value `monday`; expected one of: mon, tue, wed, thu, fri, sat, sun"),
            ("source:\n  url: /x\n  ref: { branch: main }\nproxy: { caddy_admin: \"http://10.0.0.5:2019\" }\n", "agent.yaml:4:23: proxy.caddy_admin: \"http://10.0.0.5:2019\" is not an admin endpoint on this host (Caddy's admin API must not leave it): write Caddy's admin.listen address: unix//run/caddy/admin.sock (a socket) or localhost:2019"),
            ("source:\n  url: /x\n  ref: { branch: main }\nproxy: { caddy_admin: \"unix/run/caddy.sock\" }\n", "agent.yaml:4:23: proxy.caddy_admin: \"unix/run/caddy.sock\" names no absolute socket path: write Caddy's admin.listen address: unix//run/caddy/admin.sock (a socket) or localhost:2019"),
        ];
        for (text, want) in table {
            assert_eq!(load(text).err().as_deref(), Some(want), "for config:\n{text}");
        }
    }

    /// PRODUCT.md "Fleets": rules that can never be met are refused at start and on SIGHUP.
    #[test]
    fn rollout_rules_that_can_never_be_met_are_refused() {
        let base = "host: web-1\nenvironment: production\nsource:\n  url: /x\n  ref: { branch: main }\nreport: { url: /r, sign: /nonexistent }\nrollout:\n  signers: /nonexistent\n  after:\n";
        for (rule, want) in [
            ("    - { hosts: [web-1] }\n", "rollout.after[0]: host web-1 is gated on itself"),
            ("    - { hosts: [c1, c1], min: 2 }\n", "rollout.after[0]: min: 2 is more than the 1 host(s) listed"),
            ("    - { environment: production }\n", "rollout.after[0]: environment production is gated on itself"),
        ] {
            let e = load(&format!("{base}{rule}")).err().unwrap_or_default();
            assert!(e.contains(want), "{want} in {e}");
        }
        let e = load(&format!("{base}    - {{ hosts: [c1, c2], min: 2 }}\n    - {{ environment: staging }}\n"))
            .err()
            .unwrap_or_default();
        assert!(!e.contains("could never be met") && !e.contains("gated on itself"), "{e}");
    }

    #[test]
    fn caddy_admin_endpoints() {
        assert_eq!(
            AdminEndpoint::parse("unix//run/caddy/admin.sock"),
            Ok(AdminEndpoint::Unix("/run/caddy/admin.sock".into()))
        );
        for ok in ["localhost:2019", "127.0.0.1:2019", "[::1]:2019"] {
            assert_eq!(AdminEndpoint::parse(ok), Ok(AdminEndpoint::Tcp(ok.into())), "{ok}");
        }
        for bad in
            ["", "unix/", "/run/caddy/admin.sock", "localhost", "0.0.0.0:2019", "example.com:2019", "localhost:0"]
        {
            assert!(AdminEndpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_kinds() {
        for (url, kind) in [
            ("ssh://git@127.0.0.1:2222/srv/state.git", RemoteKind::Ssh),
            ("git@git.example.com:ops/state.git", RemoteKind::Ssh),
            ("https://git.example.com/ops/state.git", RemoteKind::Https),
            ("git://127.0.0.1/state.git", RemoteKind::Git),
            ("file:///srv/state.git", RemoteKind::Local("/srv/state.git".into())),
        ] {
            let c = load(&format!("source:\n  url: \"{url}\"\n  ref: {{ branch: main }}\n")).unwrap();
            assert_eq!(c.remote, kind, "{url}");
        }
    }

    /// The keys a mapping at `path` accepts, read from the types themselves: an unknown key
    /// there is refused with "expected one of: …". `None` when `path` is not a mapping.
    fn keys_at(path: &[&str]) -> Option<Vec<String>> {
        let mut doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("source:\n  url: /srv/state.git\n  ref: { branch: main }\n").ok()?;
        let mut node = &mut doc;
        for (i, key) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let map = node.as_mapping_mut()?;
            let k = serde_yaml_ng::Value::from(key.trim_end_matches("[]"));
            if last || map.get(&k).is_none() {
                map.insert(k.clone(), serde_yaml_ng::Value::Mapping(Default::default()));
            }
            node = map.get_mut(&k)?;
            if key.ends_with("[]") {
                *node = serde_yaml_ng::Value::Sequence(vec![serde_yaml_ng::Value::Mapping(Default::default())]);
                node = node.as_sequence_mut()?.get_mut(0)?;
            }
        }
        node.as_mapping_mut()?.insert("zz_probe".into(), 1.into());
        let text = serde_yaml_ng::to_string(&doc).ok()?;
        let err = load(&text).err()?;
        let list = err.split("expected one of: ").nth(1)?;
        Some(list.lines().next()?.split(", ").map(|k| k.trim().to_string()).collect())
    }

    /// docs/configuration.md documents every key the config accepts (found by probing the
    /// types, so a new field without a doc row fails here).
    #[test]
    fn every_key_is_documented() {
        let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"))
            .unwrap_or_default();
        let mut todo: Vec<Vec<String>> = vec![vec![]];
        let mut seen = Vec::new();
        while let Some(path) = todo.pop() {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(keys) = keys_at(&refs) else { continue };
            for key in keys {
                let mut child = path.clone();
                child.push(key.clone());
                let dotted = child.join(".");
                seen.push(dotted.clone());
                assert!(
                    ["`", ".", "[]."].iter().any(|end| docs.contains(&format!("`{dotted}{end}"))),
                    "docs/configuration.md does not document `{dotted}`"
                );
                todo.push(child.clone());
                let mut seq = path.clone();
                seq.push(format!("{key}[]"));
                todo.push(seq);
            }
        }
        for must in ["source.ref.semver", "source.auth.token_file", "health.interval", "notify[].url"] {
            assert!(seen.iter().any(|k| k == must), "probe missed {must}: {seen:?}");
        }
    }
}
