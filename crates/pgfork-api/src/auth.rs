//! Who may call the API over the network.
//!
//! The unix socket is the machine owner's (0600 in a private directory) and needs no key.
//! Over TCP every request carries `Authorization: Bearer <key>`; the backend says what
//! the key is allowed ([`Grant`]) and this layer enforces it before any handler runs, so
//! no route can forget to: a read-only key makes only GET requests, a project key sees
//! one project (others answer 404, as if they did not exist), and the owner's routes —
//! API keys themselves, shutting the daemon down — are not on the network at all.

use crate::router::Backend;
use crate::types::ApiError;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What an API key allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key_id: i64,
    /// Only this project (its id).
    pub project_id: Option<String>,
    pub read_only: bool,
}

/// The address a TCP request came from (for audits: `last_used_from_addr`).
#[derive(Debug, Clone)]
pub struct Peer(pub String);

/// The bearer token in an `Authorization` header, if any.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Routes only the machine's owner may call (over the unix socket).
pub fn owner_only(path: &str) -> bool {
    path == "/api/v2/api_keys"
        || path.starts_with("/api/v2/api_keys/")
        || path == "/api/v2/pgfork/shutdown"
        || path.starts_with("/api/v2/projects/") && path.contains("/pgfork/")
}

/// What a project-scoped key may not reach: everything but its project's routes and the
/// few that describe the caller.
pub enum Scope<'a> {
    /// `/api/v2/projects/{ref}/...`: allowed when `ref` is the key's project.
    Project(&'a str),
    /// The project list (filtered by the handler) and the caller's own identity.
    Open,
    /// Anything else (server-wide routes, creating projects).
    ServerWide,
}

pub fn scope_of<'a>(method: &Method, path: &'a str) -> Scope<'a> {
    if let Some(rest) = path.strip_prefix("/api/v2/projects/") {
        let project = rest.split('/').next().unwrap_or("");
        return Scope::Project(project);
    }
    match path {
        "/api/v2/projects" if method == Method::GET => Scope::Open,
        p if p.starts_with("/api/v2/users/me") || p == "/api/v2/auth" => Scope::Open,
        // The MCP endpoint confines a project key's tools to its project itself.
        "/mcp" => Scope::Open,
        _ => Scope::ServerWide,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The network API's gate: see the module docs.
pub async fn require_key<B: Backend>(
    State(backend): State<Arc<B>>,
    mut req: Request,
    next: Next,
) -> Response {
    let facts = RequestFacts {
        path: req.uri().path().to_string(),
        method: req.method().clone(),
        authorization: req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        peer: req
            .extensions()
            .get::<Peer>()
            .map(|p| p.0.clone())
            .unwrap_or_default(),
    };
    // Every network request is in the daemon's log: who (key id, address), what, and
    // how it ended — the audit trail of a shared server.
    match check(&*backend, &facts).await {
        Ok(grant) => {
            let key = grant.key_id;
            req.extensions_mut().insert(grant);
            let resp = next.run(req).await;
            tracing::info!(key, from = %facts.peer, method = %facts.method, path = %facts.path, status = resp.status().as_u16(), "API request");
            resp
        }
        Err(e) => {
            tracing::warn!(from = %facts.peer, method = %facts.method, path = %facts.path, status = e.status, reason = %e.message, "API request refused");
            e.into_response()
        }
    }
}

/// What the gate looks at, owned (a request body is not `Sync`).
struct RequestFacts {
    path: String,
    method: Method,
    authorization: Option<String>,
    peer: String,
}

async fn check<B: Backend>(backend: &B, req: &RequestFacts) -> Result<Grant, ApiError> {
    let path = req.path.as_str();
    if owner_only(path) {
        return Err(ApiError::new(
            403,
            "FORBIDDEN",
            "this route is only served on the server's own machine (its unix socket): run the pgfork command there",
        ));
    }
    let key = bearer(req.authorization.as_deref()).ok_or_else(|| {
        ApiError::new(
            401,
            "UNAUTHORIZED",
            "this API needs a key: send `Authorization: Bearer <key>` (make one with `pgfork token create` on the server)",
        )
    })?;
    let grant = backend
        .authenticate(key.to_string(), req.peer.clone())
        .await?;
    let method = &req.method;
    // MCP speaks POST for reads too; it offers a read-only key the read-only tools.
    let mcp = path == "/mcp";
    if grant.read_only && !mcp && !(method == Method::GET || method == Method::HEAD) {
        return Err(ApiError::new(
            403,
            "FORBIDDEN",
            "this API key is read-only: use a key made without --read-only to change anything",
        ));
    }
    if let Some(own) = &grant.project_id {
        match scope_of(method, path) {
            Scope::Open => {}
            Scope::Project(r) => {
                let wanted = backend.project_id(percent_decode(r)).await.ok();
                if wanted.as_deref() != Some(own.as_str()) {
                    return Err(ApiError::not_found(format!(
                        "no project {:?} for this API key",
                        percent_decode(r)
                    )));
                }
            }
            Scope::ServerWide => {
                return Err(ApiError::new(
                    403,
                    "FORBIDDEN",
                    "this API key is limited to one project: this route is server-wide",
                ))
            }
        }
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_empty_ones_refused() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn owner_routes_never_reach_the_network() {
        assert!(owner_only("/api/v2/api_keys"));
        assert!(owner_only("/api/v2/api_keys/3"));
        assert!(owner_only("/api/v2/pgfork/shutdown"));
        assert!(owner_only("/api/v2/projects/p/pgfork/follow"));
        assert!(!owner_only("/api/v2/projects/p/branches"));
        assert!(!owner_only("/api/v2/pgfork/status"));
    }

    #[test]
    fn project_keys_reach_only_project_routes() {
        assert!(matches!(
            scope_of(&Method::GET, "/api/v2/projects/web/branches/x"),
            Scope::Project("web")
        ));
        assert!(matches!(
            scope_of(&Method::GET, "/api/v2/projects"),
            Scope::Open
        ));
        assert!(matches!(
            scope_of(&Method::POST, "/api/v2/projects"),
            Scope::ServerWide
        ));
        assert!(matches!(
            scope_of(&Method::GET, "/api/v2/pgfork/status"),
            Scope::ServerWide
        ));
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
