//! No-op poll cost: a repository of 10,000 commits served on 127.0.0.1 over smart HTTP
//! (`git http-backend`), `git daemon` and `file://`; the agent's mirror is up to date, and a
//! poll finds nothing new. Measures wall time per poll and, over HTTP, requests and bytes the
//! server sent. The floor is `git fetch` of the same ref into an up-to-date clone.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use driftless_agent::config::LoadedConfig;
use driftless_agent::source::GitSource;

use crate::host;

const COMMITS: usize = 10_000;
const POLLS: usize = 21;

/// 10,000 commits on main, each changing one file, made with git fast-import.
fn make_repo(bare: &Path) -> Result<()> {
    host::git(
        bare.parent().unwrap_or(Path::new("/")),
        &["init", "-q", "--bare", "-b", "main", &bare.display().to_string()],
    )?;
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(bare)
        .stdin(Stdio::piped())
        .spawn()
        .context("git fast-import")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stream = String::new();
    for i in 0..COMMITS {
        let body = format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: web }}\nspec: {{ image: \"web:{i}\" }}\n"
        );
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter Bench <bench@example.invalid> {} +0000\ndata 7\ncommit\nM 100644 inline hosts/h/web.yaml\ndata {}\n{}\n",
            1_700_000_000 + i,
            body.len(),
            body
        ));
    }
    stdin.write_all(stream.as_bytes())?;
    drop(stdin);
    if !child.wait()?.success() {
        bail!("git fast-import failed");
    }
    Ok(())
}

fn source(state: &Path, url: &str) -> Result<GitSource> {
    let text = format!(
        "host: bench\nstate_dir: {}\nsource:\n  url: \"{url}\"\n  ref: {{ branch: main }}\n  path: hosts/h\n",
        state.display()
    );
    let cfg = LoadedConfig::from_text(Path::new("bench.yaml"), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(GitSource::new(&cfg))
}

pub fn bench_poll() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let srv = tmp.path().join("srv");
    std::fs::create_dir_all(&srv)?;
    let bare = srv.join("state.git");
    let t = Instant::now();
    make_repo(&bare)?;
    eprintln!("made a repository of {COMMITS} commits in {} ms", t.elapsed().as_millis());

    // Smart HTTP.
    let (_http, http_port, _) = host::start_git_http(&srv)?;
    // git daemon.
    let daemon_port = host::free_port()?;
    let exec_path = host::git(&srv, &["--exec-path"])?;
    let _daemon = host::Children(vec![Command::new(Path::new(&exec_path).join("git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={daemon_port}"))
        .arg(format!("--base-path={}", srv.display()))
        .arg(&srv)
        .stderr(Stdio::null())
        .spawn()
        .context("git-daemon")?]);
    host::wait_port(daemon_port)?;

    let remotes = [
        ("smart HTTP", format!("http://127.0.0.1:{http_port}/state.git")),
        ("git daemon", format!("git://127.0.0.1:{daemon_port}/state.git")),
        ("file://", format!("file://{}", bare.display())),
    ];
    for (name, url) in remotes {
        let state = tmp.path().join(format!("state-{}", name.replace([' ', ':', '/'], "")));
        let src = source(&state, &url)?;
        let (r_before, b_before) = host::http_stats(tmp.path());
        let t = Instant::now();
        let first = src.fetch().map_err(|e| anyhow::anyhow!("{e}"))?;
        let took = t.elapsed();
        let (req0, bytes0) = host::http_stats(tmp.path());
        let size = if name == "smart HTTP" {
            format!("{} KiB in {} requests", bytes0.saturating_sub(b_before) / 1024, req0.saturating_sub(r_before))
        } else {
            format!("{} objects", first.received_objects)
        };
        crate::row(&format!("first fetch over {name} ({COMMITS} commits; {size})"), vec![took]);
        let mut samples = Vec::new();
        for _ in 0..POLLS {
            let t = Instant::now();
            let r = src.fetch().map_err(|e| anyhow::anyhow!("{e}"))?;
            samples.push(t.elapsed());
            if r.received_objects != 0 || !r.changes.is_empty() {
                bail!("a no-op poll over {name} received {} objects", r.received_objects);
            }
        }
        let (req1, bytes1) = host::http_stats(tmp.path());
        let extra = if name == "smart HTTP" {
            let n = POLLS as u64;
            format!(
                ", {} request(s) and {} bytes from the server per poll",
                req1.saturating_sub(req0) / n,
                bytes1.saturating_sub(bytes0) / n
            )
        } else {
            String::new()
        };
        crate::row(&format!("no-op poll over {name} (agent){extra}, 0 objects"), samples);

        // The floor: git fetch into an up-to-date clone of the same ref.
        let clone = tmp.path().join(format!("clone-{}", name.replace([' ', ':', '/'], "")));
        host::git(
            tmp.path(),
            &["clone", "-q", "--bare", "--single-branch", "-b", "main", &url, &clone.display().to_string()],
        )?;
        let mut floor = Vec::new();
        for _ in 0..POLLS {
            let t = Instant::now();
            host::git(&clone, &["fetch", "-q", "origin", "+refs/heads/main:refs/heads/main"])?;
            floor.push(t.elapsed());
        }
        crate::row(&format!("floor: `git fetch` with nothing new over {name}"), floor);
    }
    Ok(())
}
