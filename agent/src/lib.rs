//! Driftless agent library: everything `agentd` and `agentctl` share. The binaries in
//! `src/bin/` are thin edges (argument parsing, exit codes, `anyhow`); the logic is here.
//!
//! Code map (details in docs/architecture.md): `config` — the agent's own config file;
//! `source` — the Git mirror, ref selection, reading and exporting revisions, signatures;
//! `plan` — the pure planning core; `runtime` — the `Driver` trait and its drivers (Docker,
//! Passenger, NixOS); `fault` — verdicts and faults; `revision` — commit ids;
//! `event` — what the reconciler consumes; `wire` — the control protocol's types;
//! `listen` — the shared accept loop and `Shutdown`; `lock` — one agent per `state_dir`;
//! `health` — the gate; `reconciler` — the task that owns the state and runs cycles;
//! `state` — what survives a restart (state, history, journal); `control` — the Unix-socket
//! API and its wire types; `cli` — the clap definitions of both binaries; `semver_range` —
//! npm-style ranges; `fsutil` — atomic, durable writes; `validate` — `agentctl validate`'s
//! report; `webhook` — push notifications that trigger a poll; `metrics`, `notify`,
//! `sdnotify` — Prometheus metrics, deployment notifications, systemd's notify protocol.

pub mod cli;
pub mod config;
pub mod control;
pub mod event;
pub mod failpoint;
pub mod fault;
pub mod fleet;
pub mod fsutil;
pub mod fuzzing;
pub mod health;
pub mod listen;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod reconciler;
pub mod report_format;
pub mod revision;
pub mod runtime;
pub mod sdnotify;
pub mod secrets;
pub mod semver_range;
pub mod snapshots;
pub mod source;
pub mod state;
pub mod validate;
pub mod webhook;
pub mod wire;
