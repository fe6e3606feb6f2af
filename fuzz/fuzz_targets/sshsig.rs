//! The in-process SSHSIG check of fleet reports (`source::report`, `PROTOCOL.sshsig`): any
//! bytes, as armored text or as the raw blob inside the armor, are an answer — never a panic,
//! never an accepted signature that is not a valid Ed25519 signature by the listed key over
//! the payload (the payload is fixed and the key's secret is not in the corpus, so nothing
//! the fuzzer writes may verify), and `key_id` agrees with the parse.
#![no_main]
use base64::Engine;
use driftless_agent::source::report::{key_id, Signers};
use libfuzzer_sys::fuzz_target;

/// A real Ed25519 key (public half only; the seeds hold its signature of another payload),
/// listed for web-1 as an allowed_signers file lists it.
const SIGNERS: &str = "web-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILWgLcbKnOb0755OD6vKa24h5uslBOGiY/8hx/xavcuK\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let sig = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        // The raw blob, armored: the fuzzer reaches the wire parsing without learning base64.
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
});
