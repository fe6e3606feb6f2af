//! The `.env` format, as compose reads it: a port of compose-go's `dotenv` parser
//! (`dotenv/parser.go`, Apache-2.0), which is what `docker compose` uses for the `.env`
//! beside a compose file and for every `env_file:`. Its test cases are ported below as the
//! oracle (docs/compose.md lists where we differ: nowhere, but for the lookup of the
//! agent's own environment, which compose does and Driftless never does).
//!
//! In short: `KEY=value`, `KEY: value`, `export KEY=value`; `#` comments on their own line,
//! and after ` #` in an unquoted value; single quotes literal (`\'` escapes the quote);
//! double quotes with `\a\b\f\n\r\t\v\\\"\$` and `\0ooo` escapes; values may span lines
//! inside quotes; unquoted and double-quoted values are interpolated (`${VAR}`,
//! `${VAR:-default}`, …) with the variables defined above them in the same file; a key
//! alone on its line takes its value from the lookup (none for Driftless: it stays unset);
//! keys that start with a digit are ignored when a file is read; a UTF-8 BOM is skipped.

use std::collections::BTreeMap;

/// Why a `.env` text could not be read: the 1-based line and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for DotenvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Read a `.env` file's text as compose does (digit-led keys dropped, no outside lookup).
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut out = parse_with(text, &|_| None)?;
    out.retain(|k, _| !k.trim_start().starts_with(|c: char| c.is_ascii_digit()));
    Ok(out)
}

/// Parse `text`; `lookup` answers for keys written alone on a line and for variables a value
/// names that the file has not defined (yet).
pub fn parse_with(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, DotenvError> {
    let src = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser { line: 1 };
    let mut out = BTreeMap::new();
    let mut cutset = src;
    loop {
        cutset = p.statement_start(cutset);
        if cutset.is_empty() {
            break;
        }
        let (key, left, inherited) = p.key_name(cutset)?;
        if key.contains(' ') {
            return Err(p.err("key cannot contain a space"));
        }
        if inherited {
            if let Some(v) = lookup(&key) {
                out.insert(key, v);
            }
            cutset = left;
            continue;
        }
        let (value, left) = p.value(left, &out, lookup)?;
        out.insert(key, value);
        cutset = left;
    }
    Ok(out)
}

struct Parser {
    line: usize,
}

/// A space that is not a line break (compose-go's `isSpace`).
fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

impl Parser {
    fn err(&self, message: impl Into<String>) -> DotenvError {
        DotenvError { line: self.line, message: message.into() }
    }

    /// Skip blank space and comment lines; the text from the next statement on.
    fn statement_start<'a>(&mut self, mut src: &'a str) -> &'a str {
        loop {
            let Some(pos) = src.find(|c: char| {
                if c == '\n' {
                    self.line += 1;
                }
                !c.is_whitespace()
            }) else {
                return "";
            };
            src = &src[pos..];
            if !src.starts_with('#') {
                return src;
            }
            match src.find('\n') {
                Some(nl) => src = &src[nl..],
                None => return "",
            }
        }
    }

    /// The key, the text after its separator, and whether the key stood alone on its line.
    fn key_name<'a>(&mut self, src: &'a str) -> Result<(String, &'a str, bool), DotenvError> {
        let mut src = src;
        if let Some(rest) = src.strip_prefix("export") {
            if rest.starts_with(|c: char| c.is_whitespace()) {
                src = rest.trim_start_matches(is_space);
            }
        }
        let mut key = "";
        let mut offset = 0;
        let mut inherited = false;
        for (i, c) in src.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key = &src[..i];
                    offset = i + 1;
                    inherited = c == '\n';
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    let first = src.split('\n').next().unwrap_or("");
                    return Err(self.err(format!("unexpected character {c:?} in variable name {first:?}")));
                }
            }
        }
        if src.is_empty() {
            return Err(self.err("zero length string"));
        }
        if inherited && !key.contains(' ') {
            self.line += 1;
        }
        let key = key.trim_end().to_string();
        let rest = src[offset..].trim_start_matches(is_space);
        Ok((key, rest, inherited))
    }

    /// The value at the start of `src` and the text after it.
    fn value<'a>(
        &mut self,
        src: &'a str,
        defined: &BTreeMap<String, String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, &'a str), DotenvError> {
        let quote = match src.as_bytes().first() {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => {
                let (value, rest) = src.split_once('\n').unwrap_or((src, ""));
                self.line += 1;
                let value = value.split(" #").next().unwrap_or("").trim_end();
                return Ok((self.expand(value, defined, lookup)?, rest));
            }
        };
        let bytes = src.as_bytes();
        let mut escaped = false;
        let mut chars: Vec<u8> = Vec::new();
        for i in 1..bytes.len() {
            let c = bytes[i];
            if c == b'\n' {
                self.line += 1;
            }
            if c != quote {
                if !escaped && c == b'\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push(b'\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            let value = String::from_utf8_lossy(&chars).into_owned();
            let value = if quote == b'"' { self.expand(&expand_escapes(&value), defined, lookup)? } else { value };
            return Ok((value, &src[i + 1..]));
        }
        let end = src.find('\n').unwrap_or(src.len());
        Err(self.err(format!("unterminated quoted value {}", &src[..end])))
    }

    /// Interpolate `value` with the variables defined so far (compose's `template`).
    fn expand(
        &self,
        value: &str,
        defined: &BTreeMap<String, String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, DotenvError> {
        if !value.contains('$') {
            return Ok(value.to_string());
        }
        let mut vars = defined.clone();
        // As compose-go: the lookup answers first, then what the file defined above.
        for name in mentioned(value) {
            if let Some(v) = lookup(&name) {
                vars.insert(name, v);
            }
        }
        let mut unset = Vec::new();
        super::interpolate::interpolate(value, &vars, &mut unset).map_err(|e| match e {
            super::interpolate::InterpolationError::Required { var, message } => {
                self.err(format!("required variable {var} is missing a value: {message}"))
            }
            super::interpolate::InterpolationError::Syntax(s) => self.err(format!("invalid interpolation: {s}")),
        })
    }
}

/// Variable names a template mentions (`$NAME`, `${NAME…}`), for the lookup.
fn mentioned(value: &str) -> Vec<String> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = if b.get(i + 1) == Some(&b'{') { i + 2 } else { i + 1 };
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start {
                out.push(value[start..j].to_string());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Double-quoted escapes (compose-go's `expandEscapes`): `\a \b \f \n \r \t \v \\ \"` and
/// `\0ooo` (three octal digits) become their characters; `\$` becomes `$$` (a literal `$`
/// after interpolation); anything else stays as written.
fn expand_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&(_, next)) = chars.peek() else {
            out.push('\\');
            continue;
        };
        let simple = match next {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(r) = simple {
            out.push(r);
            chars.next();
            continue;
        }
        if next == '$' {
            out.push_str("$$");
            chars.next();
            continue;
        }
        if next == '0' {
            // `\0` and up to three digits; only exactly three octal ones (≤ 0o377) convert.
            let digits: String = s[i + 2..].chars().take_while(char::is_ascii_digit).take(3).collect();
            let value = (digits.len() == 3).then(|| u32::from_str_radix(&digits, 8).ok()).flatten();
            match value.and_then(|v| (v <= 0o377).then(|| char::from_u32(v)).flatten()) {
                Some(ch) => out.push(ch),
                None => {
                    out.push('\\');
                    out.push('0');
                    out.push_str(&digits);
                }
            }
            chars.next();
            for _ in 0..digits.len() {
                chars.next();
            }
            continue;
        }
        out.push('\\');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str, key: &str) -> Option<String> {
        parse_with(line, &|_| None).ok().and_then(|m| m.get(key).cloned())
    }

    /// compose-go's `godotenv_test.go` (`parseAndCompare` cases), as they are there.
    #[test]
    fn compose_gos_parse_cases() {
        let table: &[(&str, &str, &str)] = &[
            ("FOO=bar", "FOO", "bar"),
            ("FOO =bar", "FOO", "bar"),
            ("FOO= bar", "FOO", "bar"),
            (r##"FOO="bar""##, "FOO", "bar"),
            ("FOO='bar'", "FOO", "bar"),
            (r##"FOO="escaped\"bar""##, "FOO", r#"escaped"bar"#),
            (r##"FOO="\"quoted\"""##, "FOO", r#""quoted""#),
            (r##"FOO="'d'""##, "FOO", "'d'"),
            ("OPTION_A: 1", "OPTION_A", "1"),
            ("OPTION_A: Foo=bar", "OPTION_A", "Foo=bar"),
            ("OPTION_A=1:B", "OPTION_A", "1:B"),
            ("export OPTION_A=2", "OPTION_A", "2"),
            (r"export OPTION_B='\n'", "OPTION_B", "\\n"),
            ("export exportFoo=2", "exportFoo", "2"),
            ("exportFOO=2", "exportFOO", "2"),
            ("export_FOO =2", "export_FOO", "2"),
            ("export.FOO= 2", "export.FOO", "2"),
            ("export\tOPTION_A=2", "OPTION_A", "2"),
            ("  export OPTION_A=2", "OPTION_A", "2"),
            ("\texport OPTION_A=2", "OPTION_A", "2"),
            (r##"export OPTION_A="export A""##, "OPTION_A", "export A"),
            (r##"FOO="bar\nbaz""##, "FOO", "bar\nbaz"),
            (r"FOO=a\tb", "FOO", r"a\tb"),
            (r##"FOO="a\tb""##, "FOO", "a\tb"),
            (r##"KEY="Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\Z\0123Z""##, "KEY", "Z\u{7}Z\u{8}Z\u{c}Z\nZ\rZ\tZ\u{b}Z\\ZSZ"),
            ("FOO.BAR=foobar", "FOO.BAR", "foobar"),
            ("FOO=foobar=", "FOO", "foobar="),
            ("FOO=bar ", "FOO", "bar"),
            ("FOO=bar # this is foo", "FOO", "bar"),
            ("FOO=bar #this is foo", "FOO", "bar"),
            ("FOO=bar #", "FOO", "bar"),
            ("FOO=123#not-an-inline-comment", "FOO", "123#not-an-inline-comment"),
            (r##"FOO="bar#baz""##, "FOO", "bar#baz"),
            (r##"FOO="bar#baz"#"##, "FOO", "bar#baz"),
            (r##"FOO="bar#baz" # comment"##, "FOO", "bar#baz"),
            ("FOO='bar#baz' # comment", "FOO", "bar#baz"),
            (r##"FOO="bar#baz#bang" # comment"##, "FOO", "bar#baz#bang"),
            (r##"FOO="ba#r""##, "FOO", "ba#r"),
            ("FOO='ba#r'", "FOO", "ba#r"),
            (r##"FOO="bar\n\ b\az""##, "FOO", "bar\n\\ b\u{7}z"),
            (r##"FOO="bar\\\n\ b\az""##, "FOO", "bar\\\n\\ b\u{7}z"),
            (r##"FOO="bar\\r\ b\az""##, "FOO", "bar\\r\\ b\u{7}z"),
            (r##"FOO="bar\nbaz\\""##, "FOO", "bar\nbaz\\"),
            (r##"="value""##, "", "value"),
            (" KEY =value", "KEY", "value"),
            ("   KEY=value", "KEY", "value"),
            ("\tKEY=value", "KEY", "value"),
            (r##"KEY="\0123""##, "KEY", "S"),
            (r##"KEY="\x07""##, "KEY", r"\x07"),
            (r##"KEY="\u12e4""##, "KEY", r"\u12e4"),
            (r##"KEY="\U00101234""##, "KEY", r"\U00101234"),
            // Issue 26: a quoted value followed by a comment loses its quotes.
            (r##"SECRET_KEY="s3cret"  # change me"##, "SECRET_KEY", "s3cret"),
        ];
        for (line, key, want) in table {
            assert_eq!(one(line, key).as_deref(), Some(*want), "{line:?}");
        }
    }

    /// compose-go's fixture files and the values its tests expect of them.
    #[test]
    fn compose_gos_fixture_files() {
        let quoted = "OPTION_A='1'\nOPTION_B='2'\nOPTION_C=''\nOPTION_D='\\n'\nOPTION_E=\"1\"\nOPTION_F=\"2\"\nOPTION_G=\"\"\nOPTION_H=\"\\n\"\nOPTION_I = \"echo 'asd'\" # Inline comment\nOPTION_J = 'first line\nsecond line\nthird line\nand so on'\nOPTION_K='Let\\'s go!'\nOPTION_Z = \"last value\"\n";
        let m = parse(quoted).unwrap_or_default();
        let want: &[(&str, &str)] = &[
            ("OPTION_A", "1"),
            ("OPTION_B", "2"),
            ("OPTION_C", ""),
            ("OPTION_D", "\\n"),
            ("OPTION_E", "1"),
            ("OPTION_F", "2"),
            ("OPTION_G", ""),
            ("OPTION_H", "\n"),
            ("OPTION_I", "echo 'asd'"),
            ("OPTION_J", "first line\nsecond line\nthird line\nand so on"),
            ("OPTION_K", "Let's go!"),
            ("OPTION_Z", "last value"),
        ];
        for (k, v) in want {
            assert_eq!(m.get(*k).map(String::as_str), Some(*v), "quoted.env {k}");
        }
        let plain = "OPTION_A=1\nOPTION_B=2\nOPTION_C= 3\nOPTION_D =4\nOPTION_E = 5\n456 = ABC\nOPTION_F = \nOPTION_G=\nOPTION_H = my string # Inline comment\n";
        let m = parse(plain).unwrap_or_default();
        assert_eq!(m.len(), 8, "{m:?}");
        assert_eq!(m["OPTION_C"], "3");
        assert_eq!(m["OPTION_F"], "");
        assert_eq!(m["OPTION_H"], "my string");
        let subs = "OPTION_A=1\nOPTION_B=${OPTION_A}\nOPTION_C=$OPTION_B\nOPTION_D=${OPTION_A}_${OPTION_B}\nOPTION_E=${OPTION_NOT_DEFINED}\n";
        let m = parse(subs).unwrap_or_default();
        assert_eq!((m["OPTION_B"].as_str(), m["OPTION_C"].as_str(), m["OPTION_D"].as_str()), ("1", "1", "1_1"));
        assert_eq!(m["OPTION_E"], "");
        let unquoted = "OPTION_A = \"some quoted phrase\"\nOPTION_B=first one with an unquoted phrase\nOPTION_D = then another one with an unquoted phrase special è char\n";
        let m = parse(unquoted).unwrap_or_default();
        assert_eq!(m["OPTION_A"], "some quoted phrase");
        assert_eq!(m["OPTION_B"], "first one with an unquoted phrase");
        assert_eq!(m["OPTION_D"], "then another one with an unquoted phrase special è char");
        let special = "VAR.WITH.DOTS=dots\nVAR_WITH_UNDERSCORES=underscores\nVAR-WITH-DASHES=dashes\n";
        assert_eq!(parse(special).unwrap_or_default().len(), 3);
        let equals = "export OPTION_A='postgres://localhost:5432/database?sslmode=disable'\n\n";
        assert_eq!(parse(equals).unwrap_or_default()["OPTION_A"], "postgres://localhost:5432/database?sslmode=disable");
        assert_eq!(parse("\u{feff}OPTION_A=1\n").unwrap_or_default()["OPTION_A"], "1", "utf8-bom.env");
    }

    /// compose-go's `godotenv_var_expansion_test.go`, with EMPTY_VAR="" and TEST_VAR set.
    #[test]
    fn compose_gos_expansion_cases() {
        let pre = "EMPTY_VAR=\nTEST_VAR=Test Value\n";
        let get = |line: &str| parse(&format!("{pre}{line}\n")).map(|m| m["RESULT"].clone());
        assert_eq!(get("RESULT=${UNSET_VAR:-Default Value}").as_deref(), Ok("Default Value"));
        assert_eq!(get("RESULT=${EMPTY_VAR:-Default Value}").as_deref(), Ok("Default Value"));
        assert_eq!(get("RESULT=${TEST_VAR:-Default Value}").as_deref(), Ok("Test Value"));
        assert_eq!(get("RESULT=${UNSET_VAR-Default Value}").as_deref(), Ok("Default Value"));
        assert_eq!(get("RESULT=${EMPTY_VAR-Default Value}").as_deref(), Ok(""));
        assert_eq!(get("RESULT=${TEST_VAR-Default Value}").as_deref(), Ok("Test Value"));
        assert!(get("RESULT=${UNSET_VAR:?Test error}").is_err());
        assert!(get("RESULT=${EMPTY_VAR:?Test error}").is_err());
        assert_eq!(get("RESULT=${TEST_VAR:?Default Value}").as_deref(), Ok("Test Value"));
        assert!(get("RESULT=${UNSET_VAR?Test error}").is_err());
        assert_eq!(get("RESULT=${EMPTY_VAR?Test error}").as_deref(), Ok(""));
        // Issue 26: a value built from an earlier one (a real project's database URL).
        let m = parse(
            "DOMAIN=example.org\nURL=https://${DOMAIN}/x\nLIT='${DOMAIN}'\nESC=\"\\$DOMAIN\"\nDOLLARS=$$DOMAIN\n",
        )
        .unwrap_or_default();
        assert_eq!(m["URL"], "https://example.org/x");
        assert_eq!(m["LIT"], "${DOMAIN}", "single quotes are literal");
        assert_eq!(m["ESC"], "$DOMAIN");
        assert_eq!(m["DOLLARS"], "$DOMAIN");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("A=1\nB C=2\n").err();
        assert_eq!(e.map(|e| e.line), Some(2));
        let e = parse("A=1\n\nB=\"open\nC=2\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unterminated quoted value"), "{e}");
        let e = parse("A=1\nB$=2\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("line 2: unexpected character '$'"), "{e}");
        // A key alone on its line takes its value from the lookup; there is none here.
        assert_eq!(parse("ALONE\nB=2\n").unwrap_or_default().get("ALONE"), None);
        assert_eq!(parse_with("ALONE\n", &|k| (k == "ALONE").then(|| "x".into())).unwrap_or_default()["ALONE"], "x");
    }
}
