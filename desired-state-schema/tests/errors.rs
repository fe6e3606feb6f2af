//! Every class of desired-state error, with the exact message an operator sees. The expected
//! output is the snapshot `tests/snapshots/errors.txt`: a change of wording is a visible diff.
//! Run with `UPDATE_SNAPSHOTS=1` to rewrite it after an intended change, then review the diff.

use desired_state_schema::{load, SourceFile};

const WEB: &str = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec:\n  image: web:1\n";

/// A case: its name, the environment to build, and its files as (path, text).
type Case = (&'static str, Option<&'static str>, Vec<(&'static str, String)>);

fn cases() -> Vec<Case> {
    let c = |name: &str, spec: &str| {
        format!("apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: {name} }}\nspec:\n{spec}")
    };
    vec![
        ("yaml syntax", None, vec![("a.yaml", "apiVersion: driftless/v1\nkind: Container\n  metadata: x\n".into())]),
        ("tab indentation", None, vec![("a.yaml", "apiVersion: driftless/v1\nspec:\n\timage: x\n".into())]),
        ("duplicate key", None, vec![("a.yaml", format!("{WEB}  image: web:2\n"))]),
        ("unknown top-level key", None, vec![("a.yaml", format!("{WEB}labels: {{}}\n"))]),
        ("unknown spec key with a typo", None, vec![("a.yaml", c("web", "  imgae: web:1\n"))]),
        ("unknown kind", None, vec![("a.yaml", "apiVersion: driftless/v1\nkind: Containr\nmetadata: { name: web }\nspec: {}\n".into())]),
        ("unknown apiVersion", None, vec![("a.yaml", "apiVersion: driftless/v2\nkind: Container\nmetadata: { name: web }\nspec: {}\n".into())]),
        ("missing metadata", None, vec![("a.yaml", "apiVersion: driftless/v1\nkind: Container\nspec: { image: x }\n".into())]),
        ("missing image", None, vec![("a.yaml", c("web", "  pull: never\n"))]),
        ("wrong type", None, vec![("a.yaml", c("web", "  image: web:1\n  env: [A=1]\n"))]),
        ("a port written as a number", None, vec![("a.yaml", c("web", "  image: web:1\n  ports: [8080]\n"))]),
        ("a port out of range", None, vec![("a.yaml", c("web", "  image: web:1\n  ports: [\"70000:80\"]\n"))]),
        ("a whole number too large", None, vec![("a.yaml", c("web", "  image: web:1\n  pids_limit: 99999999999999999999999\n"))]),
        ("someone else's yaml in the folder", None, vec![("a.yaml", "name: grafana\nitems: [1, 2]\n".into())]),
        ("an agent config in the folder", None, vec![("agent.yaml", "host: web-1\nsource: { url: \"file:///srv/state\", ref: { branch: main } }\n".into())]),
        ("a required compose variable unset, said once", None, vec![("compose.yaml", "services:\n  web:\n    image: \"nginx:${TAG:?set TAG}\"\n".into())]),
        ("unknown enum value", None, vec![("a.yaml", c("web", "  image: web:1\n  pull: sometimes\n"))]),
        ("bad restart policy", None, vec![("a.yaml", c("web", "  image: web:1\n  restart: on-failure:x\n"))]),
        ("container name the engine refuses", None, vec![("a.yaml", c("_web/1", "  image: web:1\n"))]),
        ("container name of one character", None, vec![("a.yaml", c("w", "  image: web:1\n"))]),
        (
            "duplicate name across files",
            None,
            vec![("a.yaml", c("web", "  image: web:1\n")), ("b/web.yml", c("web", "  image: web:2\n"))],
        ),
        ("depends_on unknown name", None, vec![("a.yaml", c("web", "  image: web:1\n  depends_on: [dbb]\n") + "---\n" + &c("db", "  image: db:1\n"))]),
        ("depends_on itself", None, vec![("a.yaml", c("web", "  image: web:1\n  depends_on: [web]\n"))]),
        (
            "depends_on conditions that the target cannot meet",
            None,
            vec![(
                "a.yaml",
                c("web", "  image: web:1\n  depends_on: [{ name: db, condition: healthy }, { name: db, condition: completed }]\n")
                    + "---\n"
                    + &c("db", "  image: db:1\n"),
            )],
        ),
        (
            "compose-style keys with bad values",
            None,
            vec![(
                "a.yaml",
                c(
                    "web",
                    "  image: web:1\n  working_dir: app\n  extra_hosts: [db]\n  cap_add: [net_admin]\n  memory: lots\n  cpus: -1\n  stop_signal: QUIT\n  network_mode: bridge\n  networks: [front]\n  labels: { driftless.resource: x }\n  healthcheck: { test: [\"curl\"] }\n  ulimits: { nofile: { soft: 10, hard: 5 } }\n  secrets: [{ name: key, source: ../key.txt }]\n  oneshot: true\n  health: [{ tcp: { address: \"127.0.0.1:1\" } }]\n",
                ),
            )],
        ),
        ("unknown depends_on condition", None, vec![("a.yaml", c("web", "  image: web:1\n  depends_on: [{ name: db, condition: ready }]\n"))]),
        ("neither image nor build", None, vec![("a.yaml", c("web", "  build: { context: /abs }\n"))]),
        (
            "depends_on cycle",
            None,
            vec![(
                "a.yaml",
                c("aa", "  image: a:1\n  depends_on: [bb]\n") + "---\n" + &c("bb", "  image: b:1\n  depends_on: [cc]\n") + "---\n" + &c("cc", "  image: c:1\n  depends_on: [aa]\n"),
            )],
        ),
        ("bad image reference", None, vec![("a.yaml", c("web", "  image: Registry.example.com/Web:1.0\n"))]),
        ("bad digest", None, vec![("a.yaml", c("web", "  image: web@sha256:abc\n"))]),
        ("port out of range", None, vec![("a.yaml", c("web", "  image: web:1\n  ports: [\"127.0.0.1:8080:80000\"]\n"))]),
        ("port syntax", None, vec![("a.yaml", c("web", "  image: web:1\n  ports: [\"http:80\", \"80/icmp\"]\n"))]),
        (
            "host port published twice",
            None,
            vec![("a.yaml", c("a", "  image: a:1\n  ports: [\"127.0.0.1:8080:80\"]\n") + "---\n" + &c("b", "  image: b:1\n  ports: [\"8080:81\"]\n"))],
        ),
        ("volume relative host path", None, vec![("a.yaml", c("web", "  image: web:1\n  volumes: [\"./data:/data\", \"/srv:data\", \"/a:/b:rx\"]\n"))]),
        ("volume target twice", None, vec![("a.yaml", c("web", "  image: web:1\n  volumes: [\"/a:/data\", \"v:/data\"]\n"))]),
        ("env file escaping the repository", None, vec![("a.yaml", c("web", "  image: web:1\n  env_files: [../secrets/web.env]\n"))]),
        ("bad duration", None, vec![("a.yaml", c("web", "  image: web:1\n  health:\n    - tcp: { address: \"127.0.0.1:80\" }\n      timeout: 10 seconds\n"))]),
        ("duration without unit", None, vec![("a.yaml", c("web", "  image: web:1\n  health:\n    - tcp: { address: \"127.0.0.1:80\" }\n      interval: 5\n"))]),
        (
            "health check with no probe or two",
            None,
            vec![("a.yaml", c("web", "  image: web:1\n  health:\n    - timeout: 5s\n    - tcp: { address: \"127.0.0.1:80\" }\n      exec: [\"true\"]\n"))],
        ),
        (
            "health check values",
            None,
            vec![(
                "a.yaml",
                c(
                    "web",
                    "  image: web:1\n  health:\n    - http: { url: \"localhost:8080/\", status: 200 }\n    - tcp: { address: \"127.0.0.1\" }\n    - exec: []\n    - container: false\n      retries: 0\n",
                ),
            )],
        ),
        ("http status out of range", None, vec![("a.yaml", c("web", "  image: web:1\n  health:\n    - http: { url: \"http://127.0.0.1/\", status: 700 }\n"))]),
        (
            "passenger paths",
            None,
            vec![(
                "api.yaml",
                "apiVersion: driftless/v1\nkind: PassengerApp\nmetadata: { name: api }\nspec:\n  app_root: var/www/api\n  source: ../apps/api\n  shared: [app.db, /etc/passwd]\n  backup: [app.db, logs/x.log]\n  keep_releases: 1\n  health:\n    - container: true\n".into(),
            )],
        ),
        (
            "nixos paths",
            None,
            vec![("sys.yaml", "apiVersion: driftless/v1\nkind: NixosSystem\nmetadata: { name: system }\nspec:\n  flake: /etc/nixos\n  profile: nix/var/profiles/system\n".into())],
        ),
        ("nixos action", None, vec![("sys.yaml", "apiVersion: driftless/v1\nkind: NixosSystem\nmetadata: { name: system }\nspec:\n  action: reboot\n".into())]),
        (
            "two NixosSystems",
            None,
            vec![(
                "sys.yaml",
                "apiVersion: driftless/v1\nkind: NixosSystem\nmetadata: { name: a }\nspec: {}\n---\napiVersion: driftless/v1\nkind: NixosSystem\nmetadata: { name: b }\nspec: {}\n".into(),
            )],
        ),
        (
            "error inside an overlay points into the overlay",
            Some("staging"),
            vec![("a.yaml", format!("{WEB}  ports: [\"8080:80\"]\nenvironments:\n  staging:\n    spec:\n      ports: [\"8080:99999\"]\n      pul: never\n"))],
        ),
        (
            "semantic error from an overlay value points into the overlay",
            Some("staging"),
            vec![("a.yaml", format!("{WEB}  ports: [\"8080:80\"]\nenvironments:\n  staging:\n    spec:\n      ports: [\"8080:99999\"]\n"))],
        ),
        (
            "overlay not a mapping",
            Some("staging"),
            vec![("a.yaml", format!("{WEB}environments:\n  staging:\n    spec: [a]\n"))],
        ),
        ("unknown key in an overlay", None, vec![("a.yaml", format!("{WEB}environments:\n  staging:\n    spce: {{}}\n"))]),
        ("no documents", None, vec![("empty.yaml", "# nothing here\n".into())]),
        (
            "a Volume: keep 0, an empty exec, and nothing mounts it",
            None,
            vec![(
                "db.yaml",
                "apiVersion: driftless/v1\nkind: Volume\nmetadata: { name: db-data }\nspec:\n  snapshot: { keep: 0, consistency: { exec: [], restore: [psql] } }\n".to_string()
                    + "---\n"
                    + &c("db", "  image: db:1\n  volumes: [\"db-date:/var/lib/db\"]\n"),
            )],
        ),
        ("a Volume's unknown consistency", None, vec![("db.yaml", "apiVersion: driftless/v1\nkind: Volume\nmetadata: { name: db-data }\nspec:\n  snapshot: { consistency: freeze }\n".into())]),
        ("a Volume without snapshot", None, vec![("db.yaml", "apiVersion: driftless/v1\nkind: Volume\nmetadata: { name: db-data }\nspec: {}\n---\n".to_string() + &c("db", "  image: db:1\n  volumes: [\"db-data:/d\"]\n"))]),
        ("a compose data folder's snapshot", None, vec![("compose.yaml", "services:\n  db:\n    image: db:1\n    volumes:\n      - { type: bind, source: ./data, target: /d, x-driftless: { snapshot: { keep: 0, consistency: stop } } }\n      - { type: volume, source: v, target: /v, x-driftless: { snapshot: {} } }\nvolumes:\n  v: {}\n".into())]),
        ("a compose volume's x-driftless", None, vec![("compose.yaml", "services:\n  db:\n    image: db:1\n    volumes: [data:/d]\nvolumes:\n  data:\n    x-driftless:\n      snapshot: { keep: 0 }\n      backup: true\n".into())]),
        (
            "start-first with a host port and no proxy",
            None,
            vec![("a.yaml", c("web", "  image: web:1\n  update: start-first\n  ports: [\"127.0.0.1:8080:80\"]\n"))],
        ),
        (
            "proxy without hosts or listen, and without start-first",
            None,
            vec![("a.yaml", c("web", "  image: web:1\n  proxy: { port: 80 }\n"))],
        ),
        (
            "proxy with a bad host, listen, path and drain",
            None,
            vec![("a.yaml", c("web", "  image: web:1\n  update: start-first\n  proxy: { hosts: [\"https://App.example.com/\"], listen: \"localhost:8080\", port: 80, path: up, drain: 11m }\n"))],
        ),
        (
            "two containers claim one host and one listen address",
            None,
            vec![(
                "a.yaml",
                c("web", "  image: web:1\n  update: start-first\n  proxy: { hosts: [app.example.com], listen: \"127.0.0.1:8080\", port: 80 }\n")
                    + "---\n"
                    + &c("web2", "  image: web:1\n  update: start-first\n  proxy: { hosts: [app.example.com], listen: \":8080\", port: 80 }\n")
                    + "---\n"
                    + &c("api", "  image: api:1\n  ports: [\"8081:80\"]\n")
                    + "---\n"
                    + &c("api2", "  image: api:1\n  update: start-first\n  proxy: { listen: \"127.0.0.1:8081\", port: 80 }\n"),
            )],
        ),
        (
            "compose update_config and x-driftless.proxy",
            None,
            vec![(
                "compose.yaml",
                "services:\n  web:\n    image: web:1\n    deploy:\n      update_config: { order: start-first, parallelism: 2 }\n    x-driftless:\n      proxy: { listen: \"127.0.0.1:8080\", port: 80, drain: 1h }\n".into(),
            )],
        ),
        (
            "errors in several files are all reported",
            None,
            vec![("a.yaml", c("a", "  image: A\n")), ("b.yaml", "kind: [\n".into()), ("c.yaml", c("c", "  image: c:1\n  ports: [\"0\"]\n"))],
        ),
    ]
}

fn render() -> String {
    let mut out = String::new();
    for (name, env, files) in cases() {
        let files: Vec<SourceFile> = files.into_iter().map(|(p, t)| SourceFile { path: p.into(), text: t }).collect();
        out.push_str(&format!("## {name}{}\n", env.map(|e| format!(" (environment {e})")).unwrap_or_default()));
        match load(&files, env) {
            Ok(_) => out.push_str("(valid)\n"),
            Err(e) => {
                for d in e.diagnostics {
                    out.push_str(&format!("{d}\n"));
                }
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn error_messages_match_snapshot() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/errors.txt");
    let actual = render();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let diff: Vec<String> = actual
            .lines()
            .zip(expected.lines().chain(std::iter::repeat("<missing>")))
            .filter(|(a, e)| a != e)
            .take(10)
            .map(|(a, e)| format!("  expected: {e}\n  actual:   {a}"))
            .collect();
        panic!(
            "error messages differ from {} (rerun with UPDATE_SNAPSHOTS=1 if intended):\n{}",
            path.display(),
            diff.join("\n")
        );
    }
}
