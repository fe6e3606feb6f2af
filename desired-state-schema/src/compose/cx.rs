//! The conversion context `Cx`: one compose file being converted — its map of positions,
//! its folder and `.env`, the errors, warnings and claimed paths found so far — with the
//! ways every part reports (`err`, `key_err`, `warn`) and resolves a path (`repo_path`).

use std::collections::BTreeMap;

use super::converted::{Claim, Files};
use super::paths::join;
use crate::diagnostic::Diagnostic;
use crate::source_map::{DocMap, YamlPath};

/// The conversion of one compose file: where it is, what it reads, and what it found so far.
pub(super) struct Cx<'a> {
    pub file: &'a str,
    pub map: &'a DocMap,
    /// The compose file's folder (repository-relative; `""` for the root).
    pub dir: String,
    /// The `.env` beside the file (interpolation, and `environment` keys without a value).
    pub vars: BTreeMap<String, String>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// `Context::home`.
    pub home: Option<String>,
    /// Every repository path `repo_path` resolved (`Converted::claims`).
    pub claims: Vec<Claim>,
    /// The `.env` beside the file, repository-relative, when there is one (what `${VAR}` in
    /// an `env_file` is resolved from).
    pub dotenv_path: Option<String>,
    /// The engine names anonymous volumes took so far, and whose they are (service, path):
    /// one never takes a declared volume's name, nor another's.
    pub anonymous: BTreeMap<String, (String, String)>,
    /// `Context::files` and `Context::root`: the other files of the folder (`label_file`).
    pub files: Option<Files<'a>>,
    pub root: &'a str,
}

pub(super) fn diag(file: &str, map: &DocMap, path: &YamlPath, msg: &str, key: bool) -> Diagnostic {
    Diagnostic::at_node(file, map, path, msg, key)
}

impl Cx<'_> {
    pub fn err(&mut self, path: &YamlPath, msg: &str) {
        self.errors.push(diag(self.file, self.map, path, msg, false));
    }

    pub fn key_err(&mut self, path: &YamlPath, msg: &str) {
        self.errors.push(diag(self.file, self.map, path, msg, true));
    }

    pub fn warn(&mut self, path: &YamlPath, msg: &str) {
        self.warnings.push(diag(self.file, self.map, path, msg, false));
    }

    /// A path relative to the compose file's folder, as a repository path.
    pub fn repo_path(&mut self, at: &YamlPath, p: &str) -> Option<String> {
        if p.starts_with('~') {
            self.err(at, &format!("{p:?}: `~` is the home of whoever runs the file, and this reader was given none; write a path relative to the compose file, or an absolute host path"));
            return None;
        }
        match join(&self.dir, p) {
            Some(r) => {
                let line = self.map.value_pos(at).line;
                let file = self.map.file_at(at).unwrap_or(self.file).to_string();
                self.claims.push(Claim { path: r.clone(), file, line, at: at.to_string() });
                Some(r)
            }
            None => {
                self.err(
                    at,
                    &format!("{p:?} escapes the repository root: paths in a compose file stay inside the repository"),
                );
                None
            }
        }
    }
}

pub(super) fn strip_marks(s: &str) -> String {
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}
