//! An `.age` file of the repository (binary or armored) decrypted with the host's identity.
#![no_main]
use driftless_agent::secrets::{recipients, Secrets};
use libfuzzer_sys::fuzz_target;

/// A fixed X25519 identity (generated for the fuzz corpus; not a secret of anything).
const IDENTITY: &str = "AGE-SECRET-KEY-1FFEEPW0UDAMJASKV5V8KSYFQRD48DQNETKW7VJ2H0Q9KXHP6X0NQS4W5RC\n";

fuzz_target!(|data: &[u8]| {
    // The agent contains the age crate's panics (`Secrets` wraps its parsers in
    // catch_unwind); libFuzzer's hook would abort before that. Panics anywhere else still
    // end in libfuzzer-sys's own catch_unwind, which aborts: they are still found.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let mut s = Secrets::default();
    if s.add(std::path::Path::new("identity.txt"), IDENTITY).is_err() {
        return;
    }
    let _ = s.decrypt("secrets/app.env.age", data);
    let _ = recipients(data);
});
