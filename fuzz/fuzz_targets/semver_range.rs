//! `source.ref.semver` ranges and tag names: parse, then pick among a few tags.
#![no_main]
use driftless_agent::semver_range::{pick, tag_version, Range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (range, tag) = text.split_once('\n').unwrap_or((&text, "v1.2.3"));
    let _ = tag_version(tag);
    if let Ok(r) = Range::parse(range) {
        let tags = ["v1.0.0", "1.2.3-rc.1", "v2.0.0", tag, "release-1.0", "0.0.1"];
        let _ = pick(&r, tags.iter().copied());
    }
});
