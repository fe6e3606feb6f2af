//! A container's lifecycle hooks (`post_start`, `pre_stop`), run as `docker exec` runs a
//! command and as docker compose runs them (`pkg/compose/hook.go`): attached, its exit
//! status read back, the last lines of its output kept for the message (stderr before
//! stdout, which usually holds the error). The `pre_stop` hooks travel with the container,
//! in a label (`LABEL`), so that whoever stops it later — a replace, a removal, a revert —
//! runs what the container was created with. Only the engine client is used here; what a
//! failure means is the driver's to decide.

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use desired_state_schema::Hook;
use futures_util::StreamExt;

/// The label holding a container's `pre_stop` hooks (JSON).
pub const LABEL: &str = "driftless.pre-stop";

/// How many lines of a failing hook's output its message keeps.
const TAIL_LINES: usize = 10;

/// How long a hook may run: a hook that never exits must not hold the agent (compose waits
/// for ever; an agent that waits for ever reverts nothing).
pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a hook did not succeed.
#[derive(Debug)]
pub enum HookError {
    /// It ran and exited non-zero; the last lines it printed.
    Exited { code: i64, output: String },
    /// The engine would not run it (or stopped answering).
    Engine(bollard::errors::Error),
    /// It ran past `LIMIT`; the last lines it printed.
    TimedOut { output: String },
}

/// `hooks` as the label's value; `None` when there are none.
pub fn encode(hooks: &[Hook]) -> Option<String> {
    (!hooks.is_empty()).then(|| serde_json::to_string(hooks).unwrap_or_default())
}

/// The hooks a label holds (a label that does not parse, from a newer agent or a hand edit,
/// holds none).
pub fn decode(label: Option<&String>) -> Vec<Hook> {
    label.and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default()
}

/// Run `hook` in `container`, attached, until it exits.
pub async fn run(api: &Docker, container: &str, hook: &Hook) -> Result<(), HookError> {
    let env: Vec<String> = hook.environment.iter().map(|(k, v)| format!("{k}={}", v.0)).collect();
    let exec = api
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(hook.command.clone()),
                user: hook.user.clone(),
                privileged: hook.privileged.then_some(true),
                working_dir: hook.working_dir.clone(),
                env: (!env.is_empty()).then_some(env),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(HookError::Engine)?;
    let (mut out, mut err) = (Tail::default(), Tail::default());
    let started = api.start_exec(&exec.id, Some(StartExecOptions::default())).await.map_err(HookError::Engine)?;
    if let StartExecResults::Attached { mut output, .. } = started {
        let deadline = tokio::time::Instant::now() + LIMIT;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => crate::sdnotify::progress(), // a hook that runs is progress
                _ = tokio::time::sleep_until(deadline) => {
                    let output = if err.is_empty() { out.text() } else { err.text() };
                    return Err(HookError::TimedOut { output });
                }
                item = output.next() => match item {
                    Some(Ok(bollard::container::LogOutput::StdErr { message })) => err.push(&message),
                    Some(Ok(other)) => out.push(&other.into_bytes()),
                    Some(Err(e)) => return Err(HookError::Engine(e)),
                    None => break,
                },
            }
        }
    }
    let inspected = api.inspect_exec(&exec.id).await.map_err(HookError::Engine)?;
    match inspected.exit_code {
        Some(0) | None => Ok(()),
        Some(code) => {
            let output = if err.is_empty() { out.text() } else { err.text() };
            Err(HookError::Exited { code, output })
        }
    }
}

/// The last `TAIL_LINES` lines written to it.
#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        for line in String::from_utf8_lossy(bytes).lines() {
            let line = line.rsplit('\r').next().unwrap_or(line).trim_end();
            if line.is_empty() {
                continue;
            }
            if self.lines.len() == TAIL_LINES {
                self.lines.pop_front();
            }
            self.lines.push_back(line.chars().take(512).collect());
        }
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_last_lines_and_the_last_progress_segment() {
        let mut t = Tail::default();
        for i in 0..15 {
            t.push(format!("line {i}\n").as_bytes());
        }
        t.push(b"10%\r50%\r100%\n");
        assert_eq!(t.text().lines().count(), TAIL_LINES);
        assert!(t.text().ends_with("line 14\n100%"), "{}", t.text());
    }

    #[test]
    fn hooks_round_trip_through_the_label() {
        let h = Hook { command: vec!["sh".into(), "-c".into(), "echo bye".into()], ..Default::default() };
        let label = encode(std::slice::from_ref(&h));
        assert_eq!(decode(label.as_ref()), vec![h]);
        assert!(encode(&[]).is_none());
        assert!(decode(Some(&"{not json".to_string())).is_empty());
    }
}
