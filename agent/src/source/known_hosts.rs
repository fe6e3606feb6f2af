//! SSH host-key checking against OpenSSH `known_hosts` files. libgit2 hands us the server's
//! raw host key and leaves the decision to us; this module makes it, as OpenSSH would:
//! plain and hashed (`|1|salt|hash`) host patterns, `[host]:port`, `*`/`?` wildcards, `!`
//! negation and `@revoked`. (`@cert-authority` lines are not supported and are skipped.)
//! Pure: the caller reads the files.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// What the known_hosts files say about a host's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A line lists this host with this key.
    Known,
    /// Lines list this host, but with other keys: the key changed (or someone is in between).
    Changed,
    /// The key is marked `@revoked`.
    Revoked,
    /// No line names this host.
    Unknown,
}

/// The name a host has in known_hosts: `host`, or `[host]:port` off port 22.
pub fn host_entry_name(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) if p != 22 => format!("[{host}]:{p}"),
        _ => host.to_string(),
    }
}

/// OpenSSH's fingerprint of a raw public key blob: `SHA256:<base64, no padding>`.
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest))
}

/// Check `key` (the raw blob) for `name` (from `host_entry_name`) against one file's text.
pub fn check(text: &str, name: &str, key: &[u8]) -> Verdict {
    let mut host_listed = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else { continue };
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                _ => continue, // @cert-authority: not supported
            }
            let Some(f) = fields.next() else { continue };
            first = f;
        }
        let (Some(_keytype), Some(b64)) = (fields.next(), fields.next()) else { continue };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(b64) else { continue };
        if revoked {
            if blob == key {
                return Verdict::Revoked;
            }
            continue;
        }
        if !hosts_match(first, name) {
            continue;
        }
        if blob == key {
            return Verdict::Known;
        }
        host_listed = true;
    }
    if host_listed {
        Verdict::Changed
    } else {
        Verdict::Unknown
    }
}

/// Whether a known_hosts host field (comma-separated patterns, or one hashed entry) names `name`.
fn hosts_match(field: &str, name: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut matched = false;
    for pat in field.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if glob(neg, name) {
                return false;
            }
        } else if glob(pat, name) {
            matched = true;
        }
    }
    matched
}

fn hashed_match(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else { return false };
    let engine = base64::engine::general_purpose::STANDARD;
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else { return false };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else { return false };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH pattern match: `*` any run, `?` one character; host names compare case-blind.
fn glob(pat: &str, name: &str) -> bool {
    // One saved position for the last `*` (the classic wildcard match): O(len(p) · len(n))
    // at worst. The recursive form it replaces was exponential in the number of `*` — a
    // known_hosts line with a few dozen of them hung the fetch (found by fuzzing).
    let (p, n) = (pat.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some(b'*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(b'?') => {
                i += 1;
                j += 1;
            }
            Some(a) if a.eq_ignore_ascii_case(&n[j]) => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBP0jwyRXmn3XLVt0Mr9oS27HuUChuWJKv4jaMTgAmGa";

    fn blob(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn glob_matches_like_openssh_and_in_linear_time() {
        for (p, n, want) in [
            ("*.example.com", "git.example.com", true),
            ("*.example.com", "example.com", false),
            ("git?.example.com", "git1.example.com", true),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("*X*", "abc", false),
            ("GIT.example.COM", "git.example.com", true),
        ] {
            assert_eq!(glob(p, n), want, "{p} ~ {n}");
        }
        // Found by fuzzing (fuzz/regressions/known_hosts): exponential before.
        let pat = format!("{}x", "*".repeat(200));
        assert!(!glob(&pat, &"e".repeat(4000)));
    }

    #[test]
    fn verdicts() {
        let file = format!(
            "# comment\ngit.example.com,10.0.0.1 ssh-ed25519 {KEY_A}\n[127.0.0.1]:2222 ssh-ed25519 {KEY_B}\n*.corp.example,!bad.corp.example ssh-ed25519 {KEY_A}\n"
        );
        let a = blob(KEY_A);
        let b = blob(KEY_B);
        assert_eq!(check(&file, "git.example.com", &a), Verdict::Known);
        assert_eq!(check(&file, "GIT.example.com", &a), Verdict::Known);
        assert_eq!(check(&file, "git.example.com", &b), Verdict::Changed);
        assert_eq!(check(&file, &host_entry_name("127.0.0.1", Some(2222)), &b), Verdict::Known);
        assert_eq!(check(&file, &host_entry_name("127.0.0.1", Some(22)), &b), Verdict::Unknown);
        assert_eq!(check(&file, "x.corp.example", &a), Verdict::Known);
        assert_eq!(check(&file, "bad.corp.example", &a), Verdict::Unknown);
        assert_eq!(check(&file, "other.example", &a), Verdict::Unknown);
        let revoked = format!("@revoked * ssh-ed25519 {KEY_B}\n{file}");
        assert_eq!(check(&revoked, "[127.0.0.1]:2222", &b), Verdict::Revoked);
    }

    #[test]
    fn hashed_hosts() {
        // Made with: ssh-keygen -H on a file listing git.example.com.
        let salt = base64::engine::general_purpose::STANDARD.encode(b"0123456789abcdef0123");
        let mut mac = Hmac::<Sha1>::new_from_slice(b"0123456789abcdef0123").unwrap();
        mac.update(b"git.example.com");
        let hash = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let file = format!("|1|{salt}|{hash} ssh-ed25519 {KEY_A}\n");
        assert_eq!(check(&file, "git.example.com", &blob(KEY_A)), Verdict::Known);
        assert_eq!(check(&file, "git.example.org", &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn fingerprints_like_openssh() {
        assert!(fingerprint(&blob(KEY_A)).starts_with("SHA256:"));
        assert_eq!(fingerprint(&blob(KEY_A)).len(), "SHA256:".len() + 43);
    }
}
