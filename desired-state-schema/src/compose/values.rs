//! Values of a compose tree: YAML merge keys, interpolation in place with compose-go's casts
//! (`interpolate_tree`, `cast_at`), shell words, and the small conversions of scalars,
//! lists and mappings the service conversion uses.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::cx::Cx;
use super::interpolate::{interpolate, InterpolationError};
use crate::source_map::YamlPath;

/// Apply YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`) everywhere, innermost first, as
/// the YAML merge-key type says: keys already in the mapping win, then the merged mappings
/// in order.
pub(super) fn merge_keys(v: &mut Value) -> Result<(), String> {
    match v {
        Value::Mapping(m) => {
            for (_, item) in m.iter_mut() {
                merge_keys(item)?;
            }
            if let Some(merged) = m.remove("<<") {
                let sources: Vec<Value> = match merged {
                    Value::Mapping(_) => vec![merged],
                    Value::Sequence(s) => s,
                    _ => return Err("<< takes a mapping or a list of mappings".into()),
                };
                for mut src in sources {
                    merge_keys(&mut src)?;
                    let Value::Mapping(src) = src else {
                        return Err("<< takes a mapping or a list of mappings".into());
                    };
                    for (k, val) in src {
                        if !m.contains_key(&k) {
                            m.insert(k, val);
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(s) => s.iter_mut().try_for_each(merge_keys),
        Value::Tagged(t) => merge_keys(&mut t.value),
        _ => Ok(()),
    }
}

/// What compose-go casts an interpolated value to at `at` (its `interpolateTypeCastMapping`):
/// `None` where a string stays a string.
pub(super) fn cast_at(at: &YamlPath, value: &str) -> Option<Result<Value, String>> {
    use crate::source_map::Seg;
    let segs: Vec<Option<&str>> =
        at.0.iter()
            .map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect();
    // (pattern, kind): `*` matches any key, `[]` any list index.
    const BOOL: &[&[&str]] = &[
        &["services", "*", "init"],
        &["services", "*", "depends_on", "*", "required"],
        &["services", "*", "depends_on", "*", "restart"],
        &["services", "*", "healthcheck", "disable"],
        &["services", "*", "oom_kill_disable"],
        &["services", "*", "privileged"],
        &["services", "*", "read_only"],
        &["services", "*", "stdin_open"],
        &["services", "*", "tty"],
        &["services", "*", "volumes", "[]", "read_only"],
        &["services", "*", "volumes", "[]", "volume", "nocopy"],
        &["networks", "*", "external"],
        &["networks", "*", "internal"],
        &["networks", "*", "attachable"],
        &["networks", "*", "enable_ipv4"],
        &["networks", "*", "enable_ipv6"],
        &["volumes", "*", "external"],
        &["secrets", "*", "external"],
        &["configs", "*", "external"],
    ];
    const INT: &[&[&str]] = &[
        &["services", "*", "deploy", "replicas"],
        &["services", "*", "deploy", "restart_policy", "max_attempts"],
        &["services", "*", "healthcheck", "retries"],
        &["services", "*", "pids_limit"],
        &["services", "*", "ports", "[]", "target"],
        &["services", "*", "scale"],
        &["services", "*", "ulimits", "*"],
        &["services", "*", "ulimits", "*", "hard"],
        &["services", "*", "ulimits", "*", "soft"],
        &["services", "*", "oom_score_adj"],
    ];
    let matches = |pattern: &[&str]| {
        pattern.len() == segs.len()
            && pattern.iter().zip(&segs).all(|(p, s)| match (*p, s) {
                ("[]", None) => true,
                ("[]", Some(_)) => false,
                ("*", Some(_)) => true,
                (p, Some(s)) => p == *s,
                (_, None) => false,
            })
    };
    if BOOL.iter().any(|p| matches(p)) {
        return Some(match value.to_ascii_lowercase().as_str() {
            "true" | "y" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "n" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("{value:?} is not a boolean: write true or false (compose casts the interpolated value)")),
        });
    }
    if INT.iter().any(|p| matches(p)) {
        return Some(match value.parse::<i64>() {
            Ok(n) => Ok(Value::Number(n.into())),
            Err(_) => Err(format!("{value:?} is not a whole number (compose casts the interpolated value)")),
        });
    }
    None
}

/// Interpolate every string value (never keys) of `v` in place.
pub(super) fn interpolate_tree(cx: &mut Cx<'_>, v: &mut Value, at: &YamlPath, vars: &BTreeMap<String, String>) {
    match v {
        Value::String(s) => {
            if !s.contains('$') {
                return;
            }
            let mut unset = Vec::new();
            match interpolate(s, vars, &mut unset) {
                Ok(r) => {
                    // As compose-go: a value interpolated where the specification wants a
                    // boolean or a number is cast (`read_only: ${RO}` with RO=false).
                    match cast_at(at, &r) {
                        Some(Ok(typed)) => *v = typed,
                        Some(Err(why)) => cx.err(at, &why),
                        None => *s = r,
                    }
                    for var in unset {
                        cx.warn(at, &format!("variable {var} is not set (not in the .env beside the compose file): it becomes an empty string"));
                    }
                    return;
                }
                Err(InterpolationError::Required { var, message }) => {
                    let why = if message.is_empty() { String::new() } else { format!(": {message}") };
                    cx.err(at, &format!("variable {var} is required{why}; set it in the .env beside the compose file"));
                }
                Err(InterpolationError::Syntax(m)) => cx.err(at, &m),
            }
            for var in unset {
                cx.warn(at, &format!("variable {var} is not set (not in the .env beside the compose file): it becomes an empty string"));
            }
        }
        Value::Sequence(seq) => {
            for (i, item) in seq.iter_mut().enumerate() {
                interpolate_tree(cx, item, &at.index(i), vars);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let key = key_text(k);
                interpolate_tree(cx, item, &at.key(key.as_str()), vars);
            }
        }
        Value::Tagged(t) => interpolate_tree(cx, &mut t.value, at, vars),
        _ => {}
    }
}

/// Split a command string the way compose does (POSIX shell words, no expansion).
pub fn shell_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return None,
                        },
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            other => {
                in_word = true;
                cur.push(other);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// A number written as a string (after interpolation: `retries: ${RETRIES}`) as a number,
/// as compose coerces interpolated values to the type its schema wants.
pub(super) fn numberish(v: &Value) -> Value {
    match v {
        Value::String(s) => s.trim().parse::<i64>().map(|n| Value::Number(n.into())).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

/// `numberish` for every scalar in a mapping (ulimits).
pub(super) fn numbers_within(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(m.iter().map(|(k, x)| (k.clone(), numbers_within(x))).collect()),
        other => numberish(other),
    }
}

/// The entries of a short-syntax list (`[a, b]`) or a long-syntax mapping (`{a: {...}}`):
/// each name, with its settings in the long form (`networks`, `depends_on`).
pub(super) fn names_or_map(v: &Value) -> Vec<(String, Option<&Value>)> {
    match v {
        Value::Sequence(s) => s.iter().map(|n| (scalar_string(n), None)).collect(),
        Value::Mapping(m) => m.iter().map(|(n, c)| (key_text(n), Some(c))).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// A scalar as a YAML string (numbers keep their spelling: `0.5`, `64m`).
pub(super) fn scalar_text(v: &Value) -> Value {
    Value::String(scalar_string(v))
}

pub(super) fn key_text(k: &Value) -> String {
    scalar_string(k)
}

pub(super) fn strings_of(v: &Value) -> Value {
    match v {
        Value::Sequence(s) => Value::Sequence(s.iter().map(|x| Value::String(scalar_string(x))).collect()),
        Value::Null => Value::Sequence(Vec::new()),
        other => Value::Sequence(vec![Value::String(scalar_string(other))]),
    }
}

pub(super) fn seq_of_strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence).map(|s| s.iter().map(scalar_string).collect()).unwrap_or_default()
}

/// A mapping or a `KEY=value` list, as a mapping of strings.
pub(super) fn map_of_strings(v: &Value) -> Value {
    let mut m = Mapping::new();
    match v {
        Value::Mapping(src) => {
            for (k, val) in src {
                m.insert(key_text(k).into(), scalar_string(val).into());
            }
        }
        Value::Sequence(s) => {
            for item in s {
                let text = scalar_string(item);
                let (k, val) = text.split_once('=').unwrap_or((text.as_str(), ""));
                m.insert(k.into(), val.into());
            }
        }
        _ => {}
    }
    Value::Mapping(m)
}
