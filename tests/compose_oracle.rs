//! A second oracle for whole compose projects: Debian's `docker-compose` (1.29) merges a
//! `compose.yaml` with its `compose.override.yaml` and prints the result (`docker-compose
//! config`); `agentctl convert` must mean the same for every service — image, command,
//! entrypoint, environment, labels, published ports, mount targets, dependencies, networks,
//! DNS, capabilities. Only cases where 1.29 and the specification agree are here (1.29 reads
//! neither `!reset`/`!override` nor newer keys such as `depends_on.restart`); compose-go's own
//! merge cases are the first oracle (`desired-state-schema/src/compose/merge.rs`).

mod common;
use common::{agentctl, missing, run, write_files};

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

/// What one service means, in a form both outputs reduce to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Meaning {
    image: String,
    command: Vec<String>,
    entrypoint: Vec<String>,
    environment: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    ports: BTreeSet<String>,
    mounts: BTreeSet<String>,
    depends_on: BTreeSet<String>,
    dns: Vec<String>,
    cap_add: BTreeSet<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(s)) => s.iter().map(text).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn map(v: Option<&Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Mapping(m)) => m.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|e| {
                let e = text(e);
                match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e, String::new()),
                }
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The targets of `SOURCE:TARGET[:MODE]` volume entries.
fn mount_targets(v: Option<&Value>) -> BTreeSet<String> {
    strings(v).iter().map(|v| v.split(':').nth(1).unwrap_or_default().to_string()).collect()
}

/// `docker-compose config`'s view: service → meaning.
fn compose_config(dir: &std::path::Path) -> Option<BTreeMap<String, Meaning>> {
    let out = match Command::new("docker-compose").arg("config").current_dir(dir).output() {
        Ok(o) => o,
        Err(_) => {
            missing("docker-compose (Debian's, 1.29) is not installed", "run .ci/setup (it installs docker-compose)");
            return None;
        }
    };
    assert!(out.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let mut services = BTreeMap::new();
    for (name, s) in doc["services"].as_mapping().unwrap() {
        let ports = s
            .get("ports")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|p| text(p).trim_end_matches("/tcp").to_string())
            .collect();
        let mounts = mount_targets(s.get("volumes"));
        let depends_on = match s.get("depends_on") {
            Some(Value::Mapping(m)) => m.keys().map(text).collect(),
            other => strings(other).into_iter().collect(),
        };
        services.insert(
            text(name),
            Meaning {
                image: s.get("image").map(text).unwrap_or_default(),
                command: strings(s.get("command")),
                entrypoint: strings(s.get("entrypoint")),
                environment: map(s.get("environment")),
                labels: map(s.get("labels")),
                ports,
                mounts,
                depends_on,
                dns: strings(s.get("dns")),
                cap_add: strings(s.get("cap_add")).into_iter().collect(),
            },
        );
    }
    Some(services)
}

/// `agentctl convert`'s view: container → meaning.
fn converted(dir: &std::path::Path) -> BTreeMap<String, Meaning> {
    let r = run(agentctl().arg("convert").arg(dir.join("compose.yaml")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut services = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&r.stdout) {
        let doc = Value::deserialize(doc).unwrap();
        let spec = &doc["spec"];
        let mut mounts = mount_targets(spec.get("volumes"));
        for f in spec.get("files").and_then(Value::as_sequence).into_iter().flatten() {
            mounts.insert(text(&f["target"]));
        }
        let depends_on = spec
            .get("depends_on")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|d| if d.is_string() { text(d) } else { text(&d["name"]) })
            .collect();
        let labels = map(spec.get("labels"));
        services.insert(
            text(&doc["metadata"]["name"]),
            Meaning {
                image: spec.get("image").map(text).unwrap_or_default(),
                command: strings(spec.get("command")),
                entrypoint: strings(spec.get("entrypoint")),
                environment: map(spec.get("env")),
                labels,
                ports: strings(spec.get("ports")).into_iter().collect(),
                mounts,
                depends_on,
                dns: strings(spec.get("dns")),
                cap_add: strings(spec.get("cap_add")).into_iter().collect(),
            },
        );
    }
    services
}

/// (name, compose.yaml, compose.override.yaml): each exercises merge rules both implement.
const CASES: &[(&str, &str, &str)] = &[
    (
        "scalars replaced, command replaced, environment and labels merged, ports appended, volumes by target",
        "services:\n  web:\n    image: nginx:1.27\n    ports: [\"127.0.0.1:8080:80\"]\n    environment: { MODE: base, KEEP: \"yes\" }\n    command: [nginx, -g, daemon off;]\n    volumes: [\"./a:/data\", \"v:/v\"]\n    labels: { a: \"1\" }\nvolumes: { v: {} }\n",
        "services:\n  web:\n    image: nginx:1.28\n    ports: [\"127.0.0.1:8443:443\"]\n    environment: [MODE=override]\n    command: [nginx-debug]\n    volumes: [\"./b:/data\"]\n    labels: [b=2]\n",
    ),
    (
        "a service only the override has, and dependencies in both syntaxes",
        "services:\n  app:\n    image: app:1\n    depends_on: [db]\n  db:\n    image: postgres:16\n",
        "services:\n  app:\n    depends_on:\n      cache: { condition: service_started }\n  cache:\n    image: redis:7\n",
    ),
    (
        "entrypoint replaced, dns and cap_add appended, the same port once",
        "services:\n  worker:\n    image: w:1\n    entrypoint: [/bin/a]\n    dns: [10.0.0.1]\n    cap_add: [NET_ADMIN]\n    ports: [\"127.0.0.1:9000:9000\"]\n",
        "services:\n  worker:\n    entrypoint: [/bin/b, --x]\n    dns: [10.0.0.2]\n    cap_add: [SYS_TIME]\n    ports: [\"127.0.0.1:9000:9000\"]\n",
    ),
    (
        "interpolation from the .env in both files",
        "services:\n  web:\n    image: \"web:${TAG}\"\n    environment: { URL: \"https://${DOMAIN}/\" }\n",
        "services:\n  web:\n    environment: { EXTRA: \"${DOMAIN:-none}\" }\n    labels: { tag: \"${TAG}\" }\n",
    ),
];

#[test]
fn docker_compose_config_and_convert_mean_the_same_merged_project() {
    let dir = tempfile::tempdir().unwrap();
    let mut differ = Vec::new();
    for (i, (name, base, over)) in CASES.iter().enumerate() {
        let project = dir.path().join(format!("p{i}"));
        write_files(
            &project,
            &[("compose.yaml", base), ("compose.override.yaml", over), (".env", "TAG=2.1\nDOMAIN=example.org\n")],
        );
        let Some(want) = compose_config(&project) else { return };
        assert!(!want.is_empty() && want.values().all(|m| !m.image.is_empty()), "{name}: {want:#?}");
        let got = converted(&project);
        if got != want {
            differ.push(format!("{name}:\n docker-compose config: {want:#?}\n agentctl convert: {got:#?}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // Not vacuous: the first case's merged environment and ports are both files' own.
    let first = converted(&dir.path().join("p0"));
    assert_eq!(first["web"].environment.len(), 2, "{first:#?}");
    assert_eq!(first["web"].ports.len(), 2, "{first:#?}");
    assert_eq!(first["web"].mounts, BTreeSet::from(["/data".to_string(), "/v".to_string()]), "{first:#?}");
}
