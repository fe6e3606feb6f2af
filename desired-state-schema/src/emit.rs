//! Printing documents as YAML that every reader takes the same way: block style, and every
//! string that a YAML 1.1 reader (PyYAML, Ruby's Psych, older tools) or a YAML 1.2 one could
//! take for something else — `yes`, `no`, `on`, `off`, `y`, `~`, `null`, numbers, `25:25`
//! (a base-60 number in 1.1), `0x1F`, `.inf` — double-quoted. `agentctl convert` and
//! `agentctl validate --render` print through it. Depends on nothing of this crate.

use serde_yaml_ng::Value;

/// `value` as a YAML document (without the `---` line).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Mapping(m) if !m.is_empty() => mapping(&mut out, m, 0),
        Value::Sequence(s) if !s.is_empty() => sequence(&mut out, s, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A value after `key:` or `- `: on the same line when it is a scalar or empty, else on the
/// lines below at `indent`.
fn after(out: &mut String, v: &Value, indent: usize, in_sequence: bool) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            mapping(out, m, indent);
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            // Items of a mapping's sequence sit at the key's own indentation (as compose
            // files and serde_yaml write them); a sequence in a sequence goes deeper.
            sequence(out, s, if in_sequence { indent } else { indent.saturating_sub(2) });
        }
        Value::Tagged(t) => after(out, &t.value, indent, in_sequence),
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn mapping(out: &mut String, m: &serde_yaml_ng::Mapping, indent: usize) {
    for (k, v) in m {
        pad(out, indent);
        out.push_str(&scalar(k));
        out.push(':');
        after(out, v, indent + 2, false);
    }
}

fn sequence(out: &mut String, s: &[Value], indent: usize) {
    for v in s {
        pad(out, indent);
        out.push('-');
        match v {
            // The mapping's first key on the `- ` line, the rest below it.
            Value::Mapping(m) if !m.is_empty() => {
                let mut first = true;
                for (k, val) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        pad(out, indent + 2);
                    }
                    out.push_str(&scalar(k));
                    out.push(':');
                    after(out, val, indent + 4, false);
                }
            }
            other => after(out, other, indent + 2, true),
        }
    }
}

/// A scalar (or an empty collection) as YAML text.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if plain_is_safe(s) {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
            }
        }
        Value::Sequence(_) => "[]".into(),
        Value::Mapping(_) => "{}".into(),
        Value::Tagged(t) => scalar(&t.value),
    }
}

/// Whether `s` reads back as this very string, unquoted, in YAML 1.1 and 1.2 alike.
fn plain_is_safe(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ".inf", "-.inf", "+.inf", ".nan", "<<", "=",
    ];
    let Some(first) = s.chars().next() else { return false };
    if WORDS.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    // Anything a reader might take for a number (decimal, 0x, 0o, 1e3, 1_000, base 60).
    let numeric = |c: char| c.is_ascii_hexdigit() || "xXoObB_.:+-".contains(c);
    if (first.is_ascii_digit() || "+-.".contains(first)) && s.chars().all(numeric) {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@` ".contains(first) || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.chars().any(|c| c.is_control()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_yaml_1_1_reader_would_misread_is_quoted() {
        for s in [
            "yes", "No", "ON", "off", "y", "~", "null", "25:25", "0x1F", "1e3", "1_000", ".5", "-1", "", " x", "a: b",
            "-x", "*a", "<<",
        ] {
            assert!(!plain_is_safe(s), "{s:?} must be quoted");
        }
        for s in ["web", "nginx:1", "/srv/data:/data", "shop_data:/d", "unless-stopped", "CMD-SHELL", "a b"] {
            assert!(plain_is_safe(s), "{s:?} may stay plain");
        }
        // Digits, dots and colons only: quoted, though no reader would misread this one
        // (being sure costs two quotes).
        assert!(!plain_is_safe("127.0.0.1:8080:80"));
    }

    /// What is printed reads back as the same value.
    #[test]
    fn round_trips() {
        let text =
            "a: yes\nb: [\"25:25\", {x: 1, y: [no, \"on\"]}, [1, 2]]\nc: {}\nd: []\ne: null\nf: 'x: y'\ng:\n  h: '~'\n";
        let v: Value = serde_yaml_ng::from_str(text).unwrap();
        let printed = to_yaml(&v);
        let back: Value = serde_yaml_ng::from_str(&printed).unwrap();
        assert_eq!(back, v, "{printed}");
        assert!(printed.contains("- \"25:25\"") && printed.contains("\"on\""), "{printed}");
    }
}
