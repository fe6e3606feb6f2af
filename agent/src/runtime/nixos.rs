//! The NixOS runtime: build a system from the flake at the revision, activate it for the gate,
//! and only once the gate passed make it the boot default. The bootloader never points at an
//! unverified system.
//!
//! - **converge** (before the gate): build `<export>#nixosConfigurations.<host>.config.system
//!   .build.toplevel` with `nix build` (flakes enabled by option, out-link under `state_dir`
//!   as a GC root), unless a build for the same spec hash exists (same flake tree → same
//!   system; never a rebuild, also not to revert); then `switch-to-configuration test`
//!   (skipped for `action: boot`).
//! - **commit** (after the gate): `nix-env -p <profile> --set <out>`, then
//!   `switch-to-configuration switch` (or `boot`); `action: test` never touches the profile.
//! - **observe**: the profile's current system (for `test`: the one the agent activated);
//!   a system the agent did not build or activate is drift.
//!
//! On a real NixOS host `switch-to-configuration` runs in a transient unit (`systemd-run`, as
//! nixos-rebuild does) so that restarting `driftless.service` cannot kill it half-way; where
//! no systemd runs (the tests), it runs directly. Builds and activations are recorded in
//! `state_dir/nixos.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use desired_state_schema::{Kind, NixosAction, NixosSystemSpec, Resource};
use serde::{Deserialize, Serialize};

use super::driver::{Log, RuntimeError};
use super::streaming::run_streaming;
use crate::fsutil::write_atomic;
use crate::plan::{Observed, RunState};
use crate::revision::Revision;

const SWITCH_LOCK: &str = "/run/nixos/switch-to-configuration.lock";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct System {
    profile: String,
    action: String,
    /// spec hash → store path of its build (each kept alive by an out-link GC root).
    builds: BTreeMap<String, String>,
    /// spec hash → revision it was built from.
    revisions: BTreeMap<String, String>,
    /// The store path last activated (`test` or `switch`).
    activated: Option<String>,
    /// The build the next commit makes the boot default.
    pending: Option<String>,
    /// What `switch-to-configuration dry-activate` said of the last build before its switch.
    #[serde(default)]
    dry_activate: Option<String>,
}

#[derive(Clone)]
pub struct NixosRuntime {
    registry: PathBuf,
    roots: PathBuf,
    host: String,
}

fn err(resource: &str, detail: impl Into<String>) -> RuntimeError {
    RuntimeError::Nixos { resource: resource.to_string(), detail: detail.into() }
}

/// The host is at fault (nix missing, the disk full, the mirror unreadable).
fn host_fault(resource: &str, detail: impl Into<String>) -> RuntimeError {
    RuntimeError::Host { resource: resource.to_string(), detail: detail.into() }
}

fn io(resource: &str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::io(resource, path, &e, |resource, detail| RuntimeError::Nixos { resource, detail })
}

/// Reading the revision's files failed: a fault when the mirror or the disk is to blame, a
/// verdict when the revision lacks what the spec names.
fn files_err(resource: &str, e: crate::revision::FilesError) -> RuntimeError {
    if e.fault {
        host_fault(resource, e.detail)
    } else {
        err(resource, e.detail)
    }
}

impl NixosRuntime {
    /// The NixOS driver of an agent with `state_dir`, building for `host` by default.
    pub fn new(state_dir: &Path, host: &str) -> NixosRuntime {
        NixosRuntime {
            registry: state_dir.join("nixos.json"),
            roots: state_dir.join("nixos-roots"),
            host: host.to_string(),
        }
    }

    fn systems(&self) -> BTreeMap<String, System> {
        std::fs::read(&self.registry).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn save(&self, name: &str, all: &BTreeMap<String, System>) -> Result<(), RuntimeError> {
        let bytes = serde_json::to_vec_pretty(all).unwrap_or_default();
        write_atomic(&self.registry, &bytes).map_err(|e| io(name, &self.registry, e))
    }

    /// The flake folder's tree id and the attribute host make the build.
    pub async fn inputs(
        &self,
        name: &str,
        spec: &NixosSystemSpec,
        revision: &Revision,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let folder = spec.flake.clone();
        let tree = revision.read(move |files| files.tree_id(&folder)).await.map_err(|e| files_err(name, e))?;
        let mut m = BTreeMap::new();
        m.insert("flake_tree".to_string(), tree.to_string());
        m.insert("host".to_string(), spec.host.clone().unwrap_or_else(|| self.host.clone()));
        Ok(m)
    }

    pub async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        if Path::new(SWITCH_LOCK).exists() {
            tracing::warn!("{SWITCH_LOCK} exists: a switch-to-configuration may be running or was killed half-way");
        }
        Ok(self
            .systems()
            .into_iter()
            .map(|(name, sys)| {
                let live = if sys.action == "test" {
                    sys.activated.clone()
                } else {
                    std::fs::canonicalize(&sys.profile).ok().map(|p| p.display().to_string())
                };
                let hash = live.as_ref().and_then(|l| sys.builds.iter().find(|(_, p)| *p == l).map(|(h, _)| h.clone()));
                let revision = hash.as_ref().and_then(|h| sys.revisions.get(h).cloned()).unwrap_or_default();
                // A system we did not build, or built but did not activate last, is drift.
                // `action: boot` differs from the running system by design until the reboot:
                // the profile pointing at our build is all that is asked.
                let ours = hash.is_some() && (sys.action == "boot" || live == sys.activated);
                Observed {
                    kind: Kind::NixosSystem,
                    name,
                    spec_hash: if ours {
                        hash.unwrap_or_default()
                    } else {
                        format!("foreign:{}", live.unwrap_or_default())
                    },
                    revision,
                    state: if ours { RunState::Running } else { RunState::NotRunning },
                    stray_instances: 0,
                    out_of_place: None,
                    unclaimed: false,
                }
            })
            .collect())
    }

    /// Build (or reuse) and, unless `action: boot`, activate with `test`.
    pub async fn converge(
        &self,
        r: &Resource,
        spec: &NixosSystemSpec,
        revision: &Revision,
        log: Log<'_>,
    ) -> Result<(), RuntimeError> {
        let name = r.name();
        let inputs = self.inputs(name, spec, revision).await?;
        let hash = crate::plan::spec_hash(r, &inputs);
        let mut all = self.systems();
        let mut sys = all.remove(name).unwrap_or_default();
        sys.profile = spec.profile.clone();
        sys.action = action_word(spec.action).to_string();
        let out = match sys.builds.get(&hash).filter(|p| Path::new(p).exists()) {
            Some(p) => PathBuf::from(p),
            None => {
                let host = inputs.get("host").cloned().unwrap_or_default();
                let out = self.build(name, spec, revision, &host, &hash, log).await?;
                sys.builds.insert(hash.clone(), out.display().to_string());
                sys.revisions.insert(hash.clone(), revision.to_string());
                out
            }
        };
        // What the switch would do, before anything changes: a failure here is a verdict.
        let summary = dry_activate(name, &out, log).await?;
        sys.dry_activate = Some(summary);
        sys.pending = Some(out.display().to_string());
        all.insert(name.to_string(), sys.clone());
        self.save(name, &all)?;
        if spec.action != NixosAction::Boot {
            // Recorded before it runs: an activation that fails half-way has still changed the
            // live system, which then must not pass for the previous one.
            sys.activated = Some(out.display().to_string());
            all.insert(name.to_string(), sys);
            self.save(name, &all)?;
            switch_to_configuration(name, &out, "test").await?;
        }
        Ok(())
    }

    async fn build(
        &self,
        name: &str,
        spec: &NixosSystemSpec,
        revision: &Revision,
        host: &str,
        hash: &str,
        log: Log<'_>,
    ) -> Result<PathBuf, RuntimeError> {
        let folder = spec.flake.clone();
        let export = revision.read(move |files| files.export(&folder)).await.map_err(|e| files_err(name, e))?;
        std::fs::create_dir_all(&self.roots).map_err(|e| io(name, &self.roots, e))?;
        let link = self.roots.join(format!("{name}-{}", hash.get(..16).unwrap_or(hash)));
        let attr = format!("path:{}#nixosConfigurations.\"{host}\".config.system.build.toplevel", export.display());
        let mut cmd = tokio::process::Command::new("nix");
        cmd.args(["--extra-experimental-features", "nix-command flakes", "build", "-L", "--out-link"])
            .arg(&link)
            .arg(&attr);
        let timeout = spec.build_timeout.as_std();
        let done = run_streaming(cmd, timeout, &format!("nix build {name}: "), log)
            .await
            .map_err(|e| host_fault(name, format!("cannot run nix (install nix): {e}")))?;
        let Some(done) = done else {
            return Err(err(
                name,
                format!("nix build ran past build_timeout ({}s); nothing on the host changed", timeout.as_secs()),
            ));
        };
        if !done.status.success() {
            let tail: Vec<&str> = done.tail.lines().filter(|l| !l.trim().is_empty()).rev().take(6).collect();
            let detail = format!(
                "nix build of {attr} failed; nothing on the host changed: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
            // The store's disk full is the host's fault, not the flake's: asked of the file
            // system, never read from what nix printed. (The daemon gone is `reachable`'s.)
            return Err(if crate::fault::disk_full(Path::new("/nix/store")) || crate::fault::disk_full(&self.roots) {
                host_fault(name, format!("{detail}; the disk is full"))
            } else {
                err(name, detail)
            });
        }
        let path = std::fs::canonicalize(&link).map_err(|e| err(name, format!("{}: {e}", link.display())))?;
        if !path.join("bin/switch-to-configuration").exists() {
            return Err(err(
                name,
                format!("{} has no bin/switch-to-configuration: is it a NixOS system?", path.display()),
            ));
        }
        Ok(path)
    }

    /// After the gate: make the system the boot default (`switch`/`boot`).
    pub async fn commit(&self, r: &Resource, spec: &NixosSystemSpec) -> Result<(), RuntimeError> {
        let name = r.name();
        let mut all = self.systems();
        let Some(mut sys) = all.remove(name) else { return Ok(()) };
        let Some(out) = sys.pending.clone().map(PathBuf::from) else { return Ok(()) };
        if spec.action == NixosAction::Test {
            return Ok(());
        }
        crate::failpoint::hit("nixos-before-commit").await;
        let current = std::fs::canonicalize(&spec.profile).ok();
        if current.as_deref() != Some(out.as_path()) {
            if let Some(dir) = Path::new(&spec.profile).parent() {
                std::fs::create_dir_all(dir).map_err(|e| io(name, dir, e))?;
            }
            let set = tokio::process::Command::new("nix-env")
                .arg("-p")
                .arg(&spec.profile)
                .arg("--set")
                .arg(&out)
                .output()
                .await
                .map_err(|e| host_fault(name, format!("cannot run nix-env: {e}")))?;
            if !set.status.success() {
                return Err(err(
                    name,
                    format!("nix-env --set failed: {}", String::from_utf8_lossy(&set.stderr).trim()),
                ));
            }
        }
        if spec.action == NixosAction::Switch {
            sys.activated = Some(out.display().to_string());
        }
        switch_to_configuration(name, &out, action_word(spec.action)).await?;
        sys.pending = None;
        all.insert(name.to_string(), sys);
        self.save(name, &all)
    }

    pub async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let mut all = self.systems();
        all.remove(name);
        self.save(name, &all)
    }

    /// The generation number the profile points to, for history messages.
    pub fn generation(profile: &str) -> Option<u64> {
        let link = std::fs::read_link(profile).ok()?;
        let name = link.file_name()?.to_string_lossy().into_owned();
        name.rsplit("-link").nth(1)?.rsplit('-').next()?.parse().ok()
    }
}

fn nixos_spec(r: &Resource) -> Result<&NixosSystemSpec, RuntimeError> {
    match &r.spec {
        desired_state_schema::Spec::NixosSystem(n) => Ok(n),
        _ => Err(RuntimeError::Unsupported {
            kind: r.kind,
            detail: "the NixOS driver runs NixosSystem resources only".into(),
        }),
    }
}

#[async_trait::async_trait]
impl super::driver::Driver for NixosRuntime {
    /// The journal of the units that failed: those `systemctl --failed` lists and those the
    /// health checks name that are not active, the last 50 lines of each.
    async fn diagnose(&self, r: &Resource) -> Option<crate::state::Diagnostic> {
        let spec = nixos_spec(r).ok()?;
        let named: Vec<String> = spec
            .health
            .iter()
            .flat_map(|h| h.probes())
            .filter_map(|p| match p {
                desired_state_schema::Probe::Systemd(u) => Some(u.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        Some(diagnose_units(r.name(), &named).await)
    }

    fn kind(&self) -> Kind {
        Kind::NixosSystem
    }

    async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        NixosRuntime::observe(self).await
    }

    async fn inputs(&self, r: &Resource, revision: &Revision) -> Result<BTreeMap<String, String>, RuntimeError> {
        NixosRuntime::inputs(self, r.name(), nixos_spec(r)?, revision).await
    }

    async fn converge(&self, r: &Resource, revision: &Revision, log: Log<'_>) -> Result<(), RuntimeError> {
        NixosRuntime::converge(self, r, nixos_spec(r)?, revision, log).await
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        NixosRuntime::remove(self, name).await
    }

    /// `action: boot` is checked after the next boot, not by the live gate.
    fn gated(&self, r: &Resource) -> bool {
        !matches!(nixos_spec(r), Ok(n) if n.action == NixosAction::Boot)
    }

    async fn commit(&self, r: &Resource) -> Result<(), RuntimeError> {
        NixosRuntime::commit(self, r, nixos_spec(r)?).await
    }

    fn describe(&self, r: &Resource) -> Option<String> {
        let n = nixos_spec(r).ok()?;
        let path = std::fs::canonicalize(&n.profile).ok()?;
        let gen = NixosRuntime::generation(&n.profile)?;
        let sys = self.systems().remove(r.name());
        let dry = sys.and_then(|s| s.dry_activate).map(|d| format!(", dry-activate: {d}")).unwrap_or_default();
        let reboot = reboot_needed(&path).map(|w| format!(", {w}")).unwrap_or_default();
        Some(format!("{}/{}: generation {gen}, {}{dry}{reboot}", r.kind, r.name(), path.display()))
    }

    /// A system already built for this spec: what its switch would do (dry-activate). One
    /// not built yet says nothing here; its dry-activate runs after the build, before the switch.
    async fn explain(&self, r: &Resource, revision: &Revision) -> Option<String> {
        let spec = nixos_spec(r).ok()?;
        let inputs = NixosRuntime::inputs(self, r.name(), spec, revision).await.ok()?;
        let hash = crate::plan::spec_hash(r, &inputs);
        let out = self.systems().remove(r.name())?.builds.get(&hash).filter(|p| Path::new(p).exists())?.clone();
        dry_activate(r.name(), Path::new(&out), &|_| {}).await.ok().map(|s| format!("dry-activate: {s}"))
    }

    /// After a successful switch: release generations beyond `keep_generations`.
    async fn prune(&self, keep: &[(&Resource, &Revision)]) -> Result<(), RuntimeError> {
        for (r, _) in keep {
            let Ok(spec) = nixos_spec(r) else { continue };
            let mut all = self.systems();
            let Some(mut sys) = all.remove(r.name()) else { continue };
            let released = prune_generations(r.name(), &self.roots, &mut sys, spec.keep_generations as usize).await?;
            if released > 0 {
                tracing::info!(
                    "{}: released {released} old generation(s) (keep_generations: {})",
                    r.name(),
                    spec.keep_generations
                );
            }
            all.insert(r.name().to_string(), sys);
            self.save(r.name(), &all)?;
        }
        Ok(())
    }
}

/// Run `<out>/bin/switch-to-configuration dry-activate` and summarize what it would do:
/// units to stop, start, restart, reload, and whether a reboot is needed for a new kernel or
/// initrd. Each line goes to the log (and `sync --wait`).
async fn dry_activate(name: &str, out: &Path, log: Log<'_>) -> Result<String, RuntimeError> {
    let stc = out.join("bin/switch-to-configuration");
    let mut c = tokio::process::Command::new(&stc);
    c.arg("dry-activate");
    let done = run_streaming(c, Duration::from_secs(600), &format!("dry-activate {name}: "), log)
        .await
        .map_err(|e| host_fault(name, format!("cannot run {}: {e}", stc.display())))?
        .ok_or_else(|| err(name, "switch-to-configuration dry-activate ran past 10 minutes"))?;
    if !done.status.success() {
        let last: Vec<&str> = done.tail.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(err(
            name,
            format!(
                "switch-to-configuration dry-activate exited with {}: {}; nothing was activated",
                done.status.code().unwrap_or(-1),
                last.join(" | ")
            ),
        ));
    }
    let mut parts: Vec<String> = Vec::new();
    for line in done.tail.lines() {
        let l = line.trim();
        for (verb, word) in [("stop", "stop"), ("start", "start"), ("restart", "restart"), ("reload", "reload")] {
            if let Some(units) = l.strip_prefix(&format!("would {verb} the following units: ")) {
                parts.push(format!("{word}: {units}"));
            }
        }
    }
    if let Some(why) = reboot_needed(out) {
        parts.push(why);
    }
    Ok(if parts.is_empty() { "no unit changes".into() } else { parts.join("; ") })
}

/// Whether the system `out` needs a reboot to take effect: its kernel or initrd differs from
/// the booted system's (`/run/booted-system`). `None` when they agree, or nothing says.
fn reboot_needed(out: &Path) -> Option<String> {
    let booted = Path::new("/run/booted-system");
    let differs = |f: &'static str| -> Option<&'static str> {
        let new = std::fs::canonicalize(out.join(f)).ok()?;
        let old = std::fs::canonicalize(booted.join(f)).ok()?;
        (new != old).then_some(f)
    };
    let changed: Vec<&str> = ["kernel", "initrd"].into_iter().filter_map(differs).collect();
    (!changed.is_empty()).then(|| format!("reboot needed (new {})", changed.join(" and ")))
}

/// Release what `keep` generations do not need: GC roots under `roots` for `name` except
/// the live system's and the newest `keep`, their registry entries, and profile generations
/// beyond the newest `keep` (`nix-env --delete-generations +N`). Store paths are freed by the
/// next `nix-collect-garbage`, not here.
async fn prune_generations(name: &str, roots: &Path, sys: &mut System, keep: usize) -> Result<usize, RuntimeError> {
    let live = std::fs::canonicalize(&sys.profile).ok().map(|p| p.display().to_string());
    let protect: Vec<String> = [live, sys.activated.clone(), sys.pending.clone()].into_iter().flatten().collect();
    let mut links: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(roots)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}-"))))
                .filter_map(|p| Some((std::fs::symlink_metadata(&p).ok()?.modified().ok()?, p)))
                .collect()
        })
        .unwrap_or_default();
    links.sort_by_key(|l| std::cmp::Reverse(l.0)); // newest first
    let mut released = 0;
    for (i, (_, link)) in links.iter().enumerate() {
        let target = std::fs::canonicalize(link).ok().map(|p| p.display().to_string());
        if i < keep || target.as_ref().is_some_and(|t| protect.contains(t)) {
            continue;
        }
        if std::fs::remove_file(link).is_ok() {
            released += 1;
            if let Some(t) = &target {
                sys.builds.retain(|_, p| p != t);
            }
        }
    }
    // Profile generations: keep the newest `keep` (the current one among them).
    if Path::new(&sys.profile).exists() {
        let out = tokio::process::Command::new("nix-env")
            .arg("-p")
            .arg(&sys.profile)
            .arg("--delete-generations")
            .arg(format!("+{keep}"))
            .output()
            .await
            .map_err(|e| host_fault(name, format!("cannot run nix-env: {e}")))?;
        if !out.status.success() {
            tracing::warn!("{name}: nix-env --delete-generations: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    Ok(released)
}

fn action_word(a: NixosAction) -> &'static str {
    match a {
        NixosAction::Switch => "switch",
        NixosAction::Boot => "boot",
        NixosAction::Test => "test",
    }
}

/// Run `<out>/bin/switch-to-configuration <action>`; in a transient systemd unit when systemd
/// runs, so that a restart of the agent cannot kill it half-way.
async fn switch_to_configuration(name: &str, out: &Path, action: &str) -> Result<(), RuntimeError> {
    let stc = out.join("bin/switch-to-configuration");
    let systemd = Path::new("/run/systemd/system").is_dir();
    let cmd = if systemd {
        let mut c = tokio::process::Command::new("systemd-run");
        c.args(["--collect", "--no-ask-password", "--pipe", "--quiet", "--service-type=exec", "--unit"])
            .arg(format!("driftless-switch-{}", std::process::id()))
            .arg(&stc)
            .arg(action);
        c
    } else {
        let mut c = tokio::process::Command::new(&stc);
        c.arg(action);
        c
    };
    // Streamed like a build: its output reaches the log and `sync --wait`, and while it runs
    // the watchdog is fed (a long switch is progress, not a stuck agent).
    let log = |line: String| tracing::info!(target: "driftless", "{line}");
    let done = run_streaming(cmd, SWITCH_TIMEOUT, &format!("switch-to-configuration {action} {name}: "), &log)
        .await
        .map_err(|e| err(name, format!("cannot run {}: {e}", stc.display())))?
        .ok_or_else(|| {
            err(name, format!("switch-to-configuration {action} ran past {} minutes", SWITCH_TIMEOUT.as_secs() / 60))
        })?;
    if done.status.success() {
        Ok(())
    } else {
        let last: Vec<&str> = done.tail.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
        Err(err(
            name,
            format!(
                "switch-to-configuration {action} exited with {}: {}",
                done.status.code().unwrap_or(-1),
                last.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        ))
    }
}

/// How long a `switch-to-configuration` may run before it is given up on (the transient
/// unit it runs in carries on; the gate then judges the system).
const SWITCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Lines of each failed unit's journal in a diagnostic.
const JOURNAL_LINES: usize = 50;

/// Which units failed (listed by `systemctl --failed`, or named and not active) and the end
/// of their journals (`journalctl -u`), as one diagnostic of the NixOS system.
pub async fn diagnose_units(name: &str, named: &[String]) -> crate::state::Diagnostic {
    diagnose_units_with(name, named, "systemctl", "journalctl").await
}

async fn diagnose_units_with(
    name: &str,
    named: &[String],
    systemctl: &str,
    journalctl: &str,
) -> crate::state::Diagnostic {
    let run = |prog: String, args: Vec<String>| async move {
        match tokio::process::Command::new(&prog).args(&args).kill_on_drop(true).output().await {
            Ok(o) => Ok(String::from_utf8_lossy(&o.stdout).to_string()),
            Err(e) => Err(format!("cannot run {prog}: {e}")),
        }
    };
    let mut logs = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    match run(systemctl.to_string(), vec!["--failed".into(), "--no-legend".into(), "--plain".into()]).await {
        Ok(out) => failed.extend(out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string)),
        Err(e) => logs.push(format!("({e})")),
    }
    for unit in named {
        if failed.contains(unit) {
            continue;
        }
        let active = run(systemctl.to_string(), vec!["is-active".into(), unit.clone()]).await;
        if active.as_deref().map(str::trim) != Ok("active") {
            failed.push(unit.clone());
        }
    }
    for unit in &failed {
        logs.push(format!("== journal of {unit} =="));
        let args = vec!["-u".into(), unit.clone(), "-n".into(), JOURNAL_LINES.to_string(), "--no-pager".into()];
        match run(journalctl.to_string(), args).await {
            Ok(out) => logs.extend(out.lines().map(str::to_string)),
            Err(e) => logs.push(format!("({e})")),
        }
    }
    crate::state::Diagnostic {
        kind: Kind::NixosSystem.to_string(),
        name: name.to_string(),
        state: if failed.is_empty() { "running".to_string() } else { format!("failed units: {}", failed.join(", ")) },
        exit_code: None,
        oom_killed: false,
        logs,
    }
}

#[cfg(test)]
mod diagnose_tests {
    use super::*;

    /// Failed units come from `systemctl --failed` and from the checks' units that are not
    /// active; each brings the end of its journal. (systemd is not PID 1 here: stand-ins.)
    #[tokio::test]
    async fn diagnostics_name_failed_units_and_their_journal() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p.display().to_string()
        };
        let systemctl = script(
            "systemctl",
            r#"case "$1" in --failed) echo "nginx.service loaded failed failed A web server";; is-active) [ "$2" = sshd.service ] && echo active || echo inactive;; esac"#,
        );
        let journalctl = script("journalctl", r#"echo "$2: bind() to 0.0.0.0:80 failed""#);
        let named = ["nginx.service".to_string(), "app.service".to_string(), "sshd.service".to_string()];
        let d = diagnose_units_with("system", &named, &systemctl, &journalctl).await;
        assert_eq!(d.state, "failed units: nginx.service, app.service");
        assert_eq!(
            d.logs,
            [
                "== journal of nginx.service ==",
                "nginx.service: bind() to 0.0.0.0:80 failed",
                "== journal of app.service ==",
                "app.service: bind() to 0.0.0.0:80 failed"
            ]
        );
        let d = diagnose_units_with("system", &[], "/nonexistent/systemctl", &journalctl).await;
        assert_eq!(d.state, "running");
        assert!(d.logs[0].starts_with("(cannot run /nonexistent/systemctl"), "{:?}", d.logs);
    }

    /// A long `switch-to-configuration` is progress while it runs: the watchdog heartbeat
    /// never goes more than about a second without news (a 3 s switch: run directly where
    /// systemd is not PID 1, through `systemd-run --pipe` where it is — streamed either way).
    #[tokio::test]
    async fn a_long_switch_feeds_the_watchdog_while_it_runs() {
        use std::os::unix::fs::PermissionsExt;
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(out.path().join("bin")).unwrap();
        let stc = out.path().join("bin/switch-to-configuration");
        std::fs::write(&stc, "#!/bin/sh\nsleep 3\necho \"activated $1\"\n").unwrap();
        std::fs::set_permissions(&stc, std::fs::Permissions::from_mode(0o755)).unwrap();
        let switch = switch_to_configuration("system", out.path(), "test");
        let watch = async {
            let mut worst = Duration::ZERO;
            for _ in 0..25 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                worst = worst.max(crate::sdnotify::since_progress());
            }
            worst
        };
        let (result, worst) = tokio::join!(switch, watch);
        assert!(result.is_ok(), "{result:?}");
        assert!(worst < Duration::from_millis(1600), "the watchdog went {worst:?} without progress");
    }
}
