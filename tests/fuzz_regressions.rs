//! Every input that fuzzing found to crash or hang a parser (fuzz/regressions/<target>/)
//! is replayed here, through the same entry point as its fuzz target, on every test run.

use std::path::Path;

mod common;

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

#[test]
fn compose_regressions() {
    let found = inputs("compose");
    assert!(!found.is_empty());
    for (name, data) in found {
        let (file, dotenv) = match data.iter().position(|b| *b == 0) {
            Some(i) => (&data[..i], Some(String::from_utf8_lossy(&data[i + 1..]).into_owned())),
            None => (&data[..], None),
        };
        let text = String::from_utf8_lossy(file);
        let c = desired_state_schema::compose::convert("compose.yaml", &text, dotenv.as_deref(), &[]);
        eprintln!("{name}: {} document(s), {} error(s)", c.docs.len(), c.errors.len());
    }
}

#[test]
fn known_hosts_regressions() {
    use driftless_agent::source::known_hosts::{check, host_entry_name};
    let found = inputs("known_hosts");
    assert!(!found.is_empty());
    for (name, data) in found {
        let text = String::from_utf8_lossy(&data);
        let _ = check(&text, &host_entry_name("git.example.com", None), b"key");
        eprintln!("{name}: checked");
    }
}

/// Every target has hand-named seeds in Git (its accumulated corpus is packed in
/// fuzz/cache/<target>.tar.xz, and the working corpus, fuzz/corpus/, is not tracked).
#[test]
fn every_target_has_seeds() {
    for t in [
        "desired_state",
        "compose",
        "agent_config",
        "semver_range",
        "known_hosts",
        "webhook_signature",
        "control_wire",
        "age_file",
        "age_identity",
        "signature",
    ] {
        let dir = common::root().join("fuzz/seeds").join(t);
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(n > 0, "{} is empty", dir.display());
        assert!(Path::new(&common::root().join(format!("fuzz/fuzz_targets/{t}.rs"))).exists());
    }
}

#[test]
fn desired_state_regressions() {
    use desired_state_schema::{parse, SourceFile};
    let found = inputs("desired_state");
    assert!(!found.is_empty());
    for (name, data) in found {
        let names = ["hosts/web/app.yaml", "hosts/web/compose.yaml", "hosts/web/more.yml"];
        let files: Vec<SourceFile> = data
            .split(|b| *b == 0)
            .take(3)
            .zip(names)
            .map(|(part, path)| SourceFile { path: path.into(), text: String::from_utf8_lossy(part).into_owned() })
            .collect();
        let loaded = parse(&files);
        let r = loaded.build(None);
        eprintln!("{name}: {}", if r.is_ok() { "valid" } else { "invalid" });
    }
}

#[test]
fn age_identity_regressions() {
    use driftless_agent::secrets::Secrets;
    let found = inputs("age_identity");
    assert!(!found.is_empty());
    for (name, data) in found {
        let text = String::from_utf8_lossy(&data);
        let r = Secrets::default().add(Path::new("/etc/ssh/ssh_host_ed25519_key"), &text);
        let err = r.expect_err("a malformed key is refused");
        eprintln!("{name}: {err}");
        assert!(err.to_string().contains("/etc/ssh/ssh_host_ed25519_key"), "{err}");
    }
}
