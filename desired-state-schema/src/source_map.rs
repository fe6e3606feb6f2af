//! Where each node of a YAML file stands: a map from a node's path (`spec.ports[1]`) to its
//! line and column, one map per document. serde_yaml_ng gives positions only for its own
//! errors; this lets every later check (types after overlays, semantics) name a position too.
//! Built from saphyr-parser's event stream, which carries a span with every event.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser};

/// One step of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a YAML document, printed as `spec.ports[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }

    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        YamlPath(v)
    }

    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        YamlPath(v)
    }

    /// Build from dotted keys: `YamlPath::of(&["spec", "image"])`.
    pub fn of(keys: &[&str]) -> Self {
        YamlPath(keys.iter().map(|k| Seg::Key((*k).to_string())).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Copy, Debug, Default)]
struct NodePos {
    value: Pos,
    key: Option<Pos>,
}

/// Positions of the nodes of one YAML document.
#[derive(Clone, Debug, Default)]
pub struct DocMap {
    /// Where the document's content starts.
    pub start: Pos,
    nodes: HashMap<YamlPath, NodePos>,
}

impl DocMap {
    /// The position of the value at `path`, or of its nearest ancestor that exists.
    pub fn value_pos(&self, path: &YamlPath) -> Pos {
        self.find(path, false)
    }

    /// The position of the key naming `path` (for "unknown key" errors), else as `value_pos`.
    pub fn key_pos(&self, path: &YamlPath) -> Pos {
        self.find(path, true)
    }

    /// Whether the document has a node at exactly this path.
    pub fn contains(&self, path: &YamlPath) -> bool {
        self.nodes.contains_key(path)
    }

    fn find(&self, path: &YamlPath, want_key: bool) -> Pos {
        let mut p = path.0.as_slice();
        loop {
            if let Some(n) = self.nodes.get(&YamlPath(p.to_vec())) {
                return match (want_key && p.len() == path.0.len(), n.key) {
                    (true, Some(k)) => k,
                    _ => n.value,
                };
            }
            match p.split_last() {
                Some((_, rest)) => p = rest,
                None => return self.start,
            }
        }
    }
}

enum Frame {
    Map {
        path: YamlPath,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: YamlPath,
        next: usize,
    },
    /// A complex (non-scalar) mapping key: its nodes get no paths.
    Skip,
}

/// Map every document of `text`. A file the parser rejects yields the documents read before
/// the error; the caller reports syntax errors from serde_yaml_ng, which rejects the same input.
pub fn map_documents(text: &str) -> Vec<DocMap> {
    let mut docs = Vec::new();
    let mut cur: Option<DocMap> = None;
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let pos = Pos { line: span.start.line(), column: span.start.col() + 1 };
        match event {
            Event::DocumentStart(_) => {
                cur = Some(DocMap { start: pos, nodes: HashMap::new() });
                stack.clear();
            }
            Event::DocumentEnd => {
                if let Some(d) = cur.take() {
                    docs.push(d);
                }
            }
            Event::Scalar(value, ..) => {
                if let Some(doc) = cur.as_mut() {
                    node(doc, &mut stack, pos, Some(value.as_ref()), None);
                }
            }
            Event::Alias(_) => {
                if let Some(doc) = cur.as_mut() {
                    node(doc, &mut stack, pos, Some(""), None);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(event, Event::MappingStart(..));
                if let Some(doc) = cur.as_mut() {
                    node(doc, &mut stack, pos, None, Some(is_map));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    docs
}

/// Record one node (a scalar when `scalar` is set, else a collection start).
fn node(doc: &mut DocMap, stack: &mut Vec<Frame>, pos: Pos, scalar: Option<&str>, opens_map: Option<bool>) {
    if doc.nodes.is_empty() && stack.is_empty() {
        doc.start = pos;
    }
    let child = match stack.last_mut() {
        None => Some((YamlPath::root(), None)),
        Some(Frame::Skip) => None,
        Some(Frame::Seq { path, next }) => {
            let p = path.index(*next);
            *next += 1;
            Some((p, None))
        }
        Some(Frame::Map { path, key }) => match key.take() {
            Some((k, kpos)) => Some((path.key(k), Some(kpos))),
            None => {
                // This node is a key.
                match scalar {
                    Some(s) => {
                        *key = Some((s.to_string(), pos));
                        return;
                    }
                    None => {
                        // A complex key: skip its nodes; the value after it gets a path "?".
                        *key = Some(("?".to_string(), pos));
                        stack.push(Frame::Skip);
                        return;
                    }
                }
            }
        },
    };
    let Some((path, kpos)) = child else {
        if opens_map.is_some() {
            stack.push(Frame::Skip);
        }
        return;
    };
    doc.nodes.insert(path.clone(), NodePos { value: pos, key: kpos });
    match opens_map {
        Some(true) => stack.push(Frame::Map { path, key: None }),
        Some(false) => stack.push(Frame::Seq { path, next: 0 }),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_paths_to_positions() {
        let text = "a: 1\nspec:\n  ports:\n    - \"80\"\n    - 81\n  env: { X: y }\n---\nb: [1, {c: 2}]\n";
        let docs = map_documents(text);
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        assert_eq!(d.value_pos(&YamlPath::of(&["a"])), Pos { line: 1, column: 4 });
        assert_eq!(d.key_pos(&YamlPath::of(&["a"])), Pos { line: 1, column: 1 });
        assert_eq!(d.value_pos(&YamlPath::of(&["spec", "ports"]).index(1)), Pos { line: 5, column: 7 });
        assert_eq!(d.value_pos(&YamlPath::of(&["spec", "env", "X"])), Pos { line: 6, column: 13 });
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(d.value_pos(&YamlPath::of(&["spec", "env", "Z"])), Pos { line: 6, column: 8 });
        let d2 = &docs[1];
        assert_eq!(d2.start.line, 8);
        assert_eq!(d2.value_pos(&YamlPath::of(&["b"]).index(1).key("c")), Pos { line: 8, column: 12 });
    }
}
