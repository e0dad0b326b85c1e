//! The axum router: HTTP in, [`Backend`] calls, JSON out.

use crate::auth::Grant;
use crate::types::*;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Extension;
use axum::{Json, Router};
use serde::Deserialize;
use std::future::Future;
use std::sync::Arc;

/// What a server must do to serve the API. Branch references in paths are ids or, as a
/// pgfork extension, names (percent-encoded when they contain `/`), which saves clients
/// a lookup round trip.
pub trait Backend: Send + Sync + 'static {
    fn status(&self) -> impl Future<Output = Result<DaemonStatus, ApiError>> + Send;
    /// What the API key `key` allows (network requests only); 401 when it allows
    /// nothing. `from` is the caller's address, for the key's audit trail.
    fn authenticate(
        &self,
        key: String,
        from: String,
    ) -> impl Future<Output = Result<Grant, ApiError>> + Send;
    /// The id of a project given by id or name.
    fn project_id(&self, project: String) -> impl Future<Output = Result<String, ApiError>> + Send;
    fn create_api_key(
        &self,
        req: ApiKeyCreateRequest,
    ) -> impl Future<Output = Result<ApiKeyCreateResponse, ApiError>> + Send;
    fn list_api_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyInfo>, ApiError>> + Send;
    fn revoke_api_key(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<ApiKeyRevokeResponse, ApiError>> + Send;
    fn doctor(&self) -> impl Future<Output = Result<DoctorResponse, ApiError>> + Send;
    fn shutdown(&self) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn list_projects(&self) -> impl Future<Output = Result<ProjectsResponse, ApiError>> + Send;
    fn create_project(
        &self,
        req: ProjectCreateRequest,
    ) -> impl Future<Output = Result<ProjectResponse, ApiError>> + Send;
    fn get_project(
        &self,
        project: String,
    ) -> impl Future<Output = Result<ProjectResponse, ApiError>> + Send;
    fn delete_project(
        &self,
        project: String,
    ) -> impl Future<Output = Result<ProjectResponse, ApiError>> + Send;
    fn list_branches(
        &self,
        project: String,
        q: ListQuery,
    ) -> impl Future<Output = Result<BranchesResponse, ApiError>> + Send;
    fn create_branch(
        &self,
        project: String,
        req: BranchCreateRequest,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    fn get_branch(
        &self,
        project: String,
        branch: String,
        sizes: bool,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    fn update_branch(
        &self,
        project: String,
        branch: String,
        req: BranchUpdateRequest,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    fn delete_branch(
        &self,
        project: String,
        branch: String,
        query: DeleteQuery,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    fn restore_branch(
        &self,
        project: String,
        branch: String,
        req: BranchRestoreRequest,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    fn recover_branch(
        &self,
        project: String,
        branch: String,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    /// Starts (`run = true`) or stops the branch's Postgres.
    fn set_running(
        &self,
        project: String,
        branch: String,
        run: bool,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    /// Neon's `reveal_password`: a role's password, when pgfork set it (rotated).
    fn reveal_password(
        &self,
        project: String,
        branch: String,
        role: String,
    ) -> impl Future<Output = Result<RolePasswordResponse, ApiError>> + Send;
    /// Neon's read-only views of a branch and a project.
    fn branch_endpoints(
        &self,
        project: String,
        branch: String,
    ) -> impl Future<Output = Result<EndpointsResponse, ApiError>> + Send;
    fn project_endpoints(
        &self,
        project: String,
    ) -> impl Future<Output = Result<EndpointsResponse, ApiError>> + Send;
    fn get_endpoint(
        &self,
        project: String,
        endpoint: String,
    ) -> impl Future<Output = Result<EndpointResponse, ApiError>> + Send;
    fn branch_roles(
        &self,
        project: String,
        branch: String,
    ) -> impl Future<Output = Result<RolesResponse, ApiError>> + Send;
    fn branch_role(
        &self,
        project: String,
        branch: String,
        role: String,
    ) -> impl Future<Output = Result<RoleResponse, ApiError>> + Send;
    fn branch_databases(
        &self,
        project: String,
        branch: String,
    ) -> impl Future<Output = Result<DatabasesResponse, ApiError>> + Send;
    fn branch_database(
        &self,
        project: String,
        branch: String,
        database: String,
    ) -> impl Future<Output = Result<DatabaseResponse, ApiError>> + Send;
    fn branch_schema(
        &self,
        project: String,
        branch: String,
        q: SchemaQuery,
    ) -> impl Future<Output = Result<BranchSchemaResponse, ApiError>> + Send;
    fn list_operations(
        &self,
        project: String,
    ) -> impl Future<Output = Result<OperationsResponse, ApiError>> + Send;
    fn connection_uri(
        &self,
        project: String,
        q: ConnectionUriQuery,
    ) -> impl Future<Output = Result<ConnectionUriResponse, ApiError>> + Send;
    fn compare_schema(
        &self,
        project: String,
        branch: String,
        q: CompareSchemaQuery,
    ) -> impl Future<Output = Result<BranchSchemaCompareResponse, ApiError>> + Send;
    fn branch_freshness(
        &self,
        project: String,
        branch: String,
    ) -> impl Future<Output = Result<BranchFreshness, ApiError>> + Send;
    fn refresh_root(
        &self,
        project: String,
        req: RootRefreshRequest,
    ) -> impl Future<Output = Result<RootRefreshResponse, ApiError>> + Send;
    fn create_snapshot(
        &self,
        project: String,
        branch: String,
        q: SnapshotCreateQuery,
    ) -> impl Future<Output = Result<SnapshotResponse, ApiError>> + Send;
    fn list_snapshots(
        &self,
        project: String,
    ) -> impl Future<Output = Result<SnapshotsResponse, ApiError>> + Send;
    fn delete_snapshot(
        &self,
        project: String,
        snapshot: String,
    ) -> impl Future<Output = Result<OperationsResponse, ApiError>> + Send;
    fn restore_snapshot(
        &self,
        project: String,
        snapshot: String,
        req: SnapshotRestoreRequest,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    fn restart(
        &self,
        project: String,
        branch: String,
    ) -> impl Future<Output = Result<BranchResponse, ApiError>> + Send;
    fn update_project(
        &self,
        project: String,
        req: ProjectUpdateRequest,
    ) -> impl Future<Output = Result<ProjectResponse, ApiError>> + Send;
    /// The caller (`/users/me`, `/auth`), and the one organization a pgfork server has.
    fn me(&self) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send;
    /// pgfork: a project's webhook secret for pull-request branches (owner only).
    fn create_webhook(
        &self,
        project: String,
        req: WebhookCreate,
    ) -> impl Future<Output = Result<WebhookCreated, ApiError>> + Send;
    /// pgfork: a webhook delivery, authenticated by its signature (not an API key).
    fn webhook(
        &self,
        provider: String,
        project: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<WebhookOutcome, ApiError>> + Send;
    /// Neon: the rules a branch was masked with (none for a branch that was not masked
    /// itself; a child of a masked branch copies masked data).
    fn masking_rules(
        &self,
        project: String,
        branch: String,
    ) -> impl Future<Output = Result<MaskingRulesResponse, ApiError>> + Send;
    /// pgfork: the columns of a branch that look personal and the rules do not cover.
    fn masking_check(
        &self,
        project: String,
        branch: String,
        req: MaskingCheckRequest,
    ) -> impl Future<Output = Result<MaskingCheckResponse, ApiError>> + Send;
    /// pgfork: the follow-HEAD endpoint of a work tree (made on first request).
    fn follow(
        &self,
        project: String,
        path: String,
    ) -> impl Future<Output = Result<FollowResponse, ApiError>> + Send;
    /// pgfork: remember a repository work tree of the project (for the daemon's git gc).
    fn register_repo(
        &self,
        project: String,
        path: String,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn get_operation(
        &self,
        project: String,
        operation: String,
    ) -> impl Future<Output = Result<OperationResponse, ApiError>> + Send;
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(ApiErrorBody {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response()
    }
}

#[derive(Debug, Deserialize, Default)]
struct SizesQuery {
    #[serde(default)]
    sizes: bool,
}

/// Endpoint ids mirror branch ids (`ep-x` serves `br-x`), as each branch has one endpoint.
pub fn endpoint_to_branch(endpoint: &str) -> String {
    match endpoint.strip_prefix("ep-") {
        Some(rest) => format!("br-{rest}"),
        None => endpoint.to_string(),
    }
}

/// The API for the network: every request needs an API key, and the owner's routes
/// are absent (see [`crate::auth`]) — except webhook deliveries, which GitHub, GitLab
/// and Gitea authenticate by signing them with the project's secret.
pub fn network_router<B: Backend>(backend: Arc<B>) -> Router {
    network_router_with(backend, Router::new())
}

/// [`network_router`] with more routes behind the same key gate (the daemon's `/mcp`).
pub fn network_router_with<B: Backend>(backend: Arc<B>, extra: Router) -> Router {
    routes(backend.clone())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            backend.clone(),
            crate::auth::require_key::<B>,
        ))
        .merge(deliveries(backend))
}

/// The API on the owner's unix socket: everything.
pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    routes(backend.clone()).merge(deliveries(backend))
}

/// Routes that need no API key: webhook deliveries (signed) and the API's description.
fn deliveries<B: Backend>(backend: Arc<B>) -> Router {
    Router::new()
        .route(
            "/api/v2/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route(
            "/api/v2/pgfork/webhooks/{provider}/{project}",
            post(
                |State(b): State<Arc<B>>,
                 Path((provider, p)): Path<(String, String)>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let headers = headers
                        .iter()
                        .filter_map(|(k, v)| {
                            Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
                        })
                        .collect();
                    b.webhook(provider, p, headers, body.to_vec())
                        .await
                        .map(Json)
                },
            ),
        )
        .layer(axum::middleware::map_response(errors_as_json))
        .with_state(backend)
}

fn routes<B: Backend>(backend: Arc<B>) -> Router {
    Router::new()
        .route("/api/v2/pgfork/status", get(|State(b): State<Arc<B>>| async move { b.status().await.map(Json) }))
        .route("/api/v2/pgfork/doctor", get(|State(b): State<Arc<B>>| async move { b.doctor().await.map(Json) }))
        .route(
            "/api/v2/pgfork/shutdown",
            post(|State(b): State<Arc<B>>| async move { b.shutdown().await.map(|_| StatusCode::ACCEPTED) }),
        )
        .route(
            "/api/v2/projects",
            get(|State(b): State<Arc<B>>, grant: Option<Extension<Grant>>| async move {
                // A project key lists its own project only.
                let scope = grant.and_then(|Extension(g)| g.project_id);
                b.list_projects().await.map(|mut r| {
                    if let Some(own) = scope {
                        r.projects.retain(|p| p.id == own);
                    }
                    Json(r)
                })
            })
            .post(
                |State(b): State<Arc<B>>, Json(req): Json<ProjectCreateRequest>| async move {
                    b.create_project(req).await.map(|r| (StatusCode::CREATED, Json(r)))
                },
            ),
        )
        .route(
            "/api/v2/projects/{project}",
            get(|State(b): State<Arc<B>>, Path(p): Path<String>| async move { b.get_project(p).await.map(Json) })
                .patch(|State(b): State<Arc<B>>, Path(p): Path<String>, Json(req): Json<ProjectUpdateRequest>| async move {
                    b.update_project(p, req).await.map(Json)
                })
                .delete(|State(b): State<Arc<B>>, Path(p): Path<String>| async move { b.delete_project(p).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/branches",
            get(|State(b): State<Arc<B>>, Path(p): Path<String>, Query(q): Query<ListQuery>| async move {
                b.list_branches(p, q).await.map(Json)
            })
            .post(
                |State(b): State<Arc<B>>, Path(p): Path<String>, Json(req): Json<BranchCreateRequest>| async move {
                    b.create_branch(p, req).await.map(|r| (StatusCode::CREATED, Json(r)))
                },
            ),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}",
            get(
                |State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, Query(q): Query<SizesQuery>| async move {
                    b.get_branch(p, br, q.sizes).await.map(Json)
                },
            )
            .patch(
                |State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, Json(req): Json<BranchUpdateRequest>| async move {
                    b.update_branch(p, br, req).await.map(Json)
                },
            )
            .delete(
                |State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, Query(q): Query<DeleteQuery>| async move {
                    b.delete_branch(p, br, q).await.map(Json)
                },
            ),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/restore",
            post(
                |State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, body: Option<Json<BranchRestoreRequest>>| async move {
                    b.restore_branch(p, br, body.map(|Json(r)| r).unwrap_or_default()).await.map(Json)
                },
            ),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/recover",
            post(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move {
                b.recover_branch(p, br).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/start",
            post(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move {
                b.set_running(p, br, true).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/stop",
            post(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move {
                b.set_running(p, br, false).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/endpoints/{endpoint}/start",
            post(|State(b): State<Arc<B>>, Path((p, ep)): Path<(String, String)>| async move {
                b.set_running(p, endpoint_to_branch(&ep), true).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/endpoints/{endpoint}/suspend",
            post(|State(b): State<Arc<B>>, Path((p, ep)): Path<(String, String)>| async move {
                b.set_running(p, endpoint_to_branch(&ep), false).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/roles/{role}/reveal_password",
            get(|State(b): State<Arc<B>>, Path((p, br, r)): Path<(String, String, String)>| async move {
                b.reveal_password(p, br, r).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/pgfork/webhook",
            post(|State(b): State<Arc<B>>, Path(p): Path<String>, Json(req): Json<WebhookCreate>| async move {
                b.create_webhook(p, req).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branch_anonymized",
            post(|State(b): State<Arc<B>>, Path(p): Path<String>, Json(req): Json<BranchAnonymizedCreateRequest>| async move {
                if req.masking_rules.is_empty() {
                    return Err(ApiError::bad_request(
                        "pgfork masks while it creates the branch: give masking_rules (no client sees it before masking has finished)",
                    ));
                }
                let mut create = req.branch_create.unwrap_or(BranchCreateRequest {
                    branch: BranchCreate::default(),
                    endpoints: vec![],
                });
                create.branch.pgfork_masking_rules = Some(req.masking_rules);
                b.create_branch(p, create).await.map(|r| (StatusCode::CREATED, Json(r)))
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/masking_rules",
            get(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move {
                b.masking_rules(p, br).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/pgfork/masking_check",
            post(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, Json(req): Json<MaskingCheckRequest>| async move {
                b.masking_check(p, br, req).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/pgfork/follow",
            post(|State(b): State<Arc<B>>, Path(p): Path<String>, Json(req): Json<RepoRegistration>| async move {
                b.follow(p, req.path).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/pgfork/repos",
            post(|State(b): State<Arc<B>>, Path(p): Path<String>, Json(req): Json<RepoRegistration>| async move {
                b.register_repo(p, req.path).await.map(|_| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/api/v2/projects/{project}/operations/{operation}",
            get(|State(b): State<Arc<B>>, Path((p, op)): Path<(String, String)>| async move {
                b.get_operation(p, op).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/endpoints",
            get(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move { b.branch_endpoints(p, br).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/endpoints",
            get(|State(b): State<Arc<B>>, Path(p): Path<String>| async move { b.project_endpoints(p).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/endpoints/{endpoint}",
            get(|State(b): State<Arc<B>>, Path((p, ep)): Path<(String, String)>| async move { b.get_endpoint(p, ep).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/roles",
            get(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move { b.branch_roles(p, br).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/roles/{role}",
            get(|State(b): State<Arc<B>>, Path((p, br, r)): Path<(String, String, String)>| async move { b.branch_role(p, br, r).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/databases",
            get(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move { b.branch_databases(p, br).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/databases/{database}",
            get(|State(b): State<Arc<B>>, Path((p, br, d)): Path<(String, String, String)>| async move { b.branch_database(p, br, d).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/schema",
            get(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, Query(q): Query<SchemaQuery>| async move {
                b.branch_schema(p, br, q).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/compare_schema",
            get(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, Query(q): Query<CompareSchemaQuery>| async move {
                b.compare_schema(p, br, q).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/snapshot",
            post(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>, Query(q): Query<SnapshotCreateQuery>| async move {
                b.create_snapshot(p, br, q).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/snapshots",
            get(|State(b): State<Arc<B>>, Path(p): Path<String>| async move {
                b.list_snapshots(p).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/snapshots/{snapshot}",
            delete(|State(b): State<Arc<B>>, Path((p, s)): Path<(String, String)>| async move {
                b.delete_snapshot(p, s).await.map(|r| (axum::http::StatusCode::ACCEPTED, Json(r)))
            }),
        )
        .route(
            "/api/v2/projects/{project}/snapshots/{snapshot}/restore",
            post(|State(b): State<Arc<B>>, Path((p, s)): Path<(String, String)>, body: Option<Json<SnapshotRestoreRequest>>| async move {
                b.restore_snapshot(p, s, body.map(|Json(r)| r).unwrap_or_default()).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/pgfork_root_refresh",
            post(|State(b): State<Arc<B>>, Path(p): Path<String>, body: Option<Json<RootRefreshRequest>>| async move {
                b.refresh_root(p, body.map(|Json(r)| r).unwrap_or_default()).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/pgfork_freshness",
            get(|State(b): State<Arc<B>>, Path((p, br)): Path<(String, String)>| async move {
                b.branch_freshness(p, br).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/endpoints/{endpoint}/restart",
            post(|State(b): State<Arc<B>>, Path((p, ep)): Path<(String, String)>| async move {
                b.restart(p, endpoint_to_branch(&ep)).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/{project}/branches/{branch}/set_as_default",
            post(|Path((_p, br)): Path<(String, String)>| async move {
                Err::<Json<BranchResponse>, _>(ApiError::new(
                    422,
                    "UNPROCESSABLE_ENTITY",
                    format!("pgfork's default branch is the project's root, which cannot change: {br:?} stays a branch of it"),
                ))
            }),
        )
        .route(
            "/api/v2/projects/{project}/operations",
            get(|State(b): State<Arc<B>>, Path(p): Path<String>| async move { b.list_operations(p).await.map(Json) }),
        )
        .route(
            "/api/v2/projects/{project}/connection_uri",
            get(|State(b): State<Arc<B>>, Path(p): Path<String>, Query(q): Query<ConnectionUriQuery>| async move {
                b.connection_uri(p, q).await.map(Json)
            }),
        )
        .route(
            "/api/v2/projects/shared",
            get(|| async { Json(serde_json::json!({"projects": []})) }),
        )
        .route("/api/v2/users/me", get(|State(b): State<Arc<B>>| async move { b.me().await.map(Json) }))
        .route(
            "/api/v2/users/me/organizations",
            get(|| async { Json(serde_json::json!({"organizations": [organization()]})) }),
        )
        .route(
            "/api/v2/auth",
            get(|State(b): State<Arc<B>>| async move {
                b.me().await.map(|me| {
                    Json(serde_json::json!({
                        "account_id": me["id"],
                        "auth_method": "api_key_user",
                    }))
                })
            }),
        )
        .route(
            "/api/v2/api_keys",
            get(|State(b): State<Arc<B>>| async move { b.list_api_keys().await.map(Json) }).post(
                |State(b): State<Arc<B>>, Json(req): Json<ApiKeyCreateRequest>| async move {
                    b.create_api_key(req).await.map(Json)
                },
            ),
        )
        .route(
            "/api/v2/api_keys/{key}",
            axum::routing::delete(|State(b): State<Arc<B>>, Path(id): Path<i64>| async move {
                b.revoke_api_key(id).await.map(Json)
            }),
        )
        .fallback(|| async { ApiError::not_found("no such API route").into_response() })
        .layer(axum::middleware::map_response(errors_as_json))
        .with_state(backend)
}

/// The one organization of a pgfork server (Neon's clients pick the only one).
pub fn organization() -> serde_json::Value {
    serde_json::json!({
        "id": "org-pgfork",
        "name": "pgfork",
        "handle": "pgfork",
        "plan": "pgfork",
        "managed_by": "pgfork",
        "created_at": "1970-01-01T00:00:00Z",
        "updated_at": "1970-01-01T00:00:00Z",
    })
}

/// Every error is `{code, message}` JSON, including the ones axum makes itself (a body
/// that is not JSON, a missing field, a wrong method): clients parse one shape.
async fn errors_as_json(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNPROCESSABLE_ENTITY => "UNPROCESSABLE_ENTITY",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        _ => "ERROR",
    };
    ApiError::new(
        status.as_u16(),
        code,
        format!("{message}: the request does not match what this endpoint takes"),
    )
    .into_response()
}
