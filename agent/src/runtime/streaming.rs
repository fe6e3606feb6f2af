//! Child processes whose output streams to the reconciler line by line (`run_streaming`):
//! builds, `nix build`, `switch-to-configuration`, Passenger's build commands.

use super::driver::Log;

/// How a streamed command ended.
pub struct Streamed {
    pub status: std::process::ExitStatus,
    /// The last 64 KiB of what it printed (stdout and stderr, interleaved as read).
    pub tail: String,
}

/// The longest line `run_streaming` passes on at once: a longer one (binary output with no
/// newline for megabytes) is cut into pieces of this size.
const MAX_LINE: usize = 4096;

/// Run `cmd`, passing each line it prints to `log` (prefixed with `prefix`), killing it after
/// `timeout`. `Ok(None)` means it timed out. What it prints is drained as bytes until both
/// pipes close, whatever it is: lines are decoded lossily for display (binary output or
/// another encoding is no error, and never stops the draining, so a chatty child never
/// blocks on a full pipe), cut at `MAX_LINE`, and only the last 64 KiB are kept.
pub async fn run_streaming(
    mut cmd: tokio::process::Command,
    timeout: std::time::Duration,
    prefix: &str,
    log: Log<'_>,
) -> std::io::Result<Option<Streamed>> {
    use tokio::io::AsyncReadExt;
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut tail = String::new();
    let mut keep = |bytes: &[u8]| {
        let line = String::from_utf8_lossy(bytes);
        let line = line.trim_end_matches('\r');
        log(format!("{prefix}{line}"));
        tail.push_str(line);
        tail.push('\n');
        if tail.len() > 64 * 1024 {
            let cut = tail.len() - 64 * 1024;
            let cut = (cut..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(tail.len());
            tail.drain(..cut);
        }
    };
    // Each pipe's unfinished line.
    let (mut pending_out, mut pending_err) = (Vec::new(), Vec::new());
    let (mut buf_out, mut buf_err) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    // A live child is progress: the watchdog heartbeat keeps going through silent builds.
    let mut alive = tokio::time::interval(std::time::Duration::from_secs(1));
    let work = async {
        loop {
            tokio::select! {
                _ = alive.tick() => crate::sdnotify::progress(),
                n = async { match out.as_mut() { Some(o) => o.read(&mut buf_out).await, None => std::future::pending().await } } => {
                    match n {
                        Ok(0) => { out = None; flush(&mut pending_out, &mut keep) }
                        Ok(n) => split_lines(&mut pending_out, &buf_out[..n], &mut keep),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => { out = None; flush(&mut pending_out, &mut keep) }
                    }
                }
                n = async { match err.as_mut() { Some(e) => e.read(&mut buf_err).await, None => std::future::pending().await } } => {
                    match n {
                        Ok(0) => { err = None; flush(&mut pending_err, &mut keep) }
                        Ok(n) => split_lines(&mut pending_err, &buf_err[..n], &mut keep),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => { err = None; flush(&mut pending_err, &mut keep) }
                    }
                }
                status = child.wait(), if out.is_none() && err.is_none() => return status,
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(status) => Ok(Some(Streamed { status: status?, tail })),
        Err(_) => Ok(None),
    }
}

/// Add `chunk` to the unfinished line in `pending`, passing every finished line (and every
/// `MAX_LINE` piece of an overlong one) to `keep`.
fn split_lines(pending: &mut Vec<u8>, chunk: &[u8], keep: &mut impl FnMut(&[u8])) {
    for piece in chunk.split_inclusive(|b| *b == b'\n') {
        pending.extend_from_slice(piece);
        if pending.last() == Some(&b'\n') {
            pending.pop();
            keep(pending);
            pending.clear();
        }
        while pending.len() >= MAX_LINE {
            keep(&pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
    }
}

/// Pass what is left of a closed pipe's last line.
fn flush(pending: &mut Vec<u8>, keep: &mut impl FnMut(&[u8])) {
    if !pending.is_empty() {
        keep(pending);
        pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn lines_are_split_on_bytes_and_overlong_ones_are_cut() {
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut pending = Vec::new();
        let mut keep = |b: &[u8]| got.push(b.to_vec());
        split_lines(&mut pending, b"one\ntw", &mut keep);
        split_lines(&mut pending, b"o\xff\n", &mut keep);
        split_lines(&mut pending, &vec![b'x'; MAX_LINE + 10], &mut keep);
        flush(&mut pending, &mut keep);
        assert_eq!(got[0], b"one");
        assert_eq!(got[1], b"two\xff");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3].len(), 10);
        assert_eq!(got.len(), 4);
    }

    /// Megabytes of binary output (no UTF-8, few newlines) on both pipes are drained to the
    /// end: the child finishes, nothing blocks on a full pipe.
    #[tokio::test]
    async fn a_child_printing_binary_output_is_drained_to_its_end() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "head -c 3000000 /dev/urandom; head -c 2000000 /dev/urandom >&2; echo; echo done"]);
        let lines = std::sync::atomic::AtomicUsize::new(0);
        let log = |_l: String| {
            lines.fetch_add(1, Ordering::SeqCst);
        };
        let done = run_streaming(cmd, std::time::Duration::from_secs(60), "t: ", &log).await;
        let done = done.ok().flatten().map(|d| (d.status.success(), d.tail));
        let (ok, tail) = done.unwrap_or_default();
        assert!(ok, "the child ran to its end");
        assert!(tail.contains("\ndone\n"), "its last line is kept");
        assert!(tail.len() <= 64 * 1024 + MAX_LINE * 4);
        assert!(lines.load(Ordering::SeqCst) > 1000);
    }
}
