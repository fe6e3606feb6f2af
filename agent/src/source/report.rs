//! Host reports in Git (PRODUCT.md "Fleets"): each agent pushes a commit holding
//! `status.json` and `outcomes.json` to `refs/driftless/hosts/<host>` of the report
//! repository, SSH-signed as `git commit -S` with `gpg.format=ssh` signs (a `gpgsig` header
//! made by `ssh-keygen -Y sign -n git`), so that plain `git verify-commit` checks it. The
//! ref's history is bounded: after `HISTORY` commits a report starts a new root.
//!
//! Readers (`agentctl fleet`, rollout gates) fetch every report ref in one fetch and judge
//! each: a commit, a tree with `status.json` (JSON, at most 1 MiB) and `outcomes.json`,
//! signed by the host the ref names according to an `allowed_signers` file. A report that
//! fails any of it is shown as such, never counted.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Oid, PushOptions, Repository};

use super::git::{CallbackContext, GitSource, SourceError, SYSTEM_KNOWN_HOSTS};
use super::verify::{ssh_keygen_fed, ssh_keygen_verify};
use crate::config::{AuthConfig, RefSelector};
use crate::report_format::HostReport;

/// Where each host's report lives in the report repository.
pub const REPORT_PREFIX: &str = "refs/driftless/hosts/";
/// How many commits a report ref keeps before a report starts a new root.
pub const HISTORY: usize = 50;
/// The largest `status.json` or `outcomes.json` a reader accepts.
pub const MAX_REPORT_FILE: usize = 1 << 20;

/// An `allowed_signers` file (principals are host names), read once for a batch of reports.
/// Signatures by an Ed25519 key listed for the principal without options are checked in
/// process (SSHSIG, `PROTOCOL.sshsig`); anything else — other key types, lines with options,
/// certificates, wildcards — goes to `ssh-keygen -Y verify`, which stays the authority: the
/// fast path only ever accepts what ssh-keygen would.
#[derive(Clone, Debug)]
pub struct Signers {
    path: PathBuf,
    /// Principal → the Ed25519 public key blobs listed for it on lines without options.
    ed25519: std::collections::HashMap<String, Vec<Vec<u8>>>,
}

impl Signers {
    /// Read `path` (an unreadable file leaves every check to ssh-keygen, which says why).
    pub fn load(path: &Path) -> Signers {
        Signers::parse(path, &std::fs::read_to_string(path).unwrap_or_default())
    }

    /// The signers file `path` whose text is `text`.
    pub fn parse(path: &Path, text: &str) -> Signers {
        let mut ed25519: std::collections::HashMap<String, Vec<Vec<u8>>> = std::collections::HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            // principals keytype base64 [comment]: no options field.
            let [principals, "ssh-ed25519", key, ..] = parts.as_slice() else { continue };
            use base64::Engine;
            let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(key) else { continue };
            for p in principals.split(',').filter(|p| !p.contains(['*', '?', '!'])) {
                ed25519.entry(p.to_string()).or_default().push(blob.clone());
            }
        }
        Signers { path: path.to_path_buf(), ed25519 }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `sig` (armored SSHSIG) is `principal`'s signature of `payload` in the `git`
    /// namespace.
    pub fn verify(&self, sig: &str, payload: &[u8], principal: &str) -> Result<(), String> {
        if self.fast_verify(sig, payload, principal) {
            return Ok(());
        }
        ssh_verify_as(sig, payload, &self.path, principal)
    }

    /// The in-process check alone: `true` only for an Ed25519 SSHSIG in the `git` namespace
    /// by a key listed for `principal` without options (never spawns ssh-keygen; `false`
    /// leaves the answer to it).
    pub fn fast_verify(&self, sig: &str, payload: &[u8], principal: &str) -> bool {
        let Some(keys) = self.ed25519.get(principal) else { return false };
        let Some(s) = Sshsig::parse(sig) else { return false };
        if s.namespace != b"git" || !keys.contains(&s.public_key) {
            return false;
        }
        s.verify_ed25519(payload)
    }
}

/// The signing key of an armored SSHSIG: the sha256 of its public key blob, hex (what `min`
/// of a rollout rule counts); `None` when it does not parse as one.
pub fn key_id(sig: &str) -> Option<String> {
    use sha2::Digest;
    Sshsig::parse(sig).map(|s| sha2::Sha256::digest(&s.public_key).iter().map(|b| format!("{b:02x}")).collect())
}

/// A parsed SSH signature (`PROTOCOL.sshsig`).
struct Sshsig {
    public_key: Vec<u8>,
    namespace: Vec<u8>,
    reserved: Vec<u8>,
    hash: Vec<u8>,
    signature: Vec<u8>,
}

/// Reads SSH wire strings (`uint32` length, bytes).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let out = self.0.get(4..4 + len)?;
        self.0 = &self.0[4 + len..];
        Some(out)
    }
}

fn ssh_string(v: &[u8]) -> Vec<u8> {
    let mut out = (v.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(v);
    out
}

impl Sshsig {
    fn parse(armored: &str) -> Option<Sshsig> {
        let body: String = armored
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN SSH SIGNATURE-----")
            .skip(1)
            .take_while(|l| *l != "-----END SSH SIGNATURE-----")
            .collect();
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
        let rest = raw.strip_prefix(b"SSHSIG")?;
        if rest.get(..4)? != [0, 0, 0, 1] {
            return None;
        }
        let mut w = Wire(&rest[4..]);
        Some(Sshsig {
            public_key: w.string()?.to_vec(),
            namespace: w.string()?.to_vec(),
            reserved: w.string()?.to_vec(),
            hash: w.string()?.to_vec(),
            signature: w.string()?.to_vec(),
        })
    }

    fn verify_ed25519(&self, payload: &[u8]) -> bool {
        use sha2::Digest;
        let mut key = Wire(&self.public_key);
        let (Some(b"ssh-ed25519"), Some(key)) = (key.string(), key.string()) else { return false };
        let mut sig = Wire(&self.signature);
        let (Some(b"ssh-ed25519"), Some(sig)) = (sig.string(), sig.string()) else { return false };
        let digest = match self.hash.as_slice() {
            b"sha512" => sha2::Sha512::digest(payload).to_vec(),
            b"sha256" => sha2::Sha256::digest(payload).to_vec(),
            _ => return false,
        };
        let mut signed = b"SSHSIG".to_vec();
        for part in [&self.namespace, &self.reserved, &self.hash, &digest] {
            signed.extend(ssh_string(part));
        }
        let (Ok(key), Ok(sig)) = (<[u8; 32]>::try_from(key), <[u8; 64]>::try_from(sig)) else { return false };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else { return false };
        key.verify_strict(&signed, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
    }
}

/// One host's report as a reader found it.
#[derive(Clone, Debug)]
pub struct Report {
    /// The host its ref names.
    pub host: String,
    pub commit: String,
    /// When it was made (the commit's time, seconds since the epoch).
    pub time: i64,
    /// `Ok(())` when signed by `host` per the signers file; else why not.
    pub verified: Result<(), String>,
    /// The signing key (sha256 of its public key blob, hex) when the signature names one: what
    /// `min` of a rollout rule counts, so one key listed for two host names counts once.
    pub key: Option<String>,
    /// `status.json` and `outcomes.json`, read once, or why the report cannot be read.
    pub content: Result<HostReport, String>,
}

/// Loose objects and packs a report repository may gather before it is compacted
/// (`GitSource::compact_reports`): a push writes four objects, a fetch one pack.
const COMPACT_LOOSE: usize = 512;
const COMPACT_PACKS: usize = 16;

/// Loose objects and packs under a bare repository `dir`.
fn object_counts(dir: &Path) -> (usize, usize) {
    let objects = dir.join("objects");
    let Ok(entries) = std::fs::read_dir(&objects) else { return (0, 0) };
    let mut loose = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            loose += std::fs::read_dir(e.path()).map(|d| d.count()).unwrap_or(0);
        }
    }
    let packs = std::fs::read_dir(objects.join("pack"))
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".pack")).count())
        .unwrap_or(0);
    (loose, packs)
}

impl GitSource {
    /// A source for the report repository `url`, kept at `repo` (a bare repository of the
    /// agent's, or a scratch one for `agentctl fleet`).
    pub fn for_reports(url: &str, auth: Option<AuthConfig>, repo: PathBuf) -> GitSource {
        let mut known_hosts: Vec<PathBuf> = auth.as_ref().and_then(|a| a.known_hosts.clone()).into_iter().collect();
        known_hosts.push(PathBuf::from(SYSTEM_KNOWN_HOSTS));
        GitSource {
            url: url.to_string(),
            selector: RefSelector::Branch(String::new()),
            auth,
            exports: repo.join("exports"),
            mirror: repo,
            known_hosts,
            poll: Default::default(),
        }
    }

    /// Commit `files` as `host`'s report, signed with the SSH key `sign`, and push it to
    /// `refs/driftless/hosts/<host>` (forced: the ref is the host's alone). The commit id.
    pub fn push_report(
        &self,
        host: &str,
        files: &[(&str, Vec<u8>)],
        sign: &Path,
        message: &str,
    ) -> Result<Oid, SourceError> {
        let repo = self.repo()?;
        let refname = format!("{REPORT_PREFIX}{host}");
        let mut tb = repo.treebuilder(None).map_err(|e| self.mirror_err(e))?;
        for (name, bytes) in files {
            let blob = repo.blob(bytes).map_err(|e| self.mirror_err(e))?;
            tb.insert(name, blob, 0o100644).map_err(|e| self.mirror_err(e))?;
        }
        let tree = repo.find_tree(tb.write().map_err(|e| self.mirror_err(e))?).map_err(|e| self.mirror_err(e))?;
        let parent = repo.refname_to_id(&refname).ok().and_then(|p| repo.find_commit(p).ok());
        // Bounded history: the chain starts over after HISTORY commits.
        let parent = parent.filter(|p| {
            let mut depth = 1;
            let mut c = p.clone();
            while let Ok(next) = c.parent(0) {
                depth += 1;
                if depth >= HISTORY {
                    return false;
                }
                c = next;
            }
            true
        });
        let who = git2::Signature::now(host, &format!("driftless@{host}")).map_err(|e| self.mirror_err(e))?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let buf = repo.commit_create_buffer(&who, &who, message, &tree, &parents).map_err(|e| self.mirror_err(e))?;
        let payload = buf.as_str().map_err(|_| self.mirror_err("the report commit is not UTF-8"))?.to_string();
        let signature = ssh_sign(payload.as_bytes(), sign).map_err(|detail| SourceError::Mirror {
            path: sign.to_path_buf(),
            detail: format!("cannot sign the report with it: {detail}"),
        })?;
        let oid = repo.commit_signed(&payload, &signature, None).map_err(|e| self.mirror_err(e))?;
        repo.reference(&refname, oid, true, "driftless report").map_err(|e| self.mirror_err(e))?;
        let ctx = CallbackContext::new(self);
        let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.classify(e, &ctx))?;
        let rejected = std::cell::RefCell::new(None);
        let mut cb = ctx.callbacks();
        cb.push_update_reference(|name, status| {
            if let Some(why) = status {
                *rejected.borrow_mut() = Some(format!("{name}: {why}"));
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        remote.push(&[format!("+{refname}:{refname}")], Some(&mut opts)).map_err(|e| self.classify(e, &ctx))?;
        drop(opts);
        if let Some(why) = rejected.into_inner() {
            return Err(SourceError::Unreachable {
                url: self.url.clone(),
                detail: format!("the push was refused: {why}"),
            });
        }
        drop(remote);
        self.compact_reports();
        Ok(oid)
    }

    /// Keep the local report repository small, whatever the number of pushes and fetches:
    /// once it holds more than `COMPACT_LOOSE` loose objects or `COMPACT_PACKS` packs, it is
    /// rebuilt beside itself with only what its report refs reach, in one pack, and put in
    /// the old one's place (a cache: a crash between the two renames leaves no repository,
    /// and the next push or fetch starts a new one). A failure leaves the old one as it was
    /// and is logged: it never fails a push or a read.
    pub fn compact_reports(&self) {
        let (loose, packs) = object_counts(&self.mirror);
        if loose <= COMPACT_LOOSE && packs <= COMPACT_PACKS {
            return;
        }
        if let Err(e) = self.rebuild_reports() {
            tracing::warn!(
                "report repository {}: not compacted ({e}); it is retried after the next push",
                self.mirror.display()
            );
        }
    }

    fn rebuild_reports(&self) -> Result<(), git2::Error> {
        let fresh = self.mirror.with_extension("compact");
        let old = self.mirror.with_extension("old");
        for leftover in [&fresh, &old] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).map_err(|e| git2::Error::from_str(&e.to_string()))?;
            }
        }
        {
            let repo = Repository::open_bare(&self.mirror)?;
            let tips: Vec<(String, Oid)> = repo
                .references_glob(&format!("{REPORT_PREFIX}*"))?
                .filter_map(|r| r.ok())
                .filter_map(|r| Some((r.name().ok()?.to_string(), r.target()?)))
                .collect();
            let new = Repository::init_bare(&fresh)?;
            if !tips.is_empty() {
                let mut walk = repo.revwalk()?;
                for (_, oid) in &tips {
                    walk.push(*oid)?;
                }
                let mut pb = repo.packbuilder()?;
                pb.insert_walk(&mut walk)?;
                pb.write(&fresh.join("objects").join("pack"), 0o644)?;
            }
            for (name, oid) in &tips {
                new.reference(name, *oid, true, "driftless: compacted")?;
            }
        }
        let io = |e: std::io::Error| git2::Error::from_str(&e.to_string());
        std::fs::rename(&self.mirror, &old).map_err(io)?;
        std::fs::rename(&fresh, &self.mirror).map_err(io)?;
        std::fs::remove_dir_all(&old).map_err(io)?;
        if let Ok(mut cached) = self.poll.0.lock() {
            *cached = None; // the handle of the old one
        }
        Ok(())
    }

    /// Fetch every report ref in one fetch (refs gone upstream go here too); the hosts and
    /// their report commits.
    pub fn fetch_reports(&self) -> Result<Vec<(String, Oid)>, SourceError> {
        let repo = self.repo()?;
        let ctx = CallbackContext::new(self);
        let advertised = self.list_remote(&repo, &ctx)?;
        let wanted: Vec<(String, Oid)> = advertised
            .iter()
            .filter_map(|(name, oid)| name.strip_prefix(REPORT_PREFIX).map(|h| (h.to_string(), *oid)))
            .filter(|(h, _)| !h.is_empty() && !h.contains('/'))
            .collect();
        let missing =
            wanted.iter().any(|(h, oid)| repo.refname_to_id(&format!("{REPORT_PREFIX}{h}")).ok() != Some(*oid));
        if missing {
            let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.classify(e, &ctx))?;
            let mut opts = git2::FetchOptions::new();
            opts.remote_callbacks(ctx.callbacks());
            opts.download_tags(git2::AutotagOption::None);
            let spec = format!("+{REPORT_PREFIX}*:{REPORT_PREFIX}*");
            remote.fetch(&[spec], Some(&mut opts), None).map_err(|e| self.classify(e, &ctx))?;
        }
        Ok(wanted)
    }

    /// Fetch every report (one fetch) and judge each against `signers` (see the module doc).
    pub fn read_reports(&self, signers: Option<&Signers>) -> Result<Vec<Report>, SourceError> {
        let wanted = self.fetch_reports()?;
        self.compact_reports();
        let repo = self.repo()?;
        Ok(wanted.into_iter().map(|(host, commit)| read_report(&repo, &host, commit, signers)).collect())
    }
}

fn read_report(repo: &Repository, host: &str, commit: Oid, signers: Option<&Signers>) -> Report {
    let mut report = Report {
        host: host.to_string(),
        commit: commit.to_string(),
        time: 0,
        verified: Err("not read".into()),
        key: None,
        content: Err("not read".into()),
    };
    let c = match repo.find_commit(commit) {
        Ok(c) => c,
        Err(_) => {
            let what = "the ref does not point at a commit";
            report.verified = Err(what.into());
            report.content = Err(what.into());
            return report;
        }
    };
    report.time = c.time().seconds();
    report.verified = match signers {
        None => Err("no signers file to check it against (rollout.signers or --signers)".into()),
        Some(signers) => match repo.extract_signature(&commit, None) {
            Ok((sig, data)) => {
                let sig = String::from_utf8_lossy(&sig);
                report.key = key_id(&sig);
                signers.verify(&sig, &data, host)
            }
            Err(_) => Err("the report is not signed".into()),
        },
    };
    report.content = (|| {
        let tree = c.tree().map_err(|e| format!("no tree: {e}"))?;
        let read = |name: &str| -> Result<Vec<u8>, String> {
            let entry = tree.get_name(name).ok_or_else(|| format!("the report has no {name}"))?;
            // The size from the object's header: an oversized blob is never read into memory.
            let size = repo.odb().and_then(|o| o.read_header(entry.id())).map(|(n, _)| n).unwrap_or(usize::MAX);
            if size > MAX_REPORT_FILE {
                return Err(format!("{name} is {size} bytes, over the limit of {MAX_REPORT_FILE}"));
            }
            let blob = repo.find_blob(entry.id()).map_err(|_| format!("{name} is not a file"))?;
            Ok(blob.content().to_vec())
        };
        HostReport::parse(&read("status.json")?, &read("outcomes.json")?)
    })();
    report
}

/// Sign `payload` with the SSH private key `key` in the `git` namespace (what git writes into
/// a commit's `gpgsig` header with `gpg.format=ssh`).
pub fn ssh_sign(payload: &[u8], key: &Path) -> Result<String, String> {
    let out =
        ssh_keygen_fed(Command::new("ssh-keygen").args(["-q", "-Y", "sign", "-n", "git", "-f"]).arg(key), payload)?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    String::from_utf8(out.stdout).map_err(|_| "ssh-keygen wrote a signature that is not text".into())
}

/// Verify an SSH signature of `payload` as made by `principal` per `allowed_signers`.
pub fn ssh_verify_as(sig: &str, payload: &[u8], allowed_signers: &Path, principal: &str) -> Result<(), String> {
    if !sig.starts_with("-----BEGIN SSH SIGNATURE-----") {
        return Err("the report is not SSH-signed".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let sig_path = dir.path().join("signature");
    std::fs::write(&sig_path, sig).map_err(|e| format!("cannot write {}: {e}", sig_path.display()))?;
    match ssh_keygen_verify(&sig_path, payload, allowed_signers, principal)? {
        Ok(()) => Ok(()),
        Err(_) => Err(format!("not signed by a key {} allows for {principal}", allowed_signers.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Stdio;

    /// The in-process check agrees with ssh-keygen on signatures ssh-keygen made.
    #[test]
    fn sshsig_in_process_agrees_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let key = |name: &str| {
            let path = dir.path().join(name);
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&path)
                .output()
                .expect("ssh-keygen (openssh-client) runs");
            assert!(out.status.success());
            let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
            (path, public.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        };
        let (k1, p1) = key("web-1");
        let (k2, p2) = key("web-2");
        let file = dir.path().join("signers");
        std::fs::write(&file, format!("web-1 {p1}\nweb-2,web-9 {p2}\n# a comment\n")).unwrap();
        let signers = Signers::load(&file);
        let payload = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor web-1\n\nreport\n";
        let sig = ssh_sign(payload, &k1).unwrap();
        assert!(signers.fast_verify(&sig, payload, "web-1"), "in process");
        assert_eq!(signers.verify(&sig, payload, "web-1"), Ok(()));
        assert_eq!(ssh_verify_as(&sig, payload, &file, "web-1"), Ok(()), "ssh-keygen agrees");
        // Another host's name, a changed payload: refused by both.
        assert!(!signers.fast_verify(&sig, payload, "web-2"));
        assert!(signers.verify(&sig, payload, "web-2").is_err());
        let mut changed = payload.to_vec();
        changed[5] ^= 1;
        assert!(!signers.fast_verify(&sig, &changed, "web-1"));
        assert!(signers.verify(&sig, &changed, "web-1").is_err());
        // A key listed for two principals speaks for both.
        let sig2 = ssh_sign(payload, &k2).unwrap();
        assert!(signers.fast_verify(&sig2, payload, "web-9"));
        // Another namespace is not a git signature.
        let out = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", "file", "-f"])
            .arg(&k1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(payload)?;
                c.wait_with_output()
            })
            .unwrap();
        let other = String::from_utf8(out.stdout).unwrap();
        assert!(!signers.fast_verify(&other, payload, "web-1"));
        assert!(signers.verify(&other, payload, "web-1").is_err(), "ssh-keygen refuses it too");
    }
}
