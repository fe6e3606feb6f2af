//! The exclusive lock on `state_dir`: one agent per state, whether the daemon or
//! `agentd --once` from cron. `flock(2)` on `state_dir/agentd.lock`, which holds the pid of
//! the holder so that the loser can name it. The kernel drops the lock when the holder exits,
//! even by `kill -9`, so a stale lock file never blocks a start.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Held for the life of the agent; dropping it releases the lock.
pub struct StateLock {
    _file: Flock<File>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: another agent (pid {pid}) holds the state; stop it first (systemctl stop driftless), or give this one its own state_dir")]
    Held { path: PathBuf, pid: String },
    #[error("{path}: cannot lock the state: {detail}; check that state_dir is writable")]
    Io { path: PathBuf, detail: String },
}

/// Take the lock on `state_dir` (created if missing), or say who holds it.
pub fn lock(state_dir: &Path) -> Result<StateLock, LockError> {
    let path = state_dir.join("agentd.lock");
    let io = |e: &dyn std::fmt::Display| LockError::Io { path: path.clone(), detail: e.to_string() };
    std::fs::create_dir_all(state_dir).map_err(|e| io(&e))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io(&e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            let f: &mut File = &mut locked;
            f.set_len(0).map_err(|e| io(&e))?;
            f.rewind().map_err(|e| io(&e))?;
            f.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(|e| io(&e))?;
            f.sync_all().map_err(|e| io(&e))?;
            Ok(StateLock { _file: locked })
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            Err(LockError::Held { path, pid: if pid.is_empty() { "unknown".into() } else { pid.to_string() } })
        }
        Err((_, e)) => Err(io(&e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = super::lock(dir.path()).unwrap();
        let err = super::lock(dir.path()).err().unwrap();
        assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
        drop(held);
        assert!(super::lock(dir.path()).is_ok(), "released on drop");
    }
}
