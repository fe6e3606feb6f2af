//! Bytes → desired-state documents → validation, with and without an environment overlay.
//! The input is split at NUL bytes into up to three files (the second named compose.yaml).
//! The body is `desired_state_schema::fuzzing::desired_state`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = desired_state_schema::fuzzing::desired_state(data);
});
