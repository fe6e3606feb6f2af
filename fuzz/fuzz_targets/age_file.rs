//! An `.age` file of the repository (binary or armored) decrypted with the host's identity.
#![no_main]
use driftless_agent::secrets::{recipients, Secrets};
use libfuzzer_sys::fuzz_target;

/// A fixed X25519 identity (generated for the fuzz corpus; not a secret of anything).
const IDENTITY: &str = "AGE-SECRET-KEY-1FFEEPW0UDAMJASKV5V8KSYFQRD48DQNETKW7VJ2H0Q9KXHP6X0NQS4W5RC\n";

fuzz_target!(|data: &[u8]| {
    let mut s = Secrets::default();
    if s.add(std::path::Path::new("identity.txt"), IDENTITY).is_err() {
        return;
    }
    let _ = s.decrypt("secrets/app.env.age", data);
    let _ = recipients(data);
});
