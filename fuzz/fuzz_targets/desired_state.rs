//! Bytes → desired-state documents → validation, with and without an environment overlay.
//! The input is split at NUL bytes into up to three files (the second named compose.yaml).
#![no_main]
use desired_state_schema::{parse, SourceFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let names = ["hosts/web/app.yaml", "hosts/web/compose.yaml", "hosts/web/more.yml"];
    let files: Vec<SourceFile> = data
        .split(|b| *b == 0)
        .take(3)
        .zip(names)
        .map(|(part, path)| SourceFile { path: path.into(), text: String::from_utf8_lossy(part).into_owned() })
        .collect();
    let loaded = parse(&files);
    let _ = loaded.build(None);
    for env in loaded.environments() {
        let _ = loaded.build(Some(&env));
    }
});
