//! A compose file (and the `.env` beside it, after the first NUL byte) → driftless/v1
//! documents, with and without a profile.
#![no_main]
use desired_state_schema::compose::convert;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (file, dotenv) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(String::from_utf8_lossy(&data[i + 1..]).into_owned())),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(file);
    let _ = convert("compose.yaml", &text, dotenv.as_deref(), &[]);
    let _ = convert("compose.yaml", &text, dotenv.as_deref(), &["debug".to_string()]);
});
