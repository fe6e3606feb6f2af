//! Secrets in Git, end to end: files encrypted by Debian's `age` (to an age X25519 recipient,
//! and to an `ssh-ed25519` host key made by `ssh-keygen`) reach the container (an env file, a
//! mounted secret) and the Passenger release (mode 0600), and appear nowhere else: not under
//! `state_dir`, not in the log, the history, the status or the metrics. Re-encrypting a
//! changed secret replaces what uses it; a file no identity decrypts makes the revision
//! invalid, naming the file and its recipients; `agentctl validate --identities` checks it in CI.

mod common;
use common::agent::Agent;
use common::docker::{self, available, clear_managed, ensure_image, IMAGE, LOCK};
use common::git::{free_port, Upstream};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn age_keygen(path: &Path) -> String {
    let out = Command::new("age-keygen").arg("-o").arg(path).output().expect("age-keygen runs (apt-get install age)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string()
}

/// Encrypt `plain` with `age` and the given recipient flags; armored when `armor`.
fn age_encrypt(recipient_args: &[&str], plain: &str, armor: bool) -> Vec<u8> {
    let mut cmd = Command::new("age");
    cmd.args(recipient_args);
    if armor {
        cmd.arg("-a");
    }
    let mut child =
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().expect("age runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(plain.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn grep_tree(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                if let Ok(bytes) = std::fs::read(&p) {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        hits.push(p.display().to_string());
                    }
                }
            }
        }
    }
    hits
}

fn metrics_text(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn age_secrets_reach_the_container_and_the_release_and_nothing_else() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !available() {
        return;
    }
    ensure_image();
    clear_managed();
    let keys = tempfile::tempdir().unwrap();
    let id_file = keys.path().join("agent.agekey");
    let recipient = age_keygen(&id_file);
    let host_key = keys.path().join("ssh_host_ed25519_key");
    let host_pub = common::git::keygen(&host_key);
    std::fs::write(keys.path().join("host.pub"), format!("{host_pub}\n")).unwrap();
    let host_pub_file = keys.path().join("host.pub");

    let token = "tok-12345-plaintext-never-logged";
    let api_key = "api-key-67890-plaintext-never-logged";
    let app_env = "DATABASE_URL=postgres://app:pw-24680-plaintext@db/app";
    let web_env = age_encrypt(&["-r", &recipient], &format!("WEB_TOKEN={token}\n"), false);
    let api = age_encrypt(&["-R", host_pub_file.to_str().unwrap()], api_key, true);
    let app = age_encrypt(&["-R", host_pub_file.to_str().unwrap()], app_env, false);

    let scratch = tempfile::tempdir().unwrap();
    let app_root = scratch.path().join("app");
    let state = format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: vault }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  env_files: [secrets/web.env.age]\n  secrets: [{{ name: api_key, source: secrets/api_key.age }}]\n  stop_timeout: 1s\n---\napiVersion: driftless/v1\nkind: PassengerApp\nmetadata: {{ name: api }}\nspec:\n  app_root: {}\n  source: apps/api\n  secrets: [{{ source: secrets/app.env.age, target: .env }}]\n  health:\n    - exec: [\"true\"]\n",
        app_root.display()
    );
    let up = Upstream::new();
    let write_bin = |rel: &str, bytes: &[u8]| {
        let p = up.work.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    write_bin("secrets/web.env.age", &web_env);
    write_bin("secrets/api_key.age", &api);
    write_bin("secrets/app.env.age", &app);
    let c1 = up.commit(
        &[("hosts/e2e/state.yaml", &state), ("apps/api/passenger_wsgi.py", "application = None\n")],
        "v1 with secrets",
    );
    let mport = free_port();
    let mut agent = Agent::configure(
        &up.file_url(),
        "{ branch: main }",
        &format!(
            "secrets: {{ identities: [{}, {}] }}\nmetrics: {{ listen: \"127.0.0.1:{mport}\" }}\n",
            id_file.display(),
            host_key.display()
        ),
    );
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(90));
    assert_eq!(s["applied_revision"], c1.as_str());

    // Where the plaintext belongs.
    assert_eq!(docker::docker(&["exec", "vault", "sh", "-c", "echo $WEB_TOKEN"]).1, token);
    assert_eq!(docker::docker(&["exec", "vault", "cat", "/run/secrets/api_key"]).1, api_key);
    let release_env = app_root.join("current/.env");
    assert_eq!(std::fs::read_to_string(&release_env).unwrap(), app_env);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&release_env).unwrap().permissions()) & 0o777;
    assert_eq!(mode, 0o600, "the release's secret file is 0600");

    // And nowhere else.
    let history = agent.ctl(&["history", "--json"]).stdout;
    let status = agent.ctl(&["status", "--json"]).stdout;
    let metrics = metrics_text(mport);
    assert!(metrics.contains("driftless_phase"), "{metrics}");
    for secret in [token, api_key, "pw-24680-plaintext"] {
        assert!(
            grep_tree(&agent.state_dir(), secret).is_empty(),
            "{secret} under state_dir: {:?}",
            grep_tree(&agent.state_dir(), secret)
        );
        assert!(!agent.log_text().contains(secret), "{secret} in the log");
        assert!(
            !history.contains(secret) && !status.contains(secret) && !metrics.contains(secret),
            "{secret} in agentctl output or metrics"
        );
    }

    // `agentctl validate --identities` in CI: the same check, offline.
    let v = common::run(common::agentctl().arg("validate").arg(up.work.join("hosts/e2e")).args([
        "--identities",
        id_file.to_str().unwrap(),
        "--identities",
        host_key.to_str().unwrap(),
    ]));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);

    // Re-encrypting a changed secret replaces the container that uses it.
    let before = docker::container_id("vault");
    write_bin("secrets/web.env.age", &age_encrypt(&["-r", &recipient], "WEB_TOKEN=tok-rotated\n", false));
    up.commit(&[], "rotate the token");
    agent.sync(0);
    assert_ne!(docker::container_id("vault"), before, "replaced");
    assert_eq!(docker::docker(&["exec", "vault", "sh", "-c", "echo $WEB_TOKEN"]).1, "tok-rotated");

    // A file encrypted to someone else: the revision is invalid, nothing applied.
    let stranger = age_keygen(&keys.path().join("stranger.agekey"));
    write_bin("secrets/web.env.age", &age_encrypt(&["-r", &stranger], "WEB_TOKEN=nope\n", false));
    up.commit(&[], "encrypted to the wrong key");
    let id = docker::container_id("vault");
    agent.sync(1);
    let s = agent.status();
    assert_eq!(s["phase"], "Invalid", "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains("secrets/web.env.age cannot be decrypted") && msg.contains("an age X25519 key"), "{msg}");
    assert_eq!(docker::container_id("vault"), id, "nothing applied");
    let v = common::run(common::agentctl().arg("validate").arg(up.work.join("hosts/e2e")).args([
        "--identities",
        id_file.to_str().unwrap(),
        "--identities",
        host_key.to_str().unwrap(),
    ]));
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert!(v.stderr.contains("secrets/web.env.age cannot be decrypted"), "{}", v.stderr);
    clear_managed();
}

#[test]
fn agentd_applies_openpgp_signed_revisions_and_refuses_the_rest() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gpg = common::gpg::Gpg::new();
    let keys = tempfile::tempdir().unwrap();
    let trusted = gpg.key("Release <release@example.invalid>", None, "1y");
    let release_asc = keys.path().join("release.asc");
    gpg.export(&trusted, &release_asc);
    let scratch = tempfile::tempdir().unwrap();
    let state = |v: &str| {
        format!(
            "apiVersion: driftless/v1\nkind: PassengerApp\nmetadata: {{ name: api }}\nspec:\n  app_root: {}\n  source: apps/api\n  build: [\"sh\", \"-c\", \"echo {v} > VERSION\"]\n  health:\n    - exec: [\"true\"]\n",
            scratch.path().join("app").display()
        )
    };
    let up = Upstream::new();
    gpg.sign_with(&up, &trusted, None);
    std::fs::create_dir_all(up.work.join("hosts/e2e")).unwrap();
    std::fs::create_dir_all(up.work.join("apps/api")).unwrap();
    std::fs::write(up.work.join("hosts/e2e/api.yaml"), state("1")).unwrap();
    std::fs::write(up.work.join("apps/api/passenger_wsgi.py"), "application = None\n").unwrap();
    common::git::git(&up.work, &["add", "-A"]);
    common::git::git(&up.work, &["commit", "-q", "-S", "-m", "v1 signed"]);
    common::git::git(&up.work, &["push", "-q", "origin", "main"]);
    let c1 = common::git::git(&up.work, &["rev-parse", "HEAD"]);
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    let cfg = std::fs::read_to_string(&agent.config).unwrap().replace(
        "  interval: 1h\n",
        &format!("  interval: 1h\n  verify: {{ openpgp_keys: [{}] }}\n", release_asc.display()),
    );
    std::fs::write(&agent.config, cfg).unwrap();
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(90));
    assert_eq!(s["applied_revision"], c1.as_str());
    // The keyring is the agent's own, in its state_dir.
    assert!(agent.state_dir().join("gnupg").is_dir());

    // An unsigned revision is refused; the host stays on v1.
    common::git::git(&up.work, &["-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", "v2 unsigned"]);
    common::git::git(&up.work, &["push", "-q", "origin", "main"]);
    agent.sync(1);
    let s = agent.status();
    assert_eq!(s["phase"], "Failed", "{s}");
    assert!(s["message"].as_str().unwrap().contains("not signed"), "{s}");
    assert_eq!(s["applied_revision"], c1.as_str());
    // A rollback to an unsigned revision is refused too.
    let unsigned = common::git::git(&up.work, &["rev-parse", "HEAD"]);
    let r = agent.ctl(&["rollback", &unsigned]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not signed"), "{}", r.stderr);
}
