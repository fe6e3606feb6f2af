//! `agentctl validate` and `agentd --check`, end to end: the real binaries on real folders.

mod common;
use common::*;

const WEB: &str = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec:\n  image: web:1\n  ports: [\"127.0.0.1:8080:80\"]\nenvironments:\n  staging:\n    spec: { env: { LOG_LEVEL: DEBUG } }\n  production:\n    spec: { ports: [\"127.0.0.1:8080:99999\"] }\n";

#[test]
fn valid_folder_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("web.yaml", "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec: { image: web:1 }\n")],
    );
    let r = run(agentctl().arg("validate").arg(dir.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("valid (1 document in 1 file)"), "{}", r.stderr);
}

#[test]
fn every_error_of_every_file_and_environment_is_listed_and_exit_is_1() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("apps/web.yaml", WEB),
            ("db.yml", "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: db }\nspec:\n  image: db:1\n  depends_on: [wbe]\n"),
            (".github/workflows/ci.yml", "not: [desired, state\n"),
            ("README.md", "ignored\n"),
        ],
    );
    let r = run(agentctl().arg("validate").current_dir(dir.path()));
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "apps/web.yaml:11:21: environments.production.spec.ports[0]: port \"127.0.0.1:8080:99999\" is not valid: port 99999 is out of range 1-65535; write [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp], e.g. \"127.0.0.1:8080:80\" (environment production)",
            "db.yml:6:16: spec.depends_on[0]: depends_on names \"wbe\", which no document declares (did you mean \"web\"?)",
            ".: invalid: 2 errors (2 documents in 2 files; environments: production, staging)",
        ]
    );
}

#[test]
fn json_report_has_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("web.yaml", WEB)]);
    let r = run(agentctl().args(["validate", "--json"]).arg(dir.path()));
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["files"], 1);
    assert_eq!(v["documents"], 1);
    assert_eq!(v["environments"], serde_json::json!(["production", "staging"]));
    let e = &v["errors"][0];
    assert!(e["file"].as_str().unwrap().ends_with("/web.yaml"), "paths are shown as DIR/file");
    assert_eq!((e["line"].as_u64(), e["column"].as_u64()), (Some(11), Some(21)));
    assert_eq!(e["environment"], "production");
    assert!(e["message"].as_str().unwrap().contains("99999"));
}

#[test]
fn render_prints_the_effective_state_of_one_environment() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("web.yaml", WEB)]);
    let r = run(agentctl().args(["validate", "--environment", "staging", "--render"]).arg(dir.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let docs: Vec<serde_yaml_ng::Value> =
        serde_yaml_ng::Deserializer::from_str(&r.stdout).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["spec"]["env"]["LOG_LEVEL"], "DEBUG");
    assert_eq!(docs[0]["spec"]["pull"], "if-not-present", "defaults are filled in");
    assert!(docs[0].get("environments").is_none(), "overlays are applied, not shown");
    // The same with --json: resources in the report.
    let r = run(agentctl().args(["validate", "-e", "staging", "--render", "--json"]).arg(dir.path()));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["resources"][0]["spec"]["env"]["LOG_LEVEL"], "DEBUG");
    assert_eq!(v["checked"], serde_json::json!(["staging"]));
}

/// PRODUCT.md `agentctl`: an environment or host name no document mentions is a warning
/// (with a suggestion), an error with `--strict`; `--render` without `-e` says it rendered
/// the base documents.
#[test]
fn a_name_no_document_mentions_is_a_warning_and_strict_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("web.yaml", WEB)]);
    let r = run(agentctl().args(["validate", "-e", "stagng"]).arg(dir.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: ")
            && r.stderr.contains("environment \"stagng\" is not mentioned by any document here (did you mean staging?"),
        "{}",
        r.stderr
    );
    let r = run(agentctl().args(["validate", "--strict", "-e", "stagng", "--host", "nosuch"]).arg(dir.path()));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("host \"nosuch\" is not mentioned by any document here"), "{}", r.stderr);
    let r = run(agentctl().args(["validate", "--strict", "-e", "staging"]).arg(dir.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(agentctl().args(["validate", "--render"]).arg(dir.path()));
    assert!(
        r.stderr
            .contains("rendered the base documents, no environment overlay (-e ENV for one of: production, staging)"),
        "{}",
        r.stderr
    );
}

/// One folder for twenty hosts: a per-host overlay merged after the environment's.
const ROLE: &str = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec:\n  image: web:1\n  env: { LOG_LEVEL: INFO, SHARD: \"0\" }\nenvironments:\n  production:\n    spec: { image: web:2, env: { LOG_LEVEL: WARN } }\nhosts:\n  web-3:\n    spec: { env: { SHARD: \"3\" } }\n  web-4:\n    spec: { ports: [\"127.0.0.1:8080:99999\"] }\n";

#[test]
fn host_overlays_merge_after_the_environment_and_each_declared_host_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("roles/web.yaml", ROLE)]);
    let r = run(agentctl().args(["validate", "--host", "web-3", "-e", "production", "--render"]).arg(dir.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(doc["spec"]["image"], "web:2", "the environment's overlay");
    assert_eq!(doc["spec"]["env"]["LOG_LEVEL"], "WARN");
    assert_eq!(doc["spec"]["env"]["SHARD"], "3", "the host's, merged after it");
    assert!(doc.get("hosts").is_none(), "overlays are applied, not shown");
    // Without --host, every declared host's overlay is checked: web-4's error is found, at
    // its line, and named with the host.
    let r = run(agentctl().args(["validate", "--json"]).arg(dir.path()));
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["hosts"], serde_json::json!(["web-3", "web-4"]));
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["errors"][0]["host"], "web-4");
    assert_eq!(v["errors"][0]["line"], 14);
    assert!(v["errors"][0]["message"].as_str().unwrap().starts_with("hosts.web-4.spec.ports[0]: "), "{v}");
    let r = run(agentctl().args(["validate"]).arg(dir.path()));
    assert!(r.stderr.contains("(host web-4)") || r.stdout.contains("(host web-4)"), "{}{}", r.stdout, r.stderr);
}

#[test]
fn missing_folder_is_an_error_not_a_crash() {
    let r = run(agentctl().args(["validate", "/nonexistent/state"]));
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), "agentctl validate: /nonexistent/state: no such file or folder: give the folder that holds the desired-state *.yaml files, or one such file");
}

/// `validate FILE`: that file alone (with the compose `.env` beside it), errors named by its
/// path; the other files of its folder are not read; a file that is not YAML is refused.
#[test]
fn one_file_is_validated_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec: { image: \"nginx:1\" }\n";
    std::fs::write(d.join("web.yaml"), good).unwrap();
    std::fs::write(d.join("broken.yaml"), "apiVersion: driftless/v1\nkind: Nope\n").unwrap();
    std::fs::write(d.join("compose.yaml"), "services:\n  app:\n    image: \"app:${TAG}\"\n").unwrap();
    std::fs::write(d.join(".env"), "TAG=7\n").unwrap();
    let r = run(agentctl().arg("validate").arg(d.join("web.yaml")));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(agentctl().arg("validate").arg(d.join("broken.yaml")));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("broken.yaml:2:7"), "{}", r.stderr);
    let r = run(agentctl().args(["validate", "--render"]).arg(d.join("compose.yaml")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("app:7"), "the .env beside it is read: {}", r.stdout);
    std::fs::write(d.join("notes.txt"), "hello").unwrap();
    let r = run(agentctl().arg("validate").arg(d.join("notes.txt")));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not a desired-state file"), "{}", r.stderr);
}

#[test]
fn empty_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(agentctl().arg("validate").arg(dir.path()));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no desired-state documents found"), "{}", r.stderr);
}

#[test]
fn agentd_check_refuses_a_bad_config_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.yaml");
    std::fs::write(&cfg, "source:\n  url: /srv/state.git\n  ref: { branch: main }\n  interval: soon\n").unwrap();
    let r = run(agentd().arg("--config").arg(&cfg).arg("--check"));
    assert_eq!(r.code, 1);
    let first = r.stderr.lines().next().unwrap();
    assert_eq!(
        first,
        format!("{}:4:13: source.interval: \"soon\" is not a duration: write a number with a unit, e.g. 500ms, 30s, 2m, 1h30m", cfg.display())
    );
    let r = run(agentd().args(["--config", "/nonexistent/agent.yaml", "--check"]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("/nonexistent/agent.yaml: cannot read the agent config"), "{}", r.stderr);
}

#[test]
fn oversized_and_symlinked_desired_state_is_refused_fast_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // 33 MB of YAML: refused from its size, before any parsing.
    let big = format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: web:1\n  env:\n{}",
        "    K: \"0123456789012345678901234567890123456789\"\n".repeat(800_000)
    );
    std::fs::write(dir.path().join("big.yaml"), &big).unwrap();
    let t = std::time::Instant::now();
    let r = common::run(common::agentctl().arg("validate").arg(dir.path()));
    assert!(t.elapsed() < std::time::Duration::from_secs(1), "refused in {:?}", t.elapsed());
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("big.yaml") && r.stderr.contains("the limit is 4.0 MiB"), "{}", r.stderr);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real.txt"), "apiVersion: driftless/v1\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("web.yaml")).unwrap();
    let r = common::run(common::agentctl().arg("validate").arg(dir.path()));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("web.yaml") && r.stderr.contains("symbolic link"), "{}", r.stderr);
}

/// Pathological YAML is refused fast and in bounded memory (run under a 1 GiB address-space
/// limit, so running out of it would be a crash, not exit 1): flow nesting a million deep,
/// a million empty documents, an alias bomb, a hundred full port ranges (the clash check was
/// quadratic; found by fuzzing); and an agent config of 2 MiB.
#[test]
fn pathological_yaml_and_an_oversized_config_are_refused_fast_in_bounded_memory() {
    let ports: Vec<String> = (1..=100).map(|n| format!("\"127.0.0.{n}:1-65535:1-65535\"")).collect();
    let cases: [(&str, String, &str); 4] = [
        (
            "ports.yaml",
            format!(
                "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: web:1\n  ports: [{}]\n",
                ports.join(", ")
            ),
            "past the limit of 65536 host ports per revision",
        ),
        ("deep.yaml", format!("x: {}{}\n", "[".repeat(2_000_000), "]".repeat(2_000_000)), "nested deeper than 64"),
        ("docs.yaml", "---\n".repeat(1_000_000), "over 20000 YAML documents"),
        (
            "bomb.yaml",
            {
                let mut s =
                    String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
                for (i, c) in ('b'..='j').enumerate() {
                    let prev = (b'a' + i as u8) as char;
                    s.push_str(&format!(
                        "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
                    ));
                }
                s
            },
            "bomb.yaml",
        ),
    ];
    for (name, text, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), &text).unwrap();
        let t = std::time::Instant::now();
        let r = common::run(
            std::process::Command::new("prlimit")
                .arg("--as=1073741824")
                .arg(env!("CARGO_BIN_EXE_agentctl"))
                .arg("validate")
                .arg(dir.path()),
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "{name}: refused in {:?}", t.elapsed());
        assert_eq!(r.code, 1, "{name}: a refusal, not a crash: {}", r.stderr);
        assert!(r.stderr.contains(name) && r.stderr.contains(want), "{name}: {}", r.stderr);
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.yaml");
    let text =
        format!("source:\n  url: /srv/state.git\n  ref: {{ branch: main }}\n# {}\n", "x".repeat(2 * 1024 * 1024));
    std::fs::write(&cfg, text).unwrap();
    let r = run(agentd().arg("--config").arg(&cfg).arg("--check"));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("over the limit of 1048576 bytes"), "{}", r.stderr);
}

/// Which YAML files are desired state (docs/desired-state.md): every one under the folder,
/// except those a compose file there mounts or reads and that hold no driftless/v1 document.
/// `validate` names each file it leaves out and what claims it; a stray file is still read.
#[test]
fn files_a_compose_file_mounts_are_not_desired_state_and_validate_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let compose = "services:\n  prometheus:\n    image: prom/prometheus:v2\n    volumes:\n      - ./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro\n  grafana:\n    image: grafana/grafana:10\n    volumes:\n      - type: bind\n        source: ./grafana/provisioning\n        target: /etc/grafana/provisioning\n  tools:\n    image: tools:1\n    profiles: [debug]\n    env_file: tools/env.yaml\n";
    let files = [
        ("stack/compose.yaml", compose),
        ("stack/prometheus/prometheus.yml", "global: { scrape_interval: 15s }\nscrape_configs: []\n"),
        ("stack/grafana/provisioning/datasources/ds.yaml", "apiVersion: 1\ndatasources: [{ name: prom, type: prometheus }]\n"),
        ("stack/tools/env.yaml", "A: 1\n"),
        (
            "stack/grafana/provisioning/extra.yaml",
            "# mounted, but ours\napiVersion: driftless/v1\nkind: Container\nmetadata: { name: extra }\nspec: { image: extra:1 }\n",
        ),
        ("apps/web.yaml", "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec: { image: web:1 }\n"),
    ];
    write_files(dir.path(), &files);
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "."]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for want in [
        "not desired state: stack/grafana/provisioning/datasources/ds.yaml (mounted or read by stack/compose.yaml:9: services.grafana.volumes[0])",
        "not desired state: stack/prometheus/prometheus.yml (mounted or read by stack/compose.yaml:5: services.prometheus.volumes[0])",
        "not desired state: stack/tools/env.yaml (mounted or read by stack/compose.yaml:15: services.tools.env_file)",
        "valid (4 documents in 3 files; 3 files mounted by compose, not desired state)",
    ] {
        assert!(r.stderr.contains(want), "{want:?} in:\n{}", r.stderr);
    }
    let json = run(agentctl().current_dir(dir.path()).args(["validate", ".", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["not_desired_state"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["not_desired_state"][1]["file"], "stack/prometheus/prometheus.yml", "{v}");

    // A YAML file no compose file claims is read as desired state, as before: refused.
    write_files(dir.path(), &[("stack/notes.yaml", "todo: [backups]\n")]);
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "."]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("stack/notes.yaml:1:1"), "{}", r.stderr);
}

/// `compose.override.yaml` beside `compose.yaml` is merged into it by compose's rules, as
/// `docker compose up` does: what validate and convert show is the merged project, and an
/// error in the override names the override's own line.
#[test]
fn a_compose_override_is_merged_as_docker_compose_merges_it() {
    let dir = tempfile::tempdir().unwrap();
    let compose = "services:\n  web:\n    image: nginx:1.27\n    ports:\n      - \"127.0.0.1:8080:80\"\n    environment:\n      MODE: base\n      KEEP: yes\n    command: [nginx, -g, daemon off;]\n  db:\n    image: postgres:16\n";
    let over = "services:\n  web:\n    image: nginx:1.28\n    ports:\n      - \"127.0.0.1:8443:443\"\n    environment:\n      MODE: override\n    command: [nginx-debug, -g, daemon off;]\n  worker:\n    image: worker:1\n  db:\n    environment: !reset {}\n";
    write_files(dir.path(), &[("shop/compose.yaml", compose), ("shop/compose.override.yaml", over)]);
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "shop", "--render"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for want in [
        "image: nginx:1.28",
        "127.0.0.1:8080:80",
        "127.0.0.1:8443:443",
        "MODE: override",
        // Quoted: a YAML 1.1 reader takes a plain `yes` for true (issue 35).
        "KEEP: \"yes\"",
        "- nginx-debug",
        "name: worker",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("- nginx\n"), "command is replaced, not appended:\n{}", r.stdout);

    // convert merges it too, and says so.
    let c = run(agentctl().arg("convert").arg(dir.path().join("shop/compose.yaml")));
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(c.stderr.contains("merging") && c.stderr.contains("compose.override.yaml"), "{}", c.stderr);
    assert!(c.stdout.contains("nginx:1.28") && c.stdout.contains("name: worker"), "{}", c.stdout);
    let o = run(agentctl().arg("convert").arg(dir.path().join("shop/compose.override.yaml")));
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("is an override: convert the compose file beside it"), "{}", o.stderr);

    // An error in the override is the override's, at its line; one compose cannot merge is
    // named with what to write.
    let bad = "services:\n  web:\n    ports:\n      https: 443\n    read_only: sometimes\n";
    write_files(dir.path(), &[("shop/compose.override.yaml", bad)]);
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "shop"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("shop/compose.override.yaml:4:7: services.web.ports: the base file has a list here and the override a mapping"), "{}", r.stderr);
    assert!(r.stderr.contains("write a list, or `!override` to replace it"), "{}", r.stderr);
    assert!(r.stderr.contains("shop/compose.override.yaml:5:"), "{}", r.stderr);

    // Compose reads one compose file and one override per folder; the others are named, and
    // an override with no compose file is refused.
    write_files(
        dir.path(),
        &[("shop/compose.override.yaml", over), ("shop/docker-compose.yml", "services: { other: { image: x:1 } }\n")],
    );
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "shop"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("shop/docker-compose.yml: not read: compose reads only the first compose file it finds"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(dir.path().join("shop/compose.yaml")).unwrap();
    std::fs::remove_file(dir.path().join("shop/docker-compose.yml")).unwrap();
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "shop"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("shop/compose.override.yaml: an override with no compose file beside it"),
        "{}",
        r.stderr
    );
}

/// Refusals in a compose file name the compose path (never the generated `spec.…`), say
/// what to write, do not repeat the key, and do not cascade: a dependency on a service whose
/// own keys are refused is not also "undeclared"; a declared secret refused at the top is not
/// also "not declared" where a service uses it. Every error of the file is listed.
#[test]
fn compose_refusals_name_the_compose_path_and_what_to_write_once() {
    let dir = tempfile::tempdir().unwrap();
    let compose = "services:\n  web:\n    imagee: nginx\n    image: nginx\n    depends_on: [db]\n    secrets: [s]\n    deploy:\n      placement: { constraints: [] }\n  db:\n    image: postgres\n    logging: { driver: local, foo: bar }\n    isolation: process\n    stop_grace_period: soon\nsecrets:\n  s: { file: ./s, environment: X }\n";
    write_files(dir.path(), &[("app/compose.yaml", compose)]);
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "app"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    for want in [
        "app/compose.yaml:3:5: services.web.imagee: unknown service key: did you mean `image`?",
        "app/compose.yaml:8:7: services.web.deploy.placement: not supported on a single host:",
        "app/compose.yaml:11:31: services.db.logging.foo: unknown key `foo`",
        "app/compose.yaml:12:5: services.db.isolation: not supported by Driftless: it is for Windows containers",
        "app/compose.yaml:13:24: services.db.stop_grace_period: \"soon\" is not a duration",
        "app/compose.yaml:15:6: secrets.s: a secret is file: or environment:, not both: remove one",
        "app: invalid: 6 errors",
    ] {
        assert!(r.stderr.contains(want), "{want:?} in:\n{}", r.stderr);
    }
    for never in
        ["spec.", "metadata.name", "which no document declares", "is not declared", "`isolation` is not supported"]
    {
        assert!(!r.stderr.contains(never), "{never:?} in:\n{}", r.stderr);
    }

    // `ipc: service:db` joins db's IPC namespace, which the engine allows only when db's is
    // shareable: said before anything runs, with what to write.
    let ipc = "services:\n  db: { image: pg }\n  app: { image: app, ipc: \"service:db\" }\n";
    write_files(dir.path(), &[("ipc/compose.yaml", ipc)]);
    let r = run(agentctl().current_dir(dir.path()).args(["validate", "ipc"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("services.app.ipc: ipc container:db: the engine lets a container join db's IPC namespace only when db has ipc: shareable; write that on db"),
        "{}",
        r.stderr
    );
}
