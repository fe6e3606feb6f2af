//! `CycleError`: everything that can stop a cycle, typed until it is shown, and classified as
//! a verdict on the revision or a fault of the host or network (`crate::fault`).

use crate::fault::{Class, Classify};
use crate::health::GateFailure;
use crate::runtime::RuntimeError;
use crate::source::SourceError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// Selecting, verifying or reading the revision.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The revision's desired state is invalid (every problem, with file:line:column).
    #[error(transparent)]
    Invalid(#[from] desired_state_schema::Invalid),
    /// A driver could not observe, converge, remove or commit.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A health check failed (or a resource died during the gate).
    #[error(transparent)]
    Gate(#[from] GateFailure),
    /// The agent's own state could not be written (disk full, permissions).
    #[error(transparent)]
    State(#[from] StateError),
    /// A data snapshot could not be kept, found or read.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshots::SnapshotError),
    /// A blocking task of the agent failed (it panicked or was cancelled).
    #[error("an internal task failed: {0}; the agent retries")]
    Task(String),
    /// A shutdown was asked for between steps; the journal finishes the job on start.
    #[error("stopping: the agent was asked to shut down; the journal finishes this on start")]
    Stopping,
    /// An operator's request that cannot be carried out (an unknown rollback target, …).
    #[error("{0}")]
    Refused(String),
}

impl Classify for CycleError {
    fn class(&self) -> Class {
        match self {
            CycleError::Source(e) => e.class(),
            CycleError::Runtime(e) => e.class(),
            CycleError::Snapshot(e) => e.class(),
            CycleError::Invalid(_) | CycleError::Gate(_) | CycleError::Refused(_) => Class::Verdict,
            CycleError::State(_) | CycleError::Task(_) | CycleError::Stopping => Class::Fault,
        }
    }
}

impl CycleError {
    /// The resource the error is about, when it names one.
    pub fn resource(&self) -> Option<&str> {
        match self {
            CycleError::Runtime(e) => e.resource(),
            CycleError::Gate(g) => Some(&g.resource),
            _ => None,
        }
    }
}

impl From<tokio::task::JoinError> for CycleError {
    fn from(e: tokio::task::JoinError) -> Self {
        CycleError::Task(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let unreachable = CycleError::Source(SourceError::Unreachable { url: "u".into(), detail: "d".into() });
        assert!(unreachable.is_fault());
        let refused = CycleError::Source(SourceError::SignatureRefused { revision: "r".into(), detail: "d".into() });
        assert!(!refused.is_fault());
        assert!(CycleError::Runtime(RuntimeError::DockerUnreachable { detail: "d".into() }).is_fault());
        assert!(!CycleError::Runtime(RuntimeError::Docker { resource: "r".into(), detail: "d".into() }).is_fault());
        assert!(!CycleError::Gate(GateFailure { resource: "r".into(), what: "w".into() }).is_fault());
    }
}
