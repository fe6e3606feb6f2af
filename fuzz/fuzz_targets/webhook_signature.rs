//! Webhook signature headers (GitHub, Gitea/Forgejo, GitLab, generic) over a body: the
//! input is `header-name\nheader-value\nbody`.
//! The body is `driftless_agent::fuzzing::webhook_signature`, which tests/fuzz_regressions.rs replays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driftless_agent::fuzzing::webhook_signature(data);
});
