//! Data comes back with the revision (PRODUCT.md behaviour 11): the `before` snapshots an
//! apply takes after everything is fetched and before anything runs is touched; on the
//! revert of a revision that never passed its gate, the failed attempt's data kept as a
//! `failed-attempt` snapshot and each volume put back from its `before` snapshot; restores
//! by hand (`agentctl restore`, `rollback --restore-data`), the current data snapshotted
//! first; and retention. The drivers copy the data (`Driver::snapshot`, `restore`); the
//! snapshot store (`crate::snapshots`) keeps it.
//!
//! Architecture Invariant: every data step is journalled before it runs (the containers a
//! snapshot holds, the snapshot a restore puts back), and each one done is recorded in the
//! state (`Attempt`) or the journal (`restored`, `kept`) before the next, so a resumed
//! revert or restore neither snapshots twice nor restores a volume it put back already. A
//! volume's data is replaced only after the data it holds was snapshotted.

use std::collections::BTreeSet;
use std::time::Instant;

use desired_state_schema::{Consistency, DesiredState, Spec};

use crate::fault::Classify;
use crate::revision::Revision;
use crate::snapshots::{human_bytes, DataSet, Manifest, Place, SnapshotError, Store as Snapshots};
use crate::state::{now_rfc3339, Attempt, DataStep, Journal, JournalOp, Outcome, Reason};
use crate::wire::SnapshotView;

use super::error::CycleError;
use super::record::{Exit, Record};
use super::task::{CycleResult, Reconciler};

/// `before`: taken before a revision (or a restore) touched the data.
pub(super) const BEFORE: &str = "before";
/// `failed-attempt`: the data as a failed revision left it.
pub(super) const FAILED_ATTEMPT: &str = "failed-attempt";

/// What one snapshot is of, and why.
struct Taking<'a> {
    set: &'a DataSet,
    kind: &'static str,
    revision: Option<&'a str>,
    note: Option<String>,
}

/// The data set a snapshot was taken of, as its manifest says.
fn set_of(m: &Manifest) -> DataSet {
    DataSet {
        name: m.view.volume.clone(),
        keep: m.keep,
        consistency: m.consistency_spec.clone(),
        place: m.place.clone(),
    }
}

impl Reconciler {
    /// The snapshot store (`snapshots.dir`, read at start).
    pub(super) fn snapshots(&self) -> Snapshots {
        Snapshots::new(&self.cfg.config.snapshots_dir())
    }

    /// The snapshots on this host, of `volume` or all, newest first.
    pub(super) fn snapshot_list(&self, volume: Option<&str>) -> Vec<SnapshotView> {
        let mut list: Vec<SnapshotView> = self
            .snapshots()
            .list()
            .into_iter()
            .map(|m| m.view)
            .filter(|v| volume.is_none_or(|want| v.volume == want))
            .collect();
        list.reverse();
        list
    }

    /// The data sets `state`'s apply snapshots: its `Volume` documents and what its
    /// drivers name (a PassengerApp's `backup:` files), and those of the revision the host
    /// runs (a revision that drops one still has it put back by its revert). By name;
    /// `state`'s wins.
    async fn data_sets(&self, state: &DesiredState) -> Vec<DataSet> {
        let mut out = self.sets_of(state);
        if let Some(applied) = self.state.applied.clone().map(Revision::new) {
            // Past the cache, which keeps the revision being applied.
            if let Ok(running) = self.read_revision(&applied).await {
                for set in self.sets_of(&running) {
                    if !out.iter().any(|o| o.name == set.name) {
                        out.push(set);
                    }
                }
            }
        }
        out
    }

    /// The data sets `state` itself declares: its Volumes, then what its drivers name.
    fn sets_of(&self, state: &DesiredState) -> Vec<DataSet> {
        let volumes = state.volumes.iter().filter_map(|r| match &r.spec {
            Spec::Volume(v) => v.snapshot.as_ref().map(|s| DataSet {
                name: r.name().to_string(),
                keep: s.keep,
                consistency: s.consistency.clone(),
                place: Place::Volume,
            }),
            _ => None,
        });
        let files =
            state.resources.iter().flat_map(|r| self.drivers.get(r.kind).map(|d| d.data_sets(r)).unwrap_or_default());
        let mut out: Vec<DataSet> = Vec::new();
        for set in volumes.chain(files) {
            if !out.iter().any(|o| o.name == set.name) {
                out.push(set);
            }
        }
        out
    }

    /// Before `revision` touches anything: a `before` snapshot of every snapshotted volume,
    /// each step journalled in `journal`. `resumed`: this finishes an interrupted apply of
    /// `revision`, whose snapshots taken already are kept (the data may have changed since).
    pub(super) async fn snapshot_before(
        &mut self,
        journal: &mut Journal,
        revision: &Revision,
        state: &DesiredState,
        resumed: bool,
    ) -> Result<(), CycleError> {
        let volumes = self.data_sets(state).await;
        let same = self.state.attempt.as_ref().is_some_and(|a| a.revision == revision.as_str());
        if !(resumed && same) {
            // A new attempt: the last one's snapshots are no longer what a revert restores.
            self.state.attempt =
                (!volumes.is_empty()).then(|| Attempt { revision: revision.to_string(), ..Default::default() });
            self.save();
        }
        for set in &volumes {
            if self.state.attempt.as_ref().is_some_and(|a| a.before.contains_key(&set.name)) {
                continue;
            }
            let taking = Taking { set, kind: BEFORE, revision: Some(revision.as_str()), note: None };
            if let Some(m) = self.take(journal, taking).await? {
                if let Some(a) = self.state.attempt.as_mut() {
                    a.before.insert(set.name.clone(), m.view.id.clone());
                }
                self.save();
            }
        }
        Ok(())
    }

    /// Take one snapshot, journalled (the containers it holds first), the free space checked
    /// before anything is held; the volume's older snapshots pruned after. `None`: the
    /// volume does not exist (yet), so there was nothing to keep.
    async fn take(&mut self, journal: &mut Journal, t: Taking<'_>) -> Result<Option<Manifest>, CycleError> {
        let set = t.set;
        let volume = set.name.as_str();
        let store = self.snapshots();
        let began = Instant::now();
        let holders = match &set.place {
            Place::Volume => self.drivers.data()?.data_holders(volume).await?,
            Place::Files { .. } => Vec::new(),
        };
        journal.data = Some(DataStep {
            action: "snapshot".into(),
            volume: volume.to_string(),
            holders: holders.clone(),
            from: None,
        });
        let line = format!("snapshot {}", what(set));
        journal.next = Some(line.clone());
        self.store.write_journal(journal)?;
        let last = store.list().into_iter().rev().find(|m| m.view.volume == volume).map(|m| m.view.bytes);
        let size = match &set.place {
            Place::Volume => self.drivers.data()?.data_size(volume).await.unwrap_or(0),
            Place::Files { root, entries } => {
                let (root, entries) = (root.clone(), entries.clone());
                tokio::task::spawn_blocking(move || {
                    entries.iter().map(|e| crate::fsutil::tree_size(&root.join(e))).sum()
                })
                .await?
            }
        };
        store.check_space(volume, size.max(last.unwrap_or(0)))?;
        let held = match (&set.place, &set.consistency) {
            (Place::Files { .. }, _) => " (SQLite databases through SQLite's online backup)".to_string(),
            (_, Consistency::Pause) => format!(", {} container(s) paused", holders.len()),
            (_, Consistency::Stop) => format!(", {} container(s) stopped", holders.len()),
            (_, Consistency::Exec(_)) => String::new(),
        };
        self.say(format!(
            "snapshot ({}) of {}: about {} ({}{held})",
            t.kind,
            what(set),
            human_bytes(size),
            set.consistency.word()
        ));
        crate::failpoint::hit("snapshot").await;
        let time = now_rfc3339();
        let partial = store.begin(volume, &time)?;
        let copied = match &set.place {
            Place::Volume => self
                .drivers
                .data()?
                .snapshot(volume, &set.consistency, &holders, partial.path())
                .await
                .map_err(CycleError::from),
            Place::Files { root, entries } => {
                let (root, entries, into) = (root.clone(), entries.clone(), partial.path().to_path_buf());
                tokio::task::spawn_blocking(move || crate::snapshots::copy_entries(&root, &entries, &into))
                    .await?
                    .map_err(|e| {
                        CycleError::Snapshot(SnapshotError::Io { path: partial.path().to_path_buf(), source: e })
                    })
            }
        };
        let files = match copied {
            Ok(f) if f.is_empty() => {
                partial.discard();
                journal.data = None;
                journal.next = None;
                self.store.write_journal(journal)?;
                self.say(format!("{} does not exist yet: nothing to snapshot", what(set)));
                return Ok(None);
            }
            Ok(f) => f,
            Err(e) => {
                partial.discard();
                return Err(e);
            }
        };
        let manifest = Manifest {
            view: SnapshotView {
                volume: volume.to_string(),
                kind: t.kind.to_string(),
                revision: t.revision.map(str::to_string),
                running: self.state.applied.clone(),
                time,
                consistency: set.consistency.word().to_string(),
                note: t.note,
                ..Default::default()
            },
            consistency_spec: set.consistency.clone(),
            keep: set.keep,
            files,
            place: set.place.clone(),
        };
        let m = partial.finish(manifest)?;
        crate::failpoint::hit("snapshot-taken").await;
        journal.data = None;
        journal.next = None;
        journal.done.push(format!("{line} → {}", m.view.id));
        self.store.write_journal(journal)?;
        self.say(format!(
            "snapshot {} of {}: {} in {:.1} s",
            m.view.id,
            what(set),
            human_bytes(m.view.bytes),
            began.elapsed().as_secs_f64()
        ));
        let protect = self.protected_snapshots(journal);
        let (pruner, name, keep) = (store.clone(), volume.to_string(), set.keep);
        let removed = tokio::task::spawn_blocking(move || pruner.prune(&name, keep, &protect)).await?;
        if !removed.is_empty() {
            self.say(format!("snapshots of {} pruned (keep {}): {}", what(set), set.keep, removed.join(", ")));
        }
        Ok(Some(m))
    }

    /// What retention never removes: the current attempt's snapshots, what a restore in
    /// flight puts back, and the newest `before` snapshot of each volume taken before the
    /// last good revision.
    fn protected_snapshots(&self, journal: &Journal) -> BTreeSet<String> {
        let mut keep: BTreeSet<String> = BTreeSet::new();
        if let Some(a) = &self.state.attempt {
            keep.extend(a.before.values().cloned());
            keep.extend(a.failed.values().cloned());
        }
        keep.extend(journal.restores.iter().cloned());
        if let Some(good) = &self.state.last_good {
            let mut newest: std::collections::BTreeMap<String, String> = Default::default();
            for m in self.snapshots().list() {
                if m.view.kind == BEFORE && m.view.revision.as_deref() == Some(good.as_str()) {
                    newest.insert(m.view.volume.clone(), m.view.id.clone());
                }
            }
            keep.extend(newest.into_values());
        }
        keep
    }

    /// Put back one volume from snapshot `id` (verified first), journalled.
    async fn restore_one(
        &mut self,
        journal: &mut Journal,
        manifest: &Manifest,
        dir: &std::path::Path,
    ) -> Result<(), CycleError> {
        let volume = manifest.view.volume.clone();
        let line = format!("restore {} from {}", what(&set_of(manifest)), manifest.view.id);
        journal.data = Some(DataStep {
            action: "restore".into(),
            volume: volume.clone(),
            holders: Vec::new(),
            from: Some(manifest.view.id.clone()),
        });
        journal.next = Some(line.clone());
        self.store.write_journal(journal)?;
        let stopped = match manifest.place {
            Place::Volume => ": the containers that mount it are stopped, and start again on it",
            Place::Files { .. } => "",
        };
        self.say(format!(
            "restoring {} from snapshot {} (taken {}){stopped}",
            what(&set_of(manifest)),
            manifest.view.id,
            manifest.view.time
        ));
        crate::failpoint::hit("restore").await;
        let began = Instant::now();
        match &manifest.place {
            Place::Volume => self.drivers.data()?.restore(&volume, manifest, dir).await?,
            Place::Files { root, .. } => {
                let (root, from) = (root.clone(), dir.to_path_buf());
                tokio::task::spawn_blocking(move || crate::snapshots::restore_entries(&root, &from))
                    .await?
                    .map_err(|e| SnapshotError::Io { path: dir.to_path_buf(), source: e })?
            }
        }
        self.say(format!(
            "{} restored from {} in {:.1} s",
            what(&set_of(manifest)),
            manifest.view.id,
            began.elapsed().as_secs_f64()
        ));
        crate::failpoint::hit("restore-done").await;
        journal.data = None;
        journal.next = None;
        journal.done.push(line);
        self.store.write_journal(journal)?;
        Ok(())
    }

    /// The revert of `failed`, which never passed its gate: for each volume its attempt
    /// snapshotted, the data as the attempt left it is kept (`failed-attempt`), then the
    /// volume is put back from its `before` snapshot. Lines for the history entry.
    pub(super) async fn restore_attempt(
        &mut self,
        failed: &Revision,
        journal: &mut Journal,
    ) -> Result<Vec<String>, CycleError> {
        let Some(attempt) = self.state.attempt.clone().filter(|a| a.revision == failed.as_str()) else {
            return Ok(Vec::new());
        };
        let store = self.snapshots();
        let mut lines = Vec::new();
        for (volume, before) in &attempt.before {
            let (manifest, dir) = match verified(&store, before).await {
                Ok(found) => found,
                Err(e) if e.is_fault() => return Err(e),
                Err(e) => {
                    // The code goes back all the same; the data cannot: said loudly.
                    lines.push(format!("volume {volume} NOT restored: {e}"));
                    self.say(format!("volume {volume} is not restored: {e}"));
                    continue;
                }
            };
            if attempt.restored.contains(volume) {
                lines.push(restored_line(&manifest, attempt.failed.get(volume)));
                continue;
            }
            // A verdict here (an exec dump that fails) costs this volume its restore, never
            // the revert of the code; a fault keeps the revert's journal, to be finished.
            let kept = match self.state.attempt.as_ref().and_then(|a| a.failed.get(volume)).cloned() {
                Some(id) => Some(id),
                None => {
                    let set = set_of(&manifest);
                    let taking =
                        Taking { set: &set, kind: FAILED_ATTEMPT, revision: Some(failed.as_str()), note: None };
                    match self.take(journal, taking).await {
                        Ok(m) => {
                            if let (Some(a), Some(m)) = (self.state.attempt.as_mut(), &m) {
                                a.failed.insert(volume.clone(), m.view.id.clone());
                            }
                            self.save();
                            m.map(|m| m.view.id)
                        }
                        Err(e) if e.is_fault() => return Err(e),
                        Err(e) => {
                            let line = format!("volume {volume} NOT restored: the failed attempt's data could not be kept ({e}), so it stays as the attempt left it");
                            self.say(line.clone());
                            lines.push(line);
                            continue;
                        }
                    }
                }
            };
            match self.restore_one(journal, &manifest, &dir).await {
                Ok(()) => {}
                Err(e) if e.is_fault() => return Err(e),
                Err(e) => {
                    let line = format!("volume {volume} NOT restored: {e}");
                    self.say(line.clone());
                    lines.push(line);
                    continue;
                }
            }
            if let Some(a) = self.state.attempt.as_mut() {
                a.restored.push(volume.clone());
            }
            self.save();
            lines.push(restored_line(&manifest, kept.as_ref()));
        }
        Ok(lines)
    }

    /// The snapshots `agentctl rollback --restore-data` puts back for `target`: per volume
    /// of its desired state, the newest `before` snapshot taken while it ran. `Err` names a
    /// volume that has none (nothing is done then).
    pub(super) async fn snapshots_of_revision(&self, target: &Revision) -> Result<Vec<String>, CycleError> {
        let state = self.load_revision(target).await?;
        let list = self.snapshots().list();
        let mut ids = Vec::new();
        for set in self.sets_of(&state) {
            let found = list.iter().rev().find(|m| {
                m.view.volume == set.name && m.view.kind == BEFORE && m.view.running.as_deref() == Some(target.as_str())
            });
            match found {
                Some(m) => ids.push(m.view.id.clone()),
                None => {
                    return Err(CycleError::Refused(format!(
                        "no snapshot of {} was taken while {} ran, so --restore-data cannot put it back: roll back without it, or pick one by hand (agentctl snapshots {}, agentctl restore ID)",
                        what(&set),
                        target.short(),
                        set.name
                    )))
                }
            }
        }
        Ok(ids)
    }

    /// Restore the snapshots `ids` by hand (each verified before anything is touched; the
    /// current data of each volume snapshotted first), then converge the applied revision so
    /// that its containers run on the restored data. `why` is for the log and the history.
    pub(super) async fn restore_by_hand(&mut self, ids: Vec<String>, why: String) -> Result<CycleResult, CycleError> {
        let applied = self.state.applied.clone().ok_or_else(|| {
            CycleError::Refused("nothing is applied on this host yet, so nothing runs on a volume to restore".into())
        })?;
        if self.store.journal()?.is_some() {
            return Err(CycleError::Refused(
                "an apply, revert or restore is unfinished (agentctl status says which); wait for it, then restore"
                    .into(),
            ));
        }
        let store = self.snapshots();
        for id in &ids {
            verified(&store, id).await.map_err(|e| CycleError::Refused(e.to_string()))?;
        }
        self.ctx.trigger = super::parts::Trigger::Manual;
        self.ctx.start = self.state.reason.clone();
        let mut journal = Journal::new(JournalOp::Restore, &applied);
        journal.restores = ids;
        journal.why = Some(why);
        self.store.write_journal(&journal)?;
        Ok(self.finish_restores(journal).await)
    }

    /// Carry out (or resume) the restores by hand of `journal`, then converge and gate the
    /// applied revision. One way out, like every cycle.
    pub(super) async fn finish_restores(&mut self, mut journal: Journal) -> CycleResult {
        let started = (journal.started.clone(), Instant::now());
        let applied = Revision::new(journal.revision.clone());
        let why = journal.why.clone().unwrap_or_else(|| "agentctl restore".into());
        let store = self.snapshots();
        let mut lines = Vec::new();
        let mut result: Result<(), CycleError> = Ok(());
        for id in journal.restores.clone() {
            let (manifest, dir) = match verified(&store, &id).await {
                Ok(found) => found,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if journal.restored.contains(&id) {
                lines.push(restored_line(&manifest, journal.kept.get(&id)));
                continue;
            }
            if !journal.kept.contains_key(&id) {
                let set = set_of(&manifest);
                let taking =
                    Taking { set: &set, kind: BEFORE, revision: None, note: Some(format!("before restoring {id}")) };
                match self.take(&mut journal, taking).await {
                    Ok(Some(m)) => {
                        journal.kept.insert(id.clone(), m.view.id);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if let Err(e) = self.restore_one(&mut journal, &manifest, &dir).await {
                result = Err(e);
                break;
            }
            journal.restored.push(id.clone());
            if let Err(e) = self.store.write_journal(&journal) {
                result = Err(e.into());
                break;
            }
            lines.push(restored_line(&manifest, journal.kept.get(&id)));
        }
        if result.is_ok() {
            // Start what runs on the data again (the restore removed the containers).
            result = self.revert_to(&applied, journal).await;
        }
        let msg = format!("{why}: {}", lines.join("; "));
        match result {
            Ok(()) => {
                self.say(msg.clone());
                let record = Record::new(&applied, Outcome::Applied, Vec::new(), msg, &started);
                self.finish(Exit::Judged(record, None))
            }
            Err(CycleError::Stopping) => self.stopping(),
            Err(e) if e.is_fault() => {
                self.publish_observation().await;
                let context = format!("{why} was interrupted and is finished once the fault clears");
                self.finish(Exit::Fault { error: e, context: Some(context), record: None })
            }
            Err(e) => {
                let _ = self.store.clear_journal();
                let error = format!(
                    "{e}{}",
                    if lines.is_empty() { String::new() } else { format!(" (after: {})", lines.join("; ")) }
                );
                let reason = Reason::RepairFailed { error };
                let msg = reason.message().unwrap_or_default();
                let record = Record::new(&applied, Outcome::Failed, Vec::new(), msg, &started);
                self.finish(Exit::Judged(record, Some(reason)))
            }
        }
    }

    /// At the start of a resumed journal: a snapshot the agent died in leaves its containers
    /// held; they are put back (a restore is simply run again by what resumes).
    pub(super) async fn release_after_crash(&mut self, journal: &mut Journal) -> Result<(), CycleError> {
        let Some(step) = journal.data.clone() else { return Ok(()) };
        if step.action == "snapshot" && !step.holders.is_empty() {
            self.say(format!(
                "the snapshot of volume {} was cut short: putting back {}",
                step.volume,
                step.holders.join(", ")
            ));
            self.drivers.data()?.release(&step.holders).await?;
        }
        journal.data = None;
        self.store.write_journal(journal)?;
        Ok(())
    }
}

/// Snapshot `id` checked against its manifest (every byte hashed: off the runtime's thread).
async fn verified(store: &Snapshots, id: &str) -> Result<(Manifest, std::path::PathBuf), CycleError> {
    let (store, id) = (store.clone(), id.to_string());
    Ok(tokio::task::spawn_blocking(move || store.verify(&id)).await??)
}

/// How the log and the history name a data set: `volume db-data`, `files of api.backup`.
fn what(set: &DataSet) -> String {
    match set.place {
        Place::Volume => format!("volume {}", set.name),
        Place::Files { .. } => format!("files of {}", set.name),
    }
}

/// A history line: which volume was put back from which snapshot, and where the data it
/// replaced is kept.
fn restored_line(m: &Manifest, kept: Option<&String>) -> String {
    let mut line = format!("{} restored from snapshot {} (taken {})", what(&set_of(m)), m.view.id, m.view.time);
    if let Some(k) = kept {
        line.push_str(&format!("; the data it replaced is snapshot {k}"));
    }
    line
}
