//! `secrets.identities` files: age identity files and OpenSSH private keys.
//! The body is `driftless_agent::fuzzing::age_identity`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = driftless_agent::fuzzing::age_identity(data);
});
