//! `secrets.identities` files: age identity files and OpenSSH private keys.
#![no_main]
use driftless_agent::secrets::Secrets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The agent contains the age crate's panics (`Secrets` wraps its parsers in
    // catch_unwind); libFuzzer's hook would abort before that. Panics anywhere else still
    // end in libfuzzer-sys's own catch_unwind, which aborts: they are still found.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let text = String::from_utf8_lossy(data);
    let _ = Secrets::default().add(std::path::Path::new("/etc/ssh/ssh_host_ed25519_key"), &text);
});
