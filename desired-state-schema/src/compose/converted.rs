//! What converting compose files makes (`Converted`: documents, errors, warnings, the
//! repository paths they claim, the model an including file sees) and what it is given
//! besides the files (`Context`). Plain data, shared by every part of this folder.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::diagnostic::Diagnostic;
use crate::source_map::DocMap;
use crate::types::Origin;

/// A `driftless/v1` document made from one service.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The document: `apiVersion`, `kind`, `metadata`, `spec`, `environments`.
    pub doc: Value,
    /// Positions of the document's nodes, in the compose file.
    pub map: DocMap,
    pub origin: Origin,
}

/// What a compose file means.
#[derive(Clone, Debug, Default)]
pub struct Converted {
    pub docs: Vec<Generated>,
    pub errors: Vec<Diagnostic>,
    /// Not errors, but worth saying (`validate` prints them): unset variables made empty.
    pub warnings: Vec<Diagnostic>,
    /// Repository paths the file reads or mounts into its containers (bind sources,
    /// `env_file`, secret files, build contexts), also of services whose profiles are not
    /// enabled: what lies there belongs to the containers, not to the desired state.
    pub claims: Vec<Claim>,
    /// Container names of services refused whole (no document made for them, the refusal
    /// among `errors`): what depends on them is not refused a second time for naming them.
    pub refused: Vec<String>,
    /// What the file declares, for a file that includes it.
    pub model: Model,
}

/// A repository path a compose file reads or mounts, and where it says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Relative to the root; `""` is the root itself.
    pub path: String,
    /// The compose file's path, as shown.
    pub file: String,
    /// Its line, and the key saying it (`services.grafana.volumes[0]`).
    pub line: usize,
    pub at: String,
}

/// Where a compose file sits, beyond its path.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The enabled profiles.
    pub profiles: &'a [String],
    /// The part of `path` that stands for the root (`agentctl validate /srv/state` shows
    /// `/srv/state/compose.yaml`); repository paths are relative to what follows it.
    pub root: &'a str,
    /// The root folder's own name: the project name of a compose file at the root.
    pub root_name: Option<&'a str>,
    /// The home folder of whoever runs the file (the agent's user), for `~` in bind sources,
    /// as compose expands it; `None`: `~` is refused.
    pub home: Option<&'a str>,
    /// The other files of the folder being read (by shown path), for `include`; `None`:
    /// `include` is refused for want of them.
    pub files: Option<Files<'a>>,
    /// For an included file (`include`): what the including file decided — the project
    /// name, the folder its relative paths are resolved from (`project_directory`), the
    /// variables it is interpolated with, and how deep the includes go.
    pub included: Option<Included<'a>>,
}

/// The files `include` may name: shown path → text.
#[derive(Clone, Copy)]
pub struct Files<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl std::fmt::Debug for Files<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Files")
    }
}

/// What an including file passes to the file it includes.
#[derive(Clone, Copy, Debug)]
pub struct Included<'a> {
    pub project: &'a str,
    /// Repository-relative folder relative paths are resolved from.
    pub dir: &'a str,
    pub vars: &'a BTreeMap<String, String>,
    pub depth: usize,
    /// The shown paths of the files that include this one, outermost first (a cycle is
    /// refused by name).
    pub chain: &'a [String],
}

/// What a compose file declares that a file including it may name: its services' container
/// names, its networks' and volumes' engine names, their marks (`external`, `internal`) and
/// creation options.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub services: BTreeMap<String, String>,
    pub networks: BTreeMap<String, String>,
    pub volumes: BTreeMap<String, String>,
    /// "networks" / "volumes" (external) and "internal" → engine names.
    pub marked: BTreeMap<String, std::collections::BTreeSet<String>>,
    pub network_options: BTreeMap<String, Value>,
    pub volume_options: BTreeMap<String, Value>,
}
