//! Deployment notifications (`notify: [{url, format, events}]`): each event is POSTed to every
//! target that wants it, in the background, with up to five attempts (backoff 1 s, 2 s, 4 s,
//! 8 s), so a slow or dead receiver never holds up a deployment. The reconciler decides what
//! is sent once: each (event, revision) once, and `source_failed` once per distinct fault —
//! a flapping remote or a restart never floods a channel (`AgentState::notified`,
//! `AgentState::source_fault`).
//!
//! `format: json` (the default) sends [`Notification`] as it is:
//!
//! ```json
//! {"event": "rolled_back", "host": "web-1", "environment": "production",
//!  "revision": "<commit>", "commit": {"subject": "…", "author": "Ann <ann@example.com>", "date": "…"},
//!  "message": "...", "changes": ["replace Container/web (spec changed: image: web:1.4 → web:1.5)"],
//!  "time": "2026-11-23T08:00:00Z", "diagnostics": [...]}
//! ```
//!
//! `format: slack` sends `{"text": "…"}`, which Slack's incoming webhooks, Mattermost and
//! Rocket.Chat all accept: one line saying what happened where, the commit, the changes, and
//! the last log lines of a failure in a code block.

use std::time::Duration;

use serde::Serialize;

use crate::config::{NotifyEvent, NotifyFormat, NotifyTarget};
use crate::state::{CommitInfo, Diagnostic};

/// Attempts per delivery (the first and four retries).
const ATTEMPTS: u32 = 5;
/// Log lines per failing resource in a chat message (the JSON payload has all of them).
const CHAT_LOG_LINES: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub event: NotifyEvent,
    pub host: String,
    pub environment: Option<String>,
    pub revision: Option<String>,
    /// The revision's commit (subject, author, date), when the mirror has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitInfo>,
    pub message: String,
    /// What the deployment changed, one line per resource.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    pub time: String,
    /// Why, per failing resource (failed and rolled-back revisions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

/// Sends notifications to the configured targets.
#[derive(Clone)]
pub struct Notifier {
    targets: Vec<NotifyTarget>,
    client: reqwest::Client,
    /// The first retry's delay (doubling after it); shortened in tests.
    backoff: Duration,
}

impl Notifier {
    pub fn new(targets: &[NotifyTarget]) -> Notifier {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Notifier { targets: targets.to_vec(), client, backoff: Duration::from_secs(1) }
    }

    /// Whether any target wants `event` (the reconciler skips building what nobody reads).
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.targets.iter().any(|t| wants(t, event))
    }

    /// Send in the background; failures are logged, never block the caller.
    pub fn send(&self, n: Notification) {
        for t in self.targets.iter().filter(|t| wants(t, n.event)) {
            let body = match t.format {
                NotifyFormat::Json => serde_json::to_value(&n).unwrap_or_default(),
                NotifyFormat::Slack => serde_json::json!({ "text": chat_text(&n) }),
            };
            let client = self.client.clone();
            let url = t.url.clone();
            let event = n.event;
            let revision = n.revision.clone();
            let mut delay = self.backoff;
            tokio::spawn(async move {
                for attempt in 1..=ATTEMPTS {
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) => tracing::warn!("notify {url}: {} (attempt {attempt} of {ATTEMPTS})", r.status()),
                        Err(e) => tracing::warn!("notify {url}: {e} (attempt {attempt} of {ATTEMPTS})"),
                    }
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
                tracing::error!("notify {url}: gave up on the {} event for {revision:?}", event.as_str());
            });
        }
    }
}

fn wants(t: &NotifyTarget, event: NotifyEvent) -> bool {
    t.events.as_ref().is_none_or(|e| e.contains(&event))
}

/// The message of `format: slack`: Slack's mrkdwn, which Mattermost and Rocket.Chat read too.
pub fn chat_text(n: &Notification) -> String {
    let (icon, what) = match n.event {
        NotifyEvent::Started => (":hourglass_flowing_sand:", "deploying"),
        NotifyEvent::Applied => (":white_check_mark:", "applied"),
        NotifyEvent::RolledBack => (":rewind:", "rolled back"),
        NotifyEvent::Failed => (":x:", "failed"),
        NotifyEvent::Invalid => (":no_entry:", "refused invalid"),
        NotifyEvent::DriftRepaired => (":wrench:", "repaired drift on"),
        NotifyEvent::SourceFailed => (":warning:", "cannot fetch its source at"),
        NotifyEvent::SourceRecovered => (":white_check_mark:", "fetches its source again at"),
        NotifyEvent::Waiting => (":hourglass:", "waits to apply"),
        NotifyEvent::Held => (":octagonal_sign:", "holds back"),
        NotifyEvent::Degraded => (":warning:", "fails its checks after the gate on"),
        NotifyEvent::Recovered => (":white_check_mark:", "passes its checks again on"),
    };
    let env = n.environment.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
    let rev = n.revision.as_deref().map(|r| format!(" `{}`", crate::revision::short(r))).unwrap_or_default();
    let mut out = format!("{icon} *{}*{env} {what}{rev}", n.host);
    if let Some(c) = &n.commit {
        out.push_str(&format!(" — “{}” by {}", c.subject, c.author));
    }
    out.push('\n');
    out.push_str(&n.message);
    for c in &n.changes {
        out.push_str(&format!("\n• {c}"));
    }
    for d in &n.diagnostics {
        let code = d.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
        let oom = if d.oom_killed { ", OOM-killed" } else { "" };
        out.push_str(&format!("\n*{}/{}*: {}{code}{oom}", d.kind, d.name, d.state));
        if !d.logs.is_empty() {
            let tail = &d.logs[d.logs.len().saturating_sub(CHAT_LOG_LINES)..];
            out.push_str(&format!("\n```\n{}\n```", tail.join("\n").replace("```", "ˋˋˋ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(event: NotifyEvent) -> Notification {
        Notification {
            event,
            host: "web-1".into(),
            environment: Some("production".into()),
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            commit: Some(CommitInfo {
                subject: "web 1.5".into(),
                author: "Ann <ann@example.com>".into(),
                date: "2026-11-23T08:00:00Z".into(),
            }),
            message: "revision 0123456789ab failed: web exited".into(),
            changes: vec!["replace Container/web (spec changed: image: web:1.4 → web:1.5)".into()],
            time: "2026-11-23T08:00:01Z".into(),
            diagnostics: vec![Diagnostic {
                kind: "Container".into(),
                name: "web".into(),
                state: "exited".into(),
                exit_code: Some(3),
                oom_killed: false,
                logs: (1..=12).map(|i| format!("line {i}")).collect(),
            }],
        }
    }

    #[test]
    fn chat_text_says_what_where_who_and_why() {
        let t = chat_text(&sample(NotifyEvent::RolledBack));
        assert!(t.starts_with(":rewind: *web-1* (production) rolled back `0123456789ab` — “web 1.5” by Ann"), "{t}");
        assert!(t.contains("• replace Container/web"), "{t}");
        assert!(t.contains("*Container/web*: exited, exit code 3"), "{t}");
        assert!(t.contains("line 12") && !t.contains("line 2\n"), "the last ten lines only: {t}");
    }

    #[test]
    fn json_payload_names_the_event_in_snake_case() {
        let v = serde_json::to_value(sample(NotifyEvent::SourceRecovered)).unwrap();
        assert_eq!(v["event"], "source_recovered");
        assert_eq!(v["commit"]["author"], "Ann <ann@example.com>");
    }

    #[test]
    fn targets_filter_by_event() {
        let all = NotifyTarget { url: "http://127.0.0.1:1/".into(), format: NotifyFormat::Json, events: None };
        let some = NotifyTarget { events: Some(vec![NotifyEvent::RolledBack]), ..all.clone() };
        let n = Notifier::new(std::slice::from_ref(&some));
        assert!(n.wants(NotifyEvent::RolledBack) && !n.wants(NotifyEvent::Started));
        assert!(Notifier::new(&[all, some]).wants(NotifyEvent::Started));
        assert!(!Notifier::new(&[]).wants(NotifyEvent::Applied));
    }

    /// A receiver that fails twice then accepts: the delivery is retried, and a receiver
    /// that never answers does not hold up the caller.
    #[tokio::test]
    async fn deliveries_are_retried_in_the_background() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            for i in 0.. {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let mut buf = vec![0u8; 65536];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if i < 2 { "500 Internal Server Error" } else { "200 OK" };
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes()).await;
                let _ = tx.send(req);
            }
        });
        let target = NotifyTarget { url: format!("http://{addr}/hook"), format: NotifyFormat::Slack, events: None };
        let mut n = Notifier::new(&[target]);
        n.backoff = Duration::from_millis(10);
        n.send(sample(NotifyEvent::Applied));
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap());
        }
        assert!(got[2].contains("\"text\":"), "{}", got[2]);
        assert!(got[2].contains(":white_check_mark: *web-1*"), "{}", got[2]);
    }
}
