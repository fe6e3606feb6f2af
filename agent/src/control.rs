//! The control API: `agentd` serves JSON lines on a Unix socket (mode 0660: root and the
//! socket's group only); `agentctl` is the client. `status` is answered from the published
//! snapshot, so it never waits for a running cycle; everything else goes to the reconciler
//! as an event. `sync --wait` and `rollback` stream progress lines before their result.

/// The wire types live below the reconciler and this module (`crate::wire`).
pub use crate::wire;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::event::{Command, Event};
use crate::listen::{Shutdown, MAX_CONNECTIONS};
use crate::wire::{Line, Reply, Request, StatusView};

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: another agentd answers on this socket; stop it first (systemctl stop driftless)")]
    InUse { path: PathBuf },
    #[error("{path}: cannot create the control socket: {source}")]
    Bind { path: PathBuf, source: std::io::Error },
}

/// Bind the socket (replacing a stale one), mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::InUse { path: path.to_path_buf() });
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ServeError::Bind { path: path.to_path_buf(), source: e })?;
    }
    let listener = UnixListener::bind(path).map_err(|e| ServeError::Bind { path: path.to_path_buf(), source: e })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| ServeError::Bind { path: path.to_path_buf(), source: e })?;
    Ok(listener)
}

/// Accept connections until `shutdown` (the shared accept loop: limit, backoff).
pub async fn serve(
    listener: UnixListener,
    events: mpsc::Sender<Event>,
    status: watch::Receiver<StatusView>,
    progress: broadcast::Sender<String>,
    shutdown: Shutdown,
) {
    started(); // the agent's start, as `agentctl version` tells it
    crate::listen::serve("control socket", listener, MAX_CONNECTIONS, shutdown, move |stream| {
        let events = events.clone();
        let status = status.clone();
        let progress = progress.clone();
        async move {
            if let Err(e) = handle(stream, events, status, progress).await {
                tracing::debug!("control connection: {e}");
            }
        }
    })
    .await
}

async fn send(w: &mut (impl AsyncWriteExt + Unpin), line: &Line) -> std::io::Result<()> {
    let mut s = serde_json::to_string(line).map_err(std::io::Error::other)?;
    s.push('\n');
    w.write_all(s.as_bytes()).await
}

fn ok<T: serde::Serialize>(v: &T) -> Line {
    match serde_json::to_value(v) {
        Ok(data) => Line::Result(Reply::Ok { data }),
        Err(e) => Line::Result(Reply::Error { message: e.to_string() }),
    }
}

/// A request line longer than this is refused (requests are well under 1 KiB).
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn gone() -> Line {
    Line::Result(Reply::Error { message: "the agent is shutting down".into() })
}

async fn handle(
    stream: UnixStream,
    events: mpsc::Sender<Event>,
    status: watch::Receiver<StatusView>,
    progress: broadcast::Sender<String>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    // A request is one short line: bounded in size and in time, so a client that sends
    // endless bytes or nothing at all cannot hold memory or one of the connections.
    let mut reader = TokioBufReader::new(tokio::io::AsyncReadExt::take(r, MAX_REQUEST_BYTES));
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(r) => {
            r?;
        }
        Err(_) => {
            let message = format!("no request within {} s; send one JSON line", REQUEST_TIMEOUT.as_secs());
            return send(&mut w, &Line::Result(Reply::Error { message })).await;
        }
    }
    if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST_BYTES {
        let message = format!("request longer than {MAX_REQUEST_BYTES} bytes; a request is one short JSON line");
        return send(&mut w, &Line::Result(Reply::Error { message })).await;
    }
    let req: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => {
            return send(&mut w, &Line::Result(Reply::Error { message: format!("bad request: {e}") })).await;
        }
    };
    match req {
        Request::Version => send(&mut w, &ok(&crate::wire::VersionView::of_this_build(started()))).await,
        Request::Status => {
            let s = status.borrow().clone();
            send(&mut w, &ok(&s)).await
        }
        Request::History { limit } => {
            let (tx, rx) = oneshot::channel();
            if events.send(Event::Control(Command::History { limit, reply: tx })).await.is_err() {
                return send(&mut w, &gone()).await;
            }
            match rx.await {
                Ok(h) => send(&mut w, &ok(&h)).await,
                Err(_) => send(&mut w, &gone()).await,
            }
        }
        Request::Diff => {
            let (tx, rx) = oneshot::channel();
            if events.send(Event::Control(Command::Diff { reply: tx })).await.is_err() {
                return send(&mut w, &gone()).await;
            }
            match rx.await {
                Ok(Ok(d)) => send(&mut w, &ok(&d)).await,
                Ok(Err(message)) => send(&mut w, &Line::Result(Reply::Error { message })).await,
                Err(_) => send(&mut w, &gone()).await,
            }
        }
        Request::Pause | Request::Resume => {
            let (tx, rx) = oneshot::channel();
            let cmd = if req == Request::Pause { Command::Pause { reply: tx } } else { Command::Resume { reply: tx } };
            if events.send(Event::Control(cmd)).await.is_err() {
                return send(&mut w, &gone()).await;
            }
            match rx.await {
                Ok(s) => send(&mut w, &ok(&s)).await,
                Err(_) => send(&mut w, &gone()).await,
            }
        }
        Request::Sync { wait, retry, ignore_rollout } => {
            let mut sub = progress.subscribe();
            let (tx, rx) = oneshot::channel();
            if events.send(Event::Control(Command::Sync { retry, ignore_rollout, reply: tx })).await.is_err() {
                return send(&mut w, &gone()).await;
            }
            if !wait {
                return send(&mut w, &ok(&serde_json::json!({ "queued": true }))).await;
            }
            match stream_until(&mut w, &mut sub, rx).await? {
                Ok(v) => send(&mut w, &ok(&v)).await,
                Err(_) => send(&mut w, &gone()).await,
            }
        }
        Request::Snapshots { volume } => {
            let (tx, rx) = oneshot::channel();
            if events.send(Event::Control(Command::Snapshots { volume, reply: tx })).await.is_err() {
                return send(&mut w, &gone()).await;
            }
            match rx.await {
                Ok(list) => send(&mut w, &ok(&list)).await,
                Err(_) => send(&mut w, &gone()).await,
            }
        }
        Request::Restore { id } => {
            let mut sub = progress.subscribe();
            let (tx, rx) = oneshot::channel();
            if events.send(Event::Control(Command::Restore { id, reply: tx })).await.is_err() {
                return send(&mut w, &gone()).await;
            }
            match stream_until(&mut w, &mut sub, rx).await? {
                Ok(Ok(v)) => send(&mut w, &ok(&v)).await,
                Ok(Err(message)) => send(&mut w, &Line::Result(Reply::Error { message })).await,
                Err(_) => send(&mut w, &gone()).await,
            }
        }
        Request::Rollback { revision, restore_data } => {
            let mut sub = progress.subscribe();
            let (tx, rx) = oneshot::channel();
            if events.send(Event::Control(Command::Rollback { revision, restore_data, reply: tx })).await.is_err() {
                return send(&mut w, &gone()).await;
            }
            match stream_until(&mut w, &mut sub, rx).await? {
                Ok(Ok(v)) => send(&mut w, &ok(&v)).await,
                Ok(Err(message)) => send(&mut w, &Line::Result(Reply::Error { message })).await,
                Err(_) => send(&mut w, &gone()).await,
            }
        }
    }
}

/// Stream the cycle's progress lines to `w` until its answer arrives on `rx`; what the cycle
/// said before its answer is drained first, so no line comes after the result.
async fn stream_until<T>(
    w: &mut (impl AsyncWriteExt + Unpin),
    sub: &mut broadcast::Receiver<String>,
    mut rx: oneshot::Receiver<T>,
) -> std::io::Result<Result<T, oneshot::error::RecvError>> {
    loop {
        tokio::select! {
            msg = sub.recv() => {
                if let Ok(m) = msg {
                    send(w, &Line::Progress(m)).await?;
                }
            }
            done = &mut rx => {
                while let Ok(m) = sub.try_recv() {
                    send(w, &Line::Progress(m)).await?;
                }
                return Ok(done);
            }
        }
    }
}

/// Why `agentctl` got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no agent answers on {path}: {source}; is agentd running? (systemctl status driftless; or pass --socket / --config)")]
    Unreachable { path: PathBuf, source: std::io::Error },
    #[error("{path}: permission denied; agentctl needs root or membership in the socket's group (ls -l {path})")]
    Forbidden { path: PathBuf },
    #[error("the agent on {path} broke off: {detail}")]
    Protocol { path: PathBuf, detail: String },
    /// The request was delivered and the agent goes on with it; the answer did not come
    /// within the caller's limit.
    #[error(
        "no answer from the agent on {path} within {limit:?}; the request was delivered and the agent goes on with it"
    )]
    TimedOut { path: PathBuf, limit: Duration },
}

/// Send `req`, hand each progress line to `on_progress`, return the final reply.
pub fn request(path: &Path, req: &Request, on_progress: impl FnMut(&str)) -> Result<Reply, ClientError> {
    request_within(path, req, None, on_progress)
}

/// [`request`], waiting at most `limit` for the answer once the request is written: the
/// request always reaches the agent whole before the wait can end, so a short limit never
/// loses it (`agentctl sync --wait --timeout`).
pub fn request_within(
    path: &Path,
    req: &Request,
    limit: Option<Duration>,
    mut on_progress: impl FnMut(&str),
) -> Result<Reply, ClientError> {
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => ClientError::Forbidden { path: path.to_path_buf() },
        _ => ClientError::Unreachable { path: path.to_path_buf(), source: e },
    })?;
    let proto = |detail: String| ClientError::Protocol { path: path.to_path_buf(), detail };
    // Short operations answer at once; sync and rollback may take as long as a health gate.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut w = &stream;
    let mut text = serde_json::to_string(req).map_err(|e| proto(e.to_string()))?;
    text.push('\n');
    w.write_all(text.as_bytes()).map_err(|e| proto(e.to_string()))?;
    let deadline = limit.map(|l| (std::time::Instant::now() + l, l));
    let timed_out = |l: Duration| ClientError::TimedOut { path: path.to_path_buf(), limit: l };
    let mut lines = BufReader::new(&stream).lines();
    loop {
        if let Some((at, l)) = deadline {
            let left = at.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(timed_out(l));
            }
            let _ = stream.set_read_timeout(Some(left));
        }
        let Some(line) = lines.next() else { break };
        let line = match line {
            Ok(l) => l,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(match deadline {
                    Some((_, l)) => timed_out(l),
                    None => proto(e.to_string()),
                })
            }
            Err(e) => return Err(proto(e.to_string())),
        };
        match serde_json::from_str::<Line>(&line).map_err(|e| proto(format!("{e}: {line}")))? {
            Line::Progress(p) => on_progress(&p),
            Line::Result(r) => return Ok(r),
        }
    }
    Err(proto("the connection closed before an answer".into()))
}

/// When this process started serving (what `agentctl version` says of the agent).
pub fn started() -> &'static str {
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STARTED.get_or_init(crate::state::now_rfc3339)
}
