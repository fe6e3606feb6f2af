//! A compose file (and the `.env` beside it, after the first NUL byte) → driftless/v1
//! documents, with and without a profile; and the same file with an override (what follows
//! a second NUL byte, as `compose.override.yaml`) merged into it by compose's rules.
#![no_main]
use desired_state_schema::compose::{convert, convert_files, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let file = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let dotenv = parts.next().map(|d| String::from_utf8_lossy(d).into_owned());
    let over = parts.next().map(|o| String::from_utf8_lossy(o).into_owned());
    let _ = convert("compose.yaml", &file, dotenv.as_deref(), &[]);
    let _ = convert("compose.yaml", &file, dotenv.as_deref(), &["debug".to_string()]);
    if let Some(over) = over {
        let ctx = Context { profiles: &[], root: "", root_name: Some("fuzz"), home: None, ..Default::default() };
        let files = [("compose.yaml", file.as_ref()), ("compose.override.yaml", over.as_str())];
        let _ = convert_files(&files, dotenv.as_deref(), &ctx);
    }
});
