//! The engine's event feed: managed containers' die, stop, kill, destroy, rename and
//! health changes (oom, restart and pause too) are drift checked at once (`on_change`);
//! creates and starts only move the change count; image events forget the cached image ids.
//! Re-established with backoff after the engine goes away (a fault), with a change reported
//! on each reconnect, since anything may have happened meanwhile.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;

use super::engine::Engine;
use super::instance::{LABEL_MANAGED, LABEL_RESOURCE};

/// Engine events of a managed container that may be drift: each triggers a check at once.
const DRIFT_EVENTS: &[&str] = &["die", "stop", "kill", "destroy", "rename", "health_status", "oom", "pause", "restart"];
/// Events that change what `observe` lists without being drift (the next poll looks).
const LIST_EVENTS: &[&str] = &["create", "start", "unpause"];

/// Follow the engine's events for `me` until `shutdown` (see the module doc).
pub(super) fn feed(
    me: Engine,
    on_change: Arc<dyn Fn(String) + Send + Sync>,
    mut shutdown: crate::listen::Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = std::time::Duration::from_secs(1);
        loop {
            if shutdown.is_shutdown() {
                return;
            }
            let connected = std::time::Instant::now();
            let stream_ended = async {
                let api = match me.api().await {
                    Ok(a) => a.clone(),
                    Err(e) => return Err::<(), String>(e.to_string()),
                };
                let mut filters = HashMap::new();
                filters.insert("type".to_string(), vec!["container".to_string()]);
                filters.insert("label".to_string(), vec![format!("{LABEL_MANAGED}=true")]);
                // Not `exec_*`: a HEALTHCHECK runs one each interval and changes nothing.
                filters.insert(
                    "event".to_string(),
                    DRIFT_EVENTS.iter().chain(LIST_EVENTS).map(|e| e.to_string()).collect(),
                );
                let opts = bollard::query_parameters::EventsOptions { filters: Some(filters), ..Default::default() };
                let containers = api.events(Some(opts));
                // Image events tell when an image id behind a tag may have changed: while
                // they flow, image ids are kept between plans instead of asked each poll.
                let mut image_filters = HashMap::new();
                image_filters.insert("type".to_string(), vec!["image".to_string()]);
                let image_opts =
                    bollard::query_parameters::EventsOptions { filters: Some(image_filters), ..Default::default() };
                let images = api.events(Some(image_opts));
                let mut events = futures_util::stream::select(containers, images);
                tracing::debug!("docker: watching the engine's events");
                me.forget_image_ids();
                me.changed();
                me.events_live.store(true, Ordering::SeqCst);
                // Whatever happened while the feed was down: look once.
                on_change(String::new());
                while let Some(item) = events.next().await {
                    match item {
                        Ok(ev) if ev.typ == Some(bollard::models::EventMessageTypeEnum::IMAGE) => {
                            me.forget_image_ids();
                        }
                        Ok(ev) => {
                            let attrs = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
                            let name = attrs.get(LABEL_RESOURCE).cloned().unwrap_or_default();
                            let action = ev.action.unwrap_or_default();
                            if action == "die" {
                                let code = attrs.get("exitCode").and_then(|c| c.parse::<i64>().ok());
                                if let Some(c) = code.filter(|c| *c != 0) {
                                    me.remember_exit(&name, c);
                                }
                            }
                            // A healthy report is no drift; an unhealthy one is. Health
                            // is not in what `observe` lists.
                            if action.starts_with("health_status") && !action.contains("unhealthy") {
                                continue;
                            }
                            me.changed();
                            // A container created or started is no drift (one the agent
                            // does not expect is found by the next poll, which looks).
                            if DRIFT_EVENTS.iter().any(|d| action.starts_with(d)) {
                                on_change(name);
                            }
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Err("the engine closed the event stream".to_string())
            };
            let why = tokio::select! {
                r = stream_ended => r.err().unwrap_or_default(),
                _ = shutdown.recv() => return,
            };
            me.events_live.store(false, Ordering::SeqCst);
            me.changed();
            if connected.elapsed() > std::time::Duration::from_secs(60) {
                backoff = std::time::Duration::from_secs(1); // it had been up: start over
            }
            tracing::debug!("docker: event stream lost ({why}); reconnecting in {}s", backoff.as_secs());
            // A lost feed is a fault of the engine; polls keep watching meanwhile.
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.recv() => return,
            }
            backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
        }
    })
}
