//! `source.ref.semver` ranges and tag names: parse, then pick among a few tags.
//! The body is `driftless_agent::fuzzing::semver_range`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::semver_range(data);
});
