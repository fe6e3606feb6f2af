//! The typed `driftless/v1` desired-state format: one struct per kind's `spec`, the health
//! checks, and the envelope of a document. These types are the single source of truth: the
//! JSON Schema is generated from them and `docs/desired-state.md` is checked against them.
//!
//! Syntax-level rules live in serde attributes (unknown keys are errors, defaults are filled
//! in); rules that relate values to each other live in `checks`.
//!
//! Past 1,000 lines because it is the format itself: one struct per kind and key, each
//! documented, from which the JSON Schema and the docs are generated.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::Duration;

/// The only API version this build understands.
pub const API_VERSION: &str = "driftless/v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "driftless/v1")]
    V1,
}

/// The kinds of resource a host can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    Container,
    PassengerApp,
    NixosSystem,
    /// A named volume's data policy (snapshots); it runs nothing, so the loader keeps these
    /// apart from the resources (`DesiredState::volumes`).
    Volume,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Container, Kind::PassengerApp, Kind::NixosSystem, Kind::Volume];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "Container",
            Kind::PassengerApp => "PassengerApp",
            Kind::NixosSystem => "NixosSystem",
            Kind::Volume => "Volume",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `metadata` of a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Unique among all documents of the host: a DNS label (lowercase letters, digits, `-`).
    pub name: String,
}

/// When the agent pulls a container image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull on every apply, even when the image is present.
    Always,
    /// Pull only when no local image has this reference (the default).
    #[default]
    IfNotPresent,
    /// Never pull; the image must be on the host (built or loaded there).
    Never,
}

/// `spec` of a `Container`. Keys beyond `image` follow the compose specification's service
/// keys of the same name (docs/desired-state.md lists each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Image reference: `name[:tag]` or `name@sha256:<64 hex>`, with an optional registry host;
    /// no tag means `:latest`. With `build`, the name the built image is also tagged with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Build the image on the host from a folder of the repository at the revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    /// When to pull the image.
    #[serde(default)]
    pub pull: PullPolicy,
    /// Run to completion before what depends on it (exit 0 = success); re-run only when the
    /// spec changes. For migrations.
    #[serde(default, skip_serializing_if = "is_false")]
    pub oneshot: bool,
    /// How a replace runs (compose's `deploy.update_config.order`): `stop-first` (the
    /// default: the old container stops, then the new one starts) or `start-first` (the new
    /// one starts beside the old one, which stops only once the new one serves; with `proxy`
    /// its traffic moves through the host's Caddy).
    #[serde(default, skip_serializing_if = "UpdateOrder::is_stop_first")]
    pub update: UpdateOrder,
    /// Take traffic through the host's Caddy (agent config `proxy.caddy_admin`), so that a
    /// start-first replace or revert moves it without refusing a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySpec>,
    /// Replaces the image's CMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Replaces the image's ENTRYPOINT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables. Numbers and booleans are written as strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub env: BTreeMap<String, EnvValue>,
    /// Files of `KEY=value` lines, read at apply time: an absolute host path (secrets that
    /// stay out of Git), or a repository path read at the revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<EnvFile>,
    /// A repository `.env` file whose variables `${VAR}` in `env_files` may name (after the
    /// variables of the env files read before): compose resolves an `env_file`'s `${VAR}`
    /// from the project's `.env`, and a compose file's services carry it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_files_vars: Option<String>,
    /// Published ports: `[IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Repository files or folders mounted into the container, exported at the revision to a
    /// stable host path under `state_dir` (compose's relative bind mounts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<RepoMount>,
    /// Ports exposed without publishing: `80`, `8000-8010/udp`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Mounts: `/host/path:/container/path[:ro]` or `volume-name:/container/path[:ro]`.
    /// Named volumes are created and labelled by the agent, and never removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Docker networks to attach to (created by the agent when missing): a name, or
    /// `{ name, aliases }`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// Volumes and networks (of `volumes` and `networks`) that must exist on the host
    /// already, as compose's `external: true`: never created by the agent; one that is
    /// missing holds the revision back, before anything runs is touched (a misspelt name
    /// never becomes a new, empty volume).
    #[serde(default, skip_serializing_if = "External::is_empty")]
    pub external: External,
    /// Networks (of `networks`) the agent creates `internal`: no route out of the host, as
    /// compose's `internal: true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal_networks: Vec<String>,
    /// How the agent creates networks of `networks` (compose's top-level `enable_ipv6` and
    /// `ipam`), by network name; a network that exists already is used as it is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_options: BTreeMap<String, NetworkOptions>,
    /// How the agent creates named volumes of `volumes` (compose's top-level `driver_opts`
    /// of the `local` driver: `type`, `device`, `o`), by volume name; a volume that exists
    /// already is used as it is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_options: BTreeMap<String, VolumeOptions>,
    /// `host`, `none`, `bridge` or `container:<name>` instead of `networks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// The IPC namespace (compose's `ipc`): `private`, `shareable`, `host`, `none` or
    /// `container:<name>`; unset, the engine's default (`private`, or `shareable` where the
    /// daemon is configured so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// Docker restart policy.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How long a stop waits for the container to exit before it is killed.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Duration,
    /// The signal that stops the container (default: the image's, else SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Containers applied before this one: a name (`started`), or `{ name, condition }` with
    /// condition `started`, `healthy` (its health checks pass first) or `completed` (a
    /// `oneshot` that exited 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// Labels on the container (`driftless.*` is reserved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `user`, `user:group`, `uid` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The working directory inside the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Extra `/etc/hosts` lines: `name:ip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS search domains (`example.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// resolv.conf options (`ndots:2`, `use-vc`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// The container's NIS domain name (`domainname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Capabilities added, e.g. `NET_ADMIN`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities dropped, e.g. `ALL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// A read-only root file system.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// tmpfs mounts: `/path[:options]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Run an init process (tini) as PID 1.
    #[serde(default, skip_serializing_if = "is_false")]
    pub init: bool,
    /// Allocate a pseudo-terminal (some images behave differently with one).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tty: bool,
    /// Keep stdin open (nothing is attached to it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    /// Devices: `/dev/host[:/dev/container[:rwm]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Kernel parameters, e.g. `net.core.somaxconn: 1024`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub sysctls: BTreeMap<String, EnvValue>,
    /// Resource limits: `nofile: 65536` or `nofile: { soft: 1024, hard: 65536 }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Size of /dev/shm: bytes, or with a unit (`64m`, `1g`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ScalarSchema>")]
    pub shm_size: Option<EnvValue>,
    /// Memory limit: bytes, or with a unit (`512m`, `2g`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ScalarSchema>")]
    pub memory: Option<EnvValue>,
    /// CPU limit in CPUs (`0.5`, `2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ScalarSchema>")]
    pub cpus: Option<EnvValue>,
    /// Maximum number of processes (-1: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Relative CPU weight (the engine's default is 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CFS period and quota, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// CPUs the container may run on: `0-3`, `0,1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// Soft memory limit: bytes, or with a unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ScalarSchema>")]
    pub mem_reservation: Option<EnvValue>,
    /// Memory plus swap: bytes, or with a unit; `-1` unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ScalarSchema>")]
    pub memswap_limit: Option<EnvValue>,
    /// How readily the kernel swaps the container's pages out (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<i64>,
    /// The container is never chosen by the OOM killer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub oom_kill_disable: bool,
    /// The OOM killer's preference (-1000 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// PID namespace: `host`, or `container:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// UTS namespace: `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// User namespace: `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// cgroup namespace: `host` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The parent cgroup of the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// Device cgroup rules: `c 1:3 mr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// An OCI runtime the engine has (`runc`, `runsc`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Containers whose volumes this one mounts too: `name`, `name:ro`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// The container's log driver and its options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// The image-level HEALTHCHECK, set or replaced; a container with one is gated as
    /// `container: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `label:…`, `no-new-privileges:true`, `seccomp=…`, `apparmor=…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Extra groups of the container's user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// Files mounted read-only at `/run/secrets/<name>` (or `target`): `source` is a
    /// repository path (at the revision) or an absolute host path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretFile>,
    /// Containers this one reaches under another name (compose's `links` and
    /// `external_links`): `name` or `name:alias`, as `docker run --link` takes them, on every
    /// network it joins. A link to a container of the desired state orders that one first
    /// only when `depends_on` says so (a compose file's links do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Devices requested from a device driver (compose's `gpus` and
    /// `deploy.resources.reservations.devices`): GPUs through the NVIDIA container
    /// toolkit, CDI devices. A host without the driver refuses the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_requests: Vec<DeviceRequest>,
    /// Block I/O weight and limits (compose's `blkio_config`); the kernel's I/O scheduler
    /// must support weights, else the engine drops them with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    /// Options of the storage driver for the container's writable layer (`size: 20G`, on
    /// drivers that take it: overlay2 on xfs with `pquota`, btrfs, zfs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    /// OCI annotations of the container. Passed on engines with API 1.43 (Docker 24) or
    /// later; an older engine cannot take them, and `validate` and `status` say so.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The MAC address of the container on its first network. Needs an engine with API 1.44
    /// (Docker 25) or later; on an older one the revision is refused before anything is
    /// touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Commands run in the container right after it starts, in order (compose's
    /// `post_start`); one that exits non-zero fails the revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    /// Commands run in the container before the agent stops it, in order (compose's
    /// `pre_stop`); one that fails is logged, and the stop goes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
    /// Checks that must pass before a revision counts as good.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthCheck>,
}

/// A device request (`device_requests`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// The device driver (`nvidia`, `cdi`); unset: the engine picks one by capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// How many devices: a number, or -1 for all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Which devices, by the driver's ids (instead of `count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// What the devices must offer: `gpu`, `compute`, `utility`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Options for the driver.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// Block I/O weight and limits (`blkio_config`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlkioConfig {
    /// Relative weight, 10 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    /// Weights per device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<BlkioWeight>,
    /// Read and write limits per device: bytes per second (`rate: 20mb`) or operations
    /// per second (`rate: 1000`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<BlkioRate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<BlkioRate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<BlkioRate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<BlkioRate>,
}

/// A device's block I/O weight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlkioWeight {
    /// The device (`/dev/sda`).
    pub path: String,
    pub weight: u16,
}

/// A device's block I/O limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlkioRate {
    /// The device (`/dev/sda`).
    pub path: String,
    /// A number, or bytes with a unit (`20mb`).
    #[schemars(with = "ScalarSchema")]
    pub rate: EnvValue,
}

/// A command run in a container (`post_start`, `pre_stop`), as `docker exec` runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Who runs it (default: the container's user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Where it runs (default: the container's working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Variables set for it, beside the container's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub environment: BTreeMap<String, EnvValue>,
}

/// The order of a Container's replace (`update`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old container, then start the new one (a replace refuses requests meanwhile).
    #[default]
    StopFirst,
    /// Start the new container beside the old one; the old one stops only once the new one
    /// answers and, with `proxy`, the route points at it.
    StartFirst,
}

impl UpdateOrder {
    fn is_stop_first(&self) -> bool {
        *self == UpdateOrder::StopFirst
    }
}

/// A Container's route through the host's Caddy (`proxy`): requests for `hosts`, or to
/// `listen`, go to the container's `port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// Host names Caddy serves for this container (with its automatic HTTPS, in the Caddy
    /// server that listens on :443, else one the agent adds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// An address Caddy listens on for this container alone, plain HTTP: `IP:PORT` or `:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The container's port that serves HTTP.
    pub port: u16,
    /// What a new container must answer with 2xx before traffic moves to it.
    #[serde(default = "default_proxy_path")]
    pub path: String,
    /// How long the old container keeps running after traffic moved (at most 10m).
    #[serde(default = "default_drain")]
    pub drain: Duration,
}

fn default_proxy_path() -> String {
    "/".into()
}

fn default_drain() -> Duration {
    Duration::from_secs(10)
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `build:` of a Container: the image is built by the engine from a repository folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// Folder of the repository (relative to its root) sent as the build context.
    pub context: String,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The build stage to stop at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Build arguments (`ARG`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub args: BTreeMap<String, EnvValue>,
    /// Images whose layers the build may reuse (compose's `cache_from`), pulled before the
    /// build when the host lacks them (a cache that cannot be pulled is skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// When the image is built (with `image` set): `always` (the default), or `missing`.
    #[serde(default, skip_serializing_if = "BuildWhen::is_always")]
    pub when: BuildWhen,
}

/// When a Container's `build` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BuildWhen {
    /// Every revision uses the image built from the context (rebuilt only when the context's
    /// tree changes), tagged `image` when one is given.
    #[default]
    Always,
    /// `image` is pulled as `pull` says, and built from the context only when its registry
    /// answers that it does not have it (compose's default for a service with both `image`
    /// and `build`). Needs `image`.
    Missing,
}

impl BuildWhen {
    pub fn is_always(&self) -> bool {
        *self == BuildWhen::Always
    }
}

/// How a network is created (`network_options`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkOptions {
    /// IPv6 on the network (compose's `enable_ipv6`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_ipv6: bool,
    /// Its address ranges (compose's `ipam.config`); static container addresses
    /// (`ipv4_address`, `ipv6_address`) must lie in one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Subnet>,
}

/// One address range of a network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// `172.28.0.0/16`, `fd00:db8::/64`.
    pub subnet: String,
    /// The gateway's address, in the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The part of the subnet the engine hands out addresses from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
}

/// How a named volume is created (`volume_options`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    /// The `local` driver's options: `type` (`tmpfs`, `nfs`, `none` for a bind), `device`,
    /// `o` (mount options).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// One network a container joins (a name, or `{ name, aliases, ipv4_address, ipv6_address }`).
#[derive(Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(with = "NameOr<NetworkAttachmentMap>")]
pub struct NetworkAttachment {
    pub name: String,
    /// Other names the container answers to on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A static IPv4 address on the network (in one of its `subnets`).
    pub ipv4_address: Option<String>,
    /// A static IPv6 address on the network (`enable_ipv6`, in one of its `subnets`).
    pub ipv6_address: Option<String>,
}

impl Serialize for NetworkAttachment {
    // A plain name serializes as a string, and unset keys are left out, so spec hashes of
    // `networks: [a]` and `{ name, aliases }` stay as they were.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.aliases.is_empty() && self.ipv4_address.is_none() && self.ipv6_address.is_none() {
            return s.serialize_str(&self.name);
        }
        let mut st = s.serialize_map(None)?;
        st.serialize_entry("name", &self.name)?;
        st.serialize_entry("aliases", &self.aliases)?;
        if let Some(a) = &self.ipv4_address {
            st.serialize_entry("ipv4_address", a)?;
        }
        if let Some(a) = &self.ipv6_address {
            st.serialize_entry("ipv6_address", a)?;
        }
        st.end()
    }
}

/// One `env_files` entry: a path, or `{ path, required: false }` (compose's `env_file`
/// long form): a file that is not there is then skipped instead of holding the revision.
#[derive(Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(with = "NameOr<EnvFileMap>")]
pub struct EnvFile {
    pub path: String,
    pub required: bool,
}

impl Serialize for EnvFile {
    // A required file serializes as its path, so spec hashes of `env_files: [a]` stay.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if self.required {
            return s.serialize_str(&self.path);
        }
        let mut st = s.serialize_struct("EnvFile", 2)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("required", &self.required)?;
        st.end()
    }
}

/// Schema of the full form of an `env_files` entry.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EnvFileMap {
    /// An absolute host path, or a repository path read at the revision.
    path: String,
    /// `false`: a file that is not there is skipped (default `true`).
    #[serde(default = "yes")]
    required: bool,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for EnvFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let full: EnvFileMap =
            name_or_map(d, |path| EnvFileMap { path, required: true }, "a path, or { path, required }")?;
        Ok(EnvFile { path: full.path, required: full.required })
    }
}

/// Schema stand-in: a name, or the full form `T`.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
enum NameOr<T> {
    Name(String),
    Full(T),
}

/// Schema of the full form of a `networks` entry.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NetworkAttachmentMap {
    name: String,
    /// Other names the container answers to on this network.
    #[serde(default)]
    aliases: Vec<String>,
    /// A static IPv4 address on the network (in one of its `network_options` subnets).
    #[serde(default)]
    ipv4_address: Option<String>,
    /// A static IPv6 address on the network (`enable_ipv6`, in one of its subnets).
    #[serde(default)]
    ipv6_address: Option<String>,
}

/// Schema of the full form of a `depends_on` entry.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DependencyMap {
    name: String,
    #[serde(default)]
    condition: Condition,
    /// Restart this resource whenever the dependency is created or replaced (compose's
    /// `depends_on: { x: { restart: true } }`).
    #[serde(default)]
    restart: bool,
}

/// How a dependency must stand before its dependents are applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Applied and started (the default).
    #[default]
    Started,
    /// Its health checks pass.
    Healthy,
    /// A `oneshot` that ran to completion with exit 0.
    Completed,
}

/// One `depends_on` entry (a name, or `{ name, condition }`).
#[derive(Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(with = "NameOr<DependencyMap>")]
pub struct Dependency {
    pub name: String,
    #[serde(default)]
    pub condition: Condition,
    /// Restart the dependent whenever this dependency is created or replaced.
    #[serde(default)]
    pub restart: bool,
}

impl Serialize for Dependency {
    // `started` serializes as the plain name: spec hashes of `depends_on: [db]` stay as they were.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if self.condition == Condition::Started && !self.restart {
            return s.serialize_str(&self.name);
        }
        let mut st = s.serialize_struct("Dependency", 3)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("condition", &self.condition)?;
        if self.restart {
            st.serialize_field("restart", &true)?;
        }
        st.end()
    }
}

/// Read a name (a string) or the full form (a map) of `T`: `networks` and `depends_on`
/// entries.
fn name_or_map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    from_name: fn(String) -> T,
    expecting: &'static str,
) -> Result<T, D::Error> {
    struct V<T> {
        from_name: fn(String) -> T,
        expecting: &'static str,
    }
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            Ok((self.from_name)(v.to_string()))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V { from_name, expecting })
}

/// The full form of a `networks` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFull {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    ipv4_address: Option<String>,
    #[serde(default)]
    ipv6_address: Option<String>,
}

impl<'de> Deserialize<'de> for NetworkAttachment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let full: NetworkFull = name_or_map(
            d,
            |name| NetworkFull { name, aliases: Vec::new(), ipv4_address: None, ipv6_address: None },
            "a network name, or { name, aliases, ipv4_address, ipv6_address }",
        )?;
        Ok(NetworkAttachment {
            name: full.name,
            aliases: full.aliases,
            ipv4_address: full.ipv4_address,
            ipv6_address: full.ipv6_address,
        })
    }
}

/// The full form of a `depends_on` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DependencyFull {
    name: String,
    #[serde(default)]
    condition: Condition,
    #[serde(default)]
    restart: bool,
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let full: DependencyFull = name_or_map(
            d,
            |name| DependencyFull { name, condition: Condition::Started, restart: false },
            "a resource name, or { name, condition: started | healthy | completed, restart: true }",
        )?;
        Ok(Dependency { name: full.name, condition: full.condition, restart: full.restart })
    }
}

/// A ulimit: one number for both, or `{ soft, hard }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ulimit {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

impl Ulimit {
    pub fn soft_hard(self) -> (i64, i64) {
        match self {
            Ulimit::Single(n) => (n, n),
            Ulimit::Pair { soft, hard } => (soft, hard),
        }
    }
}

/// `logging:` of a Container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// `json-file` (Docker's default), `local`, `journald`, `syslog`, `none`, …; unset: the
    /// engine's default driver (the compose specification makes `driver` optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub options: BTreeMap<String, EnvValue>,
}

/// `healthcheck:` of a Container, as compose writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", "curl", "-f", "http://localhost/"]`, `["CMD-SHELL", "…"]`, a string (run by
    /// the shell), or `["NONE"]` to turn the image's off. Absent: the image's own test, with
    /// the timings given here (as compose and the engine mean it).
    #[serde(default, skip_serializing_if = "HealthTest::is_unset")]
    pub test: HealthTest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    /// How often the check runs during `start_period` (Docker API 1.44, Docker 25+; an
    /// older engine ignores it, and `status` says so, as compose does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
}

/// A healthcheck's `test`: a list (`CMD …`, `CMD-SHELL …`, `NONE`) or a shell string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HealthTest {
    Shell(String),
    List(Vec<String>),
}

impl Default for HealthTest {
    fn default() -> Self {
        HealthTest::List(Vec::new())
    }
}

impl HealthTest {
    /// No test given: the image's own.
    pub fn is_unset(&self) -> bool {
        matches!(self, HealthTest::List(l) if l.is_empty())
    }

    /// The engine's form: `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub fn engine_form(&self) -> Vec<String> {
        match self {
            HealthTest::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            HealthTest::List(l) => l.clone(),
        }
    }
}

/// A file written into a Passenger release (mode 0600).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSecret {
    /// A repository path (relative to the repository root), e.g. `secrets/api.env.age`.
    pub source: String,
    /// A path in the release, e.g. `.env`.
    pub target: String,
}

/// A repository file or folder mounted into a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoMount {
    /// A repository path (relative to the repository root). A path the revision does not
    /// hold is a data folder: created empty under `state_dir` once, and never overwritten or
    /// removed.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// SELinux relabelling of the exported copy, as docker's `:z` (shared) or `:Z` (private)
    /// bind options; nothing on hosts without SELinux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<SelinuxLabel>,
    /// A data folder's snapshots (compose: `x-driftless: { snapshot: … }` on the volume
    /// entry): copied before each revision and put back with its revert, as a Volume's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotSpec>,
}

/// Names that must exist already (`ContainerSpec::external`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct External {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
}

impl External {
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty() && self.networks.is_empty()
    }
}

/// Docker's SELinux bind options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SelinuxLabel {
    /// `z`: the content is shared among containers.
    #[serde(rename = "z")]
    Shared,
    /// `Z`: the content is private to this container.
    #[serde(rename = "Z")]
    Private,
}

/// A file mounted into a container read-only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    /// Mounted at `/run/secrets/<name>` unless `target` says otherwise.
    pub name: String,
    /// A repository path (at the revision) or an absolute host path.
    pub source: String,
    /// With `env`, `source` is a `.env` file and the secret is the value of this variable in
    /// it (compose's `secrets: { x: { environment: VAR } }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Where in the container (absolute), or a file name under `/run/secrets/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl SecretFile {
    pub fn container_path(&self) -> String {
        match &self.target {
            Some(t) if t.starts_with('/') => t.clone(),
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{}", self.name),
        }
    }
}

/// Docker restart policy: `no`, `always`, `unless-stopped` (default), `on-failure[:N]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RestartPolicy {
    No,
    Always,
    #[default]
    UnlessStopped,
    OnFailure(Option<u32>),
}

impl RestartPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure(None),
            other => {
                let n = other.strip_prefix("on-failure:")?;
                RestartPolicy::OnFailure(Some(n.parse().ok()?))
            }
        })
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

impl Serialize for RestartPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML reads a bare `no` as a string in YAML 1.2, but be kind to `false` too.
        let v = ScalarText::deserialize(d)?;
        RestartPolicy::parse(&v.0).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown restart policy {:?}: write no, always, unless-stopped, on-failure or on-failure:N",
                v.0
            ))
        })
    }
}

impl JsonSchema for RestartPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RestartPolicy".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(no|always|unless-stopped|on-failure(:[0-9]+)?)$",
            "description": "Docker restart policy; default unless-stopped."
        })
    }
}

/// An environment value: YAML strings, numbers and booleans are all accepted and kept as text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvValue(pub String);

impl Serialize for EnvValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ScalarText::deserialize(d).map(|t| EnvValue(t.0))
    }
}

/// Schema stand-in for scalar values (string, number or boolean).
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
enum ScalarSchema {
    S(String),
    N(f64),
    B(bool),
}

/// A scalar read as text: strings as they are, numbers and booleans in their YAML spelling.
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ScalarText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `spec` of a `PassengerApp`: Capistrano-style releases under `app_root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassengerAppSpec {
    /// Absolute path on the host; holds `releases/`, `shared/`, `backups/` and `current`.
    pub app_root: String,
    /// Folder of the repository (relative to its root) exported as each release.
    pub source: String,
    /// Command (argv) run in the new release folder before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Vec<String>>,
    /// How long `build` may run.
    #[serde(default = "default_build_timeout")]
    pub build_timeout: Duration,
    /// Paths under `shared/`, linked into every release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<String>,
    /// Paths under `shared/` copied into `backups/<time>/` before the switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup: Vec<String>,
    /// Files written into each release with mode 0600: `source` a repository path (an `.age`
    /// file is decrypted with the agent's `secrets.identities`), `target` a path in the release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ReleaseSecret>,
    /// Releases kept on disk (the live and the last good one are always kept).
    #[serde(default = "default_keep_releases")]
    pub keep_releases: u32,
    /// Backup sets kept in `backups/`.
    #[serde(default = "default_keep_backups")]
    pub keep_backups: u32,
    /// Absolute path of the app's log on the host (Passenger's `--log-file`, or the web
    /// server's error log): its last 50 lines go into the diagnostics of a failed revision.
    /// Default: the newest `*.log` under `current/log/`, `shared/log/` or `shared/logs/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// Checks that must pass before a revision counts as good.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthCheck>,
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_build_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_keep_releases() -> u32 {
    5
}
fn default_keep_backups() -> u32 {
    10
}

/// What `switch-to-configuration` is asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NixosAction {
    /// Activate now and make it the boot default (after the live gate passed).
    #[default]
    Switch,
    /// Make it the boot default only; checked after the next boot.
    Boot,
    /// Activate now, never touch the boot default.
    Test,
}

/// `spec` of a `Volume`: a named volume (as the containers mount it: `db-data`, or a
/// compose volume's engine name, `myproject_db-data`) whose data is snapshotted before each
/// revision that changes anything and put back when that revision is reverted (PRODUCT.md
/// behaviour 11).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// How the volume's data is snapshotted and how many snapshots are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotSpec>,
}

/// `snapshot` of a Volume (compose: `x-driftless: { snapshot: … }` on a top-level volume).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// Snapshots kept per volume (`before` and `failed-attempt` together), oldest pruned
    /// first; the one taken before the last good revision is never pruned.
    #[serde(default = "default_keep_snapshots")]
    pub keep: u32,
    /// `pause` (default): the containers that mount the volume are frozen for the copy;
    /// `stop`: stopped and started again; `{ exec: [argv], restore: [argv] }`: a dump taken
    /// by running `exec` in the container that mounts the volume, put back by `restore`
    /// (which reads the dump on its standard input).
    #[serde(default)]
    pub consistency: Consistency,
}

impl Default for SnapshotSpec {
    fn default() -> Self {
        SnapshotSpec { keep: default_keep_snapshots(), consistency: Consistency::Pause }
    }
}

fn default_keep_snapshots() -> u32 {
    5
}

/// How a snapshot is made consistent (`pause`, `stop`, or `{ exec, restore }`).
#[derive(Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(with = "ConsistencyForm")]
pub enum Consistency {
    /// The containers that mount the volume are paused (the cgroup freezer) for the copy.
    #[default]
    Pause,
    /// They are stopped for the copy and started again.
    Stop,
    /// An application-consistent dump (`pg_dumpall`, `mysqldump`, `sqlite3 .backup`).
    Exec(ExecConsistency),
}

/// Schema stand-in of `Consistency`: a word, or the `exec` form.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
enum ConsistencyForm {
    Word(ConsistencyWord),
    Exec(ExecConsistency),
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ConsistencyWord {
    Pause,
    Stop,
}

/// `consistency: { exec: [argv], restore: [argv] }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecConsistency {
    /// Run in the container that mounts the volume; what it prints on its standard output
    /// is the snapshot (`[pg_dumpall, -U, postgres]`).
    pub exec: Vec<String>,
    /// Run in that container to put a snapshot back, the dump on its standard input
    /// (`[psql, -U, postgres, -f, -]`).
    pub restore: Vec<String>,
}

impl Consistency {
    pub fn word(&self) -> &'static str {
        match self {
            Consistency::Pause => "pause",
            Consistency::Stop => "stop",
            Consistency::Exec(_) => "exec",
        }
    }
}

impl Serialize for Consistency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Consistency::Exec(e) => e.serialize(s),
            other => s.serialize_str(other.word()),
        }
    }
}

impl<'de> Deserialize<'de> for Consistency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Consistency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("pause, stop, or { exec: [argv], restore: [argv] }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Consistency, E> {
                match v {
                    "pause" => Ok(Consistency::Pause),
                    "stop" => Ok(Consistency::Stop),
                    other => Err(E::custom(format!(
                        "consistency {other:?} is not known: write pause, stop, or {{ exec: [argv], restore: [argv] }}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Consistency, A::Error> {
                ExecConsistency::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(Consistency::Exec)
            }
        }
        d.deserialize_any(V)
    }
}

/// `spec` of a `NixosSystem`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NixosSystemSpec {
    /// Folder of the repository (relative to its root) holding `flake.nix`.
    #[serde(default = "default_flake")]
    pub flake: String,
    /// `nixosConfigurations.<host>` to build; default: the agent's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub action: NixosAction,
    /// Absolute path of the system profile.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// How long `nix build` may run.
    #[serde(default = "default_nix_build_timeout")]
    pub build_timeout: Duration,
    /// Generations kept after a successful switch (GC roots under `state_dir` and system
    /// profile generations), besides the applied and the last good one; older ones are
    /// released so that `nix-collect-garbage` can free them.
    #[serde(default = "default_keep_generations", skip_serializing_if = "is_default_keep_generations")]
    pub keep_generations: u32,
    /// Checks that must pass before a revision counts as good.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthCheck>,
}

fn default_keep_generations() -> u32 {
    5
}

// Skipped at its default so that the spec hash of an existing system does not change.
fn is_default_keep_generations(n: &u32) -> bool {
    *n == default_keep_generations()
}

fn default_flake() -> String {
    ".".to_string()
}
fn default_profile() -> String {
    "/nix/var/nix/profiles/system".to_string()
}
fn default_nix_build_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// One health check: exactly one of `http`, `tcp`, `exec`, `container`, `systemd`, plus
/// optional timing that overrides the agent's `health:` defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// argv run on the host; exit status 0 passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// `true`: the image's own HEALTHCHECK must report healthy (Containers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<bool>,
    /// systemd units that must be active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<Vec<String>>,
    /// Give up after this long (default: the agent's `health.timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Wait this long between attempts (default: the agent's `health.interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Give up after this many failed attempts, even before the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// The probe of a health check, once validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe<'a> {
    Http(&'a HttpCheck),
    Tcp(&'a TcpCheck),
    Exec(&'a [String]),
    Container,
    Systemd(&'a [String]),
}

impl HealthCheck {
    /// The probes this entry names; a valid entry names exactly one.
    pub fn probes(&self) -> Vec<Probe<'_>> {
        let mut out = Vec::new();
        if let Some(h) = &self.http {
            out.push(Probe::Http(h));
        }
        if let Some(t) = &self.tcp {
            out.push(Probe::Tcp(t));
        }
        if let Some(e) = &self.exec {
            out.push(Probe::Exec(e));
        }
        if self.container.is_some() {
            out.push(Probe::Container);
        }
        if let Some(s) = &self.systemd {
            out.push(Probe::Systemd(s));
        }
        out
    }
}

/// An HTTP GET that must answer with an expected status (and body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Expected status: a code (`200`) or an inclusive range (`"200-399"`). Default 200-399.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRange>,
    /// Text the response body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

/// A TCP connect that must succeed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// `host:port`, e.g. `127.0.0.1:5432` or `[::1]:5432`.
    pub address: String,
}

/// An inclusive range of HTTP status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub const DEFAULT: StatusRange = StatusRange { low: 200, high: 399 };

    pub fn contains(&self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }

    fn parse(text: &str) -> Option<StatusRange> {
        let (lo, hi) = match text.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let c = text.trim().parse().ok()?;
                (c, c)
            }
        };
        ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi)
            .then_some(StatusRange { low: lo, high: hi })
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.low == self.high {
            s.serialize_u16(self.low)
        } else {
            s.collect_str(&format_args!("{}-{}", self.low, self.high))
        }
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = ScalarText::deserialize(d)?;
        StatusRange::parse(&t.0).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{:?} is not an HTTP status: write a code from 100 to 599 (200) or a range (\"200-399\")",
                t.0
            ))
        })
    }
}

impl JsonSchema for StatusRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusRange".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An HTTP status code (200) or an inclusive range (\"200-399\").",
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$" }
            ]
        })
    }
}

/// The typed spec of one resource. (A host holds tens of resources, not millions: the
/// Container variant's size is not worth a box and its indirection everywhere.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum Spec {
    Container(ContainerSpec),
    PassengerApp(PassengerAppSpec),
    NixosSystem(NixosSystemSpec),
    Volume(VolumeSpec),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Container(_) => Kind::Container,
            Spec::PassengerApp(_) => Kind::PassengerApp,
            Spec::NixosSystem(_) => Kind::NixosSystem,
            Spec::Volume(_) => Kind::Volume,
        }
    }

    pub fn health(&self) -> &[HealthCheck] {
        match self {
            Spec::Container(s) => &s.health,
            Spec::PassengerApp(s) => &s.health,
            Spec::NixosSystem(s) => &s.health,
            Spec::Volume(_) => &[],
        }
    }

    pub fn depends_on(&self) -> &[Dependency] {
        match self {
            Spec::Container(s) => &s.depends_on,
            _ => &[],
        }
    }
}

/// One resource of the effective desired state (overlays applied, defaults filled in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub api_version: ApiVersion,
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Where the document starts, for messages: `file:line`.
    #[serde(skip)]
    pub origin: Origin,
}

impl Resource {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// The file and line a document came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}
