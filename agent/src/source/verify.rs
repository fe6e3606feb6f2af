//! SSH signature checks of commits and annotated tags against an `allowed_signers` file
//! (git's format). Like git with `gpg.format=ssh`, this asks OpenSSH's `ssh-keygen -Y` to
//! find the signer's principal and verify the signature in the `git` namespace, so the
//! agent's verdict is exactly the one `git verify-commit` / `git verify-tag` would give.
//! OpenPGP signatures are refused with a message saying so (see docs/decisions.md).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use git2::{Oid, Repository};

const SSH_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const PGP_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";

/// Verify a commit's signature; the signer's principal, or why not.
pub fn verify_commit(repo: &Repository, commit: Oid, allowed_signers: &Path) -> Result<String, String> {
    let (sig, data) = match repo.extract_signature(&commit, None) {
        Ok(pair) => pair,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            return Err("the commit is not signed; only signed revisions are applied (source.verify)".into())
        }
        Err(e) => return Err(format!("cannot read the commit's signature: {e}")),
    };
    let sig = String::from_utf8_lossy(&sig).into_owned();
    check(&sig, &data, allowed_signers)
}

/// Verify an annotated tag's signature (appended to its message); the signer, or why not.
pub fn verify_tag(repo: &Repository, tag: Oid, allowed_signers: &Path) -> Result<String, String> {
    let odb = repo.odb().map_err(|e| format!("cannot open the object database: {e}"))?;
    let obj = odb.read(tag).map_err(|e| format!("cannot read tag {tag}: {e}"))?;
    let raw = obj.data();
    let text = String::from_utf8_lossy(raw);
    let start = text.find(SSH_BEGIN).or_else(|| text.find(PGP_BEGIN));
    let Some(start) = start else {
        return Err("the tag is not signed; only signed tags are applied (source.verify)".into());
    };
    check(&text[start..], &raw[..start], allowed_signers)
}

fn check(sig: &str, payload: &[u8], allowed_signers: &Path) -> Result<String, String> {
    if sig.starts_with(PGP_BEGIN) {
        return Err(
            "it is signed with OpenPGP; Driftless verifies SSH signatures only (sign with gpg.format=ssh)".into()
        );
    }
    if !sig.starts_with(SSH_BEGIN) {
        return Err("its signature is in an unknown format".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let sig_path = dir.path().join("signature");
    std::fs::write(&sig_path, sig).map_err(|e| format!("cannot write {}: {e}", sig_path.display()))?;

    let found = Command::new("ssh-keygen")
        .args(["-Y", "find-principals", "-f"])
        .arg(allowed_signers)
        .arg("-s")
        .arg(&sig_path)
        .output()
        .map_err(|e| format!("cannot run ssh-keygen (install openssh-client): {e}"))?;
    let principals = String::from_utf8_lossy(&found.stdout);
    let Some(principal) = principals.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(format!("it is signed by a key not listed in {}", allowed_signers.display()));
    };

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
        Ok(principal.to_string())
    } else {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(format!("bad signature from {principal}: {why}"))
    }
}
