//! The control socket's wire format: a request line as the agent reads it, an answer line
//! as agentctl reads it.
#![no_main]
use driftless_agent::wire::{Line, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = serde_json::from_str::<Request>(text.trim()) {
        let back = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Request>(&back).ok(), Some(r), "a request survives a round trip");
    }
    let _ = serde_json::from_str::<Line>(&text);
});
