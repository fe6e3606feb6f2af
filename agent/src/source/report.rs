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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use git2::{Oid, PushOptions, Repository};

use super::{CallbackContext, GitSource, SourceError};
use crate::config::{AuthConfig, RefSelector};

/// Where each host's report lives in the report repository.
pub const REPORT_PREFIX: &str = "refs/driftless/hosts/";
/// How many commits a report ref keeps before a report starts a new root.
pub const HISTORY: usize = 50;
/// The largest `status.json` or `outcomes.json` a reader accepts.
pub const MAX_REPORT_FILE: usize = 1 << 20;

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
    /// `status.json` and `outcomes.json`, or why the report cannot be read.
    pub content: Result<(serde_json::Value, serde_json::Value), String>,
}

impl GitSource {
    /// A source for the report repository `url`, kept at `repo` (a bare repository of the
    /// agent's, or a scratch one for `agentctl fleet`).
    pub fn for_reports(url: &str, auth: Option<AuthConfig>, repo: PathBuf) -> GitSource {
        let mut known_hosts: Vec<PathBuf> = auth.as_ref().and_then(|a| a.known_hosts.clone()).into_iter().collect();
        known_hosts.push(PathBuf::from(super::SYSTEM_KNOWN_HOSTS));
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
        Ok(oid)
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

    /// Judge the report `commit` of `host` (see the module doc).
    pub fn read_report(&self, host: &str, commit: Oid, signers: Option<&Path>) -> Result<Report, SourceError> {
        let repo = self.repo()?;
        Ok(read_report(&repo, host, commit, signers))
    }
}

fn read_report(repo: &Repository, host: &str, commit: Oid, signers: Option<&Path>) -> Report {
    let mut report = Report {
        host: host.to_string(),
        commit: commit.to_string(),
        time: 0,
        verified: Err("not read".into()),
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
        Some(file) => match repo.extract_signature(&commit, None) {
            Ok((sig, data)) => ssh_verify_as(&String::from_utf8_lossy(&sig), &data, file, host),
            Err(_) => Err("the report is not signed".into()),
        },
    };
    report.content = (|| {
        let tree = c.tree().map_err(|e| format!("no tree: {e}"))?;
        let read = |name: &str| -> Result<serde_json::Value, String> {
            let entry = tree.get_name(name).ok_or_else(|| format!("the report has no {name}"))?;
            let blob = repo.find_blob(entry.id()).map_err(|_| format!("{name} is not a file"))?;
            if blob.size() > MAX_REPORT_FILE {
                return Err(format!("{name} is {} bytes, over the limit of {MAX_REPORT_FILE}", blob.size()));
            }
            serde_json::from_slice(blob.content()).map_err(|e| format!("{name} is not JSON: {e}"))
        };
        Ok((read("status.json")?, read("outcomes.json")?))
    })();
    report
}

/// Sign `payload` with the SSH private key `key` in the `git` namespace (what git writes into
/// a commit's `gpgsig` header with `gpg.format=ssh`).
pub fn ssh_sign(payload: &[u8], key: &Path) -> Result<String, String> {
    let mut child = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "git", "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ssh-keygen (install openssh-client): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(payload).map_err(|e| format!("cannot feed ssh-keygen: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("ssh-keygen failed: {e}"))?;
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
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "git", "-f"])
        .arg(allowed_signers)
        .arg("-I")
        .arg(principal)
        .arg("-s")
        .arg(&sig_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ssh-keygen (install openssh-client): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(payload).map_err(|e| format!("cannot feed ssh-keygen: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("ssh-keygen failed: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("not signed by a key {} allows for {principal}", allowed_signers.display()))
    }
}
