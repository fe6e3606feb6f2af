//! Webhook signature headers (GitHub, Gitea/Forgejo, GitLab, generic) over a body: the
//! input is `header-name\nheader-value\nbody`.
#![no_main]
use driftless_agent::webhook::verify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(name), Some(value)) = (parts.next(), parts.next()) else { return };
    let body = parts.next().unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value)) {
        headers.insert(n, v);
    }
    let _ = verify(&headers, body, b"a webhook secret");
});
