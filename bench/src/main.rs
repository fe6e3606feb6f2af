//! The benchmark harness: `bench/run` builds release binaries and calls this. Each benchmark
//! prints a markdown table row of medians over several runs, with min–max, measured on this
//! machine in this run. No thresholds are asserted here; targets live in docs/performance.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

mod docker;
mod downtime;
mod fleet;
mod host;
mod latency;
mod plan;
mod poll;
mod reports;
mod snapshot;

/// Counts heap allocations, for the plan benchmark.
pub(crate) mod alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering};

    static COUNT: AtomicU64 = AtomicU64::new(0);

    pub struct Counting;

    // SAFETY: forwards to the system allocator unchanged; only counts calls.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            COUNT.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `alloc` above, i.e. from `System`.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            COUNT.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as for `alloc`; `ptr` came from `System`.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn count() -> u64 {
        COUNT.load(Ordering::Relaxed)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin_dir = PathBuf::from(std::env::var("DRIFTLESS_BIN").unwrap_or_else(|_| "target/release".into()));
    let which: Vec<&str> = if args.is_empty() { vec!["validate"] } else { args.iter().map(String::as_str).collect() };
    println!("| benchmark | median | min | max | runs |");
    println!("|---|---|---|---|---|");
    for w in which {
        match w {
            "validate" => bench_validate(&bin_dir)?,
            "poll" => poll::bench_poll()?,
            "plan" => plan::bench_plan()?,
            "converge" => docker::bench_converge(&bin_dir)?,
            "noop" => docker::bench_noop_and_idle(&bin_dir, false)?,
            "idle" => docker::bench_noop_and_idle(&bin_dir, true)?,
            "latency" => latency::bench_latency(&bin_dir)?,
            "fleet" => fleet::bench_fleet(&bin_dir)?,
            "build" => docker::bench_build(&bin_dir)?,
            "compose" => docker::bench_compose(&bin_dir)?,
            "downtime" => downtime::bench_downtime(&bin_dir)?,
            "reports" => reports::bench_reports(&bin_dir)?,
            "watch" => docker::bench_watch(&bin_dir)?,
            "snapshot" => snapshot::bench_snapshot(&bin_dir)?,
            other => {
                bail!("unknown benchmark {other:?}: known: validate, poll, plan, converge, noop, idle, latency, fleet, build, compose, downtime, reports, watch, snapshot")
            }
        }
    }
    Ok(())
}

/// Write `n` Container documents over `n / 10` files, with overlays and dependencies.
pub(crate) fn generate_state(dir: &Path, n: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let per_file = 10;
    for f in 0..n.div_ceil(per_file) {
        let mut text = String::new();
        for d in 0..per_file {
            let i = f * per_file + d;
            if i >= n {
                break;
            }
            let dep = if i > 0 { format!("  depends_on: [svc-{}]\n", i - 1) } else { String::new() };
            text.push_str(&format!(
                "---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: svc-{i} }}\nspec:\n  image: registry.example.com/team/svc-{i}:1.{i}.0\n  pull: if-not-present\n  command: [\"/app/server\", \"--port\", \"80\"]\n  env: {{ LOG_LEVEL: INFO, INDEX: {i} }}\n  ports: [\"127.0.0.1:{}:80\"]\n  volumes: [\"/srv/svc-{i}/data:/data\", \"svc-{i}-cache:/cache:ro\"]\n  restart: unless-stopped\n{dep}  health:\n    - http: {{ url: \"http://127.0.0.1:{}/healthz\", status: 200 }}\n      timeout: 30s\nenvironments:\n  staging: {{ spec: {{ env: {{ LOG_LEVEL: DEBUG }} }} }}\n",
                10000 + i,
                10000 + i
            ));
        }
        std::fs::write(dir.join(format!("services-{f:03}.yaml")), text)?;
    }
    Ok(())
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

pub(crate) fn row(name: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (med, min, max) = stats(samples);
    println!("| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {n} |", ms(med), ms(min), ms(max));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn bench_validate(bin_dir: &Path) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("driftless-bench-{}", std::process::id()));
    let dir = tmp.join("state");
    generate_state(&dir, 1000)?;
    let agentctl = bin_dir.join("agentctl");
    let runs = 11;

    // The whole command, as CI runs it: process start, read, parse, base + 1 environment.
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(&agentctl)
            .arg("validate")
            .arg(&dir)
            .output()
            .with_context(|| format!("running {}", agentctl.display()))?;
        samples.push(t.elapsed());
        if !out.status.success() {
            bail!("validate failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    row("`agentctl validate`, 1,000 documents in 100 files (base + staging)", samples);

    // In process: what the agent pays per revision (files already in memory).
    let files = desired_state_schema::read_dir_files(&dir)?;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let state = desired_state_schema::load(&files, Some("staging"));
        samples.push(t.elapsed());
        if state.is_err() {
            bail!("generated state is invalid");
        }
    }
    row("load 1,000 documents in process (parse, overlay, type, check)", samples);
    let mut parse = Vec::new();
    let mut build = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let loaded = desired_state_schema::parse(&files);
        parse.push(t.elapsed());
        let t = Instant::now();
        let _ = loaded.build(Some("staging"));
        build.push(t.elapsed());
    }
    row("  of which: parse (YAML, position maps, envelopes)", parse);
    let mut maps = Vec::new();
    let mut yaml = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for f in &files {
            std::hint::black_box(desired_state_schema::source_map::map_documents(&f.text));
        }
        maps.push(t.elapsed());
        let t = Instant::now();
        for f in &files {
            for de in serde_yaml_ng::Deserializer::from_str(&f.text) {
                std::hint::black_box(<serde_yaml_ng::Value as serde::Deserialize>::deserialize(de).ok());
            }
        }
        yaml.push(t.elapsed());
    }
    row("  of which: position maps (saphyr events + path index)", maps);
    let mut raw = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for f in &files {
            for e in saphyr_parser::Parser::new_from_str(&f.text) {
                std::hint::black_box(e.ok());
            }
        }
        raw.push(t.elapsed());
    }
    row("  floor: saphyr-parser event scan alone", raw);
    row("  floor: serde_yaml_ng to Value alone", yaml);
    row("  of which: build (overlay, type, semantic checks)", build);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
