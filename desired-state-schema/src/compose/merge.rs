//! Merging a compose file with its override (`compose.override.yaml`), by the rules of the
//! specification's `13-merge.md` as compose-go implements them (`override/merge.go`, then
//! `override/uncity.go`): mappings merge key by key, sequences append, scalars are replaced;
//! `command`, `entrypoint` and `healthcheck.test` are replaced whole; `environment`, `labels`,
//! `sysctls`, `dns`, `tmpfs`, `env_file`, … become `KEY=value` lists and append;
//! `depends_on` and a service's `networks` become mappings and merge; `logging` merges only
//! when the drivers agree; `build` as a string is `{ context }`. Then the unique resources
//! (volumes and secrets by target, ports, environment keys, …) keep one entry each, the
//! later in the place of the earlier. `!reset` removes a value, `!override` replaces it.
//!
//! Positions move with the values: every merged node keeps its own file, line and column
//! (`DocMap::set_file`), so an error in a merged value names the file it was written in.
//! Pure: values and maps in, values and maps out.

use serde_yaml_ng::{Mapping, Value};

use crate::source_map::{DocMap, Pos, Seg, YamlPath};

/// One compose file's tree after interpolation, with its positions.
pub struct Doc {
    pub value: Value,
    pub map: DocMap,
}

/// What could not be merged: the override's path, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Conflict {
    pub at: YamlPath,
    /// Where `at` is in the override.
    pub pos: Pos,
    pub message: String,
}

/// Merge `over` into `base`, then enforce the unique resources, as compose loads a file and
/// its override. `!reset` and `!override` tags are resolved; none remains in `base`.
pub fn merge(base: &mut Doc, over: Doc) -> Vec<Conflict> {
    let Doc { value: mut ov, map: omap } = over;
    // As compose-go's ResetProcessor: what the override tags `!reset` or `!override` is
    // first removed from the base; then the override, tags resolved, merges as usual.
    let mut tagged = Vec::new();
    tagged_paths(&ov, &YamlPath::root(), &mut tagged);
    for p in &tagged {
        if crate::source_map::remove_entry(&mut base.value, p) {
            base.map.remove_tree(p);
        }
    }
    resolve_tags(&mut ov);
    let mut conflicts = Vec::new();
    let root = YamlPath::root();
    merge_at(&mut base.value, &mut base.map, &root, &ov, &omap, &root, &mut conflicts);
    conflicts
}

/// compose-go's `override.ExtendService`: the service `over` (at `op` of `omap`, its
/// `!reset`/`!override` tags honoured) merged over `base` (a service at `bp` of `bmap`), by
/// the same rules as an override file. The result stands at `op`: its value, and its
/// positions (each node where it was written, in whichever file).
pub fn extend_service(
    base: &Value,
    bmap: &DocMap,
    bp: &YamlPath,
    over: &Value,
    omap: &DocMap,
    op: &YamlPath,
) -> (Value, DocMap, Vec<Conflict>) {
    let mut value = base.clone();
    let mut map = DocMap::starting_at(omap.start);
    map.alias_tree(bmap, bp, op);
    let mut tagged = Vec::new();
    tagged_paths(over, op, &mut tagged);
    for p in &tagged {
        let rel = YamlPath(p.0[op.0.len()..].to_vec());
        if crate::source_map::remove_entry(&mut value, &rel) {
            map.remove_tree(p);
        }
    }
    let mut ov = over.clone();
    resolve_tags(&mut ov);
    let mut conflicts = Vec::new();
    if value.is_null() {
        value = Value::Mapping(Mapping::new()); // compose-go: a null base extends to the service
    }
    merge_at(&mut value, &mut map, op, &ov, omap, op, &mut conflicts);
    map.alias_node(omap, op, op); // the service stands where it is written
    (value, map, conflicts)
}

/// The mapping paths of `v` tagged `!reset` or `!override`.
fn tagged_paths(v: &Value, at: &YamlPath, out: &mut Vec<YamlPath>) {
    if tag_of(v).is_some() {
        out.push(at.clone());
        return;
    }
    match v {
        Value::Mapping(m) => {
            for (k, x) in m {
                tagged_paths(x, &at.key(text(k)), out);
            }
        }
        Value::Tagged(t) => tagged_paths(&t.value, at, out),
        _ => {}
    }
}

/// Resolve the tags of a tree read alone (the main file, or a value merged in whole):
/// `!reset` removes the key, `!override` is its value.
pub fn resolve_tags(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            let reset: Vec<Value> =
                m.iter().filter(|(_, x)| tag_of(x) == Some(Tag::Reset)).map(|(k, _)| k.clone()).collect();
            for k in reset {
                m.remove(&k);
            }
            for (_, x) in m.iter_mut() {
                resolve_tags(x);
            }
        }
        Value::Sequence(s) => {
            s.retain(|x| tag_of(x) != Some(Tag::Reset));
            s.iter_mut().for_each(resolve_tags);
        }
        Value::Tagged(_) if tag_of(v).is_some() => {
            if let Value::Tagged(t) = std::mem::take(v) {
                *v = t.value;
            }
            resolve_tags(v);
        }
        Value::Tagged(t) => resolve_tags(&mut t.value),
        _ => {}
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Reset,
    Override,
}

fn tag_of(v: &Value) -> Option<Tag> {
    match v {
        Value::Tagged(t) if t.tag == "reset" => Some(Tag::Reset),
        Value::Tagged(t) if t.tag == "override" => Some(Tag::Override),
        _ => None,
    }
}

/// The keys of `at` (indexes left out), for matching compose-go's path patterns.
fn keys(at: &YamlPath) -> Vec<&str> {
    at.0.iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect()
}

/// Whether `at` matches `pattern` (`services.*.labels`), `*` standing for any one key.
fn matches(at: &[&str], pattern: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    p.len() == at.len() && p.iter().zip(at).all(|(p, k)| *p == "*" || p == k)
}

/// The special merge rule for the value at `at` (compose-go's `mergeSpecials`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    Replace,
    ToSequence,
    ExtraHosts,
    DependsOn,
    Networks,
    Logging,
    Build,
    IpamConfig,
    Default,
}

fn rule(at: &[&str]) -> Rule {
    const TO_SEQUENCE: [&str; 17] = [
        "networks.*.labels",
        "volumes.*.labels",
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.labels",
        "services.*.deploy.labels",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.env_file",
        "services.*.label_file",
        "services.*.environment",
        "services.*.labels",
        "services.*.volumes.*.volume.labels",
        "services.*.sysctls",
        "services.*.tmpfs",
    ];
    let is = |p: &str| matches(at, p);
    if is("services.*.command") || is("services.*.entrypoint") || is("services.*.healthcheck.test") {
        Rule::Replace
    } else if TO_SEQUENCE.iter().any(|p| is(p)) {
        Rule::ToSequence
    } else if is("services.*.extra_hosts") || is("services.*.build.extra_hosts") {
        Rule::ExtraHosts
    } else if is("services.*.depends_on") {
        Rule::DependsOn
    } else if is("services.*.networks") || is("services.*.models") {
        Rule::Networks // compose-go's mergeNetworks and mergeModels are the same rule
    } else if is("services.*.logging") {
        Rule::Logging
    } else if is("services.*.build") {
        Rule::Build
    } else if is("networks.*.ipam.config") {
        Rule::IpamConfig
    } else if matches(at, "services.*.ulimits.*") {
        Rule::Replace // compose-go's mergeUlimit returns the override
    } else {
        Rule::Default
    }
}

/// Merge `ov` (at `op` of `omap`) into `bv` (at `bp` of `bmap`).
fn merge_at(
    bv: &mut Value,
    bmap: &mut DocMap,
    bp: &YamlPath,
    ov: &Value,
    omap: &DocMap,
    op: &YamlPath,
    conflicts: &mut Vec<Conflict>,
) {
    if ov.is_null() {
        return; // compose-go: a null override keeps the base
    }
    let at = keys(bp);
    match rule(&at) {
        Rule::Replace => return replace(bv, bmap, bp, ov, omap, op),
        Rule::ToSequence | Rule::ExtraHosts => {
            let dedupe = rule(&at) == Rule::ExtraHosts;
            let old = bmap.subtree(bp);
            let mut items = to_sequence(bv, &old, bp);
            let more = to_sequence(ov, omap, op);
            for (v, m, p) in more {
                if dedupe && items.iter().any(|(x, _, _)| *x == v) {
                    continue;
                }
                items.push((v, m, p));
            }
            return rebuild(bv, bmap, bp, items);
        }
        Rule::DependsOn | Rule::Networks => {
            let default = (rule(&at) == Rule::DependsOn).then(|| {
                let mut m = Mapping::new();
                m.insert("condition".into(), "service_started".into());
                m.insert("required".into(), true.into());
                Value::Mapping(m)
            });
            to_mapping(bv, bmap, bp, default.as_ref());
            let (mut ov, mut omap) = (ov.clone(), omap.subtree(op));
            to_mapping(&mut ov, &mut omap, op, default.as_ref());
            return merge_mappings(bv, bmap, bp, &ov, &omap, op, conflicts);
        }
        Rule::Logging => {
            let driver = |v: &Value| v.get("driver").cloned();
            if let (Some(a), Some(b)) = (driver(bv), driver(ov)) {
                if a != b {
                    return replace(bv, bmap, bp, ov, omap, op);
                }
            }
        }
        Rule::Build => {
            let context = |v: &mut Value| {
                if let Value::String(s) = v {
                    let mut m = Mapping::new();
                    m.insert("context".into(), Value::String(std::mem::take(s)));
                    *v = Value::Mapping(m);
                }
            };
            context(bv);
            let mut ov = ov.clone();
            context(&mut ov);
            if bmap.contains(bp) && !bmap.contains(&bp.key("context")) {
                let own = bmap.subtree(bp);
                bmap.alias_node(&own, bp, &bp.key("context"));
            }
            return merge_mappings(bv, bmap, bp, &ov, omap, op, conflicts);
        }
        Rule::IpamConfig => return ipam_config(bv, bmap, bp, ov),
        Rule::Default => {}
    }
    match (&*bv, ov) {
        (Value::Mapping(_), Value::Mapping(_)) => merge_mappings(bv, bmap, bp, ov, omap, op, conflicts),
        (Value::Mapping(_), _) => conflicts.push(Conflict {
            at: op.clone(),
            pos: omap.value_pos(op),
            message: format!("the base file has a mapping here and the override {}: compose cannot merge them; write a mapping, or `!override` to replace it", shape(ov)),
        }),
        (Value::Sequence(_), Value::Sequence(o)) => {
            let Value::Sequence(b) = bv else { return };
            let n = b.len();
            for (j, item) in o.iter().enumerate() {
                b.push(item.clone());
                bmap.alias_tree(omap, &op.index(j), &bp.index(n + j));
            }
        }
        (Value::Sequence(_), _) => conflicts.push(Conflict {
            at: op.clone(),
            pos: omap.value_pos(op),
            message: format!("the base file has a list here and the override {}: compose cannot merge them; write a list, or `!override` to replace it", shape(ov)),
        }),
        _ => replace(bv, bmap, bp, ov, omap, op),
    }
}

/// compose-go's `mergeIPAMConfig`, as it is (quirks included): configs merge by `subnet`.
/// Positions: the whole list stands where the base's did (IPAM is refused later anyway).
fn ipam_config(bv: &mut Value, bmap: &mut DocMap, bp: &YamlPath, ov: &Value) {
    let (Value::Sequence(configs), Value::Sequence(overrides)) = (&*bv, ov) else {
        return; // compose-go: an error ("unexpected type"); the shape checks refuse it later
    };
    let subnet = |v: &Value| v.get("subnet").cloned();
    let mut out: Vec<Value> = Vec::new();
    let mut scratch = DocMap::default();
    for original in configs {
        let mut right = original.clone();
        for left in overrides {
            if subnet(left) != subnet(&right) && !out.iter().any(|c| subnet(c) == subnet(left)) {
                out.push(left.clone());
                continue;
            }
            let mut ignored = Vec::new();
            let root = YamlPath::root();
            merge_mappings(&mut right, &mut scratch, &root, left, &DocMap::default(), &root, &mut ignored);
            match out.iter().position(|c| subnet(c) == subnet(&right)) {
                Some(i) => out[i] = right.clone(),
                None => out.push(right.clone()),
            }
        }
    }
    let own = bmap.subtree(bp);
    rebuild(bv, bmap, bp, out.into_iter().map(|v| (v, &own, bp.clone())).collect());
}

fn shape(v: &Value) -> &'static str {
    match v {
        Value::Mapping(_) => "a mapping",
        Value::Sequence(_) => "a list",
        _ => "a single value",
    }
}

fn merge_mappings(
    bv: &mut Value,
    bmap: &mut DocMap,
    bp: &YamlPath,
    ov: &Value,
    omap: &DocMap,
    op: &YamlPath,
    conflicts: &mut Vec<Conflict>,
) {
    let (Value::Mapping(b), Value::Mapping(o)) = (bv, ov) else { return };
    for (k, v) in o {
        let name = text(k);
        let (bk, ok) = (bp.key(name.clone()), op.key(name));
        match b.get_mut(k) {
            Some(existing) => merge_at(existing, bmap, &bk, v, omap, &ok, conflicts),
            None => {
                b.insert(k.clone(), v.clone());
                bmap.alias_tree(omap, &ok, &bk);
            }
        }
    }
}

/// The base value at `bp` becomes the override's value (and its positions).
fn replace(bv: &mut Value, bmap: &mut DocMap, bp: &YamlPath, ov: &Value, omap: &DocMap, op: &YamlPath) {
    *bv = ov.clone();
    bmap.remove_tree(bp);
    bmap.alias_tree(omap, op, bp);
}

/// compose-go's `convertIntoSequence`: a mapping becomes sorted `KEY=value` strings (a key
/// without a value alone; a list value one entry per item), a string a one-item list. Each
/// item with where it came from.
fn to_sequence<'m>(v: &Value, map: &'m DocMap, at: &YamlPath) -> Vec<(Value, &'m DocMap, YamlPath)> {
    match v {
        Value::Mapping(m) => {
            let mut out: Vec<(Value, &DocMap, YamlPath)> = Vec::new();
            for (k, val) in m {
                let key = text(k);
                let kat = at.key(key.clone());
                match val {
                    Value::Null => out.push((Value::String(key), map, kat)),
                    Value::Sequence(items) => {
                        for (i, item) in items.iter().enumerate() {
                            out.push((Value::String(format!("{key}={}", text(item))), map, kat.index(i)));
                        }
                    }
                    other => out.push((Value::String(format!("{key}={}", text(other))), map, kat)),
                }
            }
            out.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
            out
        }
        Value::Sequence(s) => s.iter().enumerate().map(|(i, x)| (x.clone(), map, at.index(i))).collect(),
        Value::String(_) => vec![(v.clone(), map, at.clone())],
        _ => Vec::new(),
    }
}

/// compose-go's `convertIntoMapping`: a list of names becomes a mapping of each name to
/// `default` (or null); each name keeps its item's position.
fn to_mapping(v: &mut Value, map: &mut DocMap, at: &YamlPath, default: Option<&Value>) {
    if let Value::Sequence(s) = v {
        let own = map.subtree(at);
        let mut m = Mapping::new();
        for (i, item) in s.iter().enumerate() {
            let name = text(item);
            map.remove_tree(&at.index(i));
            map.alias_node(&own, &at.index(i), &at.key(name.clone()));
            m.insert(Value::String(name), default.cloned().unwrap_or(Value::Null));
        }
        *v = Value::Mapping(m);
    }
}

/// Replace the value at `bp` by the list `items`, each positioned where it came from.
fn rebuild(bv: &mut Value, bmap: &mut DocMap, bp: &YamlPath, items: Vec<(Value, &DocMap, YamlPath)>) {
    let own = bmap.subtree(bp);
    bmap.remove_tree(bp);
    bmap.alias_node(&own, bp, bp);
    let mut seq = Vec::with_capacity(items.len());
    for (i, (v, m, p)) in items.into_iter().enumerate() {
        // A map borrowed from the base was taken (`subtree`) before it changed.
        bmap.alias_tree(m, &p, &bp.index(i));
        seq.push(v);
    }
    *bv = Value::Sequence(seq);
}

/// A scalar as compose-go's `%v` prints it.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Tagged(t) => text(&t.value),
        other => serde_yaml_ng::to_string(other).map(|s| s.trim_end().to_string()).unwrap_or_default(),
    }
}

/// compose-go's `EnforceUnicity`: in each sequence that holds unique resources, an entry
/// whose key an earlier one has takes that one's place. Applied to every compose file (with
/// or without an override), as compose does.
pub fn enforce_unicity(v: &mut Value, map: &mut DocMap) {
    unicity_at(v, map, &YamlPath::root());
}

fn unicity_at(v: &mut Value, map: &mut DocMap, at: &YamlPath) {
    match v {
        Value::Mapping(m) => {
            for (k, x) in m.iter_mut() {
                unicity_at(x, map, &at.key(text(k)));
            }
        }
        Value::Sequence(s) => {
            let Some(index) = indexer(&keys(at)) else { return };
            let mut kept: Vec<(Value, YamlPath)> = Vec::new();
            let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
            for (i, item) in s.iter().enumerate() {
                let key = index(item);
                match seen.get(&key) {
                    Some(&j) => kept[j] = (item.clone(), at.index(i)),
                    None => {
                        seen.insert(key, kept.len());
                        kept.push((item.clone(), at.index(i)));
                    }
                }
            }
            if kept.len() == s.len() {
                return; // nothing repeated: positions stand
            }
            let old = map.subtree(at);
            rebuild(v, map, at, kept.into_iter().map(|(v, p)| (v, &old, p)).collect());
        }
        _ => {}
    }
}

type Indexer = fn(&Value) -> String;

/// compose-go's `unique` table: the sequences whose entries are unique, and by what.
fn indexer(at: &[&str]) -> Option<Indexer> {
    const KEY_VALUE: [&str; 21] = [
        "networks.*.labels",
        "networks.*.ipam.options",
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.platform",
        "services.*.build.tags",
        "services.*.build.labels",
        "services.*.cap_add",
        "services.*.cap_drop",
        "services.*.deploy.labels",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.environment",
        "services.*.labels",
        "services.*.links",
        "services.*.networks.*.aliases",
        "services.*.networks.*.link_local_ips",
        "services.*.profiles",
        "services.*.sysctls",
    ];
    let is = |p: &str| matches(at, p);
    if KEY_VALUE.iter().any(|p| is(p)) || is("services.*.tmpfs") {
        Some(key_value_index)
    } else if is("services.*.volumes") {
        Some(volume_index)
    } else if is("services.*.devices") {
        Some(device_index)
    } else if is("services.*.secrets") {
        Some(secret_index)
    } else if is("services.*.configs") {
        Some(config_index)
    } else if is("services.*.ports") || is("services.*.expose") || is("services.*.env_file") {
        Some(match at.last() {
            Some(&"ports") => port_index,
            Some(&"env_file") => env_file_index,
            _ => expose_index,
        })
    } else {
        None
    }
}

fn key_value_index(v: &Value) -> String {
    let s = text(v);
    match s.split_once('=') {
        Some((k, _)) => k.to_string(),
        None => s,
    }
}

fn volume_index(v: &Value) -> String {
    match v {
        Value::Mapping(_) => v.get("target").map(text).unwrap_or_default(),
        _ => {
            let s = text(v);
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() == 1 {
                s
            } else {
                parts[1].to_string()
            }
        }
    }
}

fn device_index(v: &Value) -> String {
    volume_index(v)
}

fn mount_index(v: &Value, default: &str) -> String {
    match v {
        Value::Mapping(_) => match v.get("target") {
            Some(t) => text(t),
            None => format!("{default}/{}", v.get("source").map(text).unwrap_or_default()),
        },
        _ => format!("{default}/{}", text(v)),
    }
}

fn secret_index(v: &Value) -> String {
    mount_index(v, "/run/secrets")
}

fn config_index(v: &Value) -> String {
    mount_index(v, "")
}

fn port_index(v: &Value) -> String {
    match v {
        Value::Mapping(_) => {
            let get = |k: &str, d: &str| v.get(k).map_or_else(|| d.to_string(), text);
            format!(
                "{}:{}:{}/{}",
                get("host_ip", "0.0.0.0"),
                get("published", ""),
                get("target", ""),
                get("protocol", "tcp")
            )
        }
        _ => text(v),
    }
}

fn expose_index(v: &Value) -> String {
    text(v)
}

fn env_file_index(v: &Value) -> String {
    match v {
        Value::Mapping(_) => v.get("path").map(text).unwrap_or_default(),
        _ => text(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source_map::map_documents;

    fn doc(text: &str, file: &str) -> Doc {
        let value: Value = serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
        let mut map = map_documents(text).into_iter().next().unwrap_or_default();
        map.set_file(file);
        Doc { value, map }
    }

    fn merged(base: &str, over: &str) -> (Value, DocMap, Vec<Conflict>) {
        let mut b = doc(base, "compose.yaml");
        let conflicts = merge(&mut b, doc(over, "compose.override.yaml"));
        resolve_tags(&mut b.value);
        enforce_unicity(&mut b.value, &mut b.map);
        (b.value, b.map, conflicts)
    }

    /// compose-go's own cases (testdata/compose-go-merge.yaml): each merges to what compose-go
    /// merges it to.
    #[test]
    fn compose_gos_merge_and_unicity_cases() {
        let cases: Vec<Mapping> = serde_yaml_ng::from_str(include_str!("testdata/compose-go-merge.yaml")).unwrap();
        assert!(cases.len() >= 77, "{}", cases.len());
        let mut failed = Vec::new();
        for case in &cases {
            let field = |k: &str| case.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let (name, want) = (field("name"), field("want"));
            let got = if field("kind") == "unicity" {
                let mut b = doc(&field("base"), "compose.yaml");
                resolve_tags(&mut b.value);
                enforce_unicity(&mut b.value, &mut b.map);
                b.value
            } else {
                let (v, _, conflicts) = merged(&field("base"), &field("override"));
                if !conflicts.is_empty() {
                    failed.push(format!("{name}: {conflicts:?}"));
                }
                v
            };
            let want: Value = serde_yaml_ng::from_str(&want).unwrap();
            if got != want {
                failed.push(format!(
                    "{name}:\n got: {}\nwant: {}",
                    serde_yaml_ng::to_string(&got).unwrap_or_default(),
                    serde_yaml_ng::to_string(&want).unwrap_or_default()
                ));
            }
        }
        assert!(failed.is_empty(), "{} of {} cases differ:\n{}", failed.len(), cases.len(), failed.join("\n"));
    }

    #[test]
    fn merged_values_keep_the_position_of_the_file_they_came_from() {
        let base = "services:\n  web:\n    image: a\n    ports:\n      - \"80:80\"\n    environment:\n      A: \"1\"\n";
        let over = "services:\n  web:\n    ports:\n      - \"443:443\"\n    environment:\n      B: \"2\"\n  db:\n    image: pg\n";
        let (v, map, _) = merged(base, over);
        let at = |p: &str| -> YamlPath {
            let mut path = YamlPath::root();
            for seg in p.split('.') {
                path = match seg.parse::<usize>() {
                    Ok(i) => path.index(i),
                    Err(_) => path.key(seg),
                };
            }
            path
        };
        let where_ = |p: &str| (map.file_at(&at(p)).unwrap_or("?").to_string(), map.value_pos(&at(p)).line);
        assert_eq!(where_("services.web.image"), ("compose.yaml".into(), 3));
        assert_eq!(where_("services.web.ports.0"), ("compose.yaml".into(), 5));
        assert_eq!(where_("services.web.ports.1"), ("compose.override.yaml".into(), 4));
        assert_eq!(where_("services.db.image"), ("compose.override.yaml".into(), 8));
        // environment became KEY=value lists: each item where its key was.
        assert_eq!(v["services"]["web"]["environment"], serde_yaml_ng::from_str::<Value>("[A=1, B=2]").unwrap());
        assert_eq!(where_("services.web.environment.0"), ("compose.yaml".into(), 7));
        assert_eq!(where_("services.web.environment.1"), ("compose.override.yaml".into(), 6));
    }

    #[test]
    fn a_shape_compose_cannot_merge_is_a_conflict_naming_what_to_write() {
        let (_, _, c) = merged("services:\n  web:\n    ports: [\"80:80\"]\n", "services:\n  web:\n    ports: {a: 1}\n");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].at.to_string(), "services.web.ports");
        assert!(c[0].message.contains("write a list, or `!override`"), "{}", c[0].message);
    }
}
