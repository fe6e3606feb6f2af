//! How the Docker driver judges what went wrong (PRODUCT.md behaviour 8): an engine answer
//! by its HTTP status first (`judge_engine`), a transport failure as a fault, a revision that
//! lacks what the spec names as a verdict. Pure functions over errors: no engine is asked.
//!
//! Architecture Invariant: only this file reads an engine's error text, and only for a 500
//! (docs/reliability.md, "Where text is still read").

use bollard::errors::Error as BollardError;

use super::caddy::CaddyError;
use crate::runtime::RuntimeError;

/// The engine could not be talked to: a fault.
pub(super) fn unreachable(e: BollardError) -> RuntimeError {
    RuntimeError::DockerUnreachable { detail: e.to_string() }
}

/// The engine answered 404.
pub(super) fn is_not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

/// An engine error about `resource`, judged by `judge_engine` (the HTTP status first); a
/// transport error (the engine did not answer) is a fault.
pub(super) fn docker_err(resource: &str, e: BollardError) -> RuntimeError {
    match &e {
        BollardError::DockerResponseServerError { status_code, message } => match judge_engine(*status_code, message) {
            EngineJudgement::Refused => {
                RuntimeError::Docker { resource: resource.to_string(), detail: message.clone() }
            }
            EngineJudgement::Host => RuntimeError::Engine { resource: resource.to_string(), detail: message.clone() },
        },
        _ if is_transport(&e) => unreachable(e),
        // An answer the client could not read (JSON of another shape): the engine's side.
        other => RuntimeError::Engine { resource: resource.to_string(), detail: other.to_string() },
    }
}

/// What an engine's error answer says, whoever is to blame (PRODUCT.md behaviour 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineJudgement {
    /// The engine refused what the spec asks (a verdict on the revision).
    Refused,
    /// The host or the engine is at fault (retried with backoff).
    Host,
}

/// Judge an engine's error answer by its HTTP status: a 4xx is the engine refusing what was
/// asked (a bad parameter 400, a conflict 409, a missing object 404, a refused pool 403) — a
/// verdict; a 5xx other than 500 is the engine's trouble — a fault. A 500 is all the engine
/// says for both (Debian's 20.10 answers a taken port, a missing device, an unknown user and
/// an OCI runtime refusal all with 500), and only there its message is read: the host's
/// conditions (`fault::engine_message_is_fault`) are faults, the refusals of the spec below
/// are verdicts, and anything else is a fault (retrying loses nothing; a newer revision
/// still gets through, behaviour 10). The table is tested with answers recorded from the
/// real engine.
pub fn judge_engine(status: u16, message: &str) -> EngineJudgement {
    /// What a 500 says when the spec asks what cannot be (recorded from docker.io 20.10).
    const REFUSALS: &[&str] = &[
        "oci runtime create failed",          // runc refused the process: exec, a sysctl, a mount
        "oci runtime exec failed",            // the same for an exec
        "unable to find user",                // spec.user unknown to the image
        "unable to find group",               // spec.group_add unknown to the image
        "error gathering device information", // spec.devices names no device of the host
        "could not select device driver",     // spec.device_requests: no such driver (GPUs)
        "--storage-opt is supported only",    // spec.storage_opt on a driver without quotas
    ];
    match status {
        400..=499 => EngineJudgement::Refused,
        500 => {
            let m = message.to_ascii_lowercase();
            if crate::fault::engine_message_is_fault(&m) {
                EngineJudgement::Host
            } else if REFUSALS.iter().any(|r| m.contains(r)) {
                EngineJudgement::Refused
            } else {
                EngineJudgement::Host
            }
        }
        _ => EngineJudgement::Host,
    }
}

/// An `external` volume or network that is not on the host: the host's state to fix (a
/// fault), and never a reason to create an empty one.
pub(super) fn external_missing(resource: &str, what: &str, name: &str) -> RuntimeError {
    RuntimeError::Host {
        resource: resource.to_string(),
        detail: format!(
            "the {what} {name} is external (it must exist already) and is not on this host: create it (docker {what} create {name}), restore it, or fix its name in the desired state"
        ),
    }
}

/// Whether `e` says the container was being removed by someone else meanwhile.
pub(super) fn being_removed(e: &RuntimeError) -> bool {
    match e {
        RuntimeError::Docker { detail, .. } | RuntimeError::Engine { detail, .. } => {
            let d = detail.to_ascii_lowercase();
            d.contains("marked for removal") || (d.contains("removal of container") && d.contains("in progress"))
        }
        _ => false,
    }
}

/// Whether the engine could not be talked to at all.
pub(super) fn is_transport(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_)
            | BollardError::HyperLegacyError { .. }
    )
}

/// An error of Caddy's admin API about `resource`'s route: Caddy refusing the change with a
/// 4xx is a verdict on the revision (its `proxy:` asks what Caddy will not do, e.g. listen
/// on an address another process holds), quoting Caddy; no answer or a 5xx is a fault.
pub(super) fn proxy_err(resource: &str, e: CaddyError) -> RuntimeError {
    match &e {
        CaddyError::Refused { status: 400..=499, .. } => RuntimeError::ProxyRefused {
            resource: resource.to_string(),
            detail: format!(
                "{e} — Caddy refuses the route this revision's proxy: asks for; fix proxy: in the desired state (or free what Caddy needs on the host), then push a new revision or run agentctl sync --retry"
            ),
        },
        _ => RuntimeError::Host { resource: resource.to_string(), detail: e.to_string() },
    }
}

/// Reading the revision's files failed: a fault when the mirror or the disk is to blame, a
/// verdict when the revision lacks what the spec names.
pub(super) fn files_err(name: &str, e: crate::revision::FilesError) -> RuntimeError {
    if e.fault {
        RuntimeError::Host { resource: name.to_string(), detail: e.detail }
    } else {
        RuntimeError::Docker { resource: name.to_string(), detail: e.detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers recorded from Debian's docker.io 20.10.24 (API 1.41) on this project's CI
    /// machine, with `curl --unix-socket` (docs/reliability.md, "Where text is still read").
    #[test]
    fn engine_answers_are_judged_by_status_first() {
        use EngineJudgement::{Host, Refused};
        let recorded: &[(u16, &str, EngineJudgement)] = &[
            (400, "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/nope\": stat /nope: no such file or directory: unknown", Refused),
            (400, "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/bin\": permission denied: unknown", Refused),
            (400, "invalid mount config for type \"bind\": bind source path does not exist: /does/not/exist", Refused),
            (400, "invalid reference format: repository name must be lowercase", Refused),
            (400, "the working directory 'rel' is invalid, it needs to be an absolute path", Refused),
            (400, "error looking up logging plugin nope: plugin \"nope\" not found", Refused),
            (400, "invalid CapAdd: unknown capability: \"CAP_NOPE\"", Refused),
            (400, "Minimum memory limit allowed is 6MB", Refused),
            (400, "invalid mount path: 'rel' mount path must be absolute", Refused),
            (403, "Pool overlaps with other one on this address space", Refused),
            (404, "create recv: error looking up volume plugin nope: plugin \"nope\" not found", Refused),
            (409, "Conflict. The container name \"/rec1\" is already in use by container \"3c85fc8eb414\". You have to remove (or rename) that container to be able to reuse that name.", Refused),
            (500, "driver failed programming external connectivity on endpoint rec4 (9f2f6f63127d): Error starting userland proxy: listen tcp4 127.0.0.1:28123: bind: address already in use", Host),
            (500, "error gathering device information while adding custom device \"/dev/nope\": no such file or directory", Refused),
            (500, "unable to find user nobody-here: no matching entries in passwd file", Refused),
            (500, "failed to create shim task: OCI runtime create failed: runc create failed: sysctl \"kernel.nope\" is not in a separate kernel namespace: unknown", Refused),
            (500, "could not select device driver \"\" with capabilities: [[gpu]]", Refused),
            (500, "--storage-opt is supported only for overlay over xfs with 'pquota' mount option", Refused),
            (400, "could not get container for nosuch: No such container: nosuch", Refused),
            // A 500 worded in a way the table does not know is the engine's trouble: retried.
            (500, "failed to create task: context deadline exceeded", Host),
            (500, "containerd: connection refused", Host),
            (500, "write /var/lib/docker/containers/x/config.v2.json: no space left on device", Host),
            // Whatever a 4xx says, the engine refused the spec; whatever a 503 says, it is down.
            (400, "no space left on device", Refused),
            (503, "invalid reference format", Host),
        ];
        for (status, message, want) in recorded {
            assert_eq!(judge_engine(*status, message), *want, "{status} {message}");
        }
    }
}
