//! A compose file deployed end to end on the real engine (the locally imported test image
//! standing in for the real ones): a database with a named volume and a healthcheck, a
//! backend that waits for it to be healthy and reads a file secret, a frontend on its own
//! network, `${VAR}` from `.env`. A change made only in `.env` rolls forward; a broken
//! service rolls back to the last good revision with the volume's data intact.

mod common;
use common::agent::Agent;
use common::docker::{self, available, clear_managed, ensure_image, http_get, IMAGE, LOCK};
use common::git::{free_port, Upstream};

use std::time::Duration;

fn compose(backend_pre: &str) -> String {
    format!(
        r#"name: shop
x-web: &web
  image: {IMAGE}
  pull_policy: never
  stop_grace_period: 1s
services:
  db:
    <<: *web
    command: ["sh", "-c", "mkdir -p /data && ( [ -f /data/rows ] || echo row-1 > /data/rows ) && exec httpd -f -p 5432 -h /data"]
    volumes: ["dbdata:/data"]
    networks: [back]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5432/rows"]
      interval: 1s
      retries: 20
  backend:
    <<: *web
    environment:
      GREETING: ${{GREETING}}
    secrets: [db_password]
    depends_on:
      db: {{ condition: service_healthy }}
    networks: [back, front]
    command: ["sh", "-c", "{backend_pre} mkdir -p /www && echo \"$$GREETING $$(cat /run/secrets/db_password) $$(wget -q -O- http://db:5432/rows)\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
  frontend:
    <<: *web
    environment:
      GREETING: ${{GREETING}}
    depends_on: [backend]
    networks: [front]
    ports: ["127.0.0.1:${{PORT}}:8080"]
    command: ["sh", "-c", "mkdir -p /www && until wget -q -O /www/index.html http://backend:8080/; do sleep 0.2; done && exec httpd -f -p 8080 -h /www"]
    x-driftless:
      health:
        - http: {{ url: "http://127.0.0.1:${{PORT}}/", body_contains: "${{GREETING}}" }}
          timeout: 20s
networks:
  back: {{}}
  front: {{}}
volumes:
  dbdata: {{}}
secrets:
  db_password:
    file: ./db_password.txt
"#
    )
}

#[test]
fn a_compose_stack_deploys_rolls_forward_on_an_env_change_and_rolls_back_with_its_data() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !available() {
        return;
    }
    ensure_image();
    clear_managed();
    let port = free_port();
    let up = Upstream::new();
    let env = |greeting: &str| format!("GREETING={greeting}\nPORT={port}\n");
    let c1 = up.commit(
        &[
            ("hosts/e2e/compose.yaml", &compose("")),
            ("hosts/e2e/.env", &env("hello")),
            ("hosts/e2e/db_password.txt", "s3cret\n"),
        ],
        "v1",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(90));
    assert_eq!(s["applied_revision"], c1.as_str());
    let page = http_get(port);
    assert!(page.contains("hello s3cret row-1"), "{page}");
    let names: Vec<&str> = s["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{s}");
    assert_eq!(docker::label("db", "driftless.managed"), "true");
    assert_eq!(
        docker::docker(&["volume", "inspect", "-f", "{{index .Labels \"driftless.managed\"}}", "shop_dbdata"]).1,
        "true"
    );
    assert!(
        docker::docker(&["network", "inspect", "shop_back"]).0 == 0
            && docker::docker(&["network", "inspect", "shop_front"]).0 == 0
    );
    // The frontend is not on the database's network.
    let front_nets = docker::docker(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "frontend"]).1;
    assert!(front_nets.contains("shop_front") && !front_nets.contains("shop_back"), "{front_nets}");
    // The database writes a row into its volume.
    docker::docker(&["exec", "db", "sh", "-c", "echo row-2 >> /data/rows"]);
    let db_id = docker::container_id("db");

    // A change only in .env: backend and frontend roll forward, the database is untouched.
    let c2 = up.commit(&[("hosts/e2e/.env", &env("bonjour"))], "greeting in .env");
    let d = agent.ctl(&["diff"]);
    assert_eq!(d.code, 2, "changes pending: {}", d.stdout);
    assert!(d.stdout.contains("backend") && d.stdout.contains("frontend") && !d.stdout.contains("db "), "{}", d.stdout);
    agent.sync(0);
    let s = agent.status();
    assert_eq!(s["applied_revision"], c2.as_str(), "{s}");
    assert!(http_get(port).contains("bonjour s3cret row-1"), "{}", http_get(port));
    assert_eq!(docker::container_id("db"), db_id, "the database was not replaced");

    // A broken backend: rolled back to c2, the volume's data intact.
    up.commit(
        &[("hosts/e2e/compose.yaml", &compose("echo 'cannot reach the payment service' >&2; exit 3;"))],
        "broken",
    );
    let r = agent.sync(1);
    assert!(r.stdout.contains("rolled back to"), "{}", r.stdout);
    let s = agent.status();
    assert_eq!(s["phase"], "RolledBack");
    assert_eq!(s["applied_revision"], c2.as_str());
    assert!(http_get(port).contains("bonjour"), "the last good revision serves");
    let rows = docker::docker(&["run", "--rm", "-v", "shop_dbdata:/data", IMAGE, "cat", "/data/rows"]).1;
    assert_eq!(rows, "row-1\nrow-2", "the volume's data is intact");
    let h: serde_json::Value = serde_json::from_str(&agent.ctl(&["history", "--json"]).stdout).unwrap();
    assert!(
        h[0]["diagnostics"].to_string().contains("cannot reach the payment service"),
        "the backend's stderr is in the history: {}",
        h[0]
    );
    clear_managed();
    docker::docker(&["volume", "rm", "shop_dbdata"]);
    docker::docker(&["network", "rm", "shop_back", "shop_front"]);
}

/// What compose shares is shared, on the real engine (issue 35, differences 1 and 5): one
/// relative data folder bound by two services is one folder of the host — what `writer`
/// writes there, `reader` reads — and `${VAR}` in an `env_file` is resolved from the `.env`
/// beside the compose file, as compose-go's `GetEnvFromFile` resolves it; an `env_file`
/// with `required: false` that is not there (in the repository or on the host) is skipped;
/// `configs` from a repository file are mounted read-only where compose mounts them.
#[test]
fn one_data_folder_for_every_service_that_binds_it_and_env_files_see_the_dotenv() {
    let Some(_g) = docker::setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let compose = format!(
        r#"services:
  writer:
    image: {IMAGE}
    pull_policy: never
    stop_grace_period: 1s
    volumes: ["./data:/data"]
    command: ["sh", "-c", "echo written-by-writer > /data/note && exec sleep 3600"]
  reader:
    image: {IMAGE}
    pull_policy: never
    stop_grace_period: 1s
    depends_on: [writer]
    volumes: ["./data:/data"]
    env_file: [app.env, {{ path: ./local.env, required: false }}, {{ path: /nonexistent/driftless.env, required: false }}]
    configs: [motd, {{ source: motd, target: /etc/motd.d/hello }}]
    ports: ["127.0.0.1:${{PORT}}:8080"]
    command: ["sh", "-c", "mkdir -p /www && until [ -f /data/note ]; do sleep 0.2; done; echo \"$$(cat /data/note) $$GREETING\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    x-driftless:
      health:
        - http: {{ url: "http://127.0.0.1:${{PORT}}/", body_contains: "written-by-writer" }}
          timeout: 20s
configs:
  motd: {{ file: ./motd.txt }}
"#
    );
    let c1 = up.commit(
        &[
            ("hosts/e2e/compose.yaml", &compose),
            ("hosts/e2e/.env", &format!("WHO=world\nPORT={port}\n")),
            ("hosts/e2e/app.env", "GREETING=\"hello ${WHO}\"\n"),
            ("hosts/e2e/motd.txt", "a config from the repository\n"),
        ],
        "v1",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(90));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert!(http_get(port).ends_with("\r\n\r\nwritten-by-writer hello world\n"), "{}", http_get(port));
    // configs: mounted read-only at /<name>, or at their target (compose-spec 08-configs.md).
    for at in ["/motd", "/etc/motd.d/hello"] {
        assert_eq!(docker::docker(&["exec", "reader", "cat", at]).1, "a config from the repository", "{at}");
    }
    assert_ne!(docker::docker(&["exec", "reader", "sh", "-c", "echo x > /motd"]).0, 0, "read-only");
    let shared = agent.state_dir().join("files/_shared/hosts/e2e/data/note");
    assert_eq!(std::fs::read_to_string(&shared).unwrap_or_default(), "written-by-writer\n", "{}", shared.display());
    // A change in the .env reaches the env file's value: the reader is replaced, the writer
    // (no env_file) is not.
    let writer = docker::container_id("writer");
    up.commit(&[("hosts/e2e/.env", &format!("WHO=there\nPORT={port}\n"))], "who in .env");
    agent.sync(0);
    assert!(http_get(port).ends_with("\r\n\r\nwritten-by-writer hello there\n"), "{}", http_get(port));
    assert_eq!(docker::container_id("writer"), writer, "the writer was not replaced");
    clear_managed();
}

/// `include` on the real engine (issue 35): the included file's relative bind is its own
/// folder's, its `.env` is its own, its network and service are the includer's to use, and
/// the project is the includer's.
#[test]
fn an_included_compose_file_runs_with_its_own_folder_and_env() {
    let Some(_g) = docker::setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let main = format!(
        r#"name: inc
include:
  - db/compose.yaml
services:
  web:
    image: {IMAGE}
    pull_policy: never
    stop_grace_period: 1s
    depends_on: {{ db: {{ condition: service_started }} }}
    networks: [back]
    ports: ["127.0.0.1:${{PORT}}:8080"]
    command: ["sh", "-c", "mkdir -p /www && until wget -q -O /www/index.html http://db:5432/rows; do sleep 0.2; done && exec httpd -f -p 8080 -h /www"]
    x-driftless:
      health:
        - http: {{ url: "http://127.0.0.1:${{PORT}}/", body_contains: "row from db" }}
          timeout: 20s
"#
    );
    let db = "services:\n  db:\n    image: ${DB_IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    volumes: [\"./seed:/seed:ro\"]\n    networks: [back]\n    command: [\"sh\", \"-c\", \"exec httpd -f -p 5432 -h /seed\"]\nnetworks:\n  back: {}\n";
    let c1 = up.commit(
        &[
            ("hosts/e2e/compose.yaml", &main),
            ("hosts/e2e/.env", &format!("PORT={port}\n")),
            ("hosts/e2e/db/compose.yaml", db),
            ("hosts/e2e/db/.env", &format!("DB_IMAGE={IMAGE}\n")),
            ("hosts/e2e/db/seed/rows", "row from db\n"),
        ],
        "v1",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(90));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert!(http_get(port).ends_with("row from db\n"), "{}", http_get(port));
    let nets = docker::docker(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "db"]).1;
    assert!(nets.contains("inc_back"), "the includer's project: {nets}");
    clear_managed();
    docker::docker(&["network", "rm", "inc_back"]);
}

/// The rest of compose's service keys on the real engine (issue 35): a service built on
/// another file's service (`extends`, whose `label_file` is read from its own folder), a
/// `links` alias that resolves only for the linking container, `post_start` run after each
/// start and `pre_stop` before each stop (what it writes reaches the host), a `post_start`
/// that fails rolling the revision back with the hook's words, and `mac_address` refused
/// before anything is touched on an engine older than API 1.44 (Debian's 1.41).
#[test]
fn extends_links_and_hooks_run_as_compose_runs_them() {
    let Some(_g) = docker::setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let base = format!(
        "services:\n  base:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    label_file: ./team.labels\n"
    );
    let compose = |post: &str, extra: &str| {
        format!(
            r#"name: hooks
services:
  db:
    image: {IMAGE}
    pull_policy: never
    stop_grace_period: 1s
    volumes: ["./seed:/seed:ro"]
    command: ["sh", "-c", "exec httpd -f -p 5432 -h /seed"]
  web:
    extends: {{ file: common/base.yaml, service: base }}
    links: ["db:database"]
    volumes: ["./out:/out"]
    ports: ["127.0.0.1:${{PORT}}:8080"]
    command: ["sh", "-c", "mkdir -p /www && until wget -q -O /www/index.html http://database:5432/rows; do sleep 0.2; done && exec httpd -f -p 8080 -h /www"]
    post_start:
      - command: {post}
    pre_stop:
      - command: ["sh", "-c", "echo stopped-cleanly >> /out/pre-stop"]
{extra}    x-driftless:
      health:
        - http: {{ url: "http://127.0.0.1:${{PORT}}/", body_contains: "row from db" }}
          timeout: 20s
"#
        )
    };
    let ok = r#"["sh", "-c", "echo post-start-ran > /tmp/post"]"#;
    let c1 = up.commit(
        &[
            ("hosts/e2e/compose.yaml", &compose(ok, "")),
            ("hosts/e2e/.env", &format!("PORT={port}\n")),
            ("hosts/e2e/common/base.yaml", &base),
            ("hosts/e2e/common/team.labels", "team=payments\nowner=${team}-oncall\n"),
            ("hosts/e2e/seed/rows", "row from db\n"),
        ],
        "v1",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(90));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert!(http_get(port).ends_with("row from db\n"), "through the link alias: {}", http_get(port));
    assert_eq!(docker::label("web", "owner"), "payments-oncall", "the base's label_file, from its own folder");
    assert_eq!(docker::docker(&["exec", "web", "cat", "/tmp/post"]).1, "post-start-ran");
    // The alias is the linking container's alone (compose's links on a user network).
    assert_ne!(docker::docker(&["exec", "db", "nslookup", "database"]).0, 0, "db does not see the alias");

    // A replace: the old container's pre_stop runs before it stops, and its words reach the host.
    let web = docker::container_id("web");
    let c2 = up.commit(&[("hosts/e2e/compose.yaml", &compose(r#""sh -c 'echo again > /tmp/post'""#, ""))], "v2");
    agent.sync(0);
    assert_ne!(docker::container_id("web"), web, "replaced");
    let out = agent.state_dir().join("files/_shared/hosts/e2e/out/pre-stop");
    assert_eq!(std::fs::read_to_string(&out).unwrap_or_default(), "stopped-cleanly\n", "{}", out.display());

    // A post_start that fails: a verdict, rolled back to v2, its words in the history.
    up.commit(
        &[("hosts/e2e/compose.yaml", &compose(r#"["sh", "-c", "echo 'schema too new' >&2; exit 4"]"#, ""))],
        "bad hook",
    );
    let r = agent.sync(1);
    assert!(r.stdout.contains("rolled back to"), "{}", r.stdout);
    let s = agent.status();
    assert_eq!(s["applied_revision"], c2.as_str());
    let h = agent.ctl(&["history", "-n", "1", "--json"]).stdout;
    assert!(h.contains("post_start[0]") && h.contains("exited with status 4") && h.contains("schema too new"), "{h}");
    assert!(http_get(port).ends_with("row from db\n"), "the last good revision serves");

    // mac_address on an engine older than API 1.44: refused, nothing touched.
    let (_, api) = docker::docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    let minor: u32 = api.trim().split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
    let web = docker::container_id("web");
    up.commit(&[("hosts/e2e/compose.yaml", &compose(ok, "    mac_address: 02:42:ac:11:00:42\n"))], "mac");
    if minor < 44 {
        agent.sync(1);
        let s = agent.status();
        assert_eq!(s["phase"], "Failed", "{s}");
        assert!(s["message"].as_str().unwrap_or("").contains("mac_address 02:42:ac:11:00:42"), "{s}");
        assert_eq!(docker::container_id("web"), web, "nothing was touched");
    } else {
        agent.sync(0);
        let mac = docker::docker(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "web"]).1;
        assert!(mac.contains("02:42:ac:11:00:42"), "{mac}");
    }
    clear_managed();
    docker::docker(&["network", "rm", "hooks_default"]);
}
