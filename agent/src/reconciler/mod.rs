//! The reconciler: the one task that owns the agent's state. It consumes a closed set of
//! events (`crate::event`: timer, ref change, webhook, control command, a runtime's change, a
//! report pushed), follows one `listen::Shutdown`, and runs
//! reconcile cycles:
//!
//! select (fetch, resolve, verify) → read and validate the desired state → observe → plan →
//! apply (each step journalled first) → gate → commit (last good) or revert.
//!
//! Every error is typed (`CycleError`) and is either a verdict on the revision or a fault of
//! the host or network (`crate::fault`). Only verdicts fail a revision and revert; a fault
//! leaves the host as it is, the journal (if an apply was under way) on disk, the phase
//! `Degraded`, and the next cycle comes after a backoff (1 s doubling, capped at
//! `source.interval`). A cycle selects first, then finishes a journal it finds (like after
//! a crash) — or, when a newer revision, a rollback pin or `sync --retry` supersedes an
//! interrupted apply, reverts it to the last good revision and goes on (PRODUCT.md
//! behaviour 10): a fault that keeps an apply from finishing never keeps a fix out.
//!
//!
//! Parts: `task` (the struct, start, the run loop, backoff), `parts` (the parts it wires, each owning its data), `cycle` (one cycle: select,
//! finish or pre-empt a journal, decide; `diff`, `rollback`), `apply` (plan, the
//! journalled waves, the gate, commit), `data` (snapshots before a revision, restored with
//! its revert, restores by hand), `revert` (revert, journal recovery, drift), `record`
//! (the one way out of a cycle: state saved, history recorded, status published). Blocking
//! work (git2, the file system) runs in `spawn_blocking`. Readers of the status never wait
//! for a cycle: a snapshot is published on a watch channel after every change.
//!
//! Architecture Invariant: this file only wires — no part imports it (`tests/layers.rs`).

mod apply;
mod cycle;
mod data;
mod error;
mod health_watch;
mod parts;
mod record;
mod revert;
mod task;
#[cfg(test)]
mod tests;

pub use crate::event::{Command, Event};
pub use crate::revision::short;
pub use error::CycleError;
pub use parts::Trigger;
pub use task::*;
