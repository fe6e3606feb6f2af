//! The bodies of the fuzz targets of this library (`fuzz/fuzz_targets/`), one public function
//! each: the target calls it, and so does the replay of the inputs fuzzing found
//! (`tests/fuzz_regressions.rs`), so the replay tests exactly what the fuzzer ran.

use crate::compose::{convert, convert_files, Context};
use crate::{parse, SourceFile};

/// Bytes → desired-state documents → validation, with and without each environment overlay
/// the documents name. The input is split at NUL bytes into up to three files (the second
/// named compose.yaml). Whether the result was valid.
pub fn desired_state(data: &[u8]) -> bool {
    let names = ["hosts/web/app.yaml", "hosts/web/compose.yaml", "hosts/web/more.yml"];
    let files: Vec<SourceFile> = data
        .split(|b| *b == 0)
        .take(3)
        .zip(names)
        .map(|(part, path)| SourceFile { path: path.into(), text: String::from_utf8_lossy(part).into_owned() })
        .collect();
    let loaded = parse(&files);
    let valid = loaded.build(None).is_ok();
    for env in loaded.environments() {
        let _ = loaded.build(Some(&env));
    }
    valid
}

/// A compose file, then (after a NUL) its `.env`, then (after another) an override file:
/// converted without and with a profile, and merged with the override. The number of
/// documents of the plain conversion.
pub fn compose(data: &[u8]) -> usize {
    let mut parts = data.splitn(3, |b| *b == 0);
    let file = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let dotenv = parts.next().map(|d| String::from_utf8_lossy(d).into_owned());
    let over = parts.next().map(|o| String::from_utf8_lossy(o).into_owned());
    let docs = convert("compose.yaml", &file, dotenv.as_deref(), &[]).docs.len();
    let _ = convert("compose.yaml", &file, dotenv.as_deref(), &["debug".to_string()]);
    if let Some(over) = over {
        let ctx = Context { profiles: &[], root: "", root_name: Some("fuzz"), home: None, ..Default::default() };
        let files = [("compose.yaml", file.as_ref()), ("compose.override.yaml", over.as_str())];
        let _ = convert_files(&files, dotenv.as_deref(), &ctx);
    }
    docs
}
