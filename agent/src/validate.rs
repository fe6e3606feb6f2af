//! `agentctl validate [DIR]`: check a desired-state folder offline, as CI would before a
//! merge. Validates the base documents and every environment they declare overlays for (or
//! only the one asked for), and can render the effective state. No agent, no Git, no runtime.

use std::path::Path;

use desired_state_schema::{
    parse_with, read_dir_files, read_one_file, DesiredState, Diagnostic, ParseOptions, ReadError,
};
use serde::Serialize;

/// A diagnostic and the environment (and host) it shows up in (`None`: the base documents,
/// no host overlay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    #[serde(flatten)]
    pub diagnostic: Diagnostic,
    pub environment: Option<String>,
    pub host: Option<String>,
}

/// What `validate` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub valid: bool,
    pub directory: String,
    pub files: usize,
    pub documents: usize,
    /// Environments that some document declares an overlay for.
    pub environments: Vec<String>,
    /// Which environments were checked (`null` stands for the base documents).
    pub checked: Vec<Option<String>>,
    /// Hosts that some document declares an overlay for (`hosts:`).
    pub hosts: Vec<String>,
    /// Which hosts' overlays were checked (`null`: none), in each checked environment.
    pub checked_hosts: Vec<Option<String>>,
    pub errors: Vec<Finding>,
    /// Not errors (compose: a variable unset and without a default became empty).
    pub warnings: Vec<Diagnostic>,
    /// YAML files not read as desired state: a compose file mounts or reads them.
    pub not_desired_state: Vec<desired_state_schema::Skipped>,
    /// The effective desired state, when asked for and valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<desired_state_schema::Resource>>,
}

/// Validate `dir`. `environment`: check only that one (else the base and every declared one).
/// `host`: with that host's overlays only (else without any, and with each declared one).
/// `render`: keep the effective state of `environment` and `host` (or of the base) in the report.
pub fn validate(
    dir: &Path,
    environment: Option<&str>,
    host: Option<&str>,
    render: bool,
    profiles: &[String],
    identities: Option<&crate::secrets::Secrets>,
    strict: bool,
) -> Result<Report, ReadError> {
    // A file: that file alone (with the compose .env beside it), in its folder.
    let (files, dir) = if dir.is_file() {
        (read_one_file(dir)?, dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
    } else {
        (read_dir_files(dir)?, dir)
    };
    let root = if dir == Path::new(".") { String::new() } else { dir.display().to_string() };
    // The folder's own name, however it was reached (`.`, `../x`, an absolute path).
    let root_name =
        std::fs::canonicalize(dir).ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let home = crate::fsutil::home_dir();
    let read_other = Some(desired_state_schema::ReadOther(std::sync::Arc::new(crate::fsutil::read_settings_file)));
    let loaded =
        parse_with(&files, &ParseOptions { compose_profiles: profiles.to_vec(), root, root_name, home, read_other });
    let declared: Vec<String> = loaded.environments().into_iter().collect();
    let checked: Vec<Option<String>> = match environment {
        Some(e) => vec![Some(e.to_string())],
        None => std::iter::once(None).chain(declared.iter().cloned().map(Some)).collect(),
    };
    let declared_hosts: Vec<String> = loaded.hosts().into_iter().collect();
    let checked_hosts: Vec<Option<String>> = match host {
        Some(h) => vec![Some(h.to_string())],
        None => std::iter::once(None).chain(declared_hosts.iter().cloned().map(Some)).collect(),
    };
    let mut errors: Vec<Finding> = Vec::new();
    let mut warnings: Vec<Diagnostic> = loaded.warnings().to_vec();
    // A name no document mentions is a typo more often than not: said, never silence; an
    // error with --strict (what CI runs).
    for (what, asked, known) in [("environment", environment, &declared), ("host", host, &declared_hosts)] {
        let Some(name) = asked.filter(|n| !known.iter().any(|k| k == n)) else { continue };
        let hint = desired_state_schema::checks::did_you_mean(name, known.iter().map(String::as_str))
            .map(|k| format!("did you mean {k}? "))
            .unwrap_or_default();
        let listed = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        let d = Diagnostic {
            file: dir.display().to_string(),
            line: 0,
            column: 0,
            message: format!(
                "{what} {name:?} is not mentioned by any document here ({hint}{what}s with overlays: {listed}); the base documents are checked for it{}",
                if strict { "" } else { " (an error with --strict)" }
            ),
        };
        if strict {
            errors.push(Finding { diagnostic: d, environment: None, host: None });
        } else {
            warnings.push(d);
        }
    }
    let mut rendered: Option<DesiredState> = None;
    for (env, host) in checked.iter().flat_map(|e| checked_hosts.iter().map(move |h| (e, h))) {
        match loaded.build_for(env.as_deref(), host.as_deref()) {
            Ok(state) => {
                if let Some(ids) = identities {
                    for d in check_secrets(dir, &state, ids) {
                        if !errors.iter().any(|f| f.diagnostic == d) {
                            errors.push(Finding { diagnostic: d, environment: env.clone(), host: host.clone() });
                        }
                    }
                }
                if render && rendered.is_none() {
                    rendered = Some(state);
                }
            }
            Err(invalid) => {
                for d in invalid.diagnostics {
                    // A problem of the base documents shows up in every environment: say it once.
                    if !errors.iter().any(|f| f.diagnostic == d) {
                        errors.push(Finding { diagnostic: d, environment: env.clone(), host: host.clone() });
                    }
                }
            }
        }
    }
    errors.sort_by(|a, b| a.diagnostic.cmp(&b.diagnostic));
    Ok(Report {
        valid: errors.is_empty(),
        directory: dir.display().to_string(),
        files: loaded.file_count(),
        documents: loaded.document_count(),
        environments: declared,
        checked,
        hosts: declared_hosts,
        checked_hosts,
        errors,
        warnings,
        not_desired_state: loaded.skipped().to_vec(),
        resources: rendered.map(|s| s.resources.into_iter().chain(s.volumes).collect()),
    })
}

/// Every `.age` file `state` names (Container `env_files` and `secrets`, PassengerApp
/// `secrets`), read from the repository holding `dir` (the nearest folder with `.git`, else
/// `dir`) and decrypted with `ids`: the files that do not decrypt, at the document naming them.
fn check_secrets(dir: &Path, state: &DesiredState, ids: &crate::secrets::Secrets) -> Vec<Diagnostic> {
    use desired_state_schema::Spec;
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let root = abs.ancestors().find(|a| a.join(".git").exists()).unwrap_or(&abs).to_path_buf();
    let mut out = Vec::new();
    for r in &state.resources {
        let named: Vec<(String, &String)> = match &r.spec {
            Spec::Container(c) => c
                .env_files
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("spec.env_files[{i}]"), &p.path))
                .chain(c.secrets.iter().enumerate().map(|(i, s)| (format!("spec.secrets[{i}].source"), &s.source)))
                .collect(),
            Spec::PassengerApp(p) => {
                p.secrets.iter().enumerate().map(|(i, s)| (format!("spec.secrets[{i}].source"), &s.source)).collect()
            }
            _ => Vec::new(),
        };
        for (at, path) in named.into_iter().filter(|(_, p)| crate::secrets::is_encrypted(p)) {
            let file = if path.starts_with('/') { std::path::PathBuf::from(path) } else { root.join(path) };
            let message = match std::fs::read(&file) {
                Ok(bytes) => match ids.decrypt(path, &bytes) {
                    Ok(_) => continue,
                    Err(e) => format!("{at}: {e}"),
                },
                Err(e) => format!("{at}: cannot read {}: {e}", file.display()),
            };
            out.push(Diagnostic { file: r.origin.file.clone(), line: r.origin.line, column: 1, message });
        }
    }
    out
}

impl Report {
    /// One line per error, `file:line:column: message`, with the environment when it matters.
    pub fn error_lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|f| {
                let mut at = Vec::new();
                if let Some(e) = f.environment.as_ref().filter(|_| self.checked.len() > 1) {
                    at.push(format!("environment {e}"));
                }
                if let Some(h) = f.host.as_ref().filter(|_| self.checked_hosts.len() > 1) {
                    at.push(format!("host {h}"));
                }
                if at.is_empty() {
                    f.diagnostic.to_string()
                } else {
                    format!("{} ({})", f.diagnostic, at.join(", "))
                }
            })
            .collect()
    }

    /// One line per YAML file not read as desired state, and what claims it.
    pub fn skipped_lines(&self) -> Vec<String> {
        self.not_desired_state
            .iter()
            .map(|s| format!("not desired state: {} (mounted or read by {})", s.file, s.claimed_by))
            .collect()
    }

    /// The closing line for people.
    pub fn summary(&self) -> String {
        let skipped = match self.not_desired_state.len() {
            0 => String::new(),
            n => format!("; {n} file{} mounted by compose, not desired state", plural(n)),
        };
        let envs = if self.environments.is_empty() {
            String::new()
        } else {
            format!("; environments: {}", self.environments.join(", "))
        };
        let hosts = if self.hosts.is_empty() { String::new() } else { format!("; hosts: {}", self.hosts.join(", ")) };
        let counted = format!(
            "{} document{} in {} file{}{envs}{hosts}",
            self.documents,
            plural(self.documents),
            self.files,
            plural(self.files)
        ) + &skipped;
        if self.valid {
            format!("{}: valid ({counted})", self.directory)
        } else {
            format!("{}: invalid: {} error{} ({counted})", self.directory, self.errors.len(), plural(self.errors.len()))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
