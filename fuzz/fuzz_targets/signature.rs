//! Signature extraction from annotated tags (`verify::split_signed`, byte-wise as git's
//! `parse_signed_buffer`) and from commits (libgit2's `extract_signature`), through
//! `verify_tag` and `verify_commit` with an empty trust (so no process is spawned): any
//! bytes — invalid UTF-8 before the signature, markers mid-line, truncated armor — are an
//! answer, never a panic, and the split always cuts at a line start that begins a block.
//! The body is `driftless_agent::fuzzing::signature`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::signature(data);
});
