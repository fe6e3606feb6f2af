//! An `.age` file of the repository (binary or armored) decrypted with the host's identity.
//! The body is `driftless_agent::fuzzing::age_file`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::age_file(data);
});
