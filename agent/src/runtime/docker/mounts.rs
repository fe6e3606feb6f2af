//! What a container reads from the revision and the host, besides its image: env files
//! (`env_files`, compose's `.env` rules), secrets (`secrets`, `.age` files decrypted in
//! memory), files and folders of the repository bound into it (`files`, exported at the
//! revision to a stable host path), the data folders compose binds (`./data`), and the
//! digests of all of them that go into the spec hash (`inputs`).
//!
//! Architecture Invariants: the plaintext of an `.age` file goes only to the runtime
//! folder (`/run/driftless/secrets`, a tmpfs), never under `state_dir`; a data folder is
//! created once and never overwritten or removed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use desired_state_schema::ContainerSpec;
use sha2::{Digest, Sha256};

use super::errors::files_err;
use super::spec::builds_first;
use crate::revision::Revision;
use crate::runtime::RuntimeError;

/// The host's folders that containers mount, and the identities that decrypt what they
/// read (the revision's files come with the revision: `Revision::files`).
#[derive(Clone)]
pub(super) struct Mounts {
    /// `state_dir/secrets/<resource>/`: plain (not `.age`) secret files from the repository.
    /// Its sibling `state_dir/files/` holds the exported `files` and the data folders.
    secrets_dir: PathBuf,
    /// `<control socket's folder>/secrets/<resource>/` (`/run/driftless`, a tmpfs): the
    /// plaintext of `.age` secrets, which never goes under `state_dir`.
    runtime_secrets: PathBuf,
    /// Decrypts the repository's `.age` files.
    secrets: std::sync::Arc<crate::secrets::Secrets>,
}

impl Mounts {
    /// The mounts of an agent with `cfg`, decrypting with `secrets`.
    pub fn new(cfg: &crate::config::LoadedConfig, secrets: std::sync::Arc<crate::secrets::Secrets>) -> Mounts {
        let run_dir = cfg
            .config
            .control_socket
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("/run/driftless"));
        Mounts { secrets_dir: cfg.config.state_dir.join("secrets"), runtime_secrets: run_dir.join("secrets"), secrets }
    }

    /// Where the data folder of the repository path `source` lives on the host (shared by
    /// every container that binds it): `state_dir/files/_shared/<source>`, as (the shared
    /// root, the path below it).
    pub fn data_folder(&self, source: &str) -> (PathBuf, String) {
        let rel = source.trim_start_matches("./").trim_end_matches('/').to_string();
        (self.secrets_dir.with_file_name("files").join("_shared"), rel)
    }

    /// The tree id of `folder` at the revision (a build context's: what its image is tagged by).
    pub async fn tree(&self, name: &str, revision: &Revision, folder: &str) -> Result<String, RuntimeError> {
        let folder = folder.to_string();
        revision.read(move |files| files.tree_id(&folder)).await.map_err(|e| files_err(name, e))
    }

    /// Host-side inputs of the spec hash: each env file's digest, each secret's digest, the
    /// build context's tree and the local image's id (`image_id`, already known).
    pub async fn inputs(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &Revision,
        image_id: &str,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let mut out = BTreeMap::new();
        for f in &spec.env_files {
            let digest = match self.env_file_entry(name, f, revision).await? {
                Some(bytes) => format!("{:x}", Sha256::digest(&bytes)),
                None => "absent".to_string(),
            };
            out.insert(format!("env_file:{}", f.path), digest);
        }
        if let Some(p) = spec.env_files_vars.as_ref().filter(|_| !spec.env_files.is_empty()) {
            let bytes = self.read_file(name, p, revision).await?;
            out.insert(format!("env_files_vars:{p}"), format!("{:x}", Sha256::digest(&bytes)));
        }
        for m in &spec.files {
            let id = match self.entry(name, revision, &m.source).await? {
                Some((_, id)) => id,
                None => "data folder".to_string(),
            };
            out.insert(format!("file:{}", m.source), id);
        }
        for sec in &spec.secrets {
            let digest = format!("{:x}", Sha256::digest(self.secret_content(name, sec, revision).await?));
            out.insert(format!("secret:{}", sec.name), digest);
        }
        if let Some(b) = spec.build.as_ref().filter(|_| builds_first(spec)) {
            out.insert("build_tree".to_string(), self.tree(name, revision, &b.context).await?);
        }
        out.insert("image_id".to_string(), image_id.to_string());
        Ok(out)
    }

    /// An `env_files` entry's content; `None` for one with `required: false` that is not
    /// there (a host file missing, or a repository path the revision does not hold).
    pub async fn env_file_entry(
        &self,
        name: &str,
        f: &desired_state_schema::EnvFile,
        revision: &Revision,
    ) -> Result<Option<Vec<u8>>, RuntimeError> {
        if !f.required {
            let there = if f.path.starts_with('/') {
                tokio::fs::try_exists(&f.path).await.unwrap_or(true)
            } else {
                self.entry(name, revision, &f.path).await?.is_some()
            };
            if !there {
                return Ok(None);
            }
        }
        self.read_file(name, &f.path, revision).await.map(Some)
    }

    /// A file the spec names (an env file, a secret's source): a host file (absolute), else a
    /// repository file at the revision.
    pub async fn read_file(&self, name: &str, path: &str, revision: &Revision) -> Result<Vec<u8>, RuntimeError> {
        if path.starts_with('/') {
            return tokio::fs::read(path).await.map_err(|e| RuntimeError::EnvFile {
                resource: name.to_string(),
                path: path.to_string(),
                detail: e.to_string(),
            });
        }
        let p = path.to_string();
        revision.read(move |files| files.read(&p)).await.map_err(|e| files_err(name, e))
    }

    /// What a `files` source is at the revision: (is a folder, its object id), or `None`.
    pub async fn entry(
        &self,
        name: &str,
        revision: &Revision,
        path: &str,
    ) -> Result<Option<(bool, String)>, RuntimeError> {
        let p = path.to_string();
        revision.read(move |files| files.entry(&p)).await.map_err(|e| files_err(name, e))
    }

    /// Bind mounts for `files`: each source exported at the revision to a stable path,
    /// `state_dir/files/<resource>/<source>` (replaced whole, by rename, when its content
    /// changed); a source the revision does not hold is a data folder, created once and never
    /// overwritten or removed, and one folder for every container that binds it —
    /// `state_dir/files/_shared/<source>` — as compose binds `./data` of several services to
    /// one folder of the host.
    pub async fn file_binds(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &Revision,
    ) -> Result<Vec<String>, RuntimeError> {
        let mut binds = Vec::new();
        let files = self.secrets_dir.with_file_name("files");
        let root = files.join(name);
        for m in &spec.files {
            let rel = m.source.trim_start_matches("./").trim_end_matches('/');
            let mut host = root.join(rel);
            let stamp = host.with_file_name(format!(
                ".{}.id",
                host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ));
            match self.entry(name, revision, &m.source).await? {
                None => {
                    // `_shared` can be no resource's folder: a container name starts with a
                    // letter or digit.
                    let shared = files.join("_shared").join(rel);
                    let (own, at) = (host.clone(), shared.clone());
                    tokio::task::spawn_blocking(move || data_folder(&own, &at))
                        .await
                        .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
                        .map_err(|e| {
                            RuntimeError::io(name, &shared, &e, |resource, detail| RuntimeError::Docker {
                                resource,
                                detail,
                            })
                        })?;
                    host = shared;
                }
                Some((is_dir, id)) => {
                    let current = tokio::fs::read_to_string(&stamp).await.unwrap_or_default();
                    if current.trim() != id || !host.exists() {
                        let src = revision.files().map_err(|e| files_err(name, e))?;
                        let (source, h, st) = (m.source.clone(), host.clone(), stamp.clone());
                        tokio::task::spawn_blocking(move || -> Result<(), String> {
                            let parent = h.parent().ok_or("no parent")?.to_path_buf();
                            std::fs::create_dir_all(&parent).map_err(|e| e.to_string())?;
                            let tmp = parent.join(format!(".tmp-{}", std::process::id()));
                            let _ = std::fs::remove_dir_all(&tmp);
                            let _ = std::fs::remove_file(&tmp);
                            if is_dir {
                                let export = src.export(&source).map_err(|e| e.to_string())?;
                                crate::fsutil::copy_tree(&export, &tmp).map_err(|e| e.to_string())?;
                                let _ = std::fs::remove_dir_all(&h);
                            } else {
                                let bytes = src.read(&source).map_err(|e| e.to_string())?;
                                std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
                                if h.is_dir() {
                                    let _ = std::fs::remove_dir_all(&h);
                                }
                            }
                            std::fs::rename(&tmp, &h).map_err(|e| e.to_string())?;
                            crate::fsutil::write_atomic(&st, id.as_bytes()).map_err(|e| e.to_string())
                        })
                        .await
                        .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
                        .map_err(|detail| RuntimeError::Host {
                            resource: name.into(),
                            detail: format!("exporting {}: {detail}", m.source),
                        })?;
                    }
                }
            }
            let mut opts: Vec<&str> = Vec::new();
            if m.read_only {
                opts.push("ro");
            }
            match m.selinux {
                Some(desired_state_schema::SelinuxLabel::Shared) => opts.push("z"),
                Some(desired_state_schema::SelinuxLabel::Private) => opts.push("Z"),
                None => {}
            }
            let opts = if opts.is_empty() { String::new() } else { format!(":{}", opts.join(",")) };
            binds.push(format!("{}:{}{opts}", host.display(), m.target));
        }
        Ok(binds)
    }

    /// The plaintext of `path`'s content: decrypted in memory when it is an `.age` file.
    pub fn plaintext(
        &self,
        name: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, RuntimeError> {
        if !crate::secrets::is_encrypted(path) {
            return Ok(zeroize::Zeroizing::new(bytes));
        }
        self.secrets
            .decrypt(path, &bytes)
            .map_err(|e| RuntimeError::Docker { resource: name.to_string(), detail: e.to_string() })
    }

    /// The variables of the spec's `env_files`, read at the revision (host files as they are),
    /// decrypted and resolved as compose does; `spec.env` goes over them at create.
    pub async fn env_files(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &Revision,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        // `${VAR}` in an env file: the files read before it, then `env_files_vars` (compose:
        // the project's `.env`), as compose-go's `GetEnvFromFile` looks them up.
        let vars = match &spec.env_files_vars {
            Some(p) if !spec.env_files.is_empty() => {
                let bytes = self.read_file(name, p, revision).await?;
                desired_state_schema::compose::dotenv::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| {
                    RuntimeError::Docker { resource: name.into(), detail: format!("{p}: {e} (compose's .env format)") }
                })?
            }
            _ => BTreeMap::new(),
        };
        for f in &spec.env_files {
            let path = &f.path;
            let Some(bytes) = self.env_file_entry(name, f, revision).await? else { continue };
            let bytes = self.plaintext(name, path, bytes)?;
            let text = String::from_utf8_lossy(&bytes);
            let lookup = |k: &str| env.get(k).or_else(|| vars.get(k)).cloned();
            let parsed = desired_state_schema::compose::dotenv::parse_with(&text, &lookup);
            for (k, v) in parsed.map_err(|e| {
                let detail = format!("{e} (the .env format compose reads: KEY=value, quotes, # comments)");
                if path.starts_with('/') {
                    // A host-side file: the host's to fix, as when it is missing.
                    RuntimeError::EnvFile { resource: name.into(), path: path.clone(), detail }
                } else {
                    RuntimeError::Docker { resource: name.into(), detail: format!("env file {path}: {detail}") }
                }
            })? {
                env.insert(k, v);
            }
        }
        Ok(env)
    }

    /// Every `.age` file the spec names decrypts with this host's identities (else the
    /// revision is invalid, naming the file and its recipients).
    pub async fn check_decrypts(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &Revision,
    ) -> Result<(), RuntimeError> {
        for f in spec.env_files.iter().filter(|f| crate::secrets::is_encrypted(&f.path)) {
            if let Some(bytes) = self.env_file_entry(name, f, revision).await? {
                self.plaintext(name, &f.path, bytes)?;
            }
        }
        for sec in spec.secrets.iter().filter(|s| crate::secrets::is_encrypted(&s.source)) {
            let bytes = self.secret_content(name, sec, revision).await?;
            if sec.env.is_none() {
                self.plaintext(name, &sec.source, bytes)?;
            }
        }
        Ok(())
    }

    /// A secret's content: a repository file at the revision, or a host file.
    pub async fn secret_content(
        &self,
        name: &str,
        sec: &desired_state_schema::SecretFile,
        revision: &Revision,
    ) -> Result<Vec<u8>, RuntimeError> {
        let whole = self.read_file(name, &sec.source, revision).await?;
        let Some(var) = &sec.env else { return Ok(whole) };
        // One variable of a `.env` file (compose's `environment:` secret), decrypted first
        // when the file is an `.age` one.
        let whole = self.plaintext(name, &sec.source, whole)?;
        let text = String::from_utf8_lossy(&whole);
        let vars = parse_env_file(&text).map_err(|e| RuntimeError::Docker {
            resource: name.into(),
            detail: format!("secret {}: {} {e}", sec.name, sec.source),
        })?;
        vars.get(var).map(|v| v.as_bytes().to_vec()).ok_or_else(|| RuntimeError::Docker {
            resource: name.into(),
            detail: format!("secret {}: {} defines no {var}: define it there", sec.name, sec.source),
        })
    }

    /// Bind mounts for the secrets: repository files are written under `state_dir/secrets`
    /// (atomically; the folder 0700 so no other host user reaches them, the file 0444 so the
    /// container's user, whoever it is, can read it) and mounted read-only; host files are
    /// mounted as they are.
    pub async fn secret_binds(
        &self,
        name: &str,
        spec: &ContainerSpec,
        revision: &Revision,
    ) -> Result<Vec<String>, RuntimeError> {
        let mut binds = Vec::new();
        for sec in &spec.secrets {
            let host = if sec.source.starts_with('/') && !crate::secrets::is_encrypted(&sec.source) && sec.env.is_none()
            {
                PathBuf::from(&sec.source)
            } else {
                let encrypted = crate::secrets::is_encrypted(&sec.source);
                // An `env` secret is already its variable's value, decrypted (secret_content).
                let bytes = match sec.env {
                    Some(_) => zeroize::Zeroizing::new(self.secret_content(name, sec, revision).await?),
                    None => {
                        let raw = self.secret_content(name, sec, revision).await?;
                        self.plaintext(name, &sec.source, raw)?
                    }
                };
                // The plaintext of an .age secret lives in the runtime folder, never in state_dir.
                let dir = if encrypted { self.runtime_secrets.join(name) } else { self.secrets_dir.join(name) };
                let file = dir.join(&sec.name);
                let (d, f) = (dir.clone(), file.clone());
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::create_dir_all(&d)?;
                    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
                    crate::fsutil::write_atomic(&f, &bytes)?;
                    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444))
                })
                .await
                .map_err(|e| RuntimeError::Host { resource: name.into(), detail: e.to_string() })?
                .map_err(|e| {
                    RuntimeError::io(name, &file, &e, |resource, detail| RuntimeError::Docker { resource, detail })
                })?;
                file
            };
            binds.push(format!("{}:{}:ro", host.display(), sec.container_path()));
        }
        Ok(binds)
    }
}

/// Make the shared data folder `shared`. A data folder of an older agent, one per
/// container (`own`), becomes it by rename when it is not there yet, so no data is left
/// behind; the others' own folders stay where they are (never removed).
fn data_folder(own: &std::path::Path, shared: &std::path::Path) -> std::io::Result<()> {
    if shared.is_dir() {
        return Ok(());
    }
    if let Some(parent) = shared.parent() {
        std::fs::create_dir_all(parent)?;
        if own.is_dir() {
            std::fs::rename(own, shared)?;
            return crate::fsutil::fsync_dir(parent);
        }
    }
    std::fs::create_dir_all(shared)
}

/// `KEY=value` lines; `#` comments and blank lines skipped; `export ` prefixes allowed.
/// An env file's variables, read as compose reads `env_file:` and `.env` (compose-go's
/// dotenv format: quotes, escapes, `#` comments, values built from earlier ones; nothing
/// from the agent's own environment).
pub fn parse_env_file(
    text: &str,
) -> Result<BTreeMap<String, String>, desired_state_schema::compose::dotenv::DotenvError> {
    desired_state_schema::compose::dotenv::parse_with(text, &|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files() {
        let got = parse_env_file(
            "# c\nA=1\nexport B = two\nC=\"quoted value\"  # a comment\nURL=https://${HOST:-h}/x\nD='lit $A'\n",
        );
        let got: Vec<(String, String)> = got.unwrap_or_default().into_iter().collect();
        let want: Vec<(String, String)> =
            [("A", "1"), ("B", "two"), ("C", "quoted value"), ("D", "lit $A"), ("URL", "https://h/x")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
        // A line compose refuses is refused (it used to be skipped without a word).
        assert!(parse_env_file("A=1\nnot a pair\n").is_err());
    }

    /// A data folder of an older agent (one per container) becomes the shared one by rename,
    /// once; another container's own copy is left where it is; nothing is removed.
    #[test]
    fn data_folders_move_to_the_shared_one_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, shared) =
            (dir.path().join("a/stack/data"), dir.path().join("b/stack/data"), dir.path().join("_shared/stack/data"));
        for (d, f) in [(&a, "from-a"), (&b, "from-b")] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("f"), f).unwrap();
        }
        data_folder(&a, &shared).unwrap();
        data_folder(&b, &shared).unwrap();
        assert_eq!(std::fs::read_to_string(shared.join("f")).unwrap(), "from-a");
        assert!(!a.exists(), "moved, not copied");
        assert_eq!(std::fs::read_to_string(b.join("f")).unwrap(), "from-b", "left where it was");
        let fresh = dir.path().join("_shared/other");
        data_folder(&dir.path().join("c/other"), &fresh).unwrap();
        assert!(fresh.is_dir());
    }
}
