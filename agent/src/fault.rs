//! Verdicts and faults (PRODUCT.md behaviour 8). Every error the reconciler meets is one of
//! two things:
//!
//! - a **verdict** on the revision: its own content is wrong — invalid state, a failed build,
//!   a container that exits, a health check that fails. Only a verdict marks a revision
//!   failed and puts the host back on the last good revision.
//! - a **fault** of the host or the network — the Docker engine or Nix daemon unreachable,
//!   the Git remote unreachable or refusing auth, a registry unreachable, the disk full, a
//!   timeout talking to any of them. A fault marks nothing and reverts nothing: the agent
//!   says what is wrong (`Degraded`), retries with backoff, and carries on by itself once the
//!   fault clears; an apply it interrupted is finished like a crash.
//!
//! Error types implement `Classify`; the reconciler asks them, never string-matches.

/// Whose fault an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The revision's own content is wrong.
    Verdict,
    /// The host or the network is at fault; the revision is not judged.
    Fault,
}

/// Errors that know whether they judge the revision.
pub trait Classify {
    fn class(&self) -> Class;

    fn is_fault(&self) -> bool {
        self.class() == Class::Fault
    }
}

/// An I/O error that says the host is at fault (disk full, no permission, read-only file
/// system, out of memory or file handles) rather than the revision.
pub fn io_is_fault(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        StorageFull
            | PermissionDenied
            | ReadOnlyFilesystem
            | OutOfMemory
            | QuotaExceeded
            | ResourceBusy
            | TimedOut
            | ConnectionRefused
            | ConnectionReset
            | NotConnected
            | BrokenPipe
            | HostUnreachable
            | NetworkUnreachable
    ) || matches!(e.raw_os_error(), Some(code) if code == 24 || code == 23 || code == 28 || code == 122)
}

/// Messages of tools and engines that mean the host is at fault, not the revision (for
/// errors that reach us only as text: a child's output, an engine's error message).
pub fn text_is_fault(text: &str) -> bool {
    const HOST: &[&str] = &[
        "no space left on device",
        "disk quota exceeded",
        "read-only file system",
        "cannot allocate memory",
        "too many open files",
        "cannot connect to the docker daemon",
        "cannot connect to socket",
        "connection refused",
        "connection reset",
        "address already in use",
        "port is already allocated",
        "i/o timeout",
        "tls handshake timeout",
        "temporary failure in name resolution",
        "no such host",
        "network is unreachable",
        "unauthorized: authentication required",
        "no basic auth credentials",
    ];
    let t = text.to_ascii_lowercase();
    HOST.iter().any(|h| t.contains(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_text() {
        assert!(io_is_fault(&std::io::Error::from_raw_os_error(28)), "ENOSPC");
        assert!(io_is_fault(&std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        assert!(!io_is_fault(&std::io::Error::from(std::io::ErrorKind::NotFound)));
        assert!(text_is_fault("write /var/lib/docker/x: No space left on device"));
        assert!(text_is_fault("Bind for 127.0.0.1:8080 failed: port is already allocated"));
        assert!(!text_is_fault("exec: \"/app\": stat /app: no such file or directory"));
    }
}
