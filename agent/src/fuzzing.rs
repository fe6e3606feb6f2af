//! The bodies of the agent's fuzz targets (`fuzz/fuzz_targets/`), one public function each:
//! the target calls it, and so does the replay of the inputs fuzzing found
//! (`tests/fuzz_regressions.rs`), so the replay tests exactly what the fuzzer ran. A body
//! asserts what must hold whatever the input (a forged signature is never accepted, a wire
//! request survives a round trip); anything else it may only refuse.

use base64::Engine;

use crate::config::LoadedConfig;
use crate::secrets::{recipients, Secrets};
use crate::semver_range::{pick, tag_version, Range};
use crate::source::known_hosts::{check, host_entry_name};
use crate::source::report::{key_id, Signers};
use crate::source::verify::{split_signed, verify_commit, verify_tag, Trust};
use crate::wire::{Line, Request};

/// A fixed X25519 identity (generated for the fuzz corpus; not a secret of anything).
const IDENTITY: &str = "AGE-SECRET-KEY-1FFEEPW0UDAMJASKV5V8KSYFQRD48DQNETKW7VJ2H0Q9KXHP6X0NQS4W5RC\n";

/// A real Ed25519 key (public half only; the seeds hold its signature of another payload),
/// listed for web-1 as an allowed_signers file lists it.
const SIGNERS: &str = "web-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILWgLcbKnOb0755OD6vKa24h5uslBOGiY/8hx/xavcuK\n";

/// The age crate's panics are contained by `Secrets` (catch_unwind); libFuzzer's hook would
/// abort before that. Panics anywhere else still end in libfuzzer-sys's own catch_unwind,
/// which aborts: they are still found.
fn quiet_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// An `.age` file, decrypted with a fixed identity, and its recipients listed.
pub fn age_file(data: &[u8]) {
    quiet_panics();
    let mut s = Secrets::default();
    if s.add(std::path::Path::new("identity.txt"), IDENTITY).is_err() {
        return;
    }
    let _ = s.decrypt("secrets/app.env.age", data);
    let _ = recipients(data);
}

/// An identity file (age or an SSH private key): what `add` says of it.
pub fn age_identity(data: &[u8]) -> Result<(), String> {
    quiet_panics();
    let text = String::from_utf8_lossy(data);
    Secrets::default().add(std::path::Path::new("/etc/ssh/ssh_host_ed25519_key"), &text).map_err(|e| e.to_string())
}

/// The agent config.
pub fn agent_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = LoadedConfig::from_text(std::path::Path::new("/etc/driftless/agent.yaml"), &text);
}

/// A line of the control socket's wire format: a request that parses survives a round trip.
pub fn control_wire(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = serde_json::from_str::<Request>(text.trim()) {
        let back = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Request>(&back).ok(), Some(r), "a request survives a round trip");
    }
    let _ = serde_json::from_str::<Line>(&text);
}

/// A known_hosts file, asked for two hosts.
pub fn known_hosts(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let key = [0u8, 0, 0, 11, b's', b's', b'h', b'-', b'e', b'd', b'2', b'5', b'5', b'1', b'9', 1, 2, 3];
    let _ = check(&text, &host_entry_name("git.example.com", None), &key);
    let _ = check(&text, &host_entry_name("127.0.0.1", Some(2222)), &key);
}

/// A semver range, then (after a newline) a tag: parsed, and a pick among tags made.
pub fn semver_range(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (range, tag) = text.split_once('\n').unwrap_or((&text, "v1.2.3"));
    let _ = tag_version(tag);
    if let Ok(r) = Range::parse(range) {
        let tags = ["v1.0.0", "1.2.3-rc.1", "v2.0.0", tag, "release-1.0", "0.0.1"];
        let _ = pick(&r, tags.iter().copied());
    }
}

/// The same bytes as a signed Git object: split, and verified as a tag and as a commit in a
/// repository in memory.
pub fn signature(data: &[u8]) {
    if let Some((payload, sig)) = split_signed(data) {
        assert_eq!(payload.len() + sig.len(), data.len());
        assert!(sig.starts_with(b"-----BEGIN SSH SIGNATURE-----") || sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        assert!(payload.is_empty() || payload.ends_with(b"\n"));
    }
    let Ok(odb) = git2::Odb::new() else { return };
    let Ok(_pack) = odb.add_new_mempack_backend(1) else { return };
    let (Ok(tag), Ok(commit)) = (odb.write(git2::ObjectType::Tag, data), odb.write(git2::ObjectType::Commit, data))
    else {
        return;
    };
    let Ok(repo) = git2::Repository::from_odb(odb) else { return };
    let trust = Trust::default();
    let _ = verify_tag(&repo, tag, &trust);
    let _ = verify_commit(&repo, commit, &trust);
}

/// An SSH signature of a report (the first byte picks: as text, or the raw blob armored, so
/// the fuzzer reaches the wire parsing without learning base64): never accepted.
pub fn sshsig(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let sig = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut raw = b"SSHSIG\0\0\0\x01".to_vec();
        raw.extend_from_slice(rest);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let mut text = String::from("-----BEGIN SSH SIGNATURE-----\n");
        for chunk in b64.as_bytes().chunks(70) {
            text.push_str(&String::from_utf8_lossy(chunk));
            text.push('\n');
        }
        text.push_str("-----END SSH SIGNATURE-----\n");
        text
    };
    let signers = Signers::parse(std::path::Path::new("/nonexistent/signers"), SIGNERS);
    assert!(!signers.fast_verify(&sig, b"the report commit", "web-1"), "accepted a forged signature");
    assert!(!signers.fast_verify(&sig, b"the report commit", "web-2"));
    if let Some(id) = key_id(&sig) {
        assert_eq!(id.len(), 64);
    }
    // The signers file itself is input too.
    let _ = Signers::parse(std::path::Path::new("/nonexistent/signers"), &String::from_utf8_lossy(rest));
}

/// A webhook request: a header name, its value and the body, each after a newline.
pub fn webhook_signature(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(name), Some(value)) = (parts.next(), parts.next()) else { return };
    let body = parts.next().unwrap_or_default();
    let mut headers = hyper::HeaderMap::new();
    if let (Ok(n), Ok(v)) = (hyper::header::HeaderName::from_bytes(name), hyper::header::HeaderValue::from_bytes(value))
    {
        headers.insert(n, v);
    }
    let _ = crate::webhook::verify(&headers, body, b"a webhook secret");
}
