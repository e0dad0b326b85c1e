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

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    header_timeout: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(5);
                stream
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept an API connection; backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
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
