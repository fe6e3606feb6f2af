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
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and Nix is not installed: run .ci/setup (apt-get install nix-bin)");
    }
    eprintln!("SKIPPED: nix is not installed");
    false
}

/// A flake whose system's switch-to-configuration writes `gen<N> <health> <action>` to the
/// marker and exits with `code`.
fn flake(n: u32, health: &str, code: u32, marker: &Path) -> String {
    format!(
        r#"{{
  outputs = {{ self }}: {{
    nixosConfigurations.web-1.config.system.build.toplevel = derivation {{
      name = "nixos-system-web-1-gen{n}";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo building gen{n} && /bin/mkdir -p $out/bin && printf '#!/bin/sh\necho gen{n} {health} $1 > {marker}\nexit {code}\n' > $out/bin/switch-to-configuration && /bin/chmod +x $out/bin/switch-to-configuration" ];
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
    // This machine's Nix: single-user as root, no nixbld group, no binary cache, no sandbox.
    cmd.env("NIX_CONFIG", "sandbox = false\nbuild-users-group =\nsubstituters =\n");
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    if let Some(f) = failpoint {
        cmd.env("DRIFTLESS_FAILPOINT", f);
    }
    common::run(&mut cmd)
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
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("marker");
    let profile = tmp.path().join("profiles/system");
    let up = Upstream::new();
    let config = tmp.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "host: e2e\nsource:\n  url: \"{}\"\n  ref: {{ branch: main }}\n  path: hosts/web-1\nstate_dir: {}\ncontrol_socket: {}\n",
            up.file_url(),
            tmp.path().join("state").display(),
            tmp.path().join("agent.sock").display()
        ),
    )
    .unwrap();
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
fn the_example_nixos_module_parses() {
    if !available() {
        return;
    }
    let module = common::root().join("examples/nixos/module.nix");
    let out = Command::new("nix-instantiate").arg("--parse").arg(&module).output().unwrap();
    assert!(out.status.success(), "{}: {}", module.display(), String::from_utf8_lossy(&out.stderr));
}
