//! The control socket's wire format: a request line as the agent reads it, an answer line
//! as agentctl reads it.
//! The body is `driftless_agent::fuzzing::control_wire`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::control_wire(data);
});
