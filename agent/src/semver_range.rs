//! npm-style semver ranges (the syntax of node's `semver` package, which Flux and most
//! operators know) and the tag pick of `source.ref.semver`: the highest tag that is strict
//! semver after an optional lowercase `v` and satisfies the range. Pure; no Git here.
//!
//! Grammar: comparator sets joined by `||`; a set is a hyphen range (`1.2.3 - 2.3`) or
//! space-separated comparators, each a primitive (`<`, `<=`, `>`, `>=`, `=` + partial
//! version), a tilde (`~1.2`), a caret (`^0.2.3`), an X-range (`1.x`, `1.2.*`, `*`) or a bare
//! version. Pre-release versions match only when a comparator of the same set carries a
//! pre-release on the same major.minor.patch.

use std::fmt;

use semver::{Prerelease, Version};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        match self.op {
            Op::Lt => v < &self.version,
            Op::Le => v <= &self.version,
            Op::Gt => v > &self.version,
            Op::Ge => v >= &self.version,
            Op::Eq => v == &self.version,
        }
    }
}

/// A parsed range. `Display` gives the text it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    text: String,
    /// Alternatives (`||`); each is a conjunction of comparators.
    sets: Vec<Vec<Comparator>>,
}

/// Why a range was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a semver range: {why}; write e.g. \">=1.0.0\", \"^1.4\", \"~1.2.3\", \"1.x\", \"1.2.3 - 1.4\" or \">=1.0.0 <2.0.0 || >=3.0.0\"")]
pub struct RangeError {
    pub text: String,
    pub why: String,
}

/// A partial version: missing or wildcard parts are `None`.
#[derive(Clone, Debug)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

impl Partial {
    fn floor(&self) -> Version {
        let mut v = Version::new(self.major.unwrap_or(0), self.minor.unwrap_or(0), self.patch.unwrap_or(0));
        if self.patch.is_some() {
            v.pre = self.pre.clone();
        }
        v
    }

    fn is_any(&self) -> bool {
        self.major.is_none()
    }
}

fn zero_pre() -> Prerelease {
    Prerelease::new("0").unwrap_or(Prerelease::EMPTY)
}

/// `major.minor.patch-0`: the lowest version of that triple, pre-releases included.
fn lowest(major: u64, minor: u64, patch: u64) -> Version {
    let mut v = Version::new(major, minor, patch);
    v.pre = zero_pre();
    v
}

fn parse_partial(s: &str) -> Result<Partial, String> {
    let s = s.trim();
    let s = s.strip_prefix('=').unwrap_or(s).trim_start();
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    if s.is_empty() {
        return Err("a version is missing".into());
    }
    let (core, pre) = match s.split_once(['-', '+']) {
        Some((c, _)) if s.as_bytes()[c.len()] == b'+' => (c, Prerelease::EMPTY),
        Some((_, "")) => return Err(format!("{s:?} ends in a separator")),
        Some((c, rest)) => {
            let pre_text = rest.split_once('+').map_or(rest, |(p, _)| p);
            (c, Prerelease::new(pre_text).map_err(|e| format!("bad pre-release {pre_text:?}: {e}"))?)
        }
        None => (s, Prerelease::EMPTY),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 {
        return Err(format!("{s:?} has more than three numbers"));
    }
    let mut nums: [Option<u64>; 3] = [None; 3];
    let mut wild = false;
    for (i, p) in parts.iter().enumerate() {
        if matches!(*p, "x" | "X" | "*") {
            wild = true;
            continue;
        }
        if wild {
            return Err(format!("{s:?}: a number after a wildcard"));
        }
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0')) {
            return Err(format!("{p:?} in {s:?} is not a version number"));
        }
        nums[i] = Some(p.parse().map_err(|_| format!("{p:?} is too large"))?);
    }
    if !pre.is_empty() && nums[2].is_none() {
        return Err(format!("{s:?}: a pre-release needs a full major.minor.patch"));
    }
    Ok(Partial { major: nums[0], minor: nums[1], patch: nums[2], pre })
}

/// The comparators an X-range / partial stands for (`1.2` = `>=1.2.0 <1.3.0-0`).
fn x_range(p: &Partial) -> Vec<Comparator> {
    match (p.major, p.minor, p.patch) {
        (None, _, _) => vec![Comparator { op: Op::Ge, version: Version::new(0, 0, 0) }],
        (Some(ma), None, _) => vec![
            Comparator { op: Op::Ge, version: Version::new(ma, 0, 0) },
            Comparator { op: Op::Lt, version: lowest(ma + 1, 0, 0) },
        ],
        (Some(ma), Some(mi), None) => vec![
            Comparator { op: Op::Ge, version: Version::new(ma, mi, 0) },
            Comparator { op: Op::Lt, version: lowest(ma, mi + 1, 0) },
        ],
        (Some(_), Some(_), Some(_)) => vec![Comparator { op: Op::Eq, version: p.floor() }],
    }
}

fn primitive(op: Op, p: &Partial) -> Vec<Comparator> {
    if p.is_any() {
        return match op {
            Op::Lt | Op::Gt => vec![Comparator { op: Op::Lt, version: lowest(0, 0, 0) }], // matches nothing
            _ => x_range(p),
        };
    }
    let (ma, mi, pa) = (p.major.unwrap_or(0), p.minor, p.patch);
    match (op, mi, pa) {
        (Op::Eq, _, _) => x_range(p),
        (_, Some(_), Some(_)) => vec![Comparator { op, version: p.floor() }],
        // Partial versions: `>1.2` = `>=1.3.0`, `<=1.2` = `<1.3.0-0`, `<1.2` = `<1.2.0-0`, `>=1.2` = `>=1.2.0`.
        (Op::Gt, None, _) => vec![Comparator { op: Op::Ge, version: Version::new(ma + 1, 0, 0) }],
        (Op::Gt, Some(mi), None) => vec![Comparator { op: Op::Ge, version: Version::new(ma, mi + 1, 0) }],
        (Op::Ge, _, _) => vec![Comparator { op: Op::Ge, version: p.floor() }],
        (Op::Lt, _, _) => vec![Comparator { op: Op::Lt, version: lowest(ma, mi.unwrap_or(0), 0) }],
        (Op::Le, None, _) => vec![Comparator { op: Op::Lt, version: lowest(ma + 1, 0, 0) }],
        (Op::Le, Some(mi), None) => vec![Comparator { op: Op::Lt, version: lowest(ma, mi + 1, 0) }],
    }
}

fn tilde(p: &Partial) -> Vec<Comparator> {
    match (p.major, p.minor, p.patch) {
        (Some(ma), Some(mi), Some(_)) => vec![
            Comparator { op: Op::Ge, version: p.floor() },
            Comparator { op: Op::Lt, version: lowest(ma, mi + 1, 0) },
        ],
        _ => x_range(p),
    }
}

fn caret(p: &Partial) -> Vec<Comparator> {
    let (Some(ma), Some(mi)) = (p.major, p.minor) else { return x_range(p) };
    let upper = match (ma, mi, p.patch) {
        (0, 0, Some(pa)) => lowest(0, 0, pa + 1),
        (0, 0, None) => lowest(0, 1, 0),
        (0, mi, _) => lowest(0, mi + 1, 0),
        (ma, _, _) => lowest(ma + 1, 0, 0),
    };
    vec![Comparator { op: Op::Ge, version: p.floor() }, Comparator { op: Op::Lt, version: upper }]
}

fn hyphen(lo: &Partial, hi: &Partial) -> Vec<Comparator> {
    let mut out = Vec::new();
    if !lo.is_any() {
        out.push(Comparator { op: Op::Ge, version: lo.floor() });
    }
    match (hi.major, hi.minor, hi.patch) {
        (None, _, _) => {}
        (Some(_), Some(_), Some(_)) => out.push(Comparator { op: Op::Le, version: hi.floor() }),
        (Some(ma), None, _) => out.push(Comparator { op: Op::Lt, version: lowest(ma + 1, 0, 0) }),
        (Some(ma), Some(mi), None) => out.push(Comparator { op: Op::Lt, version: lowest(ma, mi + 1, 0) }),
    }
    if out.is_empty() {
        out.push(Comparator { op: Op::Ge, version: Version::new(0, 0, 0) });
    }
    out
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let err = |why: String| RangeError { text: text.to_string(), why };
        let mut sets = Vec::new();
        for alt in text.split("||") {
            let alt = alt.trim();
            let mut set = Vec::new();
            if let Some((lo, hi)) = alt.split_once(" - ") {
                set.extend(hyphen(&parse_partial(lo).map_err(err)?, &parse_partial(hi).map_err(err)?));
            } else {
                // Join operators to their versions: `>= 1.2.3` is `>=1.2.3`.
                let mut tokens: Vec<String> = Vec::new();
                for t in alt.split_whitespace() {
                    match tokens.last_mut() {
                        Some(last) if matches!(last.as_str(), "<" | "<=" | ">" | ">=" | "=" | "~" | "^" | "~>") => {
                            last.push_str(t)
                        }
                        _ => tokens.push(t.to_string()),
                    }
                }
                if tokens.is_empty() {
                    set.extend(x_range(&Partial { major: None, minor: None, patch: None, pre: Prerelease::EMPTY }));
                }
                for t in &tokens {
                    let (op, rest) = split_op(t);
                    let p = parse_partial(rest).map_err(err)?;
                    set.extend(match op {
                        "" | "=" => x_range(&p),
                        "<" => primitive(Op::Lt, &p),
                        "<=" => primitive(Op::Le, &p),
                        ">" => primitive(Op::Gt, &p),
                        ">=" => primitive(Op::Ge, &p),
                        "~" | "~>" => tilde(&p),
                        "^" => caret(&p),
                        other => return Err(err(format!("unknown operator {other:?}"))),
                    });
                }
            }
            sets.push(set);
        }
        Ok(Range { text: text.to_string(), sets })
    }

    /// Whether `v` satisfies the range, with npm's pre-release rule.
    pub fn matches(&self, v: &Version) -> bool {
        self.sets.iter().any(|set| {
            set.iter().all(|c| c.matches(v))
                && (v.pre.is_empty()
                    || set.iter().any(|c| {
                        !c.version.pre.is_empty()
                            && (c.version.major, c.version.minor, c.version.patch) == (v.major, v.minor, v.patch)
                    }))
        })
    }
}

fn split_op(t: &str) -> (&str, &str) {
    for op in ["<=", ">=", "~>", "<", ">", "=", "~", "^"] {
        if let Some(rest) = t.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", t)
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A tag's version: strict semver after an optional lowercase `v`.
pub fn tag_version(tag: &str) -> Option<Version> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Version::parse(s).ok()
}

/// The highest version among `tags` that satisfies `range` (never the newest or the
/// lexically last). Two tags of equal version (`v1.0.0` and `1.0.0`): the first by name.
pub fn pick<'a>(range: &Range, tags: impl IntoIterator<Item = &'a str>) -> Option<(&'a str, Version)> {
    let mut best: Option<(&'a str, Version)> = None;
    for t in tags {
        let Some(v) = tag_version(t) else { continue };
        if !range.matches(&v) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((bt, bv)) => v > *bv || (v == *bv && t < *bt),
        };
        if better {
            best = Some((t, v));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(range: &str, v: &str) -> bool {
        Range::parse(range).unwrap().matches(&Version::parse(v).unwrap())
    }

    #[test]
    fn npm_semantics_table() {
        // (range, version, expected) — cases from node-semver's own test fixtures.
        let table = [
            (">=1.0.0", "1.0.0", true),
            (">=1.0.0", "0.9.9", false),
            ("1.0.0 - 2.0.0", "1.2.3", true),
            ("1.0.0 - 2.0.0", "2.0.1", false),
            ("1.2.3 - 1.4", "1.4.9", true),
            ("1.2.3 - 1.4", "1.5.0", false),
            ("1.2 - 2.3.4", "1.2.0", true),
            ("^1.2.3", "1.9.0", true),
            ("^1.2.3", "2.0.0", false),
            ("^1.2.3", "1.2.2", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.3", true),
            ("^0.0.3", "0.0.4", false),
            ("^0.0", "0.0.9", true),
            ("^0.0", "0.1.0", false),
            ("^1.x", "1.9.9", true),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1.2", "1.2.0", true),
            ("~1", "1.9.0", true),
            ("~1", "2.0.0", false),
            ("1.x", "1.5.0", true),
            ("1.x", "2.0.0", false),
            ("1.2.*", "1.2.7", true),
            ("*", "9.9.9", true),
            ("", "0.0.1", true),
            (">1.2", "1.2.9", false),
            (">1.2", "1.3.0", true),
            ("<1.2", "1.1.9", true),
            ("<1.2", "1.2.0", false),
            ("<=1.2", "1.2.9", true),
            ("<=1.2", "1.3.0", false),
            ("=1.2.3", "1.2.3", true),
            ("v1.2.3", "1.2.3", true),
            (">= 1.2.3 < 2", "1.9.0", true),
            (">=1.0.0 <2.0.0 || >=3.0.0", "2.5.0", false),
            (">=1.0.0 <2.0.0 || >=3.0.0", "3.1.0", true),
            // Pre-releases need a comparator with a pre-release on the same triple.
            (">=1.0.0", "1.1.0-rc.1", false),
            (">=1.1.0-rc.0", "1.1.0-rc.1", true),
            (">=1.1.0-rc.0", "1.2.0-rc.1", false),
            (">=1.1.0-rc.0", "1.2.0", true),
            ("^1.2.3-beta.2", "1.2.3-beta.4", true),
            ("^1.2.3-beta.2", "1.2.4-beta.2", false),
            ("~1.2.3-beta.2", "1.2.3-beta.3", true),
            ("1.x", "1.1.0-alpha", false),
        ];
        for (range, v, want) in table {
            assert_eq!(sat(range, v), want, "{range:?} vs {v}");
        }
    }

    #[test]
    fn refuses_bad_ranges() {
        for bad in ["1.2.3.4", "a.b", "^", ">=x.1", "01.2.3", "1.2.3-", "!1.0", "1.x.3"] {
            assert!(Range::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn tags_that_count() {
        assert!(tag_version("v1.2.3").is_some());
        assert!(tag_version("1.2.3-rc.1").is_some());
        for no in ["v1.2", "V1.2.3", "release-1.0.0", "1.2", "vv1.0.0", "production"] {
            assert!(tag_version(no).is_none(), "{no}");
        }
    }

    #[test]
    fn picks_highest_not_newest_or_lexical() {
        let r = Range::parse(">=1.0.0").unwrap();
        let tags = ["v1.10.0", "v1.9.0", "v1.2.0", "v2.0.0-rc.1", "production", "v0.9.0"];
        assert_eq!(pick(&r, tags).map(|(t, _)| t), Some("v1.10.0"));
        let r = Range::parse("~1.9").unwrap();
        assert_eq!(pick(&r, tags).map(|(t, _)| t), Some("v1.9.0"));
        let r = Range::parse(">=3").unwrap();
        assert_eq!(pick(&r, tags), None);
        let r = Range::parse(">=2.0.0-rc.0").unwrap();
        assert_eq!(pick(&r, tags).map(|(t, _)| t), Some("v2.0.0-rc.1"));
    }
}
