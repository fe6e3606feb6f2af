//! The webhook listener (`webhook.listen`): a push notification from the Git server triggers
//! a poll at once. Accepted deliveries, each checked against the shared secret:
//!
//! | sender | header | check |
//! |---|---|---|
//! | GitHub | `X-Hub-Signature-256: sha256=<hex>` | HMAC-SHA256 of the body |
//! | Gitea / Forgejo | `X-Gitea-Signature` / `X-Forgejo-Signature: <hex>` | HMAC-SHA256 of the body |
//! | GitLab | `X-Gitlab-Token: <secret>` | the secret itself |
//! | anything else | `X-Driftless-Signature: sha256=<hex>` | HMAC-SHA256 of the body |
//!
//! A missing or wrong signature gets 401 and triggers nothing; a body over 1 MiB gets 413.
//! Comparisons are constant-time. The body is not interpreted: any valid delivery means
//! "fetch now", and the selector decides what, if anything, changed.

use std::convert::Infallible;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use sha2::Sha256;
use tokio::net::TcpListener;

pub const MAX_BODY: usize = 1024 * 1024;

/// Which sender's scheme a delivery passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    GitHub,
    Gitea,
    GitLab,
    Generic,
}

/// Check a delivery's signature. `Err` says why it is refused.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<Sender, &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(sig) = header("x-hub-signature-256") {
        let hex = sig.strip_prefix("sha256=").ok_or("X-Hub-Signature-256 must start with sha256=")?;
        return hmac_matches(secret, body, hex).then_some(Sender::GitHub).ok_or("bad X-Hub-Signature-256");
    }
    if let Some(sig) = header("x-gitea-signature").or_else(|| header("x-forgejo-signature")) {
        return hmac_matches(secret, body, sig).then_some(Sender::Gitea).ok_or("bad Gitea/Forgejo signature");
    }
    if let Some(token) = header("x-gitlab-token") {
        return constant_eq(token.as_bytes(), secret).then_some(Sender::GitLab).ok_or("bad X-Gitlab-Token");
    }
    if let Some(sig) = header("x-driftless-signature") {
        let hex = sig.strip_prefix("sha256=").ok_or("X-Driftless-Signature must start with sha256=")?;
        return hmac_matches(secret, body, hex).then_some(Sender::Generic).ok_or("bad X-Driftless-Signature");
    }
    Err("no signature header (X-Hub-Signature-256, X-Gitea-Signature, X-Forgejo-Signature, X-Gitlab-Token or X-Driftless-Signature)")
}

fn hmac_matches(secret: &[u8], body: &[u8], hex: &str) -> bool {
    let Some(want) = decode_hex(hex.trim()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&want).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The HMAC-SHA256 signature of `body`, as senders put it in their headers (hex).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r
}

/// Serve deliveries until the process ends; each valid one calls `on_push`.
pub async fn serve(
    listener: TcpListener,
    secret: Vec<u8>,
    on_push: Arc<dyn Fn() + Send + Sync>,
    shutdown: crate::listen::Shutdown,
) {
    let secret = Arc::new(secret);
    crate::listen::serve(
        "webhook",
        listener,
        crate::listen::MAX_CONNECTIONS,
        shutdown,
        move |stream: tokio::net::TcpStream| {
            let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            let secret = secret.clone();
            let on_push = on_push.clone();
            async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let secret = secret.clone();
                    let on_push = on_push.clone();
                    async move { Ok::<_, Infallible>(handle(req, &secret, on_push.as_ref()).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                    tracing::debug!("webhook connection from {peer}: {e}");
                }
            }
        },
    )
    .await
}

async fn handle(req: Request<Incoming>, secret: &[u8], on_push: &(dyn Fn() + Send + Sync)) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "POST a push event here");
    }
    let too_big = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY);
    if too_big {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB");
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB"),
    };
    match verify(&parts.headers, &body, secret) {
        Ok(sender) => {
            tracing::info!("webhook: {sender:?} delivery accepted; syncing now");
            on_push();
            reply(StatusCode::ACCEPTED, "sync triggered")
        }
        Err(why) => {
            tracing::warn!("webhook: delivery refused: {why}");
            reply(StatusCode::UNAUTHORIZED, why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn signatures_per_sender() {
        let secret = b"s3cret";
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = sign(secret, body);
        let table = [
            (headers(&[("x-hub-signature-256", format!("sha256={sig}"))]), Ok(Sender::GitHub)),
            (
                headers(&[("x-hub-signature-256", format!("sha256={}", sign(b"other", body)))]),
                Err("bad X-Hub-Signature-256"),
            ),
            (headers(&[("x-hub-signature-256", sig.clone())]), Err("X-Hub-Signature-256 must start with sha256=")),
            (headers(&[("x-gitea-signature", sig.clone())]), Ok(Sender::Gitea)),
            (headers(&[("x-forgejo-signature", sig.clone())]), Ok(Sender::Gitea)),
            (headers(&[("x-gitlab-token", "s3cret".into())]), Ok(Sender::GitLab)),
            (headers(&[("x-gitlab-token", "s3cre".into())]), Err("bad X-Gitlab-Token")),
            (headers(&[("x-driftless-signature", format!("sha256={sig}"))]), Ok(Sender::Generic)),
        ];
        for (h, want) in table {
            assert_eq!(verify(&h, body, secret), want, "{h:?}");
        }
        assert!(verify(&HeaderMap::new(), body, secret).is_err());
        // A signature over another body does not pass.
        let h = headers(&[("x-hub-signature-256", format!("sha256={sig}"))]);
        assert!(verify(&h, b"tampered", secret).is_err());
    }
}
