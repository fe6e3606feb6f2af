//! The Docker runtime: one driver (`driver.rs`, [`DockerRuntime`]) over parts that each own
//! their data. Lowest first — a part uses only those above it in this list:
//!
//! - `errors`: how the engine's answers are judged (verdict or fault); pure.
//! - `instance`: the labels the agent writes and reads back, and the `Instance` of a
//!   listed container; pure.
//! - `hooks`: compose's `post_start`/`pre_stop` hooks, run through the engine's exec API.
//! - `spec`: the container spec — desired spec in, engine create body out; pure.
//! - `caddy`: the host's Caddy, through its admin API.
//! - `engine`: the engine client, and every container operation the parts share.
//! - `image`: references, credentials, pulls, builds and image pruning.
//! - `mounts`: env files, secrets, exported files and data folders, and their digests.
//! - `networks`: networks and named volumes, created, checked and pruned.
//! - `events`: the engine's event feed.
//! - `data`: volume snapshots and restores through the engine.
//! - `diagnose`: why a container failed, for the history.
//! - `drain`: the journalled drains of old start-first instances.
//! - `start_first`: start-first replaces and the routes of proxied containers.
//! - `driver`: the `Driver` the reconciler calls; it only wires the parts.
//!
//! Architecture Invariant: this file only wires — no part imports it (`tests/layers.rs`).

pub mod caddy;
mod data;
mod diagnose;
mod drain;
mod driver;
mod engine;
mod errors;
mod events;
mod hooks;
pub mod image;
mod instance;
mod mounts;
mod networks;
mod spec;
mod start_first;

pub use driver::DockerRuntime;
pub use errors::{judge_engine, EngineJudgement};
pub use instance::{
    LABEL_HOST, LABEL_IMAGE_ID, LABEL_MANAGED, LABEL_ONESHOT, LABEL_PROXY, LABEL_RESOURCE, LABEL_REVISION,
    LABEL_SPEC_HASH, LABEL_STOP_TIMEOUT,
};
pub use mounts::parse_env_file;
