//! The API client the CLI (and tests) use: HTTP/1.1 over the daemon's unix socket
//! (hyper: reqwest has no unix sockets), or over the network to a base URL such as
//! `https://pgfork.example.com:4480/api/v2` or Neon's `https://console.neon.tech/api/v2`
//! (reqwest with rustls: the web's roots plus, for a pgfork server, its CA).

use crate::types::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach the pgfork daemon at {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Api(ApiError),
    #[error("the pgfork server sent a response this client does not understand: {0}")]
    Protocol(String),
    #[error("invalid API URL {0:?}: use https://HOST:PORT/api/v2 (or http:// on loopback)")]
    BadUrl(String),
    #[error("the CA certificate for the API is unusable ({0}): give the server's ca.crt (PEM)")]
    BadCa(String),
}

impl ClientError {
    /// The API error, if the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Transport {
    Unix(PathBuf),
    /// `origin` like `https://host:4480`, `prefix` the path before `/api/v2` (often empty).
    Remote {
        http: reqwest::Client,
        origin: String,
        prefix: String,
    },
}

#[derive(Debug, Clone)]
pub struct Client {
    transport: Transport,
    token: Option<String>,
    timeout: Duration,
}

/// Percent-encodes one path segment (branch names may contain `/`).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    pub fn unix(socket: impl Into<PathBuf>) -> Client {
        Client {
            transport: Transport::Unix(socket.into()),
            token: None,
            timeout: Duration::from_secs(3600),
        }
    }

    /// `base` like `https://host:4480/api/v2`; `ca` (PEM) is trusted besides the web's
    /// roots (a pgfork server's own CA).
    pub fn remote(
        base: &str,
        token: Option<String>,
        ca: Option<&[u8]>,
    ) -> Result<Client, ClientError> {
        let bad = || ClientError::BadUrl(base.to_string());
        let url = reqwest::Url::parse(base.trim()).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad());
        }
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/');
        let prefix = path.strip_suffix("/api/v2").unwrap_or(path).to_string();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("pgfork/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::BadCa(e.to_string()))?;
            if certs.is_empty() {
                return Err(ClientError::BadCa("no PEM certificate in it".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Client {
            transport: Transport::Remote {
                http,
                origin,
                prefix,
            },
            token,
            timeout: Duration::from_secs(3600),
        })
    }

    /// Whether this client talks to a server elsewhere (no local paths, no daemon to start).
    pub fn is_remote(&self) -> bool {
        matches!(self.transport, Transport::Remote { .. })
    }

    /// The same client with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn target(&self) -> String {
        match &self.transport {
            Transport::Unix(p) => p.display().to_string(),
            Transport::Remote { origin, prefix, .. } => format!("{origin}{prefix}"),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let connect_err = |source| ClientError::Connect {
            target: self.target(),
            source,
        };
        let socket = match &self.transport {
            Transport::Unix(p) => p,
            Transport::Remote {
                http,
                origin,
                prefix,
            } => {
                let remote = self.remote_send(http, origin, prefix, method, path, body);
                return tokio::time::timeout(self.timeout, remote)
                    .await
                    .map_err(|_| {
                        ClientError::Protocol(format!(
                            "no answer within {} s",
                            self.timeout.as_secs()
                        ))
                    })?;
            }
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("accept", "application/json");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let fut = async {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(connect_err)?;
            roundtrip(stream, req).await
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| {
            ClientError::Protocol(format!("no answer within {} s", self.timeout.as_secs()))
        })?
    }

    async fn remote_send(
        &self,
        http: &reqwest::Client,
        origin: &str,
        prefix: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut req = http
            .request(method, format!("{origin}{prefix}{path}"))
            .header("accept", "application/json");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| ClientError::Connect {
            target: self.target(),
            source: std::io::Error::other(describe(&e)),
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(describe(&e)))?;
        Ok((status, bytes))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let started = std::time::Instant::now();
        let shown = method.to_string();
        let (status, bytes) = self.send(method, path, body).await?;
        // `pgfork -vv` shows every round trip: where time goes, what the server said.
        tracing::debug!(target: "pgfork::api", "{shown} {path} -> {status} in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
        if !(200..300).contains(&status) {
            return Err(ClientError::Api(api_error(status, &bytes)));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&bytes))))
    }

    /// Whether a server answers at all (used to decide whether to start the daemon).
    pub async fn ping(&self) -> bool {
        self.status().await.is_ok()
    }

    pub async fn status(&self) -> Result<DaemonStatus, ClientError> {
        self.call(Method::GET, "/api/v2/pgfork/status", None::<&()>)
            .await
    }

    pub async fn doctor(&self) -> Result<DoctorResponse, ClientError> {
        self.call(Method::GET, "/api/v2/pgfork/doctor", None::<&()>)
            .await
    }

    pub async fn shutdown(&self) -> Result<(), ClientError> {
        let (status, bytes) = self
            .send(Method::POST, "/api/v2/pgfork/shutdown", None)
            .await?;
        if status == 202 {
            Ok(())
        } else {
            Err(ClientError::Protocol(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )))
        }
    }

    pub async fn create_api_key(
        &self,
        req: &ApiKeyCreateRequest,
    ) -> Result<ApiKeyCreateResponse, ClientError> {
        self.call(Method::POST, "/api/v2/api_keys", Some(req)).await
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, ClientError> {
        self.call(Method::GET, "/api/v2/api_keys", None::<&()>)
            .await
    }

    pub async fn revoke_api_key(&self, id: i64) -> Result<ApiKeyRevokeResponse, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/api/v2/api_keys/{id}"),
            None::<&()>,
        )
        .await
    }

    pub async fn create_webhook(
        &self,
        project: &str,
        req: &WebhookCreate,
    ) -> Result<WebhookCreated, ClientError> {
        self.call(
            Method::POST,
            &format!(
                "/api/v2/projects/{}/pgfork/webhook",
                encode_segment(project)
            ),
            Some(req),
        )
        .await
    }

    /// Neon's `connection_uri` for a role and database of a branch.
    pub async fn connection_uri(
        &self,
        project: &str,
        branch_id: &str,
        database: &str,
        role: &str,
    ) -> Result<ConnectionUriResponse, ClientError> {
        self.call(
            Method::GET,
            &format!(
                "/api/v2/projects/{}/connection_uri?branch_id={}&database_name={}&role_name={}",
                encode_segment(project),
                encode_segment(branch_id),
                encode_segment(database),
                encode_segment(role)
            ),
            None::<&()>,
        )
        .await
    }

    pub async fn branch_databases(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<DatabasesResponse, ClientError> {
        self.call(
            Method::GET,
            &format!("{}/databases", Self::branch_path(project, branch)),
            None::<&()>,
        )
        .await
    }

    pub async fn branch_roles(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<RolesResponse, ClientError> {
        self.call(
            Method::GET,
            &format!("{}/roles", Self::branch_path(project, branch)),
            None::<&()>,
        )
        .await
    }

    pub async fn list_projects(&self) -> Result<ProjectsResponse, ClientError> {
        self.call(Method::GET, "/api/v2/projects", None::<&()>)
            .await
    }

    pub async fn create_project(
        &self,
        req: &ProjectCreateRequest,
    ) -> Result<ProjectResponse, ClientError> {
        self.call(Method::POST, "/api/v2/projects", Some(req)).await
    }

    pub async fn get_project(&self, project: &str) -> Result<ProjectResponse, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/v2/projects/{}", encode_segment(project)),
            None::<&()>,
        )
        .await
    }

    pub async fn delete_project(&self, project: &str) -> Result<ProjectResponse, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/api/v2/projects/{}", encode_segment(project)),
            None::<&()>,
        )
        .await
    }

    pub async fn list_branches(
        &self,
        project: &str,
        include_deleted: bool,
        sizes: bool,
    ) -> Result<BranchesResponse, ClientError> {
        self.call(
            Method::GET,
            &format!(
                "/api/v2/projects/{}/branches?include_deleted={include_deleted}&sizes={sizes}",
                encode_segment(project)
            ),
            None::<&()>,
        )
        .await
    }

    pub async fn create_branch(
        &self,
        project: &str,
        req: &BranchCreateRequest,
    ) -> Result<BranchResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v2/projects/{}/branches", encode_segment(project)),
            Some(req),
        )
        .await
    }

    fn branch_path(project: &str, branch: &str) -> String {
        format!(
            "/api/v2/projects/{}/branches/{}",
            encode_segment(project),
            encode_segment(branch)
        )
    }

    pub async fn get_branch(
        &self,
        project: &str,
        branch: &str,
        sizes: bool,
    ) -> Result<BranchResponse, ClientError> {
        self.call(
            Method::GET,
            &format!("{}?sizes={sizes}", Self::branch_path(project, branch)),
            None::<&()>,
        )
        .await
    }

    pub async fn update_branch(
        &self,
        project: &str,
        branch: &str,
        req: &BranchUpdateRequest,
    ) -> Result<BranchResponse, ClientError> {
        self.call(
            Method::PATCH,
            &Self::branch_path(project, branch),
            Some(req),
        )
        .await
    }

    /// A role's password when pgfork set it (rotated roles), else a 404.
    pub async fn reveal_password(
        &self,
        project: &str,
        branch: &str,
        role: &str,
    ) -> Result<RolePasswordResponse, ClientError> {
        self.call(
            Method::GET,
            &format!(
                "{}/roles/{}/reveal_password",
                Self::branch_path(project, branch),
                role
            ),
            None::<&()>,
        )
        .await
    }

    pub async fn delete_branch(
        &self,
        project: &str,
        branch: &str,
        purge: bool,
    ) -> Result<BranchResponse, ClientError> {
        self.gc_delete_branch(project, branch, purge, None).await
    }

    /// A delete by garbage collection, saying why (see [`DeleteQuery`]).
    pub async fn gc_delete_branch(
        &self,
        project: &str,
        branch: &str,
        purge: bool,
        reason: Option<&str>,
    ) -> Result<BranchResponse, ClientError> {
        let mut path = format!("{}?purge={purge}", Self::branch_path(project, branch));
        if let Some(r) = reason {
            path.push_str("&pgfork_gc_reason=");
            path.push_str(r);
        }
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    pub async fn restore_branch(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<BranchResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/restore", Self::branch_path(project, branch)),
            Some(&BranchRestoreRequest::default()),
        )
        .await
    }

    /// Neon's restore with its options (`preserve_under_name`, a source branch).
    pub async fn restore_branch_with(
        &self,
        project: &str,
        branch: &str,
        req: &BranchRestoreRequest,
    ) -> Result<BranchResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/restore", Self::branch_path(project, branch)),
            Some(req),
        )
        .await
    }

    /// Neon's `compare_schema`: a unified diff from `base` (default: the parent).
    pub async fn compare_schema(
        &self,
        project: &str,
        branch: &str,
        base: Option<&str>,
        database: &str,
    ) -> Result<BranchSchemaCompareResponse, ClientError> {
        let mut path = format!(
            "{}/compare_schema?db_name={}",
            Self::branch_path(project, branch),
            encode_segment(database)
        );
        if let Some(b) = base {
            path.push_str(&format!("&base_branch_id={}", encode_segment(b)));
        }
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Neon's snapshot of a branch (`reason` is pgfork's: `manual` unless automatic).
    pub async fn create_snapshot(
        &self,
        project: &str,
        branch: &str,
        name: Option<&str>,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        reason: Option<&str>,
    ) -> Result<SnapshotResponse, ClientError> {
        let mut q = Vec::new();
        if let Some(n) = name {
            q.push(format!("name={}", encode_segment(n)));
        }
        if let Some(t) = expires_at {
            q.push(format!(
                "expires_at={}",
                encode_segment(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            ));
        }
        if let Some(r) = reason {
            q.push(format!("pgfork_reason={}", encode_segment(r)));
        }
        let mut path = format!("{}/snapshot", Self::branch_path(project, branch));
        if !q.is_empty() {
            path.push('?');
            path.push_str(&q.join("&"));
        }
        self.call(Method::POST, &path, None::<&()>).await
    }

    pub async fn list_snapshots(&self, project: &str) -> Result<SnapshotsResponse, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/v2/projects/{}/snapshots", encode_segment(project)),
            None::<&()>,
        )
        .await
    }

    pub async fn delete_snapshot(
        &self,
        project: &str,
        snapshot: &str,
    ) -> Result<OperationsResponse, ClientError> {
        self.call(
            Method::DELETE,
            &format!(
                "/api/v2/projects/{}/snapshots/{}",
                encode_segment(project),
                encode_segment(snapshot)
            ),
            None::<&()>,
        )
        .await
    }

    pub async fn restore_snapshot(
        &self,
        project: &str,
        snapshot: &str,
        req: &SnapshotRestoreRequest,
    ) -> Result<BranchResponse, ClientError> {
        self.call(
            Method::POST,
            &format!(
                "/api/v2/projects/{}/snapshots/{}/restore",
                encode_segment(project),
                encode_segment(snapshot)
            ),
            Some(req),
        )
        .await
    }

    /// pgfork: make the project's root again from its source, and/or set its schedule.
    pub async fn refresh_root(
        &self,
        project: &str,
        req: &RootRefreshRequest,
    ) -> Result<RootRefreshResponse, ClientError> {
        self.call(
            Method::POST,
            &format!(
                "/api/v2/projects/{}/pgfork_root_refresh",
                encode_segment(project)
            ),
            Some(req),
        )
        .await
    }

    /// pgfork: how current a branch is (its parent, the root's source, migrations).
    pub async fn branch_freshness(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<BranchFreshness, ClientError> {
        self.call(
            Method::GET,
            &format!("{}/pgfork_freshness", Self::branch_path(project, branch)),
            None::<&()>,
        )
        .await
    }

    pub async fn recover_branch(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<BranchResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/recover", Self::branch_path(project, branch)),
            None::<&()>,
        )
        .await
    }

    pub async fn set_running(
        &self,
        project: &str,
        branch: &str,
        run: bool,
    ) -> Result<BranchResponse, ClientError> {
        let verb = if run { "start" } else { "stop" };
        self.call(
            Method::POST,
            &format!("{}/{verb}", Self::branch_path(project, branch)),
            None::<&()>,
        )
        .await
    }

    pub async fn masking_check(
        &self,
        project: &str,
        branch: &str,
        req: &MaskingCheckRequest,
    ) -> Result<MaskingCheckResponse, ClientError> {
        self.call(
            Method::POST,
            &format!(
                "{}/pgfork/masking_check",
                Self::branch_path(project, branch)
            ),
            Some(req),
        )
        .await
    }

    pub async fn follow(&self, project: &str, path: &str) -> Result<FollowResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v2/projects/{}/pgfork/follow", encode_segment(project)),
            Some(&RepoRegistration {
                path: path.to_string(),
            }),
        )
        .await
    }

    pub async fn register_repo(&self, project: &str, path: &str) -> Result<(), ClientError> {
        let body = serde_json::to_vec(&RepoRegistration {
            path: path.to_string(),
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let path = format!("/api/v2/projects/{}/pgfork/repos", encode_segment(project));
        self.call_empty(Method::POST, &path, Some(body)).await
    }

    /// A call whose success has no body (204/202).
    async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        let (status, bytes) = self.send(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        Err(ClientError::Api(api_error(status, &bytes)))
    }

    pub async fn get_operation(
        &self,
        project: &str,
        operation: &str,
    ) -> Result<OperationResponse, ClientError> {
        self.call(
            Method::GET,
            &format!(
                "/api/v2/projects/{}/operations/{}",
                encode_segment(project),
                encode_segment(operation)
            ),
            None::<&()>,
        )
        .await
    }
}

/// The server's `{code, message}` error, or the raw answer when it is not one.
fn api_error(status: u16, bytes: &[u8]) -> ApiError {
    serde_json::from_slice::<ApiErrorBody>(bytes)
        .map(|b| ApiError::new(status, &b.code, b.message))
        .unwrap_or_else(|_| {
            ApiError::new(
                status,
                "HTTP",
                format!("HTTP {status}: {}", String::from_utf8_lossy(bytes)),
            )
        })
}

/// A reqwest error with its causes (the TLS reason is in the chain, not the top).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn roundtrip<S>(stream: S, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .to_bytes();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_branch_names() {
        assert_eq!(encode_segment("feature/x"), "feature%2Fx");
        assert_eq!(encode_segment("a b"), "a%20b");
        assert_eq!(encode_segment("ok-name_1.2"), "ok-name_1.2");
    }

    #[test]
    fn parses_remote_bases() {
        let c = Client::remote("http://127.0.0.1:4000/api/v2", None, None).expect("valid");
        assert_eq!(c.target(), "http://127.0.0.1:4000");
        assert!(c.is_remote());
        let neon = Client::remote("https://console.neon.tech/api/v2/", None, None).expect("neon");
        assert_eq!(neon.target(), "https://console.neon.tech");
        let proxied = Client::remote("https://h/pgfork/api/v2", None, None).expect("prefix");
        assert_eq!(proxied.target(), "https://h/pgfork");
        assert!(Client::remote("ftp://x", None, None).is_err());
        assert!(Client::remote("not a url", None, None).is_err());
        assert!(matches!(
            Client::remote("https://h/api/v2", None, Some(b"not pem")),
            Err(ClientError::BadCa(_))
        ));
    }
}
