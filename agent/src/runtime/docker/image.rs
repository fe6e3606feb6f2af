//! Images: references as the engine wants them (no tag means `:latest`, never "all tags"),
//! registry credentials (Docker's own `config.json` through the `docker_credential` crate,
//! overridden per host by `registries:` in the agent config), pulls, builds from a
//! repository folder, and the record of images the agent brought, for pruning.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{BuildImageOptions, CreateImageOptions, RemoveImageOptions, TagImageOptions};
use bollard::Docker;
use desired_state_schema::BuildSpec;
use futures_util::StreamExt;

use crate::config::RegistryConfig;
use crate::runtime::{Log, RuntimeError};

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

/// What an answer to a pull says, whoever is to blame (PRODUCT.md behaviour 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullJudgement {
    /// The registry answered that the image or repository does not exist (or, as Docker
    /// Hub says it, "pull access denied … repository does not exist"), or the reference is
    /// one the engine refuses: the revision's own content, a verdict.
    Unknown,
    /// The registry refused the credentials it was given, or wants some: a fault.
    AuthRefused,
    /// The registry or the engine did not answer, answered 5xx, or throttled: a fault.
    Unavailable,
}

/// Judge a failed pull from what the engine answered: its HTTP status first (`status`; the
/// engine maps the registry's `MANIFEST_UNKNOWN`, `NAME_UNKNOWN` and `DENIED` to 404, a bad
/// reference to 400), and only where that does not decide (a 500 that wraps the registry's
/// words, or an error inside the progress stream, `status` = `None`) the registry's error
/// code as the engine quotes it. Unrecognised text is a fault: retrying loses nothing.
pub fn judge_pull(status: Option<u16>, message: &str) -> PullJudgement {
    match status {
        Some(400 | 404) => return PullJudgement::Unknown,
        Some(401 | 403) => return PullJudgement::AuthRefused,
        _ => {}
    }
    let m = message.to_ascii_lowercase();
    // The registry's error codes (distribution's errcode), as the engine quotes them.
    if m.contains("manifest unknown")
        || m.contains("name unknown")
        || m.contains("repository does not exist")
        || (m.contains("manifest for ") && m.contains(" not found"))
        || m.contains("invalid reference format")
    {
        return PullJudgement::Unknown;
    }
    if m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("no basic auth credentials")
        || m.contains("incorrect username or password")
        || m.contains("denied")
    {
        return PullJudgement::AuthRefused;
    }
    PullJudgement::Unavailable
}

/// The engine's status and message of a bollard error; `None` for a transport error (the
/// engine did not answer at all).
fn answer(e: &BollardError) -> Option<(Option<u16>, String)> {
    match e {
        BollardError::DockerResponseServerError { status_code, message } => Some((Some(*status_code), message.clone())),
        BollardError::DockerStreamError { error } => Some((None, error.clone())),
        BollardError::JsonDataError { message, .. } => Some((None, message.clone())),
        _ => None,
    }
}

/// The error for a pull of `image` that the engine answered with `status`/`detail`.
fn pull_error(image: &str, status: Option<u16>, detail: String, had_credentials: bool) -> RuntimeError {
    match judge_pull(status, &detail) {
        PullJudgement::Unknown => RuntimeError::ImageUnknown { image: image.to_string(), detail },
        PullJudgement::AuthRefused => {
            let registry = registry_host(image);
            let how = if had_credentials {
                "the credentials were refused: renew them (docker login"
            } else {
                "no credentials are configured for it: docker login"
            };
            RuntimeError::RegistryAuth {
                image: image.to_string(),
                registry: registry.clone(),
                detail: format!("{detail}; {how} {registry}, or registries: in the agent config)"),
            }
        }
        PullJudgement::Unavailable => RuntimeError::Pull { image: image.to_string(), detail },
    }
}

/// The bytes of a pull, per layer, from the engine's progress stream: what `sync --wait`
/// shows (`pull web:1: 12.3 MiB of 45.6 MiB, 3/7 layers`; agentctl draws it as a bar on a
/// terminal).
#[derive(Default)]
struct PullProgress {
    /// Layer id → (bytes so far, bytes in all; 0 while unknown), done.
    layers: BTreeMap<String, (u64, u64, bool)>,
    said: Option<std::time::Instant>,
}

/// How often a pull's progress is said at most.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl PullProgress {
    fn note(&mut self, info: &bollard::models::CreateImageInfo) {
        let (Some(id), Some(status)) = (&info.id, &info.status) else { return };
        let layer = self.layers.entry(id.clone()).or_insert((0, 0, false));
        let detail = info.progress_detail.as_ref();
        match status.as_str() {
            "Downloading" => {
                if let Some(d) = detail {
                    layer.0 = d.current.unwrap_or(0).max(0) as u64;
                    layer.1 = d.total.unwrap_or(0).max(0) as u64;
                }
            }
            "Download complete" | "Pull complete" | "Already exists" => {
                layer.0 = layer.1;
                layer.2 = true;
            }
            _ => {}
        }
    }

    /// The line to say now (`None` until `PROGRESS_EVERY` has passed since the last one).
    fn line(&mut self, image: &str, last: bool) -> Option<String> {
        let now = std::time::Instant::now();
        if !last && self.said.is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY) {
            return None;
        }
        let layers: Vec<&(u64, u64, bool)> = self.layers.values().filter(|l| l.1 > 0 || l.2).collect();
        if layers.is_empty() {
            return None;
        }
        self.said = Some(now);
        let (got, all): (u64, u64) = layers.iter().fold((0, 0), |(g, a), l| (g + l.0, a + l.1));
        let done = layers.iter().filter(|l| l.2).count();
        Some(format!("pull {image}: {} of {}, {done}/{} layers", mib(got), mib(all), layers.len()))
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Pull `image` (normalized) with the credentials that apply; a refusal names the registry.
/// Its progress goes to `log`, twice a second at most.
pub async fn pull(api: &Docker, creds: &Credentials, image: &str, log: Log<'_>) -> Result<(), RuntimeError> {
    let (repo, tag) = split(image);
    let auth = creds.for_image(image).await?;
    let opts = CreateImageOptions { from_image: Some(repo), tag, ..Default::default() };
    let mut stream = api.create_image(Some(opts), None, auth.clone());
    let mut progress = PullProgress::default();
    while let Some(item) = stream.next().await {
        crate::sdnotify::progress(); // a pull that streams is progress
        match item {
            Ok(info) => {
                // An error reported inside the stream (the engine had started answering).
                if let Some(message) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                    return Err(pull_error(image, None, message, auth.is_some()));
                }
                progress.note(&info);
                if let Some(line) = progress.line(image, false) {
                    log(line);
                }
            }
            Err(e) => {
                return Err(match answer(&e) {
                    Some((status, detail)) => pull_error(image, status, detail, auth.is_some()),
                    None => RuntimeError::DockerUnreachable { detail: e.to_string() },
                })
            }
        }
    }
    if let Some(line) = progress.line(image, true) {
        log(line);
    }
    Ok(())
}

/// The registries a Dockerfile's `FROM` lines pull from (`FROM [--platform=…] image [AS
/// name]`; a stage's own name and `scratch` are not images; a reference built from `ARG`s
/// cannot be known before the build and is skipped).
pub fn from_registries(dockerfile: &str) -> BTreeSet<String> {
    let mut stages = BTreeSet::new();
    let mut out = BTreeSet::new();
    for line in dockerfile.lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("from")) {
            continue;
        }
        let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
        let Some(image) = rest.first() else { continue };
        if let (Some(kw), Some(alias)) = (rest.get(1), rest.get(2)) {
            if kw.eq_ignore_ascii_case("as") {
                stages.insert(alias.to_ascii_lowercase());
            }
        }
        if image.contains('$') || image.eq_ignore_ascii_case("scratch") || stages.contains(&image.to_ascii_lowercase())
        {
            continue;
        }
        out.insert(registry_host(image));
    }
    out
}

/// What a failed build says, whoever is to blame: the exit code of the step that failed
/// (`errorDetail.code`, which the engine sets when a `RUN` exits non-zero) decides first and
/// is a verdict whatever the step printed; otherwise the engine's own message (a `FROM`
/// image that cannot be pulled is judged as a pull; the host's disk full is a fault; any
/// other build error — a bad Dockerfile, a missing `COPY` source — is a verdict).
pub fn judge_build(code: Option<i64>, message: &str) -> BuildJudgement {
    if code.is_some_and(|c| c != 0) || message.contains("returned a non-zero code") {
        return BuildJudgement::StepFailed;
    }
    if crate::fault::engine_message_is_fault(message) {
        return BuildJudgement::Host;
    }
    let m = message.to_ascii_lowercase();
    let about_a_pull = m.contains("pull access denied")
        || m.contains("manifest")
        || m.contains("/v2/")
        || m.contains("registry")
        || m.contains("dial tcp")
        || m.contains("no basic auth credentials")
        || m.contains("unauthorized");
    if about_a_pull {
        return match judge_pull(None, message) {
            PullJudgement::Unknown => BuildJudgement::BaseUnknown,
            PullJudgement::AuthRefused => BuildJudgement::BaseAuth,
            PullJudgement::Unavailable => BuildJudgement::Host,
        };
    }
    BuildJudgement::Invalid
}

/// What `judge_build` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildJudgement {
    /// A step ran and failed (a verdict).
    StepFailed,
    /// The build is wrong before any step ran: the Dockerfile, a `COPY` source (a verdict).
    Invalid,
    /// A base image that does not exist (a verdict).
    BaseUnknown,
    /// A base image's registry refused the credentials (a fault).
    BaseAuth,
    /// The host or the network is at fault (a fault).
    Host,
}

/// Build `tag` from `context_dir` (a repository folder exported at the revision), with the
/// credentials the pulls use for every registry its `FROM` lines name. The output streams
/// to `log`; a failed build carries its last lines and is judged by `judge_build`.
pub async fn build(
    api: &Docker,
    creds: &Credentials,
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
    let dockerfile = spec.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into());
    let text = tokio::fs::read_to_string(context_dir.join(&dockerfile)).await.unwrap_or_default();
    let mut registry_config: HashMap<String, DockerCredentials> = HashMap::new();
    for host in from_registries(&text) {
        let probe = if host == "docker.io" { "library/x".to_string() } else { format!("{host}/x") };
        if let Some(c) = creds.for_image(&probe).await? {
            let key = if host == "docker.io" { "https://index.docker.io/v1/".to_string() } else { host };
            registry_config.insert(key, c);
        }
    }
    let opts = BuildImageOptions {
        dockerfile,
        t: Some(tag.to_string()),
        target: spec.target.clone().unwrap_or_default(),
        buildargs: (!spec.args.is_empty())
            .then(|| spec.args.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect::<HashMap<_, _>>()),
        rm: true,
        forcerm: true,
        cachefrom: (!spec.cache_from.is_empty()).then(|| spec.cache_from.clone()),
        ..Default::default()
    };
    let mut tail: Vec<String> = Vec::new();
    let credentials = (!registry_config.is_empty()).then_some(registry_config);
    let mut stream = api.build_image(opts, credentials, Some(bollard::body_full(tar.into())));
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
                if let Some(d) = info.error_detail {
                    let message = d.message.unwrap_or_default();
                    tail.push(message.clone());
                    return Err(build_failed(resource, d.code, &message, &tail));
                }
            }
            Err(e) => match answer(&e) {
                Some((_, message)) => {
                    tail.push(message.clone());
                    return Err(build_failed(resource, None, &message, &tail));
                }
                None => return Err(RuntimeError::DockerUnreachable { detail: e.to_string() }),
            },
        }
    }
    Ok(())
}

/// The error of a failed build: judged on the engine's `code` and `message` only, never on
/// the output in `tail` (which it carries for people).
fn build_failed(resource: &str, code: Option<i64>, message: &str, tail: &[String]) -> RuntimeError {
    let last: Vec<&str> = tail.iter().rev().take(6).map(String::as_str).collect::<Vec<_>>().into_iter().rev().collect();
    let detail = format!("the image build failed: {}", last.join(" | "));
    match judge_build(code, message) {
        BuildJudgement::StepFailed | BuildJudgement::Invalid | BuildJudgement::BaseUnknown => {
            RuntimeError::Build { resource: resource.to_string(), detail }
        }
        BuildJudgement::BaseAuth => RuntimeError::Host {
            resource: resource.to_string(),
            detail: format!(
                "{detail}; a registry refused to let this host pull the build's base image: docker login to it, or add it to registries: in the agent config"
            ),
        },
        BuildJudgement::Host => RuntimeError::Host { resource: resource.to_string(), detail },
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

    /// Real answers of the engine (API 1.41) to pulls: from Docker Hub, a `registry:2`-style
    /// registry (Debian's docker-registry; the ones marked "seen" were read from this
    /// machine's engine), GHCR-style 403s, and the engine itself.
    #[test]
    fn pulls_are_judged_by_status_first_then_by_the_registrys_code() {
        use PullJudgement::*;
        let hub_missing = "pull access denied for drifltess/web, repository does not exist or may require 'docker login': denied: requested access to the resource is denied";
        let table: &[(Option<u16>, &str, PullJudgement)] = &[
            // Docker Hub: a misspelt or private repository (the engine answers 404).
            (Some(404), hub_missing, Unknown),
            // The same words inside the progress stream (no status): still the repository.
            (None, hub_missing, Unknown),
            // registry:2: a tag or a repository it does not have.
            (Some(404), "manifest for 127.0.0.1:5000/app:9 not found: manifest unknown: manifest unknown", Unknown),
            (None, "manifest for 127.0.0.1:5000/app:9 not found: manifest unknown: manifest unknown", Unknown),
            (Some(500), "Head \"http://127.0.0.1:5000/v2/nope/manifests/1\": name unknown: repository name not known to registry", Unknown),
            // A reference the engine refuses.
            (Some(400), "invalid reference format", Unknown),
            // registry:2 with htpasswd: no credentials, wrong credentials.
            (Some(500), "Head \"http://127.0.0.1:5000/v2/team/app/manifests/latest\": no basic auth credentials", AuthRefused),
            (Some(500), "Head \"http://127.0.0.1:5000/v2/team/app/manifests/latest\": unauthorized: authentication required", AuthRefused),
            (Some(500), "unauthorized: authentication required", AuthRefused), // registry:2, wrong password (seen)
            (Some(500), "Get \"https://registry.example.com/v2/\": unauthorized: incorrect username or password", AuthRefused),
            // GHCR: a token without the scope, or expired (403 from the registry).
            (Some(500), "Head \"https://ghcr.io/v2/acme/web/manifests/1.4\": denied", AuthRefused),
            (Some(500), "denied: permission_denied: The token provided does not match expected scopes.", AuthRefused),
            (Some(403), "denied: requested access to the resource is denied", AuthRefused),
            (Some(401), "unauthorized", AuthRefused),
            // Not answering, answering 5xx, throttling, the host's disk: faults.
            (Some(500), "Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused", Unavailable),
            (Some(500), "received unexpected HTTP status: 503 Service Unavailable", Unavailable),
            (Some(500), "Get \"https://registry-1.docker.io/v2/\": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)", Unavailable),
            (Some(500), "toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading", Unavailable),
            (None, "failed to register layer: Error processing tar file(exit status 1): write /bin/busybox: no space left on device", Unavailable),
            (Some(502), "Bad Gateway", Unavailable),
        ];
        for (status, message, want) in table {
            assert_eq!(judge_pull(*status, message), *want, "{status:?} {message}");
        }
    }

    /// What a build step printed never decides: only the engine's code and message do.
    #[test]
    fn builds_are_judged_by_the_steps_exit_code_and_the_engines_message() {
        use BuildJudgement::*;
        let table: &[(Option<i64>, &str, BuildJudgement)] = &[
            // Seen from Debian's docker.io 20.10 (API 1.41): the command text is in the message.
            (Some(3), "The command '/bin/sh -c echo connection refused && exit 3' returned a non-zero code: 3", StepFailed),
            (None, "Head \"http://127.0.0.1:5999/v2/base/x/manifests/1\": no basic auth credentials", BaseAuth),
            (Some(1), "The command '/bin/sh -c echo connection refused && exit 1' returned a non-zero code: 1", StepFailed),
            (None, "The command '/bin/sh -c curl http://127.0.0.1:1/ || (echo no space left on device; exit 7)' returned a non-zero code: 7", StepFailed),
            (None, "pull access denied for nosuch/base, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", BaseUnknown),
            (None, "manifest for 127.0.0.1:5000/base:9 not found: manifest unknown: manifest unknown", BaseUnknown),
            (None, "Head \"http://127.0.0.1:5000/v2/base/manifests/1\": no basic auth credentials", BaseAuth),
            (None, "Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused", Host),
            (None, "failed to register layer: write /var/lib/docker/overlay2/x: no space left on device", Host),
            (None, "dockerfile parse error line 2: unknown instruction: RUNN", Invalid),
            (None, "COPY failed: file not found in build context or excluded by .dockerignore: stat app.py: file does not exist", Invalid),
            (None, "failed to reach build target nope in Dockerfile", Invalid),
        ];
        for (code, message, want) in table {
            assert_eq!(judge_build(*code, message), *want, "{code:?} {message}");
        }
    }

    #[test]
    fn a_dockerfiles_base_registries() {
        let d = "# syntax\nFROM --platform=linux/amd64 127.0.0.1:5000/team/base:1 AS builder\nRUN make\nFROM builder AS again\nfrom ghcr.io/acme/run:2\nFROM scratch\nARG B=x\nFROM ${B}\nFROM debian:12\nCOPY --from=builder /a /a\n";
        let got: Vec<String> = from_registries(d).into_iter().collect();
        assert_eq!(got, ["127.0.0.1:5000", "docker.io", "ghcr.io"]);
    }
}
