//! Docker hosts as they really are, end to end on the real engine: the full Container spec
//! read back with `docker inspect`; a oneshot migration before the app that waits for it, a
//! named volume created and labelled; a container that dies at start, whose stderr line
//! reaches the history's diagnostics and `agentctl history --show`; an image built from the
//! repository (reused while its context is unchanged, a failed build a verdict); and a
//! private registry (Debian's `docker-registry` with htpasswd on 127.0.0.1) pulled with
//! `docker login`'s credentials, refused without them as a fault, and with `registries:`;
//! a build `FROM` an image in that registry; and a later wave naming an image the registry
//! does not have, found before any running container is touched (PRODUCT.md behaviour 8).
//! Compose on the real engine: internal networks, `restart: true` dependents, secrets from
//! the `.env`, replicas, and a `compose.override.yaml` merged into what runs.

mod common;
use common::agent::Agent;
use common::docker::{self, clear_managed, setup, IMAGE};
use common::git::{free_port, Upstream};
use common::registry::{open_registry_on, registry};

use std::process::Command;
use std::time::Duration;

fn inspect(name: &str, format: &str) -> String {
    docker::docker(&["inspect", "-f", format, name]).1
}

fn history(agent: &Agent) -> serde_json::Value {
    serde_json::from_str(&agent.ctl(&["history", "--json"]).stdout).unwrap()
}

#[test]
fn the_full_container_spec_reads_back_with_docker_inspect() {
    let Some(_g) = setup() else { return };
    let up = Upstream::new();
    let spec = format!(
        r#"apiVersion: driftless/v1
kind: Container
metadata: {{ name: full }}
spec:
  image: {IMAGE}
  pull: never
  command: ["sh", "-c", "exec sleep 3600"]
  labels: {{ traefik.enable: "true", team: ops }}
  user: "1000:1000"
  working_dir: /tmp
  hostname: full-host
  extra_hosts: ["db.internal:10.1.2.3"]
  dns: ["10.0.0.53"]
  dns_search: [corp.example]
  dns_opt: ["ndots:2"]
  domainname: corp.example
  cap_add: [NET_ADMIN]
  cap_drop: [MKNOD]
  read_only: true
  tmpfs: ["/tmp:size=16m"]
  init: true
  sysctls: {{ net.core.somaxconn: 1024 }}
  ulimits: {{ nofile: {{ soft: 1024, hard: 2048 }} }}
  shm_size: 32m
  memory: 64m
  cpus: 0.5
  pids_limit: 100
  logging: {{ driver: json-file, options: {{ max-size: 1m }} }}
  healthcheck: {{ test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3, start_period: 1s, start_interval: 1s }}
  stop_signal: SIGQUIT
  ipc: shareable
  security_opt: ["no-new-privileges:true"]
  group_add: ["10"]
  expose: ["9000"]
  networks: [{{ name: driftless-e2e-front, aliases: [full-alias] }}]
  volumes: ["driftless-e2e-data:/data"]
  secrets: [{{ name: api_key, source: secrets/api_key.txt }}]
  stop_timeout: 1s
"#
    );
    // A second container for the keys the first cannot carry at once: privileged, a device,
    // and another container's network and IPC namespaces.
    let sidecar = format!(
        "---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: sidecar }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  devices: [\"/dev/null:/dev/xnull:rw\"]\n  network_mode: \"container:full\"\n  ipc: \"container:full\"\n  depends_on: [full]\n  stop_timeout: 1s\n"
    );
    let spec = format!("{spec}{sidecar}");
    up.commit(&[("hosts/e2e/full.yaml", &spec), ("secrets/api_key.txt", "s3cret\n")], "full spec");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["resources"][0]["health"], "healthy", "gated by its healthcheck: {s}");
    // healthcheck.start_interval: passed to an engine of API 1.44 and later, and named as
    // ignored in `status` by an older one (Debian's docker.io 20.10 speaks 1.41).
    let api = docker::docker(&["version", "--format", "{{.Server.APIVersion}}"]).1;
    let minor: u32 = api.trim().strip_prefix("1.").and_then(|m| m.parse().ok()).unwrap_or(0);
    if minor < 44 {
        let detail = s["resources"][0]["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("healthcheck.start_interval ignored (it needs API 1.44")
                && detail.contains("this engine speaks API 1."),
            "{s}"
        );
    } else {
        assert_eq!(inspect("full", "{{.Config.Healthcheck.StartInterval}}"), "1s");
    }
    let checks: &[(&str, &str)] = &[
        ("{{index .Config.Labels \"traefik.enable\"}}", "true"),
        ("{{index .Config.Labels \"team\"}}", "ops"),
        ("{{.Config.User}}", "1000:1000"),
        ("{{.Config.WorkingDir}}", "/tmp"),
        ("{{.Config.Hostname}}", "full-host"),
        ("{{json .HostConfig.ExtraHosts}}", "[\"db.internal:10.1.2.3\"]"),
        ("{{json .HostConfig.Dns}}", "[\"10.0.0.53\"]"),
        ("{{json .HostConfig.DnsSearch}}", "[\"corp.example\"]"),
        ("{{json .HostConfig.DnsOptions}}", "[\"ndots:2\"]"),
        ("{{.Config.Domainname}}", "corp.example"),
        ("{{json .HostConfig.CapAdd}}", "[\"NET_ADMIN\"]"),
        ("{{json .HostConfig.CapDrop}}", "[\"MKNOD\"]"),
        ("{{.HostConfig.ReadonlyRootfs}}", "true"),
        ("{{json .HostConfig.Tmpfs}}", "{\"/tmp\":\"size=16m\"}"),
        ("{{.HostConfig.Init}}", "true"),
        ("{{json .HostConfig.Sysctls}}", "{\"net.core.somaxconn\":\"1024\"}"),
        ("{{json .HostConfig.Ulimits}}", "[{\"Name\":\"nofile\",\"Hard\":2048,\"Soft\":1024}]"),
        ("{{.HostConfig.ShmSize}}", "33554432"),
        ("{{.HostConfig.Memory}}", "67108864"),
        ("{{.HostConfig.NanoCpus}}", "500000000"),
        ("{{.HostConfig.PidsLimit}}", "100"),
        ("{{.HostConfig.LogConfig.Type}}", "json-file"),
        ("{{json .HostConfig.LogConfig.Config}}", "{\"max-size\":\"1m\"}"),
        ("{{json .Config.Healthcheck.Test}}", "[\"CMD\",\"true\"]"),
        ("{{.Config.Healthcheck.Interval}}", "1s"),
        ("{{.Config.Healthcheck.Retries}}", "3"),
        ("{{.Config.StopSignal}}", "SIGQUIT"),
        ("{{json .HostConfig.SecurityOpt}}", "[\"no-new-privileges:true\"]"),
        ("{{json .HostConfig.GroupAdd}}", "[\"10\"]"),
        ("{{json .Config.ExposedPorts}}", "{\"9000/tcp\":{}}"),
        ("{{.HostConfig.NetworkMode}}", "driftless-e2e-front"),
        ("{{.HostConfig.IpcMode}}", "shareable"),
        ("{{json (index .NetworkSettings.Networks \"driftless-e2e-front\").Aliases}}", "full-alias"),
    ];
    let mut wrong = Vec::new();
    for (format, want) in checks {
        let got = inspect("full", format);
        if !got.contains(want) {
            wrong.push(format!("{format}: got {got:?}, want {want:?}"));
        }
    }
    for (format, want) in [
        (
            "{{json .HostConfig.Devices}}",
            "\"PathOnHost\":\"/dev/null\",\"PathInContainer\":\"/dev/xnull\",\"CgroupPermissions\":\"rw\"",
        ),
        ("{{.HostConfig.NetworkMode}}", "container:"),
        ("{{.HostConfig.IpcMode}}", "container:"),
    ] {
        let got = inspect("sidecar", format);
        if !got.contains(want) {
            wrong.push(format!("sidecar {format}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "docker inspect disagrees:\n{}", wrong.join("\n"));
    assert_eq!(docker::docker(&["exec", "full", "cat", "/run/secrets/api_key"]).1, "s3cret");
    assert_eq!(
        docker::docker(&["volume", "inspect", "-f", "{{index .Labels \"driftless.managed\"}}", "driftless-e2e-data"]).1,
        "true"
    );
    assert_eq!(
        docker::docker(&["network", "inspect", "-f", "{{index .Labels \"driftless.managed\"}}", "driftless-e2e-front"])
            .1,
        "true"
    );

    // The network goes when nothing uses it any more; the volume stays.
    let plain = format!("apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: full }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  stop_timeout: 1s\n");
    up.commit(&[("hosts/e2e/full.yaml", &plain)], "plain");
    agent.sync(0);
    assert_ne!(
        docker::docker(&["network", "inspect", "driftless-e2e-front"]).0,
        0,
        "an unused managed network is removed"
    );
    assert_eq!(docker::docker(&["volume", "inspect", "driftless-e2e-data"]).0, 0, "volumes are never removed");
    clear_managed();
    docker::docker(&["volume", "rm", "driftless-e2e-data"]);
}

#[test]
fn a_oneshot_migration_runs_first_and_a_dying_container_is_diagnosed() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let state = |web_pre: &str, migration: &str| {
        format!(
            r#"apiVersion: driftless/v1
kind: Container
metadata: {{ name: migrate }}
spec:
  image: {IMAGE}
  pull: never
  oneshot: true
  command: ["sh", "-c", "echo {migration} > /data/schema && echo migrated"]
  volumes: ["driftless-e2e-db:/data"]
---
apiVersion: driftless/v1
kind: Container
metadata: {{ name: web }}
spec:
  image: {IMAGE}
  pull: never
  command: ["sh", "-c", "{web_pre} mkdir -p /www && cp /data/schema /www/index.html && exec httpd -f -p 8080 -h /www"]
  ports: ["127.0.0.1:{port}:8080"]
  volumes: ["driftless-e2e-db:/data"]
  stop_timeout: 1s
  depends_on: [{{ name: migrate, condition: completed }}]
  health:
    - http: {{ url: "http://127.0.0.1:{port}/", body_contains: "{migration}" }}
      timeout: 10s
"#
        )
    };
    let c1 = up.commit(&[("hosts/e2e/app.yaml", &state("", "v1"))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert_eq!(inspect("migrate", "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
    let migrate_id = docker::container_id("migrate");
    // Not re-run when its spec is unchanged (and an exited oneshot is not drift).
    let r = agent.sync(0);
    assert!(!r.stdout.contains("oneshot migrate: started"), "{}", r.stdout);
    assert_eq!(docker::container_id("migrate"), migrate_id);

    // The app dies at start with a line on stderr: rolled back, and the line is in the history.
    let c2 = up.commit(
        &[("hosts/e2e/app.yaml", &state("echo 'FATAL: cannot open /etc/app.conf' >&2; exit 3;", "v2"))],
        "v2 broken",
    );
    let r = agent.sync(1);
    assert!(r.stdout.contains("rolled back to"), "{}", r.stdout);
    let h = history(&agent);
    assert_eq!(h[0]["result"], "rolled_back");
    let diags = h[0]["diagnostics"].as_array().expect("diagnostics");
    let web = diags.iter().find(|d| d["name"] == "web").unwrap_or_else(|| panic!("no diagnostics for web: {h}"));
    assert_eq!(web["kind"], "Container");
    assert!(
        web["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("FATAL: cannot open /etc/app.conf")),
        "the stderr line: {web}"
    );
    assert!(web["exit_code"] == 3 || web["state"].as_str().unwrap().starts_with("restarting"), "{web}");
    assert_eq!(web["oom_killed"], false);
    let show = agent.ctl(&["history", "--show", &c2[..12]]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.contains("result:    rolled_back"), "{}", show.stdout);
    assert!(show.stdout.contains("| FATAL: cannot open /etc/app.conf"), "{}", show.stdout);
    eprintln!("agentctl history --show {}:\n{}", &c2[..12], show.stdout);
    // The migration of v2 ran (and the data of the volume was kept through the revert).
    assert_eq!(docker::docker(&["run", "--rm", "-v", "driftless-e2e-db:/data", IMAGE, "cat", "/data/schema"]).1, "v1");

    // A oneshot that fails fails the revision before the app is touched.
    let web_id = docker::container_id("web");
    up.commit(
        &[(
            "hosts/e2e/app.yaml",
            &state("", "v3").replace("&& echo migrated", "&& echo 'migration failed' >&2 && exit 5"),
        )],
        "v3",
    );
    agent.sync(1);
    let h = history(&agent);
    assert!(h[0]["message"].as_str().unwrap().contains("oneshot container migrate exited with code 5"), "{h}");
    assert!(h[0]["diagnostics"].as_array().unwrap().iter().any(|d| d["name"] == "migrate"), "{h}");
    assert_eq!(docker::container_id("web"), web_id, "the app was not touched");
    clear_managed();
    docker::docker(&["volume", "rm", "driftless-e2e-db"]);
}

#[test]
fn an_image_built_from_the_repository_is_reused_while_its_context_is_unchanged() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let state = format!(
        r#"apiVersion: driftless/v1
kind: Container
metadata: {{ name: site }}
spec:
  build: {{ context: site, args: {{ GREETING: hello }} }}
  ports: ["127.0.0.1:{port}:8080"]
  stop_timeout: 1s
  health:
    - http: {{ url: "http://127.0.0.1:{port}/", body_contains: "hello from the build" }}
      timeout: 10s
"#
    );
    let dockerfile = format!(
        "FROM {IMAGE}\nARG GREETING\nRUN mkdir -p /www && echo \"$GREETING from the build\" > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
    );
    up.commit(&[("hosts/e2e/site.yaml", &state), ("site/Dockerfile", &dockerfile)], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(120));
    let image = inspect("site", "{{.Config.Image}}");
    assert!(image.starts_with("driftless-build/site:"), "{image}");
    let image_id = inspect("site", "{{.Image}}");
    let h = history(&agent);
    assert_eq!(h[0]["result"], "applied");

    // A change outside the context: no rebuild, same image, same container.
    let id = docker::container_id("site");
    up.commit(&[("README.md", "docs only\n")], "docs");
    let r = agent.sync(0);
    assert!(!r.stdout.contains("Step 1/"), "no build: {}", r.stdout);
    assert_eq!(docker::container_id("site"), id);
    assert_eq!(inspect("site", "{{.Image}}"), image_id);

    // A failing build is a verdict, whatever its step printed (here words that would read
    // as a network fault): found within one cycle, before anything runs is touched — the
    // revision is failed, the running container is the same one, its output in the
    // diagnostics (PRODUCT.md behaviour 8).
    let id = docker::container_id("site");
    up.commit(
        &[(
            "site/Dockerfile",
            &format!("FROM {IMAGE}\nRUN echo 'compiling assets' && echo 'dial tcp 10.0.0.1:443: connect: connection refused' && exit 7\n"),
        )],
        "broken build",
    );
    let r = agent.sync(1);
    assert!(r.stdout.contains("compiling assets"), "the build streams to sync --wait: {}", r.stdout);
    let h = history(&agent);
    assert_eq!(h[0]["result"], "failed", "{h}");
    assert!(h[0]["message"].as_str().unwrap().contains("before anything was changed"), "{h}");
    let d = &h[0]["diagnostics"][0];
    assert_eq!(d["name"], "site", "{h}");
    assert_eq!(d["state"], "image build failed", "{h}");
    let logs = d["logs"].as_array().unwrap();
    assert!(logs.iter().any(|l| l.as_str().unwrap().contains("compiling assets")), "{d}");
    assert!(logs.iter().any(|l| l.as_str().unwrap().contains("connection refused")), "{d}");
    let s = agent.status();
    assert_eq!(s["phase"], "Failed", "{s}");
    assert_eq!(docker::container_id("site"), id, "the running container was not touched");
    assert_eq!(inspect("site", "{{.Image}}"), image_id, "the last good image runs");

    // A new context that builds: the image the agent built before and nothing uses any more
    // is pruned (prune_images defaults to true); the new one runs.
    let old_tag = image.clone();
    up.commit(&[("site/Dockerfile", &dockerfile.replace("from the build", "from the build, again"))], "v2");
    agent.sync(0);
    assert_ne!(inspect("site", "{{.Config.Image}}"), old_tag);
    assert_ne!(docker::docker(&["image", "inspect", &old_tag]).0, 0, "{old_tag} was pruned\n{}", agent.log_text());
    assert_eq!(docker::docker(&["image", "inspect", IMAGE]).0, 0, "an image the agent did not bring is never pruned");
    clear_managed();
}

/// While a revision bakes (`health.bake`), what its revert would put back stays on the host:
/// the image the previous revision built from its context is not pruned, so a revert within
/// the bake needs no rebuild (the prune is handed each kept resource with its revision).
#[test]
fn the_image_the_previous_revision_built_is_kept_while_the_next_one_bakes() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let up = Upstream::new();
    let state = format!(
        r#"apiVersion: driftless/v1
kind: Container
metadata: {{ name: baked }}
spec:
  build: {{ context: baked }}
  ports: ["127.0.0.1:{port}:8080"]
  stop_timeout: 1s
  health:
    - http: {{ url: "http://127.0.0.1:{port}/", status: 200 }}
      timeout: 10s
"#
    );
    let dockerfile = |text: &str| {
        format!(
            "FROM {IMAGE}\nRUN mkdir -p /www && echo '{text}' > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        )
    };
    up.commit(&[("hosts/e2e/baked.yaml", &state), ("baked/Dockerfile", &dockerfile("v1"))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.set_health("watch_interval: 1s, bake: 1h");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(120));
    let v1_image = inspect("baked", "{{.Config.Image}}");
    assert!(v1_image.starts_with("driftless-build/baked:"), "{v1_image}");
    up.commit(&[("baked/Dockerfile", &dockerfile("v2"))], "v2");
    agent.sync(0);
    let s = agent.status();
    assert!(s["baking_until"].is_string(), "v2 bakes: {s}");
    assert_ne!(inspect("baked", "{{.Config.Image}}"), v1_image, "v2 runs its own build");
    assert_eq!(
        docker::docker(&["image", "inspect", &v1_image]).0,
        0,
        "{v1_image}, which a revert within the bake runs, was kept\n{}",
        agent.log_text()
    );
    clear_managed();
}

fn docker_with(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("docker").arg("--config").arg(config).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// A password-protected registry holding the test image as `<registry>/<path>`, pushed with
/// `docker login`'s credentials (kept in the returned folder, a `DOCKER_CONFIG`) and removed
/// locally, so that using it means pulling it. Also the registry's `host:port`.
fn private_registry_with(
    user: &str,
    password: &str,
    path: &str,
) -> (common::registry::Registry, tempfile::TempDir, String) {
    let reg = registry(user, password);
    let host = format!("127.0.0.1:{}", reg.port);
    let login = tempfile::tempdir().unwrap();
    let (code, out) = docker_with(login.path(), &["login", &host, "-u", user, "-p", password]);
    assert_eq!(code, 0, "docker login: {out}");
    let image = format!("{host}/{path}");
    docker::docker(&["tag", IMAGE, &image]);
    let (code, out) = docker_with(login.path(), &["push", &image]);
    assert_eq!(code, 0, "docker push: {out}");
    docker::docker(&["rmi", &image]);
    (reg, login, host)
}

/// A container `app` of `image` that sleeps; `keys` are more spec lines (`  pull: never\n`).
fn sleeping_app(image: &str, keys: &str) -> String {
    format!("apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: app }}\nspec:\n  image: {image}\n{keys}  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  stop_timeout: 1s\n")
}

#[test]
fn a_private_registry_is_pulled_with_docker_logins_credentials() {
    let Some(_g) = setup() else { return };
    // Pushed without a tag (so :latest), then removed locally: the agent must pull it.
    let (_reg, login, host) = private_registry_with("deployer", "pa55word", "team/app");
    let image = format!("{host}/team/app");

    let state = |img: &str| sleeping_app(img, "");
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/app.yaml", &state(&image))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start_with(&[("DOCKER_CONFIG", login.path().to_str().unwrap())]);
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert_eq!(inspect("app", "{{.Config.Image}}"), format!("{image}:latest"), "no tag means :latest");
    agent.kill9();

    // Without credentials: a fault naming the registry, nothing failed.
    docker::docker(&["rmi", "-f", &format!("{image}:latest")]);
    clear_managed();
    let mut anon = Agent::configure(&up.file_url(), "{ branch: main }", "");
    let empty = tempfile::tempdir().unwrap();
    anon.start_with(&[("DOCKER_CONFIG", empty.path().to_str().unwrap())]);
    let s = anon.wait_phase("Degraded", Duration::from_secs(60));
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains(&format!("registry {host} refused")), "{msg}");
    assert!(msg.contains("docker login"), "says what to do: {msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    anon.kill9();

    // `registries:` in the agent config is enough on its own.
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), "pa55word\n").unwrap();
    let mut cfg = Agent::configure(
        &up.file_url(),
        "{ branch: main }",
        &format!(
            "registries:\n  - {{ host: \"{host}\", username: deployer, password_file: {} }}\n",
            pw.path().display()
        ),
    );
    cfg.start_with(&[("DOCKER_CONFIG", empty.path().to_str().unwrap())]);
    cfg.wait_phase("Synced", Duration::from_secs(60));
    clear_managed();
    docker::docker(&["rmi", "-f", &format!("{image}:latest")]);
}

#[test]
fn containers_of_one_wave_share_one_new_network() {
    let Some(_g) = setup() else { return };
    let up = Upstream::new();
    let docs: Vec<String> = (0..8)
        .map(|i| format!("apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: peer-{i} }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  networks: [driftless-e2e-shared]\n  stop_timeout: 1s\n"))
        .collect();
    up.commit(&[("hosts/e2e/peers.yaml", &docs.join("---\n"))], "eight peers");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let nets = docker::docker(&["network", "ls", "-q", "--filter", "name=^driftless-e2e-shared$"]).1;
    assert_eq!(nets.lines().count(), 1, "one network, not one per racing create: {nets}");
    clear_managed();
    docker::docker(&["network", "rm", "driftless-e2e-shared"]);
}

/// A revision whose second wave names an image the registry does not have: every image is
/// fetched before anything runs is touched, so the first wave's container is not replaced
/// either (same container ids); the revision is failed naming the image; the next good
/// commit applies.
#[test]
fn an_image_the_registry_lacks_in_a_later_wave_changes_no_running_container() {
    let Some(_g) = setup() else { return };
    let data = tempfile::tempdir().unwrap();
    let reg = open_registry_on(free_port(), data.path());
    let host = format!("127.0.0.1:{}", reg.port);
    let db_image = format!("{host}/team/db:1");
    docker::docker(&["tag", IMAGE, &db_image]);
    let (code, out) = docker::docker(&["push", &db_image]);
    assert_eq!(code, 0, "docker push: {out}");
    let missing = format!("{host}/team/web:404");
    let state = |db_cmd: &str, web_image: &str| {
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: db }}\nspec:\n  image: {db_image}\n  command: [\"sh\", \"-c\", \"{db_cmd}\"]\n  stop_timeout: 1s\n---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {web_image}\n  depends_on: [db]\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  stop_timeout: 1s\n"
        )
    };
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/app.yaml", &state("exec sleep 3600", IMAGE))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    let (db_id, web_id) = (docker::container_id("db"), docker::container_id("web"));

    // db changes (the first wave), web names an image the registry does not have (the
    // second): nothing is touched.
    let c2 = up.commit(&[("hosts/e2e/app.yaml", &state("exec sleep 3601", &missing))], "web: a tag never pushed");
    let r = agent.sync(1);
    assert!(r.stdout.contains("fetching what 2 resource(s)"), "{}", r.stdout);
    let h = history(&agent);
    assert_eq!(h[0]["result"], "failed", "{h}");
    assert_eq!(h[0]["revision"], c2.as_str());
    let msg = h[0]["message"].as_str().unwrap();
    assert!(msg.contains(&missing) && msg.contains("before anything was changed"), "{msg}");
    let d = h[0]["diagnostics"].as_array().unwrap();
    assert!(d.iter().any(|d| d["name"] == "web" && d["state"] == "image pull failed"), "{h}");
    assert_eq!(docker::container_id("db"), db_id, "the first wave was not replaced");
    assert_eq!(docker::container_id("web"), web_id);
    let s = agent.status();
    assert_eq!(s["phase"], "Failed", "{s}");
    assert_eq!(s["applied_revision"], c1.as_str());
    assert_eq!(s["failed_revisions"], serde_json::json!([c2]));

    // The next good commit applies.
    let c3 = up.commit(&[("hosts/e2e/app.yaml", &state("exec sleep 3602", IMAGE))], "web: back to a real image");
    agent.sync(0);
    let s = agent.status();
    assert_eq!(s["phase"], "Synced", "{s}");
    assert_eq!(s["applied_revision"], c3.as_str());
    assert_ne!(docker::container_id("db"), db_id, "db's change is applied now");
    clear_managed();
    docker::docker(&["rmi", &db_image]);
}

/// `build:` `FROM` an image in a password-protected registry: without credentials the
/// registry's refusal is a fault (nothing failed); with the host's `docker login` the
/// build gets the credentials the pulls use, and succeeds.
#[test]
fn a_build_from_a_private_registry_uses_docker_logins_credentials() {
    let Some(_g) = setup() else { return };
    let (_reg, login, host) = private_registry_with("builder", "s3cret", "base/busybox:1");
    let base = format!("{host}/base/busybox:1");

    let state = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: built }\nspec:\n  build: { context: app }\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  stop_timeout: 1s\n";
    let up = Upstream::new();
    let c1 = up.commit(
        &[
            ("hosts/e2e/built.yaml", state),
            ("app/Dockerfile", &format!("FROM {base}\nRUN echo built-on-the-host > /built\n")),
        ],
        "v1",
    );

    // Without credentials: a fault naming what to do, nothing marked failed.
    let empty = tempfile::tempdir().unwrap();
    let mut anon = Agent::configure(&up.file_url(), "{ branch: main }", "");
    anon.start_with(&[("DOCKER_CONFIG", empty.path().to_str().unwrap())]);
    let s = anon.wait_phase("Degraded", Duration::from_secs(60));
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains("docker login"), "says what to do: {msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    anon.kill9();

    // With `docker login`'s credentials: built and running.
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start_with(&[("DOCKER_CONFIG", login.path().to_str().unwrap())]);
    let s = agent.wait_phase("Synced", Duration::from_secs(120));
    assert_eq!(s["applied_revision"], c1.as_str());
    let (code, out) = docker::docker(&["exec", "built", "cat", "/built"]);
    assert_eq!((code, out.trim()), (0, "built-on-the-host"));
    let image = inspect("built", "{{.Config.Image}}");
    clear_managed();
    docker::docker(&["rmi", "-f", &image, &base]);
}

/// A compose file's external volume (the legacy `external: { name }` form) is the existing
/// volume of that name, and is never created: while it is missing the revision waits as a
/// fault with nothing touched; once it exists the stack runs on it.
#[test]
fn an_external_volume_is_used_never_created() {
    let Some(_g) = setup() else { return };
    let volume = "driftless-e2e-legacy";
    docker::docker(&["volume", "rm", "-f", volume]);
    let compose = format!(
        "services:\n  db:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    volumes: [\"data:/data\"]\nvolumes:\n  data:\n    external:\n      name: {volume}\n"
    );
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/compose.yaml", &compose)], "db on a legacy external volume");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Degraded", Duration::from_secs(60));
    let msg = s["message"].as_str().unwrap_or_default();
    assert!(msg.contains(&format!("the volume {volume} is external")), "{msg}");
    assert_eq!(s["failed_revisions"], serde_json::json!([]));
    assert_ne!(docker::docker(&["volume", "inspect", volume]).0, 0, "never created by the agent");
    assert!(docker::container_id("db").is_empty() || docker::docker(&["inspect", "db"]).0 != 0, "nothing started");

    docker::docker(&["volume", "create", volume]);
    agent.sync(0);
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    let mounts = inspect("db", "{{range .Mounts}}{{.Name}} {{end}}");
    assert!(mounts.split_whitespace().any(|m| m == volume), "{mounts}");
    clear_managed();
    docker::docker(&["volume", "rm", "-f", volume]);
}

/// A compose network with `internal: true` is created internal by the engine.
#[test]
fn an_internal_compose_network_is_created_internal() {
    let Some(_g) = setup() else { return };
    let compose = format!(
        "name: dle2e\nservices:\n  db:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    networks: [back]\nnetworks:\n  back:\n    internal: true\n"
    );
    docker::docker(&["network", "rm", "dle2e_back"]);
    let up = Upstream::new();
    up.commit(&[("hosts/e2e/compose.yaml", &compose)], "an internal network");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let (code, internal) = docker::docker(&["network", "inspect", "-f", "{{.Internal}}", "dle2e_back"]);
    assert_eq!((code, internal.trim()), (0, "true"));
    clear_managed();
    docker::docker(&["network", "rm", "dle2e_back"]);
}

/// `depends_on: { db: { restart: true } }`: when db is replaced, web (unchanged) is
/// restarted by the engine after db's wave — the same container, started again.
#[test]
fn a_dependent_with_restart_true_is_restarted_when_its_dependency_is_replaced() {
    let Some(_g) = setup() else { return };
    let compose = |db_cmd: &str| {
        format!(
            "services:\n  db:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"{db_cmd}\"]\n  web:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    depends_on:\n      db: {{ condition: service_started, restart: true }}\n"
        )
    };
    let up = Upstream::new();
    up.commit(&[("hosts/e2e/compose.yaml", &compose("exec sleep 3600"))], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let (web_id, started) = (docker::container_id("web"), inspect("web", "{{.State.StartedAt}}"));
    let db_id = docker::container_id("db");

    up.commit(&[("hosts/e2e/compose.yaml", &compose("exec sleep 3601"))], "db changes");
    let r = agent.sync(0);
    assert!(r.stdout.contains("restart Container/web"), "{}", r.stdout);
    assert_ne!(docker::container_id("db"), db_id, "db replaced");
    assert_eq!(docker::container_id("web"), web_id, "web is the same container");
    assert_ne!(inspect("web", "{{.State.StartedAt}}"), started, "web started again");
    assert_eq!(inspect("web", "{{.State.Running}}"), "true");
    clear_managed();
}

/// A compose secret from `environment:` is that variable of the `.env` beside the file,
/// mounted at /run/secrets/<name> with nothing else of the file.
#[test]
fn a_compose_secret_from_environment_reaches_the_container() {
    let Some(_g) = setup() else { return };
    let compose = format!(
        "services:\n  app:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    secrets: [db_password]\nsecrets:\n  db_password:\n    environment: DB_PASSWORD\n"
    );
    let up = Upstream::new();
    up.commit(
        &[("hosts/e2e/compose.yaml", &compose), ("hosts/e2e/.env", "OTHER=x\nDB_PASSWORD=\"s3cret\"  # rotate me\n")],
        "v1",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let (code, out) = docker::docker(&["exec", "app", "cat", "/run/secrets/db_password"]);
    assert_eq!((code, out.as_str()), (0, "s3cret"));
    clear_managed();
}

/// The `tcp` health probe against a real container: a revision whose port answers passes
/// its gate; one whose server never listens fails it and is rolled back.
#[test]
fn the_tcp_probe_gates_a_real_container() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let state = |listen: bool| {
        let cmd = if listen { "mkdir -p /www && exec httpd -f -p 8080 -h /www" } else { "exec sleep 3600" };
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: svc }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"{cmd}\"]\n  ports: [\"127.0.0.1:{port}:8080\"]\n  stop_timeout: 1s\n  health:\n    - tcp: {{ address: \"127.0.0.1:{port}\" }}\n      timeout: 5s\n"
        )
    };
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/svc.yaml", &state(true))], "listens");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    let c2 = up.commit(&[("hosts/e2e/svc.yaml", &state(false))], "never listens");
    agent.sync(1);
    let s = agent.status();
    assert_eq!(s["phase"], "RolledBack", "{s}");
    assert_eq!(s["failed_revisions"], serde_json::json!([c2]));
    assert!(s["message"].as_str().unwrap_or_default().contains(&format!("127.0.0.1:{port}")), "{s}");
    clear_managed();
}

/// The `systemd` health probe against a real unit: a revision gated on an active transient
/// unit passes; one gated on a unit that is not active is rolled back, naming its state.
///
/// Ignored by default because it needs systemd as PID 1 (`/run/systemd/system`), which the
/// container this project's CI runs in does not have; `systemctl` cannot reach a manager
/// that is not running, and a stand-in would test nothing. `scripts/test` runs it on a host
/// where systemd is PID 1 (it adds `--run-ignored all` there); the probe's logic is unit
/// tested in agent/src/health.rs.
#[test]
#[ignore = "needs systemd as PID 1; scripts/test runs it where /run/systemd/system exists"]
fn the_systemd_probe_gates_on_a_real_unit() {
    if !std::path::Path::new("/run/systemd/system").exists()
        && !common::missing("systemd is not PID 1", "run this test on a host booted with systemd")
    {
        return;
    }
    let Some(_g) = setup() else { return };
    let unit = format!("driftless-e2e-probe-{}.service", std::process::id());
    let out = Command::new("systemd-run").args(["--unit", &unit, "sleep", "600"]).output().unwrap();
    assert!(out.status.success(), "systemd-run: {}", String::from_utf8_lossy(&out.stderr));
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("systemctl").args(["stop", &self.0]).status();
        }
    }
    let _stop = Stop(unit.clone());
    let state = |unit: &str, v: u32| {
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: svc }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"exec sleep {v}\"]\n  stop_timeout: 1s\n  health:\n    - systemd: [{unit}]\n      timeout: 5s\n"
        )
    };
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/svc.yaml", &state(&unit, 3600))], "gated on an active unit");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    let c2 =
        up.commit(&[("hosts/e2e/svc.yaml", &state("driftless-e2e-absent.service", 3601))], "gated on an absent unit");
    agent.sync(1);
    let s = agent.status();
    assert_eq!(s["phase"], "RolledBack", "{s}");
    assert_eq!(s["failed_revisions"], serde_json::json!([c2]));
    assert!(s["message"].as_str().unwrap_or_default().contains("inactive"), "{s}");
    clear_managed();
}

/// `deploy.replicas` on the real engine: three containers `web-1` … `web-3`, a client that
/// reaches them by the service's name (the engine's DNS answers with each replica), and a
/// scale-down that removes `web-3` only.
#[test]
fn compose_replicas_run_n_containers_reachable_by_the_service_name() {
    let Some(_g) = setup() else { return };
    let compose = |n: u32| {
        format!(
            "name: reps\nservices:\n  web:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    deploy: {{ replicas: {n} }}\n    command: [\"sh\", \"-c\", \"mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n  client:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    depends_on: [web]\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n"
        )
    };
    let up = Upstream::new();
    let c1 = up.commit(&[("hosts/e2e/compose.yaml", &compose(3))], "three replicas");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    for i in 1..=3 {
        assert!(docker::instances(&format!("web-{i}")).iter().any(|(_, running)| *running), "web-{i} runs");
    }
    // The service's name resolves to the replicas (each is aliased `web` on the project's
    // network); a few requests reach more than one of them.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (code, out) = docker::docker(&["exec", "client", "wget", "-q", "-O-", "http://web:8080/"]);
        assert_eq!(code, 0, "{out}");
        seen.insert(out.trim().to_string());
        if seen.len() > 1 {
            break;
        }
    }
    let ips = docker::docker(&["exec", "client", "nslookup", "web"]).1;
    eprintln!("web resolves to:\n{ips}\nanswered by {seen:?}");
    assert!(ips.matches("Address").count() >= 4, "three replicas behind the name `web`: {ips}");

    let web1 = docker::container_id("web-1");
    up.commit(&[("hosts/e2e/compose.yaml", &compose(2))], "two replicas");
    agent.sync(0);
    assert!(docker::instances("web-3").is_empty(), "web-3 removed");
    assert_eq!(docker::container_id("web-1"), web1, "web-1 untouched by the scale-down");
    assert!(docker::instances("web-2").iter().any(|(_, running)| *running));
    clear_managed();
}

/// `compose.override.yaml` beside `compose.yaml` is merged as `docker compose up` merges it:
/// the running container has the override's image tag, its environment merged key by key,
/// its command replaced and both files' ports. A change to the override alone replaces the
/// container it touches and no other; `!reset` takes a port away.
#[test]
fn a_compose_override_is_merged_into_what_runs() {
    let Some(_g) = setup() else { return };
    let (p1, p2) = (free_port(), free_port());
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    ports: [\"127.0.0.1:{p1}:8080\"]\n    environment:\n      MODE: base\n      KEEP: kept\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  db:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n"
    );
    let over = |mode: &str, ports: &str| {
        format!(
            "services:\n  web:\n    ports: {ports}\n    environment:\n      MODE: {mode}\n    command: [\"sh\", \"-c\", \"echo $$MODE > /tmp/index.html && exec httpd -f -p 8080 -h /tmp\"]\n"
        )
    };
    let up = Upstream::new();
    let c1 = up.commit(
        &[
            ("hosts/e2e/compose.yaml", &compose),
            ("hosts/e2e/compose.override.yaml", &over("override", &format!("[\"127.0.0.1:{p2}:8080\"]"))),
        ],
        "a compose file and its override",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str(), "{s}");
    let env = inspect("web", "{{json .Config.Env}}");
    assert!(env.contains("MODE=override") && env.contains("KEEP=kept"), "{env}");
    for p in [p1, p2] {
        let body = body_at(p);
        assert_eq!(body.trim(), "override", "port {p}");
    }
    let db = docker::container_id("db");

    // The override alone changes: web is replaced, db is not; `!reset` drops the ports.
    up.commit(&[("hosts/e2e/compose.override.yaml", &over("again", "!reset []"))], "override changes");
    agent.sync(0);
    assert!(inspect("web", "{{json .Config.Env}}").contains("MODE=again"));
    let bindings = inspect("web", "{{json .HostConfig.PortBindings}}");
    assert!(!bindings.contains("HostPort"), "ports reset: {bindings}");
    assert_eq!(docker::container_id("db"), db, "db untouched");
    clear_managed();
}

/// The body `GET /` on 127.0.0.1:`port` answers, waiting (20 s at most) for an answer.
fn body_at(port: u16) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = docker::http_get(port);
        if out.starts_with("HTTP/") {
            return out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "nothing answers on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two agents on one engine, hosts `e2e` and `other` (PRODUCT.md "Names and places"): each
/// labels what it makes with its host and touches nothing else — not when it replaces,
/// removes or prunes networks; a name the other's container holds is a fault naming that
/// host. A managed container of an older agent (no `driftless.host`) is left alone, since it
/// may be anyone's, until a desired state names it.
#[test]
fn agents_with_different_hosts_share_one_engine_and_touch_only_their_own() {
    let Some(_g) = setup() else { return };
    let svc = |name: &str, v: &str| {
        format!(
            "---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: {name} }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  env: {{ V: \"{v}\" }}\n  networks: [{name}-net]\n  stop_timeout: 1s\n"
        )
    };
    for n in ["alpha-net", "beta-net", "gamma-net"] {
        docker::docker(&["network", "rm", n]);
    }
    docker::docker(&["rm", "-f", "legacy"]);
    let (code, out) = docker::docker(&[
        "run",
        "-d",
        "--name",
        "legacy",
        "--label",
        "driftless.managed=true",
        "--label",
        "driftless.resource=legacy",
        IMAGE,
        "sleep",
        "3600",
    ]);
    assert_eq!(code, 0, "{out}");
    let legacy = docker::container_id("legacy");

    let up_a = Upstream::new();
    up_a.commit(&[("hosts/e2e/a.yaml", &svc("alpha", "1"))], "alpha 1");
    let up_b = Upstream::new();
    up_b.commit(&[("hosts/e2e/b.yaml", &svc("beta", "1"))], "beta 1");
    let mut a = Agent::configure(&up_a.file_url(), "{ branch: main }", "");
    let mut b = Agent::configure(&up_b.file_url(), "{ branch: main }", "");
    let text = std::fs::read_to_string(&b.config).unwrap().replacen("host: e2e\n", "host: other\n", 1);
    std::fs::write(&b.config, text).unwrap();
    a.start();
    a.wait_phase("Synced", Duration::from_secs(60));
    b.start();
    b.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(docker::label("alpha", "driftless.host"), "e2e");
    assert_eq!(docker::label("beta", "driftless.host"), "other");
    let net_host = |n: &str| docker::docker(&["network", "inspect", "-f", "{{index .Labels \"driftless.host\"}}", n]);
    assert_eq!(net_host("beta-net"), (0, "other".to_string()));
    let beta = docker::container_id("beta");

    // e2e replaces alpha, then swaps it for gamma (alpha removed, its network pruned): beta,
    // its network and the older agent's container are untouched.
    up_a.commit(&[("hosts/e2e/a.yaml", &svc("alpha", "2"))], "alpha 2");
    a.sync(0);
    up_a.commit(&[("hosts/e2e/a.yaml", &svc("gamma", "1"))], "gamma instead of alpha");
    a.sync(0);
    assert!(docker::instances("alpha").is_empty(), "alpha removed by its own agent");
    assert_ne!(net_host("alpha-net").0, 0, "alpha-net pruned by its own agent");
    assert_eq!(docker::container_id("beta"), beta, "the other agent's container is untouched");
    assert_eq!(docker::instances("beta"), [("beta".to_string(), true)]);
    assert_eq!(net_host("beta-net"), (0, "other".to_string()), "the other agent's network is kept");
    assert_eq!(docker::container_id("legacy"), legacy, "an older agent's container is left alone");

    // e2e wants a container named beta: a fault naming the host that has it; nothing moves.
    up_a.commit(&[("hosts/e2e/a.yaml", &format!("{}{}", svc("gamma", "1"), svc("beta", "9")))], "beta wanted");
    a.ctl(&["sync", "--wait"]);
    let s = a.status();
    assert_eq!(s["phase"], "Degraded", "{s}");
    let msg = s["message"].as_str().unwrap_or_default();
    assert!(msg.contains("a container named beta exists and belongs to the agent of host other"), "{msg}");
    assert_eq!(docker::container_id("beta"), beta);
    assert_eq!(s["failed_revisions"], serde_json::json!([]), "a fault, not a verdict: {s}");

    // Named by a desired state, the older agent's container is adopted (replaced as its own).
    up_b.commit(&[("hosts/e2e/b.yaml", &format!("{}{}", svc("beta", "1"), svc("legacy", "1")))], "adopt legacy");
    b.sync(0);
    assert_ne!(docker::container_id("legacy"), legacy, "adopted: replaced by its spec");
    assert_eq!(docker::label("legacy", "driftless.host"), "other");
    drop(a);
    drop(b);
    clear_managed();
    for n in ["alpha-net", "beta-net", "gamma-net", "legacy-net"] {
        docker::docker(&["network", "rm", n]);
    }
}

#[test]
fn an_agent_applies_its_own_host_overlay_after_the_environment_s() {
    let Some(_g) = setup() else { return };
    let doc = format!(
        "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: shard }}\nspec:\n  image: {IMAGE}\n  pull: never\n  command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n  env: {{ SHARD: \"0\", LEVEL: info }}\n  stop_timeout: 1s\nenvironments:\n  production:\n    spec: {{ env: {{ LEVEL: warn, SHARD: \"9\" }} }}\nhosts:\n  e2e:\n    spec: {{ env: {{ SHARD: \"3\" }} }}\n  other:\n    spec: {{ env: {{ SHARD: \"4\" }} }}\n"
    );
    let up = Upstream::new();
    up.commit(&[("hosts/e2e/shard.yaml", &doc)], "one folder for every shard");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "environment: production\n");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let (_, env) = docker::docker(&["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "shard"]);
    assert!(env.lines().any(|l| l == "SHARD=3"), "the host's overlay, merged last: {env}");
    assert!(env.lines().any(|l| l == "LEVEL=warn"), "the environment's overlay: {env}");
    clear_managed();
}

/// A compose service with both `image` and `build` (issue 35, difference 6), on the real
/// engine and a local registry standing in for the public one: as compose-spec's build.md
/// says, the image is pulled and built only when the registry does not have it; with
/// `pull_policy: build` it is always built.
#[test]
fn image_and_build_pull_first_and_build_only_what_the_registry_lacks() {
    let Some(_g) = setup() else { return };
    let data = tempfile::tempdir().unwrap();
    let reg = open_registry_on(free_port(), data.path());
    let host = format!("127.0.0.1:{}", reg.port);
    let pushed = format!("{host}/team/pushed:1");
    let absent = format!("{host}/team/absent:1");
    docker::docker(&["tag", IMAGE, &pushed]);
    let (code, out) = docker::docker(&["push", &pushed]);
    assert_eq!(code, 0, "docker push: {out}");
    docker::docker(&["rmi", &pushed]); // so that using it means pulling it
    let service = |name: &str, image: &str, extra: &str| {
        format!(
            "  {name}:\n    image: {image}\n    build: ./ctx\n{extra}    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n"
        )
    };
    let compose = format!(
        "services:\n{}{}{}",
        service("pulled", &pushed, ""),
        service("built", &absent, ""),
        service("always", &format!("{host}/team/always:1"), "    pull_policy: build\n"),
    );
    let up = Upstream::new();
    let c1 = up.commit(
        &[
            ("hosts/e2e/compose.yaml", &compose),
            ("hosts/e2e/ctx/Dockerfile", &format!("FROM {IMAGE}\nRUN echo built-here > /marker\n")),
        ],
        "v1",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(120));
    assert_eq!(s["applied_revision"], c1.as_str());
    let marker = |c: &str| docker::docker(&["exec", c, "cat", "/marker"]);
    assert_ne!(marker("pulled").0, 0, "the registry has it: pulled, not built");
    assert_eq!(marker("built").1, "built-here", "the registry lacks it: built");
    assert_eq!(marker("always").1, "built-here", "pull_policy: build: built");
    let log = agent.log_text();
    assert!(log.contains(&format!("build built: {absent} cannot be pulled")), "{log}");
    assert!(!log.contains("build pulled:"), "{log}");
    clear_managed();
    for i in [&pushed, &absent, &format!("{host}/team/always:1")] {
        docker::docker(&["rmi", i]);
    }
}

/// Static addresses on a managed dual-stack network with its own subnets, and a named volume
/// made with the local driver's options (issue 35), on the real engine: compose's
/// `enable_ipv6`, `ipam.config`, `ipv4_address`, `ipv6_address` and `driver_opts` as
/// `docker inspect` reads them back.
#[test]
fn a_subnet_a_static_address_and_a_tmpfs_volume_from_compose() {
    let Some(_g) = setup() else { return };
    let up = Upstream::new();
    let compose = format!(
        "services:\n  dns:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    networks: {{ lan: {{ ipv4_address: 10.253.77.53, ipv6_address: \"fd00:77:53::53\" }} }}\n    volumes: [\"cache:/cache\"]\nnetworks:\n  lan:\n    enable_ipv6: true\n    ipam: {{ config: [{{ subnet: 10.253.77.0/24, gateway: 10.253.77.1 }}, {{ subnet: \"fd00:77:53::/64\" }}] }}\nvolumes:\n  cache: {{ driver_opts: {{ type: tmpfs, device: tmpfs, o: \"size=16m\" }} }}\n"
    );
    let c1 = up.commit(&[("hosts/e2e/compose.yaml", &compose)], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert_eq!(inspect("dns", "{{(index .NetworkSettings.Networks \"e2e_lan\").IPAddress}}"), "10.253.77.53");
    assert_eq!(inspect("dns", "{{(index .NetworkSettings.Networks \"e2e_lan\").GlobalIPv6Address}}"), "fd00:77:53::53");
    assert_eq!(docker::docker(&["network", "inspect", "-f", "{{.EnableIPv6}}", "e2e_lan"]).1, "true");
    let ipam = docker::docker(&["network", "inspect", "-f", "{{json .IPAM.Config}}", "e2e_lan"]).1;
    assert!(ipam.contains("\"Subnet\":\"10.253.77.0/24\"") && ipam.contains("\"Gateway\":\"10.253.77.1\""), "{ipam}");
    let opts = docker::docker(&["volume", "inspect", "-f", "{{json .Options}}", "e2e_cache"]).1;
    assert!(opts.contains("\"type\":\"tmpfs\"") && opts.contains("\"o\":\"size=16m\""), "{opts}");
    let mounts = docker::docker(&["exec", "dns", "grep", " /cache ", "/proc/mounts"]).1;
    assert!(mounts.starts_with("tmpfs "), "{mounts}");
    clear_managed();
    docker::docker(&["network", "rm", "e2e_lan"]);
    docker::docker(&["volume", "rm", "e2e_cache"]);
}

/// Compose keys that are plain engine settings (issue 35: what stays refused is only what
/// the engine cannot do), on the real engine and read back with `docker inspect`: CPU and
/// memory tuning, the OOM killer's preference, the host's PID, UTS and cgroup namespaces,
/// another service's volumes, the OCI runtime, device cgroup rules.
#[test]
fn engine_settings_from_compose_read_back_with_docker_inspect() {
    let Some(_g) = setup() else { return };
    let up = Upstream::new();
    let compose = format!(
        "services:\n  limits:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    volumes: [\"/data\"]\n    cpu_shares: 512\n    cpu_period: 100000\n    cpu_quota: 50000\n    cpuset: \"0\"\n    mem_limit: 64m\n    mem_reservation: 32m\n    memswap_limit: 128m\n    oom_score_adj: 100\n  ns:\n    image: {IMAGE}\n    pull_policy: never\n    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    pid: host\n    uts: host\n    cgroup: host\n    volumes_from: [\"limits:ro\"]\n    runtime: runc\n    device_cgroup_rules: [\"c 1:3 mr\"]\n"
    );
    let c1 = up.commit(&[("hosts/e2e/compose.yaml", &compose)], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    let s = agent.wait_phase("Synced", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    let checks: &[(&str, &str, &str)] = &[
        ("limits", "{{.HostConfig.CpuShares}}", "512"),
        ("limits", "{{.HostConfig.CpuPeriod}}", "100000"),
        ("limits", "{{.HostConfig.CpuQuota}}", "50000"),
        ("limits", "{{.HostConfig.CpusetCpus}}", "0"),
        ("limits", "{{.HostConfig.MemoryReservation}}", "33554432"),
        ("limits", "{{.HostConfig.MemorySwap}}", "134217728"),
        ("limits", "{{.HostConfig.OomScoreAdj}}", "100"),
        ("ns", "{{.HostConfig.PidMode}}", "host"),
        ("ns", "{{.HostConfig.UTSMode}}", "host"),
        ("ns", "{{.HostConfig.CgroupnsMode}}", "host"),
        ("ns", "{{json .HostConfig.VolumesFrom}}", "[\"limits:ro\"]"),
        ("ns", "{{.HostConfig.Runtime}}", "runc"),
        ("ns", "{{json .HostConfig.DeviceCgroupRules}}", "[\"c 1:3 mr\"]"),
    ];
    let wrong: Vec<String> = checks
        .iter()
        .filter_map(|(c, f, want)| {
            let got = inspect(c, f);
            (got != *want).then(|| format!("{c} {f}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // `pid: host`: the host's processes are visible; volumes_from: limits' volume is there.
    assert_eq!(docker::docker(&["exec", "ns", "test", "-d", "/data"]).0, 0);
    clear_managed();
}

/// `sync --wait` shows a pull's progress (PRODUCT.md `agentctl`: "bars on a terminal, one
/// line per step otherwise"): in a pseudo-terminal (`script`, util-linux), one bar redrawn in
/// place that ends full; piped, plain lines with the bytes and layers, and no escape codes.
#[test]
fn a_pull_shows_its_progress_as_a_bar_on_a_terminal_and_as_lines_otherwise() {
    let Some(_g) = setup() else { return };
    let (_reg, login, host) = private_registry_with("deployer", "pa55word", "team/progress");
    let image = format!("{host}/team/progress");
    let app = |tag: &str| sleeping_app(&format!("{image}:{tag}"), "");
    let local = sleeping_app(IMAGE, "  pull: never\n");
    // The registry holds two images, each with a layer of its own (4 MB of random bytes, so
    // there is something to download); neither is on the host.
    for tag in ["latest", "b"] {
        let maker = format!("driftless-e2e-progress-{tag}");
        docker::docker(&["rm", "-f", &maker]);
        let (code, out) =
            docker::docker(&["run", "--name", &maker, IMAGE, "sh", "-c", "head -c 4000000 /dev/urandom > /blob"]);
        assert_eq!(code, 0, "{out}");
        docker::docker(&["commit", &maker, &format!("{image}:{tag}")]);
        docker::docker(&["rm", "-f", &maker]);
        let (code, out) = docker_with(login.path(), &["push", &format!("{image}:{tag}")]);
        assert_eq!(code, 0, "docker push: {out}");
        docker::docker(&["rmi", &format!("{image}:{tag}")]);
    }
    let up = Upstream::new();
    up.commit(&[("hosts/e2e/app.yaml", &local)], "v0: nothing to pull");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start_with(&[("DOCKER_CONFIG", login.path().to_str().unwrap())]);
    agent.wait_phase("Synced", Duration::from_secs(60));

    // On a terminal: a bar, redrawn in place, that ends full.
    up.commit(&[("hosts/e2e/app.yaml", &app("latest"))], "v1: pulled");
    let ctl = format!("{} --config {} sync --wait", env!("CARGO_BIN_EXE_agentctl"), agent.config.display());
    let out = Command::new("script").args(["-qec", &ctl, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let bar = format!("pull {image}:latest [");
    assert!(text.contains(&format!("\r\x1b[2K{bar}")), "a bar redrawn in place: {text:?}\n{}", agent.log_text());
    assert!(text.contains(&format!("{bar}{}]", "#".repeat(24))), "it ends full: {text:?}");

    // Piped: lines, no escape codes.
    up.commit(&[("hosts/e2e/app.yaml", &app("b"))], "v2: pulled");
    let r = agent.sync(0);
    assert!(!r.stdout.contains('\x1b'), "{}", r.stdout);
    let line = r.stdout.lines().find(|l| l.starts_with(&format!("pull {image}:b: "))).unwrap_or_default();
    assert!(line.contains(" MiB of ") && line.contains(" layers"), "{}", r.stdout);
    agent.kill9();
    clear_managed();
    for tag in ["latest", "b"] {
        docker::docker(&["rmi", "-f", &format!("{image}:{tag}")]);
    }
}
