//! Images: references as the engine wants them (no tag means `:latest`, never "all tags"),
//! registry credentials (Docker's own `config.json` through the `docker_credential` crate,
//! overridden per host by `registries:` in the agent config), pulls, builds from a
//! repository folder, and the record of images the agent brought, for pruning.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{BuildImageOptions, CreateImageOptions, RemoveImageOptions, TagImageOptions};
use bollard::Docker;
use desired_state_schema::BuildSpec;
use futures_util::StreamExt;

use super::super::{Log, RuntimeError};
use crate::config::RegistryConfig;

/// `image` with `:latest` added when it has neither tag nor digest.
pub fn normalize(image: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// (repository, tag) for a pull; a digest reference is pulled whole.
pub fn split(image: &str) -> (String, Option<String>) {
    let image = normalize(image);
    if image.contains('@') {
        return (image, None);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
        _ => (image, None),
    }
}

/// The registry host of a reference (`docker.io` when it names none).
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

/// Where credentials for a registry come from.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    configured: Vec<RegistryConfig>,
}

impl Credentials {
    pub fn new(configured: Vec<RegistryConfig>) -> Credentials {
        Credentials { configured }
    }

    /// Credentials for pulling `image`, if any are configured: `registries:` first, then
    /// Docker's `config.json` (`auths`, `credHelpers`, `credsStore`).
    pub async fn for_image(&self, image: &str) -> Result<Option<DockerCredentials>, RuntimeError> {
        let host = registry_host(image);
        if let Some(r) = self.configured.iter().find(|r| r.host == host) {
            let text = tokio::fs::read_to_string(&r.password_file).await.map_err(|e| RuntimeError::Host {
                resource: image.to_string(),
                detail: format!("registries: cannot read password_file {}: {e}", r.password_file.display()),
            })?;
            return Ok(Some(DockerCredentials {
                username: Some(r.username.clone()),
                password: Some(text.lines().next().unwrap_or("").to_string()),
                serveraddress: Some(host),
                ..Default::default()
            }));
        }
        let server = if host == "docker.io" { "https://index.docker.io/v1/".to_string() } else { host.clone() };
        let found = tokio::task::spawn_blocking(move || docker_credential::get_credential(&server))
            .await
            .map_err(|e| RuntimeError::Host { resource: image.to_string(), detail: e.to_string() })?;
        Ok(match found {
            Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => Some(DockerCredentials {
                username: Some(u),
                password: Some(p),
                serveraddress: Some(host),
                ..Default::default()
            }),
            Ok(docker_credential::DockerCredential::IdentityToken(t)) => {
                Some(DockerCredentials { identitytoken: Some(t), serveraddress: Some(host), ..Default::default() })
            }
            Err(docker_credential::CredentialRetrievalError::NoCredentialConfigured)
            | Err(docker_credential::CredentialRetrievalError::ConfigNotFound) => None,
            Err(e) => {
                tracing::warn!("credentials for {host} from Docker's config: {e}; pulling without");
                None
            }
        })
    }
}

/// Pull `image` (normalized) with the credentials that apply; a refusal names the registry.
pub async fn pull(api: &Docker, creds: &Credentials, image: &str) -> Result<(), RuntimeError> {
    let (repo, tag) = split(image);
    let auth = creds.for_image(image).await?;
    let opts = CreateImageOptions { from_image: Some(repo), tag, ..Default::default() };
    let mut stream = api.create_image(Some(opts), None, auth.clone());
    while let Some(item) = stream.next().await {
        crate::sdnotify::progress(); // a pull that streams is progress
        if let Err(e) = item {
            let detail = match &e {
                BollardError::DockerResponseServerError { message, .. } => message.clone(),
                BollardError::DockerStreamError { error } => error.clone(),
                other => other.to_string(),
            };
            let lower = detail.to_ascii_lowercase();
            if lower.contains("unauthorized")
                || lower.contains("authentication required")
                || lower.contains("denied")
                || lower.contains("no basic auth")
            {
                let registry = registry_host(image);
                let how = if auth.is_some() {
                    "the credentials were refused: renew them (docker login"
                } else {
                    "no credentials are configured for it: docker login"
                };
                return Err(RuntimeError::RegistryAuth {
                    image: image.to_string(),
                    registry: registry.clone(),
                    detail: format!("{detail}; {how} {registry}, or registries: in the agent config)"),
                });
            }
            // The registry answered, and has no such manifest: the revision's own content.
            if lower.contains("manifest unknown") || (lower.contains("manifest for") && lower.contains("not found")) {
                return Err(RuntimeError::ImageUnknown { image: image.to_string(), detail });
            }
            return Err(RuntimeError::Pull { image: image.to_string(), detail });
        }
    }
    Ok(())
}

/// Build `tag` from `context_dir` (a repository folder exported at the revision). The output
/// streams to `log`; a failed build is a verdict carrying its last lines.
pub async fn build(
    api: &Docker,
    resource: &str,
    spec: &BuildSpec,
    context_dir: &Path,
    tag: &str,
    log: Log<'_>,
) -> Result<(), RuntimeError> {
    let dir = context_dir.to_path_buf();
    let tar = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", &dir)?;
        b.into_inner()
    })
    .await
    .map_err(|e| RuntimeError::Host { resource: resource.to_string(), detail: e.to_string() })?
    .map_err(|e| {
        RuntimeError::io(resource, context_dir, &e, |resource, detail| RuntimeError::Build { resource, detail })
    })?;
    let opts = BuildImageOptions {
        dockerfile: spec.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into()),
        t: Some(tag.to_string()),
        target: spec.target.clone().unwrap_or_default(),
        buildargs: (!spec.args.is_empty())
            .then(|| spec.args.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect::<HashMap<_, _>>()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut tail: Vec<String> = Vec::new();
    let mut stream = api.build_image(opts, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = stream.next().await {
        crate::sdnotify::progress();
        match item {
            Ok(info) => {
                let text = info.stream.or(info.status).unwrap_or_default();
                for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                    log(format!("build {resource}: {line}"));
                    tail.push(line.to_string());
                    if tail.len() > 50 {
                        tail.remove(0);
                    }
                }
                if let Some(err) = info.error_detail.and_then(|d| d.message) {
                    tail.push(err.clone());
                    return Err(build_failed(resource, &tail));
                }
            }
            Err(BollardError::DockerStreamError { error }) => {
                tail.push(error);
                return Err(build_failed(resource, &tail));
            }
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                tail.push(message);
                return Err(build_failed(resource, &tail));
            }
            Err(e) => return Err(RuntimeError::DockerUnreachable { detail: e.to_string() }),
        }
    }
    Ok(())
}

fn build_failed(resource: &str, tail: &[String]) -> RuntimeError {
    let last: Vec<&str> = tail.iter().rev().take(6).map(String::as_str).collect::<Vec<_>>().into_iter().rev().collect();
    let detail = format!("the image build failed: {}", last.join(" | "));
    if crate::fault::text_is_fault(&detail) {
        RuntimeError::Host { resource: resource.to_string(), detail }
    } else {
        RuntimeError::Build { resource: resource.to_string(), detail }
    }
}

/// Add `name` as another tag of image `source`.
pub async fn tag(api: &Docker, source: &str, name: &str) -> Result<(), BollardError> {
    let (repo, tag) = split(name);
    api.tag_image(source, Some(TagImageOptions { repo: Some(repo), tag })).await
}

/// The references the agent pulled or built (`state_dir/docker-images.json`): only these
/// are ever pruned.
#[derive(Clone, Debug)]
pub struct Brought {
    path: PathBuf,
}

impl Brought {
    pub fn new(state_dir: &Path) -> Brought {
        Brought { path: state_dir.join("docker-images.json") }
    }

    pub fn load(&self) -> BTreeSet<String> {
        std::fs::read(&self.path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn add(&self, image: &str) {
        let mut all = self.load();
        if all.insert(image.to_string()) {
            self.save(&all);
        }
    }

    pub fn save(&self, all: &BTreeSet<String>) {
        let bytes = serde_json::to_vec_pretty(all).unwrap_or_default();
        if let Err(e) = crate::fsutil::write_atomic(&self.path, &bytes) {
            tracing::warn!("{}: {e}", self.path.display());
        }
    }
}

/// Remove the images the agent brought that `keep` does not use; an image still used by a
/// container (of anyone) is refused by the engine and kept.
pub async fn prune(api: &Docker, brought: &Brought, keep: &BTreeSet<String>) -> Vec<String> {
    let mut all = brought.load();
    let mut removed = Vec::new();
    for image in all.clone() {
        if keep.contains(&image) {
            continue;
        }
        let opts = RemoveImageOptions { force: false, noprune: false, ..Default::default() };
        match api.remove_image(&image, Some(opts), None).await {
            Ok(_) => {
                removed.push(image.clone());
                all.remove(&image);
            }
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                all.remove(&image);
            }
            Err(e) => tracing::info!("keeping image {image}: {e}"),
        }
    }
    brought.save(&all);
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(normalize("nginx"), "nginx:latest");
        assert_eq!(normalize("nginx:1.25"), "nginx:1.25");
        assert_eq!(normalize("127.0.0.1:5000/team/app"), "127.0.0.1:5000/team/app:latest");
        assert_eq!(normalize("127.0.0.1:5000/app:2"), "127.0.0.1:5000/app:2");
        let d = format!("app@sha256:{}", "a".repeat(64));
        assert_eq!(normalize(&d), d);
        assert_eq!(split("127.0.0.1:5000/app"), ("127.0.0.1:5000/app".into(), Some("latest".into())));
        assert_eq!(split(&d), (d.clone(), None));
        assert_eq!(registry_host("nginx"), "docker.io");
        assert_eq!(registry_host("library/nginx"), "docker.io");
        assert_eq!(registry_host("ghcr.io/o/app:1"), "ghcr.io");
        assert_eq!(registry_host("127.0.0.1:5000/app"), "127.0.0.1:5000");
        assert_eq!(registry_host("localhost/app"), "localhost");
    }
}
