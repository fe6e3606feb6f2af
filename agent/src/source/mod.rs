//! The Git source: the agent's eyes on the desired-state repository (`git`: the mirror,
//! fetch, ref selection, reading and exporting a revision, pins), with SSH host keys
//! (`known_hosts`), signatures (`verify`), `source.watch` (`watch`) and host reports in Git
//! (`report`).
//!
//! Architecture Invariant: this file only wires — no part imports it (`tests/layers.rs`).

mod git;
pub mod known_hosts;
pub mod report;
pub mod verify;
pub mod watch;

pub use git::*;
