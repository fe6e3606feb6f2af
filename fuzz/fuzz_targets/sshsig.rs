//! The in-process SSHSIG check of fleet reports (`source::report`, `PROTOCOL.sshsig`): any
//! bytes, as armored text or as the raw blob inside the armor, are an answer — never a panic,
//! never an accepted signature that is not a valid Ed25519 signature by the listed key over
//! the payload (the payload is fixed and the key's secret is not in the corpus, so nothing
//! the fuzzer writes may verify), and `key_id` agrees with the parse.
//! The body is `driftless_agent::fuzzing::sshsig`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::sshsig(data);
});
