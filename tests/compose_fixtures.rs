//! Real compose files nobody on this project wrote (tests/fixtures/compose, with their
//! licences): each validates as it is — through `agentctl validate`, the way CI would run it —
//! or is refused only for keys docs/compose.md lists as unsupported. The counts are part of
//! the contract: a change that makes a valid file invalid fails here.

mod common;
use common::{agentctl, root, run};

/// Refusals that docs/compose.md's table lists as unsupported (substring of the message).
/// Both are what this host's engine cannot do (a WebAssembly platform and runtime).
const UNSUPPORTED: &[&str] =
    &["is not this host's", "runtime: not supported by Driftless: the agent does not set namespaces or runtimes"];

#[test]
fn real_compose_files_validate_or_are_refused_only_for_documented_keys() {
    let base = root().join("tests/fixtures/compose");
    let mut dirs = Vec::new();
    for group in ["awesome-compose", "sentry-self-hosted", "netbox-docker", "full-stack-fastapi-template", "authentik"]
    {
        let g = base.join(group);
        let has_compose = |d: &std::path::Path| {
            std::fs::read_dir(d).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("compose.y"))
        };
        if has_compose(&g) {
            dirs.push(g);
        } else {
            for e in std::fs::read_dir(&g).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && has_compose(&p) {
                    dirs.push(p);
                }
            }
        }
    }
    dirs.sort();
    assert!(dirs.len() >= 43, "{} fixture projects", dirs.len());
    let (mut valid, mut refused) = (Vec::new(), Vec::new());
    let mut surprises = Vec::new();
    for d in &dirs {
        let r = run(agentctl().arg("validate").arg(d).arg("--json"));
        let report: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{}: {e}: {}{}", d.display(), r.stdout, r.stderr));
        let name = d.strip_prefix(&base).unwrap().display().to_string();
        if report["valid"] == true {
            assert_eq!(r.code, 0);
            valid.push(name);
            continue;
        }
        assert_eq!(r.code, 1);
        for e in report["errors"].as_array().unwrap() {
            let msg = e["message"].as_str().unwrap();
            assert!(e["line"].as_u64().unwrap() > 0, "{name}: every refusal has a position: {e}");
            if !UNSUPPORTED.iter().any(|u| msg.contains(u)) {
                surprises.push(format!("{name}: {}:{}:{}: {msg}", e["file"], e["line"], e["column"]));
            }
        }
        refused.push(name);
    }
    eprintln!(
        "{} of {} compose projects validate as they are; refused for documented keys: {}",
        valid.len(),
        dirs.len(),
        refused.join(", ")
    );
    assert!(surprises.is_empty(), "refused for something docs/compose.md does not list:\n{}", surprises.join("\n"));
    assert!(valid.len() >= 41, "{} valid: {valid:?}", valid.len());
    // Only what the engine cannot run is refused (issue 35): WebAssembly images.
    assert_eq!(refused, ["awesome-compose/wasmedge-kafka-mysql", "awesome-compose/wasmedge-mysql-nginx"]);
    // Two services binding ./media: one folder of the host, as compose shares it.
    assert!(valid.iter().any(|v| v == "authentik"), "{valid:?}");
    assert!(valid.iter().any(|v| v == "netbox-docker"), "{valid:?}");
    // A compose file with its override, as the project ships them.
    assert!(valid.iter().any(|v| v == "full-stack-fastapi-template"), "{valid:?}");
}

#[test]
fn convert_prints_documents_that_validate_as_native_state() {
    let file = root().join("tests/fixtures/compose/awesome-compose/nginx-golang-postgres/compose.yaml");
    let r = run(agentctl().arg("convert").arg(&file));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("apiVersion: driftless/v1"), "{}", r.stdout);
    assert!(r.stdout.contains("kind: Container"), "{}", r.stdout);
    // What convert prints is valid driftless/v1 on its own.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("converted.yaml"), &r.stdout).unwrap();
    let v = run(agentctl().arg("validate").arg(dir.path()));
    assert_eq!(v.code, 0, "{}{}\n{}", v.stdout, v.stderr, r.stdout);
    // A file not named like a compose file is refused, saying which names count.
    let bad = run(agentctl().arg("convert").arg(root().join("examples/containers/agent.yaml")));
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("compose.yaml"), "{}", bad.stderr);
}

/// The project name is the folder's name however `validate` and `convert` reach it — run in
/// the folder, from its parent, by an absolute path — and repository paths stay relative
/// to the folder (an absolute DIR keeps nothing of itself in them).
#[test]
fn the_project_name_does_not_depend_on_how_the_folder_was_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let shop = tmp.path().join("shop");
    common::write_files(
        &shop,
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: web:1\n    volumes: [\"data:/d\", \"./conf:/c:ro\"]\nvolumes: { data: {} }\n",
        )],
    );
    let render = |cwd: &std::path::Path, dir: &str| {
        let r = run(agentctl().current_dir(cwd).args(["validate", dir, "--render"]));
        assert_eq!(r.code, 0, "{dir}: {}{}", r.stdout, r.stderr);
        r.stdout
    };
    let inside = render(&shop, ".");
    assert!(inside.contains("shop_data:/d"), "{inside}");
    assert!(inside.contains("source: conf"), "{inside}");
    assert_eq!(render(tmp.path(), "shop"), inside);
    assert_eq!(render(&shop, "../shop"), inside);
    assert_eq!(render(tmp.path(), shop.to_str().unwrap()), inside);
    let converted = run(agentctl().current_dir(&shop).args(["convert", "compose.yaml"]));
    assert!(converted.stdout.contains("shop_data:/d"), "{}{}", converted.stdout, converted.stderr);
}

/// `convert` refuses what `validate` refuses (a check across services, after conversion):
/// it never prints documents the agent would not apply, and exits 1.
#[test]
fn convert_refuses_what_validate_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "services:\n  a: { image: x, ports: [\"127.0.0.1:8080:80\"] }\n  b: { image: x, ports: [\"127.0.0.1:8080:80\"] }\n";
    common::write_files(tmp.path(), &[("compose.yaml", text)]);
    let v = run(agentctl().arg("validate").arg(tmp.path()));
    assert_eq!(v.code, 1, "{}", v.stdout);
    let c = run(agentctl().arg("convert").arg(tmp.path().join("compose.yaml")));
    assert_eq!(c.code, 1, "{}{}", c.stdout, c.stderr);
    assert!(c.stdout.is_empty(), "nothing printed: {}", c.stdout);
    assert!(c.stderr.contains("8080"), "the refusal names the port: {}", c.stderr);
}

/// `convert` writes paths as the native format means them — relative to the repository's
/// root — so its output, pasted into another folder of the same repository, renders the same
/// resources as the compose file it came from (issue 39).
#[test]
fn convert_output_pasted_into_the_repository_means_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    assert!(std::process::Command::new("git").args(["init", "-q"]).current_dir(repo).status().unwrap().success());
    let compose = "services:\n  web:\n    image: nginx:1\n    volumes: [\"./nginx.conf:/etc/nginx/nginx.conf:ro\"]\n    env_file: [web.env]\n    secrets: [s]\nsecrets:\n  s: { file: ./s.txt }\n";
    common::write_files(
        &repo.join("hosts/web"),
        &[("compose.yaml", compose), ("nginx.conf", "events {}\n"), ("web.env", "A=1\n"), ("s.txt", "s\n")],
    );
    let render = || {
        let r = run(agentctl().arg("validate").arg(repo).arg("--render"));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        r.stdout
    };
    let from_compose = render();
    assert!(from_compose.contains("source: hosts/web/nginx.conf"), "{from_compose}");
    let c = run(agentctl().current_dir(repo.join("hosts/web")).args(["convert", "compose.yaml"]));
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(
        c.stdout.contains("source: hosts/web/nginx.conf") && c.stdout.contains("- hosts/web/web.env"),
        "{}",
        c.stdout
    );
    std::fs::remove_file(repo.join("hosts/web/compose.yaml")).unwrap();
    common::write_files(&repo.join("hosts/native"), &[("web.yaml", c.stdout.as_str())]);
    assert_eq!(render(), from_compose, "the pasted documents mean what the compose file meant");
}
