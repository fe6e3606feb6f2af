//! Loading: a set of files (from a folder on disk, or straight from a Git tree) → the typed,
//! validated, effective desired state for one environment, or every error found, each with
//! `file:line:column`. Parse then build, in this order:
//!
//! 1. each file → YAML documents (serde_yaml_ng) and their position maps (`source_map`);
//! 2. each document → its envelope (`apiVersion`, `kind`, `metadata`, `spec`, `environments`);
//! 3. per environment: `environments.<env>.spec` deep-merged over `spec`, then typed by kind;
//! 4. semantic checks (`checks`) over the whole set.
//!
//! Nothing here does I/O except `read_dir_files`, which only reads.
//!
//! Past 1,000 lines: the two stages (parse, build) share their position maps and limits,
//! and about a third of the file is their tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;

pub use crate::diagnostic::Diagnostic;
pub use crate::limits::{prescan, Prescan, MAX_DOCUMENTS, MAX_FILE_BYTES, MAX_FLOW_DEPTH, MAX_REVISION_BYTES};

use crate::checks::{check_all, did_you_mean};
use crate::source_map::{map_documents, DocMap, Pos, Seg, YamlPath};
use crate::types::{
    ApiVersion, ContainerSpec, Kind, Metadata, NixosSystemSpec, Origin, PassengerAppSpec, Resource, Spec, VolumeSpec,
};

/// `n` bytes for people: `33.0 MiB`.
pub fn mib(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// One file of desired state: a display path (relative to the folder loaded) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// The desired state was refused; every problem found is listed, sorted by position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_diagnostics(.diagnostics))]
pub struct Invalid {
    pub diagnostics: Vec<Diagnostic>,
}

fn render_diagnostics(d: &[Diagnostic]) -> String {
    d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

/// Reading a folder from disk failed before any document could be judged.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "{path}: no such file or folder: give the folder that holds the desired-state *.yaml files, or one such file"
    )]
    NotFound { path: PathBuf },
    #[error("{path}: is not a folder: give the folder that holds the desired-state *.yaml files")]
    NotADirectory { path: PathBuf },
    #[error("{path}: is not a desired-state file: give a *.yaml or *.yml file, or the folder that holds them")]
    NotStateFile { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: is not UTF-8 text; desired-state files must be UTF-8 YAML")]
    NotUtf8 { path: PathBuf },
    #[error("{path}: is a symbolic link; desired-state files must be regular files (a link could read anything on the host)")]
    Symlink { path: PathBuf },
    #[error(
        "{path}: is {size}; the limit is {limit} per desired-state file: split it, or keep data out of the folder"
    )]
    TooLarge { path: PathBuf, size: String, limit: String },
}

/// The effective desired state of a host for one environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredState {
    /// The environment whose overlays were applied (`None`: the base documents).
    pub environment: Option<String>,
    /// In file order (files sorted by path, documents in file order); never a Volume.
    pub resources: Vec<Resource>,
    /// The `Volume` documents (whose data is snapshotted), in file order.
    pub volumes: Vec<Resource>,
}

impl DesiredState {
    pub fn get(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name() == name)
    }

    /// Resources ordered so that each comes after everything it `depends_on`; ties keep
    /// file order. Valid state has no cycles; should one slip through, its members are
    /// appended in file order rather than lost.
    pub fn in_dependency_order(&self) -> Vec<&Resource> {
        let n = self.resources.len();
        let index: BTreeMap<&str, usize> = self.resources.iter().enumerate().map(|(i, r)| (r.name(), i)).collect();
        let mut done = vec![false; n];
        let mut out = Vec::with_capacity(n);
        loop {
            let before = out.len();
            for (i, r) in self.resources.iter().enumerate() {
                if done[i] {
                    continue;
                }
                let ready =
                    r.spec.depends_on().iter().all(|d| index.get(d.name.as_str()).is_none_or(|&j| done[j] || j == i));
                if ready {
                    done[i] = true;
                    out.push(r);
                }
            }
            if out.len() == n {
                return out;
            }
            if out.len() == before {
                out.extend(self.resources.iter().enumerate().filter(|(i, _)| !done[*i]).map(|(_, r)| r));
                return out;
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Envelope {
    api_version: ApiVersion,
    kind: Kind,
    metadata: Metadata,
    spec: Value,
    /// `None`: written as `null` (refused where it is written, `overlay_problems`).
    #[serde(default)]
    environments: BTreeMap<String, Option<Overlay>>,
    /// Per-host overlays (`hosts.<host>.spec`), merged after the environment's.
    #[serde(default)]
    hosts: BTreeMap<String, Option<Overlay>>,
}

/// What is wrong with a document's overlays, by path: a `null` overlay (it would change
/// nothing, and is most likely a half-written one), and a `hosts:` key that is not a host
/// name (no agent's `host` could ever match it).
fn overlay_problems(e: &Envelope) -> Vec<(YamlPath, String)> {
    let mut out = Vec::new();
    for (key, overlays) in [("environments", &e.environments), ("hosts", &e.hosts)] {
        for (name, o) in overlays {
            let at = YamlPath::of(&[key, name.as_str()]);
            if o.is_none() {
                out.push((at.clone(), format!("the overlay of {name:?} is empty (null): write {name}: {{ spec: {{ … }} }} with the keys to change, or remove it")));
            }
            if key == "hosts" {
                if let Err(why) = crate::checks::host_name(name) {
                    out.push((
                        at,
                        format!(
                            "{name:?} is not a host name ({why}): an agent's host never matches it; write e.g. web-1"
                        ),
                    ));
                }
            }
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Overlay {
    #[serde(default)]
    spec: Value,
}

/// A document whose envelope parsed.
struct Parsed {
    origin: Origin,
    map: LazyMap,
    envelope: Envelope,
}

/// A document's position map, computed only when a diagnostic needs one: mapping every
/// node costs a second YAML parse (a third of a valid load), and a valid revision needs none.
enum LazyMap {
    /// Already known (compose files map positions while they convert).
    Ready(DocMap),
    /// Document `index` of a file's text; the file's maps are computed once, on first use.
    InFile { text: std::sync::Arc<str>, index: usize, maps: std::sync::Arc<std::sync::OnceLock<Vec<DocMap>>> },
}

impl LazyMap {
    fn get(&self) -> &DocMap {
        static EMPTY: std::sync::OnceLock<DocMap> = std::sync::OnceLock::new();
        match self {
            LazyMap::Ready(m) => m,
            LazyMap::InFile { text, index, maps } => maps
                .get_or_init(|| map_documents(text))
                .get(*index)
                .unwrap_or_else(|| EMPTY.get_or_init(DocMap::default)),
        }
    }
}

/// The line of each document's first content (what a position map would call its start):
/// documents are split at `---` lines; comments, blank lines and directives are skipped.
fn document_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut want = true; // looking for the current document's first content line
    let mut seen_separator = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let separator = line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if separator {
            if want && seen_separator {
                out.push(i); // an empty document: where its separator was
            }
            seen_separator = true;
            want = true;
            let rest = line[3..].trim_start();
            if !rest.is_empty() && !rest.starts_with('#') {
                out.push(i + 1);
                want = false;
            }
            continue;
        }
        if want && !t.is_empty() && !t.starts_with('#') && !t.starts_with('%') {
            out.push(i + 1);
            want = false;
        }
    }
    out
}

/// What parsing one file gave.
#[derive(Default)]
struct FileResult {
    parsed: Vec<Parsed>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Compose files: the repository paths they read or mount.
    claims: Vec<crate::compose::Claim>,
    /// Compose files: services refused whole.
    refused: Vec<String>,
}

/// Below this much text, one thread reads everything (threads cost more than they save).
const PARALLEL_BYTES: usize = 64 * 1024;

/// Parse `files` (in order), on up to 4 threads when they are large enough together.
/// A compose file is read with the override beside it (`overrides`, by folder).
fn parse_files(
    files: &[&SourceFile],
    envs: &BTreeMap<&str, &str>,
    overrides: &BTreeMap<&str, &SourceFile>,
    all: &BTreeMap<&str, &str>,
    opts: &ParseOptions,
) -> Vec<FileResult> {
    let one = |f: &SourceFile| -> FileResult {
        let mut r = FileResult::default();
        if crate::compose::is_compose_file(&f.path) {
            let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
            let lookup = |p: &str| match all.get(p) {
                Some(t) => Some(t.to_string()),
                None => opts.read_other.as_ref().and_then(|r| (r.0)(p)),
            };
            let ctx = crate::compose::Context {
                profiles: &opts.compose_profiles,
                root: &opts.root,
                root_name: opts.root_name.as_deref(),
                home: opts.home.as_deref(),
                files: Some(crate::compose::Files(&lookup)),
                included: None,
            };
            let mut project = vec![(f.path.as_str(), f.text.as_str())];
            if let Some(o) = overrides.get(dir) {
                project.push((o.path.as_str(), o.text.as_str()));
            }
            let c = crate::compose::convert_files(&project, envs.get(dir).copied(), &ctx);
            r.errors.extend(c.errors);
            r.warnings.extend(c.warnings);
            r.claims = c.claims;
            r.refused = c.refused;
            for g in c.docs {
                match typed::<Envelope>(g.doc) {
                    Ok(envelope) => {
                        for (path, msg) in overlay_problems(&envelope) {
                            r.errors.push(diagnostic_at(&f.path, &g.map, &path, &msg));
                        }
                        r.parsed.push(Parsed { origin: g.origin, map: LazyMap::Ready(g.map), envelope })
                    }
                    Err((path, msg)) => r.errors.push(diagnostic_at(&f.path, &g.map, &path, &msg)),
                }
            }
        } else {
            parse_file(f, &mut r.parsed, &mut r.errors);
        }
        r
    };
    let total: usize = files.iter().map(|f| f.text.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4).min(files.len());
    if threads < 2 || total < PARALLEL_BYTES {
        return files.iter().map(|f| one(f)).collect();
    }
    // Contiguous chunks of about equal size, one per thread.
    let per = total.div_ceil(threads);
    let mut chunks: Vec<&[&SourceFile]> = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        size += f.text.len();
        if size >= per && chunks.len() + 1 < threads {
            chunks.push(&files[start..=i]);
            start = i + 1;
            size = 0;
        }
    }
    if start < files.len() {
        chunks.push(&files[start..]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            chunks.iter().map(|chunk| scope.spawn(move || chunk.iter().map(|f| one(f)).collect::<Vec<_>>())).collect();
        let mut out = Vec::with_capacity(files.len());
        for (h, chunk) in handles.into_iter().zip(&chunks) {
            match h.join() {
                Ok(r) => out.extend(r),
                // A parser that panicked on one chunk: read it again here, so the panic
                // surfaces as it would have without threads.
                Err(_) => out.extend(chunk.iter().map(|f| one(f))),
            }
        }
        out
    })
}

/// Documents parsed once, ready to be built for any environment.
pub struct Loaded {
    parsed: Vec<Parsed>,
    /// Problems found while parsing (syntax, envelope); reported with every environment.
    parse_errors: Vec<Diagnostic>,
    /// Not errors, but worth saying (compose: unset variables made empty).
    warnings: Vec<Diagnostic>,
    files: usize,
    /// YAML files not read as desired state: a compose file mounts or reads them.
    skipped: Vec<Skipped>,
    /// Names of compose services refused whole (their refusal is among `parse_errors`).
    refused: std::collections::BTreeSet<String>,
    /// `ParseOptions::root`: what a problem of the whole folder is named by (`.` when empty).
    root: String,
}

/// A `*.yaml` file under the folder that is not desired state: a compose file there mounts
/// it into a container or reads it (a bind source or a folder holding it, an `env_file`, a
/// secret file, a build context), and it holds no `apiVersion: driftless/v1` document. It
/// belongs to the container (a Grafana datasource, a `prometheus.yml`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The file, as shown.
    pub file: String,
    /// Where a compose file claims it: `compose.yaml:12: services.grafana.volumes[0]`.
    pub claimed_by: String,
}

/// How files are read.
#[derive(Clone, Debug, Default)]
pub struct ParseOptions {
    /// Compose profiles enabled (the agent config's `compose_profiles`).
    pub compose_profiles: Vec<String>,
    /// The prefix of every file's path that stands for the root (`agentctl validate DIR`
    /// shows paths as DIR/…; the agent reads paths from the repository root: empty).
    /// Repository paths a compose file names are relative to the root, not to this prefix.
    pub root: String,
    /// The root folder's own name: a compose file right at the root takes it as its project
    /// name, as `docker compose` takes its folder's name (the repository's name for the agent).
    pub root_name: Option<String>,
    /// The home folder of whoever applies the files (the agent's user): `~` in a compose
    /// bind source. `None`: `~` is refused.
    pub home: Option<String>,
    /// Reads a file of the folder that is not desired state itself — a service's
    /// `label_file`, an `include`'s `env_file` — by its shown path, when a compose file names
    /// it; `None`: only the files given are there to read.
    pub read_other: Option<ReadOther>,
}

/// How the loader reads a file a compose file names (`ParseOptions::read_other`): shown path
/// → its text, `None` when it is not there (or too large to be a file of settings).
#[derive(Clone)]
pub struct ReadOther(pub std::sync::Arc<ReadFn>);

/// Shown path → text (`ReadOther`).
pub type ReadFn = dyn Fn(&str) -> Option<String> + Send + Sync;

impl std::fmt::Debug for ReadOther {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadOther")
    }
}

/// Parse every file. Problems are kept and reported by `build`, together with later ones.
pub fn parse(files: &[SourceFile]) -> Loaded {
    parse_with(files, &ParseOptions::default())
}

/// `parse` with options. Compose files (`compose::is_compose_file`) are read as compose,
/// with the `.env` beside each; every other `*.yaml`/`*.yml` as `driftless/v1` documents.
pub fn parse_with(files: &[SourceFile], opts: &ParseOptions) -> Loaded {
    let mut files: Vec<&SourceFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let envs: BTreeMap<&str, &str> = files
        .iter()
        .filter(|f| is_env_file(&f.path))
        .map(|f| (f.path.rsplit_once('/').map_or("", |(d, _)| d), f.text.as_str()))
        .collect();
    let total: usize = files.iter().map(|f| f.text.len()).sum();
    if total > MAX_REVISION_BYTES {
        errors.push(Diagnostic {
            file: ".".into(),
            line: 0,
            column: 0,
            message: format!(
                "the desired state is {} in all; the limit is {}: keep data (fixtures, dumps) out of source.path",
                mib(total),
                mib(MAX_REVISION_BYTES)
            ),
        });
        return Loaded {
            parsed,
            parse_errors: errors,
            warnings,
            files: files.len(),
            skipped: Vec::new(),
            refused: Default::default(),
            root: opts.root.clone(),
        };
    }
    let mut admit = Admit { count: 0, documents: 0, full: false, errors: &mut errors };
    // Compose files first: what they mount or read is not desired state (`Skipped`). In each
    // folder, what compose reads: the main file, with the override merged into it.
    // Every file by its shown path, for `include` and `extends`; an included compose file,
    // or one whose services another extends, is read only through that file (never as a
    // project of its own).
    let all: BTreeMap<&str, &str> = files.iter().map(|f| (f.path.as_str(), f.text.as_str())).collect();
    let includes: BTreeMap<&str, Vec<String>> = files
        .iter()
        .filter(|f| {
            crate::compose::is_compose_file(&f.path) && (f.text.contains("include") || f.text.contains("extends"))
        })
        .map(|f| (f.path.as_str(), crate::compose::included_paths(&f.path, &f.text, &opts.root)))
        .collect();
    // Whether `from` includes `to`, directly or through others.
    let reaches = |from: &str, to: &str| {
        let (mut seen, mut stack) = (std::collections::BTreeSet::new(), vec![from.to_string()]);
        while let Some(f) = stack.pop() {
            for next in includes.get(f.as_str()).into_iter().flatten() {
                if next == to {
                    return true;
                }
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        false
    };
    // Included by a file it does not include back (a cycle stays a root, and the converter
    // refuses the cycle by name).
    let included: std::collections::BTreeSet<String> = includes
        .iter()
        .flat_map(|(by, paths)| paths.iter().map(move |p| (*by, p)))
        .filter(|(by, p)| !reaches(p, by))
        .map(|(_, p)| p.clone())
        .collect();
    let mut by_dir: BTreeMap<&str, Vec<&SourceFile>> = BTreeMap::new();
    for f in files
        .iter()
        .copied()
        .filter(|f| !is_env_file(&f.path) && crate::compose::is_compose_file(&f.path) && !included.contains(&f.path))
    {
        by_dir.entry(f.path.rsplit_once('/').map_or("", |(d, _)| d)).or_default().push(f);
    }
    let mut compose: Vec<&SourceFile> = Vec::new();
    let mut overrides: BTreeMap<&str, &SourceFile> = BTreeMap::new();
    for (dir, group) in &by_dir {
        let paths: Vec<&str> = group.iter().map(|f| f.path.as_str()).collect();
        let project = crate::compose::project(&paths);
        let file = |p: &str| group.iter().copied().find(|f| f.path == p);
        for (p, why) in &project.unread {
            warnings.push(Diagnostic { file: (*p).to_string(), line: 0, column: 0, message: why.clone() });
        }
        if let Some((p, why)) = &project.orphan {
            admit.errors.push(Diagnostic { file: (*p).to_string(), line: 0, column: 0, message: why.clone() });
        }
        if let Some(o) = project.override_file.and_then(file).filter(|o| admit.check(o)) {
            overrides.insert(dir, o);
        }
        if let Some(m) = project.main.and_then(file).filter(|m| admit.check(m)) {
            compose.push(m);
        }
    }
    let compose_results = parse_files(&compose, &envs, &overrides, &all, opts);
    let claims: Vec<&crate::compose::Claim> = compose_results.iter().flat_map(|r| &r.claims).collect();
    let mut skipped = Vec::new();
    let mut others: Vec<&SourceFile> = Vec::new();
    for f in files.iter().copied().filter(|f| !is_env_file(&f.path) && !crate::compose::is_compose_file(&f.path)) {
        // A file that says it is desired state is read as such, whoever mounts it.
        let claim = claims.iter().find(|c| claims_file(&shown(&opts.root, &c.path), &f.path));
        if let Some(c) = claim.filter(|_| !holds_driftless_documents(&f.text)) {
            skipped.push(Skipped { file: f.path.clone(), claimed_by: format!("{}:{}: {}", c.file, c.line, c.at) });
            continue;
        }
        if admit.check(f) {
            others.push(f);
        }
    }
    let count = admit.count;
    // Each file is parsed on its own: spread over the cores when there is enough to read,
    // then merged in file order (so messages come out the same either way).
    let other_results = parse_files(&others, &envs, &BTreeMap::new(), &all, opts);
    let mut results: Vec<(&str, FileResult)> = compose
        .iter()
        .map(|f| f.path.as_str())
        .zip(compose_results)
        .chain(others.iter().map(|f| f.path.as_str()).zip(other_results))
        .collect();
    results.sort_by(|a, b| a.0.cmp(b.0));
    let mut refused = std::collections::BTreeSet::new();
    for (_, r) in results {
        parsed.extend(r.parsed);
        errors.extend(r.errors);
        warnings.extend(r.warnings);
        refused.extend(r.refused);
    }
    Loaded { parsed, parse_errors: errors, warnings, files: count, skipped, refused, root: opts.root.clone() }
}

/// The size, document-count and prescan checks every desired-state file passes before it is
/// parsed; what fails them is reported and not parsed.
struct Admit<'a> {
    count: usize,
    documents: usize,
    /// The revision's document budget is spent: nothing more is read.
    full: bool,
    errors: &'a mut Vec<Diagnostic>,
}

impl Admit<'_> {
    fn check(&mut self, f: &SourceFile) -> bool {
        if self.full {
            return false;
        }
        self.count += 1;
        if f.text.len() > MAX_FILE_BYTES {
            self.errors.push(Diagnostic {
                file: f.path.clone(),
                line: 0,
                column: 0,
                message: format!(
                    "the file is {}; the limit is {} per desired-state file: split it, or keep data out of source.path",
                    mib(f.text.len()),
                    mib(MAX_FILE_BYTES)
                ),
            });
            return false;
        }
        match prescan(&f.text) {
            Ok(p) => {
                self.documents += p.documents;
                if self.documents > MAX_DOCUMENTS {
                    self.errors.push(Diagnostic {
                        file: f.path.clone(),
                        line: 0,
                        column: 0,
                        message: format!(
                            "the desired state holds over {MAX_DOCUMENTS} YAML documents (this file brings it to {}); the limit is {MAX_DOCUMENTS} per revision: check that source.path holds desired state only",
                            self.documents
                        ),
                    });
                    self.full = true;
                    return false;
                }
                true
            }
            Err((line, column, message)) => {
                self.errors.push(Diagnostic { file: f.path.clone(), line, column, message });
                false
            }
        }
    }
}

/// A repository path (relative to the root) as files are shown under `root`.
fn shown(root: &str, path: &str) -> String {
    match (root.trim_end_matches('/'), path) {
        ("", p) => p.to_string(),
        (r, "") => r.to_string(),
        (r, p) => format!("{r}/{p}"),
    }
}

/// Whether a claimed path (a file, or a folder and everything under it) covers `file`.
fn claims_file(claimed: &str, file: &str) -> bool {
    claimed.is_empty() || file == claimed || file.strip_prefix(claimed).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether a file says it is desired state: a line `apiVersion: driftless/v1` (a document
/// of ours, however it is quoted or commented).
fn holds_driftless_documents(text: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("apiVersion:")
            .map(|v| v.split('#').next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'') == "driftless/v1")
            .unwrap_or(false)
    })
}

fn parse_file(file: &SourceFile, parsed: &mut Vec<Parsed>, errors: &mut Vec<Diagnostic>) {
    let text: std::sync::Arc<str> = std::sync::Arc::from(file.text.as_str());
    let maps: std::sync::Arc<std::sync::OnceLock<Vec<DocMap>>> = Default::default();
    let lines = document_lines(&file.text);
    for (i, de) in serde_yaml_ng::Deserializer::from_str(&file.text).enumerate() {
        let map = LazyMap::InFile { text: text.clone(), index: i, maps: maps.clone() };
        let value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let (line, column) = e.location().map_or_else(
                    || {
                        let m = map.get();
                        (m.start.line, m.start.column)
                    },
                    |l| (l.line(), l.column()),
                );
                let raw = strip_marks(&e.to_string());
                // A whole number past 64 bits: the YAML reader cannot hold it.
                let message = match (
                    raw.find("invalid type: integer `"),
                    raw.contains(" as u128") || raw.contains(" as i128"),
                ) {
                    (Some(i), true) => {
                        let key = raw[..i].trim_end_matches([' ', ':']);
                        let v = ticked(&raw[i..]).first().copied().unwrap_or("?").to_string();
                        let at = if key.is_empty() { String::new() } else { format!("{key}: ") };
                        format!("{at}the number {v} is too large (at most 18446744073709551615); if it is meant as text, write it in quotes")
                    }
                    _ => format!("YAML syntax: {raw}"),
                };
                errors.push(Diagnostic { file: file.path.clone(), line, column, message });
                return; // the rest of the file cannot be read reliably
            }
        };
        if value.is_null() {
            continue; // an empty document (e.g. a trailing `---`)
        }
        let line = lines.get(i).copied().unwrap_or_else(|| map.get().start.line);
        let origin = Origin { file: file.path.clone(), line };
        // A mapping without `apiVersion` is someone else's YAML (an agent config, a tool's
        // settings): said as such, not as an unknown key of ours.
        if let Some(m) = value.as_mapping().filter(|m| !m.contains_key("apiVersion")) {
            let agent_config = m.contains_key("source") && (m.contains_key("host") || m.contains_key("state_dir"));
            let message = if agent_config {
                "this is an agent config (host, source, …), not desired state: it belongs on the host (/etc/driftless/agent.yaml), outside source.path; validate the folder its source.path names".to_string()
            } else {
                "not a driftless/v1 document (it has no `apiVersion: driftless/v1`): a desired-state folder holds driftless/v1 documents and compose files only; move other YAML out of source.path, or start the document with apiVersion: driftless/v1".to_string()
            };
            let m = map.get();
            errors.push(Diagnostic { file: file.path.clone(), line: m.start.line, column: m.start.column, message });
            continue;
        }
        match typed::<Envelope>(value) {
            Ok(envelope) => {
                for (path, msg) in overlay_problems(&envelope) {
                    errors.push(diagnostic_at(&file.path, map.get(), &path, &msg));
                }
                parsed.push(Parsed { origin, map, envelope })
            }
            Err((path, msg)) => errors.push(diagnostic_at(&file.path, map.get(), &path, &msg)),
        }
    }
}

impl Loaded {
    /// Every environment some document declares an overlay for, sorted.
    pub fn environments(&self) -> BTreeSet<String> {
        self.parsed.iter().flat_map(|p| p.envelope.environments.keys().cloned()).collect()
    }

    /// Warnings (not errors): compose variables that were unset and became empty.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// YAML files not read as desired state, because a compose file mounts or reads them.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// How many files were read.
    pub fn file_count(&self) -> usize {
        self.files
    }

    /// How many documents were read (empty ones not counted).
    pub fn document_count(&self) -> usize {
        self.parsed.len()
    }

    /// Every host some document declares an overlay for, sorted.
    pub fn hosts(&self) -> BTreeSet<String> {
        self.parsed.iter().flat_map(|p| p.envelope.hosts.keys().cloned()).collect()
    }

    /// The effective desired state for `environment` (`None`: base documents only).
    pub fn build(&self, environment: Option<&str>) -> Result<DesiredState, Invalid> {
        self.build_for(environment, None)
    }

    /// The effective desired state of `host` in `environment`: `environments.<env>.spec`
    /// deep-merged over `spec`, then `hosts.<host>.spec` over that.
    pub fn build_for(&self, environment: Option<&str>, host: Option<&str>) -> Result<DesiredState, Invalid> {
        let mut diags = self.parse_errors.clone();
        let mut resources = Vec::new();
        let mut owners = Vec::new(); // index into self.parsed, per resource
                                     // Documents whose spec failed typing, and compose services refused whole: what names
                                     // them is not refused a second time.
        let mut untyped = self.refused.clone();
        for (pi, p) in self.parsed.iter().enumerate() {
            let mut spec = p.envelope.spec.clone();
            let overlays = [
                (
                    "environments",
                    environment,
                    environment.and_then(|e| p.envelope.environments.get(e)).and_then(Option::as_ref),
                ),
                ("hosts", host, host.and_then(|h| p.envelope.hosts.get(h)).and_then(Option::as_ref)),
            ];
            let mut bad = false;
            for (key, name, overlay) in overlays {
                let Some(o) = overlay.map(|o| &o.spec) else { continue };
                if !o.is_null() && !o.is_mapping() {
                    let path = YamlPath::of(&[key, name.unwrap_or_default(), "spec"]);
                    diags.push(diag(
                        p.map.get().file_at(&path).unwrap_or(&p.origin.file),
                        p.map.get().value_pos(&path),
                        &path,
                        "an overlay's spec must be a mapping of the keys to change",
                    ));
                    bad = true;
                    continue;
                }
                deep_merge(&mut spec, o);
            }
            if bad {
                untyped.insert(p.envelope.metadata.name.clone());
                continue;
            }
            let typed_spec = match p.envelope.kind {
                Kind::Container => typed_each::<ContainerSpec>(spec).map(Spec::Container),
                Kind::PassengerApp => typed_each::<PassengerAppSpec>(spec).map(Spec::PassengerApp),
                Kind::NixosSystem => typed_each::<NixosSystemSpec>(spec).map(Spec::NixosSystem),
                Kind::Volume => typed_each::<VolumeSpec>(spec).map(Spec::Volume),
            };
            match typed_spec {
                Ok(s) => {
                    owners.push(pi);
                    resources.push(Resource {
                        api_version: p.envelope.api_version,
                        kind: p.envelope.kind,
                        metadata: p.envelope.metadata.clone(),
                        spec: s,
                        origin: p.origin.clone(),
                    });
                }
                Err(errors) => {
                    untyped.insert(p.envelope.metadata.name.clone());
                    for (rel, msg) in errors {
                        let mut path = YamlPath::of(&["spec"]);
                        path.0.extend(rel.0);
                        diags.push(self.locate(pi, environment, host, &path, &msg));
                    }
                }
            }
        }
        // A check that falls on the very spot of an error found while reading (an unset
        // `${VAR:?}` left the image as written) would say the same thing again, worse.
        let read_at: BTreeSet<(String, usize, usize)> =
            self.parse_errors.iter().map(|d| (d.file.clone(), d.line, d.column)).collect();
        for f in check_all(&resources, &untyped) {
            let d = self.locate(owners[f.resource], environment, host, &f.path, &f.message);
            if !read_at.contains(&(d.file.clone(), d.line, d.column)) {
                diags.push(d);
            }
        }
        if diags.is_empty() && self.parsed.is_empty() {
            diags.push(Diagnostic {
                file: if self.root.is_empty() { ".".into() } else { self.root.clone() },
                line: 0,
                column: 0,
                message: "no desired-state documents found (*.yaml or *.yml with apiVersion: driftless/v1, or a compose.yaml); \
                          an empty desired state would remove everything the agent manages, so it is refused: \
                          check source.path"
                    .into(),
            });
        }
        if diags.is_empty() {
            // Volumes run nothing: they are kept apart, so that planning and the drivers
            // see only what runs.
            let (volumes, resources) = resources.into_iter().partition(|r| r.kind == Kind::Volume);
            Ok(DesiredState { environment: environment.map(str::to_string), resources, volumes })
        } else {
            diags.sort();
            diags.dedup();
            Err(Invalid { diagnostics: diags })
        }
    }

    /// Position of `path` of document `pi`: in an overlay when the overlay set that value
    /// (the host's, merged last, first).
    fn locate(&self, pi: usize, env: Option<&str>, host: Option<&str>, path: &YamlPath, msg: &str) -> Diagnostic {
        let p = &self.parsed[pi];
        let mut shown = path.clone();
        if let Some(Seg::Key(first)) = path.0.first() {
            let candidates = [("hosts", host, &p.envelope.hosts), ("environments", env, &p.envelope.environments)];
            for (key, name, overlays) in candidates {
                let Some(name) = name else { continue };
                if first == "spec" && overlay_sets(overlays.get(name).and_then(Option::as_ref), &path.0[1..]) {
                    shown = YamlPath(
                        [Seg::Key(key.into()), Seg::Key(name.into()), Seg::Key("spec".into())]
                            .into_iter()
                            .chain(path.0[1..].iter().cloned())
                            .collect(),
                    );
                    break;
                }
            }
        }
        diagnostic_at(&p.origin.file, p.map.get(), &shown, msg)
    }
}

/// Whether `overlay` (an `environments.<env>` or `hosts.<host>`) sets the value at `rest` (a
/// path below `spec`).
fn overlay_sets(overlay: Option<&Overlay>, rest: &[Seg]) -> bool {
    let Some(mut v) = overlay.map(|o| &o.spec) else { return false };
    for seg in rest {
        let next = match (seg, v) {
            (Seg::Key(k), Value::Mapping(m)) => m.get(k.as_str()),
            (Seg::Index(i), Value::Sequence(s)) => s.get(*i),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => return false,
        }
    }
    true
}

/// Parse a file that holds one YAML document (such as the agent's config) as `T`, with the
/// same error quality as desired state. Returns the value and its position map, for checks.
pub fn parse_single<T: DeserializeOwned>(file: &str, text: &str) -> Result<(T, DocMap), Diagnostic> {
    if let Err((line, column, message)) = prescan(text) {
        return Err(Diagnostic { file: file.to_string(), line, column, message });
    }
    let map = map_documents(text).into_iter().next().unwrap_or_default();
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message: format!("YAML syntax: {}", strip_marks(&e.to_string())),
        }
    })?;
    if value.is_null() {
        return Err(Diagnostic { file: file.to_string(), line: 0, column: 0, message: "the file is empty".into() });
    }
    match typed::<T>(value) {
        Ok(v) => Ok((v, map)),
        Err((path, msg)) => Err(diagnostic_at(file, &map, &path, &msg)),
    }
}

/// A diagnostic at `path` of a mapped document (at the key, for unknown-key messages).
pub fn diagnostic_at(file: &str, map: &DocMap, path: &YamlPath, msg: &str) -> Diagnostic {
    let pos = if msg.starts_with("unknown key") { map.key_pos(path) } else { map.value_pos(path) };
    diag(map.file_at(path).unwrap_or(file), pos, &map.shown(path), msg)
}

fn diag(file: &str, pos: Pos, path: &YamlPath, msg: &str) -> Diagnostic {
    let message = if path.is_empty() { msg.to_string() } else { format!("{path}: {msg}") };
    Diagnostic { file: file.to_string(), line: pos.line, column: pos.column, message }
}

/// Mappings merge key by key, recursively; anything else in the overlay replaces the base.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Deserialize `value` as `T`; on failure, the path of the offending node (for an unknown
/// key: the key itself) and an operator-facing message.
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, (YamlPath, String)> {
    typed_from(value)
}

/// `typed` from any deserializer of a YAML value (`&Value` types it without a copy).
fn typed_from<'de, T: DeserializeOwned, D>(value: D) -> Result<T, (YamlPath, String)>
where
    D: serde::Deserializer<'de, Error = serde_yaml_ng::Error>,
{
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = YamlPath(
            e.path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    _ => None,
                })
                .collect(),
        );
        let raw = strip_marks(&e.inner().to_string());
        let msg = humanize(&raw, &mut path);
        (path, msg)
    })
}

/// `typed`, listing every error of a document rather than the first: the offending key is
/// set aside and the rest typed again, so one `validate` shows all there is to fix. A
/// missing key, or an error at a list item (removing it would shift the items after it),
/// ends the list, as does the 50th error: setting those aside would only cascade.
fn typed_each<T: DeserializeOwned>(mut value: Value) -> Result<T, Vec<(YamlPath, String)>> {
    let mut errors = Vec::new();
    loop {
        // Typed from a reference, without a copy; an error's key is set aside in place.
        match typed_from::<T, _>(&value) {
            Ok(t) if errors.is_empty() => return Ok(t),
            Ok(_) => return Err(errors),
            Err((path, msg)) => {
                let stop = msg.starts_with("missing key")
                    || errors.len() >= 49
                    || !crate::source_map::remove_entry(&mut value, &path);
                errors.push((path, msg));
                if stop {
                    return Err(errors);
                }
            }
        }
    }
}

/// Remove serde_yaml_ng's ` at line N column M` (we print positions ourselves).
fn strip_marks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.trim_start_matches(|c: char| c.is_ascii_digit());
        match digits.strip_prefix(" column ") {
            Some(c) => rest = c.trim_start_matches(|c: char| c.is_ascii_digit()),
            None => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The backtick-quoted words of a serde message, in order.
fn ticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Turn serde's messages into ones that say what to write; may extend `path` to the key.
fn humanize(raw: &str, path: &mut YamlPath) -> String {
    let words = ticked(raw);
    if raw.starts_with("unknown field") {
        let key = words.first().copied().unwrap_or("?");
        let expected = &words.get(1..).unwrap_or_default();
        if path.0.last() != Some(&Seg::Key(key.to_string())) {
            *path = path.key(key);
        }
        let hint =
            did_you_mean(key, expected.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        let list = if expected.is_empty() { String::from("none here") } else { expected.join(", ") };
        return format!("unknown key `{key}`{hint}; expected one of: {list}");
    }
    // A plain value where a mapping is expected (serde names the Rust struct: useless here).
    if let (Some(rest), true) = (raw.strip_prefix("invalid type: "), raw.contains(", expected struct ")) {
        let got = rest.split(", expected").next().unwrap_or(rest);
        if path.0.last() == Some(&Seg::Key("ref".into())) {
            return format!(
                "{got} where a mapping is expected: write exactly one of `ref: {{ branch: main }}`, `ref: {{ tag: production }}` or `ref: {{ semver: \">=1.0.0\" }}`"
            );
        }
        return format!("{got} where a mapping (key: value pairs) is expected: see the documentation of this key");
    }
    // A number or a boolean where a string is expected: say to quote it.
    if let Some(rest) = raw.strip_prefix("invalid type: ") {
        if rest.ends_with("expected a string") {
            if let (Some(v), true) =
                (words.first(), ["integer", "floating point", "boolean"].iter().any(|k| rest.starts_with(k)))
            {
                let ports = path.0.iter().any(|s| *s == Seg::Key("ports".into()));
                let hint =
                    if ports { " (a port is a string: \"8080:80\", \"127.0.0.1:8080:80\" or \"80\")" } else { "" };
                return format!(
                    "`{v}` is a number or a boolean, and a string is expected here: write it in quotes, \"{v}\"{hint}"
                );
            }
        }
        // A whole number too large for its field: YAML reads it as a float.
        if rest.starts_with("floating point") && (rest.contains("expected i") || rest.contains("expected u")) {
            if let Some(v) = words.first() {
                let whole = v.strip_suffix(".0").is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()));
                if whole {
                    let limit = rest.rsplit("expected ").next().unwrap_or("").trim();
                    let max = match limit {
                        "i64" => "9223372036854775807",
                        "u64" => "18446744073709551615",
                        "u32" => "4294967295",
                        "i32" => "2147483647",
                        "u16" => "65535",
                        _ => "its limit",
                    };
                    return format!("the number is too large for this key: at most {max}");
                }
            }
        }
    }
    if let Some(rest) = raw.strip_prefix("invalid value: integer ") {
        if let (Some(v), Some(limit)) = (words.first(), rest.rsplit("expected ").next()) {
            return format!("{v} is out of range here (expected {})", limit.trim());
        }
    }
    if raw.starts_with("missing field") {
        let key = words.first().copied().unwrap_or("?");
        return format!("missing key `{key}`: it is required here");
    }
    if raw.starts_with("unknown variant") {
        let got = words.first().copied().unwrap_or("?");
        let expected = &words.get(1..).unwrap_or_default();
        let last = path.0.last().cloned();
        if last == Some(Seg::Key("apiVersion".into())) {
            return format!("unknown apiVersion `{got}`: this agent understands `driftless/v1`");
        }
        if last == Some(Seg::Key("kind".into())) {
            let hint = did_you_mean(got, expected.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return format!("unknown kind `{got}`{hint}; expected one of: {}", expected.join(", "));
        }
        let hint =
            did_you_mean(got, expected.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        return format!("unknown value `{got}`{hint}; expected one of: {}", expected.join(", "));
    }
    raw.to_string()
}

/// Read every `*.yaml`/`*.yml` file below `dir` (entries whose names start with `.` are
/// skipped, like `.git` and `.github`). Paths in the result are relative to `dir`.
pub fn read_dir_files(dir: &Path) -> Result<Vec<SourceFile>, ReadError> {
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound { path: dir.to_path_buf() },
        _ => ReadError::Io { path: dir.to_path_buf(), source: e },
    })?;
    if !meta.is_dir() {
        return Err(ReadError::NotADirectory { path: dir.to_path_buf() });
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| ReadError::Io { path: d.clone(), source: e })?;
        for entry in entries {
            let entry = entry.map_err(|e| ReadError::Io { path: d.clone(), source: e })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && !is_env_file(&name) {
                continue;
            }
            let path = entry.path();
            let link = std::fs::symlink_metadata(&path).map_err(|e| ReadError::Io { path: path.clone(), source: e })?;
            if link.file_type().is_symlink() && (is_state_file(&name) || is_env_file(&name)) {
                return Err(ReadError::Symlink { path });
            }
            let ft = std::fs::metadata(&path).map_err(|e| ReadError::Io { path: path.clone(), source: e })?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.len() > MAX_FILE_BYTES as u64 && is_state_file(&name) {
                return Err(ReadError::TooLarge { path, size: mib(ft.len() as usize), limit: mib(MAX_FILE_BYTES) });
            } else if is_state_file(&name) || is_env_file(&name) {
                let bytes = std::fs::read(&path).map_err(|e| ReadError::Io { path: path.clone(), source: e })?;
                let text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 { path: path.clone() })?;
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                out.push(SourceFile { path: display_path(dir, rel), text });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// One desired-state file read from disk, with the compose `.env` beside it when there is
/// one (`agentctl validate FILE`), named as `read_dir_files` of its folder would name them.
pub fn read_one_file(file: &Path) -> Result<Vec<SourceFile>, ReadError> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !is_state_file(&name) {
        return Err(ReadError::NotStateFile { path: file.to_path_buf() });
    }
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (name, required) in [(name.as_str(), true), (".env", false)] {
        let path = dir.join(name);
        let link = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::NotFound { path }),
            Err(e) => return Err(ReadError::Io { path, source: e }),
        };
        if link.file_type().is_symlink() {
            return Err(ReadError::Symlink { path });
        }
        if link.len() > MAX_FILE_BYTES as u64 {
            return Err(ReadError::TooLarge { path, size: mib(link.len() as usize), limit: mib(MAX_FILE_BYTES) });
        }
        let bytes = std::fs::read(&path).map_err(|e| ReadError::Io { path: path.clone(), source: e })?;
        let text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 { path: path.clone() })?;
        out.push(SourceFile { path: display_path(dir, Path::new(name)), text });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Whether a file name is one the loader reads as YAML.
pub fn is_state_file(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Whether a file (name or path) is a compose `.env`: read for the compose file beside it.
pub fn is_env_file(path: &str) -> bool {
    path.rsplit('/').next() == Some(".env")
}

fn display_path(dir: &Path, rel: &Path) -> String {
    if dir == Path::new(".") {
        rel.display().to_string()
    } else {
        dir.join(rel).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error of a document is listed, not only the first serde meets; a missing key
    /// ends the list (what is set aside would only cascade).
    #[test]
    fn every_error_of_a_document_is_listed() {
        let text = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec:\n  image: web:1\n  imgae: x\n  stop_timeout: soon\n  portz: []\n";
        let files = [SourceFile { path: "web.yaml".into(), text: text.into() }];
        let Err(invalid) = parse(&files).build(None) else { panic!("valid") };
        let lines: Vec<String> = invalid.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("web.yaml:6:3: spec.imgae: unknown key `imgae` (did you mean `image`?)"),
            "{lines:#?}"
        );
        assert!(lines[1].starts_with("web.yaml:7:17: spec.stop_timeout: \"soon\" is not a duration"), "{lines:#?}");
        assert!(
            lines[2].starts_with("web.yaml:8:3: spec.portz: unknown key `portz` (did you mean `ports`?)"),
            "{lines:#?}"
        );
        let text =
            "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec:\n  imgae: x\n  portz: []\n";
        let files = [SourceFile { path: "web.yaml".into(), text: text.into() }];
        let Err(invalid) = parse(&files).build(None) else { panic!("valid") };
        assert!(invalid.diagnostics.len() <= 3, "{:#?}", invalid.diagnostics);
    }

    /// Volumes run nothing: they are kept apart from the resources, and a compose volume's
    /// `x-driftless.snapshot` is a Volume named as the engine names the volume. A Volume and
    /// a Container may share a name.
    #[test]
    fn volumes_are_kept_apart_and_compose_declares_them_too() {
        let compose = "services:\n  db:\n    image: db:1\n    volumes: [data:/d]\nvolumes:\n  data:\n    x-driftless:\n      snapshot: { keep: 3 }\n";
        let native = "apiVersion: driftless/v1\nkind: Volume\nmetadata: { name: cache }\nspec:\n  snapshot: { consistency: { exec: [dump], restore: [load] } }\n---\napiVersion: driftless/v1\nkind: Container\nmetadata: { name: cache }\nspec:\n  image: c:1\n  volumes: [\"cache:/c\"]\n";
        let files = [
            SourceFile { path: "shop/compose.yaml".into(), text: compose.into() },
            SourceFile { path: "cache.yaml".into(), text: native.into() },
        ];
        let state = match parse(&files).build(None) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(state.resources.iter().all(|r| r.kind != Kind::Volume));
        let vols: Vec<(&str, u32, &str)> = state
            .volumes
            .iter()
            .map(|r| match &r.spec {
                Spec::Volume(v) => {
                    let s = v.snapshot.as_ref().expect("snapshot");
                    (r.name(), s.keep, s.consistency.word())
                }
                _ => panic!("not a volume"),
            })
            .collect();
        assert_eq!(vols, vec![("cache", 5, "exec"), ("shop_data", 3, "pause")]);
    }

    #[test]
    fn a_claimed_folder_covers_what_is_below_it_only() {
        assert!(claims_file("grafana/prov", "grafana/prov"));
        assert!(claims_file("grafana/prov", "grafana/prov/ds/a.yaml"));
        assert!(!claims_file("grafana/prov", "grafana/provisioning.yaml"));
        assert!(claims_file("", "anything.yaml"), "the root claimed (`.:/src`, `build: .`) covers all");
        assert_eq!(shown("/srv/state/", "a/b.yml"), "/srv/state/a/b.yml");
        assert_eq!(shown("x", ""), "x");
        assert!(holds_driftless_documents("kind: Container\napiVersion: \"driftless/v1\" # ours\n"));
        assert!(!holds_driftless_documents("apiVersion: 1\ndatasources: []\n"));
    }

    #[test]
    fn strip_marks_removes_positions() {
        assert_eq!(
            strip_marks(
                "did not find expected key at line 3 column 5, while parsing a block mapping at line 1 column 1"
            ),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(strip_marks("plain"), "plain");
    }

    /// Issue 36: a `hosts:` key that is not a host name, and a `null` overlay, are refused
    /// where they are written (a null overlay used to erase the whole spec).
    #[test]
    fn overlays_name_hosts_and_change_something() {
        let text = "apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec: { image: web:1 }\nenvironments:\n  staging: {}\nhosts:\n  web_6: { spec: { image: web:2 } }\n  web-7: null\n  web-8.example.com: { spec: { image: web:3 } }\n";
        let loaded = parse(&[SourceFile { path: "a.yaml".into(), text: text.into() }]);
        let err = loaded.build_for(None, Some("web-7")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("a.yaml:8:10: hosts.web_6: \"web_6\" is not a host name"), "{err}");
        assert!(err.contains("a.yaml:9:10: hosts.web-7: the overlay of \"web-7\" is empty (null)"), "{err}");
        assert!(!err.contains("needs an image"), "a null overlay no longer erases the spec: {err}");
        assert!(!err.contains("staging") && !err.contains("web-8"), "{{}} and a dotted name are fine: {err}");
    }

    #[test]
    fn deep_merge_maps_and_replaces_lists() {
        let mut base: Value = serde_yaml_ng::from_str("{a: 1, env: {X: 1, Y: 2}, ports: [a, b]}").unwrap();
        let over: Value = serde_yaml_ng::from_str("{env: {Y: 3, Z: 4}, ports: [c]}").unwrap();
        deep_merge(&mut base, &over);
        let want: Value = serde_yaml_ng::from_str("{a: 1, env: {X: 1, Y: 3, Z: 4}, ports: [c]}").unwrap();
        assert_eq!(base, want);
    }
}
