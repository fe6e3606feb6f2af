//! `source.watch: true`: react to ref changes in a repository on this machine at once, with
//! inotify (notify). Watches the refs folder and `packed-refs` of the repository (bare or
//! not); any change there calls `on_change`, debounced to one call per burst (a push writes
//! several files). Remotes cannot be watched: a webhook is their equivalent.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path} for ref changes: {detail}; polling every source.interval continues")]
pub struct WatchError {
    pub path: PathBuf,
    pub detail: String,
}

/// The git directory of a local repository path (`repo.git` or `repo/.git`).
pub fn git_dir(path: &Path) -> PathBuf {
    let dotgit = path.join(".git");
    if dotgit.is_dir() {
        dotgit
    } else {
        path.to_path_buf()
    }
}

/// Start watching; keep the returned watcher alive for as long as the watch should last.
pub fn watch(repo: &Path, on_change: impl Fn() + Send + 'static) -> Result<RecommendedWatcher, WatchError> {
    let dir = git_dir(repo);
    let err = |e: notify::Error| WatchError { path: dir.clone(), detail: e.to_string() };
    let (tx, rx) = channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let relevant = ev.paths.iter().any(|p| {
                p.components().any(|c| c.as_os_str() == "refs")
                    || p.file_name().is_some_and(|n| n == "packed-refs" || n == "HEAD")
            });
            if relevant {
                let _ = tx.send(());
            }
        }
    })
    .map_err(err)?;
    // The folder itself (non-recursively) catches packed-refs being renamed into place.
    watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(err)?;
    watcher.watch(&dir.join("refs"), RecursiveMode::Recursive).map_err(err)?;
    std::thread::spawn(move || {
        while rx.recv().is_ok() {
            // Debounce: wait until the burst is over.
            loop {
                match rx.recv_timeout(Duration::from_millis(150)) {
                    Ok(()) => continue,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            on_change();
        }
    });
    Ok(watcher)
}
