//! Driftless agent library: everything `agentd` and `agentctl` share. The binaries in
//! `src/bin/` are thin edges (argument parsing, exit codes, `anyhow`); the logic is here.
//!
//! Code map: `config` — the agent's own config file; `source` — the Git mirror, ref
//! selection, reading and exporting revisions, signatures; `semver_range` — npm-style ranges
//! and the semver tag pick; `fsutil` — atomic, durable writes; `validate` — `agentctl
//! validate`'s report.

pub mod config;
pub mod fsutil;
pub mod semver_range;
pub mod source;
pub mod validate;
