//! Volume data through the engine (PRODUCT.md "Data: snapshots and restore"): snapshots and
//! restores of named volumes, with no host path of the engine's assumed. A snapshot of a
//! `pause` or `stop` volume is the engine's archive of the volume mounted read-only in a
//! helper container that is created and never started (`data.tar`, with `volume.json`: how
//! the volume was created); an `exec` snapshot is what the dump command printed (`dump`).
//! A restore stops and removes the containers that mount the volume, removes the volume,
//! creates it again as it was, and extracts the archive into it (owners kept): so a restore
//! cut short by a crash is run again from the start, and the volume never holds half of one
//! snapshot and half of the data it replaced.
//!
//! Architecture Invariant: the `holders` a snapshot pauses or stops are put back whatever
//! happened to the copy; only this agent's containers (its `host` label) are paused,
//! stopped or removed; a volume is removed only by `restore`, after its data was
//! snapshotted (the reconciler takes the `failed-attempt` or `before` snapshot first).

use std::collections::HashMap;
use std::path::Path;

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions, UploadToContainerOptions,
};
use desired_state_schema::Consistency;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::engine::Engine;
use super::errors::{is_not_found, is_transport, unreachable};
use super::instance::{LABEL_HOST, LABEL_STOP_TIMEOUT};
use crate::runtime::RuntimeError;
use crate::snapshots::{ContentFile, HashingFile, Manifest};

/// Where the helper container mounts the volume.
const MOUNT: &str = "/driftless-data";
/// The archive of a `pause` or `stop` snapshot.
const ARCHIVE: &str = "data.tar";
/// How the volume was created (driver, options, labels), to create it again on restore.
const VOLUME_JSON: &str = "volume.json";
/// What an `exec` snapshot's command printed.
const DUMP: &str = "dump";

/// How a volume was created.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Created {
    driver: String,
    options: HashMap<String, String>,
    labels: HashMap<String, String>,
}

fn what(volume: &str) -> String {
    format!("volume {volume}")
}

/// An engine answer during a data step: the host's trouble (a fault), never the revision's.
fn engine_fault(volume: &str, e: BollardError) -> RuntimeError {
    if is_transport(&e) {
        return unreachable(e);
    }
    RuntimeError::Engine { resource: what(volume), detail: e.to_string() }
}

fn host_fault(volume: &str, detail: String) -> RuntimeError {
    RuntimeError::Host { resource: what(volume), detail }
}

/// A container that mounts a volume.
struct Mounter {
    name: String,
    /// Labelled with this agent's `host`.
    ours: bool,
    running: bool,
    image: String,
    /// Seconds a stop waits (its `driftless.stop-timeout` label; 10 without one).
    stop_timeout: i32,
}

/// Every container that mounts `volume`, by name.
async fn mounting(engine: &Engine, volume: &str) -> Result<Vec<Mounter>, RuntimeError> {
    let api = engine.api().await?;
    let mut filters = HashMap::new();
    filters.insert("volume".to_string(), vec![volume.to_string()]);
    let list = api
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .map_err(|e| engine_fault(volume, e))?;
    let mut out: Vec<Mounter> = list
        .into_iter()
        .filter_map(|c| {
            Some(Mounter {
                ours: c.labels.as_ref().and_then(|l| l.get(LABEL_HOST)).is_some_and(|h| *h == engine.host),
                name: c.names.as_ref()?.first()?.trim_start_matches('/').to_string(),
                running: c.state.as_ref().is_some_and(|s| s.to_string() == "running"),
                image: c.image_id.clone().unwrap_or_default(),
                stop_timeout: c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_STOP_TIMEOUT))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(10),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The running containers of this agent that mount `volume`.
pub(super) async fn holders(engine: &Engine, volume: &str) -> Result<Vec<String>, RuntimeError> {
    Ok(mounting(engine, volume).await?.into_iter().filter(|m| m.running && m.ours).map(|m| m.name).collect())
}

/// About how many bytes `volume` holds: the size of what lies under its mount point where
/// the agent can read it (the engine on this host, as root); 0 when it cannot (the engine's
/// disk-usage answer changed shape across API versions, so it is not asked).
pub(super) async fn size(engine: &Engine, volume: &str) -> Result<u64, RuntimeError> {
    let api = engine.api().await?;
    let inspected = match api.inspect_volume(volume).await {
        Ok(v) => v,
        Err(e) if is_not_found(&e) => return Ok(0),
        Err(e) => return Err(engine_fault(volume, e)),
    };
    let root = std::path::PathBuf::from(inspected.mountpoint);
    Ok(tokio::task::spawn_blocking(move || crate::fsutil::tree_size(&root)).await.unwrap_or(0))
}

/// The helper container's name for `volume` (one per volume and agent).
fn helper_name(engine: &Engine, volume: &str) -> String {
    format!("driftless-data-{}-{volume}", engine.host)
}

/// Create (never start) the helper container that mounts `volume` at `MOUNT`, from `image`
/// (one the host has: what mounts the volume runs it); a stale one is removed first.
async fn helper(engine: &Engine, volume: &str, image: &str, read_only: bool) -> Result<String, RuntimeError> {
    let api = engine.api().await?;
    let name = helper_name(engine, volume);
    remove_helper(engine, volume).await?;
    let mut labels = HashMap::new();
    labels.insert("driftless.data-helper".to_string(), engine.host.clone());
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // Never run: the archive API reads and writes a created container's mounts.
        cmd: Some(vec!["/driftless-never-started".to_string()]),
        entrypoint: Some(Vec::new()),
        labels: Some(labels),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:{MOUNT}{}", if read_only { ":ro" } else { "" })]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    api.create_container(Some(opts), body).await.map_err(|e| engine_fault(volume, e))?;
    Ok(name)
}

async fn remove_helper(engine: &Engine, volume: &str) -> Result<(), RuntimeError> {
    let api = engine.api().await?;
    let rm = RemoveContainerOptions { v: false, force: true, link: false };
    match api.remove_container(&helper_name(engine, volume), Some(rm)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine_fault(volume, e)),
    }
}

/// An image the host has that can carry a helper container of `volume` (it is never
/// started, so any image will do): the image of a container that mounts the volume, else
/// of any container of this agent, else any image the engine has.
async fn helper_image(engine: &Engine, volume: &str) -> Result<String, RuntimeError> {
    if let Some(image) = mounting(engine, volume).await?.into_iter().map(|m| m.image).find(|i| !i.is_empty()) {
        return Ok(image);
    }
    let api = engine.api().await?;
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![format!("{LABEL_HOST}={}", engine.host)]);
    let ours = api
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .map_err(|e| engine_fault(volume, e))?;
    if let Some(image) = ours.into_iter().find_map(|c| c.image_id.filter(|i| !i.is_empty())) {
        return Ok(image);
    }
    let images = api
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .map_err(|e| engine_fault(volume, e))?;
    images.into_iter().map(|i| i.id).find(|i| !i.is_empty()).ok_or_else(|| {
        host_fault(volume, "the engine has no image at all to reach the volume through; the agent retries once a revision's images are here".into())
    })
}

/// Pause (`pause`) or stop (`stop`) `holders`.
async fn hold(
    engine: &Engine,
    volume: &str,
    consistency: &Consistency,
    holders: &[String],
) -> Result<(), RuntimeError> {
    let api = engine.api().await?;
    for h in holders {
        let r = match consistency {
            Consistency::Pause => api.pause_container(h).await,
            Consistency::Stop => {
                api.stop_container(h, Some(StopContainerOptions { t: Some(30), ..Default::default() })).await
            }
            Consistency::Exec(_) => Ok(()),
        };
        match r {
            Ok(()) => {}
            // Already paused or stopped, or gone meanwhile.
            Err(BollardError::DockerResponseServerError { status_code: 304 | 404 | 409, .. }) => {}
            Err(e) => return Err(engine_fault(volume, e)),
        }
    }
    engine.changed();
    Ok(())
}

/// Put `holders` back: unpause the paused ones, start the stopped ones. Every one is tried.
pub(super) async fn release(engine: &Engine, holders: &[String]) -> Result<(), RuntimeError> {
    let api = engine.api().await?;
    let mut failure = None;
    for h in holders {
        let state = match api.inspect_container(h, None::<bollard::query_parameters::InspectContainerOptions>).await {
            Ok(c) => c.state,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => {
                failure = Some(engine_fault(h, e));
                continue;
            }
        };
        let (paused, running) = state.map(|s| (s.paused == Some(true), s.running == Some(true))).unwrap_or_default();
        let r = if paused {
            api.unpause_container(h).await
        } else if !running {
            api.start_container(h, None::<bollard::query_parameters::StartContainerOptions>).await
        } else {
            Ok(())
        };
        if let Err(e) = r {
            if !matches!(e, BollardError::DockerResponseServerError { status_code: 304 | 404 | 409, .. }) {
                failure = Some(engine_fault(h, e));
            }
        }
    }
    engine.changed();
    failure.map_or(Ok(()), Err)
}

/// Stream `chunks` into the file `name` of the folder `into`, hashed, off the runtime.
async fn write_stream<S>(volume: &str, into: &Path, name: &str, mut chunks: S) -> Result<ContentFile, RuntimeError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, RuntimeError>> + Unpin,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let path = into.to_path_buf();
    let file_name = name.to_string();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<ContentFile> {
        let mut f = HashingFile::create(&path, &file_name)?;
        while let Some(chunk) = rx.blocking_recv() {
            f.write(&chunk)?;
        }
        f.finish()
    });
    let mut failure = None;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    break; // the writer failed: its error says why
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| host_fault(volume, format!("writing the snapshot: {e}")))?;
    if let Some(e) = failure {
        return Err(e);
    }
    written.map_err(|e| {
        let detail = format!("{}: {e}", into.join(name).display());
        RuntimeError::Host { resource: what(volume), detail }
    })
}

/// Copy `volume`'s data into the folder `into` (see the module doc).
pub(super) async fn snapshot(
    engine: &Engine,
    volume: &str,
    consistency: &Consistency,
    holders: &[String],
    into: &Path,
) -> Result<Vec<ContentFile>, RuntimeError> {
    let api = engine.api().await?;
    let inspected = match api.inspect_volume(volume).await {
        Ok(v) => v,
        // Not made yet (the revision that first mounts it): there is nothing to keep.
        Err(e) if is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(engine_fault(volume, e)),
    };
    // A dump needs its database running. When nothing that mounts the volume runs (the
    // database down, or not started yet), nothing writes to it either: it is copied as
    // with `stop`, and put back the same way (a restore goes by what the snapshot holds).
    if let Consistency::Exec(e) = consistency {
        if !holders.is_empty() {
            return dump(engine, volume, &e.exec, holders, into).await;
        }
    }
    let created = Created {
        driver: inspected.driver.clone(),
        options: inspected.options.clone(),
        labels: inspected.labels.clone(),
    };
    let json = serde_json::to_vec_pretty(&created).unwrap_or_default();
    let vol_file = {
        let dir = into.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::io::Result<ContentFile> {
            let mut f = HashingFile::create(&dir, VOLUME_JSON)?;
            f.write(&json)?;
            f.finish()
        })
        .await
        .map_err(|e| host_fault(volume, e.to_string()))?
        .map_err(|e| host_fault(volume, format!("{}: {e}", into.display())))?
    };
    let image = helper_image(engine, volume).await?;
    let helper = helper(engine, volume, &image, true).await?;
    if let Err(e) = hold(engine, volume, consistency, holders).await {
        // Those held already are put back at once, not at the next cycle.
        let _ = release(engine, holders).await;
        let _ = remove_helper(engine, volume).await;
        return Err(e);
    }
    crate::failpoint::hit("snapshot-held").await;
    let copied = {
        let opts = DownloadFromContainerOptions { path: MOUNT.to_string() };
        let stream = api.download_from_container(&helper, Some(opts)).map(|c| c.map_err(|e| engine_fault(volume, e)));
        write_stream(volume, into, ARCHIVE, Box::pin(stream)).await
    };
    let released = release(engine, holders).await;
    let _ = remove_helper(engine, volume).await;
    let archive = copied?;
    released?;
    Ok(vec![vol_file, archive])
}

/// `exec` consistency: run the dump command in the first running holder; what it prints is
/// the snapshot. A command that exits non-zero is a verdict (the Volume's own spec).
async fn dump(
    engine: &Engine,
    volume: &str,
    argv: &[String],
    holders: &[String],
    into: &Path,
) -> Result<Vec<ContentFile>, RuntimeError> {
    let Some(container) = holders.first() else {
        return Err(host_fault(
            volume,
            "no container that mounts it runs, so its exec consistency's dump has nowhere to run; start it (the agent retries)".into(),
        ));
    };
    let (id, started) = start_exec(engine, volume, container, argv, false).await?;
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let file = match started {
        StartExecResults::Attached { output, .. } => {
            let err = stderr.clone();
            let stream = output.filter_map(move |item| {
                let err = err.clone();
                async move {
                    match item {
                        Ok(LogOutput::StdOut { message }) => Some(Ok(message)),
                        Ok(LogOutput::StdErr { message }) => {
                            if let Ok(mut e) = err.lock() {
                                keep_said(&mut e, &message);
                            }
                            None
                        }
                        Ok(_) => None,
                        Err(e) => Some(Err(engine_fault(volume, e))),
                    }
                }
            });
            write_stream(volume, into, DUMP, Box::pin(stream)).await?
        }
        StartExecResults::Detached => return Err(host_fault(volume, "the engine did not attach to the dump".into())),
    };
    if let Some(code) = exit_code(engine, volume, &id).await? {
        let said = stderr.lock().map(|s| s.trim().to_string()).unwrap_or_default();
        return Err(RuntimeError::Docker {
            resource: what(volume),
            detail: format!(
                "the snapshot's exec {argv:?} in {container} exited {code}: {said}; fix consistency.exec of the Volume"
            ),
        });
    }
    Ok(vec![file])
}

/// Run `argv` in `container`, attached (stdin too with `stdin`): the exec's id and its
/// streams, for a dump or its restore.
async fn start_exec(
    engine: &Engine,
    volume: &str,
    container: &str,
    argv: &[String],
    stdin: bool,
) -> Result<(String, StartExecResults), RuntimeError> {
    let api = engine.api().await?;
    let exec = api
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(argv.to_vec()),
                attach_stdin: stdin.then_some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| engine_fault(volume, e))?;
    let started =
        api.start_exec(&exec.id, Some(StartExecOptions::default())).await.map_err(|e| engine_fault(volume, e))?;
    Ok((exec.id, started))
}

/// The exit code of the exec `id` once it ended, when it is not 0.
async fn exit_code(engine: &Engine, volume: &str, id: &str) -> Result<Option<i64>, RuntimeError> {
    let api = engine.api().await?;
    let code = api.inspect_exec(id).await.map_err(|e| engine_fault(volume, e))?.exit_code;
    Ok(code.filter(|c| *c != 0))
}

/// Keep what a command says on stderr, up to 4 KiB (for the message when it fails).
fn keep_said(said: &mut String, chunk: &[u8]) {
    if said.len() < 4096 {
        said.push_str(&String::from_utf8_lossy(chunk));
    }
}

/// Put `volume` back as the snapshot `manifest` (folder `from`) holds it (see the module doc).
pub(super) async fn restore(
    engine: &Engine,
    volume: &str,
    manifest: &Manifest,
    from: &Path,
) -> Result<(), RuntimeError> {
    if from.join(DUMP).exists() {
        let Consistency::Exec(e) = &manifest.consistency_spec else {
            return Err(host_fault(
                volume,
                format!("{} holds a dump but its manifest names no restore command", from.display()),
            ));
        };
        return put_dump(engine, volume, &e.restore, &from.join(DUMP)).await;
    }
    let api = engine.api().await?;
    let created: Created = match tokio::fs::read(from.join(VOLUME_JSON)).await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(e) => return Err(host_fault(volume, format!("{}: {e}", from.join(VOLUME_JSON).display()))),
    };
    if created.options.get("o").is_some_and(|o| o.split(',').any(|x| x == "bind")) {
        return Err(host_fault(
            volume,
            format!(
                "it binds the host folder {}, which the engine cannot empty: restore it by hand (docs/operations.md, \"Restore a snapshot by hand\")",
                created.options.get("device").cloned().unwrap_or_default()
            ),
        ));
    }
    // The image to reach the volume through, while its containers still exist.
    let image = helper_image(engine, volume).await?;
    for m in mounting(engine, volume).await? {
        if m.name == helper_name(engine, volume) {
            continue;
        }
        if !m.ours {
            return Err(host_fault(
                volume,
                format!("container {}, which this agent does not manage, uses it: stop and remove it (the restore is retried)", m.name),
            ));
        }
        engine.stop_and_remove(&m.name, &m.name, m.stop_timeout).await?;
    }
    remove_helper(engine, volume).await?;
    crate::failpoint::hit("restore-emptied").await;
    match api.remove_volume(volume, Some(RemoveVolumeOptions { force: false })).await {
        Ok(()) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(engine_fault(volume, e)),
    }
    let create = VolumeCreateRequest {
        name: Some(volume.to_string()),
        driver: Some(if created.driver.is_empty() { "local".into() } else { created.driver }),
        driver_opts: Some(created.options),
        labels: Some(created.labels),
        ..Default::default()
    };
    api.create_volume(create).await.map_err(|e| engine_fault(volume, e))?;
    engine.changed();
    crate::failpoint::hit("restore-created").await;
    let helper = helper(engine, volume, &image, false).await?;
    let file = tokio::fs::File::open(from.join(ARCHIVE))
        .await
        .map_err(|e| host_fault(volume, format!("{}: {e}", from.join(ARCHIVE).display())))?;
    let body = file_chunks(file);
    let opts = UploadToContainerOptions { path: "/".into(), copy_uidgid: Some("true".into()), ..Default::default() };
    let uploaded = api.upload_to_container(&helper, Some(opts), bollard::body_try_stream(body)).await;
    let _ = remove_helper(engine, volume).await;
    uploaded.map_err(|e| engine_fault(volume, e))?;
    Ok(())
}

/// The file as a stream of chunks, for an upload.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 1 << 20];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        crate::sdnotify::progress(); // the engine takes it in: a long restore is not stuck
        buf.truncate(n);
        Ok(Some((bytes::Bytes::from(buf), file)))
    })
}

/// `exec` consistency's restore: run `argv` in the first running container that mounts the
/// volume, the dump on its standard input.
async fn put_dump(engine: &Engine, volume: &str, argv: &[String], dump: &Path) -> Result<(), RuntimeError> {
    // The database must run to take its dump back: this agent's stopped ones are started.
    let stopped: Vec<String> =
        mounting(engine, volume).await?.into_iter().filter(|m| m.ours && !m.running).map(|m| m.name).collect();
    if !stopped.is_empty() {
        release(engine, &stopped).await?;
    }
    let Some(container) = holders(engine, volume).await?.into_iter().next() else {
        return Err(host_fault(
            volume,
            "no container that mounts it runs, so its exec consistency's restore has nowhere to run; start it (the agent retries)".into(),
        ));
    };
    let (id, started) = start_exec(engine, volume, &container, argv, true).await?;
    let mut said = String::new();
    if let StartExecResults::Attached { mut output, mut input } = started {
        let mut file =
            tokio::fs::File::open(dump).await.map_err(|e| host_fault(volume, format!("{}: {e}", dump.display())))?;
        let feed = async {
            let r = tokio::io::copy(&mut file, &mut input).await;
            let _ = input.shutdown().await;
            r
        };
        let drain = async {
            while let Some(item) = output.next().await {
                if let Ok(LogOutput::StdErr { message }) = item {
                    keep_said(&mut said, &message);
                }
            }
        };
        let (fed, ()) = tokio::join!(feed, drain);
        fed.map_err(|e| host_fault(volume, format!("feeding the dump to {container}: {e}")))?;
    }
    if let Some(code) = exit_code(engine, volume, &id).await? {
        // The Volume's own command failed (or its database was not ready): a verdict, so
        // the revert of the code goes on and says the volume was not put back.
        return Err(RuntimeError::Docker {
            resource: what(volume),
            detail: format!(
                "the restore {argv:?} in {container} exited {code}: {}; put it back by hand (agentctl restore ID, or docs/operations.md, \"Restore a snapshot by hand\")",
                said.trim()
            ),
        });
    }
    Ok(())
}
