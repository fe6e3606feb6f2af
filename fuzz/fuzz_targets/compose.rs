//! A compose file (and the `.env` beside it, after the first NUL byte) → driftless/v1
//! documents, with and without a profile; and the same file with an override (what follows
//! a second NUL byte, as `compose.override.yaml`) merged into it by compose's rules.
//! The body is `desired_state_schema::fuzzing::compose`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = desired_state_schema::fuzzing::compose(data);
});
