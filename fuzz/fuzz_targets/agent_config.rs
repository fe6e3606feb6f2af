//! The agent config: text → validated config (every key, durations, URLs, selectors).
#![no_main]
use driftless_agent::config::LoadedConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = LoadedConfig::from_text(std::path::Path::new("/etc/driftless/agent.yaml"), &text);
});
