//! Crash-safe file system steps: write to a temporary file, fsync it, rename it over the
//! target, fsync the folder. Whatever reads the target afterwards sees the old or the new
//! content, never a torn one, even after a power cut. Also the few file reads several
//! modules share (a tree copy, a tree's size, the tail of a log).

use std::io::Write;
use std::path::Path;

/// Copy the folder `from` to `to` (files, symlinks as links, subfolders).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_path_with(from, to, &|a, b| std::fs::copy(a, b).map(|_| ()))
}

/// Copy `from` — a file, a symlink (as a link) or a folder, recursively — to `to`, each file
/// with `copy_file` (a database-aware copy, where the caller has one).
pub fn copy_path_with(
    from: &Path,
    to: &Path,
    copy_file: &dyn Fn(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let t = std::fs::symlink_metadata(from)?.file_type();
    if t.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if t.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_path_with(&e.path(), &to.join(e.file_name()), copy_file)?;
        }
        Ok(())
    } else {
        copy_file(from, to)
    }
}

/// The bytes of the files under `path` (a file: its size; links not followed; what cannot
/// be read counts 0).
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| tree_size(&e.path())).sum()
}

/// fsync a folder, so that renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Replace `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary files left");
    }
}

/// The last `n` lines of a text file (read from its last 256 KiB only, so a huge log costs
/// no more than a small one); invalid UTF-8 is replaced.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 256 * 1024;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(WINDOW);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(WINDOW).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    Ok(lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect())
}

#[cfg(test)]
mod tail_tests {
    #[test]
    fn tail_lines_reads_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        let t = super::tail_lines(&p, 3).unwrap();
        assert_eq!(t, ["line 99997", "line 99998", "line 99999"]);
        std::fs::write(&p, "one\ntwo\n").unwrap();
        assert_eq!(super::tail_lines(&p, 50).unwrap(), ["one", "two"]);
    }
}

/// The home folder of the user this process runs as (its passwd entry; `$HOME` when that
/// cannot be read): what `~` means in a compose file this process applies, as it means the
/// home of whoever runs `docker compose`.
pub fn home_dir() -> Option<String> {
    let from_passwd = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir.display().to_string())
        .filter(|d| !d.is_empty());
    from_passwd.or_else(|| std::env::var("HOME").ok().filter(|h| h.starts_with('/')))
}

/// A small text file of settings on the disk (a compose `label_file`, an include's
/// `env_file`) by path; `None` when it is not there, not a file, or larger than a
/// desired-state file may be.
pub fn read_settings_file(path: &str) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > desired_state_schema::load::MAX_FILE_BYTES as u64 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}
