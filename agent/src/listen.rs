//! One accept loop for every listener the agent serves (the control socket, the webhook, the
//! metrics endpoint), in the manner of tokio's mini-redis: a connection limit (a semaphore
//! permit per connection), backoff when `accept` fails (out of file handles: 1 ms doubling to
//! 1 s, instead of a hot loop), and a clean stop on shutdown. `Shutdown` is its own type: a
//! watch channel that every loop and connection can wait on.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

/// Connections served at once per listener; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// Tells listeners to stop. Cloned into every loop; `trigger` stops them all.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    /// The sender of a shutdown that is never triggered (`never`), kept so that `recv`
    /// waits instead of returning at once.
    _never: Option<Arc<watch::Sender<bool>>>,
}

/// The sending half of `Shutdown`.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx, _never: None })
    }

    /// A shutdown that is never triggered (for a reconciler run once, or in tests).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown { rx, _never: Some(Arc::new(tx)) }
    }

    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is triggered (or the trigger is gone).
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

/// A listener that hands out connections.
pub trait Accept: Send + 'static {
    type Conn: Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<Self::Conn>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Conn = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<Self::Conn> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::UnixListener {
    type Conn = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<Self::Conn> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Accept connections on `listener` and run `handle` for each (on its own task), at most
/// `limit` at once, until `shutdown`. `what` names the listener in logs.
pub async fn serve<L, F, Fut>(what: &'static str, listener: L, limit: usize, mut shutdown: Shutdown, handle: F)
where
    L: Accept,
    F: Fn(L::Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let handle = Arc::new(handle);
    let mut backoff = Duration::from_millis(1);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.recv() => return,
        };
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.recv() => return,
        };
        match conn {
            Ok(conn) => {
                backoff = Duration::from_millis(1);
                let handle = handle.clone();
                tokio::spawn(async move {
                    handle(conn).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("{what}: accept failed: {e}; retrying in {}ms", backoff.as_millis());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.recv() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_connections_and_stops_on_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (l, p) = (live.clone(), peak.clone());
        let server = tokio::spawn(serve("test", listener, 2, shutdown, move |_conn| {
            let (l, p) = (l.clone(), p.clone());
            async move {
                let now = l.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                p.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                l.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
        let mut clients = Vec::new();
        for _ in 0..6 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2, "at most the limit at once");
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(2), server).await.unwrap().unwrap();
    }
}
