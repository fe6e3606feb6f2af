//! The Git source against real remotes on 127.0.0.1: a local path and `file://`, `git
//! daemon`, smart HTTP (`git http-backend`) with a token, and `sshd` with a key and
//! known_hosts. Ref selection (branch, moving tag, semver, pin), force-pushes and deleted
//! tags, reading desired state from a commit, exports, pins, signatures, and the failure modes.

mod common;
use common::git::*;

use std::path::Path;

use driftless_agent::config::LoadedConfig;
use driftless_agent::source::{GitSource, Pin, RefMove, SourceError};
use git2::Oid;

const WEB: &str = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec: { image: web:1 }\n";

fn source(state: &Path, url: &str, reference: &str, extra: &str) -> GitSource {
    let text = format!(
        "host: test\nstate_dir: {}\nsource:\n  url: \"{url}\"\n  ref: {reference}\n  path: hosts/web-1\n{extra}",
        state.display()
    );
    let cfg = LoadedConfig::from_text(Path::new("agent.yaml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    GitSource::new(&cfg)
}

fn oid(s: &str) -> Oid {
    Oid::from_str(s).unwrap()
}

#[test]
fn follows_a_branch_over_a_local_path_and_file_url() {
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    for url in [up.bare.display().to_string(), up.file_url()] {
        let state = tempfile::tempdir().unwrap();
        let src = source(state.path(), &url, "{ branch: main }", "");
        let r = src.fetch().unwrap();
        assert_eq!(r.changes.len(), 1);
        assert_eq!(r.changes[0].kind, RefMove::Created);
        assert_eq!(src.resolve().unwrap().commit, oid(&c1));
        let files = src.read_state(oid(&c1), "hosts/web-1").unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "hosts/web-1/web.yaml");
        // Nothing new: nothing transferred, no changes.
        let r = src.fetch().unwrap();
        assert!(r.changes.is_empty());
        assert_eq!(r.received_objects, 0);
    }
    // A new commit is picked up as a fast-forward.
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ branch: main }", "");
    src.fetch().unwrap();
    let c2 = up.commit(&[("hosts/web-1/web.yaml", &WEB.replace("web:1", "web:2"))], "two");
    let r = src.fetch().unwrap();
    assert_eq!(r.changes[0].kind, RefMove::FastForward);
    assert_eq!(src.resolve().unwrap().commit, oid(&c2));
}

#[test]
fn force_pushed_branch_is_followed_and_pins_keep_the_old_revision() {
    let up = Upstream::new();
    up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    let c2 = up.commit(&[("hosts/web-1/web.yaml", &WEB.replace("web:1", "web:2"))], "two");
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ branch: main }", "");
    src.fetch().unwrap();
    src.pin(Pin::LastGood, oid(&c2), "test").unwrap();
    // Rewrite history upstream: c2 is gone from the branch.
    git(&up.work, &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(up.work.join("hosts/web-1/web.yaml"), WEB.replace("web:1", "web:3")).unwrap();
    git(&up.work, &["commit", "-q", "-am", "three"]);
    git(&up.work, &["push", "-q", "-f", "origin", "main"]);
    let c3 = git(&up.work, &["rev-parse", "HEAD"]);
    let r = src.fetch().unwrap();
    assert_eq!(r.changes.len(), 1);
    assert_eq!(r.changes[0].kind, RefMove::Forced, "{:?}", r.changes);
    assert_eq!(src.resolve().unwrap().commit, oid(&c3));
    // The last good revision is still readable from the mirror.
    assert_eq!(src.pinned(Pin::LastGood).unwrap(), Some(oid(&c2)));
    let files = src.read_state(oid(&c2), "hosts/web-1").unwrap();
    assert!(files[0].text.contains("web:2"));
}

#[test]
fn follows_a_moving_tag_and_reports_its_deletion() {
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    up.tag("production");
    let c2 = up.commit(&[("hosts/web-1/web.yaml", &WEB.replace("web:1", "web:2"))], "two");
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ tag: production }", "");
    src.fetch().unwrap();
    let r = src.resolve().unwrap();
    assert_eq!(r.commit, oid(&c1), "a commit to main does not move production");
    assert!(r.tag_object.is_some(), "annotated tag");
    up.tag("production"); // moved to c2
    let f = src.fetch().unwrap();
    assert_eq!(f.changes.len(), 1);
    assert_eq!(src.resolve().unwrap().commit, oid(&c2));
    git(&up.work, &["push", "-q", "origin", ":refs/tags/production"]);
    let f = src.fetch().unwrap();
    assert_eq!(f.changes[0].kind, RefMove::Deleted);
    let err = src.resolve().unwrap_err();
    assert!(matches!(err, SourceError::RefNotFound { .. }), "{err}");
    assert!(err.to_string().starts_with("tag production not found on file://"), "{err}");
}

#[test]
fn semver_picks_the_highest_matching_tag_not_the_newest() {
    let up = Upstream::new();
    let mut commits = std::collections::HashMap::new();
    for (i, tag) in ["v1.10.0", "v1.9.0", "v2.0.0-rc.1", "v1.2.0", "release-9.9.9", "v0.9.0"].iter().enumerate() {
        let c = up.commit(&[("hosts/web-1/web.yaml", &WEB.replace("web:1", &format!("web:{i}")))], tag);
        up.tag(tag);
        commits.insert(*tag, c);
    }
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ semver: \">=1.0.0\" }", "");
    src.fetch().unwrap();
    let r = src.resolve().unwrap();
    assert_eq!(r.commit, oid(&commits["v1.10.0"]));
    assert_eq!(r.reference.as_deref(), Some("refs/tags/v1.10.0"));

    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ semver: \"~1.9\" }", "");
    src.fetch().unwrap();
    assert_eq!(src.resolve().unwrap().commit, oid(&commits["v1.9.0"]));

    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ semver: \">=3\" }", "");
    src.fetch().unwrap();
    let err = src.resolve().unwrap_err();
    assert!(err.to_string().starts_with("no tag on file://"), "{err}");
    assert!(err.to_string().contains("\">=3\" (5 tag(s) parse as semver)"), "{err}");
}

#[test]
fn a_pinned_commit_is_fetched_once() {
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    up.commit(&[("hosts/web-1/web.yaml", &WEB.replace("web:1", "web:2"))], "two");
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), &format!("{{ commit: {c1} }}"), "");
    let f = src.fetch().unwrap();
    assert!(f.received_objects > 0);
    assert_eq!(src.resolve().unwrap().commit, oid(&c1));
    let f = src.fetch().unwrap();
    assert_eq!(f.received_objects, 0, "the pin is already here");
    let missing = "0123456789012345678901234567890123456789";
    let src = source(state.path(), &up.file_url(), &format!("{{ commit: {missing} }}"), "");
    src.fetch().unwrap();
    assert!(matches!(src.resolve().unwrap_err(), SourceError::CommitNotFound { .. }));
}

#[test]
fn git_daemon_remote_and_an_unreachable_one() {
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    let daemon = git_daemon(&up);
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &format!("git://127.0.0.1:{}/state.git", daemon.port), "{ branch: main }", "");
    src.fetch().unwrap();
    assert_eq!(src.resolve().unwrap().commit, oid(&c1));

    // The server goes away: one clear line, and the mirror keeps what it had.
    drop(daemon);
    let err = src.fetch().unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");
    assert!(err.to_string().starts_with("cannot reach git://127.0.0.1:"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1);
    assert_eq!(src.resolve().unwrap().commit, oid(&c1));
}

#[test]
fn smart_http_with_a_token() {
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    let server = git_http(&up, Some("s3cret"));
    let url = format!("http://127.0.0.1:{}/state.git", server.port);
    let secrets = tempfile::tempdir().unwrap();
    let good = secrets.path().join("token");
    std::fs::write(&good, "s3cret\n").unwrap();
    let bad = secrets.path().join("bad-token");
    std::fs::write(&bad, "wrong\n").unwrap();

    let state = tempfile::tempdir().unwrap();
    let auth = format!("  auth: {{ token_file: {} }}\n", good.display());
    let src = source(state.path(), &url, "{ branch: main }", &auth);
    src.fetch().unwrap();
    assert_eq!(src.resolve().unwrap().commit, oid(&c1));
    // A no-op poll: one ref advertisement, no pack.
    let (req0, bytes0) = http_stats(&up);
    let f = src.fetch().unwrap();
    let (req1, bytes1) = http_stats(&up);
    assert_eq!(f.received_objects, 0);
    assert!(req1 - req0 <= 2, "a no-op poll takes {} requests", req1 - req0);
    eprintln!("no-op poll over smart HTTP: {} request(s), {} bytes, {} ms", req1 - req0, bytes1 - bytes0, f.millis);

    for (what, extra) in
        [("wrong token", format!("  auth: {{ token_file: {} }}\n", bad.display())), ("no token", String::new())]
    {
        let state = tempfile::tempdir().unwrap();
        let src = source(state.path(), &url, "{ branch: main }", &extra);
        let err = src.fetch().unwrap_err();
        assert!(matches!(err, SourceError::AuthRefused { .. }), "{what}: {err}");
        assert_eq!(err.to_string().lines().count(), 1);
    }
}

#[test]
fn ssh_with_a_key_and_checked_host_keys() {
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    let sshd = sshd();
    let url = format!("ssh://{}@127.0.0.1:{}{}", user(), sshd.server.port, up.bare.display());
    let auth =
        |key: &Path, kh: &Path| format!("  auth: {{ ssh_key: {}, known_hosts: {} }}\n", key.display(), kh.display());

    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &url, "{ branch: main }", &auth(&sshd.client_key, &sshd.known_hosts));
    src.fetch().unwrap();
    assert_eq!(src.resolve().unwrap().commit, oid(&c1));

    // Unknown host: known_hosts lists another host only.
    let other = sshd.dir.path().join("other_known_hosts");
    std::fs::write(&other, format!("[127.0.0.2]:{} {}\n", sshd.server.port, sshd.host_pub)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let err = source(state.path(), &url, "{ branch: main }", &auth(&sshd.client_key, &other)).fetch().unwrap_err();
    assert!(matches!(err, SourceError::UnknownHostKey { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.server.port)), "{msg}");

    // Changed host key: known_hosts lists this host with another key.
    let changed = sshd.dir.path().join("changed_known_hosts");
    let other_key = keygen(&sshd.dir.path().join("other_host_key"));
    std::fs::write(&changed, format!("[127.0.0.1]:{} {}\n", sshd.server.port, other_key)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let err = source(state.path(), &url, "{ branch: main }", &auth(&sshd.client_key, &changed)).fetch().unwrap_err();
    assert!(matches!(err, SourceError::ChangedHostKey { .. }), "{err}");
    assert!(err.to_string().starts_with("HOST KEY CHANGED for [127.0.0.1]:"), "{err}");

    // A key the server does not accept.
    let stranger = sshd.dir.path().join("stranger");
    keygen(&stranger);
    let state = tempfile::tempdir().unwrap();
    let err = source(state.path(), &url, "{ branch: main }", &auth(&stranger, &sshd.known_hosts)).fetch().unwrap_err();
    assert!(matches!(err, SourceError::AuthRefused { .. }), "{err}");
    assert_eq!(err.to_string().lines().count(), 1);
}

#[test]
fn reads_state_from_the_tree_and_exports_once_per_tree() {
    let up = Upstream::new();
    let c1 = up.commit(
        &[
            ("hosts/web-1/web.yaml", WEB),
            ("hosts/web-1/sub/db.yml", "# empty\n"),
            ("hosts/web-1/.github/ci.yaml", "x: [\n"),
            ("hosts/web-1/README.md", "no\n"),
            ("hosts/web-2/other.yaml", WEB),
            ("apps/api/passenger_wsgi.py", "print('hi')\n"),
            ("apps/api/bin/run", "#!/bin/sh\necho run\n"),
        ],
        "one",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(up.work.join("apps/api/bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    git(&up.work, &["add", "-A"]);
    git(&up.work, &["commit", "-q", "-m", "exec bit"]);
    git(&up.work, &["push", "-q", "origin", "main"]);
    let c2 = git(&up.work, &["rev-parse", "HEAD"]);
    let c3 = up.commit(&[("hosts/web-1/web.yaml", &WEB.replace("web:1", "web:3"))], "state only");

    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ branch: main }", "");
    src.fetch().unwrap();
    let files = src.read_state(oid(&c1), "hosts/web-1").unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["hosts/web-1/sub/db.yml", "hosts/web-1/web.yaml"]);
    let err = src.read_state(oid(&c1), "hosts/nope").unwrap_err();
    assert!(err.to_string().starts_with("source.path \"hosts/nope\" does not exist in revision"), "{err}");

    let e2 = src.export(oid(&c2), "apps/api").unwrap();
    let e3 = src.export(oid(&c3), "apps/api").unwrap();
    assert_eq!(e2, e3, "same tree, same export");
    let mode = std::fs::metadata(e2.path.join("bin/run")).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "exec bit kept");
    assert_eq!(std::fs::read_to_string(e2.path.join("passenger_wsgi.py")).unwrap(), "print('hi')\n");
}

/// Sign with SSH keys as git does (`gpg.format=ssh`).
fn signing_setup(up: &Upstream, key: &Path) {
    git(&up.work, &["config", "gpg.format", "ssh"]);
    git(&up.work, &["config", "user.signingkey", key.to_str().unwrap()]);
}

/// SSH signing keys in `dir`: a trusted one (listed as ops@example.invalid in an
/// allowed_signers file) and a stranger's; the agent config's `verify:` line and the trust.
fn ssh_signers(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String, driftless_agent::source::verify::Trust) {
    let trusted = dir.join("trusted");
    let trusted_pub = keygen(&trusted);
    let stranger = dir.join("stranger");
    keygen(&stranger);
    let allowed = dir.join("allowed_signers");
    std::fs::write(&allowed, format!("ops@example.invalid {trusted_pub}\n")).unwrap();
    let verify = format!("  verify: {{ allowed_signers: {} }}\n", allowed.display());
    let trust = driftless_agent::source::verify::Trust { allowed_signers: Some(allowed), openpgp: None };
    (trusted, stranger, verify, trust)
}

#[test]
fn signatures_are_checked_against_allowed_signers() {
    let up = Upstream::new();
    let keys = tempfile::tempdir().unwrap();
    let (trusted, stranger, verify, allowed) = ssh_signers(keys.path());

    // Branch mode: the commit's signature counts.
    let unsigned = up.commit(&[("hosts/web-1/web.yaml", WEB)], "unsigned");
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ branch: main }", &verify);
    src.fetch().unwrap();
    let r = src.resolve().unwrap();
    assert_eq!(r.commit, oid(&unsigned));
    let err = src.verify(&r, &allowed).unwrap_err();
    assert!(err.to_string().contains("the commit is not signed"), "{err}");

    signing_setup(&up, &trusted);
    std::fs::write(up.work.join("hosts/web-1/web.yaml"), WEB.replace("web:1", "web:2")).unwrap();
    git(&up.work, &["commit", "-q", "-S", "-am", "signed"]);
    git(&up.work, &["push", "-q", "origin", "main"]);
    src.fetch().unwrap();
    let r = src.resolve().unwrap();
    assert_eq!(src.verify(&r, &allowed).unwrap(), "ops@example.invalid");

    signing_setup(&up, &stranger);
    git(&up.work, &["commit", "-q", "-S", "--allow-empty", "-m", "signed by a stranger"]);
    git(&up.work, &["push", "-q", "origin", "main"]);
    src.fetch().unwrap();
    let r = src.resolve().unwrap();
    let err = src.verify(&r, &allowed).unwrap_err();
    assert!(err.to_string().contains("signed by a key not listed in"), "{err}");

    // Tag mode: the tag's signature counts, not the commit's.
    signing_setup(&up, &trusted);
    git(&up.work, &["tag", "-s", "-m", "v1", "v1.0.0"]);
    git(&up.work, &["tag", "v1.1.0"]); // lightweight
    git(&up.work, &["push", "-q", "origin", "--tags"]);
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ tag: v1.0.0 }", &verify);
    src.fetch().unwrap();
    let r = src.resolve().unwrap();
    assert_eq!(src.verify(&r, &allowed).unwrap(), "ops@example.invalid");
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ semver: \"^1.1\" }", &verify);
    src.fetch().unwrap();
    let r = src.resolve().unwrap();
    let err = src.verify(&r, &allowed).unwrap_err();
    assert!(err.to_string().contains("lightweight tag"), "{err}");
}

/// A tag message may hold any bytes: the signature is found and checked on the tag's bytes,
/// as `git verify-tag` does. A well-signed tag whose message is not UTF-8 verifies (git
/// agrees); one signed by a stranger, and one whose message was changed after signing, are
/// refused — by `agentd` too, which says so and keeps running (it never panics on them).
#[test]
fn a_tag_message_with_invalid_utf8_is_checked_on_its_bytes_as_git_does() {
    let up = Upstream::new();
    let keys = tempfile::tempdir().unwrap();
    let (trusted, stranger, verify, trust) = ssh_signers(keys.path());
    let allowed_path = keys.path().join("allowed_signers");
    up.commit(&[("hosts/web-1/web.yaml", WEB), ("hosts/e2e/web.yaml", WEB)], "v2");
    let msg = keys.path().join("message");
    std::fs::write(&msg, b"release 2.0\n\nnotes in latin-1: caf\xe9 \xff\xfe\n").unwrap();

    signing_setup(&up, &trusted);
    git(&up.work, &["tag", "-s", "-F", msg.to_str().unwrap(), "v2.0.0"]);
    git(&up.work, &["-c", &format!("gpg.ssh.allowedSignersFile={}", allowed_path.display()), "verify-tag", "v2.0.0"]);
    signing_setup(&up, &stranger);
    git(&up.work, &["tag", "-s", "-F", msg.to_str().unwrap(), "v2.0.1"]);
    // v2.0.0's object with one byte of its message changed after signing.
    let raw = std::process::Command::new("git")
        .args(["cat-file", "tag", "v2.0.0"])
        .current_dir(&up.work)
        .output()
        .unwrap()
        .stdout;
    let at = raw.windows(4).position(|w| w == b"caf\xe9").unwrap();
    let mut forged = raw.clone();
    forged[at + 3] = 0xe8;
    let mut child = std::process::Command::new("git")
        .args(["hash-object", "-t", "tag", "-w", "--stdin", "--literally"])
        .current_dir(&up.work)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &forged).unwrap();
    let out = child.wait_with_output().unwrap();
    let forged_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    git(&up.work, &["update-ref", "refs/tags/v2.0.2", &forged_id]);
    git(&up.work, &["push", "-q", "origin", "--tags"]);

    let check = |tag: &str| {
        let state = tempfile::tempdir().unwrap();
        let src = source(state.path(), &up.file_url(), &format!("{{ tag: {tag} }}"), &verify);
        src.fetch().unwrap();
        let r = src.resolve().unwrap();
        src.verify(&r, &trust).map_err(|e| e.to_string())
    };
    assert_eq!(check("v2.0.0").as_deref(), Ok("ops@example.invalid"));
    let err = check("v2.0.1").unwrap_err();
    assert!(err.contains("signed by a key not listed in"), "{err}");
    let err = check("v2.0.2").unwrap_err();
    assert!(!err.contains("not signed"), "the forged tag's signature is checked, and fails: {err}");

    // agentd following the forged tag: refused, said so, still answering.
    let mut agent = common::agent::Agent::configure(&up.file_url(), "{ tag: v2.0.2 }", "");
    let text = std::fs::read_to_string(&agent.config)
        .unwrap()
        .replace("  path: hosts/e2e\n", &format!("  path: hosts/e2e\n{verify}"));
    std::fs::write(&agent.config, text).unwrap();
    agent.start_with(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let s = agent.wait_phase("Failed", std::time::Duration::from_secs(30));
    assert!(s["applied_revision"].is_null(), "{s}");
    assert!(s["message"].as_str().unwrap_or("").contains("signature"), "{s}");
    assert!(!agent.log_text().contains("panicked"), "{}", agent.log_text());
    assert_eq!(agent.status()["phase"], "Failed", "still answering");
}

fn https_remote(up: &Upstream, dir: &Path) -> (common::git::Server, String, String, std::path::PathBuf) {
    let (cert, key) = common::git::self_signed(dir);
    let server = common::git::git_http_tls(up, Some("s3cret"), Some((&cert, &key)));
    let url = format!("https://127.0.0.1:{}/state.git", server.port);
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let auth = format!("  auth: {{ token_file: {} }}\n", token.display());
    (server, url, auth, cert)
}

#[test]
fn https_refuses_a_certificate_no_trusted_ca_signed() {
    let up = Upstream::new();
    up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    let certs = tempfile::tempdir().unwrap();
    let (_server, url, auth, _) = https_remote(&up, certs.path());
    let state = tempfile::tempdir().unwrap();
    let err = source(state.path(), &url, "{ branch: main }", &auth).fetch().unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("the SSL certificate is invalid"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1);
}

#[test]
fn https_with_a_token_and_a_private_ca() {
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/web-1/web.yaml", WEB)], "one");
    let certs = tempfile::tempdir().unwrap();
    let (_server, url, auth, cert) = https_remote(&up, certs.path());
    // A private CA through OpenSSL's standard SSL_CERT_FILE, set before libgit2 starts (as the
    // unit's Environment= would). This test runs in its own process under nextest.
    std::env::set_var("SSL_CERT_FILE", &cert);
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &url, "{ branch: main }", &auth);
    src.fetch().unwrap();
    assert_eq!(src.resolve().unwrap().commit, oid(&c1));
    let f = src.fetch().unwrap();
    assert_eq!(f.received_objects, 0);
}

/// `agentd --dry-run`: follows the source and validates, connects no runtime, applies nothing
/// (the desired state names containers, and no Docker is touched).
#[test]
fn a_dry_run_agent_follows_the_source_and_applies_nothing() {
    let up = Upstream::new();
    let doc = |image: &str| {
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec: {{ image: \"{image}\" }}\n"
        )
    };
    let c1 = up.commit(&[("hosts/e2e/web.yaml", &doc("web:1"))], "v1");
    let mut agent = common::agent::Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.args.push("--dry-run".into());
    agent.start();
    let s = agent.wait_phase("Synced", std::time::Duration::from_secs(30));
    assert_eq!(s["desired_revision"], c1.as_str());
    assert!(s["applied_revision"].is_null(), "{s}");
    let msg = s["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("dry run: revision") && msg.contains("is valid (1 resource(s)); nothing is applied"),
        "{s}"
    );

    let c2 = up.commit(&[("hosts/e2e/web.yaml", &doc("Web:2"))], "an invalid image reference");
    agent.ctl(&["sync", "--wait"]);
    let s = agent.wait_phase("Invalid", std::time::Duration::from_secs(30));
    assert_eq!(s["desired_revision"], c2.as_str());
    assert!(s["message"].as_str().unwrap_or("").contains("web.yaml:"), "{s}");
    assert!(agent.ctl(&["history", "--json"]).stdout.trim() == "[]", "a dry run records no deployment");
}

#[test]
fn openpgp_signatures_are_checked_against_the_configured_keys_only() {
    let up = Upstream::new();
    let gpg = common::gpg::Gpg::new();
    let keys = tempfile::tempdir().unwrap();
    let trusted = gpg.key("Release <release@example.invalid>", None, "1y");
    let stranger = gpg.key("Stranger <stranger@example.invalid>", None, "1y");
    let old = gpg.key("Old <old@example.invalid>", Some("20200101T000000"), "1d");
    let revoked = gpg.key("Revoked <revoked@example.invalid>", None, "1y");
    let release_asc = keys.path().join("release.asc");
    gpg.export(&trusted, &release_asc);
    let old_asc = keys.path().join("old.asc");
    gpg.export(&old, &old_asc);
    // The revocation certificate gpg made with the key, imported, then the key exported again.
    let rev = std::fs::read_to_string(gpg.home.path().join(format!("openpgp-revocs.d/{revoked}.rev"))).unwrap();
    let rev_path = keys.path().join("revoke.asc");
    std::fs::write(
        &rev_path,
        rev.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----"),
    )
    .unwrap();
    let revoked_asc = keys.path().join("revoked.asc");
    let sign_revoked_first = |up: &Upstream| {
        gpg.sign_with(up, &revoked, None);
        git(&up.work, &["commit", "-q", "-S", "--allow-empty", "-m", "signed before the revocation"]);
        git(&up.work, &["push", "-q", "origin", "main"]);
    };

    let verify = format!(
        "  verify: {{ openpgp_keys: [{}, {}, {}] }}\n",
        release_asc.display(),
        old_asc.display(),
        revoked_asc.display()
    );
    up.commit(&[("hosts/web-1/web.yaml", WEB)], "unsigned");
    // The revoked key signs first; then it is revoked and exported with its revocation.
    sign_revoked_first(&up);
    gpg.run(&["--import", rev_path.to_str().unwrap()]);
    gpg.export(&revoked, &revoked_asc);

    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ branch: main }", &verify);
    let cfg = driftless_agent::config::VerifyConfig {
        allowed_signers: None,
        openpgp_keys: vec![release_asc.clone(), old_asc.clone(), revoked_asc.clone()],
    };
    let trust = src.trust(&cfg).unwrap();
    let check = |src: &GitSource| {
        src.fetch().unwrap();
        let r = src.resolve().unwrap();
        src.verify(&r, &trust)
    };
    let err = check(&src).unwrap_err().to_string();
    assert!(err.contains("revoked key"), "{err}");

    gpg.sign_with(&up, &trusted, None);
    git(&up.work, &["commit", "-q", "-S", "--allow-empty", "-m", "signed by the release key"]);
    git(&up.work, &["push", "-q", "origin", "main"]);
    assert_eq!(check(&src).unwrap(), "Release <release@example.invalid>");

    gpg.sign_with(&up, &stranger, None);
    git(&up.work, &["commit", "-q", "-S", "--allow-empty", "-m", "signed by a stranger"]);
    git(&up.work, &["push", "-q", "origin", "main"]);
    let err = check(&src).unwrap_err().to_string();
    assert!(err.contains("not in source.verify.openpgp_keys"), "{err}");

    gpg.sign_with(&up, &old, Some("20200101T120000"));
    git(&up.work, &["commit", "-q", "-S", "--allow-empty", "-m", "signed by a key that has expired since"]);
    git(&up.work, &["push", "-q", "origin", "main"]);
    let err = check(&src).unwrap_err().to_string();
    assert!(err.contains("expired key"), "{err}");

    // Tag mode: an OpenPGP-signed annotated tag.
    gpg.sign_with(&up, &trusted, None);
    git(&up.work, &["tag", "-s", "-m", "v2", "v2.0.0"]);
    git(&up.work, &["push", "-q", "origin", "--tags"]);
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ tag: v2.0.0 }", &verify);
    assert_eq!(check(&src).unwrap(), "Release <release@example.invalid>");
}

#[test]
fn oversized_symlinked_and_non_utf8_state_in_a_revision_is_a_verdict() {
    use driftless_agent::fault::Classify;
    let up = Upstream::new();
    up.commit(&[("hosts/web-1/web.yaml", WEB)], "ok");
    let state = tempfile::tempdir().unwrap();
    let src = source(state.path(), &up.file_url(), "{ branch: main }", "");
    let read = |src: &GitSource| {
        src.fetch().unwrap();
        let r = src.resolve().unwrap();
        src.read_state(r.commit, "hosts/web-1")
    };
    assert!(read(&src).is_ok());

    let big = "# filler\n".repeat(600_000); // 5.4 MB
    up.commit(&[("hosts/web-1/big.yaml", &big)], "too big");
    let err = read(&src).unwrap_err();
    assert!(!err.is_fault(), "a verdict on the revision: {err}");
    assert!(
        err.to_string().contains("hosts/web-1/big.yaml") && err.to_string().contains("the limit is 4.0 MiB"),
        "{err}"
    );

    std::fs::remove_file(up.work.join("hosts/web-1/big.yaml")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", up.work.join("hosts/web-1/link.yaml")).unwrap();
    up.commit(&[], "a symlink");
    let err = read(&src).unwrap_err();
    assert!(!err.is_fault() && err.to_string().contains("symbolic link"), "{err}");

    std::fs::remove_file(up.work.join("hosts/web-1/link.yaml")).unwrap();
    std::fs::write(up.work.join("hosts/web-1/latin1.yaml"), b"name: caf\xe9\n").unwrap();
    up.commit(&[], "not UTF-8");
    let err = read(&src).unwrap_err();
    assert!(!err.is_fault() && err.to_string().contains("not UTF-8"), "{err}");
}
