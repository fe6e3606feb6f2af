//! The Git source: the agent's eyes on the desired-state repository. Owns the local bare
//! mirror under `state_dir`, fetching into it from any remote (a path, `file://`, `git://`,
//! smart HTTP(S) with a token, SSH with a key or the agent and a checked host key), picking
//! the desired revision (branch, tag, semver range, pinned commit), reading desired state
//! straight from a commit's tree, exporting a folder of a commit for runtimes that need
//! files, verifying SSH signatures, and keeping local refs (applied, last good, failed) so
//! that no revision the agent may revert to is ever lost to a force-push or gc.
//!
//! The source's parts: `known_hosts` (SSH host keys), `verify` (signatures), `watch`
//! (`source.watch`), `report` (host reports in Git); this file is the mirror itself.
//!
//! Everything here blocks (git2, the file system, `ssh-keygen`): async callers run it in
//! `spawn_blocking`. Failures leave the mirror and what was fetched before intact.

use super::{known_hosts, verify};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use desired_state_schema::SourceFile;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions, ObjectType, Oid,
    RemoteCallbacks, Repository, TreeWalkMode, TreeWalkResult,
};

use crate::config::{AuthConfig, LoadedConfig, RefSelector};
use crate::semver_range;

/// Where OpenSSH keeps the system-wide host keys.
pub const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// Why the source could not do what was asked. Each variant prints as one line that says
/// what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot reach {url}: {detail}; check source.url and the network")]
    Unreachable { url: String, detail: String },
    #[error("{url} refused authentication: {detail}; check source.auth (key or token) and the server's access rules")]
    AuthRefused { url: String, detail: String },
    #[error(
        "host key of {host} ({fingerprint}) is not in {files}; if it is right, add it: ssh-keyscan {scan} >> {first}"
    )]
    UnknownHostKey { host: String, fingerprint: String, files: String, scan: String, first: String },
    #[error("HOST KEY CHANGED for {host}: the server offers {fingerprint}, which {files} does not list for it; someone may be intercepting the connection, or the key was replaced: verify it before updating known_hosts")]
    ChangedHostKey { host: String, fingerprint: String, files: String },
    #[error("host key of {host} ({fingerprint}) is marked @revoked in {files}; refusing to connect")]
    RevokedHostKey { host: String, fingerprint: String, files: String },
    #[error("{selector} not found on {url}{known}; check source.ref")]
    RefNotFound { selector: String, url: String, known: String },
    #[error("no tag on {url} matches semver range {range:?} ({tags} tag(s) parse as semver); nothing is applied until one does")]
    NoMatchingTag { url: String, range: String, tags: usize },
    #[error("pinned commit {commit} is not on {url} (not reachable from any branch or tag); check source.ref.commit")]
    CommitNotFound { commit: String, url: String },
    #[error("source.path {path:?} does not exist in revision {commit}; check source.path")]
    PathNotFound { path: String, commit: String },
    #[error("revision {revision} refused: {detail}")]
    SignatureRefused { revision: String, detail: String },
    #[error("{path} in revision {commit} is refused: {detail}")]
    StateRefused { path: String, commit: String, detail: String },
    #[error("{path}: {detail}")]
    Mirror { path: PathBuf, detail: String },
}

impl crate::fault::Classify for SourceError {
    /// The remote, its host keys, the mirror on disk and a selector that picks nothing are
    /// faults (no revision is judged); a revision lacking `source.path` or a valid signature
    /// is a verdict on that revision.
    fn class(&self) -> crate::fault::Class {
        use crate::fault::Class;
        match self {
            SourceError::Unreachable { .. }
            | SourceError::AuthRefused { .. }
            | SourceError::UnknownHostKey { .. }
            | SourceError::ChangedHostKey { .. }
            | SourceError::RevokedHostKey { .. }
            | SourceError::RefNotFound { .. }
            | SourceError::NoMatchingTag { .. }
            | SourceError::CommitNotFound { .. }
            | SourceError::Mirror { .. } => Class::Fault,
            SourceError::PathNotFound { .. }
            | SourceError::SignatureRefused { .. }
            | SourceError::StateRefused { .. } => Class::Verdict,
        }
    }
}

/// How a ref moved during a fetch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefMove {
    Created,
    FastForward,
    /// Moved to a revision that does not contain the old one (force-push, moved tag).
    Forced,
    Deleted,
}

/// One ref that changed in the mirror.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RefChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub kind: RefMove,
}

/// What a fetch did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FetchReport {
    pub changes: Vec<RefChange>,
    /// Bytes of pack data received (0 when nothing new).
    pub received_bytes: usize,
    pub received_objects: usize,
    pub millis: u128,
}

/// The desired revision the selector picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub commit: Oid,
    /// The full ref it came from (`refs/heads/main`, `refs/tags/v1.2.0`), or `None` for a pin.
    pub reference: Option<String>,
    /// The annotated tag object, when the ref is one (its signature is what `verify` checks).
    pub tag_object: Option<Oid>,
}

/// Local refs the agent keeps in the mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    Applied,
    LastGood,
    Failed,
}

/// A folder of a commit written to disk, shared by all revisions with the same tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub path: PathBuf,
    pub tree: Oid,
}

/// The Git source of one agent.
#[derive(Clone, Debug)]
pub struct GitSource {
    /// The remote (`source.url`, or a report repository's).
    pub(super) url: String,
    /// Which revision is desired (`source.ref`).
    pub(super) selector: RefSelector,
    /// SSH key or token for the remote.
    pub(super) auth: Option<AuthConfig>,
    /// The bare mirror under `state_dir`.
    pub(super) mirror: PathBuf,
    /// Where folders of a revision are exported, by tree id.
    pub(super) exports: PathBuf,
    /// The known_hosts files SSH host keys are checked against.
    pub(super) known_hosts: Vec<PathBuf>,
    /// The mirror as polls open it, kept between polls (opening reads the repository's config
    /// files: a third of a no-op poll). Dropped after a failed fetch, so a repaired mirror is
    /// opened afresh.
    pub(super) poll: PollHandle,
}

/// The mirror handle `fetch` reuses (see `GitSource::poll`).
#[derive(Clone, Default)]
pub(super) struct PollHandle(pub(super) std::sync::Arc<std::sync::Mutex<Option<Repository>>>);

impl std::fmt::Debug for PollHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PollHandle")
    }
}

/// A repository's name from its URL, as `git clone` names its folder: the last path
/// component without `.git` (`ssh://git@host/ops/state.git` → `state`, `/srv/repo` → `repo`).
pub fn repo_name(url: &str) -> Option<String> {
    let trimmed = url.trim_end_matches('/');
    let last = trimmed.rsplit(['/', ':']).next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    (!name.is_empty()).then(|| name.to_string())
}

impl GitSource {
    pub fn new(cfg: &LoadedConfig) -> GitSource {
        let state = &cfg.config.state_dir;
        let auth = cfg.config.source.auth.clone();
        let mut known_hosts: Vec<PathBuf> = auth.as_ref().and_then(|a| a.known_hosts.clone()).into_iter().collect();
        known_hosts.push(PathBuf::from(SYSTEM_KNOWN_HOSTS));
        GitSource {
            url: cfg.config.source.url.clone(),
            selector: cfg.selector.clone(),
            auth,
            mirror: state.join("mirror.git"),
            exports: state.join("exports"),
            known_hosts,
            poll: PollHandle::default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn mirror_path(&self) -> &Path {
        &self.mirror
    }

    /// Open the mirror, creating it (bare) on first use.
    pub fn repo(&self) -> Result<Repository, SourceError> {
        match Repository::open_bare(&self.mirror) {
            Ok(r) => Ok(r),
            Err(_) if !self.mirror.exists() => {
                if let Some(parent) = self.mirror.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| self.mirror_err(e))?;
                }
                Repository::init_bare(&self.mirror).map_err(|e| self.mirror_err(e))
            }
            Err(e) => Err(self.mirror_err(e)),
        }
    }

    pub(super) fn mirror_err(&self, e: impl std::fmt::Display) -> SourceError {
        SourceError::Mirror { path: self.mirror.clone(), detail: e.to_string() }
    }

    /// Bring the refs the selector needs up to date. Lists the remote's refs first and
    /// fetches only when one of them differs from the mirror, so a poll that finds nothing
    /// new transfers no objects.
    pub fn fetch(&self) -> Result<FetchReport, SourceError> {
        self.with_poll_handle(|repo| self.fetch_in(repo))
    }

    /// Run `f` on the mirror handle polls keep (opened when there is none); a failure drops
    /// the handle.
    fn with_poll_handle<T>(&self, f: impl FnOnce(&Repository) -> Result<T, SourceError>) -> Result<T, SourceError> {
        let mut slot = match self.poll.0.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let repo = match slot.take() {
            Some(r) => r,
            None => self.repo()?,
        };
        let result = f(&repo);
        if result.is_ok() {
            *slot = Some(repo);
        }
        result
    }

    fn fetch_in(&self, repo: &Repository) -> Result<FetchReport, SourceError> {
        let started = Instant::now();
        let ctx = CallbackContext::new(self);
        let advertised = self.list_remote(repo, &ctx)?;
        // Local ref name -> (remote ref name, remote oid) the mirror should hold.
        let wanted = self.wanted_refs(repo, &advertised)?;
        let local_names = self.local_ref_names(repo)?;
        let mut changes = Vec::new();
        let mut refspecs = Vec::new();
        for (local, (remote, oid)) in &wanted {
            let current = repo.refname_to_id(local).ok();
            if current != Some(*oid) {
                refspecs.push(format!("+{remote}:{local}"));
            }
        }
        let mut report = FetchReport::default();
        let before: BTreeMap<String, Option<Oid>> =
            wanted.keys().chain(local_names.iter()).map(|n| (n.clone(), repo.refname_to_id(n).ok())).collect();
        if !refspecs.is_empty() {
            let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.classify(e, &ctx))?;
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(ctx.callbacks());
            opts.download_tags(AutotagOption::None);
            remote.fetch(&refspecs, Some(&mut opts), None).map_err(|e| self.classify(e, &ctx))?;
            let stats = remote.stats();
            report.received_bytes = stats.received_bytes();
            report.received_objects = stats.received_objects();
        }
        // Refs the remote no longer has (a deleted tag or branch) are removed from the mirror;
        // the objects stay, and the agent's own refs keep what it may revert to.
        for name in &local_names {
            if !wanted.contains_key(name) {
                if let Ok(mut r) = repo.find_reference(name) {
                    r.delete().map_err(|e| self.mirror_err(e))?;
                }
            }
        }
        for (name, old) in before {
            let new = repo.refname_to_id(&name).ok();
            if old == new {
                continue;
            }
            let kind = match (old, new) {
                (None, Some(_)) => RefMove::Created,
                (Some(_), None) => RefMove::Deleted,
                (Some(o), Some(n)) => {
                    let (o, n) = (peel_commit(repo, o), peel_commit(repo, n));
                    match (o, n) {
                        (Some(o), Some(n)) if repo.graph_descendant_of(n, o).unwrap_or(false) => RefMove::FastForward,
                        _ => RefMove::Forced,
                    }
                }
                (None, None) => continue,
            };
            changes.push(RefChange { name, old: old.map(|o| o.to_string()), new: new.map(|n| n.to_string()), kind });
        }
        report.changes = changes;
        report.millis = started.elapsed().as_millis();
        Ok(report)
    }

    /// The remote's refs (name → oid), as `git ls-remote` shows them.
    pub(super) fn list_remote(
        &self,
        repo: &Repository,
        ctx: &CallbackContext,
    ) -> Result<BTreeMap<String, Oid>, SourceError> {
        let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.classify(e, ctx))?;
        let conn =
            remote.connect_auth(Direction::Fetch, Some(ctx.callbacks()), None).map_err(|e| self.classify(e, ctx))?;
        let heads = conn.list().map_err(|e| self.classify(e, ctx))?;
        Ok(heads.iter().map(|h| (h.name().to_string(), h.oid())).collect())
    }

    /// The mirror's refs this selector manages (so that deletions upstream can be mirrored).
    fn local_ref_names(&self, repo: &Repository) -> Result<Vec<String>, SourceError> {
        let glob = match &self.selector {
            RefSelector::Branch(b) => {
                let mut names = self.glob_names(repo, &format!("refs/remotes/origin/{b}"))?;
                names.extend(self.glob_names(repo, "refs/tags/*")?);
                return Ok(names);
            }
            RefSelector::Tag(t) => format!("refs/tags/{t}"),
            RefSelector::Semver(_) => "refs/tags/*".to_string(),
            RefSelector::Commit(_) => return Ok(Vec::new()),
        };
        self.glob_names(repo, &glob)
    }

    fn glob_names(&self, repo: &Repository, glob: &str) -> Result<Vec<String>, SourceError> {
        let refs = repo.references_glob(glob).map_err(|e| self.mirror_err(e))?;
        Ok(refs.filter_map(|r| r.ok().and_then(|r| r.name().ok().map(str::to_string))).collect())
    }

    fn wanted_refs(
        &self,
        repo: &Repository,
        adv: &BTreeMap<String, Oid>,
    ) -> Result<BTreeMap<String, (String, Oid)>, SourceError> {
        let mut out = BTreeMap::new();
        match &self.selector {
            RefSelector::Branch(b) => {
                let remote = format!("refs/heads/{b}");
                if let Some(oid) = adv.get(&remote) {
                    out.insert(format!("refs/remotes/origin/{b}"), (remote, *oid));
                }
                // Tags too: releases are known by them (build_info.json, history); a poll
                // fetches a tag only when it is new or moved.
                for (name, oid) in adv {
                    if name.starts_with("refs/tags/") && !name.ends_with("^{}") {
                        out.insert(name.clone(), (name.clone(), *oid));
                    }
                }
            }
            RefSelector::Tag(t) => {
                let remote = format!("refs/tags/{t}");
                if let Some(oid) = adv.get(&remote) {
                    out.insert(remote.clone(), (remote, *oid));
                }
            }
            RefSelector::Semver(_) => {
                for (name, oid) in adv {
                    let Some(tag) = name.strip_prefix("refs/tags/") else { continue };
                    if tag.ends_with("^{}") || semver_range::tag_version(tag).is_none() {
                        continue;
                    }
                    out.insert(name.clone(), (name.clone(), *oid));
                }
            }
            RefSelector::Commit(c) => {
                // Fetch everything only while the pinned commit is missing.
                let have = Oid::from_str(c).ok().is_some_and(|o| repo.find_commit(o).is_ok());
                if !have {
                    for (name, oid) in adv {
                        if name.ends_with("^{}") {
                            continue;
                        }
                        if let Some(b) = name.strip_prefix("refs/heads/") {
                            out.insert(format!("refs/remotes/origin/{b}"), (name.clone(), *oid));
                        } else if name.starts_with("refs/tags/") {
                            out.insert(name.clone(), (name.clone(), *oid));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Pick the desired revision from what the mirror holds.
    pub fn resolve(&self) -> Result<Resolved, SourceError> {
        self.with_poll_handle(|repo| self.resolve_in(repo))
    }

    fn resolve_in(&self, repo: &Repository) -> Result<Resolved, SourceError> {
        match &self.selector {
            RefSelector::Branch(b) => {
                let local = format!("refs/remotes/origin/{b}");
                let oid = repo.refname_to_id(&local).map_err(|_| self.not_found(repo))?;
                Ok(Resolved { commit: oid, reference: Some(format!("refs/heads/{b}")), tag_object: None })
            }
            RefSelector::Tag(t) => {
                let name = format!("refs/tags/{t}");
                let oid = repo.refname_to_id(&name).map_err(|_| self.not_found(repo))?;
                self.resolve_tag(repo, name, oid)
            }
            RefSelector::Semver(range) => {
                let tags = repo.tag_names(None).map_err(|e| self.mirror_err(e))?;
                let names: Vec<&str> = tags.iter().filter_map(|t| t.ok().flatten()).collect();
                let parsed = names.iter().filter(|t| semver_range::tag_version(t).is_some()).count();
                let Some((tag, _)) = semver_range::pick(range, names.iter().copied()) else {
                    return Err(SourceError::NoMatchingTag {
                        url: self.url.clone(),
                        range: range.to_string(),
                        tags: parsed,
                    });
                };
                let name = format!("refs/tags/{tag}");
                let oid = repo.refname_to_id(&name).map_err(|e| self.mirror_err(e))?;
                self.resolve_tag(repo, name, oid)
            }
            RefSelector::Commit(c) => {
                let oid = Oid::from_str(c).map_err(|e| self.mirror_err(e))?;
                repo.find_commit(oid)
                    .map_err(|_| SourceError::CommitNotFound { commit: c.clone(), url: self.url.clone() })?;
                Ok(Resolved { commit: oid, reference: None, tag_object: None })
            }
        }
    }

    fn resolve_tag(&self, repo: &Repository, name: String, oid: Oid) -> Result<Resolved, SourceError> {
        let obj = repo.find_object(oid, None).map_err(|e| self.mirror_err(e))?;
        let tag_object = (obj.kind() == Some(ObjectType::Tag)).then_some(oid);
        let commit =
            obj.peel_to_commit().map_err(|e| self.mirror_err(format!("{name} does not point to a commit: {e}")))?;
        Ok(Resolved { commit: commit.id(), reference: Some(name), tag_object })
    }

    fn not_found(&self, repo: &Repository) -> SourceError {
        let known = match &self.selector {
            RefSelector::Branch(_) => {
                let names: Vec<String> = repo
                    .references_glob("refs/remotes/origin/*")
                    .map(|refs| {
                        refs.filter_map(|r| {
                            r.ok()?.shorthand().ok().map(|s| s.trim_start_matches("origin/").to_string())
                        })
                        .collect()
                    })
                    .unwrap_or_default();
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" (known branches: {})", names.join(", "))
                }
            }
            _ => String::new(),
        };
        SourceError::RefNotFound { selector: self.selector.to_string(), url: self.url.clone(), known }
    }

    /// The trust `source.verify` configures: the SSH allowed signers and the OpenPGP keyring
    /// (built under `state_dir/gnupg`). A keyring that cannot be built is a fault.
    pub fn trust(&self, v: &crate::config::VerifyConfig) -> Result<verify::Trust, SourceError> {
        let openpgp = if v.openpgp_keys.is_empty() {
            None
        } else {
            let dir = self.mirror.with_file_name("gnupg");
            Some(
                verify::Keyring::build(&dir, &v.openpgp_keys)
                    .map_err(|detail| SourceError::Mirror { path: dir, detail })?,
            )
        };
        Ok(verify::Trust { allowed_signers: v.allowed_signers.clone(), openpgp })
    }

    /// Verify the revision's signature (SSH or OpenPGP) against `trust`: the annotated tag's
    /// when following a tag or a semver range, else the commit's. Returns who signed it.
    pub fn verify(&self, resolved: &Resolved, trust: &verify::Trust) -> Result<String, SourceError> {
        let repo = self.repo()?;
        let refuse = |detail: String| SourceError::SignatureRefused { revision: resolved.commit.to_string(), detail };
        match (&self.selector, resolved.tag_object) {
            (RefSelector::Tag(_) | RefSelector::Semver(_), Some(tag)) => {
                verify::verify_tag(&repo, tag, trust).map_err(refuse)
            }
            (RefSelector::Tag(_) | RefSelector::Semver(_), None) => Err(refuse(format!(
                "{} is a lightweight tag and carries no signature; create it signed (git tag -s, with gpg.format=ssh)",
                resolved.reference.as_deref().unwrap_or("the tag")
            ))),
            _ => verify::verify_commit(&repo, resolved.commit, trust).map_err(refuse),
        }
    }

    /// Verify a revision that was not just resolved from the selector (a rollback target, a
    /// pin, a retry): as `verify` would judge it. For tag and semver selectors a signed,
    /// trusted annotated tag must point at the commit; for branches the commit itself must
    /// be signed by a trusted key.
    pub fn verify_revision(&self, commit: Oid, trust: &verify::Trust) -> Result<String, SourceError> {
        let repo = self.repo()?;
        let refuse = |detail: String| SourceError::SignatureRefused { revision: commit.to_string(), detail };
        match &self.selector {
            RefSelector::Tag(_) | RefSelector::Semver(_) => {
                let mut why = Vec::new();
                for name in self.tags_at(commit)? {
                    let Ok(r) = repo.find_reference(&format!("refs/tags/{name}")) else { continue };
                    let Some(target) = r.target() else { continue };
                    if repo.find_tag(target).is_err() {
                        why.push(format!("{name} is a lightweight tag"));
                        continue;
                    }
                    match verify::verify_tag(&repo, target, trust) {
                        Ok(signer) => return Ok(signer),
                        Err(e) => why.push(format!("{name}: {e}")),
                    }
                }
                Err(refuse(if why.is_empty() {
                    "no tag points at it, so nothing vouches for it (source.verify with a tag selector trusts signed tags)".into()
                } else {
                    format!("no trusted signed tag points at it ({})", why.join("; "))
                }))
            }
            _ => verify::verify_commit(&repo, commit, trust).map_err(refuse),
        }
    }

    /// Every desired-state file (`*.yaml`, `*.yml`, no `.`-entries) below `path` in `commit`,
    /// read straight from Git objects. Paths are relative to the repository root.
    pub fn read_state(&self, commit: Oid, path: &str) -> Result<Vec<SourceFile>, SourceError> {
        let repo = self.repo()?;
        let tree = self.subtree(&repo, commit, path)?;
        let prefix = normalize(path);
        let mut files = Vec::new();
        let mut failure = None;
        let mut total = 0usize;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name().unwrap_or("");
            let env = desired_state_schema::load::is_env_file(name); // a compose file's .env
            if name.starts_with('.') && !env {
                return TreeWalkResult::Skip;
            }
            if entry.kind() != Some(ObjectType::Blob) || !(env || desired_state_schema::load::is_state_file(name)) {
                return TreeWalkResult::Ok;
            }
            let rel = format!("{prefix}{dir}{name}");
            let refuse =
                |detail: String| SourceError::StateRefused { path: rel.clone(), commit: commit.to_string(), detail };
            if entry.filemode() == 0o120000 {
                failure = Some(refuse("it is a symbolic link; desired-state files must be regular files".into()));
                return TreeWalkResult::Abort;
            }
            // The size from the object header: a huge blob is refused without being read.
            let size = repo.odb().and_then(|o| o.read_header(entry.id())).map(|(n, _)| n).unwrap_or(0);
            if size > desired_state_schema::load::MAX_FILE_BYTES {
                failure = Some(refuse(format!(
                    "it is {}; the limit is {} per desired-state file: split it, or keep data out of source.path",
                    desired_state_schema::load::mib(size),
                    desired_state_schema::load::mib(desired_state_schema::load::MAX_FILE_BYTES)
                )));
                return TreeWalkResult::Abort;
            }
            total += size;
            if total > desired_state_schema::load::MAX_REVISION_BYTES {
                failure = Some(refuse(format!(
                    "the desired state passes {} in all with this file: keep data out of source.path",
                    desired_state_schema::load::mib(desired_state_schema::load::MAX_REVISION_BYTES)
                )));
                return TreeWalkResult::Abort;
            }
            match repo.find_blob(entry.id()) {
                Ok(blob) => match std::str::from_utf8(blob.content()) {
                    Ok(text) => files.push(SourceFile { path: rel, text: text.to_string() }),
                    Err(_) => {
                        failure = Some(refuse("it is not UTF-8 text; desired-state files must be UTF-8 YAML".into()));
                        return TreeWalkResult::Abort;
                    }
                },
                Err(e) => {
                    failure = Some(self.mirror_err(format!("{rel} in {commit}: {e}")));
                    return TreeWalkResult::Abort;
                }
            }
            TreeWalkResult::Ok
        })
        .map_err(|e| failure.take().unwrap_or_else(|| self.mirror_err(e)))?;
        if let Some(f) = failure {
            return Err(f);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    fn subtree<'r>(&self, repo: &'r Repository, commit: Oid, path: &str) -> Result<git2::Tree<'r>, SourceError> {
        let root = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.mirror_err(format!("revision {commit}: {e}")))?;
        let p = normalize(path);
        if p.is_empty() {
            return Ok(root);
        }
        let not_found = || SourceError::PathNotFound { path: path.to_string(), commit: commit.to_string() };
        let entry = root.get_path(Path::new(p.trim_end_matches('/'))).map_err(|_| not_found())?;
        repo.find_tree(entry.id()).map_err(|_| not_found())
    }

    /// One file of `commit` (a repository path): its blob id and content, read from Git
    /// objects (container secrets named by repository path).
    pub fn read_file(&self, commit: Oid, path: &str) -> Result<(Oid, Vec<u8>), SourceError> {
        let repo = self.repo()?;
        let root = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.mirror_err(format!("revision {commit}: {e}")))?;
        let not_found = || SourceError::PathNotFound { path: path.to_string(), commit: commit.to_string() };
        let entry = root.get_path(Path::new(normalize(path).trim_end_matches('/'))).map_err(|_| not_found())?;
        let blob = repo.find_blob(entry.id()).map_err(|_| not_found())?;
        Ok((entry.id(), blob.content().to_vec()))
    }

    /// What `path` is in `commit`: a file (blob) or a folder (tree) and its id; `None` when
    /// the revision does not hold it.
    pub fn entry(&self, commit: Oid, path: &str) -> Result<Option<(bool, Oid)>, SourceError> {
        let repo = self.repo()?;
        let root = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.mirror_err(format!("revision {commit}: {e}")))?;
        let p = normalize(path);
        let p = p.trim_end_matches('/');
        if p.is_empty() {
            return Ok(Some((true, root.id())));
        }
        Ok(root.get_path(Path::new(p)).ok().map(|e| (e.kind() == Some(ObjectType::Tree), e.id())))
    }

    /// Subject, author and date of `commit`, for the history and notifications.
    pub fn commit_info(&self, commit: Oid) -> Result<crate::state::CommitInfo, SourceError> {
        let repo = self.repo()?;
        let c = repo.find_commit(commit).map_err(|e| self.mirror_err(format!("revision {commit}: {e}")))?;
        let author = c.author();
        let who = match (author.name().ok().filter(|n| !n.is_empty()), author.email().ok().filter(|e| !e.is_empty())) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (Some(n), None) => n.to_string(),
            (None, Some(e)) => format!("<{e}>"),
            (None, None) => String::new(),
        };
        let secs = author.when().seconds();
        let date = u64::try_from(secs)
            .ok()
            .map(|s| {
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)).to_string()
            })
            .unwrap_or_default();
        Ok(crate::state::CommitInfo {
            subject: c.summary().ok().flatten().unwrap_or_default().to_string(),
            author: who,
            date,
        })
    }

    /// Tags (short names) that point at `commit`, sorted.
    pub fn tags_at(&self, commit: Oid) -> Result<Vec<String>, SourceError> {
        let repo = self.repo()?;
        let names = repo.tag_names(None).map_err(|e| self.mirror_err(e))?;
        let mut out: Vec<String> = names
            .iter()
            .filter_map(|t| t.ok().flatten())
            .filter(|t| {
                peel_commit(&repo, repo.refname_to_id(&format!("refs/tags/{t}")).unwrap_or(Oid::ZERO_SHA1))
                    == Some(commit)
            })
            .map(str::to_string)
            .collect();
        out.sort();
        Ok(out)
    }

    /// The tree id of folder `path` in `commit` (what an export of it would be keyed by).
    pub fn tree_id(&self, commit: Oid, path: &str) -> Result<Oid, SourceError> {
        let repo = self.repo()?;
        let id = self.subtree(&repo, commit, path)?.id();
        Ok(id)
    }

    /// Write folder `path` of `commit` under `state_dir/exports/<tree id>` (once per tree:
    /// two revisions with the same tree share one export). Written to a temporary folder
    /// first and renamed into place, so an export is either complete or absent.
    pub fn export(&self, commit: Oid, path: &str) -> Result<Export, SourceError> {
        let repo = self.repo()?;
        let tree = self.subtree(&repo, commit, path)?;
        let dest = self.exports.join(tree.id().to_string());
        if dest.is_dir() {
            return Ok(Export { path: dest, tree: tree.id() });
        }
        let io = |p: &Path, e: std::io::Error| SourceError::Mirror { path: p.to_path_buf(), detail: e.to_string() };
        std::fs::create_dir_all(&self.exports).map_err(|e| io(&self.exports, e))?;
        let tmp = self.exports.join(format!(".tmp-{}-{}", tree.id(), std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        write_tree(&repo, &tree, &tmp).map_err(|e| match e {
            WriteError::Io(p, e) => io(&p, e),
            WriteError::Git(e) => self.mirror_err(e),
            WriteError::Submodule(p) => self.mirror_err(format!(
                "{} in {commit} is a submodule; submodules are not exported: vendor the content instead",
                p.display()
            )),
        })?;
        crate::fsutil::fsync_dir(&tmp).map_err(|e| io(&tmp, e))?;
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => {}
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp); // another export of the same tree won
            }
            Err(e) => return Err(io(&dest, e)),
        }
        crate::fsutil::fsync_dir(&self.exports).map_err(|e| io(&self.exports, e))?;
        Ok(Export { path: dest, tree: tree.id() })
    }

    /// Point one of the agent's refs at `commit` (`Failed` adds `refs/driftless/failed/<id>`).
    pub fn pin(&self, pin: Pin, commit: Oid, why: &str) -> Result<(), SourceError> {
        let repo = self.repo()?;
        repo.reference(&pin_ref(pin, commit), commit, true, why).map_err(|e| self.mirror_err(e))?;
        Ok(())
    }

    /// Where `Applied` or `LastGood` points.
    pub fn pinned(&self, pin: Pin) -> Result<Option<Oid>, SourceError> {
        let repo = self.repo()?;
        Ok(repo.refname_to_id(&pin_ref(pin, Oid::ZERO_SHA1)).ok())
    }

    /// Whether `commit` was marked failed.
    pub fn is_failed(&self, commit: Oid) -> Result<bool, SourceError> {
        let repo = self.repo()?;
        Ok(repo.refname_to_id(&pin_ref(Pin::Failed, commit)).is_ok())
    }

    /// Turn a git2 error into one an operator can act on.
    pub(super) fn classify(&self, e: git2::Error, ctx: &CallbackContext) -> SourceError {
        if let Some(err) = ctx.host_key_error.borrow_mut().take() {
            return err;
        }
        let detail = e.message().trim_end_matches('.').to_string();
        let lower = detail.to_ascii_lowercase();
        let auth = e.code() == git2::ErrorCode::Auth
            || *ctx.auth_exhausted.borrow()
            || lower.contains("authentication")
            || lower.contains("401")
            || lower.contains("403")
            || lower.contains("permission denied");
        if auth {
            SourceError::AuthRefused { url: self.url.clone(), detail }
        } else {
            SourceError::Unreachable { url: self.url.clone(), detail }
        }
    }
}

fn pin_ref(pin: Pin, commit: Oid) -> String {
    match pin {
        Pin::Applied => "refs/driftless/applied".to_string(),
        Pin::LastGood => "refs/driftless/last-good".to_string(),
        Pin::Failed => format!("refs/driftless/failed/{commit}"),
    }
}

fn peel_commit(repo: &Repository, oid: Oid) -> Option<Oid> {
    repo.find_object(oid, None).ok()?.peel_to_commit().ok().map(|c| c.id())
}

/// `hosts/web-1` → `hosts/web-1/`; `.` and `` → ``.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}/", parts.join("/"))
    }
}

enum WriteError {
    Io(PathBuf, std::io::Error),
    Git(git2::Error),
    Submodule(PathBuf),
}

fn write_tree(repo: &Repository, tree: &git2::Tree<'_>, dir: &Path) -> Result<(), WriteError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| WriteError::Io(dir.to_path_buf(), e))?;
    for entry in tree.iter() {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let path = dir.join(&name);
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id()).map_err(WriteError::Git)?;
                write_tree(repo, &sub, &path)?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id()).map_err(WriteError::Git)?;
                if entry.filemode() == 0o120000 {
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    std::os::unix::fs::symlink(target, &path).map_err(|e| WriteError::Io(path.clone(), e))?;
                } else {
                    std::fs::write(&path, blob.content()).map_err(|e| WriteError::Io(path.clone(), e))?;
                    let mode = if entry.filemode() == 0o100755 { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| WriteError::Io(path.clone(), e))?;
                }
            }
            Some(ObjectType::Commit) => return Err(WriteError::Submodule(path)),
            _ => {}
        }
    }
    Ok(())
}

/// A revision's files, read from the mirror: what the reconciler hands drivers with the
/// revision (`crate::revision::Files`).
struct FilesAt {
    /// The source whose mirror holds the commit.
    src: GitSource,
    /// The commit.
    commit: Oid,
}

impl FilesAt {
    fn err(e: SourceError) -> crate::revision::FilesError {
        use crate::fault::Classify;
        crate::revision::FilesError { fault: e.is_fault(), detail: e.to_string() }
    }
}

impl crate::revision::Files for FilesAt {
    fn read(&self, path: &str) -> Result<Vec<u8>, crate::revision::FilesError> {
        self.src.read_file(self.commit, path).map(|(_, b)| b).map_err(FilesAt::err)
    }

    fn entry(&self, path: &str) -> Result<Option<(bool, String)>, crate::revision::FilesError> {
        self.src.entry(self.commit, path).map(|e| e.map(|(dir, id)| (dir, id.to_string()))).map_err(FilesAt::err)
    }

    fn tree_id(&self, path: &str) -> Result<String, crate::revision::FilesError> {
        self.src.tree_id(self.commit, path).map(|t| t.to_string()).map_err(FilesAt::err)
    }

    fn export(&self, path: &str) -> Result<PathBuf, crate::revision::FilesError> {
        self.src.export(self.commit, path).map(|e| e.path).map_err(FilesAt::err)
    }

    fn tags(&self) -> Result<Vec<String>, crate::revision::FilesError> {
        self.src.tags_at(self.commit).map_err(FilesAt::err)
    }
}

impl GitSource {
    /// `revision` with its files (read from this mirror), to hand to drivers. A malformed
    /// id stays bare: a driver asking it for files then meets a fault.
    pub fn with_files(&self, revision: &crate::revision::Revision) -> crate::revision::Revision {
        match revision.oid() {
            Some(commit) => revision.with_files(std::sync::Arc::new(FilesAt { src: self.clone(), commit })),
            None => revision.clone(),
        }
    }
}

/// State shared with libgit2's callbacks during one operation.
pub(super) struct CallbackContext {
    auth: Option<AuthConfig>,
    known_hosts: Vec<PathBuf>,
    port: Option<u16>,
    host_key_error: RefCell<Option<SourceError>>,
    auth_attempts: RefCell<u32>,
    auth_exhausted: RefCell<bool>,
}

impl CallbackContext {
    pub(super) fn new(src: &GitSource) -> CallbackContext {
        CallbackContext {
            auth: src.auth.clone(),
            known_hosts: src.known_hosts.clone(),
            port: ssh_port(&src.url),
            host_key_error: RefCell::new(None),
            auth_attempts: RefCell::new(0),
            auth_exhausted: RefCell::new(false),
        }
    }

    /// Callbacks for one connection; each connection may ask for credentials once.
    pub(super) fn callbacks(&self) -> RemoteCallbacks<'_> {
        *self.auth_attempts.borrow_mut() = 0;
        let mut cb = RemoteCallbacks::new();
        cb.credentials(move |url, user_from_url, allowed| self.credentials(url, user_from_url, allowed));
        cb.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: libgit2 checks the certificate chain against the system CAs.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let Some(key) = hostkey.hostkey() else {
                return Err(git2::Error::from_str("the server sent no host key"));
            };
            match self.check_host_key(host, key) {
                Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                Err(e) => {
                    let msg = e.to_string();
                    *self.host_key_error.borrow_mut() = Some(e);
                    Err(git2::Error::from_str(&msg))
                }
            }
        });
        cb
    }

    fn credentials(
        &self,
        _url: &str,
        user_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        // libgit2 asks again after every refusal: answer once, then give up cleanly.
        let mut attempts = self.auth_attempts.borrow_mut();
        *attempts += 1;
        if *attempts > 1 {
            *self.auth_exhausted.borrow_mut() = true;
            return Err(git2::Error::from_str("authentication refused"));
        }
        let auth = self.auth.as_ref();
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user_from_url.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user_from_url.unwrap_or("git");
            return match auth.and_then(|a| a.ssh_key.as_deref()) {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(file) = auth.and_then(|a| a.token_file.as_deref()) {
                let token = std::fs::read_to_string(file)
                    .map_err(|e| git2::Error::from_str(&format!("cannot read {}: {e}", file.display())))?;
                let user = auth.and_then(|a| a.username.as_deref()).or(user_from_url).unwrap_or("git");
                return Cred::userpass_plaintext(user, token.trim());
            }
            *self.auth_exhausted.borrow_mut() = true;
            return Err(git2::Error::from_str("the server asks for credentials and source.auth.token_file is not set"));
        }
        Cred::default()
    }

    fn check_host_key(&self, host: &str, key: &[u8]) -> Result<(), SourceError> {
        let name = known_hosts::host_entry_name(host, self.port);
        let fingerprint = known_hosts::fingerprint(key);
        let files: Vec<String> = self.known_hosts.iter().map(|p| p.display().to_string()).collect();
        let mut changed = false;
        for path in &self.known_hosts {
            let Ok(text) = std::fs::read_to_string(path) else { continue };
            match known_hosts::check(&text, &name, key) {
                known_hosts::Verdict::Known => return Ok(()),
                known_hosts::Verdict::Revoked => {
                    return Err(SourceError::RevokedHostKey {
                        host: name,
                        fingerprint,
                        files: path.display().to_string(),
                    })
                }
                known_hosts::Verdict::Changed => changed = true,
                known_hosts::Verdict::Unknown => {}
            }
        }
        if changed {
            return Err(SourceError::ChangedHostKey { host: name, fingerprint, files: files.join(" or ") });
        }
        let scan = match self.port {
            Some(p) if p != 22 => format!("-p {p} {host}"),
            _ => host.to_string(),
        };
        Err(SourceError::UnknownHostKey {
            host: name,
            fingerprint,
            files: files.join(" or "),
            scan,
            first: files.first().cloned().unwrap_or_else(|| SYSTEM_KNOWN_HOSTS.to_string()),
        })
    }
}

/// The port of an `ssh://` URL, if it names one.
fn ssh_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("ssh://")?;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.starts_with('[') {
        return hostport.rsplit_once("]:").and_then(|(_, p)| p.parse().ok());
    }
    hostport.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_paths() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/x.git"), Some(2222));
        assert_eq!(ssh_port("ssh://git@host/srv/x.git"), None);
        assert_eq!(ssh_port("ssh://[::1]:2200/x"), Some(2200));
        assert_eq!(ssh_port("git@host:x.git"), None);
        assert_eq!(normalize("."), "");
        assert_eq!(normalize("hosts/web-1/"), "hosts/web-1/");
        assert_eq!(normalize("./hosts//web-1"), "hosts/web-1/");
    }
}
