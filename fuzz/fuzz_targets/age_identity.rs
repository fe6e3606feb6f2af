//! `secrets.identities` files: age identity files and OpenSSH private keys.
#![no_main]
use driftless_agent::secrets::Secrets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Secrets::default().add(std::path::Path::new("/etc/ssh/ssh_host_ed25519_key"), &text);
});
