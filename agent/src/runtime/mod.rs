//! Runtimes: the I/O edge between plans and the host. Each kind of resource has one
//! `Driver`, and `Drivers` holds them as a map from kind to driver; nothing outside this
//! folder knows a kind's quirks. A driver answers:
//!
//! - **observe**: which resources of my kind do I manage, with which spec hash and revision,
//!   and are they running? (`plan::Observed`)
//! - **fetch**: bring from outside what R needs at revision V — pull its image, build it —
//!   without touching anything that runs. The reconciler fetches for every changing
//!   resource before the first running thing is touched (PRODUCT.md behaviour 8).
//! - **inputs**: what on the host feeds a resource's spec hash (env file contents, the local
//!   image id, the source tree)?
//! - **converge**: make resource R run spec S from revision V. Idempotent, so that re-running
//!   it after a crash or a fault at any point finishes the job. Reverting is converging every
//!   resource to the last good revision's specs (reusing what was kept: an image, a release
//!   folder, a Nix generation — never a rebuild when it can be avoided).
//! - **restart**: restart R, which is up to date, after a dependency it names with
//!   `restart: true` was updated.
//! - **remove**: stop managing R on this host (data is kept: volumes, `shared/`, backups).
//! - gate hooks: **gated** (does the live gate apply), **watch** (has R already failed?),
//!   **self_check** (the `container` probe: the runtime's own health verdict), **commit**
//!   (after the gate: NixOS makes the system the boot default).
//! - **describe**: a line for the history about what R now runs.
//! - **reachable**: is the backend there at all? A verdict-looking failure (a gate that
//!   failed, an engine error) while the backend is unreachable is a fault, not a verdict.
//! - **observation_token**: has anything it would observe changed since it last looked? A
//!   driver fed by its engine's events (Docker) answers from the feed, and `Drivers` then
//!   reuses the last observation instead of asking the engine again — for at most `RESYNC`,
//!   after which it looks anyway (the poll stays the safety net for a feed that stalls).
//!
//! Every method but `kind`, `observe`, `converge` and `remove` has a default for runtimes
//! with nothing to do. Adding a runtime: a variant in the schema's `Kind`/`Spec`, one file
//! here implementing `Driver`, one line in `agentd` registering it, and docs.
//!
//! The parts: `driver` (the trait, `RuntimeError`, `Log`, `Liveness`), `drivers` (the map
//! and the shared observation), `streaming` (child processes whose output streams), and
//! one part per runtime: `docker/`, `passenger`, `nixos`.
//!
//! Architecture Invariant: this file only wires — no part imports it (`tests/layers.rs`).

pub mod docker;
mod driver;
mod drivers;
pub mod nixos;
pub mod passenger;
mod streaming;

pub use driver::*;
pub use drivers::*;
pub use streaming::*;
