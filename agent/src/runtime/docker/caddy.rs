//! The host's Caddy, driven through its admin API (PRODUCT.md "Zero-downtime replaces"):
//! the routes of Containers with `proxy`, and nothing else of Caddy's config.
//!
//! Each proxied container `web` has one route, `@id` `driftless-web`, whose one handler is a
//! `reverse_proxy` to the serving container's address (`127.0.0.1:<the port the engine
//! published its proxy.port on>`). With `listen`, the route is the only one of a server of
//! its own, `driftless-web`, listening there in plain HTTP; with `hosts` alone it is put
//! first in the routes of the server that listens on `:443` (Caddy's automatic HTTPS serves
//! the names), else of a server `driftless-https` the agent adds on `:443`.
//!
//! Every change is one config change (Caddy applies each change whole and gracefully),
//! including a move between `listen` and hosts only: the HTTP servers are read with their
//! `ETag`, rewritten with only this route changed, and written back with `If-Match`, so a
//! change another writer made meanwhile is never overwritten — Caddy answers 412 and the
//! change is made again on what Caddy has now (measured with Debian's Caddy 2.6.2, which
//! sends the ETag as a trailer). The admin API is spoken in HTTP/1.1 over a unix socket
//! (with the empty `Host` Caddy requires there) or the loopback. Caddy not answering, or answering 5xx, is the host's state (a
//! fault); Caddy refusing a change with a 4xx is a verdict on the revision that asked for it
//! (`docker::proxy_err` decides).

use std::time::Duration;

use desired_state_schema::ProxySpec;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};

use crate::config::AdminEndpoint;

/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The server the agent adds for `hosts`-only routes when Caddy has none on :443.
const HTTPS_SERVER: &str = "driftless-https";
/// How many times a change is made again after Caddy's 412 (another writer changed the
/// config between the read and the write).
const ATTEMPTS: usize = 5;

/// Why Caddy's admin API did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CaddyError {
    #[error("Caddy's admin API at {at} does not answer ({detail}): is Caddy running (systemctl status caddy) with admin.listen set to it?")]
    Unreachable { at: String, detail: String },
    #[error("Caddy's admin API at {at} refused {method} {path}: {status} {body}")]
    Refused { at: String, method: String, path: String, status: u16, body: String },
    /// Another writer changed Caddy's config between each read and write, `ATTEMPTS` times.
    #[error("Caddy's config at {at} kept changing under this agent's change ({attempts} attempts, each answered 412): another writer is busy with it; the change is made again at the next cycle")]
    Contended { at: String, attempts: usize },
}

/// A client of one Caddy admin endpoint.
#[derive(Clone, Debug)]
pub struct Caddy {
    /// Where the admin API answers.
    endpoint: AdminEndpoint,
}

/// The route id of resource `name`.
pub fn route_id(name: &str) -> String {
    format!("driftless-{name}")
}

/// The route that sends `proxy`'s traffic to `dial`.
pub fn route(name: &str, proxy: &ProxySpec, dial: &str) -> Value {
    let mut r = json!({
        "@id": route_id(name),
        "handle": [{ "handler": "reverse_proxy", "upstreams": [{ "dial": dial }] }],
        "terminal": true,
    });
    if !proxy.hosts.is_empty() {
        r["match"] = json!([{ "host": proxy.hosts }]);
    }
    r
}

impl Caddy {
    pub fn new(endpoint: AdminEndpoint) -> Caddy {
        Caddy { endpoint }
    }

    fn at(&self) -> String {
        match &self.endpoint {
            AdminEndpoint::Unix(p) => format!("unix/{}", p.display()),
            AdminEndpoint::Tcp(a) => a.clone(),
        }
    }

    /// One request; the status and the body.
    async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Vec<u8>), CaddyError> {
        self.exchange(method, path, body, None).await.map(|(status, body, _)| (status, body))
    }

    /// One request, with `If-Match: if_match` when given; the status, the body and the
    /// `ETag` Caddy sent (as a header or a trailer).
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(u16, Vec<u8>, Option<String>), CaddyError> {
        let unreachable = |detail: String| CaddyError::Unreachable { at: self.at(), detail };
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let host = match &self.endpoint {
            AdminEndpoint::Unix(_) => String::new(),
            AdminEndpoint::Tcp(a) => a.clone(),
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(tag) = if_match {
            req = req.header(hyper::header::IF_MATCH, tag);
        }
        let req = req
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| unreachable(format!("building {method} {path}: {e}")))?;
        let exchange = async {
            match &self.endpoint {
                AdminEndpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await.map_err(|e| unreachable(e.to_string()))?;
                    send(hyper_util::rt::TokioIo::new(s), req).await.map_err(unreachable)
                }
                AdminEndpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a).await.map_err(|e| unreachable(e.to_string()))?;
                    send(hyper_util::rt::TokioIo::new(s), req).await.map_err(unreachable)
                }
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(unreachable(format!("no answer to {method} {path} in {}s", REQUEST_TIMEOUT.as_secs()))),
        }
    }

    /// Caddy's answer `status` with `body` (its first 500 characters) to `method path`.
    fn refused(&self, method: &str, path: &str, status: u16, body: &[u8]) -> CaddyError {
        CaddyError::Refused {
            at: self.at(),
            method: method.into(),
            path: path.into(),
            status,
            body: String::from_utf8_lossy(body).trim().chars().take(500).collect(),
        }
    }

    /// A request that must succeed (2xx); its body as JSON (`null` when empty).
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CaddyError> {
        let (status, bytes) = self.request(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(self.refused(method, path, status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| CaddyError::Refused {
            at: self.at(),
            method: method.into(),
            path: path.into(),
            status,
            body: format!("an answer that is not JSON: {e}"),
        })
    }

    /// Does Caddy answer?
    pub async fn reachable(&self) -> Result<(), CaddyError> {
        self.call("GET", "/config/admin", None).await.map(|_| ())
    }

    /// What Caddy's HTTP servers are now, as text (or why they could not be read): what the
    /// watcher compares between looks.
    pub async fn fingerprint(&self) -> String {
        match self.call("GET", "/config/apps/http/servers", None).await {
            Ok(v) => v.to_string(),
            Err(CaddyError::Refused { body, .. }) => format!("refused: {body}"),
            Err(CaddyError::Unreachable { .. } | CaddyError::Contended { .. }) => "unreachable".into(),
        }
    }

    /// Whether one of Caddy's HTTP servers listens on `listen` (as written there).
    pub async fn listens_on(&self, listen: &str) -> Result<bool, CaddyError> {
        let servers = self.servers().await?;
        Ok(servers.values().any(|s| {
            s.get("listen").and_then(Value::as_array).is_some_and(|l| l.iter().any(|a| a.as_str() == Some(listen)))
        }))
    }

    /// Where a `hosts`-only route would go: the key of Caddy's server on :443 (its own, or
    /// the agent's `driftless-https`); `None` when the agent would have to add one there.
    pub async fn https_server(&self) -> Result<Option<String>, CaddyError> {
        Ok(https_server(&self.servers().await?))
    }

    /// The route of resource `name` as Caddy has it; `None` when it has none.
    pub async fn get_route(&self, name: &str) -> Result<Option<Value>, CaddyError> {
        let path = format!("/id/{}", route_id(name));
        let (status, bytes) = self.request("GET", &path, None).await?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(self.refused("GET", &path, status, &bytes));
        }
        Ok(serde_json::from_slice(&bytes).ok().filter(|v: &Value| !v.is_null()))
    }

    /// Is the route of `name` the one that sends `proxy`'s traffic to `dial`?
    pub async fn routes_to(&self, name: &str, proxy: &ProxySpec, dial: &str) -> Result<bool, CaddyError> {
        Ok(self.get_route(name).await? == Some(route(name, proxy, dial)))
    }

    /// The servers of Caddy's HTTP app (an empty map when it has none).
    async fn servers(&self) -> Result<serde_json::Map<String, Value>, CaddyError> {
        let apps = self.call("GET", "/config/apps", None).await?;
        Ok(apps.pointer("/http/servers").and_then(Value::as_object).cloned().unwrap_or_default())
    }

    /// Send `name`'s traffic to `dial`: one config change.
    pub async fn switch(&self, name: &str, proxy: &ProxySpec, dial: &str) -> Result<(), CaddyError> {
        let want = route(name, proxy, dial);
        if self.get_route(name).await?.as_ref() == Some(&want) {
            return Ok(());
        }
        let listen = proxy.listen.clone();
        self.rewrite(move |servers| place(servers, name, want.clone(), listen.as_deref())).await
    }

    /// Take `name`'s route (and its own server) out of Caddy's config, nothing else: one
    /// config change.
    pub async fn remove(&self, name: &str) -> Result<(), CaddyError> {
        self.rewrite(|servers| {
            unplace(servers, name);
        })
        .await
    }

    /// Read Caddy's HTTP servers with their ETag, apply `edit`, and write them back in one
    /// change with `If-Match` (nothing when `edit` changed nothing); on 412 (another writer
    /// changed them meanwhile) read and edit again, `ATTEMPTS` times at most.
    async fn rewrite(&self, edit: impl Fn(&mut serde_json::Map<String, Value>)) -> Result<(), CaddyError> {
        for _ in 0..ATTEMPTS {
            let (status, bytes, etag) = self.exchange("GET", "/config/apps", None, None).await?;
            if !(200..300).contains(&status) {
                return Err(self.refused("GET", "/config/apps", status, &bytes));
            }
            let apps: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let before = apps.pointer("/http/servers").and_then(Value::as_object).cloned().unwrap_or_default();
            let mut servers = before.clone();
            edit(&mut servers);
            if servers == before {
                return Ok(());
            }
            crate::failpoint::hit("caddy-between-read-and-write").await;
            // The HTTP app, or the apps, may not exist yet: the change creates them.
            let (method, path, body) = if apps.pointer("/http/servers").is_some_and(Value::is_object) {
                ("PATCH", "/config/apps/http/servers", Value::Object(servers))
            } else if apps.pointer("/http").is_some_and(Value::is_object) {
                ("POST", "/config/apps/http/servers", Value::Object(servers))
            } else if apps.is_object() {
                ("POST", "/config/apps/http", json!({ "servers": servers }))
            } else {
                ("POST", "/config/apps", json!({ "http": { "servers": servers } }))
            };
            let (status, bytes, _) = self.exchange(method, path, Some(&body), etag.as_deref()).await?;
            match status {
                200..=299 => return Ok(()),
                412 => {
                    tracing::info!("Caddy's config changed between this agent's read and write (412 to If-Match): reading it again");
                    continue;
                }
                _ => return Err(self.refused(method, path, status, &bytes)),
            }
        }
        Err(CaddyError::Contended { at: self.at(), attempts: ATTEMPTS })
    }
}

/// Put `want`, the route of `name`, where it belongs in `servers`: with `listen`, as the one
/// route of its own server `driftless-<name>`; with hosts only, first in the routes of Caddy's
/// server on :443 (else of the agent's `driftless-https`, added there). Wherever it was
/// before goes.
fn place(servers: &mut serde_json::Map<String, Value>, name: &str, want: Value, listen: Option<&str>) {
    unplace(servers, name);
    if let Some(listen) = listen {
        let server = json!({ "listen": [listen], "automatic_https": { "disable": true }, "routes": [want] });
        servers.insert(route_id(name), server);
        return;
    }
    match https_server(servers).and_then(|k| servers.get_mut(&k)) {
        Some(server) => match server.get_mut("routes").and_then(Value::as_array_mut) {
            Some(routes) => routes.insert(0, want),
            None => server["routes"] = json!([want]),
        },
        None => {
            servers.insert(HTTPS_SERVER.into(), json!({ "listen": [":443"], "routes": [want] }));
        }
    }
}

/// Take `name`'s own server and its route in any other server out of `servers`.
fn unplace(servers: &mut serde_json::Map<String, Value>, name: &str) {
    let own = route_id(name);
    servers.remove(&own);
    for server in servers.values_mut() {
        if let Some(routes) = server.get_mut("routes").and_then(Value::as_array_mut) {
            routes.retain(|r| r.get("@id").and_then(Value::as_str) != Some(own.as_str()));
        }
    }
}

/// The server of `servers` a `hosts`-only route joins: one of Caddy's own listening on :443,
/// else the agent's `driftless-https`; `None` when there is neither.
fn https_server(servers: &serde_json::Map<String, Value>) -> Option<String> {
    let own = servers
        .iter()
        .find(|(k, s)| {
            !k.starts_with("driftless-")
                && s.get("listen")
                    .and_then(Value::as_array)
                    .is_some_and(|l| l.iter().any(|a| a.as_str().is_some_and(|a| a.ends_with(":443"))))
        })
        .map(|(k, _)| k.clone());
    own.or_else(|| servers.contains_key(HTTPS_SERVER).then(|| HTTPS_SERVER.to_string()))
}

/// One HTTP/1.1 exchange over `io`: the status, the body and the `ETag` (a header, or a
/// trailer as Caddy sends it).
async fn send<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Vec<u8>, Option<String>), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let tag = |h: &hyper::HeaderMap| h.get(hyper::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut etag = tag(resp.headers());
        let collected = resp.into_body().collect().await.map_err(|e| e.to_string())?;
        if let Some(t) = collected.trailers() {
            etag = tag(t).or(etag);
        }
        Ok((status, collected.to_bytes().to_vec(), etag))
    }
    .await;
    driver.abort();
    result
}

/// The address a proxied container answers on: the loopback port the engine published its
/// `proxy.port` on.
pub fn dial(host_port: u16) -> String {
    format!("127.0.0.1:{host_port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(hosts: &[&str], listen: Option<&str>) -> ProxySpec {
        ProxySpec {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            listen: listen.map(str::to_string),
            port: 80,
            path: "/".into(),
            drain: desired_state_schema::Duration::from_secs(1),
        }
    }

    #[test]
    fn routes_carry_their_id_and_match_hosts_only_when_given() {
        let r = route("web", &proxy(&[], Some("127.0.0.1:8080")), "127.0.0.1:49153");
        assert_eq!(
            r,
            json!({"@id": "driftless-web", "terminal": true,
                   "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:49153"}]}]})
        );
        let r = route("web", &proxy(&["app.example.com"], None), "127.0.0.1:1");
        assert_eq!(r["match"], json!([{"host": ["app.example.com"]}]));
    }

    /// A move between `listen` and hosts only is one edit of the servers: the route leaves
    /// where it was and arrives where it goes; Caddy's own routes and servers stay as they are.
    #[test]
    fn a_route_moves_in_one_edit_and_leaves_the_rest_alone() {
        let theirs = json!({"@id": "blog", "handle": []});
        let mut servers: serde_json::Map<String, Value> =
            serde_json::from_value(json!({"srv0": {"listen": [":443"], "routes": [theirs]}})).unwrap();
        let on = |listen: Option<&str>, hosts: &[&str]| route("web", &proxy(hosts, listen), "127.0.0.1:1");
        place(&mut servers, "web", on(Some("127.0.0.1:8080"), &[]), Some("127.0.0.1:8080"));
        assert_eq!(servers["driftless-web"]["routes"][0]["@id"], "driftless-web");
        assert_eq!(servers["srv0"]["routes"], json!([theirs]));
        // To hosts only: out of its own server, first in Caddy's :443 server.
        place(&mut servers, "web", on(None, &["a.example"]), None);
        assert!(!servers.contains_key("driftless-web"));
        assert_eq!(servers["srv0"]["routes"][0]["@id"], "driftless-web");
        assert_eq!(servers["srv0"]["routes"][1], theirs);
        // And back: one route, in its own server again.
        place(&mut servers, "web", on(Some("127.0.0.1:8080"), &[]), Some("127.0.0.1:8080"));
        assert_eq!(servers["srv0"]["routes"], json!([theirs]));
        unplace(&mut servers, "web");
        assert_eq!(Value::Object(servers), json!({"srv0": {"listen": [":443"], "routes": [theirs]}}));
        // No server on :443: the agent's own.
        let mut none = serde_json::Map::new();
        place(&mut none, "web", on(None, &["a.example"]), None);
        assert_eq!(none[HTTPS_SERVER]["listen"], json!([":443"]));
    }
}
