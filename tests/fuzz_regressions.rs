//! Every input that fuzzing found to crash or hang a parser (fuzz/regressions/<target>/)
//! is replayed here through the very function its fuzz target calls
//! (`desired_state_schema::fuzzing`, `driftless_agent::fuzzing`), on every test run: the
//! replay tests what the fuzzer ran, not a copy of it.

use std::path::Path;

mod common;

/// A fuzz target's body.
type Body = fn(&[u8]);

/// Every fuzz target, by name, and its body.
const TARGETS: &[(&str, Body)] = &[
    ("desired_state", |d| {
        let _ = desired_state_schema::fuzzing::desired_state(d);
    }),
    ("compose", |d| {
        let _ = desired_state_schema::fuzzing::compose(d);
    }),
    ("agent_config", driftless_agent::fuzzing::agent_config),
    ("semver_range", driftless_agent::fuzzing::semver_range),
    ("known_hosts", driftless_agent::fuzzing::known_hosts),
    ("webhook_signature", driftless_agent::fuzzing::webhook_signature),
    ("control_wire", driftless_agent::fuzzing::control_wire),
    ("age_file", driftless_agent::fuzzing::age_file),
    ("age_identity", |d| {
        let _ = driftless_agent::fuzzing::age_identity(d);
    }),
    ("signature", driftless_agent::fuzzing::signature),
    ("sshsig", driftless_agent::fuzzing::sshsig),
];

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = common::root().join("fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

/// Every regression of every target, through the target's own body.
#[test]
fn every_regression_replays_through_its_targets_body() {
    let dirs: Vec<String> = std::fs::read_dir(common::root().join("fuzz/regressions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for d in &dirs {
        assert!(TARGETS.iter().any(|(t, _)| t == d), "fuzz/regressions/{d} names no fuzz target");
    }
    let mut replayed = 0;
    for (target, body) in TARGETS {
        for (name, data) in inputs(target) {
            body(&data);
            eprintln!("{target}/{name}: replayed");
            replayed += 1;
        }
    }
    assert!(replayed > 0);
}

/// What a regression of a kind once got wrong, asserted beyond "no crash": a malformed key
/// is refused, naming the file.
#[test]
fn a_malformed_identity_is_refused_naming_its_file() {
    let found = inputs("age_identity");
    assert!(!found.is_empty());
    for (name, data) in found {
        let err = driftless_agent::fuzzing::age_identity(&data).expect_err("a malformed key is refused");
        eprintln!("{name}: {err}");
        assert!(err.contains("/etc/ssh/ssh_host_ed25519_key"), "{err}");
    }
}

/// Every target has hand-named seeds in Git (its accumulated corpus is packed in
/// fuzz/cache/<target>.tar.xz, and the working corpus, fuzz/corpus/, is not tracked), and
/// every target file is listed here.
#[test]
fn every_target_has_seeds() {
    let files = std::fs::read_dir(common::root().join("fuzz/fuzz_targets")).unwrap().count();
    assert_eq!(files, TARGETS.len(), "a fuzz target is missing from TARGETS");
    for (t, _) in TARGETS {
        let dir = common::root().join("fuzz/seeds").join(t);
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(n > 0, "{} is empty", dir.display());
        assert!(Path::new(&common::root().join(format!("fuzz/fuzz_targets/{t}.rs"))).exists());
    }
}
