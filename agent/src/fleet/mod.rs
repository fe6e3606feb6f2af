//! Fleets through Git (PRODUCT.md "Fleets"), one part per stage, each at its own layer:
//! `summary` (`agentctl fleet`: every host's last report, read in one fetch, judged and
//! summed up per host), `gate` (rollout gates and deploy windows, pure), `reporter` (the
//! task that pushes this host's signed report). The report format they share is
//! `crate::report_format`; the Git transport is `crate::source::report`.
//!
//! Architecture Invariant: this file only wires — no part imports it (`tests/layers.rs`).

pub mod gate;
pub mod reporter;
mod summary;

pub use summary::*;
