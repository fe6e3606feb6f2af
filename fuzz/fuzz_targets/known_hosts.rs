//! known_hosts text (plain and hashed entries, markers, patterns) checked against a host key.
#![no_main]
use driftless_agent::source::known_hosts::{check, host_entry_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let key = [0u8, 0, 0, 11, b's', b's', b'h', b'-', b'e', b'd', b'2', b'5', b'5', b'1', b'9', 1, 2, 3];
    let _ = check(&text, &host_entry_name("git.example.com", None), &key);
    let _ = check(&text, &host_entry_name("127.0.0.1", Some(2222)), &key);
});
