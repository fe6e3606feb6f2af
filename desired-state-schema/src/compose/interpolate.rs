//! Compose's interpolation (the specification's `12-interpolation.md`): `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+alt}`,
//! `${VAR+alt}`, nested defaults and `$$`. Used for compose files and for `.env` values.

use std::collections::BTreeMap;

/// Why a `${...}` could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${VAR:?err}` / `${VAR?err}` with VAR unset (or empty).
    Required { var: String, message: String },
    /// A `${` without its `}`, or an invalid name.
    Syntax(String),
}

/// Interpolate `s` with `vars` (the specification's syntax). `unset` receives each variable
/// that was unset and had no default (it became empty).
pub fn interpolate(
    s: &str,
    vars: &BTreeMap<String, String>,
    unset: &mut Vec<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let ch = s[i..].chars().next().unwrap_or('\0');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                // Find the matching brace (nested ${...} in defaults).
                let mut depth = 1;
                let mut j = i + 2;
                while j < b.len() && depth > 0 {
                    match b[j] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                if depth != 0 {
                    return Err(InterpolationError::Syntax(format!("{:?} has a ${{ without its }}", s)));
                }
                let inner = &s[i + 2..j - 1];
                out.push_str(&expand(inner, vars, unset)?);
                i = j;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let name = &s[i + 1..j];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => unset.push(name.to_string()),
                }
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn expand(inner: &str, vars: &BTreeMap<String, String>, unset: &mut Vec<String>) -> Result<String, InterpolationError> {
    let name_end = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let name = &inner[..name_end];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(InterpolationError::Syntax(format!(
            "${{{inner}}} is not a variable: a name is [_A-Za-z][_A-Za-z0-9]*"
        )));
    }
    let op = &inner[name_end..];
    let value = vars.get(name);
    let empty = value.is_none_or(|v| v.is_empty());
    // By prefix, not by byte count: what follows the name may be any character (a byte
    // index inside a multi-byte one would panic; found by fuzzing).
    let (sym, rest) = [":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .find_map(|s| op.strip_prefix(s).map(|rest| (*s, rest)))
        .unwrap_or(if op.is_empty() { ("", "") } else { ("unknown", "") });
    match sym {
        "" => match value {
            Some(v) => Ok(v.clone()),
            None => {
                unset.push(name.to_string());
                Ok(String::new())
            }
        },
        ":-" => {
            if empty {
                interpolate(rest, vars, unset)
            } else {
                Ok(value.cloned().unwrap_or_default())
            }
        }
        "-" => match value {
            Some(v) => Ok(v.clone()),
            None => interpolate(rest, vars, unset),
        },
        ":?" | "?" => {
            let missing = if sym == ":?" { empty } else { value.is_none() };
            if missing {
                let message = interpolate(rest, vars, &mut Vec::new())?;
                Err(InterpolationError::Required { var: name.to_string(), message })
            } else {
                Ok(value.cloned().unwrap_or_default())
            }
        }
        ":+" => {
            if empty {
                Ok(String::new())
            } else {
                interpolate(rest, vars, unset)
            }
        }
        "+" => {
            if value.is_none() {
                Ok(String::new())
            } else {
                interpolate(rest, vars, unset)
            }
        }
        _ => Err(InterpolationError::Syntax(format!(
            "${{{inner}}}: unknown operator {op:?}; the specification allows :-, -, :?, ?, :+ and +"
        ))),
    }
}
