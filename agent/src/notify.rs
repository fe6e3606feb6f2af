//! Deployment notifications (`notify: [{url}]`): a JSON event POSTed to each URL, with up to
//! four attempts (backoff 1 s, 2 s, 4 s) in the background, so a slow receiver never holds up
//! a deployment. The reconciler sends each (event, revision) once — a flapping remote or a
//! restart never floods a channel (`AgentState::notified`).
//!
//! ```json
//! {"event": "rolled_back", "host": "web-1", "environment": "production",
//!  "revision": "<commit>", "message": "...", "time": "2026-11-23T08:00:00Z"}
//! ```
//! Events: `deployed`, `rolled_back`, `failed`, `invalid`, `drift_repaired`, `degraded`.

use std::time::Duration;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub event: String,
    pub host: String,
    pub environment: Option<String>,
    pub revision: Option<String>,
    pub message: String,
    pub time: String,
    /// Why, per failing resource (failed and rolled-back revisions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<crate::state::Diagnostic>,
}

#[derive(Clone)]
pub struct Notifier {
    urls: Vec<String>,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(urls: Vec<String>) -> Notifier {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Notifier { urls, client }
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Send in the background; failures are logged, never block the caller.
    pub fn send(&self, n: Notification) {
        for url in self.urls.clone() {
            let client = self.client.clone();
            let n = n.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                for attempt in 1..=4 {
                    match client.post(&url).json(&n).send().await {
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) => tracing::warn!("notify {url}: {} (attempt {attempt} of 4)", r.status()),
                        Err(e) => tracing::warn!("notify {url}: {e} (attempt {attempt} of 4)"),
                    }
                    if attempt < 4 {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
                tracing::error!("notify {url}: gave up on the {} event for {:?}", n.event, n.revision);
            });
        }
    }
}
