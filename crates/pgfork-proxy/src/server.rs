//! Listeners, the per-connection state machine and the byte relay.

use crate::protocol::{self, parse_startup, Startup, MAX_STARTUP_LEN};
use crate::scram::ScramVerifier;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// A client that has not finished authenticating within this time is dropped
/// (slowloris and port scanners must not hold connections open).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client may wait for its branch to start before getting an error.
const WAKE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest pause of a listener whose `accept` keeps failing (fd limit reached): it
/// must neither spin nor stop serving once descriptors are free again.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How many connections may be in the startup phase (before authentication) at once,
/// in total and per port. Unauthenticated clients cost a descriptor each and nothing
/// else may be allowed to spend them all: a flood on one port must leave room for
/// other branches, the API and Postgres itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupLimits {
    pub total: usize,
    pub per_port: usize,
}

impl StartupLimits {
    /// Limits for a process allowed `nofile` descriptors: half for unauthenticated
    /// clients (each relayed client needs two), a quarter of those per port.
    pub fn for_fd_limit(nofile: u64) -> StartupLimits {
        let total = (nofile.saturating_sub(64) / 2).clamp(8, 4096) as usize;
        StartupLimits {
            total,
            per_port: (total / 4).max(4),
        }
    }
}

/// Where to reach a running Postgres.
#[derive(Debug, Clone)]
pub struct Target {
    /// The unix socket file (`.../.s.PGSQL.<port>`).
    pub socket: PathBuf,
    /// The branch port the connection is accounted to (for idle tracking): the
    /// listener's own port, or the branch a follow-HEAD port routed to.
    pub port: u16,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// What the proxy asks of the daemon. Every method may do slow work (key derivation,
/// reading git, starting Postgres), so each is async: nothing here blocks a runtime
/// thread that relays other clients' bytes.
pub trait Backend: Send + Sync + 'static {
    /// The SCRAM verifier of `user` on the branch behind `port` — never wakes it.
    /// `None` when no branch is behind the port.
    fn verifier(
        &self,
        port: u16,
        user: &str,
    ) -> impl Future<Output = Option<Arc<ScramVerifier>>> + Send;
    /// A running Postgres for the branch behind `port`, started if suspended. From the
    /// moment it returns `Ok` the connection counts as a client of `Target::port` (so
    /// an idle reaper can never stop the branch under it) until [`Backend::closed`].
    fn wake(&self, port: u16) -> impl Future<Output = Result<Target, BackendError>> + Send;
    /// Where a cancel request for `port` goes, if its Postgres runs.
    fn cancel_target(&self, port: u16) -> impl Future<Output = Option<Target>> + Send;
    /// A connection counted by a successful [`Backend::wake`] ended.
    fn closed(&self, port: u16);
    /// Why no branch answers on `port` yet, when one is being built there (say, while
    /// its personal data is masked): the client is told this instead.
    fn not_yet(&self, _port: u16) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
}

/// Ends the client count a successful wake began, however the session ends.
struct ClientLease<B: Backend> {
    backend: Arc<B>,
    port: u16,
}

impl<B: Backend> Drop for ClientLease<B> {
    fn drop(&mut self) {
        self.backend.closed(self.port);
    }
}

pub struct Proxy<B: Backend> {
    backend: Arc<B>,
    bind: IpAddr,
    startup_timeout: Duration,
    tls: Option<Tls>,
    listeners: Mutex<HashMap<u16, tokio::task::JoinHandle<()>>>,
    limits: StartupLimits,
    in_startup: Arc<tokio::sync::Semaphore>,
}

impl<B: Backend> Proxy<B> {
    /// `tls`: the server configuration offered on `SSLRequest` (None: decline, 'N').
    pub fn new(
        backend: Arc<B>,
        bind: IpAddr,
        startup_timeout: Duration,
        tls: Option<crate::tls::TlsServer>,
    ) -> Arc<Self> {
        Self::with_limits(
            backend,
            bind,
            startup_timeout,
            tls,
            StartupLimits::for_fd_limit(crate::limits::nofile()),
        )
    }

    pub fn with_limits(
        backend: Arc<B>,
        bind: IpAddr,
        startup_timeout: Duration,
        tls: Option<crate::tls::TlsServer>,
        limits: StartupLimits,
    ) -> Arc<Self> {
        Arc::new(Proxy {
            backend,
            bind,
            startup_timeout,
            tls: tls.map(|t| Tls {
                acceptor: tokio_rustls::TlsAcceptor::from(t.config),
                end_point: t.end_point,
            }),
            listeners: Mutex::new(HashMap::new()),
            limits,
            in_startup: Arc::new(tokio::sync::Semaphore::new(limits.total)),
        })
    }

    /// Starts listening on `port` (idempotent).
    pub async fn listen(self: &Arc<Self>, port: u16) -> std::io::Result<()> {
        if self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&port)
        {
            return Ok(());
        }
        let listener = TcpListener::bind((self.bind, port)).await?;
        self.serve_listener(port, listener);
        Ok(())
    }

    /// Serves a port whose socket the caller bound already (so that no other process
    /// can take the port between choosing it and serving it). Idempotent.
    pub fn adopt(
        self: &Arc<Self>,
        port: u16,
        listener: std::net::TcpListener,
    ) -> std::io::Result<()> {
        if self.holds(port) {
            return Ok(());
        }
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        self.serve_listener(port, listener);
        Ok(())
    }

    /// Whether the proxy listens on `port`.
    pub fn holds(&self, port: u16) -> bool {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&port)
    }

    /// The address branch ports listen on.
    pub fn bind_addr(&self) -> IpAddr {
        self.bind
    }

    fn serve_listener(self: &Arc<Self>, port: u16, listener: TcpListener) {
        let backend = self.backend.clone();
        let startup_timeout = self.startup_timeout;
        let tls = self.tls.clone();
        let total = self.in_startup.clone();
        let on_port = Arc::new(tokio::sync::Semaphore::new(self.limits.per_port));
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(5);
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => {
                        backoff = Duration::from_millis(5);
                        stream
                    }
                    Err(e) => {
                        // EMFILE/ENFILE/ENOBUFS: the connection stays in the backlog;
                        // retrying at once would spin a core and starve everything.
                        tracing::warn!(port, error = %e, "cannot accept a connection; backing off {backoff:?}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                        continue;
                    }
                };
                let permits = on_port
                    .clone()
                    .try_acquire_owned()
                    .and_then(|p| total.clone().try_acquire_owned().map(|t| (p, t)));
                let Ok(permits) = permits else {
                    // Over the cap: close at once, so the descriptor is free again.
                    tracing::debug!(port, "too many unauthenticated connections; refusing one");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let backend = backend.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Err(e) =
                        serve(stream, port, backend, startup_timeout, tls, permits).await
                    {
                        tracing::debug!(port, error = %e, "client connection ended with an error");
                    }
                });
            }
        });
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port, task);
    }

    /// Stops listening on `port` (existing connections keep running).
    pub fn close(&self, port: u16) {
        if let Some(t) = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&port)
        {
            t.abort();
        }
    }

    pub fn ports(&self) -> Vec<u16> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

/// TLS on offer: the acceptor, and the channel-binding data of its certificate.
#[derive(Clone)]
struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    end_point: [u8; 32],
}

/// What a client connection can be: plain TCP or TLS over it.
trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for T {}

/// Reads one startup-phase packet: length-prefixed, no type byte.
async fn read_startup_packet<S: ClientStream>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32().await? as usize;
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("invalid startup packet length {len}"),
        ));
    }
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads one typed frontend message (`p` for SASL responses).
async fn read_message<S: ClientStream>(s: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let kind = s.read_u8().await?;
    let len = s.read_u32().await? as usize;
    if !(4..=MAX_STARTUP_LEN).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("invalid message length {len}"),
        ));
    }
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await?;
    Ok((kind, body))
}

fn random_nonce() -> String {
    let mut bytes = [0u8; 18];
    if getrandom::getrandom(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..16].copy_from_slice(&t.to_le_bytes());
    }
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

type Params = std::collections::BTreeMap<String, String>;

/// What the first packets of a connection asked for.
enum Opening {
    /// The client wants TLS and we offer it: upgrade, then read its startup.
    Tls,
    /// A startup message (possibly after declined encryption requests).
    Startup(Params),
    /// Done (a cancel request, or an error already reported).
    Done,
}

/// Reads packets until the client has said what it wants.
async fn opening<S: ClientStream, B: Backend>(
    client: &mut S,
    port: u16,
    backend: &Arc<B>,
    tls_offered: bool,
) -> std::io::Result<Opening> {
    let mut declined = 0;
    loop {
        let body = read_startup_packet(client).await?;
        match parse_startup(&body) {
            Ok(Startup::Ssl) if tls_offered => {
                client.write_all(b"S").await?;
                return Ok(Opening::Tls);
            }
            Ok(Startup::Ssl) | Ok(Startup::GssEnc) if declined < 2 => {
                declined += 1;
                client.write_all(b"N").await?;
            }
            Ok(Startup::Ssl) | Ok(Startup::GssEnc) => {
                return Err(invalid("repeated encryption requests"))
            }
            Ok(Startup::Cancel { .. }) => {
                if let Some(t) = backend.cancel_target(port).await {
                    if let Ok(mut b) = UnixStream::connect(&t.socket).await {
                        let mut packet = 16u32.to_be_bytes().to_vec();
                        packet.extend_from_slice(&body);
                        let _ = b.write_all(&packet).await;
                        let _ = b.shutdown().await;
                    }
                }
                return Ok(Opening::Done);
            }
            Ok(Startup::Startup { params, .. }) => return Ok(Opening::Startup(params)),
            Err(e) => {
                let _ = client
                    .write_all(&protocol::error_response("08P01", &e.to_string()))
                    .await;
                return Err(invalid(&e.to_string()));
            }
        }
    }
}

/// SCRAM-SHA-256 with the client; `false` when it failed (and the client was told).
async fn authenticate<S: ClientStream, B: Backend>(
    client: &mut S,
    port: u16,
    backend: &Arc<B>,
    params: &Params,
    tls_end_point: Option<[u8; 32]>,
) -> std::io::Result<bool> {
    let user = params.get("user").cloned().unwrap_or_default();
    let Some(verifier) = backend.verifier(port, &user).await else {
        // 57P03 (cannot connect now): drivers and poolers treat it as "try again".
        let (code, message) = match backend.not_yet(port).await {
            Some(why) => ("57P03", why),
            None => (
                "3D000",
                "no pgfork branch listens on this port any more".to_string(),
            ),
        };
        client
            .write_all(&protocol::error_response(code, &message))
            .await?;
        return Ok(false);
    };
    // Over TLS, SCRAM-SHA-256-PLUS binds the authentication to our certificate: a
    // client that requires it (`channel_binding=require`) cannot be relayed by an
    // impostor, which would have to present another certificate.
    let offer: &[u8] = if tls_end_point.is_some() {
        b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"
    } else {
        b"SCRAM-SHA-256\0\0"
    };
    client.write_all(&protocol::auth(10, offer)).await?;
    let (kind, body) = read_message(client).await?;
    if kind != b'p' {
        return Err(invalid("expected a SASL initial response"));
    }
    let mech_end = body
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| invalid("malformed SASL initial response"))?;
    let plus = match &body[..mech_end] {
        b"SCRAM-SHA-256" => false,
        b"SCRAM-SHA-256-PLUS" if tls_end_point.is_some() => true,
        _ => {
            client
                .write_all(&protocol::error_response(
                    "28000",
                    "only SCRAM-SHA-256 (and SCRAM-SHA-256-PLUS over TLS) is supported",
                ))
                .await?;
            return Ok(false);
        }
    };
    let data = body
        .get(mech_end + 5..)
        .ok_or_else(|| invalid("malformed SASL initial response"))?;
    let (exchange, server_first) = match verifier.begin(
        &String::from_utf8_lossy(data),
        &random_nonce(),
        crate::scram::Binding {
            plus,
            tls_end_point: tls_end_point.as_ref().map(|e| &e[..]),
        },
    ) {
        Ok(x) => x,
        Err(e) => {
            client
                .write_all(&protocol::error_response("28000", &e.to_string()))
                .await?;
            return Ok(false);
        }
    };
    client
        .write_all(&protocol::auth(11, server_first.as_bytes()))
        .await?;
    let (kind, body) = read_message(client).await?;
    if kind != b'p' {
        return Err(invalid("expected a SASL response"));
    }
    match exchange.finish(&String::from_utf8_lossy(&body)) {
        Ok(server_final) => {
            client
                .write_all(&protocol::auth(12, server_final.as_bytes()))
                .await?;
            Ok(true)
        }
        Err(_) => {
            let msg = protocol::error_response(
                "28P01",
                &format!("password authentication failed for user \"{user}\""),
            );
            client.write_all(&msg).await?;
            Ok(false)
        }
    }
}

/// From the startup parameters on: authenticate, wake the branch, relay.
async fn session<S: ClientStream, B: Backend>(
    mut client: S,
    port: u16,
    backend: Arc<B>,
    deadline: tokio::time::Instant,
    first: Option<Params>,
    permits: StartupPermits,
    tls_end_point: Option<[u8; 32]>,
) -> std::io::Result<()> {
    let params = match first {
        Some(p) => p,
        None => {
            match tokio::time::timeout_at(deadline, opening(&mut client, port, &backend, false))
                .await
            {
                Ok(Ok(Opening::Startup(p))) => p,
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_) => return timed_out(&mut client).await,
            }
        }
    };
    match tokio::time::timeout_at(
        deadline,
        authenticate(&mut client, port, &backend, &params, tls_end_point),
    )
    .await
    {
        Ok(Ok(true)) => drop(permits),
        Ok(Ok(false)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return timed_out(&mut client).await,
    }
    let target = match tokio::time::timeout(WAKE_TIMEOUT, backend.wake(port)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            client
                .write_all(&protocol::error_response(
                    "57P03",
                    &format!("the pgfork branch could not start: {e}"),
                ))
                .await?;
            return Ok(());
        }
        Err(_) => {
            client
                .write_all(&protocol::error_response(
                    "57P03",
                    "the pgfork branch did not start in time",
                ))
                .await?;
            return Ok(());
        }
    };
    let _lease = ClientLease {
        backend: backend.clone(),
        port: target.port,
    };
    let mut server = match UnixStream::connect(&target.socket).await {
        Ok(s) => s,
        Err(e) => {
            client
                .write_all(&protocol::error_response(
                    "57P03",
                    &format!("the pgfork branch is not reachable: {e}"),
                ))
                .await?;
            return Ok(());
        }
    };
    server
        .write_all(&protocol::startup_message(&params))
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut server)
        .await
        .map(|_| ())
}

async fn timed_out<S: ClientStream>(client: &mut S) -> std::io::Result<()> {
    let _ = client
        .write_all(&protocol::error_response(
            "08P01",
            "timeout during connection startup",
        ))
        .await;
    Ok(())
}

/// Held while a connection is unauthenticated (see [`StartupLimits`]).
type StartupPermits = (
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

async fn serve<B: Backend>(
    mut client: TcpStream,
    port: u16,
    backend: Arc<B>,
    startup_timeout: Duration,
    tls: Option<Tls>,
    permits: StartupPermits,
) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + startup_timeout;
    let opened = match tokio::time::timeout_at(
        deadline,
        opening(&mut client, port, &backend, tls.is_some()),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => return timed_out(&mut client).await,
    };
    match opened {
        Opening::Done => Ok(()),
        Opening::Startup(params) => {
            session(client, port, backend, deadline, Some(params), permits, None).await
        }
        Opening::Tls => {
            let Some(Tls {
                acceptor,
                end_point,
            }) = tls
            else {
                return Ok(());
            };
            let stream = match tokio::time::timeout_at(deadline, acceptor.accept(client)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(()),
            };
            session(
                stream,
                port,
                backend,
                deadline,
                None,
                permits,
                Some(end_point),
            )
            .await
        }
    }
}
