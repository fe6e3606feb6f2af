//! Data snapshots on disk (PRODUCT.md "Data: snapshots and restore"): one folder per
//! snapshot under `snapshots.dir` (default `state_dir/snapshots`), holding the content a
//! driver wrote (`HashingFile` hashes it as it is written) and a `manifest.json` (volume,
//! the revision it was taken before, time, size, consistency, sha256 of each content file).
//!
//! Architecture Invariant: a snapshot is whole or absent. It is made in a `.partial-<id>`
//! folder and renamed to `<id>` only after its content and manifest are fsynced, so a crash
//! leaves a partial folder (removed at start, `clean_partials`) and never a snapshot that
//! lists content it lacks. Nothing here deletes a snapshot but `prune`, which is told what
//! must be kept.
//!
//! Deliberately absent: compression (a tar as the engine gives it; the bench compares it with
//! `tar | zstd`), and any knowledge of where a volume's data lives (the drivers own that).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use desired_state_schema::Consistency;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fault::{Class, Classify};
use crate::fsutil;
use crate::wire::SnapshotView;

/// The manifest's file name inside a snapshot's folder.
pub const MANIFEST: &str = "manifest.json";
/// The prefix of a snapshot being made.
const PARTIAL: &str = ".partial-";

/// One content file of a snapshot, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentFile {
    /// Its name inside the snapshot's folder (`data.tar`, `dump`).
    pub name: String,
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// What a data set is (a snapshot of it says the same in its manifest): where its data lives
/// decides who copies it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Place {
    /// A named volume of the container engine: its driver copies it (`Driver::snapshot`).
    #[default]
    Volume,
    /// Files and folders the agent reaches itself, `entries` below `root` (a PassengerApp's
    /// `backup:` paths in its `shared/`): copied here (`copy_entries`, SQLite databases
    /// through SQLite's online backup), put back by `restore_entries`.
    Files { root: PathBuf, entries: Vec<String> },
}

/// Data the agent snapshots before a revision and puts back with its revert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSet {
    /// Unique on the host: a volume's engine name, or `<app>.backup`.
    pub name: String,
    pub keep: u32,
    pub consistency: Consistency,
    pub place: Place,
}

/// What a snapshot's `manifest.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// What `agentctl snapshots --json` shows.
    #[serde(flatten)]
    pub view: SnapshotView,
    /// How it was made consistent, in full: a restore of an `exec` dump runs its `restore`.
    pub consistency_spec: Consistency,
    /// The volume's `keep` when it was taken (a `failed-attempt` snapshot is kept under it).
    #[serde(default)]
    pub keep: u32,
    /// The content, each file with its digest (checked before a restore).
    pub files: Vec<ContentFile>,
    /// Where the data lives (a volume, or files the agent reaches).
    #[serde(default)]
    pub place: Place,
}

/// Why the snapshot store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}; check free space and permissions of the snapshots folder (snapshots.dir)")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no snapshot {id} in {dir}: list them with agentctl snapshots")]
    Unknown { id: String, dir: PathBuf },
    #[error("snapshot {id} is damaged ({detail}): it is not restored; pick another with agentctl snapshots")]
    Damaged { id: String, detail: String },
    #[error("not enough free space for a snapshot of volume {volume}: it holds about {need} and {dir} has {free} free; free some space or point snapshots.dir elsewhere (nothing was changed)")]
    NoSpace { volume: String, need: String, free: String, dir: PathBuf },
}

impl Classify for SnapshotError {
    fn class(&self) -> Class {
        match self {
            // The host's disk or folder: a fault, retried.
            SnapshotError::Io { .. } | SnapshotError::NoSpace { .. } => Class::Fault,
            SnapshotError::Unknown { .. } | SnapshotError::Damaged { .. } => Class::Verdict,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_path_buf(), source }
}

/// A file being written, hashed on the way.
pub struct HashingFile {
    name: String,
    file: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    bytes: u64,
}

impl HashingFile {
    /// Create `name` in the folder `dir`.
    pub fn create(dir: &Path, name: &str) -> std::io::Result<HashingFile> {
        let file = std::fs::File::create(dir.join(name))?;
        Ok(HashingFile {
            name: name.to_string(),
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        // A copy that moves is progress: a long one never starves the watchdog.
        crate::sdnotify::progress();
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk)
    }

    /// Flush and fsync; what the manifest lists.
    pub fn finish(self) -> std::io::Result<ContentFile> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(ContentFile { name: self.name, bytes: self.bytes, sha256: hex(&self.hasher.finalize()) })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` bytes for people: `1.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// A snapshot being made: its folder, renamed into place by `finish`.
#[derive(Debug)]
pub struct Partial {
    dir: PathBuf,
    root: PathBuf,
    id: String,
}

impl Partial {
    /// The folder the driver writes the content into.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Write the manifest, make everything durable and put the snapshot in place.
    pub fn finish(self, mut manifest: Manifest) -> Result<Manifest, SnapshotError> {
        manifest.view.id = self.id.clone();
        manifest.view.bytes = manifest.files.iter().map(|f| f.bytes).sum();
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| SnapshotError::Io { path: self.dir.clone(), source: std::io::Error::other(e) })?;
        fsutil::write_atomic(&self.dir.join(MANIFEST), &json).map_err(io(&self.dir))?;
        let to = self.root.join(&self.id);
        std::fs::rename(&self.dir, &to).map_err(io(&to))?;
        fsutil::fsync_dir(&self.root).map_err(io(&self.root))?;
        Ok(manifest)
    }

    /// Give up: the folder goes (it never was a snapshot).
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The snapshots folder.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start a snapshot of `volume` taken at `time` (RFC 3339): its id is the time and the
    /// volume (`20261208T101500Z-db-data`), with a counter when that exists already.
    pub fn begin(&self, volume: &str, time: &str) -> Result<Partial, SnapshotError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        // What a database holds is for root's eyes only, wherever `snapshots.dir` points.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&self.dir))?;
        }
        let stamp: String = time.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let mut id = format!("{stamp}-{volume}");
        let mut n = 2;
        while self.dir.join(&id).exists() || self.dir.join(format!("{PARTIAL}{id}")).exists() {
            id = format!("{stamp}-{volume}-{n}");
            n += 1;
        }
        let dir = self.dir.join(format!("{PARTIAL}{id}"));
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Partial { dir, root: self.dir.clone(), id })
    }

    /// Remove what a crash left of snapshots being made.
    pub fn clean_partials(&self) {
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(PARTIAL) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Every snapshot, oldest first (folders without a readable manifest are left out).
    pub fn list(&self) -> Vec<Manifest> {
        let mut out: Vec<Manifest> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| std::fs::read(e.path().join(MANIFEST)).ok())
            .filter_map(|b| serde_json::from_slice::<Manifest>(&b).ok())
            .collect();
        out.sort_by(|a, b| (&a.view.time, &a.view.id).cmp(&(&b.view.time, &b.view.id)));
        out
    }

    /// Snapshot `id`: its manifest and folder.
    pub fn get(&self, id: &str) -> Result<(Manifest, PathBuf), SnapshotError> {
        let unknown = || SnapshotError::Unknown { id: id.to_string(), dir: self.dir.clone() };
        if id.is_empty() || id.starts_with('.') || id.contains('/') {
            return Err(unknown());
        }
        let dir = self.dir.join(id);
        let bytes = match std::fs::read(dir.join(MANIFEST)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(SnapshotError::Io { path: dir.join(MANIFEST), source: e }),
        };
        let m = serde_json::from_slice::<Manifest>(&bytes)
            .map_err(|e| SnapshotError::Damaged { id: id.to_string(), detail: format!("manifest.json: {e}") })?;
        Ok((m, dir))
    }

    /// Check every content file of snapshot `id` against its manifest (size and sha256).
    pub fn verify(&self, id: &str) -> Result<(Manifest, PathBuf), SnapshotError> {
        let (m, dir) = self.get(id)?;
        for f in &m.files {
            let path = dir.join(&f.name);
            let file = std::fs::File::open(&path)
                .map_err(|e| SnapshotError::Damaged { id: id.to_string(), detail: format!("{}: {e}", f.name) })?;
            let (bytes, sum) = digest(file).map_err(io(&path))?;
            if bytes != f.bytes || sum != f.sha256 {
                return Err(SnapshotError::Damaged {
                    id: id.to_string(),
                    detail: format!(
                        "{} has {bytes} bytes, sha256 {sum}; the manifest says {} bytes, sha256 {}",
                        f.name, f.bytes, f.sha256
                    ),
                });
            }
        }
        Ok((m, dir))
    }

    /// Free bytes where snapshots are written.
    pub fn free_bytes(&self) -> Result<u64, SnapshotError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let st = nix::sys::statvfs::statvfs(&self.dir)
            .map_err(|e| SnapshotError::Io { path: self.dir.clone(), source: std::io::Error::from(e) })?;
        Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
    }

    /// Whether a snapshot of `volume` holding about `need` bytes fits (with a tenth and
    /// 16 MiB to spare; an empty or missing volume needs nothing): a fault before anything
    /// is touched when it does not.
    pub fn check_space(&self, volume: &str, need: u64) -> Result<(), SnapshotError> {
        if need == 0 {
            return Ok(());
        }
        let free = self.free_bytes()?;
        let want = need + need / 10 + (16 << 20);
        if free < want {
            return Err(SnapshotError::NoSpace {
                volume: volume.to_string(),
                need: human_bytes(need),
                free: human_bytes(free),
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Keep the newest `keep` snapshots of `volume`; never remove one in `protect`. Returns
    /// the ids removed.
    pub fn prune(&self, volume: &str, keep: u32, protect: &BTreeSet<String>) -> Vec<String> {
        let of_volume: Vec<Manifest> = self.list().into_iter().filter(|m| m.view.volume == volume).collect();
        let excess = of_volume.len().saturating_sub(keep.max(1) as usize);
        let mut removed = Vec::new();
        for m in of_volume.iter().take(excess) {
            if protect.contains(&m.view.id) {
                continue;
            }
            // Renamed aside first, so that a crash half-way leaves a partial, not a snapshot
            // whose content is half gone.
            let from = self.dir.join(&m.view.id);
            let aside = self.dir.join(format!("{PARTIAL}{}", m.view.id));
            if std::fs::rename(&from, &aside).is_ok() {
                let _ = std::fs::remove_dir_all(&aside);
                removed.push(m.view.id.clone());
            }
        }
        removed
    }
}

/// The folder of a snapshot of files that holds the copies.
const FILES: &str = "files";
/// Which entries were present when the snapshot was taken.
const ENTRIES: &str = "entries.json";

/// Whether `path` is an SQLite database (its header).
fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"SQLite format 3\0"
}

/// Copy the file `from` to `to`: an SQLite database through SQLite's online backup API (a
/// consistent copy while the app writes), anything else byte for byte; fsynced.
pub fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if is_sqlite(from) {
        let sqlite = |e: rusqlite::Error| std::io::Error::other(format!("{}: SQLite: {e}", from.display()));
        let src =
            rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
        let _ = std::fs::remove_file(to);
        let mut dst = rusqlite::Connection::open(to).map_err(sqlite)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sqlite)?;
            // 256 pages a step, no pause between: the app's writers wait only for a step.
            backup
                .run_to_completion(256, std::time::Duration::ZERO, Some(|_| crate::sdnotify::progress()))
                .map_err(sqlite)?;
        }
        drop(dst);
    } else {
        std::fs::copy(from, to)?;
    }
    crate::sdnotify::progress();
    std::fs::File::open(to)?.sync_all()
}

/// Copy `entries` below `root` (files or folders) into the snapshot folder `into`, and
/// which of them were there; every file copied is listed with its digest.
pub fn copy_entries(root: &Path, entries: &[String], into: &Path) -> std::io::Result<Vec<ContentFile>> {
    let mut present: Vec<(String, bool)> = Vec::new();
    let files = into.join(FILES);
    std::fs::create_dir_all(&files)?;
    for entry in entries {
        let entry = entry.trim_end_matches('/').to_string();
        let from = root.join(&entry);
        let there = std::fs::symlink_metadata(&from).is_ok();
        if there {
            let to = files.join(&entry);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            copy_any(&from, &to)?;
        }
        present.push((entry, there));
    }
    let mut out = Vec::new();
    let mut f = HashingFile::create(into, ENTRIES)?;
    f.write(&serde_json::to_vec_pretty(&present).map_err(std::io::Error::other)?)?;
    out.push(f.finish()?);
    let mut stack = vec![files.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else if e.file_type()?.is_file() {
                out.push(hash_file(into, &e.path())?);
            }
        }
    }
    fsutil::fsync_dir(into)?;
    Ok(out)
}

/// A file or a folder (SQLite databases inside it too, through `copy_file`), links as links.
pub fn copy_any(from: &Path, to: &Path) -> std::io::Result<()> {
    fsutil::copy_path_with(from, to, &copy_file)
}

/// The size and sha256 (lowercase hex) of what `file` holds, read once.
fn digest(mut file: std::fs::File) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex(&hasher.finalize())))
}

/// The digest of `path`, named relative to the snapshot folder `dir`.
fn hash_file(dir: &Path, path: &Path) -> std::io::Result<ContentFile> {
    let (bytes, sha256) = digest(std::fs::File::open(path)?)?;
    let name = path.strip_prefix(dir).unwrap_or(path).to_string_lossy().into_owned();
    Ok(ContentFile { name, bytes, sha256 })
}

/// Put the entries a snapshot of files holds (folder `from`) back below `root`: each entry
/// is copied beside its place, then renamed over it (the old one renamed aside first and
/// removed after); an entry that was not there when the snapshot was taken is removed. Run
/// again after a crash, it finishes the job.
pub fn restore_entries(root: &Path, from: &Path) -> std::io::Result<()> {
    let present: Vec<(String, bool)> =
        serde_json::from_slice(&std::fs::read(from.join(ENTRIES))?).map_err(std::io::Error::other)?;
    for (entry, there) in present {
        if entry.is_empty() || entry.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let place = root.join(&entry);
        let new = root.join(format!("{entry}.driftless-new"));
        let old = root.join(format!("{entry}.driftless-old"));
        remove_any(&new)?;
        if there {
            if let Some(parent) = new.parent() {
                std::fs::create_dir_all(parent)?;
            }
            copy_any(&from.join(FILES).join(&entry), &new)?;
        }
        if std::fs::symlink_metadata(&place).is_ok() {
            remove_any(&old)?;
            std::fs::rename(&place, &old)?;
        }
        if there {
            std::fs::rename(&new, &place)?;
        }
        if let Some(parent) = place.parent() {
            fsutil::fsync_dir(parent)?;
        }
        remove_any(&old)?;
    }
    Ok(())
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(volume: &str, time: &str) -> Manifest {
        Manifest {
            view: SnapshotView {
                volume: volume.into(),
                time: time.into(),
                kind: "before".into(),
                ..Default::default()
            },
            consistency_spec: Consistency::Pause,
            keep: 5,
            files: Vec::new(),
            place: Place::Volume,
        }
    }

    fn take(store: &Store, volume: &str, time: &str, content: &[u8]) -> Manifest {
        let p = store.begin(volume, time).unwrap();
        let mut f = HashingFile::create(p.path(), "data.tar").unwrap();
        f.write(content).unwrap();
        let mut m = manifest(volume, time);
        m.files.push(f.finish().unwrap());
        p.finish(m).unwrap()
    }

    #[test]
    fn a_snapshot_is_whole_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let m = take(&store, "db", "2026-12-08T10:15:00Z", b"hello");
        assert_eq!(m.view.id, "20261208T101500Z-db");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(m.view.bytes, 5);
        assert!(store.verify(&m.view.id).is_ok());
        std::fs::write(dir.path().join(&m.view.id).join("data.tar"), b"hellO").unwrap();
        assert!(matches!(store.verify(&m.view.id), Err(SnapshotError::Damaged { .. })));
        assert!(matches!(store.get("nope"), Err(SnapshotError::Unknown { .. })));
        assert!(matches!(store.get("../x"), Err(SnapshotError::Unknown { .. })));
    }

    #[test]
    fn the_same_second_gets_a_counter_and_partials_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = take(&store, "db", "2026-12-08T10:15:00Z", b"a");
        let b = take(&store, "db", "2026-12-08T10:15:00Z", b"b");
        assert_eq!(b.view.id, format!("{}-2", a.view.id));
        let p = store.begin("db", "2026-12-08T10:16:00Z").unwrap();
        assert_eq!(store.list().len(), 2, "a partial is no snapshot");
        drop(p);
        store.clean_partials();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    /// An SQLite database copied while a writer inserts is consistent (SQLite's own
    /// integrity check), and files and folders come back as they were, an entry that was
    /// absent removed.
    #[test]
    fn files_and_a_database_written_meanwhile_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(shared.join("uploads")).unwrap();
        std::fs::write(shared.join("uploads/a.txt"), "a").unwrap();
        let db = shared.join("app.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("pragma journal_mode=wal; create table t(x int, pad text);").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = rusqlite::Connection::open(&db).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.execute("insert into t values (?1, hex(randomblob(500)))", [n]).unwrap();
                    n += 1;
                }
                n
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        let snap = dir.path().join("snap");
        std::fs::create_dir_all(&snap).unwrap();
        let entries = vec!["app.db".to_string(), "uploads/".to_string(), "later.txt".to_string()];
        let files = copy_entries(&shared, &entries, &snap).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().unwrap();
        assert!(written > 0);
        let copy = rusqlite::Connection::open(snap.join("files/app.db")).unwrap();
        let ok: String = copy.query_row("pragma integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
        let rows: i64 = copy.query_row("select count(*) from t", [], |r| r.get(0)).unwrap();
        assert!(rows > 0 && rows <= written, "{rows} of {written}");
        assert!(files.iter().any(|f| f.name == "files/uploads/a.txt"), "{files:?}");
        // What the failed attempt did: the upload changed, a new file, the database emptied.
        std::fs::write(shared.join("uploads/a.txt"), "changed").unwrap();
        std::fs::write(shared.join("later.txt"), "new").unwrap();
        drop(conn);
        std::fs::write(&db, "not a database any more").unwrap();
        restore_entries(&shared, &snap).unwrap();
        assert_eq!(std::fs::read_to_string(shared.join("uploads/a.txt")).unwrap(), "a");
        assert!(!shared.join("later.txt").exists());
        let back = rusqlite::Connection::open(&db).unwrap();
        let n: i64 = back.query_row("select count(*) from t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, rows);
        let left: Vec<String> = std::fs::read_dir(&shared)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| !n.contains("driftless")), "{left:?}");
    }

    /// A restore of files cut short (the old entry renamed aside, the new one half copied)
    /// is finished by running it again: the entry as the snapshot holds it, nothing left.
    #[test]
    fn a_restore_of_files_cut_short_is_finished_by_running_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(shared.join("up")).unwrap();
        std::fs::write(shared.join("up/a"), "before").unwrap();
        let snap = dir.path().join("snap");
        std::fs::create_dir_all(&snap).unwrap();
        copy_entries(&shared, &["up".to_string()], &snap).unwrap();
        // What a kill -9 mid-restore leaves: `up` renamed aside, `up.driftless-new` partial.
        std::fs::write(shared.join("up/a"), "after").unwrap();
        std::fs::rename(shared.join("up"), shared.join("up.driftless-old")).unwrap();
        std::fs::create_dir_all(shared.join("up.driftless-new")).unwrap();
        std::fs::write(shared.join("up.driftless-new/half"), "x").unwrap();
        restore_entries(&shared, &snap).unwrap();
        assert_eq!(std::fs::read_to_string(shared.join("up/a")).unwrap(), "before");
        assert!(!shared.join("up/half").exists());
        let names: Vec<String> = std::fs::read_dir(&shared)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["up".to_string()]);
    }

    #[test]
    fn prune_keeps_the_newest_and_what_is_protected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let ids: Vec<String> =
            (0..5).map(|i| take(&store, "db", &format!("2026-12-08T10:1{i}:00Z"), b"x").view.id).collect();
        take(&store, "other", "2026-12-08T09:00:00Z", b"y");
        let protect: BTreeSet<String> = [ids[0].clone()].into();
        let removed = store.prune("db", 2, &protect);
        assert_eq!(removed, vec![ids[1].clone(), ids[2].clone()]);
        let left: Vec<String> = store.list().into_iter().map(|m| m.view.id).collect();
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.contains(&ids[0]) && left.contains(&ids[3]) && left.contains(&ids[4]));
    }
}
