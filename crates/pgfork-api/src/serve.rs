//! Serving the API on a socket, with the limits a shared daemon needs that
//! `axum::serve` does not give: a client must send its request headers, and then its
//! body, each within a deadline (half-sent requests otherwise hold a descriptor for as
//! long as the client likes — the webhook route takes them before anyone is
//! authenticated); one network address holds a bounded number of connections; a
//! failing `accept` (fd limit reached) backs off instead of spinning; and shutdown
//! waits for requests in flight for a bounded time only.

use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a client has to send a request's headers (also the idle keep-alive time),
/// and then, again, its whole body.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body read (axum's default limit for its extractors too).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Connections one network address may hold at once (the local socket has no cap).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on a unix socket until `shutdown` completes.
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    header_timeout: Duration,
) {
    serve(
        || async {
            listener
                .accept()
                .await
                .map(|(s, _)| (s, "unix".to_string()))
        },
        None,
        None,
        app,
        shutdown,
        header_timeout,
    )
    .await
}

/// Serves `app` on TCP, over TLS when `tls` is given, until `shutdown` completes.
/// Each request carries the caller's address as a [`crate::auth::Peer`] extension.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    header_timeout: Duration,
) {
    serve(
        || async {
            listener.accept().await.map(|(s, addr)| {
                // Requests are small and interactive: no Nagle delay.
                let _ = s.set_nodelay(true);
                (s, addr.ip().to_string())
            })
        },
        tls.map(tokio_rustls::TlsAcceptor::from),
        Some(MAX_CONNECTIONS_PER_ADDRESS),
        app,
        shutdown,
        header_timeout,
    )
    .await
}

/// Counts a connection against its address while it lives.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    address: String,
}

impl AddressSlot {
    fn take(
        counts: &Arc<Mutex<HashMap<String, usize>>>,
        address: &str,
        cap: usize,
    ) -> Option<AddressSlot> {
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(address.to_string()).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: counts.clone(),
            address: address.to_string(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.address);
            }
        }
    }
}

/// Reads the whole body before the handler runs, within the deadline: handlers then
/// never wait on a slow client, and a stalled upload is answered 408 and closed.
async fn body_in_time(
    deadline: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Ok(Err(_)) => crate::ApiError::new(
            413,
            "PAYLOAD_TOO_LARGE",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes, or was cut off"),
        )
        .into_response(),
        Err(_) => {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), "API request body not received within {deadline:?}; closing");
            let mut resp = crate::ApiError::new(
                408,
                "REQUEST_TIMEOUT",
                format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs()
                ),
            )
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            resp
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve<S, F>(
    mut accept: impl FnMut() -> F,
    tls: Option<tokio_rustls::TlsAcceptor>,
    per_address: Option<usize>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    header_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = std::io::Result<(S, String)>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            body_in_time(header_timeout, req, next)
        },
    ));
    let counts = Arc::new(Mutex::new(HashMap::new()));
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = accept() => r,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(5);
                pair
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept an API connection; backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let slot = match per_address {
            None => None,
            Some(cap) => match AddressSlot::take(&counts, &peer, cap) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!(%peer, "API connection refused: {cap} connections from this address are open");
                    drop(stream);
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(crate::auth::Peer(peer))),
        );
        let tls = tls.clone();
        let watcher = graceful.watcher();
        // The handshake runs in the connection's task, under the same deadline as the
        // headers: a client that stalls it holds one task, never the accept loop.
        tokio::spawn(async move {
            let _slot = slot;
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(header_timeout);
                b
            };
            let result = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "API TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("API TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("API requests still running after {SHUTDOWN_GRACE:?}; closing them");
    }
}
