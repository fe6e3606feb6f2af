//! The reconciler's outcomes, table by table, with a fake driver instead of Docker: a real
//! Git repository (git2, in a temporary folder) as the source, a `Driver` whose "engine" is
//! a map in memory that can be taken down, refuse a spec, or let a container die in the gate.
//! Runs in `cargo test` without any engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use desired_state_schema::{Kind, Resource, Spec};

use super::parts::Trigger;
use super::task::Reconciler;
use crate::config::LoadedConfig;
use crate::plan::{Observed, RunState};
use crate::revision::Revision;
use crate::runtime::{Driver, Drivers, Liveness, Log, RuntimeError};
use crate::state::{Outcome, Phase};

/// The fake engine's world.
#[derive(Default)]
struct World {
    /// name → (spec hash, revision, image)
    running: BTreeMap<String, (String, String, String)>,
    /// The engine is down: every call is a fault.
    down: bool,
    /// Take the engine down at the n-th converge from now (1 = the next one).
    down_at_converge: Option<usize>,
    /// Converges refused (a verdict) for images containing this.
    refuse: Option<String>,
    converges: usize,
    /// Images the fake registry does not have (a verdict when fetched).
    missing: Option<String>,
    /// Images whose registry does not answer (a fault when fetched).
    unreachable_registry: Option<String>,
    /// Names fetched, in order.
    fetched: Vec<String>,
    /// Converges of images containing this meet a fault of the host that lasts (the
    /// host's Caddy not answering), after the journal is written.
    faulty: Option<String>,
    /// Images containing this ask what the host lacks (a proxy on an agent without Caddy):
    /// a verdict of the preflight.
    lacks: Option<String>,
    /// Converges of images containing this are refused by the host's proxy (Caddy's 4xx): a
    /// verdict.
    proxy_refuses: Option<String>,
    /// Names converged, in order.
    log: Vec<String>,
    /// Volume name → its data. A converge of an image containing `migrates` writes the
    /// image's name into every volume (a migration).
    volumes: BTreeMap<String, String>,
    /// Exec snapshots that succeed before the rest fail (a dump command that exits 1).
    dumps_ok: Option<usize>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<World>>);

fn image(r: &Resource) -> String {
    match &r.spec {
        Spec::Container(c) => c.image.clone(),
        _ => String::new(),
    }
}

fn down() -> RuntimeError {
    RuntimeError::DockerUnreachable { detail: "fake engine is down".into() }
}

#[async_trait]
impl Driver for Fake {
    fn kind(&self) -> Kind {
        Kind::Container
    }
    fn parallel(&self) -> bool {
        true
    }
    async fn reachable(&self) -> Result<(), RuntimeError> {
        if self.0.lock().unwrap().down {
            return Err(down());
        }
        Ok(())
    }
    async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
        let w = self.0.lock().unwrap();
        if w.down {
            return Err(down());
        }
        Ok(w.running
            .iter()
            .map(|(name, (hash, rev, _))| Observed {
                kind: Kind::Container,
                name: name.clone(),
                spec_hash: hash.clone(),
                revision: rev.clone(),
                state: RunState::Running,
                stray_instances: 0,
                out_of_place: None,
                unclaimed: false,
            })
            .collect())
    }
    async fn converge(&self, r: &Resource, revision: &Revision, _log: Log<'_>) -> Result<(), RuntimeError> {
        let mut w = self.0.lock().unwrap();
        if w.down {
            return Err(down());
        }
        if let Some(n) = w.down_at_converge.as_mut() {
            *n -= 1;
            if *n == 0 {
                w.down_at_converge = None;
                w.down = true;
                return Err(down());
            }
        }
        let img = image(r);
        if w.refuse.as_ref().is_some_and(|x| img.contains(x.as_str())) {
            return Err(RuntimeError::Docker { resource: r.name().into(), detail: format!("refused {img}") });
        }
        if w.faulty.as_ref().is_some_and(|x| img.contains(x.as_str())) {
            return Err(RuntimeError::Host {
                resource: r.name().into(),
                detail: "Caddy's admin API at unix//run/caddy/admin.sock does not answer (connection refused)".into(),
            });
        }
        if w.proxy_refuses.as_ref().is_some_and(|x| img.contains(x.as_str())) {
            return Err(RuntimeError::ProxyRefused {
                resource: r.name().into(),
                detail: "Caddy's admin API refused POST /config/apps/http/servers/driftless-web: 400 {\"error\":\"loading config: listen tcp 127.0.0.1:8080: bind: address already in use\"}".into(),
            });
        }
        w.converges += 1;
        w.log.push(r.name().to_string());
        if img.contains("migrates") {
            for data in w.volumes.values_mut() {
                *data = img.clone();
            }
        }
        let hash = crate::plan::spec_hash(r, &BTreeMap::new());
        w.running.insert(r.name().to_string(), (hash, revision.to_string(), img));
        Ok(())
    }
    async fn fetch(&self, r: &Resource, _revision: &Revision, _log: Log<'_>) -> Result<(), RuntimeError> {
        let mut w = self.0.lock().unwrap();
        let img = image(r);
        w.fetched.push(r.name().to_string());
        if w.missing.as_ref().is_some_and(|x| img.contains(x.as_str())) {
            return Err(RuntimeError::ImageUnknown { image: img, detail: "manifest unknown".into() });
        }
        if w.unreachable_registry.as_ref().is_some_and(|x| img.contains(x.as_str())) {
            return Err(RuntimeError::Pull { image: img, detail: "connection refused".into() });
        }
        Ok(())
    }
    async fn preflight(&self, r: &Resource, _revision: &Revision) -> Result<(), RuntimeError> {
        let w = self.0.lock().unwrap();
        if w.lacks.as_ref().is_some_and(|x| image(r).contains(x.as_str())) {
            return Err(RuntimeError::HostLacks {
                resource: r.name().into(),
                detail: "it takes traffic through the host's Caddy (proxy:), and this agent's config has no proxy.caddy_admin".into(),
            });
        }
        Ok(())
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let mut w = self.0.lock().unwrap();
        if w.down {
            return Err(down());
        }
        w.running.remove(name);
        Ok(())
    }
    async fn snapshot(
        &self,
        volume: &str,
        consistency: &desired_state_schema::Consistency,
        _holders: &[String],
        into: &std::path::Path,
    ) -> Result<Vec<crate::snapshots::ContentFile>, RuntimeError> {
        let mut w = self.0.lock().unwrap();
        if w.down {
            return Err(down());
        }
        if matches!(consistency, desired_state_schema::Consistency::Exec(_)) {
            if let Some(n) = w.dumps_ok.as_mut() {
                if *n == 0 {
                    return Err(RuntimeError::Docker {
                        resource: format!("volume {volume}"),
                        detail: "the dump exited 1".into(),
                    });
                }
                *n -= 1;
            }
        }
        let Some(data) = w.volumes.get(volume) else { return Ok(Vec::new()) };
        let mut f = crate::snapshots::HashingFile::create(into, "data").unwrap();
        f.write(data.as_bytes()).unwrap();
        Ok(vec![f.finish().unwrap()])
    }
    async fn restore(
        &self,
        volume: &str,
        _manifest: &crate::snapshots::Manifest,
        from: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let mut w = self.0.lock().unwrap();
        if w.down {
            return Err(down());
        }
        let data = std::fs::read_to_string(from.join("data")).unwrap();
        w.volumes.insert(volume.to_string(), data);
        Ok(())
    }
    async fn watch(&self, name: &str) -> Liveness {
        let w = self.0.lock().unwrap();
        match w.running.get(name) {
            Some((_, _, img)) if img.contains("broken") => {
                Liveness::Failed(format!("container {name} exited with code 3"))
            }
            _ => Liveness::Alive,
        }
    }
}

/// A source repository, an agent config and a reconciler over the fake driver.
struct Host {
    dir: tempfile::TempDir,
    repo: git2::Repository,
    fake: Fake,
}

fn containers(specs: &[(&str, &str)]) -> String {
    specs
        .iter()
        .map(|(name, image)| {
            format!(
                "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: {name} }}\nspec:\n  image: {image}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = git2::Repository::init_opts(dir.path().join("repo"), &opts).unwrap();
        Host { dir, repo, fake: Fake::default() }
    }

    fn config(&self, url: &str) -> LoadedConfig {
        let text = format!(
            "host: t\nsource:\n  url: \"{url}\"\n  ref: {{ branch: main }}\n  path: state\n  interval: 1h\nstate_dir: {}\ncontrol_socket: {}\nhealth: {{ timeout: 2s, interval: 100ms }}\n",
            self.dir.path().join("state").display(),
            self.dir.path().join("agent.sock").display()
        );
        let path = self.dir.path().join("agent.yaml");
        std::fs::write(&path, &text).unwrap();
        LoadedConfig::load(&path).unwrap()
    }

    fn agent(&self) -> Reconciler {
        self.agent_at(&self.dir.path().join("repo").display().to_string())
    }

    fn agent_at(&self, url: &str) -> Reconciler {
        let drivers = Drivers::new().with(Box::new(self.fake.clone()));
        Reconciler::new(self.config(url), drivers).unwrap().0
    }

    /// Commit `text` as `state/app.yaml`; the commit id.
    fn commit(&self, text: &str) -> String {
        let work = self.repo.workdir().unwrap();
        std::fs::create_dir_all(work.join("state")).unwrap();
        std::fs::write(work.join("state/app.yaml"), text).unwrap();
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &parents).unwrap().to_string()
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.fake.0.lock().unwrap()
    }

    fn journal(&self) -> bool {
        self.dir.path().join("state/journal.json").exists()
    }
}

fn revisions(r: &Reconciler) -> (Option<String>, Option<String>, Vec<String>) {
    (r.state.applied.clone(), r.state.last_good.clone(), r.state.failed.clone())
}

#[tokio::test]
async fn applied_then_rolled_back_not_retried_then_retried() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    let r = a.reconcile(Trigger::Start, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(a.state.phase, Phase::Synced);
    assert_eq!(revisions(&a), (Some(c1.clone()), Some(c1.clone()), vec![]));

    let c2 = h.commit(&containers(&[("web", "broken:2")]));
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::RolledBack), "{r:?}");
    assert_eq!(a.state.phase, Phase::RolledBack);
    assert_eq!(revisions(&a), (Some(c1.clone()), Some(c1.clone()), vec![c2.clone()]));
    assert_eq!(h.world().running["web"].2, "app:1", "the host is back on the last good spec");
    assert!(!h.journal());

    let before = h.world().converges;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, None, "a failed revision is not tried again");
    assert_eq!(h.world().converges, before);
    assert_eq!(a.state.phase, Phase::RolledBack);

    let r = a.reconcile(Trigger::Manual, true).await;
    assert_eq!(r.outcome, Some(Outcome::RolledBack), "--retry tries again");
    assert!(h.world().converges > before);
    let results: Vec<Outcome> = a.state.history.iter().map(|e| e.result).collect();
    assert_eq!(results, [Outcome::RolledBack, Outcome::RolledBack, Outcome::Applied]);
    assert_eq!(a.state.history[0].trigger.as_deref(), Some("manual"));
}

#[tokio::test]
async fn a_revert_refused_ends_failed_with_a_failed_entry() {
    let h = Host::new();
    h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    h.commit(&containers(&[("web", "broken:2")]));
    h.world().refuse = Some("app:1".into());
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Failed), "{r:?}");
    assert_eq!(a.state.phase, Phase::Failed);
    assert!(a.state.message.as_deref().unwrap().contains("rolling back to"), "{:?}", a.state.message);
    assert!(a.state.fault.is_none(), "a verdict, not a fault");
}

#[tokio::test]
async fn invalid_state_touches_nothing() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit("apiVersion: driftless/v1\nkind: Container\nmetadata: { name: web }\nspec: { imag: x }\n");
    let before = h.world().converges;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Invalid));
    assert_eq!(a.state.phase, Phase::Invalid);
    assert!(a.state.message.as_deref().unwrap().contains("app.yaml:4"), "{:?}", a.state.message);
    assert_eq!(h.world().converges, before);
    assert_eq!(a.state.invalid, vec![c2]);
    assert_eq!(a.state.applied, Some(c1));
}

#[tokio::test]
async fn engine_down_when_a_good_revision_arrives_is_a_fault_then_applied() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("web", "app:2")]));
    h.world().down = true;
    for cycle in 1..=3u32 {
        let r = a.reconcile(Trigger::Poll, false).await;
        assert!(r.fault, "{r:?}");
        assert_eq!(r.outcome, None);
        assert_eq!(a.state.phase, Phase::Degraded);
        assert!(a.state.message.as_deref().unwrap().contains("fake engine is down"), "{:?}", a.state.message);
        assert_eq!(a.state.fault.as_ref().unwrap().cycles, cycle);
    }
    // Backoff doubles (1, 2, 4 s) with full jitter: a random wait up to the bound.
    let waits: Vec<_> = (0..50).map(|_| a.next_wait()).collect();
    assert!(
        waits.iter().all(|w| *w >= std::time::Duration::from_millis(100) && *w <= std::time::Duration::from_secs(4)),
        "{waits:?}"
    );
    assert!(waits.iter().any(|w| *w != waits[0]), "jittered: {waits:?}");
    assert_eq!(revisions(&a), (Some(c1.clone()), Some(c1), vec![]), "nothing failed, nothing reverted");
    h.world().down = false;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(a.state.phase, Phase::Synced);
    assert!(a.state.fault.is_none());
    assert_eq!(a.state.applied, Some(c2));
    assert!(a.next_wait() > std::time::Duration::from_secs(3000), "back to the interval");
}

#[tokio::test]
async fn a_fault_mid_apply_leaves_the_journal_and_is_finished_when_it_clears() {
    let h = Host::new();
    h.commit(&containers(&[("aa", "app:1"), ("bb", "app:1"), ("cc", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("aa", "app:2"), ("bb", "app:2"), ("cc", "app:2")]));
    h.world().down_at_converge = Some(2);
    let r = a.reconcile(Trigger::Poll, false).await;
    assert!(r.fault, "{r:?}");
    assert!(h.journal(), "the journal stays for the interrupted apply");
    assert!(a.state.failed.is_empty());
    assert!(a.state.message.as_deref().unwrap().contains("interrupted"), "{:?}", a.state.message);
    // Still down: another fault, the journal still there.
    assert!(a.reconcile(Trigger::Poll, false).await.fault);
    assert!(h.journal());
    h.world().down = false;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert!(!h.journal());
    assert_eq!(a.state.applied, Some(c2.clone()));
    assert!(h.world().running.values().all(|(_, rev, img)| rev == &c2 && img == "app:2"));
}

#[tokio::test]
async fn a_fault_mid_revert_finishes_the_revert_when_it_clears() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("web", "broken:2")]));
    // The first converge applies broken:2; the second (the revert) meets the engine down.
    h.world().down_at_converge = Some(2);
    let r = a.reconcile(Trigger::Poll, false).await;
    assert!(r.fault, "{r:?}");
    assert_eq!(a.state.failed, vec![c2.clone()], "the verdict on c2 stands");
    assert!(h.journal(), "the revert's journal stays");
    h.world().down = false;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::RolledBack), "{r:?}");
    assert_eq!(a.state.phase, Phase::RolledBack);
    assert_eq!(a.state.applied, Some(c1));
    assert_eq!(h.world().running["web"].2, "app:1");
    assert!(!h.journal());
}

#[tokio::test]
async fn a_crash_at_each_step_is_finished_by_the_next_agent() {
    for step in 1..=3 {
        let h = Host::new();
        h.commit(&containers(&[("aa", "app:1"), ("bb", "app:1"), ("cc", "app:1")]));
        let c2 = {
            let mut a = h.agent();
            a.reconcile(Trigger::Start, false).await;
            let c2 = h.commit(&containers(&[("aa", "app:2"), ("bb", "app:2"), ("cc", "app:2")]));
            h.world().down_at_converge = Some(step);
            assert!(a.reconcile(Trigger::Poll, false).await.fault, "step {step}");
            c2
            // the agent "dies" here: dropped with its journal on disk
        };
        assert!(h.journal(), "step {step}");
        h.world().down = false;
        let mut b = h.agent();
        let r = b.reconcile(Trigger::Start, false).await;
        assert_eq!(r.outcome, Some(Outcome::Applied), "step {step}: {r:?}");
        assert_eq!(b.state.applied, Some(c2), "step {step}");
        assert!(!h.journal(), "step {step}");
    }
}

#[tokio::test]
async fn an_unreachable_source_is_a_fault_that_clears() {
    let h = Host::new();
    let mut a = h.agent_at(&h.dir.path().join("nowhere").display().to_string());
    let r = a.reconcile(Trigger::Start, false).await;
    assert!(r.fault, "{r:?}");
    assert_eq!(a.state.phase, Phase::Degraded);
    assert!(a.state.message.as_deref().unwrap().starts_with("source:"), "{:?}", a.state.message);
    drop(a);
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(a.state.applied, Some(c1));
}

#[tokio::test]
async fn a_fault_on_an_up_to_date_host_restores_synced_when_it_clears() {
    let h = Host::new();
    h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    h.world().down = true;
    assert!(a.reconcile(Trigger::Poll, false).await.fault);
    assert_eq!(a.state.phase, Phase::Degraded);
    h.world().down = false;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert!(!r.fault);
    assert_eq!(a.state.phase, Phase::Synced);
    assert_eq!(a.state.message, None);
}

#[tokio::test]
async fn drift_is_repaired_and_reported_drift_stays_visible() {
    let h = Host::new();
    h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    h.world().running.remove("web");
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::DriftRepaired));
    assert_eq!(a.state.history[0].trigger.as_deref(), Some("drift"));
    assert!(h.world().running.contains_key("web"));

    a.cfg.config.drift = crate::config::DriftMode::Report;
    h.world().running.remove("web");
    for _ in 0..2 {
        a.reconcile(Trigger::Poll, false).await;
        assert_eq!(a.state.drift.len(), 1);
        assert!(a.state.message.as_deref().unwrap().contains("drift"), "{:?}", a.state.message);
    }
    assert!(a.metrics.render().contains("driftless_drift_unrepaired 1"));
    a.cfg.config.drift = crate::config::DriftMode::Repair;
    a.reconcile(Trigger::Poll, false).await;
    a.reconcile(Trigger::Poll, false).await;
    assert!(a.state.drift.is_empty());
    assert_eq!(a.state.message, None);
}

/// A drift repair that fails its gate leaves the host Degraded; the next one that succeeds
/// says Synced again (the status used to keep the stale Degraded, and `sync --wait` exited
/// non-zero on a host that was fine: seen in CI).
#[tokio::test]
async fn a_successful_repair_after_a_failed_one_says_synced_again() {
    let h = Host::new();
    h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    assert_eq!(a.state.phase, Phase::Synced);
    h.world().running.remove("web");
    h.world().refuse = Some("app:1".into());
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::DriftRepaired), "{r:?}");
    assert_eq!(a.state.phase, Phase::Degraded);
    assert!(
        a.state.message.as_deref().is_some_and(|m| m.starts_with("drift repair did not bring")),
        "{:?}",
        a.state.message
    );
    h.world().refuse = None;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::DriftRepaired), "{r:?}");
    assert_eq!(a.state.phase, Phase::Synced);
    assert_eq!(a.state.message, None);
    assert!(h.world().running.contains_key("web"));
}

#[tokio::test]
async fn pinned_and_paused_hosts_stay_put() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("web", "app:2")]));
    a.reconcile(Trigger::Poll, false).await;
    assert_eq!(a.state.applied, Some(c2.clone()));

    let r = a.rollback(Some(c1.clone()), false).await.unwrap();
    assert_eq!(r.outcome, Some(Outcome::Applied));
    assert_eq!(a.state.phase, Phase::Paused);
    assert_eq!(a.state.pinned, Some(c1.clone()));
    h.commit(&containers(&[("web", "app:3")]));
    a.reconcile(Trigger::Poll, false).await;
    assert_eq!(a.state.applied, Some(c1.clone()), "pinned: newer revisions wait");
    assert!(a.rollback(Some("no-such-rev".into()), false).await.is_err());

    a.state.pinned = None;
    a.state.paused = true;
    let before = h.world().converges;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, None);
    assert_eq!(h.world().converges, before, "paused: nothing applied");
    a.state.paused = false;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied));
}

#[tokio::test]
async fn a_second_reconciler_on_the_same_state_is_refused() {
    let h = Host::new();
    h.commit(&containers(&[("web", "app:1")]));
    let _a = h.agent();
    let drivers = Drivers::new().with(Box::new(h.fake.clone()));
    let url = h.dir.path().join("repo").display().to_string();
    let err = Reconciler::new(h.config(&url), drivers).err().unwrap();
    assert!(err.to_string().contains("another agent"), "{err}");
}

#[tokio::test]
async fn a_dependency_that_must_be_healthy_is_gated_before_its_dependent_is_applied() {
    let h = Host::new();
    let state = |db: &str| {
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: db }}\nspec:\n  image: {db}\n  health: [{{ exec: [\"true\"] }}]\n---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: web:1\n  depends_on: [{{ name: db, condition: healthy }}]\n"
        )
    };
    let c1 = h.commit(&state("db:1"));
    let mut a = h.agent();
    assert_eq!(a.reconcile(Trigger::Start, false).await.outcome, Some(Outcome::Applied));
    assert_eq!(h.world().running["web"].1, c1);
    // db dies in its gate: web (which waits for a healthy db) is never touched.
    h.commit(&state("broken-db:2").replace("web:1", "web:2"));
    h.world().log.clear();
    let r = a.reconcile(Trigger::Poll, false).await;
    assert!(!h.world().log.contains(&"web".to_string()), "web was never converged: {:?}", h.world().log);
    assert_eq!(r.outcome, Some(Outcome::RolledBack), "{r:?}");
    assert!(r.message.as_deref().unwrap().contains("db"), "{r:?}");
    assert_eq!(h.world().running["web"].2, "web:1", "web was not replaced by the failed revision");
    assert_eq!(h.world().running["web"].1, c1);
}

#[tokio::test]
async fn an_image_that_cannot_be_had_fails_the_revision_before_anything_is_touched() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("aa", "app:1"), ("bb", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let before = h.world().running.clone();
    let converges = h.world().converges;

    // A registry that does not answer for one image: a fault, nothing touched, no journal.
    let c2 = h.commit(&containers(&[("aa", "app:2"), ("bb", "slow-registry:2")]));
    h.world().unreachable_registry = Some("slow-registry".into());
    let r = a.reconcile(Trigger::Poll, false).await;
    assert!(r.fault, "{r:?}");
    assert_eq!(a.state.phase, Phase::Degraded);
    assert!(a.state.message.as_deref().unwrap().contains("nothing was changed"), "{:?}", a.state.message);
    assert_eq!(h.world().converges, converges, "no running thing was touched");
    assert!(a.state.failed.is_empty());
    assert!(!h.journal());
    h.world().unreachable_registry = None;

    // An image the registry does not have, next to one that it has: a verdict; every fetch
    // ran, nothing converged, the host exactly as it was; marked failed, not reverted.
    let c3 = h.commit(&containers(&[("aa", "app:3"), ("bb", "missing:3")]));
    h.world().missing = Some("missing".into());
    h.world().fetched.clear();
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Failed), "{r:?}");
    assert_eq!(a.state.phase, Phase::Failed);
    let msg = a.state.message.clone().unwrap_or_default();
    assert!(msg.contains("before anything was changed") && msg.contains("missing:3"), "{msg}");
    assert_eq!(h.world().fetched.len(), 2, "both fetched: {:?}", h.world().fetched);
    assert_eq!(h.world().converges, converges);
    assert_eq!(h.world().running, before);
    assert_eq!(revisions(&a), (Some(c1.clone()), Some(c1.clone()), vec![c3.clone()]));
    assert!(!h.journal());
    // Not tried again.
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, None);
    assert_eq!(h.world().converges, converges);

    // The next good commit applies.
    let c4 = h.commit(&containers(&[("aa", "app:4"), ("bb", "app:4")]));
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(a.state.applied, Some(c4));
    assert_ne!(c2, c3);
}

/// After a restart the resource gauges come from the state file, before any observation.
#[tokio::test]
async fn resource_gauges_are_published_from_the_state_at_start() {
    let h = Host::new();
    h.commit(&containers(&[("web", "app:1")]));
    {
        let mut a = h.agent();
        let r = a.reconcile(Trigger::Start, false).await;
        assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    }
    let again = h.agent();
    let m = again.metrics().render();
    assert!(m.contains("driftless_resource_healthy{kind=\"Container\",name=\"web\"} 1"), "{m}");
}

/// No host is ever stuck (PRODUCT.md behaviour 10): a fault after the journal was written
/// (the host's Caddy not answering) keeps the apply from finishing, and a newer revision
/// still gets through at the next poll: the interrupted apply is put back to the last good
/// revision (not failed: a fault stopped it), then the newer one is applied.
#[tokio::test]
async fn a_fault_after_the_journal_does_not_keep_a_newer_revision_out() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1"), ("db", "db:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("web", "caddy-down:2"), ("db", "db:2")]));
    h.world().faulty = Some("caddy-down".into());
    for _ in 0..2 {
        let r = a.reconcile(Trigger::Poll, false).await;
        assert!(r.fault, "{r:?}");
        assert!(h.journal(), "the interrupted apply's journal stays");
        assert_eq!(a.state.phase, Phase::Degraded);
        assert!(a.state.failed.is_empty(), "a fault fails nothing");
    }
    assert_eq!(h.world().running["db"].2, "db:2", "the apply got half-way");
    let c3 = h.commit(&containers(&[("web", "app:3"), ("db", "db:3")]));
    h.world().log.clear();
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(revisions(&a), (Some(c3.clone()), Some(c3.clone()), vec![]), "{c2} not failed");
    assert_eq!(a.state.phase, Phase::Synced);
    assert!(!h.journal());
    assert!(a.state.fault.is_none());
    // First back to c1 (db:1 again), then c3.
    let log = h.world().log.clone();
    assert_eq!(log.first().map(String::as_str), Some("db"), "{log:?}");
    assert!(h.world().running.values().all(|(_, rev, _)| rev == &c3));
    let entry = &a.state.history[0];
    assert_eq!(entry.revision.as_deref(), Some(c3.as_str()));
    assert!(
        entry.message.contains(&format!("the interrupted apply of {} was put back to {} first", &c2[..12], &c1[..12])),
        "{}",
        entry.message
    );
}

/// The same while the fault also keeps the revert from finishing (the engine down): the
/// status says what the agent waits for and will do, the revert's journal is marked as
/// superseded (so the interrupted revision is never failed), and once the engine answers
/// one poll puts the host back and applies the newer revision.
#[tokio::test]
async fn a_pre_empting_revert_that_meets_a_fault_is_finished_then_the_newer_revision_applied() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("web", "caddy-down:2")]));
    h.world().faulty = Some("caddy-down".into());
    assert!(a.reconcile(Trigger::Poll, false).await.fault);
    let c3 = h.commit(&containers(&[("web", "app:3")]));
    h.world().down = true;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert!(r.fault, "{r:?}");
    let msg = a.state.message.clone().unwrap_or_default();
    assert!(
        msg.contains(&format!(
            "put back to the last good revision {} before the newer revision {}",
            &c1[..12],
            &c3[..12]
        )),
        "{msg}"
    );
    let j = a.store.journal().unwrap().unwrap();
    assert_eq!(j.operation, crate::state::JournalOp::Revert);
    assert_eq!(j.superseded.as_deref(), Some(c2.as_str()));
    h.world().down = false;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(revisions(&a), (Some(c3.clone()), Some(c3), vec![]));
    assert!(!h.journal());
    assert_eq!(a.state.phase, Phase::Synced);
    // A crash (an agent dropped) with such a journal is finished the same way by the next one.
}

/// `agentctl rollback` while an apply is stuck on a fault: the host goes back to the last
/// good revision and is pinned there; the journal is gone, and polls keep it there.
#[tokio::test]
async fn rollback_gets_through_a_stuck_apply() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    h.commit(&containers(&[("web", "caddy-down:2")]));
    h.world().faulty = Some("caddy-down".into());
    assert!(a.reconcile(Trigger::Poll, false).await.fault);
    assert!(h.journal());
    let r = a.rollback(None, false).await.unwrap();
    assert!(!r.fault, "{r:?}");
    assert!(!h.journal(), "the interrupted apply was put back");
    assert_eq!(a.state.phase, Phase::Paused);
    assert_eq!(a.state.pinned.as_deref(), Some(c1.as_str()));
    assert_eq!(a.state.applied.as_deref(), Some(c1.as_str()));
    assert_eq!(h.world().running["web"].2, "app:1");
    assert!(a.state.failed.is_empty());
    let converges = h.world().converges;
    let r = a.reconcile(Trigger::Poll, false).await;
    assert!(!r.fault, "{r:?}");
    assert_eq!(h.world().converges, converges, "pinned: nothing more applied");
    assert_eq!(a.state.phase, Phase::Paused);
}

/// `agentctl sync --retry` while an apply is stuck: the interrupted apply is put back to the
/// last good revision, then the desired revision is tried afresh.
#[tokio::test]
async fn sync_retry_gets_through_a_stuck_apply() {
    let h = Host::new();
    h.commit(&containers(&[("web", "app:1"), ("db", "db:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("web", "caddy-down:2"), ("db", "db:2")]));
    h.world().faulty = Some("caddy-down".into());
    assert!(a.reconcile(Trigger::Poll, false).await.fault);
    // Still at fault: put back (db:1 again), tried again, stuck again — never failed.
    h.world().log.clear();
    let r = a.reconcile(Trigger::Manual, true).await;
    assert!(r.fault, "{r:?}");
    assert_eq!(h.world().log.first().map(String::as_str), Some("db"), "put back first: {:?}", h.world().log);
    assert!(a.state.failed.is_empty());
    // The fault cleared: --retry applies.
    h.world().faulty = None;
    let r = a.reconcile(Trigger::Manual, true).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(a.state.applied, Some(c2));
    assert!(!h.journal());
}

/// A crash mid-apply, and a newer revision pushed before the agent comes back: the new agent
/// puts the interrupted apply back and applies the newer revision, in its first cycle.
#[tokio::test]
async fn a_crash_mid_apply_with_a_newer_revision_waiting_ends_on_the_newer_one() {
    let h = Host::new();
    h.commit(&containers(&[("aa", "app:1"), ("bb", "app:1")]));
    {
        let mut a = h.agent();
        a.reconcile(Trigger::Start, false).await;
        h.commit(&containers(&[("aa", "app:2"), ("bb", "app:2")]));
        h.world().down_at_converge = Some(2);
        assert!(a.reconcile(Trigger::Poll, false).await.fault);
    }
    assert!(h.journal());
    h.world().down = false;
    let c3 = h.commit(&containers(&[("aa", "app:3"), ("bb", "app:3")]));
    let mut b = h.agent();
    let r = b.reconcile(Trigger::Start, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(revisions(&b), (Some(c3.clone()), Some(c3), vec![]));
    assert!(!h.journal());
}

/// What the host lacks for a revision (a proxied container on an agent without Caddy) is a
/// verdict of the preflight: the revision fails with the host untouched, and the fixing
/// commit is applied at the next poll.
#[tokio::test]
async fn what_the_host_lacks_fails_the_revision_untouched_and_the_fix_gets_through() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let converges = h.world().converges;
    let c2 = h.commit(&containers(&[("web", "proxied:2")]));
    h.world().lacks = Some("proxied".into());
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Failed), "{r:?}");
    assert_eq!(a.state.phase, Phase::Failed);
    assert!(matches!(a.state.reason, Some(crate::state::Reason::FailedUntouched { .. })), "{:?}", a.state.reason);
    let msg = a.state.message.clone().unwrap_or_default();
    assert!(msg.contains("before anything was changed") && msg.contains("proxy.caddy_admin"), "{msg}");
    assert_eq!(h.world().converges, converges, "nothing touched");
    assert!(!h.journal());
    assert_eq!(revisions(&a), (Some(c1.clone()), Some(c1), vec![c2]));
    let c3 = h.commit(&containers(&[("web", "app:3")]));
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Applied), "{r:?}");
    assert_eq!(a.state.applied, Some(c3));
}

/// Caddy refusing a route with a 4xx is a verdict on the revision: rolled back, failed, the
/// message quoting Caddy. Caddy not answering is a fault (above).
#[tokio::test]
async fn a_route_caddy_refuses_is_a_verdict() {
    let h = Host::new();
    let c1 = h.commit(&containers(&[("web", "app:1")]));
    let mut a = h.agent();
    a.reconcile(Trigger::Start, false).await;
    let c2 = h.commit(&containers(&[("web", "taken-listen:2")]));
    h.world().proxy_refuses = Some("taken-listen".into());
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::RolledBack), "{r:?}");
    assert!(!r.fault);
    assert_eq!(revisions(&a), (Some(c1.clone()), Some(c1), vec![c2]));
    assert!(a.state.message.as_deref().unwrap_or_default().contains("address already in use"), "{:?}", a.state.message);
    assert_eq!(h.world().running["web"].2, "app:1");
}

/// A Volume `db` (with `consistency`) mounted by `web`, which runs `image`.
fn with_volume(image: &str, consistency: &str) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: Volume\nmetadata: {{ name: db }}\nspec:\n  snapshot: {{ keep: 3, consistency: {consistency} }}\n---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec:\n  image: {image}\n  volumes: [\"db:/d\"]\n"
    )
}

#[tokio::test]
async fn a_revert_puts_the_data_back_and_keeps_the_failed_attempts() {
    let h = Host::new();
    let c1 = h.commit(&with_volume("app:1", "pause"));
    let mut a = h.agent();
    assert_eq!(a.reconcile(Trigger::Start, false).await.outcome, Some(Outcome::Applied));
    h.world().volumes.insert("db".into(), "v1 rows".into());
    let c2 = h.commit(&with_volume("broken-migrates:2", "pause"));
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::RolledBack), "{r:?}");
    assert_eq!(revisions(&a), (Some(c1.clone()), Some(c1.clone()), vec![c2.clone()]));
    assert_eq!(h.world().volumes["db"], "v1 rows", "the data as before v2");
    let list = a.snapshot_list(Some("db"));
    let kinds: Vec<(&str, Option<&str>)> = list.iter().map(|s| (s.kind.as_str(), s.revision.as_deref())).collect();
    assert_eq!(kinds, vec![("failed-attempt", Some(c2.as_str())), ("before", Some(c2.as_str()))]);
    let failed = &list[0];
    assert_eq!(a.snapshots().verify(&failed.id).unwrap().0.view.bytes, "broken-migrates:2".len() as u64);
    let entry = &a.state.history[0];
    assert!(entry.message.contains(&format!("volume db restored from snapshot {}", list[1].id)), "{}", entry.message);
    assert!(entry.message.contains(&failed.id), "{}", entry.message);
    assert!(a.state.attempt.is_none(), "the attempt is done with");
    assert!(!h.journal());
    // A revision with an empty plan takes no snapshot.
    let before = a.snapshot_list(None).len();
    assert_eq!(a.reconcile(Trigger::Poll, false).await.outcome, None);
    assert_eq!(a.snapshot_list(None).len(), before);
}

#[tokio::test]
async fn a_failed_attempt_that_cannot_be_kept_is_left_as_it_is_and_the_code_still_goes_back() {
    let h = Host::new();
    let exec = "{ exec: [dump], restore: [load] }";
    let c1 = h.commit(&with_volume("app:1", exec));
    let mut a = h.agent();
    assert_eq!(a.reconcile(Trigger::Start, false).await.outcome, Some(Outcome::Applied));
    h.world().volumes.insert("db".into(), "v1 rows".into());
    h.world().dumps_ok = Some(1); // the `before` dump works, the failed attempt's does not
    h.commit(&with_volume("broken-migrates:2", exec));
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::RolledBack), "{r:?}");
    assert_eq!(a.state.applied.as_deref(), Some(c1.as_str()), "the code went back");
    assert_eq!(h.world().volumes["db"], "broken-migrates:2", "nothing is lost: the data stays as the attempt left it");
    assert!(a.state.history[0].message.contains("volume db NOT restored"), "{}", a.state.history[0].message);
    // A dump that fails before anything is touched fails the revision untouched.
    h.world().dumps_ok = Some(0);
    let c3 = h.commit(&with_volume("app:3", exec));
    let r = a.reconcile(Trigger::Poll, false).await;
    assert_eq!(r.outcome, Some(Outcome::Failed), "{r:?}");
    assert_eq!(a.state.applied.as_deref(), Some(c1.as_str()));
    assert!(a.state.failed.contains(&c3));
    assert!(!h.journal(), "no journal is left to finish");
    assert_eq!(h.world().running["web"].2, "app:1", "untouched");
}
