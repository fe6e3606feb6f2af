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

#[cfg(test)]
mod tests {
    use super::*;

    /// compose-go's `template/template_test.go`, with its `defaults` mapping (FOO=first,
    /// BAR empty, JSON={"json":2}): the inputs and the values it expects, as they are there.
    #[test]
    fn compose_gos_template_cases() {
        let vars: BTreeMap<String, String> = [("FOO", "first"), ("BAR", ""), ("JSON", r#"{"json":2}"#)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ok: &[(&str, &str)] = &[
            // TestEscaped, TestSubstituteNoMatch, TestUnescaped
            ("$${foo}", "${foo}"),
            ("foo", "foo"),
            ("a $ string", "a $ string"),
            ("^REGEX$", "^REGEX$"),
            ("$}", "$}"),
            ("$", "$"),
            // TestNonBraced, TestNoValueNoDefault, TestValueNoDefault, TestNoValueWithDefault
            ("$FOO-bar", "first-bar"),
            ("This ${missing} var", "This  var"),
            ("This ${BAR} var", "This  var"),
            ("This $FOO var", "This first var"),
            ("This ${FOO} var", "This first var"),
            ("ok ${missing:-def}", "ok def"),
            ("ok ${missing-def}", "ok def"),
            // TestLazyDefault…, soft and hard defaults, presence
            ("${A:+${A},}B", "B"),
            ("${A:-${B}}", ""),
            ("ok ${BAR:-def}", "ok def"),
            ("ok ${FOO:-def}", "ok first"),
            ("ok ${BAR-def}", "ok "),
            ("ok ${UNSET_VAR:+presence_value}", "ok "),
            ("ok ${UNSET_VAR+presence_value}", "ok "),
            ("ok ${FOO:+presence_value}", "ok presence_value"),
            ("ok ${FOO+presence_value}", "ok presence_value"),
            ("ok ${BAR+presence_value}", "ok presence_value"),
            ("ok ${BAR:+presence_value}", "ok "),
            ("ok ${BAR:-/non:-alphanumeric}", "ok /non:-alphanumeric"),
            // TestInterpolationExternalInterference
            ("-ok ${BAR:-defaultValue}", "-ok defaultValue"),
            ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
            ("-ok ${FOO:-defaultValue}", "-ok first"),
            (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"),
            (":-ok ${BAR-defaultValue}", ":-ok "),
            (":?ok ${BAR-defaultValue}", ":?ok "),
            (":?ok ${BAR:-defaultValue}", ":?ok defaultValue"),
            (":+ok ${BAR:-defaultValue}", ":+ok defaultValue"),
            ("+ok ${BAR-defaultValue}", "+ok "),
            ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
            // TestDefaultsWithNestedExpansion
            ("ok ${UNSET_VAR-$FOO}", "ok first"),
            ("ok ${UNSET_VAR-${FOO}}", "ok first"),
            ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR:-$FOO}", "ok first"),
            ("ok ${BAR:-${FOO}}", "ok first"),
            ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR+$FOO}", "ok first"),
            ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
            // TestDefaultsForMandatoryVariables, TestSubstituteWithReplacementFunc's last
            ("ok ${FOO:?err}", "ok first"),
            ("ok ${FOO?err}", "ok first"),
            ("ok ${BAR?err}", "ok "),
            ("ok ${SUBDOMAIN:-redis}.${FOO:?}", "ok redis.first"),
            // TestPrecedence
            ("${UNSET_VAR-myerror?msg}", "myerror?msg"),
            ("${FOO?bar-baz}", "first"),
            ("${BAR:-default_value_for_empty_var}", "default_value_for_empty_var"),
            ("${UNSET_VAR-default_value_for_unset_var}", "default_value_for_unset_var"),
            // TestSubstitutionFunctionChoice (the first operator wins), VARNAME unset
            ("${VARNAME:-value}", "value"),
            ("${VARNAME-va:-lu:?e}", "va:-lu:?e"),
            ("${VARNAME-va+lu?e}", "va+lu?e"),
            ("${VARNAME-va?lu+e}", "va?lu+e"),
            ("${VARNAME:+va:?lu:-e}", ""),
            ("${VARNAME+va:+lue}", ""),
            ("${FOO:+va:?lu:-e}", "va:?lu:-e"),
            ("${FOO+va:+lue}", "va:+lue"),
            ("${FOO+va?lu-e}", "va?lu-e"),
            ("${FOO+va-lu?e}", "va-lu?e"),
            // TestNoValueWithCurlyBracesDefault, TestValueWithCurlyBracesDefault
            (r#"ok ${missing:-{"json":1}}"#, r#"ok {"json":1}"#),
            (r#"ok ${missing-{"json":1}}"#, r#"ok {"json":1}"#),
            (r#"ok ${JSON:-{"json":1}}"#, r#"ok {"json":2}"#),
            (r#"ok ${JSON-{"json":1}}"#, r#"ok {"json":2}"#),
        ];
        let mut failed = Vec::new();
        for (input, want) in ok {
            match interpolate(input, &vars, &mut Vec::new()) {
                Ok(got) if got == *want => {}
                other => failed.push(format!("{input:?}: got {other:?}, want {want:?}")),
            }
        }
        // TestMandatoryVariableErrors (+ nested expansion), TestPrecedence,
        // TestSubstitutionFunctionChoice: the variable and the message compose-go reports.
        let required: &[(&str, &str, &str)] = &[
            ("not ok ${UNSET_VAR:?Mandatory Variable Unset}", "UNSET_VAR", "Mandatory Variable Unset"),
            ("not ok ${BAR:?Mandatory Variable Empty}", "BAR", "Mandatory Variable Empty"),
            ("not ok ${UNSET_VAR:?}", "UNSET_VAR", ""),
            ("not ok ${UNSET_VAR?Mandatory Variable Unset}", "UNSET_VAR", "Mandatory Variable Unset"),
            ("not ok ${UNSET_VAR?}", "UNSET_VAR", ""),
            ("not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}", "UNSET_VAR", "Mandatory Variable first"),
            ("not ok ${UNSET_VAR?Mandatory Variable ${FOO}}", "UNSET_VAR", "Mandatory Variable first"),
            ("${UNSET_VAR?bar-baz}", "UNSET_VAR", "bar-baz"),
            ("${VARNAME:?val?ue}", "VARNAME", "val?ue"),
            ("${VARNAME?val:?ue}", "VARNAME", "val:?ue"),
            ("${VARNAME?va-lu+e:?e}", "VARNAME", "va-lu+e:?e"),
            ("${VARNAME?va+lu-e:?e}", "VARNAME", "va+lu-e:?e"),
        ];
        for (input, var, message) in required {
            let want = InterpolationError::Required { var: (*var).into(), message: (*message).into() };
            match interpolate(input, &vars, &mut Vec::new()) {
                Err(e) if e == want => {}
                other => failed.push(format!("{input:?}: got {other:?}, want {want:?}")),
            }
        }
        // TestInvalid: "Invalid template" there, a syntax error here.
        for input in ["${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}"] {
            if !matches!(interpolate(input, &vars, &mut Vec::new()), Err(InterpolationError::Syntax(_))) {
                failed.push(format!("{input:?}: not refused as invalid"));
            }
        }
        assert!(failed.is_empty(), "{} compose-go template cases differ:\n{}", failed.len(), failed.join("\n"));
    }

    /// TestLazyDefaultDoesNotWarn / TestLazyDefaultWarnsWhenUsed: an unset variable is
    /// reported only where its value is used.
    #[test]
    fn only_a_used_unset_variable_is_reported() {
        let vars = BTreeMap::new();
        let mut unset = Vec::new();
        assert_eq!(interpolate("${A:+${A},}B", &vars, &mut unset).as_deref(), Ok("B"));
        assert!(unset.is_empty(), "{unset:?}");
        assert_eq!(interpolate("${A:-${B}}", &vars, &mut unset).as_deref(), Ok(""));
        assert_eq!(unset, ["B"]);
        // TestLazyRequiredMessageDoesNotWarn: A set, the message is never read.
        let vars: BTreeMap<String, String> = [("A".to_string(), "value".to_string())].into();
        let mut unset = Vec::new();
        assert_eq!(interpolate("${A?${B}}", &vars, &mut unset).as_deref(), Ok("value"));
        assert!(unset.is_empty(), "{unset:?}");
    }
}
