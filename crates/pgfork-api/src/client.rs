//! The API client the CLI (and tests) use: HTTP/1.1 over the daemon's unix socket, or
//! over TCP to a base URL such as `http://host:port/api/v2`.

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
    #[error("invalid API URL {0:?}: use http://HOST:PORT/api/v2")]
    BadUrl(String),
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
    Tcp { authority: String, prefix: String },
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

    /// `base` like `http://127.0.0.1:4000/api/v2`.
    pub fn tcp(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::BadUrl(base.to_string()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = path
            .trim_end_matches('/')
            .strip_suffix("api/v2")
            .unwrap_or(path)
            .trim_end_matches('/');
        Ok(Client {
            transport: Transport::Tcp {
                authority: authority.to_string(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("/{prefix}")
                },
            },
            token,
            timeout: Duration::from_secs(3600),
        })
    }

    /// The same client with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn target(&self) -> String {
        match &self.transport {
            Transport::Unix(p) => p.display().to_string(),
            Transport::Tcp { authority, .. } => authority.clone(),
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
        let (host, full_path) = match &self.transport {
            Transport::Unix(_) => ("localhost".to_string(), path.to_string()),
            Transport::Tcp { authority, prefix } => (authority.clone(), format!("{prefix}{path}")),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(full_path)
            .header("host", host)
            .header("accept", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let has_body = body.is_some();
        if has_body {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let fut = async {
            let resp = match &self.transport {
                Transport::Unix(p) => {
                    let stream = tokio::net::UnixStream::connect(p)
                        .await
                        .map_err(connect_err)?;
                    roundtrip(stream, req).await?
                }
                Transport::Tcp { authority, .. } => {
                    let stream = tokio::net::TcpStream::connect(authority.as_str())
                        .await
                        .map_err(connect_err)?;
                    roundtrip(stream, req).await?
                }
            };
            Ok::<_, ClientError>(resp)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| {
            ClientError::Protocol(format!("no answer within {} s", self.timeout.as_secs()))
        })?
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
        let (status, bytes) = self.send(method, path, body).await?;
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
    fn parses_tcp_base() {
        let c = Client::tcp("http://127.0.0.1:4000/api/v2", None).expect("valid");
        assert_eq!(c.target(), "127.0.0.1:4000");
        assert!(Client::tcp("ftp://x", None).is_err());
    }
}
