//! known_hosts text (plain and hashed entries, markers, patterns) checked against a host key.
//! The body is `driftless_agent::fuzzing::known_hosts`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::known_hosts(data);
});
