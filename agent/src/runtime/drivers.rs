//! The drivers of this host, by kind (`Drivers`), and the one observation of all of them
//! the reconciler plans from (`Observation`), reused while a driver's token says nothing
//! changed (for at most `RESYNC`).

use std::collections::BTreeMap;

use desired_state_schema::Kind;

use super::driver::{Driver, RuntimeError};
use crate::plan::Observed;

/// How long an observation may be reused while its driver's token is unchanged: after
/// this, the engine is asked again even if its event feed reported nothing (a feed that
/// stalls without closing must not hide drift for longer).
pub const RESYNC: std::time::Duration = std::time::Duration::from_secs(300);

/// The drivers of this host, by kind.
#[derive(Default)]
pub struct Drivers {
    map: BTreeMap<Kind, Box<dyn Driver>>,
    /// The last observation of each kind whose driver gave a token, with that token (taken
    /// before asking) and when it was made.
    observed: std::sync::Mutex<BTreeMap<Kind, Looked>>,
}

/// One kind's last observation: the token read before it, when it was made, what it saw.
type Looked = (u64, std::time::Instant, Vec<Observed>);

impl Drivers {
    pub fn new() -> Drivers {
        Drivers::default()
    }

    /// Register `driver` for its kind (replacing one registered before).
    pub fn with(mut self, driver: Box<dyn Driver>) -> Drivers {
        if let Ok(cache) = self.observed.get_mut() {
            cache.remove(&driver.kind());
        }
        self.map.insert(driver.kind(), driver);
        self
    }

    /// The driver of `kind`, or why there is none.
    pub fn get(&self, kind: Kind) -> Result<&dyn Driver, RuntimeError> {
        self.map.get(&kind).map(|d| d.as_ref()).ok_or(RuntimeError::Unsupported {
            kind,
            detail: "this agent has no driver for it (agentd --dry-run connects none)".into(),
        })
    }

    /// The driver that keeps `Volume` data (snapshots and restores): the one that runs
    /// Containers, since a Volume is a named volume of the container engine.
    pub fn data(&self) -> Result<&dyn Driver, RuntimeError> {
        self.get(Kind::Container).map_err(|_| RuntimeError::Unsupported {
            kind: Kind::Volume,
            detail: "Volume snapshots are taken through the Docker engine, and this agent runs no Docker runtime"
                .into(),
        })
    }

    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.map.keys().copied()
    }

    /// Observe every driver. A driver whose kind is in `needed` must answer (its failure is
    /// returned); one that is not needed and fails is left out, and so are its kind's
    /// resources (`observed_kinds` lists the kinds that answered: only they can lose orphans).
    pub async fn observe(&self, needed: &[Kind]) -> Result<Observation, RuntimeError> {
        let results = futures_util::future::join_all(
            self.map.values().map(|d| async move { (d.kind(), self.observe_one(d.as_ref()).await) }),
        )
        .await;
        let mut out = Observation::default();
        for (kind, result) in results {
            match result {
                Ok(o) => {
                    out.resources.extend(o);
                    out.kinds.push(kind);
                }
                Err(e) if needed.contains(&kind) => return Err(e),
                Err(e) => tracing::debug!("{kind} not observed (not needed by this revision): {e}"),
            }
        }
        Ok(out)
    }

    /// One driver's observation: the last one again while its token is unchanged and it is
    /// younger than `RESYNC`, else a fresh one. The token is read before asking, so a change
    /// during the look moves it and the next observation asks again.
    async fn observe_one(&self, d: &dyn Driver) -> Result<Vec<Observed>, RuntimeError> {
        let kind = d.kind();
        let token = d.observation_token();
        if let (Some(t), Ok(cache)) = (token, self.observed.lock()) {
            if let Some((seen, at, resources)) = cache.get(&kind) {
                if *seen == t && at.elapsed() < RESYNC {
                    return Ok(resources.clone());
                }
            }
        }
        let fresh = d.observe().await;
        if let Ok(mut cache) = self.observed.lock() {
            match (&fresh, token) {
                (Ok(resources), Some(t)) => {
                    cache.insert(kind, (t, std::time::Instant::now(), resources.clone()));
                }
                _ => {
                    cache.remove(&kind);
                }
            }
        }
        fresh
    }

    /// The first fault among the drivers of `kinds` (the engine down, …), if any.
    pub async fn fault(&self, kinds: &[Kind]) -> Option<RuntimeError> {
        for k in kinds {
            if let Some(d) = self.map.get(k) {
                if let Err(e) = d.reachable().await {
                    return Some(e);
                }
            }
        }
        None
    }

    /// Start every driver's change feed; `on_change(kind, name)` for each change.
    pub fn subscribe(
        &self,
        on_change: std::sync::Arc<dyn Fn(Kind, String) + Send + Sync>,
        shutdown: &crate::listen::Shutdown,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.map
            .values()
            .filter_map(|d| {
                let kind = d.kind();
                let f = on_change.clone();
                d.subscribe(std::sync::Arc::new(move |name| f(kind, name)), shutdown.clone())
            })
            .collect()
    }

    /// Whether steps of `kind` may share a wave.
    pub fn parallel(&self, kind: Kind) -> bool {
        self.map.get(&kind).is_some_and(|d| d.parallel())
    }
}

/// What the drivers observed.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub resources: Vec<Observed>,
    /// The kinds whose drivers answered (their observations are complete).
    pub kinds: Vec<Kind>,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use desired_state_schema::Resource;

    use super::*;
    use crate::plan::RunState;
    use crate::revision::Revision;
    use crate::runtime::driver::Log;

    /// A driver that counts its observations and offers `token` (u64::MAX: none).
    struct Counted {
        looks: Arc<AtomicUsize>,
        token: Arc<AtomicU64>,
    }

    #[async_trait]
    impl Driver for Counted {
        fn kind(&self) -> Kind {
            Kind::Container
        }
        async fn observe(&self) -> Result<Vec<Observed>, RuntimeError> {
            let n = self.looks.fetch_add(1, Ordering::SeqCst);
            Ok(vec![Observed {
                kind: Kind::Container,
                name: format!("look-{n}"),
                spec_hash: String::new(),
                revision: String::new(),
                state: RunState::Running,
                stray_instances: 0,
                out_of_place: None,
                unclaimed: false,
            }])
        }
        fn observation_token(&self) -> Option<u64> {
            Some(self.token.load(Ordering::SeqCst)).filter(|t| *t != u64::MAX)
        }
        async fn converge(&self, _r: &Resource, _v: &Revision, _log: Log<'_>) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn remove(&self, _name: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_unchanged_token_reuses_the_last_observation_and_a_moved_or_missing_one_looks() {
        let looks = Arc::new(AtomicUsize::new(0));
        let token = Arc::new(AtomicU64::new(u64::MAX));
        let drivers = Drivers::new().with(Box::new(Counted { looks: looks.clone(), token: token.clone() }));
        let name = |o: &Observation| o.resources[0].name.clone();
        // No token (no feed): every observation asks.
        drivers.observe(&[Kind::Container]).await.ok();
        drivers.observe(&[Kind::Container]).await.ok();
        assert_eq!(looks.load(Ordering::SeqCst), 2);
        // A token: asked once, then reused while it stands.
        token.store(7, Ordering::SeqCst);
        let first = drivers.observe(&[Kind::Container]).await.map(|o| name(&o)).ok();
        let again = drivers.observe(&[Kind::Container]).await.map(|o| name(&o)).ok();
        assert_eq!(looks.load(Ordering::SeqCst), 3);
        assert_eq!(first, again);
        // The token moved (an event, the agent's own change): asked again.
        token.store(8, Ordering::SeqCst);
        let moved = drivers.observe(&[Kind::Container]).await.map(|o| name(&o)).ok();
        assert_eq!(looks.load(Ordering::SeqCst), 4);
        assert_ne!(moved, again);
        // The feed went down: no token, and nothing cached is trusted when it comes back
        // with the same count.
        token.store(u64::MAX, Ordering::SeqCst);
        drivers.observe(&[Kind::Container]).await.ok();
        token.store(8, Ordering::SeqCst);
        drivers.observe(&[Kind::Container]).await.ok();
        assert_eq!(looks.load(Ordering::SeqCst), 6);
    }
}
