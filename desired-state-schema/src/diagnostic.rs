//! `Diagnostic`: one problem in the desired state, at a position — what every reader of
//! desired state (the loader, the compose reader, the checks) reports in.

use std::fmt;

use crate::source_map::{DocMap, YamlPath};

/// One problem in the desired state, at a position. Prints as `file:line:column: message`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; 0 when the problem is about the file or folder as a whole.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl Diagnostic {
    /// A problem at the node `path` of a document mapped by `map` — at its key when `key`
    /// (an unknown key), else at its value — in the file the node was read from (a merged or
    /// extended file's nodes name their own), else in `file`; the message led by the path.
    pub fn at_node(file: &str, map: &DocMap, path: &YamlPath, msg: &str, key: bool) -> Diagnostic {
        let pos = if key { map.key_pos(path) } else { map.value_pos(path) };
        let message = if path.is_empty() { msg.to_string() } else { format!("{path}: {msg}") };
        let file = map.file_at(path).unwrap_or(file);
        Diagnostic { file: file.to_string(), line: pos.line, column: pos.column, message }
    }
}
