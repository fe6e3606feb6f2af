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
//! Error types implement `Classify`; the reconciler asks them. Which class an error is gets
//! decided where the error is made, from structured answers first (an HTTP status, an
//! errno, an exit status, a file system's free space), from an engine's own error message
//! only where that is all it gives (`engine_message_is_fault`), and never from what a build
//! step or a child process printed: a build whose step prints "connection refused" and
//! exits 1 is a verdict.

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

/// Whether the file system holding `path` is full (no blocks or no inodes left for an
/// unprivileged writer, or under 1 MiB free): a fact to ask after a child failed, instead
/// of reading what it printed.
pub fn disk_full(path: &std::path::Path) -> bool {
    let mut at = path;
    // The path may not exist yet (a release folder being made): ask its nearest ancestor.
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p,
            None => return false,
        }
    }
    match nix::sys::statvfs::statvfs(at) {
        Ok(s) => {
            let free = s.blocks_available().saturating_mul(s.fragment_size());
            free < 1024 * 1024 || (s.files() > 0 && s.files_available() == 0)
        }
        Err(_) => false,
    }
}

/// An engine's own error message (the Docker engine's answer to an API call, where it gives
/// no status that decides) that means the host is at fault, not the revision: the disk
/// full, the engine's socket gone, a port taken, a name that does not resolve. Never use it
/// on what a child process or a build step printed (PRODUCT.md behaviour 8).
pub fn engine_message_is_fault(text: &str) -> bool {
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
    ];
    let t = text.to_ascii_lowercase();
    HOST.iter().any(|h| t.contains(h))
}

/// An error and its causes on one line (reqwest hides the useful part in the source chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_text() {
        assert!(io_is_fault(&std::io::Error::from_raw_os_error(28)), "ENOSPC");
        assert!(io_is_fault(&std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        assert!(!io_is_fault(&std::io::Error::from(std::io::ErrorKind::NotFound)));
        assert!(engine_message_is_fault("write /var/lib/docker/x: No space left on device"));
        assert!(engine_message_is_fault("Bind for 127.0.0.1:8080 failed: port is already allocated"));
        assert!(!engine_message_is_fault("exec: \"/app\": stat /app: no such file or directory"));
        assert!(!disk_full(std::path::Path::new("/tmp/does/not/exist/yet")), "asks the nearest ancestor");
    }
}
