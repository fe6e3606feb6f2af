//! OpenPGP for end-to-end tests: a throw-away GnuPG home and keys, and a work tree that signs
//! commits and tags with them (gpg.format=openpgp).

use std::path::Path;

use super::git::{git, Upstream};

/// A throw-away GnuPG home with keys made by Debian's gpg (never the user's keyring).
pub struct Gpg {
    pub home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        Gpg { home }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("gpg runs (apt-get install gnupg)");
        assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Make a signing key for `uid`; its fingerprint.
    pub fn key(&self, uid: &str, faked_time: Option<&str>, expire: &str) -> String {
        let mut args = Vec::new();
        if let Some(t) = faked_time {
            args.extend(["--faked-system-time", t]);
        }
        args.extend(["--quick-gen-key", uid, "ed25519", "sign", expire]);
        self.run(&args);
        let listing = self.run(&["--with-colons", "--list-keys", uid]);
        listing.lines().find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_string())).unwrap()
    }

    /// The armored public key of `fpr`, written to `path`.
    pub fn export(&self, fpr: &str, path: &Path) {
        std::fs::write(path, self.run(&["--armor", "--export", fpr])).unwrap();
    }

    /// Configure `up`'s work tree to sign with `fpr` (via a gpg wrapper with this home, and an
    /// optional faked time).
    pub fn sign_with(&self, up: &Upstream, fpr: &str, faked_time: Option<&str>) {
        let wrapper = self.home.path().join("gpg-wrapper");
        let faked = faked_time.map(|t| format!("--faked-system-time {t} ")).unwrap_or_default();
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec gpg --homedir {} --batch --pinentry-mode loopback --passphrase '' {faked}\"$@\"\n",
                self.home.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        git(&up.work, &["config", "gpg.format", "openpgp"]);
        git(&up.work, &["config", "gpg.program", wrapper.to_str().unwrap()]);
        git(&up.work, &["config", "user.signingkey", fpr]);
    }
}
