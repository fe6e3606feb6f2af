//! Where each node of a YAML file stands: a map from a node's path (`spec.ports[1]`) to its
//! line and column, one map per document. serde_yaml_ng gives positions only for its own
//! errors; this lets every later check (types after overlays, semantics) name a position too.
//! Built from saphyr-parser's event stream, which carries a span with every event.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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

/// Remove the mapping entry at `path` from `v`: the path's last step is a key; the steps
/// before it are mapping keys (looked up through YAML tags) and list indexes. Whether there
/// was such an entry.
pub fn remove_entry(v: &mut serde_yaml_ng::Value, path: &YamlPath) -> bool {
    use serde_yaml_ng::Value;
    let Some((Seg::Key(last), parents)) = path.0.split_last() else { return false };
    let mut cur = v;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), c) => c.get_mut(k.as_str()),
            (Seg::Index(i), Value::Sequence(s)) => s.get_mut(*i),
            (Seg::Index(_), _) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match cur {
        Value::Mapping(m) => m.remove(last.as_str()).is_some(),
        _ => false,
    }
}

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug, Default)]
struct NodePos {
    value: Pos,
    key: Option<Pos>,
    /// The file the node was read from, when the map mixes files (a compose file merged
    /// with its override); `None`: the file the caller names.
    file: Option<Arc<str>>,
}

/// Positions of the nodes of one YAML document.
#[derive(Clone, Debug, Default)]
pub struct DocMap {
    /// Where the document's content starts.
    pub start: Pos,
    nodes: HashMap<YamlPath, NodePos>,
    /// The file `start` is in, when set (`set_file`).
    start_file: Option<Arc<str>>,
    /// For a generated document: how its paths are shown to the operator (`spec.logging`
    /// of a converted compose service is `services.db.logging` in the file they wrote);
    /// (prefix in this document, the path it stands for).
    renames: Vec<(YamlPath, YamlPath)>,
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

    /// An empty map whose document starts at `start` (for generated documents).
    pub fn starting_at(start: Pos) -> DocMap {
        DocMap { start, nodes: HashMap::new(), start_file: None, renames: Vec::new() }
    }

    /// Record that every node (so far) was read from `file`: positions stay right when the
    /// map is merged with another file's (`alias_tree` keeps the tag).
    pub fn set_file(&mut self, file: &str) {
        let f: Arc<str> = Arc::from(file);
        for n in self.nodes.values_mut() {
            n.file = Some(f.clone());
        }
        self.start_file = Some(f);
    }

    /// The file the node at `path` (or its nearest mapped ancestor) was read from, when the
    /// map was tagged (`set_file`); `None`: the caller's file.
    pub fn file_at(&self, path: &YamlPath) -> Option<&str> {
        match self.find_node(path) {
            Some(n) => n.file.as_deref(),
            None => self.start_file.as_deref(),
        }
    }

    /// Show `target` (and what is below it) of this generated document as `source`, the
    /// path the operator wrote (`show_as(spec.logging, services.db.logging)`).
    pub fn show_as(&mut self, target: &YamlPath, source: &YamlPath) {
        self.renames.push((target.clone(), source.clone()));
    }

    /// `target` of this generated document came from `source` of `from`: its positions are
    /// `source`'s (`alias_tree`) and it is shown as `source` (`show_as`).
    pub fn generated_from(&mut self, from: &DocMap, source: &YamlPath, target: &YamlPath) {
        self.alias_tree(from, source, target);
        self.show_as(target, source);
    }

    /// `path` as the operator wrote it: the longest `show_as` prefix replaced; else as is.
    pub fn shown(&self, path: &YamlPath) -> YamlPath {
        let best = self.renames.iter().filter(|(t, _)| path.0.starts_with(&t.0)).max_by_key(|(t, _)| t.0.len());
        match best {
            Some((t, s)) => {
                let mut out = s.clone();
                out.0.extend(path.0[t.0.len()..].iter().cloned());
                out
            }
            None => path.clone(),
        }
    }

    /// Forget the node at `path` and everything below it (a merge replaced it).
    pub fn remove_tree(&mut self, path: &YamlPath) {
        self.nodes.retain(|p, _| !p.0.starts_with(&path.0));
    }

    /// The node at `path` and everything below it, as a map of its own.
    pub fn subtree(&self, path: &YamlPath) -> DocMap {
        let nodes = self.nodes.iter().filter(|(p, _)| p.0.starts_with(&path.0)).map(|(p, n)| (p.clone(), n.clone()));
        DocMap { start: self.start, nodes: nodes.collect(), start_file: self.start_file.clone(), renames: Vec::new() }
    }

    /// For a document generated from `from`: the node at `target` is where `source` is.
    pub fn alias_node(&mut self, from: &DocMap, source: &YamlPath, target: &YamlPath) {
        let here = from.node_for(source);
        self.nodes.insert(target.clone(), here);
    }

    /// For a document generated from `from` (a compose file): the node at `target` (and
    /// everything below it) is where `source` (and what is below it) is in `from`.
    pub fn alias_tree(&mut self, from: &DocMap, source: &YamlPath, target: &YamlPath) {
        let here = from.node_for(source);
        self.nodes.insert(target.clone(), here);
        for (path, node) in &from.nodes {
            if path.0.len() > source.0.len() && path.0.starts_with(&source.0) {
                let mut t = target.clone();
                t.0.extend(path.0[source.0.len()..].iter().cloned());
                self.nodes.insert(t, node.clone());
            }
        }
    }

    /// A node standing where `source` is in this map (its own, or its nearest ancestor's).
    fn node_for(&self, source: &YamlPath) -> NodePos {
        let file = match self.find_node(source) {
            Some(n) => n.file.clone(),
            None => self.start_file.clone(),
        };
        NodePos { value: self.value_pos(source), key: Some(self.key_pos(source)), file }
    }

    /// The node at `path` or its nearest mapped ancestor.
    fn find_node(&self, path: &YamlPath) -> Option<&NodePos> {
        let mut p = path.0.as_slice();
        loop {
            if let Some(n) = self.nodes.get(&YamlPath(p.to_vec())) {
                return Some(n);
            }
            let (_, rest) = p.split_last()?;
            p = rest;
        }
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

/// Positions of block mapping keys (`key:` at the start of a line, maybe after `- `) of
/// document number `skip` of `text`, for the paths the parser did not map. Sequence items
/// count as indexes. A fallback only: flow collections and multi-line scalars are not read.
fn fill_by_indentation(doc: &mut DocMap, text: &str, skip: usize) {
    let mut stack: Vec<(usize, Seg)> = Vec::new(); // (indentation, segment)
    let mut seq_next: HashMap<YamlPath, usize> = HashMap::new();
    let mut docno = 0;
    let mut block_scalar: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line == "---" || line.starts_with("--- ") {
            docno += 1;
            stack.clear();
            continue;
        }
        if docno != skip {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if let Some(bi) = block_scalar {
            if indent > bi {
                continue; // inside a | or > scalar
            }
            block_scalar = None;
        }
        let (indent, body, item) = match body.strip_prefix("- ") {
            Some(rest) => (indent, rest.trim_start(), true),
            None => (indent, body, body == "-"),
        };
        while stack
            .last()
            .is_some_and(|(ind, seg)| *ind > indent || (*ind == indent && !(item && matches!(seg, Seg::Index(_)))))
        {
            stack.pop();
        }
        let mut path = YamlPath(stack.iter().map(|(_, s)| s.clone()).collect());
        if item {
            while stack.last().is_some_and(|(ind, seg)| *ind == indent && matches!(seg, Seg::Index(_))) {
                stack.pop();
            }
            path = YamlPath(stack.iter().map(|(_, s)| s.clone()).collect());
            let n = seq_next.entry(path.clone()).or_insert(0);
            let idx = *n;
            *n += 1;
            path = path.index(idx);
            stack.push((indent, Seg::Index(idx)));
            doc.nodes.entry(path.clone()).or_insert(NodePos {
                value: Pos { line: i + 1, column: indent + 1 },
                key: None,
                file: None,
            });
        }
        let key_indent = if item { indent + 2 } else { indent };
        let Some((key, rest)) = split_key(body) else { continue };
        let kpath = path.key(key.clone());
        let value_col = line.len() - rest.trim_start().len() + 1;
        let value = if rest.trim().is_empty() {
            Pos { line: i + 1, column: key_indent + 1 }
        } else {
            Pos { line: i + 1, column: value_col }
        };
        doc.nodes.entry(kpath.clone()).or_insert(NodePos {
            value,
            key: Some(Pos { line: i + 1, column: key_indent + 1 }),
            file: None,
        });
        let r = rest.trim();
        if r.starts_with('|') || r.starts_with('>') {
            block_scalar = Some(key_indent);
        }
        if r.is_empty() || r.starts_with('&') || r.starts_with('|') || r.starts_with('>') {
            stack.push((key_indent, Seg::Key(key)));
        }
    }
}

/// `key: rest` of a block mapping line (the key plain or quoted).
fn split_key(body: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(q) = body.strip_prefix('"') {
        let end = q.find('"')?;
        (q[..end].to_string(), q[end + 1..].strip_prefix(':')?)
    } else if let Some(q) = body.strip_prefix('\'') {
        let end = q.find('\'')?;
        (q[..end].to_string(), q[end + 1..].strip_prefix(':')?)
    } else {
        let end = body.find(": ").or_else(|| body.strip_suffix(':').map(|b| b.len()))?;
        let key = &body[..end];
        if key.contains(['{', '[', '"', '\'', '#']) {
            return None;
        }
        (key.to_string(), &body[end + 1..])
    };
    Some((key, rest))
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
        let Ok((event, span)) = item else {
            // saphyr is strict YAML 1.2; libyaml (serde_yaml_ng) and go-yaml (compose) accept
            // some files it rejects (a flow `]` at its parent's indentation). Keep what was
            // mapped, and fill the rest from the block keys' indentation.
            let mut doc = cur.take().unwrap_or_default();
            let skip = docs.len();
            fill_by_indentation(&mut doc, text, skip);
            docs.push(doc);
            return docs;
        };
        let pos = Pos { line: span.start.line(), column: span.start.col() + 1 };
        match event {
            Event::DocumentStart(_) => {
                cur = Some(DocMap::starting_at(pos));
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

/// Nodes nested deeper than this get no positions: serde_yaml_ng refuses such documents
/// (its recursion limit is 128), and recording them cost O(depth) each — quadratic in a
/// file of nothing but `[[[[…` (found by the adversarial tests: 15 s for 200 KB).
const MAX_MAPPED_DEPTH: usize = 160;

/// Record one node (a scalar when `scalar` is set, else a collection start).
fn node(doc: &mut DocMap, stack: &mut Vec<Frame>, pos: Pos, scalar: Option<&str>, opens_map: Option<bool>) {
    if doc.nodes.is_empty() && stack.is_empty() {
        doc.start = pos;
    }
    if stack.len() >= MAX_MAPPED_DEPTH {
        if opens_map.is_some() {
            stack.push(Frame::Skip);
        }
        return;
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
    doc.nodes.insert(path.clone(), NodePos { value: pos, key: kpos, file: None });
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
