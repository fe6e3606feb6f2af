//! The pure planning core at scale: 1,000 (and 10,000) desired vs as many observed containers (90% up to
//! date, 50 changed, 50 new; 50 observed ones to remove). Time and heap allocations of
//! `plan::plan`, and of the whole pure step (spec hashes, dependency order, plan).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Result};
use desired_state_schema::Resource;
use driftless_agent::plan::{self, Action, Observed, RunState};

const RUNS: usize = 51;

pub fn bench_plan() -> Result<()> {
    plan_at(1_000)?;
    plan_at(10_000)
}

fn plan_at(n: usize) -> Result<()> {
    let size = if n == 1_000 { "1,000".to_string() } else { "10,000".to_string() };
    let dir = tempfile::tempdir()?;
    crate::generate_state(dir.path(), n)?;
    let files = desired_state_schema::read_dir_files(dir.path())?;
    let state = desired_state_schema::load(&files, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let no_inputs = BTreeMap::new();
    let hashed = |state: &desired_state_schema::DesiredState| -> Vec<(Resource, String)> {
        state.in_dependency_order().into_iter().map(|r| (r.clone(), plan::spec_hash(r, &no_inputs))).collect()
    };
    let desired = hashed(&state);
    // The host: 900 resources up to date, 50 with another spec, 50 missing, 50 stray ones.
    let mut observed: Vec<Observed> = desired
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 20 != 7)
        .map(|(i, (r, h))| Observed {
            kind: r.kind,
            name: r.name().to_string(),
            spec_hash: if i % 20 == 3 { "0".repeat(64) } else { h.clone() },
            revision: "a".repeat(40),
            state: RunState::Running,
            stray_instances: 0,
            out_of_place: None,
            unclaimed: false,
        })
        .collect();
    for i in 0..50 {
        observed.push(Observed {
            kind: desired_state_schema::Kind::Container,
            name: format!("gone-{i}"),
            spec_hash: "1".repeat(64),
            revision: "a".repeat(40),
            state: RunState::Running,
            stray_instances: 0,
            out_of_place: None,
            unclaimed: false,
        });
    }
    let managed = [desired_state_schema::Kind::Container];
    let pairs: Vec<(&Resource, String)> = desired.iter().map(|(r, h)| (r, h.clone())).collect();

    let mut times = Vec::new();
    let mut allocs = Vec::new();
    let mut steps = 0;
    for _ in 0..RUNS {
        let a0 = crate::alloc::count();
        let t = Instant::now();
        let p = plan::plan(&pairs, &observed, &managed);
        times.push(t.elapsed());
        allocs.push(crate::alloc::count() - a0);
        steps = p.changes().count();
        if p.steps.iter().filter(|s| s.action == Action::Remove).count() != 50 {
            bail!("the plan should remove 50 resources");
        }
    }
    allocs.sort();
    crate::row(
        &format!(
            "`plan::plan`, {size} desired vs {size} observed ({steps} changes), {} allocations",
            allocs[allocs.len() / 2]
        ),
        times,
    );

    let mut times = Vec::new();
    let mut allocs = Vec::new();
    for _ in 0..RUNS {
        let a0 = crate::alloc::count();
        let t = Instant::now();
        let ordered = state.in_dependency_order();
        let pairs: Vec<(&Resource, String)> = ordered.iter().map(|r| (*r, plan::spec_hash(r, &no_inputs))).collect();
        let p = plan::plan(&pairs, &observed, &managed);
        times.push(t.elapsed());
        allocs.push(crate::alloc::count() - a0);
        std::hint::black_box(p);
    }
    allocs.sort();
    crate::row(
        &format!(
            "the whole pure step ({size}): dependency order, {size} spec hashes, plan; {} allocations",
            allocs[allocs.len() / 2]
        ),
        times,
    );
    Ok(())
}
