//! Serving the API on a socket, with the limits a shared daemon needs that
//! `axum::serve` does not give: a client must send its request headers within a
//! deadline (half-sent requests otherwise hold a descriptor for as long as the client
//! likes), a failing `accept` (fd limit reached) backs off instead of spinning, and
//! shutdown waits for requests in flight for a bounded time only.

use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::time::Duration;

/// How long a client has to send a request's headers (also the idle keep-alive time).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
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
        app,
        shutdown,
        header_timeout,
    )
    .await
}

async fn serve<S, F>(
    mut accept: impl FnMut() -> F,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    header_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = std::io::Result<(S, String)>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(crate::auth::Peer(peer))),
        );
        let tls = tls.clone();
        let watcher = graceful.watcher();
        // The handshake runs in the connection's task, under the same deadline as the
        // headers: a client that stalls it holds one task, never the accept loop.
        tokio::spawn(async move {
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
