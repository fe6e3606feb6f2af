//! The planning core: desired state + observed state → a plan of steps per resource. Pure: no
//! I/O, no clock, no runtime; table-tested. Every runtime (Docker, Passenger, NixOS) reports
//! what it observes in the same shape, so the core does not change when a runtime is added.
//!
//! A resource's identity is (kind, name); whether it must change is decided by its spec hash
//! (sha256 of the canonical effective spec plus the content of host-side inputs such as
//! `env_files`), like compose's config-hash. A new revision that leaves a spec unchanged
//! leaves its resource alone.

use std::collections::{BTreeMap, HashMap, HashSet};

use desired_state_schema::{Kind, Resource};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The spec hash of a resource: sha256 over its kind, name and canonical spec JSON, then each
/// host-side input (e.g. an env file's path and content digest) in a stable order.
pub fn spec_hash(resource: &Resource, inputs: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(resource.kind.as_str().as_bytes());
    h.update(b"\0");
    h.update(resource.name().as_bytes());
    h.update(b"\0");
    // Serializing typed structs and BTreeMaps gives one canonical form.
    h.update(serde_json::to_vec(&resource.spec).unwrap_or_default());
    for (k, v) in inputs {
        h.update(b"\0");
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// At most this many differences are named per resource; the rest are counted.
const MAX_CHANGES_NAMED: usize = 8;
/// Longer values are cut, so that a changed script or certificate stays one line.
const MAX_VALUE_CHARS: usize = 60;

/// What differs between two specs of one resource, one line each, for people:
/// `env.LOG_LEVEL: INFO → DEBUG`, `image: web:1.4 → web:1.5`, `ports: added 127.0.0.1:9090:90`.
/// Host-side inputs are named, never shown (`secret db_password: content changed`), and so
/// are the values of env variables whose name says they are secret (`…PASSWORD`, `…TOKEN`).
/// Empty when neither the spec nor an input differs.
pub fn spec_changes(
    old: &Resource,
    old_inputs: &BTreeMap<String, String>,
    new: &Resource,
    new_inputs: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let a = serde_json::to_value(&old.spec).unwrap_or_default();
    let b = serde_json::to_value(&new.spec).unwrap_or_default();
    diff_values("", &a, &b, &mut out);
    let spec_image_changed = out.iter().any(|l| l.starts_with("image") || l.starts_with("build"));
    let keys: std::collections::BTreeSet<&String> = old_inputs.keys().chain(new_inputs.keys()).collect();
    for k in keys {
        let (x, y) = (old_inputs.get(k), new_inputs.get(k));
        if x == y || (k == "image_id" && spec_image_changed) {
            continue;
        }
        let what = match (x, y) {
            (None, _) => "added".to_string(),
            (_, None) => "removed".to_string(),
            (Some(x), Some(y)) if k.ends_with("_tree") => format!("{} → {}", short_id(x), short_id(y)),
            _ => "content changed".to_string(),
        };
        out.push(format!("{}: {what}", input_label(k)));
    }
    if out.len() > MAX_CHANGES_NAMED {
        let more = out.len() - MAX_CHANGES_NAMED;
        out.truncate(MAX_CHANGES_NAMED);
        out.push(format!("and {more} more"));
    }
    out
}

/// How a host-side input is named for people (the keys are the drivers' `inputs`).
fn input_label(key: &str) -> String {
    match key.split_once(':') {
        Some(("env_file", p)) => format!("env file {p}"),
        Some(("secret", n)) => format!("secret {n}"),
        Some(("file", p)) => format!("file {p}"),
        _ => match key {
            "image_id" => "image (same reference, new image)".to_string(),
            "build_tree" => "build context".to_string(),
            "source_tree" => "source".to_string(),
            "flake_tree" => "flake".to_string(),
            k => k.replace('_', " "),
        },
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Env variables whose values are not shown, by a word in their name.
fn secret_name(path: &str) -> bool {
    let p = path.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE"].iter().any(|w| p.contains(w))
}

fn diff_values(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    if a == b {
        return;
    }
    let join = |k: &str| -> String {
        let k = if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            k.to_string()
        } else {
            format!("{k:?}")
        };
        if path.is_empty() {
            k
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                diff_values(&join(k), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.iter().chain(y).all(|v| !v.is_object() && !v.is_array()) => {
            // Lists of words (ports, volumes, command): what was added and removed, or the
            // whole list when only its order changed.
            let mut added: Vec<String> = y.iter().filter(|v| !x.contains(v)).map(show).collect();
            let mut removed: Vec<String> = x.iter().filter(|v| !y.contains(v)).map(show).collect();
            // One value changed (a long command line): both sides show where they differ.
            if added.len() == removed.len() {
                for (r, a) in removed.iter_mut().zip(added.iter_mut()) {
                    (*r, *a) = cut_pair(r, a);
                }
            } else {
                added = added.iter().map(|v| cut(v)).collect();
                removed = removed.iter().map(|v| cut(v)).collect();
            }
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("added {}", added.join(", ")));
            }
            if !removed.is_empty() {
                parts.push(format!("removed {}", removed.join(", ")));
            }
            if parts.is_empty() {
                parts.push(format!("{} → {}", cut(&show(a)), cut(&show(b))));
            }
            out.push(format!("{path}: {}", parts.join("; ")));
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let (va, vb) = (x.get(i).unwrap_or(&Value::Null), y.get(i).unwrap_or(&Value::Null));
                diff_values(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ => {
            let hidden = path.starts_with("env.") && secret_name(path);
            if hidden {
                out.push(format!("{path}: changed (value not shown)"));
            } else {
                let (from, to) = cut_pair(&show(a), &show(b));
                out.push(format!("{path}: {from} → {to}"));
            }
        }
    }
}

/// A value for a one-line message: strings bare, nothing as `(unset)`, the rest as JSON.
fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(unset)".to_string(),
        serde_json::Value::String(s) if s.is_empty() => "\"\"".to_string(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// Two values for `a → b`: each cut to `MAX_VALUE_CHARS`, around where they first differ
/// when that is past the cut (two long command lines that differ near their end do not both
/// read `mkdir -p /www && echo …`).
fn cut_pair(a: &str, b: &str) -> (String, String) {
    let (ac, bc): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let same = ac.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    if (ac.len() <= MAX_VALUE_CHARS && bc.len() <= MAX_VALUE_CHARS) || same < MAX_VALUE_CHARS / 2 {
        return (cut(a), cut(b));
    }
    let from = same - MAX_VALUE_CHARS / 4;
    let window = |c: &[char]| {
        let tail: String = c[from..].iter().take(MAX_VALUE_CHARS).collect();
        let more = if c.len() > from + MAX_VALUE_CHARS { "…" } else { "" };
        format!("…{tail}{more}")
    };
    (window(&ac), window(&bc))
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_string();
    }
    let head: String = s.chars().take(MAX_VALUE_CHARS).collect();
    format!("{head}…")
}

/// How a managed resource is running, as far as the plan cares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Present but not running (stopped, exited, created, restarting in a loop).
    NotRunning,
}

/// What a runtime observed of one resource it manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub kind: Kind,
    pub name: String,
    /// The spec hash of the instance that serves the resource.
    pub spec_hash: String,
    /// The revision that instance was applied from.
    pub revision: String,
    pub state: RunState,
    /// Other instances labelled for the same resource (left by a crash mid-replace).
    pub stray_instances: usize,
    /// Running as it should, but something the driver keeps beside it is not (a proxied
    /// container's route in Caddy is missing or points elsewhere): why, and it is repaired.
    pub out_of_place: Option<String>,
    /// Managed but not labelled with any agent's host (made by an agent from before the
    /// `driftless.host` label): this agent adopts it only when its desired state names it,
    /// and otherwise leaves it alone — it may be another agent's on a shared engine.
    pub unclaimed: bool,
}

/// What to do to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not there: create it.
    Create,
    /// There with another spec: replace it.
    Replace,
    /// There with this spec, but stopped or with stray instances: put it right.
    Repair,
    /// Managed but no longer desired: remove it (data volumes are kept).
    Remove,
    /// Up to date, but a dependency it names with `restart: true` is created or replaced:
    /// restart it after that dependency (compose's `depends_on.restart`).
    Restart,
    Unchanged,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub kind: Kind,
    pub name: String,
    pub action: Action,
    /// The spec hash to converge to (empty for `Remove`).
    pub to_hash: String,
    /// Why, for people: `image web:1 -> web:2`-style detail is the driver's; this is the plan's.
    pub reason: String,
}

/// The steps for one desired revision, in the order they run: removals first, then every
/// desired resource in `depends_on` order (unchanged ones included, so the gate knows them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// The steps that change something.
    pub fn changes(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action != Action::Unchanged)
    }

    pub fn is_noop(&self) -> bool {
        self.changes().next().is_none()
    }

    /// One line per change: `replace Container/web (spec changed)`.
    pub fn summary(&self) -> Vec<String> {
        self.changes().map(|s| format!("{} {}/{} ({})", action_word(s.action), s.kind, s.name, s.reason)).collect()
    }
}

pub fn action_word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Replace => "replace",
        Action::Repair => "repair",
        Action::Remove => "remove",
        Action::Restart => "restart",
        Action::Unchanged => "unchanged",
    }
}

/// Plan the way from `observed` to `desired`. `desired` is in dependency order, each with its
/// spec hash; `managed` lists the kinds whose observations are complete (resources of other
/// kinds are never removed, so a runtime that could not be observed loses nothing).
pub fn plan(desired: &[(&Resource, String)], observed: &[Observed], managed: &[Kind]) -> Plan {
    // Indexes keep this linear: a host with a thousand resources plans in well under 20 ms.
    let by_name: HashMap<(Kind, &str), &Observed> = observed.iter().map(|o| ((o.kind, o.name.as_str()), o)).collect();
    let wanted: HashSet<(Kind, &str)> = desired.iter().map(|(r, _)| (r.kind, r.name())).collect();
    let mut steps = Vec::with_capacity(desired.len() + observed.len().saturating_sub(desired.len()));
    let mut orphans: Vec<&Observed> = observed
        .iter()
        .filter(|o| managed.contains(&o.kind))
        .filter(|o| !o.unclaimed)
        .filter(|o| !wanted.contains(&(o.kind, o.name.as_str())))
        .collect();
    orphans.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    for o in orphans {
        steps.push(Step {
            kind: o.kind,
            name: o.name.clone(),
            action: Action::Remove,
            to_hash: String::new(),
            reason: "no longer in the desired state".into(),
        });
    }
    for (r, hash) in desired {
        let seen = by_name.get(&(r.kind, r.name()));
        let (action, reason) = match seen {
            None => (Action::Create, "not present".to_string()),
            Some(o) if &o.spec_hash != hash => (Action::Replace, "spec changed".to_string()),
            Some(o) if o.state != RunState::Running => (Action::Repair, "not running".to_string()),
            Some(o) if o.stray_instances > 0 => {
                (Action::Repair, format!("{} stray instance(s) left from an interrupted apply", o.stray_instances))
            }
            Some(Observed { out_of_place: Some(why), .. }) => (Action::Repair, why.clone()),
            Some(_) => (Action::Unchanged, "up to date".to_string()),
        };
        steps.push(Step { kind: r.kind, name: r.name().to_string(), action, to_hash: hash.clone(), reason });
    }
    // `depends_on: { restart: true }`: a dependent that would stay as it is is restarted when
    // that dependency is created or replaced (compose restarts it after updating the
    // dependency). A restart is not an update: it restarts nothing further.
    let updated: HashSet<String> =
        steps.iter().filter(|s| matches!(s.action, Action::Create | Action::Replace)).map(|s| s.name.clone()).collect();
    if !updated.is_empty() {
        let first_desired = steps.len() - desired.len();
        for (i, (r, _)) in desired.iter().enumerate() {
            let step = &mut steps[first_desired + i];
            if step.action != Action::Unchanged {
                continue;
            }
            if let Some(d) = r.spec.depends_on().iter().find(|d| d.restart && updated.contains(&d.name)) {
                step.action = Action::Restart;
                step.reason = format!("{} is updated (depends_on {}: restart: true)", d.name, d.name);
            }
        }
    }
    Plan { steps }
}

/// The change steps of `plan` in waves that may each run at once: removals first, then
/// creates, replaces and repairs by `depends_on` depth (a step waits only for the changed
/// resources it depends on). Steps of one depth whose kind is `parallel` (containers) share
/// a wave; every other step (a Passenger release, a NixOS switch) runs in a wave of its own,
/// after them.
pub fn waves<'a>(plan: &'a Plan, resources: &[Resource], parallel: &dyn Fn(Kind) -> bool) -> Vec<Vec<&'a Step>> {
    let deps: HashMap<(Kind, &str), &[desired_state_schema::Dependency]> =
        resources.iter().map(|r| ((r.kind, r.name()), r.spec.depends_on())).collect();
    let mut out: Vec<Vec<&Step>> = Vec::new();
    let removals: Vec<&Step> = plan.steps.iter().filter(|s| s.action == Action::Remove).collect();
    if !removals.is_empty() {
        out.push(removals);
    }
    // Depth of each changed resource; the plan lists dependencies first.
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut by_depth: Vec<Vec<&Step>> = Vec::new();
    for s in plan.changes().filter(|s| s.action != Action::Remove) {
        let d = deps
            .get(&(s.kind, s.name.as_str()))
            .map(|ds| ds.iter().filter_map(|d| depth.get(d.name.as_str())).map(|x| x + 1).max().unwrap_or(0))
            .unwrap_or(0);
        depth.insert(s.name.as_str(), d);
        if by_depth.len() <= d {
            by_depth.resize_with(d + 1, Vec::new);
        }
        by_depth[d].push(s);
    }
    for level in by_depth {
        let (together, others): (Vec<&Step>, Vec<&Step>) = level.into_iter().partition(|s| parallel(s.kind));
        if !together.is_empty() {
            out.push(together);
        }
        out.extend(others.into_iter().map(|s| vec![s]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use desired_state_schema::{load, SourceFile};

    fn state(yaml: &str) -> Vec<Resource> {
        load(&[SourceFile { path: "s.yaml".into(), text: yaml.into() }], None).unwrap().resources
    }

    fn doc(name: &str, image: &str, deps: &str) -> String {
        format!("---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: {name} }}\nspec:\n  image: {image}\n  depends_on: [{deps}]\n")
    }

    fn obs(name: &str, hash: &str, state: RunState, stray: usize) -> Observed {
        Observed {
            kind: Kind::Container,
            name: name.into(),
            spec_hash: hash.into(),
            revision: "r1".into(),
            state,
            stray_instances: stray,
            out_of_place: None,
            unclaimed: false,
        }
    }

    fn container(spec: &str) -> Resource {
        let yaml = format!("apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n{spec}");
        state(&yaml).remove(0)
    }

    #[test]
    fn spec_changes_table() {
        let none = BTreeMap::new();
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        // (old spec, old inputs, new spec, new inputs, expected lines)
        type Inputs = BTreeMap<String, String>;
        let cases: Vec<(&str, Inputs, &str, Inputs, Vec<&str>)> = vec![
            ("  image: web:1\n", none.clone(), "  image: web:1\n", none.clone(), vec![]),
            ("  image: web:1.4\n", none.clone(), "  image: web:1.5\n", none.clone(), vec!["image: web:1.4 → web:1.5"]),
            (
                "  image: w\n  env: { LOG_LEVEL: INFO }\n",
                none.clone(),
                "  image: w\n  env: { LOG_LEVEL: DEBUG, NEW: x }\n",
                none.clone(),
                vec!["env.LOG_LEVEL: INFO → DEBUG", "env.NEW: (unset) → x"],
            ),
            (
                "  image: w\n  env: { DB_PASSWORD: hunter2 }\n",
                none.clone(),
                "  image: w\n  env: { DB_PASSWORD: hunter3 }\n",
                none.clone(),
                vec!["env.DB_PASSWORD: changed (value not shown)"],
            ),
            (
                "  image: w\n  ports: [\"8080:80\"]\n",
                none.clone(),
                "  image: w\n  ports: [\"8080:80\", \"9090:90\"]\n",
                none.clone(),
                vec!["ports: added 9090:90"],
            ),
            (
                "  image: w\n  command: [a, b]\n",
                none.clone(),
                "  image: w\n  command: [b, a]\n",
                none.clone(),
                vec![r#"command: ["a","b"] → ["b","a"]"#],
            ),
            (
                "  image: w\n  labels: { com.example.tier: web }\n",
                none.clone(),
                "  image: w\n  labels: { com.example.tier: api }\n",
                none.clone(),
                vec![r#"labels."com.example.tier": web → api"#],
            ),
            (
                "  image: w\n",
                m(&[("secret:db", "aaa"), ("env_file:/etc/w.env", "1"), ("image_id", "sha256:1")]),
                "  image: w\n",
                m(&[("secret:db", "bbb"), ("env_file:/etc/w.env", "1"), ("image_id", "sha256:2")]),
                vec!["image (same reference, new image): content changed", "secret db: content changed"],
            ),
            (
                "  image: w:1\n",
                m(&[("image_id", "sha256:1")]),
                "  image: w:2\n",
                m(&[("image_id", "sha256:2")]),
                vec!["image: w:1 → w:2"],
            ),
            (
                "  image: w\n",
                m(&[("build_tree", "0123456789abcdef")]),
                "  image: w\n",
                m(&[("build_tree", "fedcba9876543210")]),
                vec!["build context: 0123456789ab → fedcba987654"],
            ),
        ];
        for (old, oi, new, ni, want) in cases {
            let got = spec_changes(&container(old), &oi, &container(new), &ni);
            assert_eq!(got, want, "{old:?} → {new:?}");
        }
        // Issue 27: two long command lines that differ near their end show where they differ.
        let cmd = |v: &str| {
            format!("  image: w\n  command: [sh, -c, \"mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www && echo version {v}\"]\n")
        };
        let got = spec_changes(&container(&cmd("1")), &none, &container(&cmd("2")), &none);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("version 2") && got[0].contains("version 1"), "{got:?}");
        let long = format!("  image: w\n  env: {{ A: {} }}\n", "x".repeat(200));
        let got = spec_changes(&container("  image: w\n  env: { A: y }\n"), &none, &container(&long), &none);
        assert!(got[0].ends_with('…') && got[0].chars().count() < 100, "{got:?}");
        let many_old: String = (0..12).map(|i| format!("    V{i}: a\n")).collect();
        let many_new: String = (0..12).map(|i| format!("    V{i}: b\n")).collect();
        let got = spec_changes(
            &container(&format!("  image: w\n  env:\n{many_old}")),
            &none,
            &container(&format!("  image: w\n  env:\n{many_new}")),
            &none,
        );
        assert_eq!(got.len(), MAX_CHANGES_NAMED + 1);
        assert_eq!(got.last().map(String::as_str), Some("and 4 more"));
    }

    #[test]
    fn table() {
        let res = state(&(doc("web", "web:1", "db") + &doc("db", "db:1", "")));
        let ds = desired_state_schema::DesiredState { environment: None, resources: res.clone(), volumes: Vec::new() };
        let ordered = ds.in_dependency_order();
        let desired: Vec<(&Resource, String)> = ordered.iter().map(|r| (*r, spec_hash(r, &BTreeMap::new()))).collect();
        let (hweb, hdb) = (desired[1].1.clone(), desired[0].1.clone());
        assert_eq!(desired[0].0.name(), "db", "dependencies first");

        type Row<'a> = (&'a str, Vec<Observed>, Vec<(&'a str, Action)>);
        let table: Vec<Row> = vec![
            ("empty host", vec![], vec![("db", Action::Create), ("web", Action::Create)]),
            (
                "all up to date",
                vec![obs("db", &hdb, RunState::Running, 0), obs("web", &hweb, RunState::Running, 0)],
                vec![("db", Action::Unchanged), ("web", Action::Unchanged)],
            ),
            (
                "web changed, db stopped by hand",
                vec![obs("db", &hdb, RunState::NotRunning, 0), obs("web", "old", RunState::Running, 0)],
                vec![("db", Action::Repair), ("web", Action::Replace)],
            ),
            (
                "a crash left a stray instance; an orphan goes first",
                vec![
                    obs("db", &hdb, RunState::Running, 1),
                    obs("web", &hweb, RunState::Running, 0),
                    obs("cache", "x", RunState::Running, 0),
                ],
                vec![("cache", Action::Remove), ("db", Action::Repair), ("web", Action::Unchanged)],
            ),
            (
                "web runs as it should, but its route in the proxy is gone",
                vec![
                    obs("db", &hdb, RunState::Running, 0),
                    Observed {
                        out_of_place: Some("its route is missing".into()),
                        ..obs("web", &hweb, RunState::Running, 0)
                    },
                ],
                vec![("db", Action::Unchanged), ("web", Action::Repair)],
            ),
            (
                "a changed spec is a replace, whatever else is out of place",
                vec![
                    obs("db", &hdb, RunState::Running, 0),
                    Observed {
                        out_of_place: Some("its route is missing".into()),
                        ..obs("web", "old", RunState::Running, 0)
                    },
                ],
                vec![("db", Action::Unchanged), ("web", Action::Replace)],
            ),
        ];
        for (name, observed, want) in table {
            let p = plan(&desired, &observed, &[Kind::Container]);
            let got: Vec<(&str, Action)> = p.steps.iter().map(|s| (s.name.as_str(), s.action)).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    /// `depends_on: { restart: true }`: the dependent is restarted after its dependency is
    /// created or replaced, not after a repair, and a restart restarts nothing further.
    #[test]
    fn a_dependent_with_restart_true_is_restarted_after_its_dependency_is_updated() {
        let yaml = doc("db", "db:1", "")
            + &doc("web", "web:1", "{ name: db, restart: true }")
            + &doc("proxy", "proxy:1", "{ name: web, restart: true }")
            + &doc("worker", "worker:1", "db");
        let res = state(&yaml);
        let ds = desired_state_schema::DesiredState { environment: None, resources: res.clone(), volumes: Vec::new() };
        let ordered = ds.in_dependency_order();
        let desired: Vec<(&Resource, String)> = ordered.iter().map(|r| (*r, spec_hash(r, &BTreeMap::new()))).collect();
        let hash = |n: &str| desired.iter().find(|(r, _)| r.name() == n).map(|(_, h)| h.clone()).unwrap_or_default();
        let up = |n: &str| obs(n, &hash(n), RunState::Running, 0);
        let action = |p: &Plan, n: &str| p.steps.iter().find(|s| s.name == n).map(|s| s.action);
        // db replaced: web restarted (restart: true), proxy not (a restart is no update),
        // worker not (no restart: true).
        let p = plan(
            &desired,
            &[obs("db", "old", RunState::Running, 0), up("web"), up("proxy"), up("worker")],
            &[Kind::Container],
        );
        assert_eq!(action(&p, "db"), Some(Action::Replace));
        assert_eq!(action(&p, "web"), Some(Action::Restart));
        assert!(p.steps.iter().any(|s| s.name == "web" && s.reason.contains("db is updated")));
        assert_eq!(action(&p, "proxy"), Some(Action::Unchanged));
        assert_eq!(action(&p, "worker"), Some(Action::Unchanged));
        // db only repaired (stopped by hand): nothing restarts.
        let p = plan(
            &desired,
            &[obs("db", &hash("db"), RunState::NotRunning, 0), up("web"), up("proxy"), up("worker")],
            &[Kind::Container],
        );
        assert_eq!(action(&p, "web"), Some(Action::Unchanged));
        // The restart waits for its dependency's wave.
        let p = plan(
            &desired,
            &[obs("db", "old", RunState::Running, 0), up("web"), up("proxy"), up("worker")],
            &[Kind::Container],
        );
        let w = waves(&p, &res, &|_| true);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[1][0].name, "web");
    }

    #[test]
    fn kinds_not_observed_are_never_removed() {
        let o = Observed {
            kind: Kind::PassengerApp,
            name: "api".into(),
            spec_hash: "h".into(),
            revision: "r".into(),
            state: RunState::Running,
            stray_instances: 0,
            out_of_place: None,
            unclaimed: false,
        };
        assert!(plan(&[], std::slice::from_ref(&o), &[Kind::Container]).steps.is_empty());
        assert_eq!(plan(&[], &[o], &[Kind::PassengerApp]).steps[0].action, Action::Remove);
    }

    /// A managed container no agent's host claims (an older agent's) is never removed by
    /// this one, which may share the engine with others; named by the desired state, it is
    /// adopted like any other.
    #[test]
    fn unclaimed_resources_are_adopted_when_desired_and_never_removed() {
        let mut o = obs("old", "h", RunState::Running, 0);
        o.unclaimed = true;
        assert!(plan(&[], std::slice::from_ref(&o), &[Kind::Container]).steps.is_empty());
        let s = state(&doc("old", "old:2", ""));
        let p = plan(&[(&s[0], "h2".into())], &[o], &[Kind::Container]);
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].action, Action::Replace);
    }

    #[test]
    fn hash_depends_on_spec_and_inputs_not_on_revision() {
        let a = state(&doc("web", "web:1", ""));
        let b = state(&doc("web", "web:2", ""));
        let none = BTreeMap::new();
        assert_eq!(spec_hash(&a[0], &none), spec_hash(&a[0], &none));
        assert_ne!(spec_hash(&a[0], &none), spec_hash(&b[0], &none));
        let mut env = BTreeMap::new();
        env.insert("/etc/web.env".to_string(), "sha-of-content".to_string());
        assert_ne!(spec_hash(&a[0], &none), spec_hash(&a[0], &env));
    }

    #[test]
    fn waves_follow_dependency_depth() {
        let yaml = doc("db", "db:1", "")
            + &doc("cache", "cache:1", "")
            + &doc("api", "api:1", "db, cache")
            + &doc("web", "web:1", "api")
            + &doc("docs", "docs:1", "");
        let res = state(&yaml);
        let ds = desired_state_schema::DesiredState { environment: None, resources: res.clone(), volumes: Vec::new() };
        let desired: Vec<(&Resource, String)> =
            ds.in_dependency_order().iter().map(|r| (*r, spec_hash(r, &BTreeMap::new()))).collect();
        let hash = |n: &str| desired.iter().find(|(r, _)| r.name() == n).map(|(_, h)| h.clone()).unwrap_or_default();
        let names = |w: Vec<Vec<&Step>>| -> Vec<Vec<String>> {
            w.into_iter().map(|w| w.into_iter().map(|s| s.name.clone()).collect()).collect()
        };
        type Row<'a> = (&'a str, Vec<Observed>, Vec<Vec<&'a str>>);
        let table: Vec<Row> = vec![
            ("empty host", vec![], vec![vec!["db", "cache", "docs"], vec!["api"], vec!["web"]]),
            (
                "only api changed: it need not wait for db",
                vec![
                    obs("db", &hash("db"), RunState::Running, 0),
                    obs("cache", &hash("cache"), RunState::Running, 0),
                    obs("api", "old", RunState::Running, 0),
                    obs("web", "old", RunState::Running, 0),
                    obs("docs", &hash("docs"), RunState::Running, 0),
                    obs("gone", "x", RunState::Running, 0),
                ],
                vec![vec!["gone"], vec!["api"], vec!["web"]],
            ),
            (
                "nothing to do",
                ["db", "cache", "api", "web", "docs"].iter().map(|n| obs(n, &hash(n), RunState::Running, 0)).collect(),
                vec![],
            ),
        ];
        for (what, observed, want) in table {
            let p = plan(&desired, &observed, &[Kind::Container]);
            let want: Vec<Vec<String>> = want.into_iter().map(|w| w.into_iter().map(String::from).collect()).collect();
            assert_eq!(names(waves(&p, &res, &|k| k == Kind::Container)), want, "{what}");
        }
    }
}
