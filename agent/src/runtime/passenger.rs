//! The Passenger runtime: Capistrano-style releases under `app_root`, served by Phusion
//! Passenger through the `current` link.
//!
//! ```text
//! app_root/
//!   releases/<YYYYmmddHHMMSS>-<short rev>/   one per deployed (spec, source tree)
//!     REVISION, build_info.json              build_info.json is written last: a release
//!                                            without it is incomplete and never served
//!   shared/                                  never written by a deploy; linked into releases
//!   backups/<YYYYmmddHHMMSS>/                copies of `backup` entries, before each switch
//!   current -> releases/<id>                 switched atomically (new link, rename(2))
//! ```
//!
//! Converging reuses a complete, unmodified release with the wanted spec hash (so a revert
//! is a link switch and a restart, never a rebuild), else exports the source folder at the
//! revision into a new release, builds it in place, links `shared`, and marks it complete.
//! Then: back up, switch, restart (`passenger-config restart-app <app_root>/current` when it
//! is on the PATH; otherwise touch `current/tmp/restart.txt` and wait out Passenger's
//! `stat_throttle_rate`, 10 s, before the gate, or the old code would pass it), prune.
//! Which apps the agent manages is recorded in `state_dir/passenger-apps.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use desired_state_schema::{Kind, PassengerAppSpec, Resource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::driver::{Log, RuntimeError};
use super::streaming::run_streaming;
use crate::fsutil::{copy_tree, fsync_dir, write_atomic};
use crate::plan::{Observed, RunState};
use crate::revision::Revision;

/// How long Passenger waits before it notices `restart.txt` (its default `stat_throttle_rate`).
pub const STAT_THROTTLE: Duration = Duration::from_secs(10);

/// What `build_info.json` records about a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub resource: String,
    pub revision: String,
    /// Tags pointing at the revision when it was built (`v1.4.0`, `production`).
    pub tags: Vec<String>,
    pub spec_hash: String,
    pub source_tree: String,
    pub built_at: String,
    pub agent_version: String,
    /// sha256 over `files` after build and linking.
    pub tree_sha256: String,
    /// What the deploy wrote (see `manifest`).
    pub files: Vec<String>,
    /// The build's output (last 64 KiB).
    pub build_output: String,
}

#[derive(Clone)]
pub struct PassengerRuntime {
    /// `state_dir/passenger-apps.json`: the apps this agent deployed, by name.
    registry: PathBuf,
    /// Decrypts `.age` secrets written into releases.
    secrets: std::sync::Arc<crate::secrets::Secrets>,
}

/// A file-system error: a fault when the host is to blame (disk full, `app_root` not
/// writable), else a verdict.
fn io_err(resource: &str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::io(resource, path, &e, |resource, detail| RuntimeError::Passenger { resource, detail })
}

fn verdict(resource: &str, detail: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Passenger { resource: resource.to_string(), detail: detail.to_string() }
}

/// Run blocking file work (copies, hashing, links) off the async workers.
async fn blocking<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Host { resource: name.to_string(), detail: format!("a file task failed: {e}") })?
}

impl PassengerRuntime {
    /// The Passenger driver of an agent with `state_dir`, decrypting with `secrets`.
    pub fn new(state_dir: &Path, secrets: std::sync::Arc<crate::secrets::Secrets>) -> PassengerRuntime {
        PassengerRuntime { registry: state_dir.join("passenger-apps.json"), secrets }
    }

    /// The raw content (ciphertext for `.age`) of a repository file at `revision`.
    async fn repo_file(&self, name: &str, revision: &Revision, path: &str) -> Result<Vec<u8>, RuntimeError> {
        let p = path.to_string();
        revision.read(move |files| files.read(&p)).await.map_err(|e| files_err(name, e))
    }

    /// A release secret's plaintext (decrypted in memory for `.age`).
    async fn secret_plaintext(
        &self,
        name: &str,
        revision: &Revision,
        path: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, RuntimeError> {
        let raw = self.repo_file(name, revision, path).await?;
        if crate::secrets::is_encrypted(path) {
            self.secrets.decrypt(path, &raw).map_err(|e| verdict(name, e))
        } else {
            Ok(zeroize::Zeroizing::new(raw))
        }
    }

    fn apps(&self) -> BTreeMap<String, String> {
        std::fs::read(&self.registry).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn set_app(&self, name: &str, app_root: Option<&str>) -> Result<(), RuntimeError> {
        let mut apps = self.apps();
        match app_root {
            Some(root) => {
                apps.insert(name.to_string(), root.to_string());
            }
            None => {
                apps.remove(name);
            }
        }
        let bytes = serde_json::to_vec_pretty(&apps).unwrap_or_default();
        write_atomic(&self.registry, &bytes).map_err(|e| io_err(name, &self.registry, e))
    }

    /// The source tree id is what makes a new revision a new release.
    pub async fn inputs(
        &self,
        name: &str,
        spec: &PassengerAppSpec,
        revision: &Revision,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let folder = spec.source.clone();
        let tree = revision.read(move |files| files.tree_id(&folder)).await.map_err(|e| files_err(name, e))?;
        let mut m = BTreeMap::new();
        m.insert("source_tree".to_string(), tree.to_string());
        for sec in &spec.secrets {
            // The ciphertext's digest: re-encrypting a changed secret makes a new release.
            let raw = self.repo_file(name, revision, &sec.source).await?;
            m.insert(format!("secret:{}", sec.target), format!("{:x}", Sha256::digest(&raw)));
        }
        Ok(m)
    }

    /// Every registered app: which release `current` serves, and whether its files changed.
    pub async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        let apps = self.apps();
        tokio::task::spawn_blocking(move || {
            apps.into_iter()
                .map(|(name, root)| {
                    let root = PathBuf::from(root);
                    let live = std::fs::canonicalize(root.join("current")).ok();
                    let info = live.as_deref().and_then(read_info);
                    let (spec_hash, revision, state) = match (&live, info) {
                        (Some(dir), Some(info)) => {
                            let hash = if intact(dir, &info) {
                                info.spec_hash
                            } else {
                                format!("modified:{}", info.spec_hash)
                            };
                            (hash, info.revision, RunState::Running)
                        }
                        _ => (String::new(), String::new(), RunState::NotRunning),
                    };
                    Observed {
                        kind: Kind::PassengerApp,
                        name,
                        spec_hash,
                        revision,
                        state,
                        stray_instances: 0,
                        out_of_place: None,
                        unclaimed: false,
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| RuntimeError::Host { resource: "(observe)".into(), detail: e.to_string() })
    }

    /// Make `current` serve `spec` at `revision` (see the module doc).
    pub async fn converge(
        &self,
        r: &Resource,
        spec: &PassengerAppSpec,
        revision: &Revision,
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let name = r.name().to_string();
        let inputs = self.inputs(&name, spec, revision).await?;
        let hash = crate::plan::spec_hash(r, &inputs);
        let root = PathBuf::from(&spec.app_root);
        let (live, found) = {
            let (root, name, hash) = (root.clone(), name.clone(), hash.clone());
            blocking(&name.clone(), move || {
                for d in ["releases", "shared", "backups"] {
                    let p = root.join(d);
                    std::fs::create_dir_all(&p).map_err(|e| io_err(&name, &p, e))?;
                }
                Ok((std::fs::canonicalize(root.join("current")).ok(), find_release(&root.join("releases"), &hash)))
            })
            .await?
        };
        self.set_app(&name, Some(&spec.app_root))?;
        let target = match found {
            Some(dir) => dir,
            None => self.build_release(&name, spec, revision, &hash, &inputs, log).await?,
        };
        if live.as_deref() == Some(target.as_path()) {
            // Already live (a repair after a crash between switch and restart, or a no-op).
            restart(&root, &name).await?;
            return Ok(());
        }
        if live.is_some() {
            let (root, spec, name) = (root.clone(), spec.clone(), name.clone());
            blocking(&name.clone(), move || backup(&root, &spec, &name)).await?;
        }
        crate::failpoint::hit("before-switch").await;
        {
            let (root, target, name) = (root.clone(), target.clone(), name.clone());
            blocking(&name.clone(), move || {
                switch(&root, &target).map_err(|e| io_err(&name, &root.join("current"), e))
            })
            .await?;
        }
        restart(&root, &name).await?;
        let keep = spec.keep_releases as usize;
        blocking(&name, move || {
            prune(&root.join("releases"), keep, &[Some(target), live]);
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn build_release(
        &self,
        name: &str,
        spec: &PassengerAppSpec,
        revision: &Revision,
        hash: &str,
        inputs: &BTreeMap<String, String>,
        log: Log<'_>,
    ) -> Result<PathBuf, RuntimeError> {
        let folder = spec.source.clone();
        let (export, tags) = revision
            .read(move |files| Ok((files.export(&folder)?, files.tags()?)))
            .await
            .map_err(|e| files_err(name, e))?;
        let root = PathBuf::from(&spec.app_root);
        let id = format!("{}-{}", timestamp(), revision.as_str().get(..8).unwrap_or(revision.as_str()));
        // Two releases of one revision in the same second (a repair right after a deploy)
        // must not share a folder: a complete release, maybe the live one, is never
        // overwritten; only an incomplete one (no build_info.json) is replaced below.
        let mut dir = root.join("releases").join(&id);
        let mut n = 1;
        while dir.join("build_info.json").exists() {
            n += 1;
            dir = root.join("releases").join(format!("{id}-{n}"));
        }
        {
            let (dir, name, revision) = (dir.clone(), name.to_string(), revision.to_string());
            blocking(&name.clone(), move || {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| io_err(&name, &dir, e))?;
                    // an incomplete one
                }
                copy_tree(&export, &dir).map_err(|e| io_err(&name, &dir, e))?;
                drop(export);
                std::fs::write(dir.join("REVISION"), format!("{revision}\n")).map_err(|e| io_err(&name, &dir, e))
            })
            .await?;
        }
        let output = match &spec.build {
            Some(argv) => run_build(name, argv, &dir, spec.build_timeout.as_std(), log).await?,
            None => String::new(),
        };
        // Secrets go in after the build (whose output is logged), mode 0600, and stay out of
        // the release's content manifest: their digests are in the spec hash instead.
        let mut secret_files = Vec::new();
        for sec in &spec.secrets {
            let plain = self.secret_plaintext(name, revision, &sec.source).await?;
            secret_files.push((sec.target.clone(), plain));
        }
        let targets: Vec<String> = spec.secrets.iter().map(|s| s.target.clone()).collect();
        let (files, tree) = {
            let (root, dir, name, shared) = (root.clone(), dir.clone(), name.to_string(), spec.shared.clone());
            blocking(&name.clone(), move || {
                for (target, plain) in &secret_files {
                    write_secret(&dir.join(target), plain).map_err(|e| io_err(&name, &dir.join(target), e))?;
                }
                link_shared(&root, &dir, &shared).map_err(|e| io_err(&name, &dir, e))?;
                let mut files = manifest(&dir).map_err(|e| io_err(&name, &dir, e))?;
                files.retain(|f| !targets.contains(f));
                let tree = tree_sha256(&dir, &files).map_err(|e| io_err(&name, &dir, e))?;
                Ok((files, tree))
            })
            .await?
        };
        let info = BuildInfo {
            resource: name.to_string(),
            revision: revision.to_string(),
            tags,
            spec_hash: hash.to_string(),
            source_tree: inputs.get("source_tree").cloned().unwrap_or_default(),
            built_at: crate::state::now_rfc3339(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            tree_sha256: tree,
            files,
            build_output: output,
        };
        let bytes = serde_json::to_vec_pretty(&info).unwrap_or_default();
        // Written last, atomically: its presence marks the release complete.
        write_atomic(&dir.join("build_info.json"), &bytes).map_err(|e| io_err(name, &dir, e))?;
        Ok(dir)
    }

    /// Stop managing the app: unregister it. Nothing on disk is deleted (releases, `shared/`,
    /// backups and `current` stay; Passenger keeps serving until its configuration changes).
    pub async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.set_app(name, None)
    }
}

/// Reading the revision's files failed: a fault when the mirror or the disk is to blame, a
/// verdict when the revision lacks what the spec names.
fn files_err(name: &str, e: crate::revision::FilesError) -> RuntimeError {
    if e.fault {
        RuntimeError::Host { resource: name.to_string(), detail: e.detail }
    } else {
        verdict(name, e)
    }
}

fn passenger_spec(r: &Resource) -> Result<&PassengerAppSpec, RuntimeError> {
    match &r.spec {
        desired_state_schema::Spec::PassengerApp(p) => Ok(p),
        _ => Err(RuntimeError::Unsupported {
            kind: r.kind,
            detail: "the Passenger driver runs PassengerApp resources only".into(),
        }),
    }
}

#[async_trait::async_trait]
impl super::driver::Driver for PassengerRuntime {
    fn kind(&self) -> Kind {
        Kind::PassengerApp
    }

    /// The `backup:` paths of its `shared/`: snapshotted before a revision (SQLite
    /// databases through SQLite's online backup) and put back with its revert.
    fn data_sets(&self, r: &Resource) -> Vec<crate::snapshots::DataSet> {
        let Ok(spec) = passenger_spec(r) else { return Vec::new() };
        if spec.backup.is_empty() {
            return Vec::new();
        }
        vec![crate::snapshots::DataSet {
            name: format!("{}.backup", r.name()),
            keep: spec.keep_backups.max(1),
            consistency: desired_state_schema::Consistency::Pause,
            place: crate::snapshots::Place::Files {
                root: PathBuf::from(&spec.app_root).join("shared"),
                entries: spec.backup.clone(),
            },
        }]
    }

    async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        PassengerRuntime::observe(self).await
    }

    async fn inputs(&self, r: &Resource, revision: &Revision) -> Result<BTreeMap<String, String>, RuntimeError> {
        PassengerRuntime::inputs(self, r.name(), passenger_spec(r)?, revision).await
    }

    async fn converge(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        PassengerRuntime::converge(self, r, passenger_spec(r)?, revision, log).await
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        PassengerRuntime::remove(self, name).await
    }

    fn describe(&self, r: &Resource) -> Option<String> {
        describe(r.name(), passenger_spec(r).ok()?)
    }

    /// The last 50 lines of the app's log (`log_file`, else the newest `*.log` of the
    /// release or `shared/`).
    async fn diagnose(&self, r: &Resource) -> Option<crate::state::Diagnostic> {
        let spec = passenger_spec(r).ok()?.clone();
        let name = r.name().to_string();
        tokio::task::spawn_blocking(move || diagnose(&name, &spec)).await.ok()
    }

    /// Every `.age` secret decrypts with this host's identities.
    async fn preflight(&self, r: &Resource, revision: &Revision) -> Result<(), RuntimeError> {
        for sec in &passenger_spec(r)?.secrets {
            if crate::secrets::is_encrypted(&sec.source) {
                self.secret_plaintext(r.name(), revision, &sec.source).await?;
            }
        }
        Ok(())
    }
}

/// Lines of the app's log in a diagnostic.
const LOG_LINES: usize = 50;

/// What a failed app looked like: which release `current` serves and the end of its log.
pub fn diagnose(name: &str, spec: &PassengerAppSpec) -> crate::state::Diagnostic {
    let root = Path::new(&spec.app_root);
    let state = if root.join("current").exists() { "running" } else { "missing" };
    let log = match &spec.log_file {
        Some(f) => Some(PathBuf::from(f)),
        None => ["current/log", "shared/log", "shared/logs"]
            .iter()
            .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, p)| p),
    };
    let logs = match &log {
        Some(p) => match crate::fsutil::tail_lines(p, LOG_LINES) {
            Ok(lines) => lines,
            Err(e) => vec![format!("(cannot read the app's log {}: {e})", p.display())],
        },
        None => vec![format!(
            "(no app log found under {}/current/log or shared/log: set log_file in the PassengerApp spec)",
            spec.app_root
        )],
    };
    crate::state::Diagnostic {
        kind: Kind::PassengerApp.to_string(),
        name: name.to_string(),
        state: state.to_string(),
        exit_code: None,
        oom_killed: false,
        logs,
    }
}

/// Write a secret file with mode 0600 from the start (never readable by others, not even
/// for a moment).
fn write_secret(path: &Path, plain: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(plain)?;
    f.sync_all()
}

fn timestamp() -> String {
    crate::state::now_rfc3339().chars().filter(char::is_ascii_digit).collect()
}

fn read_info(dir: &Path) -> Option<BuildInfo> {
    serde_json::from_slice(&std::fs::read(dir.join("build_info.json")).ok()?).ok()
}

/// A complete release with this spec hash whose files are as built, newest first.
fn find_release(releases: &Path, hash: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(releases).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    dirs.into_iter().rev().find(|d| read_info(d).is_some_and(|i| i.spec_hash == hash && intact(d, &i)))
}

/// The files a deploy wrote into a release (regular files and links, relative, sorted;
/// `build_info.json` excluded). Files the app writes later (`tmp/restart.txt`,
/// `__pycache__`, logs) are not in it, so they are not drift.
pub fn manifest(dir: &Path) -> std::io::Result<Vec<String>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                walk(base, &path, out)?;
            } else if rel != "build_info.json" {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// sha256 over the manifest's entries: each path, then its content or link target. Links
/// are not followed (shared data is not ours). A missing entry fails.
pub fn tree_sha256(dir: &Path, files: &[String]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for rel in files {
        let path = dir.join(rel);
        let meta = std::fs::symlink_metadata(&path)?;
        h.update(rel.as_bytes());
        if meta.file_type().is_symlink() {
            h.update(b"\0l\0");
            h.update(std::fs::read_link(&path)?.to_string_lossy().as_bytes());
        } else {
            h.update(b"\0f\0");
            h.update(Sha256::digest(std::fs::read(&path)?));
        }
        h.update(b"\n");
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Whether a release's deployed files are as built.
fn intact(dir: &Path, info: &BuildInfo) -> bool {
    tree_sha256(dir, &info.files).is_ok_and(|h| h == info.tree_sha256)
}

async fn run_build(
    name: &str,
    argv: &[String],
    dir: &Path,
    timeout: Duration,
    log: Log<'_>,
) -> Result<String, RuntimeError> {
    let (prog, args) = argv.split_first().ok_or_else(|| verdict(name, "build is empty"))?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args).current_dir(dir);
    let done = run_streaming(cmd, timeout, &format!("build {name}: "), log)
        .await
        .map_err(|e| io_err(name, Path::new(prog), e))?;
    let Some(done) = done else {
        return Err(RuntimeError::Passenger {
            resource: name.into(),
            detail: format!("build ran past build_timeout ({}s) and was killed", timeout.as_secs()),
        });
    };
    if !done.status.success() {
        let last =
            done.tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        let detail = format!("build {} exited with {}: {last}", argv.join(" "), done.status.code().unwrap_or(-1));
        // Judged by facts, never by what the build printed: the disk it writes to full is
        // the host's fault; anything else the build's own.
        if crate::fault::disk_full(dir) {
            return Err(RuntimeError::Host { resource: name.into(), detail: format!("{detail}; the disk is full") });
        }
        return Err(verdict(name, detail));
    }
    Ok(done.tail)
}

/// A line for the history: the live release, its tags and the end of its build output.
pub fn describe(name: &str, spec: &PassengerAppSpec) -> Option<String> {
    let live = std::fs::canonicalize(Path::new(&spec.app_root).join("current")).ok()?;
    let info = read_info(&live)?;
    let id = live.file_name()?.to_string_lossy().into_owned();
    let tags = if info.tags.is_empty() { String::new() } else { format!(" (tags {})", info.tags.join(", ")) };
    let out: Vec<&str> = info.build_output.lines().filter(|l| !l.trim().is_empty()).collect();
    let build = match out.len() {
        0 => String::new(),
        n => format!(", build output: {}", out[n.saturating_sub(3)..].join(" | ")),
    };
    Some(format!("PassengerApp/{name}: release {id}{tags}{build}"))
}

/// Link each `shared` entry into the release, replacing what the export had there. Missing
/// shared folders (names without a dot) are created; missing files are left for the app to
/// create through the link. Nothing under `shared/` is ever written otherwise.
fn link_shared(root: &Path, release: &Path, entries: &[String]) -> std::io::Result<()> {
    for entry in entries {
        let entry = entry.trim_end_matches('/');
        let target = root.join("shared").join(entry);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let name = Path::new(entry).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !target.exists() && !name.contains('.') {
            std::fs::create_dir_all(&target)?;
        }
        let link = release.join(entry);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&link)?,
            Ok(_) => std::fs::remove_file(&link)?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&target, &link)?;
    }
    Ok(())
}

/// Copy the `backup` entries (from `shared/`) into `backups/<time>/`, keep the newest sets.
fn backup(root: &Path, spec: &PassengerAppSpec, name: &str) -> Result<(), RuntimeError> {
    if spec.backup.is_empty() {
        return Ok(());
    }
    let set = root.join("backups").join(timestamp());
    for entry in &spec.backup {
        let from = root.join("shared").join(entry.trim_end_matches('/'));
        if !from.exists() {
            continue;
        }
        let to = set.join(entry.trim_end_matches('/'));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(name, parent, e))?;
        }
        // An SQLite database (here or inside a folder) is copied through SQLite's online
        // backup (consistent while the app writes).
        let r = crate::snapshots::copy_any(&from, &to);
        r.map_err(|e| io_err(name, &from, e))?;
        if let Ok(f) = std::fs::File::open(&to) {
            let _ = f.sync_all();
        }
    }
    let _ = fsync_dir(&set);
    // Keep the newest `keep_backups` sets; only whole sets of our own naming are removed.
    let mut sets: Vec<PathBuf> = std::fs::read_dir(root.join("backups"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    sets.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().chars().all(|c| c.is_ascii_digit())));
    sets.sort();
    let keep = spec.keep_backups.max(1) as usize;
    if sets.len() > keep {
        for old in &sets[..sets.len() - keep] {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(())
}

/// Point `current` at `release` atomically: a new link beside it, renamed over it.
fn switch(root: &Path, release: &Path) -> std::io::Result<()> {
    let tmp = root.join(format!(".current.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let rel = release.strip_prefix(root).unwrap_or(release);
    std::os::unix::fs::symlink(rel, &tmp)?;
    std::fs::rename(&tmp, root.join("current"))?;
    fsync_dir(root)
}

/// Restart the app so that the release `current` resolves to is what answers.
async fn restart(root: &Path, name: &str) -> Result<(), RuntimeError> {
    let current = root.join("current");
    let tmp = current.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(name, &tmp, e))?;
    let marker = tmp.join("restart.txt");
    std::fs::write(&marker, b"").map_err(|e| io_err(name, &marker, e))?;
    let restarted = tokio::process::Command::new("passenger-config")
        .arg("restart-app")
        .arg(&current)
        .arg("--ignore-app-not-running")
        .kill_on_drop(true)
        .output()
        .await;
    match restarted {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            tracing::warn!(
                "passenger-config restart-app {} failed ({}); waiting {}s for Passenger to notice restart.txt",
                current.display(),
                String::from_utf8_lossy(&o.stderr).trim(),
                STAT_THROTTLE.as_secs()
            );
            crate::sdnotify::wait(STAT_THROTTLE + Duration::from_secs(1)).await;
            Ok(())
        }
        Err(_) => {
            // No passenger-config: restart.txt is noticed only after stat_throttle_rate.
            crate::sdnotify::wait(STAT_THROTTLE + Duration::from_secs(1)).await;
            Ok(())
        }
    }
}

/// Remove the oldest releases beyond `keep`, never the ones in `protect` (the new one and the
/// one that was live), and only folders of our own naming.
fn prune(releases: &Path, keep: usize, protect: &[Option<PathBuf>]) {
    let Ok(rd) = std::fs::read_dir(releases) else { return };
    let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep.max(2));
    for d in dirs.into_iter().take(excess) {
        if protect.iter().flatten().any(|p| p == &d) {
            continue;
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
