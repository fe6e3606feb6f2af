//! The NixOS runtime end to end with real Nix (Debian's nix-bin, single-user, as root,
//! sandbox off): a test flake stands in for a NixOS system — its `nixosConfigurations.web-1
//! .config.system.build.toplevel` is a small derivation whose `bin/switch-to-configuration`
//! writes a marker. Generations 1 and 2 deploy; a 3 whose switch exits 1 and a 4 that fails
//! its health check are reverted to 2 (profile on 2's path, marker says 2, no rebuild); a kill
//! -9 between the gate and the commit ends consistently. What only a real NixOS host proves
//! (bootloader entries, real units) is listed in docs/nixos.md.

mod common;
use common::git::Upstream;

use std::path::{Path, PathBuf};
use std::process::Command;

fn available() -> bool {
    if Command::new("nix").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    common::missing("Nix is not installed", "run .ci/setup (apt-get install nix-bin)")
}

/// A flake whose system's switch-to-configuration writes `gen<N> <health> <action>` to the
/// marker and exits with `code`; its `dry-activate` prints the units it would start and
/// exits 0.
fn flake(n: u32, health: &str, code: u32, marker: &Path) -> String {
    flake_dry(n, health, code, 0, marker)
}

/// The same, with `dry-activate` exiting `dry_code`.
fn flake_dry(n: u32, health: &str, code: u32, dry_code: u32, marker: &Path) -> String {
    format!(
        r#"{{
  outputs = {{ self }}: {{
    nixosConfigurations.web-1.config.system.build.toplevel = derivation {{
      name = "nixos-system-web-1-gen{n}";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo building gen{n} && /bin/mkdir -p $out/bin && printf '#!/bin/sh\nif [ \"$1\" = dry-activate ]; then echo would start the following units: gen{n}.service; echo would restart the following units: nginx.service; exit {dry_code}; fi\necho gen{n} {health} $1 > {marker}\nexit {code}\n' > $out/bin/switch-to-configuration && /bin/chmod +x $out/bin/switch-to-configuration" ];
    }};
  }};
}}
"#,
        marker = marker.display()
    )
}

fn state(profile: &Path, marker: &Path) -> String {
    format!(
        "apiVersion: driftless/v1\nkind: NixosSystem\nmetadata: {{ name: system }}\nspec:\n  flake: .\n  host: web-1\n  profile: {}\n  health:\n    - exec: [\"/bin/sh\", \"-c\", \"grep -q ' ok ' {}\"]\n      timeout: 3s\n      interval: 200ms\n",
        profile.display(),
        marker.display()
    )
}

fn once(config: &Path, failpoint: Option<&str>) -> common::Run {
    let mut cmd = common::agentd();
    cmd.arg("--config").arg(config).arg("--once");
    cmd.env("NIX_CONFIG", NIX_CONFIG);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    if let Some(f) = failpoint {
        common::needs_failpoints();
        cmd.env("DRIFTLESS_FAILPOINT", f);
    }
    common::run(&mut cmd)
}

/// An agent config in `dir` following `up`'s main (state and socket in `dir` too).
fn agent_config(dir: &Path, up: &Upstream) -> PathBuf {
    let config = dir.join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "host: e2e\nsource:\n  url: \"{}\"\n  ref: {{ branch: main }}\n  path: hosts/web-1\nstate_dir: {}\ncontrol_socket: {}\n",
            up.file_url(),
            dir.join("state").display(),
            dir.join("agent.sock").display()
        ),
    )
    .unwrap();
    config
}

/// This machine's Nix: single-user as root, no nixbld group, no binary cache, no sandbox.
const NIX_CONFIG: &str = "sandbox = false\nbuild-users-group =\nsubstituters =\n";

/// What every test starts from: a temporary folder with the marker the stand-in system's
/// switch writes and the profile it is installed in, an upstream repository, and an agent
/// config following it.
struct Fixture {
    tmp: tempfile::TempDir,
    marker: PathBuf,
    profile: PathBuf,
    up: Upstream,
    config: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("marker");
    let profile = tmp.path().join("profiles/system");
    let up = Upstream::new();
    let config = agent_config(tmp.path(), &up);
    Fixture { tmp, marker, profile, up, config }
}

fn live(profile: &Path) -> PathBuf {
    std::fs::canonicalize(profile).unwrap()
}

fn generation(profile: &Path) -> String {
    std::fs::read_link(profile).unwrap().display().to_string()
}

#[test]
fn generations_deploy_failures_revert_without_rebuild_and_kill_9_ends_consistently() {
    if !available() {
        return;
    }
    let Fixture { tmp, marker, profile, up, config } = fixture();
    let deploy = |n: u32, health: &str, code: u32| {
        up.commit(
            &[("flake.nix", &flake(n, health, code, &marker)), ("hosts/web-1/system.yaml", &state(&profile, &marker))],
            &format!("gen{n}"),
        )
    };
    let marker_text = || std::fs::read_to_string(&marker).unwrap_or_default().trim().to_string();

    deploy(1, "ok", 0);
    let r = once(&config, None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(marker_text(), "gen1 ok switch");
    assert!(r.stderr.contains("building gen1"), "nix build output is streamed: {}", r.stderr);
    assert!(generation(&profile).ends_with("system-1-link"), "{}", generation(&profile));

    deploy(2, "ok", 0);
    let r = once(&config, None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(marker_text(), "gen2 ok switch");
    assert!(generation(&profile).ends_with("system-2-link"));
    let gen2 = live(&profile);
    assert!(gen2.display().to_string().contains("gen2"));

    // 3: switch-to-configuration exits 1 → reverted to 2.
    deploy(3, "ok", 1);
    let r = once(&config, None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("RolledBack"), "{}", r.stdout);
    assert!(r.stdout.contains("switch-to-configuration test exited with 1"), "{}", r.stdout);
    assert_eq!(live(&profile), gen2, "the profile points to 2's path");
    assert_eq!(marker_text(), "gen2 ok switch");

    // 4: activates, fails its health check → reverted to 2; the bootloader never saw 4.
    deploy(4, "sick", 0);
    let r = once(&config, None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("health check 1"), "{}", r.stdout);
    assert_eq!(live(&profile), gen2);
    assert_eq!(marker_text(), "gen2 ok switch");
    assert!(generation(&profile).ends_with("system-2-link"), "no generation was added for 3 or 4");

    // No rebuild to revert: 2 was built once.
    let reg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("state/nixos.json")).unwrap()).unwrap();
    let builds = reg["system"]["builds"].as_object().unwrap();
    let gen2_builds = builds.values().filter(|p| p.as_str().unwrap().contains("gen2")).count();
    assert_eq!(gen2_builds, 1);
    assert!(std::fs::read_dir(tmp.path().join("state/nixos-roots")).unwrap().count() >= 2, "GC roots under state_dir");

    // kill -9 between the gate and the commit of 5: the next start ends on 5, consistently.
    deploy(5, "ok", 0);
    let r = once(&config, Some("nixos-before-commit"));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("failpoint nixos-before-commit"), "{}", r.stderr);
    assert_eq!(live(&profile), gen2, "the profile is untouched until the commit");
    assert_eq!(marker_text(), "gen5 ok test", "5 was only test-activated");
    let r = once(&config, None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("found an unfinished apply"), "{}", r.stderr);
    assert!(live(&profile).display().to_string().contains("gen5"));
    assert_eq!(marker_text(), "gen5 ok switch");
    assert!(generation(&profile).ends_with("system-3-link"));
    let h = std::fs::read_to_string(tmp.path().join("state/state.json")).unwrap();
    assert!(h.contains("NixosSystem/system: generation 3, /nix/store/"), "generation and store path in the history");

    // Drift: someone switched by hand to an older generation; the agent puts 5 back.
    let out = Command::new("nix-env").arg("-p").arg(&profile).arg("--set").arg(&gen2).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = once(&config, None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("repaired 1 drifted resource"), "{}", r.stdout);
    assert!(live(&profile).display().to_string().contains("gen5"));
    assert_eq!(marker_text(), "gen5 ok switch");
}

#[test]
fn dry_activate_is_recorded_a_failing_one_changes_nothing_and_old_generations_are_released() {
    if !available() {
        return;
    }
    let Fixture { tmp, marker, profile, up, config } = fixture();
    let spec = state(&profile, &marker).replace("  health:", "  keep_generations: 2\n  health:");
    let mut built: Vec<PathBuf> = Vec::new();
    for n in 1..=10u32 {
        up.commit(
            &[("flake.nix", &flake(n, "ok", 0, &marker)), ("hosts/web-1/system.yaml", &spec)],
            &format!("gen{n}"),
        );
        let r = once(&config, None);
        assert_eq!(r.code, 0, "gen{n}: {}{}", r.stdout, r.stderr);
        built.push(live(&profile));
    }
    let r = once(&config, None);
    assert_eq!(r.code, 0);
    // What dry-activate said is in the history entry (and was streamed).
    let st = std::fs::read_to_string(tmp.path().join("state/state.json")).unwrap();
    assert!(st.contains("dry-activate: start: gen10.service; restart: nginx.service"), "{st}");
    // Released: GC roots and profile generations beyond the newest 2.
    let roots = std::fs::read_dir(tmp.path().join("state/nixos-roots")).unwrap().count();
    assert!(roots <= 2, "{roots} GC roots kept");
    let gens: Vec<String> = std::fs::read_dir(profile.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("system-") && n.ends_with("-link"))
        .collect();
    assert!(gens.len() <= 2, "profile generations kept: {gens:?}");

    // A real garbage collection frees the released systems and keeps the live one.
    let size = |paths: &[PathBuf]| -> u64 {
        paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| std::fs::metadata(p.join("bin/switch-to-configuration")).map(|m| m.len()).unwrap_or(0) + 4096)
            .sum()
    };
    let before = size(&built);
    let gc = Command::new("nix-store").arg("--gc").env("NIX_CONFIG", NIX_CONFIG).output().unwrap();
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let kept: Vec<&PathBuf> = built.iter().filter(|p| p.exists()).collect();
    eprintln!(
        "ten revisions: {} system paths rooted without pruning ({before} bytes); after pruning and nix-store --gc: {} kept ({} bytes)",
        built.len(),
        kept.len(),
        size(&kept.iter().map(|p| (*p).clone()).collect::<Vec<_>>())
    );
    assert!(built[9].exists(), "the live system is kept");
    assert!(!built[0].exists() && !built[5].exists(), "old systems are freed");
    let roots_of_live = Command::new("nix-store").arg("-q").arg("--roots").arg(&built[9]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&roots_of_live.stdout).contains("nixos-roots"),
        "{}",
        String::from_utf8_lossy(&roots_of_live.stdout)
    );

    // 11 is built and dry-activated, then its switch fails: reverted to 10. With the daemon
    // up, `agentctl diff` shows what 11's switch would do (it is built), and `status` the
    // generation the host runs.
    up.commit(
        &[("flake.nix", &flake(11, "ok", 1, &marker)), ("hosts/web-1/system.yaml", &spec)],
        "gen11 fails to switch",
    );
    let r = once(&config, None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    {
        let mut daemon = common::agentd();
        daemon
            .arg("--config")
            .arg(&config)
            .env("NIX_CONFIG", NIX_CONFIG)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = daemon.spawn().unwrap();
        let ctl = |args: &[&str]| common::run(common::agentctl().arg("--config").arg(&config).args(args));
        // Wait for the start-up cycle to have observed the system (the socket answers before).
        let t = std::time::Instant::now();
        let (status, detail) = loop {
            let r = ctl(&["status", "--json"]);
            if r.code == 0 {
                let status: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
                let detail = status["resources"][0]["detail"].as_str().unwrap_or_default().to_string();
                if status["last_sync"].is_string() && !detail.is_empty() {
                    break (status, detail);
                }
            }
            assert!(t.elapsed() < std::time::Duration::from_secs(30), "no start-up cycle within 30 s: {}", r.stdout);
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert!(detail.contains("generation") && detail.contains("gen10"), "{status}");
        let diff = ctl(&["diff"]);
        assert_eq!(diff.code, 2, "{}{}", diff.stdout, diff.stderr);
        assert!(diff.stdout.contains("dry-activate: start: gen11.service; restart: nginx.service"), "{}", diff.stdout);
        let _ = child.kill();
        let _ = child.wait();
    }

    // A dry-activate that fails is a verdict before anything changes.
    up.commit(
        &[("flake.nix", &flake_dry(12, "ok", 0, 3, &marker)), ("hosts/web-1/system.yaml", &spec)],
        "gen12 breaks dry-activate",
    );
    let before_marker = std::fs::read_to_string(&marker).unwrap();
    let r = once(&config, None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("dry-activate exited with 3"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), before_marker, "nothing was activated");
    assert_eq!(live(&profile), built[9]);
}

/// The fault-matrix row "a Nix out-link whose store path was garbage-collected": the agent
/// recorded a build for gen1's spec; its out-link is removed by hand, its profile generation
/// deleted and the store path collected. A revision that returns to gen1's spec must not
/// reuse the recorded (now missing) path: it is built again and applied.
#[test]
fn a_recorded_build_whose_store_path_was_collected_is_built_again() {
    if !available() {
        return;
    }
    let Fixture { tmp, marker, profile, up, config } = fixture();
    let spec = state(&profile, &marker);
    for n in [1u32, 2] {
        up.commit(
            &[("flake.nix", &flake(n, "ok", 0, &marker)), ("hosts/web-1/system.yaml", &spec)],
            &format!("gen{n}"),
        );
        let r = once(&config, None);
        assert_eq!(r.code, 0, "gen{n}: {}{}", r.stdout, r.stderr);
    }
    let registry = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(tmp.path().join("state/nixos.json")).unwrap()).unwrap()
    };
    let gen1: PathBuf = registry()["system"]["builds"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|p| p.as_str())
        .find(|p| p.contains("gen1"))
        .map(PathBuf::from)
        .expect("gen1's build is recorded");
    assert!(gen1.exists());

    // Its out-link removed by hand, its profile generation deleted, the path collected.
    for e in std::fs::read_dir(tmp.path().join("state/nixos-roots")).unwrap() {
        let link = e.unwrap().path();
        if std::fs::canonicalize(&link).is_ok_and(|t| t == gen1) {
            std::fs::remove_file(&link).unwrap();
        }
    }
    let out = Command::new("nix-env").arg("-p").arg(&profile).args(["--delete-generations", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("nix-store").arg("--delete").arg(&gen1).env("NIX_CONFIG", NIX_CONFIG).output().unwrap();
    assert!(out.status.success(), "gen1 is no longer alive: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!gen1.exists(), "collected");
    assert!(registry().to_string().contains(&gen1.display().to_string()), "still recorded");

    // Back to gen1's spec: built again, activated, health-checked, committed.
    up.commit(&[("flake.nix", &flake(1, "ok", 0, &marker)), ("hosts/web-1/system.yaml", &spec)], "back to gen1");
    let r = once(&config, None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("building gen1"), "rebuilt, not reused: {}", r.stderr);
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "gen1 ok switch");
    assert_eq!(live(&profile), gen1, "the same derivation, the same path, present again");
}

#[test]
fn the_example_nixos_module_parses() {
    if !available() {
        return;
    }
    let module = common::root().join("examples/nixos/module.nix");
    let out = Command::new("nix-instantiate").arg("--parse").arg(&module).output().unwrap();
    assert!(out.status.success(), "{}: {}", module.display(), String::from_utf8_lossy(&out.stderr));
}
