//! Signature checks of commits and annotated tags, as `git verify-commit` / `git verify-tag`
//! would give them:
//!
//! - **SSH** (`gpg.format=ssh`) against an `allowed_signers` file: OpenSSH's `ssh-keygen -Y`
//!   finds the signer's principal and verifies in the `git` namespace.
//! - **OpenPGP** (`gpg.format=openpgp`) against armored public keys: `gpg --verify` in a
//!   keyring the agent builds from those files in its own `state_dir` (never a user's
//!   keyring), reading gpg's machine-readable status lines. Expired, revoked and unknown keys,
//!   and bad or expired signatures, are refused with a message saying which.
//!
//! A revision signed by any trusted key passes; a signature of a kind the config does not
//! trust is refused saying what to configure.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use git2::{Oid, Repository};

const SSH_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const PGP_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";

/// Verify a commit's signature; the signer's principal, or why not.
pub fn verify_commit(repo: &Repository, commit: Oid, trust: &Trust) -> Result<String, String> {
    let (sig, data) = match repo.extract_signature(&commit, None) {
        Ok(pair) => pair,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            return Err("the commit is not signed; only signed revisions are applied (source.verify)".into())
        }
        Err(e) => return Err(format!("cannot read the commit's signature: {e}")),
    };
    let sig = String::from_utf8_lossy(&sig).into_owned();
    check(&sig, &data, trust)
}

/// Verify an annotated tag's signature (appended to its message); the signer, or why not.
pub fn verify_tag(repo: &Repository, tag: Oid, trust: &Trust) -> Result<String, String> {
    let odb = repo.odb().map_err(|e| format!("cannot open the object database: {e}"))?;
    let obj = odb.read(tag).map_err(|e| format!("cannot read tag {tag}: {e}"))?;
    let Some((payload, sig)) = split_signed(obj.data()) else {
        return Err("the tag is not signed; only signed tags are applied (source.verify)".into());
    };
    // An armored signature is ASCII; anything else in it makes it one that cannot verify.
    let Ok(sig) = std::str::from_utf8(sig) else {
        return Err("its signature block is not ASCII armor (it holds bytes that are not text)".into());
    };
    check(sig, payload, trust)
}

/// Split an annotated tag object into the signed payload and the signature appended to its
/// message, as git does (`parse_signed_buffer`): the signature starts at the last line that
/// begins with an SSH or OpenPGP `-----BEGIN` marker. Works on bytes: a message may hold any
/// bytes (invalid UTF-8 included) before the signature. `None`: not signed.
pub fn split_signed(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut start = None;
    let mut at = 0;
    while at < raw.len() {
        let line = &raw[at..];
        if line.starts_with(SSH_BEGIN.as_bytes()) || line.starts_with(PGP_BEGIN.as_bytes()) {
            start = Some(at);
        }
        at = match line.iter().position(|b| *b == b'\n') {
            Some(eol) => at + eol + 1,
            None => raw.len(),
        };
    }
    start.map(|s| raw.split_at(s))
}

/// What a revision's signature is checked against.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// SSH: an `allowed_signers` file.
    pub allowed_signers: Option<std::path::PathBuf>,
    /// OpenPGP: the keyring built from `openpgp_keys` (`Keyring::build`).
    pub openpgp: Option<Keyring>,
}

fn check(sig: &str, payload: &[u8], trust: &Trust) -> Result<String, String> {
    if sig.starts_with(PGP_BEGIN) {
        return match &trust.openpgp {
            Some(k) => k.verify(sig, payload),
            None => Err("it is signed with OpenPGP, and source.verify lists no openpgp_keys: add the signer's armored public key to source.verify.openpgp_keys".into()),
        };
    }
    if !sig.starts_with(SSH_BEGIN) {
        return Err("its signature is in an unknown format".into());
    }
    let Some(allowed_signers) = trust.allowed_signers.as_deref() else {
        return Err("it is signed with an SSH key, and source.verify has no allowed_signers: add the signer to an allowed_signers file".into());
    };
    ssh_check(sig, payload, allowed_signers)
}

fn ssh_check(sig: &str, payload: &[u8], allowed_signers: &Path) -> Result<String, String> {
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

    match ssh_keygen_verify(&sig_path, payload, allowed_signers, principal)? {
        Ok(()) => Ok(principal.to_string()),
        Err(why) => Err(format!("bad signature from {principal}: {why}")),
    }
}

/// `ssh-keygen -Y verify` in the `git` namespace of the signature in `sig_path` over
/// `payload`, as `principal` per `allowed_signers`: `Err` when ssh-keygen cannot be run,
/// `Ok(Err(its words))` when the signature does not verify.
pub fn ssh_keygen_verify(
    sig_path: &Path,
    payload: &[u8],
    allowed_signers: &Path,
    principal: &str,
) -> Result<Result<(), String>, String> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-Y", "verify", "-n", "git", "-f"]).arg(allowed_signers).arg("-I").arg(principal).arg("-s").arg(sig_path);
    let out = ssh_keygen_fed(&mut cmd, payload)?;
    Ok(if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) })
}

/// Run the `ssh-keygen` command `cmd` with `input` on its standard input; its output.
pub fn ssh_keygen_fed(cmd: &mut Command, input: &[u8]) -> Result<std::process::Output, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ssh-keygen (install openssh-client): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| format!("cannot feed ssh-keygen: {e}"))?;
    }
    child.wait_with_output().map_err(|e| format!("ssh-keygen failed: {e}"))
}

/// An OpenPGP keyring the agent builds from armored public keys in its own `state_dir`
/// (`gnupg/<digest of the key files>`), so that a user's keyring never counts.
#[derive(Clone, Debug)]
pub struct Keyring {
    home: std::path::PathBuf,
}

impl Keyring {
    /// Import `keys` into a fresh keyring under `dir` (reused while the key files are the same).
    pub fn build(dir: &Path, keys: &[std::path::PathBuf]) -> Result<Keyring, String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for k in keys {
            h.update(std::fs::read(k).map_err(|e| format!("cannot read {}: {e}", k.display()))?);
        }
        let digest = format!("{:x}", h.finalize());
        let home = dir.join(&digest[..16]);
        if home.join("pubring.kbx").exists() || home.join("pubring.gpg").exists() {
            return Ok(Keyring { home });
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join(format!(".tmp-{}-{}", &digest[..16], std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700));
        }
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&tmp)
            .args(["--batch", "--no-tty", "--quiet", "--import"])
            .args(keys)
            .output()
            .map_err(|e| format!("cannot run gpg (install gnupg): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "gpg could not import source.verify.openpgp_keys: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // A keyring made by an earlier, interrupted run is replaced.
        let _ = std::fs::remove_dir_all(&home);
        std::fs::rename(&tmp, &home).map_err(|e| format!("{}: {e}", home.display()))?;
        Ok(Keyring { home })
    }

    /// Verify an armored detached signature over `payload`; the signer, or why not.
    pub fn verify(&self, sig: &str, payload: &[u8]) -> Result<String, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
        let sig_path = dir.path().join("signature.asc");
        let data_path = dir.path().join("payload");
        std::fs::write(&sig_path, sig).map_err(|e| format!("cannot write {}: {e}", sig_path.display()))?;
        std::fs::write(&data_path, payload).map_err(|e| format!("cannot write {}: {e}", data_path.display()))?;
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--no-tty", "--status-fd", "1", "--verify"])
            .arg(&sig_path)
            .arg(&data_path)
            .output()
            .map_err(|e| format!("cannot run gpg (install gnupg): {e}"))?;
        judge_status(&String::from_utf8_lossy(&out.stdout))
    }
}

/// gpg's verdict from its `[GNUPG:]` status lines (doc/DETAILS of GnuPG).
pub fn judge_status(status: &str) -> Result<String, String> {
    let mut lines = status.lines().filter_map(|l| l.strip_prefix("[GNUPG:] "));
    let all: Vec<&str> = lines.by_ref().collect();
    let find = |tag: &str| all.iter().find_map(|l| l.strip_prefix(tag).map(|r| r.trim().to_string()));
    let who = |rest: &str| rest.split_once(' ').map(|(_, uid)| uid.to_string()).unwrap_or_else(|| rest.to_string());
    if let Some(r) = find("GOODSIG ") {
        return Ok(who(&r));
    }
    if let Some(r) = find("EXPKEYSIG ") {
        return Err(format!("it is signed by an expired key ({}); renew the key, or sign with a current one", who(&r)));
    }
    if let Some(r) = find("REVKEYSIG ") {
        return Err(format!("it is signed by a revoked key ({}); sign with a key that is not revoked", who(&r)));
    }
    if let Some(r) = find("EXPSIG ") {
        return Err(format!("the signature by {} has expired", who(&r)));
    }
    if let Some(r) = find("BADSIG ") {
        return Err(format!("bad signature from {}: the signed content was changed", who(&r)));
    }
    if let Some(r) = find("ERRSIG ") {
        let keyid = r.split(' ').next().unwrap_or("?");
        if find("NO_PUBKEY ").is_some() || r.ends_with(" 9") {
            return Err(format!("it is signed by key {keyid}, which is not in source.verify.openpgp_keys"));
        }
        return Err(format!("gpg could not check the signature by key {keyid}"));
    }
    Err("gpg found no valid signature".into())
}

#[cfg(test)]
mod tests {
    use super::judge_status;

    #[test]
    fn gpg_status_verdicts() {
        assert_eq!(judge_status("[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 1234ABCD Ops <ops@example.invalid>\n[GNUPG:] TRUST_UNDEFINED 0 pgp\n"), Ok("Ops <ops@example.invalid>".into()));
        assert!(judge_status("[GNUPG:] EXPKEYSIG 1234ABCD Ops\n").unwrap_err().contains("expired key"));
        assert!(judge_status("[GNUPG:] REVKEYSIG 1234ABCD Ops\n").unwrap_err().contains("revoked key"));
        assert!(judge_status("[GNUPG:] BADSIG 1234ABCD Ops\n").unwrap_err().contains("bad signature"));
        assert!(judge_status("[GNUPG:] ERRSIG 1234ABCD 1 10 00 1700000000 9 -\n[GNUPG:] NO_PUBKEY 1234ABCD\n")
            .unwrap_err()
            .contains("not in source.verify.openpgp_keys"));
        assert!(judge_status("").is_err());
    }
}

#[cfg(test)]
mod split_tests {
    use super::split_signed;

    #[test]
    fn the_signature_is_the_last_armored_block_at_a_line_start_found_in_bytes() {
        let sig = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";
        let mut raw = b"object 0123\ntype commit\ntag v1\n\nmessage \xff\xfe not UTF-8 \xe2\x82\n".to_vec();
        let payload_len = raw.len();
        raw.extend_from_slice(sig.as_bytes());
        let (payload, found) = split_signed(&raw).unwrap_or_default();
        assert_eq!(payload.len(), payload_len);
        assert_eq!(found, sig.as_bytes());
        // A marker inside a line is not a signature; one quoted at a line start earlier in
        // the message is superseded by the real (last) one.
        let quoted =
            format!("tag v1\n\nsee -----BEGIN PGP SIGNATURE----- here\n-----BEGIN PGP SIGNATURE-----\nquoted\n{sig}");
        let (p, f) = split_signed(quoted.as_bytes()).unwrap_or_default();
        assert_eq!(f, sig.as_bytes());
        assert!(p.ends_with(b"quoted\n"));
        assert!(split_signed(b"tag v1\n\nunsigned \xff\n").is_none());
        assert!(split_signed(b"").is_none());
    }
}
