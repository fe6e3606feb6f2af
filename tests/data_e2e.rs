//! Data comes back with the revision (PRODUCT.md behaviour 11), end to end on the real
//! engine with a real PostgreSQL (Debian's packages in a locally built image): a revision
//! whose migration alters a table and whose app then fails its gate is reverted with the
//! table exactly as before it, the failed attempt's data kept as a snapshot that
//! `agentctl restore` brings back; a snapshot taken with `consistency: pause` while a writer
//! inserts rows starts and passes `pg_amcheck`; `kill -9` in the middle of a snapshot and of
//! a restore leaves each volume as it was or restored, never half of each.

mod common;
use common::agent::Agent;
use common::docker::{self, clear_managed, docker, http_get, setup, EngineStopped, IMAGE};
use common::git::{free_port, Upstream};

use std::process::Command;
use std::time::{Duration, Instant};

const PG_IMAGE: &str = "driftless-test/postgres:15";
const VOLUME: &str = "driftless-e2e-pgdata";

/// Build the PostgreSQL image once (from the host's postgresql-15 packages).
fn ensure_pg_image() -> bool {
    if docker::docker(&["image", "inspect", PG_IMAGE]).0 == 0 {
        return true;
    }
    if !std::path::Path::new("/usr/lib/postgresql/15/bin/postgres").exists() {
        return common::missing("PostgreSQL 15 (Debian's postgresql-15)", "run .ci/setup (it installs postgresql)");
    }
    let script = common::root().join("examples/data/build-postgres-image.sh");
    let out = Command::new("flock")
        .arg("/tmp/driftless-test-pg-image.lock")
        .arg("sh")
        .arg("-c")
        .arg(format!("docker image inspect {PG_IMAGE} >/dev/null 2>&1 || {} {PG_IMAGE}", script.display()))
        .output()
        .expect("flock runs");
    assert!(out.status.success(), "building {PG_IMAGE}: {}", String::from_utf8_lossy(&out.stderr));
    true
}

/// The desired state: PostgreSQL on a snapshotted volume, a one-shot migration, a writer
/// that inserts a row into `ticks` every 20 ms (with `writer`), and an app whose page says
/// `version {v}` (`app_pre` runs before its server: `exit 3;` breaks it).
fn state(v: &str, migration: &str, app_pre: &str, port: u16, writer: bool) -> String {
    let mut s = format!(
        r#"apiVersion: driftless/v1
kind: Volume
metadata: {{ name: {VOLUME} }}
spec:
  snapshot: {{ keep: 4, consistency: pause }}
---
apiVersion: driftless/v1
kind: Container
metadata: {{ name: db }}
spec:
  image: {PG_IMAGE}
  pull: never
  volumes: ["{VOLUME}:/var/lib/postgresql/data"]
  networks: [driftless-e2e-data]
  stop_timeout: 10s
  health:
    - exec: [docker, exec, db, pg_isready, -q, -h, /tmp]
      timeout: 60s
---
apiVersion: driftless/v1
kind: Container
metadata: {{ name: migrate }}
spec:
  image: {PG_IMAGE}
  pull: never
  oneshot: true
  networks: [driftless-e2e-data]
  command: [psql, -v, ON_ERROR_STOP=1, -h, db, -U, postgres, -c, "{migration}"]
  depends_on: [{{ name: db, condition: healthy }}]
---
apiVersion: driftless/v1
kind: Container
metadata: {{ name: app }}
spec:
  image: {IMAGE}
  pull: never
  command: ["sh", "-c", "{app_pre} mkdir -p /www && echo 'version {v}' > /www/index.html && exec httpd -f -p 8080 -h /www"]
  ports: ["127.0.0.1:{port}:8080"]
  stop_timeout: 1s
  depends_on: [{{ name: migrate, condition: completed }}]
  health:
    - http: {{ url: "http://127.0.0.1:{port}/", body_contains: "version {v}" }}
      timeout: 10s
"#
    );
    if writer {
        s.push_str(&format!(
            r#"---
apiVersion: driftless/v1
kind: Container
metadata: {{ name: writer }}
spec:
  image: {PG_IMAGE}
  pull: never
  networks: [driftless-e2e-data]
  stop_timeout: 1s
  depends_on: [{{ name: migrate, condition: completed }}]
  command: [sh, -c, "while true; do psql -q -h db -U postgres -c 'insert into ticks(at) values (now())' >/dev/null 2>&1; sleep 0.02; done"]
"#
        ));
    }
    s
}

const V1: &str = "create table if not exists items(id int primary key, name text); insert into items select g, 'item ' || g from generate_series(1, 50) g on conflict do nothing; create table if not exists ticks(at timestamptz)";
const V2: &str =
    "alter table items add column price int; update items set price = id * 10; delete from items where id > 40";

/// `psql -At -c sql` in the `db` container.
fn sql(q: &str) -> String {
    let (code, out) = docker(&["exec", "db", "psql", "-h", "/tmp", "-U", "postgres", "-At", "-c", q]);
    assert_eq!(code, 0, "psql {q}: {out}");
    out
}

/// Wait until PostgreSQL in `db` answers queries.
fn wait_db(agent: &Agent) {
    common::wait_for(
        "PostgreSQL in db to accept queries",
        Duration::from_secs(60),
        || docker(&["exec", "db", "pg_isready", "-q", "-h", "/tmp"]).0 == 0,
        || agent.log_text(),
    );
}

/// v1 (`text`) committed, and an agent started on it (with `env`) until it is Synced and
/// PostgreSQL answers; the agent and v1's commit.
fn serve_v1(up: &Upstream, text: &str, env: &[(&str, &str)]) -> (Agent, String) {
    let c1 = up.commit(&[("hosts/e2e/app.yaml", text)], "v1");
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start_with(env);
    agent.wait_phase("Synced", Duration::from_secs(120));
    wait_db(&agent);
    (agent, c1)
}

fn items_shape() -> (String, String) {
    (
        sql("select count(*) || ' rows, max ' || max(id) from items"),
        sql("select string_agg(column_name, ',' order by ordinal_position) from information_schema.columns where table_name = 'items'"),
    )
}

fn snapshots(agent: &Agent) -> Vec<serde_json::Value> {
    let r = agent.ctl(&["snapshots", "--json"]);
    assert_eq!(r.code, 0, "snapshots: {}{}", r.stdout, r.stderr);
    serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap().as_array().cloned().unwrap_or_default()
}

fn cleanup() {
    clear_managed();
    docker(&["volume", "rm", "-f", VOLUME]);
    docker(&["network", "rm", "driftless-e2e-data"]);
}

#[test]
fn a_failed_migration_is_reverted_with_its_data_and_the_failed_attempt_can_be_restored() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    cleanup();
    let port = free_port();
    let up = Upstream::new();
    let (agent, c1) = serve_v1(&up, &state("1", V1, "", port, true), &[]);
    // The first revision made the volume: there was nothing to snapshot before it.
    assert!(agent.log_text().contains("does not exist yet: nothing to snapshot"), "{}", agent.log_text());
    let before_v2 = items_shape();
    assert_eq!(before_v2, ("50 rows, max 50".to_string(), "id,name".to_string()));
    // The writer inserts all along.
    common::wait_for(
        "the writer to insert",
        Duration::from_secs(30),
        || sql("select count(*) from ticks") != "0",
        || agent.log_text(),
    );

    // v2: its migration alters the table, and its app fails its gate.
    let c2 = up.commit(&[("hosts/e2e/app.yaml", &state("2", V2, "exit 3;", port, true))], "v2: prices");
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "v2 is rolled back: {}{}\n{}", r.stdout, r.stderr, agent.log_text());
    let s = agent.wait_phase("RolledBack", Duration::from_secs(120));
    assert_eq!(s["applied_revision"], c1.as_str());
    wait_db(&agent);
    assert_eq!(items_shape(), before_v2, "the table is exactly as before v2");

    // The snapshots: v2's `before` (taken while v1 ran) and its failed attempt.
    let list = snapshots(&agent);
    let failed: Vec<&serde_json::Value> = list.iter().filter(|s| s["kind"] == "failed-attempt").collect();
    assert_eq!(failed.len(), 1, "{list:?}");
    assert_eq!(failed[0]["revision"], c2.as_str());
    assert_eq!(failed[0]["volume"], VOLUME);
    let before: Vec<&serde_json::Value> =
        list.iter().filter(|s| s["kind"] == "before" && s["revision"] == c2.as_str()).collect();
    assert_eq!(before.len(), 1, "{list:?}");
    assert_eq!(before[0]["running"], c1.as_str());
    assert!(before[0]["bytes"].as_u64().unwrap() > 1_000_000, "a real cluster: {}", before[0]);
    // The history says what was restored, from when, and where the failed attempt's data is.
    let h = agent.ctl(&["history", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let entry = &entries[0];
    assert_eq!(entry["result"], "rolled_back", "{entry}");
    let msg = entry["message"].as_str().unwrap();
    let failed_id = failed[0]["id"].as_str().unwrap();
    assert!(
        msg.contains(&format!("volume {VOLUME} restored from snapshot {}", before[0]["id"].as_str().unwrap())),
        "{msg}"
    );
    assert!(msg.contains(failed_id), "{msg}");
    // The restored cluster is consistent although the writer was writing when it was taken.
    let (code, out) = docker(&[
        "exec",
        "db",
        "pg_amcheck",
        "-h",
        "/tmp",
        "-U",
        "postgres",
        "--install-missing",
        "--heapallindexed",
        "postgres",
    ]);
    assert_eq!(code, 0, "pg_amcheck on the restored cluster: {out}");
    assert!(sql("select count(*) from ticks").parse::<u64>().unwrap() > 0);

    // `agentctl restore` of the failed attempt brings the altered table back, the data it
    // replaces snapshotted first.
    let r = agent.ctl(&["restore", failed_id]);
    assert_eq!(r.code, 0, "restore: {}{}\n{}", r.stdout, r.stderr, agent.log_text());
    wait_db(&agent);
    assert_eq!(items_shape(), ("40 rows, max 40".to_string(), "id,name,price".to_string()));
    let list = snapshots(&agent);
    assert!(
        list.iter().any(|s| s["kind"] == "before" && s["note"] == format!("before restoring {failed_id}")),
        "{list:?}"
    );
    let h = agent.ctl(&["history", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    assert_eq!(entries[0]["trigger"], "manual", "{}", entries[0]);
    assert!(entries[0]["message"].as_str().unwrap().contains(failed_id), "{}", entries[0]);
    // The text listing names every snapshot.
    let r = agent.ctl(&["snapshots", VOLUME]);
    assert!(r.stdout.contains("failed-attempt") && r.stdout.contains(failed_id), "{}", r.stdout);
    drop(agent);
    cleanup();
}

/// kill -9 at `failpoint` (a step of a snapshot or of a restore) while v2 is applied and
/// reverted; restart: the host ends on v1 with the table as before v2, nothing left paused,
/// and the snapshot the revert needs still there.
fn crash_in_a_data_step(failpoint: &str) {
    cleanup();
    let port = free_port();
    let up = Upstream::new();
    let (mut agent, c1) = serve_v1(&up, &state("1", V1, "", port, false), &[]);
    let before_v2 = items_shape();
    agent.kill9();

    up.commit(&[("hosts/e2e/app.yaml", &state("2", V2, "exit 3;", port, false))], "v2");
    common::needs_failpoints();
    agent.spawn(&[("DRIFTLESS_FAILPOINT", failpoint)]);
    let status = agent.wait_exit(Duration::from_secs(120));
    assert!(!status.success(), "agentd should have aborted at {failpoint}: {}", agent.log_text());
    assert!(agent.state_dir().join("journal.json").exists(), "the journal survives the crash");

    agent.start();
    let s = agent.wait_phase("RolledBack", Duration::from_secs(180));
    assert_eq!(s["applied_revision"], c1.as_str(), "{failpoint}: {s}");
    wait_db(&agent);
    assert_eq!(items_shape(), before_v2, "{failpoint}: the table is as before v2");
    let (_, paused) = docker(&["ps", "-q", "--filter", "status=paused"]);
    assert!(paused.trim().is_empty(), "{failpoint}: nothing is left paused: {paused}");
    assert!(!agent.state_dir().join("journal.json").exists(), "the journal is finished");
    let list = snapshots(&agent);
    assert!(list.iter().any(|s| s["kind"] == "failed-attempt"), "{failpoint}: {list:?}");
    let partials = std::fs::read_dir(agent.state_dir().join("snapshots"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(partials, 0, "{failpoint}: no partial snapshot left");
    drop(agent);
    cleanup();
}

#[test]
fn kill_9_while_the_before_snapshot_holds_the_database_paused() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    crash_in_a_data_step("snapshot-held#1");
}

#[test]
fn kill_9_after_the_restore_emptied_the_volume() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    crash_in_a_data_step("restore-created#1");
}

#[test]
fn kill_9_after_the_failed_attempt_was_snapshotted() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    // The second snapshot taken in the process: the failed attempt's.
    crash_in_a_data_step("snapshot-taken#2");
}

/// Fault: the snapshots folder (a 16 MiB tmpfs) cannot hold the database's snapshot. The
/// agent says so before anything is touched (the app still serves v1, nothing is failed);
/// once the folder has room, v2 is applied by itself.
#[test]
fn a_snapshots_folder_without_room_is_a_fault_before_anything_is_touched() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    cleanup();
    let port = free_port();
    let up = Upstream::new();
    up.commit(&[("hosts/e2e/app.yaml", &state("1", V1, "", port, false))], "v1");
    let dir = tempfile::tempdir().unwrap();
    let snapdir = dir.path().join("snapshots");
    std::fs::create_dir_all(&snapdir).unwrap();
    let mut agent =
        Agent::configure(&up.file_url(), "{ branch: main }", &format!("snapshots: {{ dir: {} }}\n", snapdir.display()));
    let out = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"]).arg(&snapdir).output().unwrap();
    assert!(out.status.success(), "mount a tmpfs (the data tests need root): {}", String::from_utf8_lossy(&out.stderr));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(snapdir.clone());
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(120));
    wait_db(&agent);
    let c2 = up.commit(&[("hosts/e2e/app.yaml", &state("2", V1, "", port, false))], "v2: a new page");
    let _ = agent.ctl(&["sync"]);
    let s = agent.wait_phase_message(
        "Degraded",
        "not enough free space for a snapshot of volume",
        Duration::from_secs(120),
    );
    assert_eq!(s["failed_revisions"], serde_json::json!([]), "{s}");
    assert!(http_get(port).contains("version 1"), "nothing was touched");
    let (_, paused) = docker(&["ps", "-q", "--filter", "status=paused"]);
    assert!(paused.trim().is_empty(), "nothing is left paused");
    let out = Command::new("mount").args(["-o", "remount,size=512m"]).arg(&snapdir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = Instant::now();
    while agent.status()["applied_revision"] != c2.as_str() || agent.status()["phase"] != "Synced" {
        assert!(t.elapsed() < Duration::from_secs(120), "v2 applied once there is room: {}", agent.log_text());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(http_get(port).contains("version 2"));
    assert_eq!(snapshots(&agent).len(), 1, "v2's before snapshot");
    drop(agent);
    cleanup();
}

/// Fault: the engine stops just before a revert's restore. The revert's journal stays
/// (`Degraded`, the broken revision failed for its own verdict); once the engine is back the
/// restore and the revert are finished: the table as before v2.
#[test]
fn the_engine_gone_during_a_restore_is_finished_once_it_returns() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    cleanup();
    let port = free_port();
    let up = Upstream::new();
    common::needs_failpoints();
    let (agent, c1) = serve_v1(&up, &state("1", V1, "", port, false), &[("DRIFTLESS_PAUSEPOINT", "restore")]);
    let before_v2 = items_shape();
    up.commit(&[("hosts/e2e/app.yaml", &state("2", V2, "exit 3;", port, false))], "v2");
    let _ = agent.ctl(&["sync"]);
    agent.wait_log("pausepoint restore: waiting", 1, Duration::from_secs(120));
    let mut engine = EngineStopped::stop();
    let s = agent.wait_phase_message("Degraded", "Docker is not reachable", Duration::from_secs(120));
    assert_eq!(s["failed_revisions"].as_array().map(Vec::len), Some(1), "v2 failed for its own verdict: {s}");
    assert!(agent.state_dir().join("journal.json").exists(), "the revert's journal stays");
    engine.start();
    let s = agent.wait_phase("RolledBack", Duration::from_secs(180));
    assert_eq!(s["applied_revision"], c1.as_str());
    wait_db(&agent);
    assert_eq!(items_shape(), before_v2, "the table is as before v2");
    drop(agent);
    cleanup();
}

/// `agentctl rollback REV --restore-data`: v2's migration altered the table and v2 passed
/// its gate (committed); rolling back to v1 with `--restore-data` puts the table back as it
/// was while v1 ran (the `before` snapshot taken before v2), the data v2 wrote snapshotted
/// first; without a snapshot taken while the target ran, the rollback is refused untouched.
#[test]
fn rollback_with_restore_data_puts_the_table_back_as_it_was_while_that_revision_ran() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    cleanup();
    let port = free_port();
    let up = Upstream::new();
    let (agent, c1) = serve_v1(&up, &state("1", V1, "", port, false), &[]);
    let before_v2 = items_shape();
    let c2 = up.commit(&[("hosts/e2e/app.yaml", &state("2", V2, "", port, false))], "v2: prices, good");
    agent.sync(0);
    let s = agent.wait_phase("Synced", Duration::from_secs(120));
    assert_eq!(s["applied_revision"], c2.as_str());
    wait_db(&agent);
    assert_eq!(items_shape(), ("40 rows, max 40".to_string(), "id,name,price".to_string()));
    // v2 ran before anything was snapshotted while it ran: rolling back to v2 with data is
    // refused, and nothing changes.
    let r = agent.ctl(&["rollback", &c2, "--restore-data"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no snapshot of volume"), "{}", r.stderr);
    assert_eq!(agent.status()["pinned_revision"], serde_json::Value::Null, "refused before the pin");
    let r = agent.ctl(&["rollback", &c1, "--restore-data"]);
    assert_eq!(r.code, 0, "{}{}\n{}", r.stdout, r.stderr, agent.log_text());
    wait_db(&agent);
    assert_eq!(agent.status()["applied_revision"], c1.as_str());
    assert_eq!(items_shape(), before_v2, "the table as it was while v1 ran");
    assert!(http_get(port).contains("version 1"));
    let list = snapshots(&agent);
    assert!(list.iter().any(|s| s["note"].as_str().is_some_and(|n| n.starts_with("before restoring"))), "{list:?}");
    drop(agent);
    cleanup();
}

/// A compose service's relative data folder with `x-driftless.snapshot`: v2 overwrites a
/// file in it and fails its gate; the revert puts the folder back as it was before v2, and
/// keeps v2's as a failed-attempt snapshot.
#[test]
fn a_compose_data_folder_comes_back_with_the_revert() {
    let Some(_g) = setup() else { return };
    let port = free_port();
    let compose = |v: &str, run: &str| {
        format!(
            r#"services:
  app:
    image: {IMAGE}
    pull_policy: never
    stop_grace_period: 1s
    command: ["sh", "-c", "{run} mkdir -p /www && cp /data/notes /www/index.html && echo ' {v}' >> /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: ["127.0.0.1:{port}:8080"]
    volumes:
      - type: bind
        source: ./data
        target: /data
        x-driftless:
          snapshot: {{ keep: 3 }}
    x-driftless:
      health:
        - http: {{ url: "http://127.0.0.1:{port}/", body_contains: " {v}" }}
          timeout: 10s
"#
        )
    };
    let up = Upstream::new();
    let c1 = up.commit(
        &[("hosts/e2e/compose.yaml", &compose("v1", "[ -f /data/notes ] || echo first notes > /data/notes;"))],
        "v1",
    );
    let mut agent = Agent::configure(&up.file_url(), "{ branch: main }", "");
    agent.start();
    agent.wait_phase("Synced", Duration::from_secs(60));
    let notes = agent.state_dir().join("files/_shared/hosts/e2e/data/notes");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "first notes\n");
    let c2 =
        up.commit(&[("hosts/e2e/compose.yaml", &compose("v2", "echo migrated by v2 > /data/notes; exit 3;"))], "v2");
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "{}{}\n{}", r.stdout, r.stderr, agent.log_text());
    let s = agent.wait_phase("RolledBack", Duration::from_secs(60));
    assert_eq!(s["applied_revision"], c1.as_str());
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "first notes\n", "the folder as before v2");
    assert!(http_get(port).contains("first notes"));
    let list = snapshots(&agent);
    let failed = list.iter().find(|s| s["kind"] == "failed-attempt").expect("a failed-attempt snapshot");
    assert_eq!(failed["volume"], "hosts_e2e_data.data");
    assert_eq!(failed["revision"], c2.as_str());
    let kept =
        agent.state_dir().join("snapshots").join(failed["id"].as_str().unwrap()).join("files/hosts/e2e/data/notes");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "migrated by v2\n");
    let h = agent.ctl(&["history", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    assert!(
        entries[0]["message"].as_str().unwrap().contains("files of hosts_e2e_data.data restored from snapshot"),
        "{}",
        entries[0]
    );
    drop(agent);
    clear_managed();
}

/// `consistency: { exec, restore }` on the real PostgreSQL: the snapshots are `pg_dump`s
/// taken in the running database container (nothing paused), and the revert puts the
/// table back with `pg_restore --clean`.
#[test]
fn an_exec_consistency_dumps_and_restores_through_the_database_itself() {
    let Some(_g) = setup() else { return };
    if !ensure_pg_image() {
        return;
    }
    cleanup();
    let exec = "{ exec: [pg_dump, -h, /tmp, -U, postgres, -Fc, postgres], restore: [pg_restore, -h, /tmp, -U, postgres, --clean, --if-exists, -d, postgres] }";
    let with_exec = |text: String| text.replace("consistency: pause", &format!("consistency: {exec}"));
    let port = free_port();
    let up = Upstream::new();
    let (agent, c1) = serve_v1(&up, &with_exec(state("1", V1, "", port, false)), &[]);
    let before_v2 = items_shape();
    let c2 = up.commit(&[("hosts/e2e/app.yaml", &with_exec(state("2", V2, "exit 3;", port, false)))], "v2");
    let r = agent.ctl(&["sync", "--wait"]);
    assert_eq!(r.code, 1, "{}{}\n{}", r.stdout, r.stderr, agent.log_text());
    let s = agent.wait_phase("RolledBack", Duration::from_secs(120));
    assert_eq!(s["applied_revision"], c1.as_str());
    wait_db(&agent);
    assert_eq!(items_shape(), before_v2, "pg_restore put the table back as before v2");
    let list = snapshots(&agent);
    let failed = list.iter().find(|s| s["kind"] == "failed-attempt").expect("a failed-attempt dump");
    assert_eq!(failed["consistency"], "exec");
    assert_eq!(failed["revision"], c2.as_str());
    let dump = agent.state_dir().join("snapshots").join(failed["id"].as_str().unwrap()).join("dump");
    let head = std::fs::read(&dump).unwrap();
    assert!(head.starts_with(b"PGDMP"), "a pg_dump archive");
    let log = agent.log_text();
    assert!(!log.contains("container(s) paused"), "exec pauses nothing");
    drop(agent);
    cleanup();
}
