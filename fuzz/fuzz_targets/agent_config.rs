//! The agent config: text → validated config (every key, durations, URLs, selectors).
//! The body is `driftless_agent::fuzzing::agent_config`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::agent_config(data);
});
