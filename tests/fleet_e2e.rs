//! Fleets through Git, end to end (PRODUCT.md "Fleets"): real `agentd`s push SSH-signed
//! reports to `refs/driftless/hosts/<host>` of a real repository, plain `git verify-commit`
//! accepts them, and `agentctl fleet` reads them all in one fetch — verified, stale, forged and
//! garbage reports each shown for what they are. The agents run `--dry-run` (no runtime):
//! what is tested here is the report, not the deploy.

mod common;
use common::agent::Agent;
use common::git::{keypair, Upstream};
use common::{agentctl, run};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn sh(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).current_dir(dir).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// An ed25519 key pair at `dir/name`; its public key line.
/// A dry-run agent `host` following `up`, reporting to `reports` signed with `sign`.
fn agent(up: &Upstream, host: &str, reports: &str, sign: &Path) -> Agent {
    let extra = format!("report: {{ url: \"{reports}\", sign: {}, interval: 1h }}\n", sign.display());
    let mut a = Agent::configure(&up.file_url(), "{ branch: main }", &extra);
    let text = std::fs::read_to_string(&a.config).unwrap().replacen("host: e2e\n", &format!("host: {host}\n"), 1);
    std::fs::write(&a.config, text).unwrap();
    a.args.push("--dry-run".into());
    a
}

fn wait_for(what: &str, ok: impl FnMut() -> bool) {
    common::wait_for(what, Duration::from_secs(30), ok, String::new);
}

fn fleet(reports: &str, signers: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let r = run(agentctl().args(["fleet", "--url", reports, "--json", "--signers"]).arg(signers).args(extra));
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
    (r.code, v)
}

#[test]
fn signed_reports_reach_git_verify_with_git_and_agentctl_fleet_tells_forged_and_garbage_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bare = d.join("fleet.git");
    assert!(sh(d, &["git", "init", "-q", "--bare", bare.to_str().unwrap()]).0);
    let reports = format!("file://{}", bare.display());
    let (k1, p1) = keypair(d, "web-1");
    // web-2 signs with an ECDSA key: checked by `ssh-keygen -Y verify`, the fallback beside
    // the in-process Ed25519 check (its forged use for web-3 below is refused by it too).
    let (k2, p2) = ecdsa_keypair(d, "web-2");
    let signers = d.join("fleet_signers");
    std::fs::write(&signers, format!("web-1 {p1}\nweb-2 {p2}\n")).unwrap();

    let up = Upstream::new();
    let doc = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec: { image: \"web:1\" }\n";
    let c1 = up.commit(&[("hosts/e2e/web.yaml", doc)], "v1");
    let mut a1 = agent(&up, "web-1", &reports, &k1);
    let mut a2 = agent(&up, "web-2", &reports, &k2);
    a1.start();
    a2.start();
    let has =
        |host: &str| sh(&bare, &["git", "rev-parse", "-q", "--verify", &format!("refs/driftless/hosts/{host}")]).0;
    wait_for("both reports pushed", || has("web-1") && has("web-2"));
    // The report of a Synced host, pushed after its outcome.
    wait_for("web-1's status says Synced", || {
        let (_, s) = sh(&bare, &["git", "show", "refs/driftless/hosts/web-1:status.json"]);
        s.contains("\"phase\": \"Synced\"")
    });
    // What was pushed is the shipped format: each file valid against its JSON Schema (by
    // Python's jsonschema, the reference validator), at report_format 1.
    for name in ["status", "outcomes"] {
        let (_, text) = sh(&bare, &["git", "show", &format!("refs/driftless/hosts/web-1:{name}.json")]);
        valid_against_schema(&text, &format!("dist/report/{name}.schema.json"));
    }
    let (_, s) = sh(&bare, &["git", "show", "refs/driftless/hosts/web-1:status.json"]);
    assert!(s.contains("\"report_format\": 1"), "{s}");

    // Plain git verifies a report with the signers file; the wrong principal does not pass.
    let signers_cfg = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    let (ok, out) = sh(&bare, &["git", "-c", &signers_cfg, "verify-commit", "refs/driftless/hosts/web-1"]);
    assert!(ok, "git verify-commit: {out}");
    assert!(out.contains("Good \"git\" signature for web-1"), "{out}");

    let (code, rows) = fleet(&reports, &signers, &[]);
    assert_eq!(code, 0, "{rows}");
    let rows = rows.as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["host"], "web-1");
    assert_eq!(rows[0]["verified"], true, "{rows:?}");
    assert_eq!(rows[0]["stale"], false);
    assert_eq!(rows[0]["phase"], "Synced");
    assert_eq!((&rows[1]["host"], &rows[1]["verified"]), (&"web-2".into(), &true.into()), "ECDSA: {rows:?}");
    for key in ["environment", "applied_revision", "last_good_revision", "healthy", "resources", "reported_at"] {
        assert!(rows[0].get(key).is_some(), "a row lacks {key}: {rows:?}");
    }
    // The agent's own status says the report went out.
    let s = a1.status();
    assert!(s["report"]["last_success"].is_string(), "{s}");
    assert!(s["report"]["error"].is_null(), "{s}");
    let (_, by_rev) = fleet(&reports, &signers, &["--revision", &c1[..12]]);
    assert!(by_rev[0]["revision"].is_string(), "{by_rev}");

    // A forged report: host web-3, signed with web-2's key (the signers file allows that key
    // for web-2 only). Not counted: unverified, and fleet exits 1.
    let mut forger = agent(&up, "web-3", &reports, &k2);
    forger.start();
    wait_for("the forged report pushed", || has("web-3"));
    let (code, rows) = fleet(&reports, &signers, &[]);
    assert_eq!(code, 1, "{rows}");
    let forged = rows.as_array().unwrap().iter().find(|r| r["host"] == "web-3").unwrap().clone();
    assert_eq!(forged["verified"], false);
    assert!(forged["problem"].as_str().unwrap().contains("web-3"), "{forged}");
    // Git alone would take it: the signature is good — web-2's. That the signer must be the
    // host the ref names is what fleet (and the rollout gates) add.
    let (ok, out) = sh(&bare, &["git", "-c", &signers_cfg, "verify-commit", "refs/driftless/hosts/web-3"]);
    assert!(ok && out.contains("for web-2"), "{out}");
    forger.kill9();
    assert!(sh(&bare, &["git", "update-ref", "-d", "refs/driftless/hosts/web-3"]).0);

    // Garbage: a ref at a blob, a commit without status.json.
    let (_, blob) = sh(&bare, &["sh", "-c", "echo junk | git hash-object -w --stdin"]);
    assert!(sh(&bare, &["git", "update-ref", "refs/driftless/hosts/junk", blob.trim()]).0);
    let (_, tree) = sh(&bare, &["sh", "-c", "git mktree </dev/null"]);
    let (_, commit) =
        sh(&bare, &["git", "-c", "user.name=x", "-c", "user.email=x@x", "commit-tree", tree.trim(), "-m", "empty"]);
    assert!(sh(&bare, &["git", "update-ref", "refs/driftless/hosts/empty", commit.trim()]).0);
    // A status.json that is not JSON, and one over 1 MiB (both signed by web-1's key, so
    // that only the content is wrong).
    let report_with = |host: &str, status: &[u8]| {
        let file = d.join(format!("{host}-status.json"));
        std::fs::write(&file, status).unwrap();
        let (_, blob) = sh(&bare, &["git", "hash-object", "-w", file.to_str().unwrap()]);
        let (_, outcomes) = sh(&bare, &["sh", "-c", "echo '[]' | git hash-object -w --stdin"]);
        let listing =
            format!("100644 blob {}\toutcomes.json\n100644 blob {}\tstatus.json\n", outcomes.trim(), blob.trim());
        std::fs::write(d.join("listing"), listing).unwrap();
        let (_, tree) = sh(&bare, &["sh", "-c", &format!("git mktree < {}", d.join("listing").display())]);
        let (ok, commit) = sh(
            &bare,
            &[
                "git",
                "-c",
                "user.name=x",
                "-c",
                "user.email=x@x",
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("user.signingkey={}", k1.display()),
                "commit-tree",
                "-S",
                tree.trim(),
                "-m",
                "report",
            ],
        );
        assert!(ok, "{commit}");
        assert!(sh(&bare, &["git", "update-ref", &format!("refs/driftless/hosts/{host}"), commit.trim()]).0);
    };
    report_with("notjson", b"{ this is not json");
    report_with("huge", format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20)).as_bytes());
    let (code, rows) = fleet(&reports, &signers, &[]);
    assert_eq!(code, 1);
    let find = |h: &str| rows.as_array().unwrap().iter().find(|r| r["host"] == h).unwrap().clone();
    assert!(find("junk")["problem"].as_str().unwrap().contains("not point at a commit"), "{rows}");
    assert!(find("notjson")["problem"].as_str().unwrap().contains("status.json is not JSON"), "{rows}");
    assert!(find("huge")["problem"].as_str().unwrap().contains("over the limit"), "{rows}");
    assert!(find("empty")["problem"].as_str().unwrap().contains("not signed"), "an unsigned report: {rows}");
    assert_eq!(find("empty")["verified"], false, "{rows}");
    assert_eq!(find("web-1")["verified"], true, "the good ones still count");

    // The table for people.
    let r = run(agentctl().args(["fleet", "--url", &reports, "--signers"]).arg(&signers));
    assert!(r.stdout.starts_with("HOST"), "{}", r.stdout);
    assert!(r.stdout.contains("unverified"), "{}", r.stdout);

    // A report repository that cannot be reached is a fault of the report only: the agent
    // carries on (Synced), and its status says why the report is not out.
    a2.kill9();
    let mut a4 = agent(&up, "web-4", &format!("file://{}/nowhere.git", d.display()), &k2);
    a4.start();
    wait_for("the failed push is in status", || a4.status()["report"]["error"].is_string());
    assert_eq!(a4.status()["phase"], "Synced");
    drop(a1);
}

/// Issue 36: the local copies of report refs stay small whatever the number of pushes and
/// reads — 1,000 signed pushes (a few days of one host at the default interval) and a read
/// after each hundred leave each local repository a few hundred files and well under 2 MiB,
/// and the reports still read and verify.
#[test]
fn a_thousand_pushes_leave_small_local_report_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bare = d.join("fleet.git");
    common::git::git(d, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    let (key, public) = common::git::keypair(d, "web-1");
    let signers = d.join("signers");
    std::fs::write(&signers, format!("web-1 {public}\n")).unwrap();
    let url = format!("file://{}", bare.display());
    let pusher = driftless_agent::source::GitSource::for_reports(&url, None, d.join("reports.git"));
    let reader = driftless_agent::source::GitSource::for_reports(&url, None, d.join("rollout.git"));
    let signers = driftless_agent::source::report::Signers::load(&signers);
    for i in 0..1000 {
        let status = format!("{{\"phase\": \"Synced\", \"message\": \"{i}\"}}");
        let files = vec![("status.json", status.into_bytes()), ("outcomes.json", b"[]".to_vec())];
        pusher.push_report("web-1", &files, &key, &format!("report {i}")).unwrap();
        if i % 100 == 99 {
            let reports = reader.read_reports(Some(&signers)).unwrap();
            assert_eq!(reports.len(), 1);
            assert!(reports[0].verified.is_ok(), "{:?}", reports[0].verified);
            let report = reports[0].content.as_ref().unwrap();
            assert_eq!(report.status.message, Some(i.to_string()));
        }
    }
    for local in ["reports.git", "rollout.git"] {
        let (files, bytes) = tree_size(&d.join(local));
        eprintln!("{local}: {files} files, {bytes} bytes after 1,000 pushes");
        assert!(files < 700 && bytes < 2 << 20, "{local}: {files} files, {bytes} bytes");
    }
}

/// An ECDSA key pair made by ssh-keygen: the private key's path and the public key line.
fn ecdsa_keypair(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let out =
        Command::new("ssh-keygen").args(["-q", "-t", "ecdsa", "-N", "", "-C", "", "-f"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

/// Check `json` against the schema file `schema` (relative to the repository) with Python's
/// `jsonschema` (Debian's python3-jsonschema), whichever draft the schema names.
fn valid_against_schema(json: &str, schema: &str) {
    let has = Command::new("python3").args(["-c", "import jsonschema"]).output().is_ok_and(|o| o.status.success());
    if !has && !common::missing("python3-jsonschema is missing", "run .ci/setup (it installs python3-jsonschema)") {
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(schema);
    let script = "import json, sys, jsonschema\nschema = json.load(open(sys.argv[1]))\ninstance = json.load(sys.stdin)\njsonschema.validators.validator_for(schema)(schema).validate(instance)\n";
    let mut child = Command::new("python3")
        .args(["-c", script, schema.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), json.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{} against {}: {}", json, schema.display(), String::from_utf8_lossy(&out.stderr));
}

fn tree_size(dir: &std::path::Path) -> (usize, u64) {
    let (mut files, mut bytes) = (0, 0);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            let (f, b) = tree_size(&e.path());
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}
