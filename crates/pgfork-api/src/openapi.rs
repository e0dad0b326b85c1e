//! The OpenAPI document of the API pgfork serves on the network
//! (`GET /api/v2/openapi.json`): Neon's paths and shapes where pgfork has them, pgfork's
//! extras under `pgfork`-prefixed names. Schemas come from the types themselves
//! (`utoipa::ToSchema`), so the document cannot drift from what handlers return; the
//! route table below is checked against the router by a test.

use crate::types::*;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

/// One documented route: method, path, summary, request body, success status and body,
/// query parameters (name, type, required).
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<&'static str>,
    pub status: u16,
    pub response: Option<&'static str>,
    pub query: &'static [(&'static str, &'static str, bool)],
}

const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    status: u16,
    response: Option<&'static str>,
) -> Route {
    Route {
        method,
        path,
        summary,
        body,
        status,
        response,
        query: &[],
    }
}

const FREE_FORM: &str = "";

/// Every route served on the network, in the router's order.
pub const ROUTES: &[Route] = &[
    r(
        "get",
        "/api/v2/pgfork/status",
        "pgfork: the server and its store",
        None,
        200,
        Some("DaemonStatus"),
    ),
    r(
        "get",
        "/api/v2/pgfork/doctor",
        "pgfork: checks and their fixes",
        None,
        200,
        Some("DoctorResponse"),
    ),
    r(
        "get",
        "/api/v2/projects",
        "List projects",
        None,
        200,
        Some("ProjectsResponse"),
    ),
    r(
        "post",
        "/api/v2/projects",
        "Create a project (its root branch: empty, sample or imported)",
        Some("ProjectCreateRequest"),
        201,
        Some("ProjectResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/shared",
        "Projects shared with the caller (none on pgfork)",
        None,
        200,
        Some(FREE_FORM),
    ),
    r(
        "get",
        "/api/v2/projects/{project}",
        "Get a project",
        None,
        200,
        Some("ProjectResponse"),
    ),
    r(
        "delete",
        "/api/v2/projects/{project}",
        "Delete a project and every branch",
        None,
        200,
        Some("ProjectResponse"),
    ),
    Route {
        query: &[
            ("search", "string", false),
            ("include_deleted", "boolean", false),
            ("sizes", "boolean", false),
        ],
        ..r(
            "get",
            "/api/v2/projects/{project}/branches",
            "List branches (with annotations)",
            None,
            200,
            Some("BranchesResponse"),
        )
    },
    r(
        "post",
        "/api/v2/projects/{project}/branches",
        "Create a branch: a copy-on-write clone of a running parent",
        Some("BranchCreateRequest"),
        201,
        Some("BranchResponse"),
    ),
    Route {
        query: &[("sizes", "boolean", false)],
        ..r(
            "get",
            "/api/v2/projects/{project}/branches/{branch}",
            "Get a branch (by id or name)",
            None,
            200,
            Some("BranchResponse"),
        )
    },
    r(
        "patch",
        "/api/v2/projects/{project}/branches/{branch}",
        "Rename, protect, set or clear the expiry",
        Some("BranchUpdateRequest"),
        200,
        Some("BranchResponse"),
    ),
    Route {
        query: &[("purge", "boolean", false)],
        ..r(
            "delete",
            "/api/v2/projects/{project}/branches/{branch}",
            "Delete a branch (to the trash; purge for good)",
            None,
            200,
            Some("BranchResponse"),
        )
    },
    r(
        "post",
        "/api/v2/projects/{project}/branches/{branch}/restore",
        "Restore a branch from its parent as it is now (reset)",
        Some("BranchRestoreRequest"),
        200,
        Some("BranchResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/branches/{branch}/recover",
        "pgfork: bring a branch back from the trash",
        None,
        200,
        Some("BranchResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/branches/{branch}/start",
        "pgfork: start a branch's Postgres",
        None,
        200,
        Some("BranchResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/branches/{branch}/stop",
        "pgfork: stop a branch's Postgres",
        None,
        200,
        Some("BranchResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/branches/{branch}/endpoints",
        "A branch's endpoints",
        None,
        200,
        Some("EndpointsResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/branches/{branch}/roles",
        "A branch's login roles",
        None,
        200,
        Some("RolesResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/branches/{branch}/roles/{role}",
        "A login role",
        None,
        200,
        Some("RoleResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/branches/{branch}/roles/{role}/reveal_password",
        "A role's password, when pgfork set it",
        None,
        200,
        Some("RolePasswordResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/branches/{branch}/databases",
        "A branch's databases",
        None,
        200,
        Some("DatabasesResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/branches/{branch}/databases/{database}",
        "A database",
        None,
        200,
        Some("DatabaseResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/branches/{branch}/snapshot",
        "Take a snapshot of a branch (Neon's shape; pgfork: a stopped clone)",
        None,
        200,
        Some("SnapshotResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/snapshots",
        "A project's snapshots",
        None,
        200,
        Some("SnapshotsResponse"),
    ),
    r(
        "delete",
        "/api/v2/projects/{project}/snapshots/{snapshot}",
        "Delete a snapshot",
        None,
        202,
        Some("OperationsResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/snapshots/{snapshot}/restore",
        "Restore a snapshot into a new branch, or into its branch (finalize_restore)",
        Some("SnapshotRestoreRequest"),
        200,
        Some("BranchResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/pgfork_root_refresh",
        "pgfork: make the root again from its source, now or on a schedule",
        Some("RootRefreshRequest"),
        200,
        Some("RootRefreshResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/branches/{branch}/pgfork_freshness",
        "pgfork: how current a branch is with its parent (and the root with its source)",
        None,
        200,
        Some("BranchFreshness"),
    ),
    Route {
        query: &[
            ("db_name", "string", true),
            ("lsn", "string", false),
            ("timestamp", "string", false),
        ],
        ..r(
            "get",
            "/api/v2/projects/{project}/branches/{branch}/schema",
            "A database's schema as SQL",
            None,
            200,
            Some("BranchSchemaResponse"),
        )
    },
    r(
        "get",
        "/api/v2/projects/{project}/endpoints",
        "A project's endpoints",
        None,
        200,
        Some("EndpointsResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/endpoints/{endpoint}",
        "An endpoint",
        None,
        200,
        Some("EndpointResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/endpoints/{endpoint}/start",
        "Start an endpoint",
        None,
        200,
        Some("BranchResponse"),
    ),
    r(
        "post",
        "/api/v2/projects/{project}/endpoints/{endpoint}/suspend",
        "Suspend an endpoint",
        None,
        200,
        Some("BranchResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/operations",
        "A project's recent operations",
        None,
        200,
        Some("OperationsResponse"),
    ),
    r(
        "get",
        "/api/v2/projects/{project}/operations/{operation}",
        "An operation",
        None,
        200,
        Some("OperationResponse"),
    ),
    Route {
        query: &[
            ("branch_id", "string", false),
            ("endpoint_id", "string", false),
            ("database_name", "string", false),
            ("role_name", "string", false),
            ("pooled", "boolean", false),
        ],
        ..r(
            "get",
            "/api/v2/projects/{project}/connection_uri",
            "A connection URI",
            None,
            200,
            Some("ConnectionUriResponse"),
        )
    },
    r(
        "get",
        "/api/v2/users/me",
        "The caller",
        None,
        200,
        Some(FREE_FORM),
    ),
    r(
        "get",
        "/api/v2/users/me/organizations",
        "The caller's organizations (one on pgfork)",
        None,
        200,
        Some(FREE_FORM),
    ),
    r(
        "get",
        "/api/v2/auth",
        "How the caller authenticated",
        None,
        200,
        Some(FREE_FORM),
    ),
];

fn schema_ref(name: &str) -> RefOr<Schema> {
    if name.is_empty() {
        ObjectBuilder::new().schema_type(Type::Object).into()
    } else {
        Ref::from_schema_name(name).into()
    }
}

fn components() -> utoipa::openapi::Components {
    let mut b = ComponentsBuilder::new();
    macro_rules! add {
        ($($t:ty),* $(,)?) => {
            $( b = b.schema(<$t as ToSchema>::name(), <$t as PartialSchema>::schema()); )*
        };
    }
    add!(
        ApiErrorBody,
        DaemonStatus,
        Check,
        DoctorResponse,
        ProjectCreateRequest,
        ProjectCreate,
        RootSource,
        Project,
        ProjectResponse,
        ProjectsResponse,
        ConnectionUri,
        Branch,
        Endpoint,
        OperationProgress,
        Operation,
        OperationResponse,
        BranchCreate,
        BranchCreateRequest,
        BranchResponse,
        BranchesResponse,
        Role,
        RolesResponse,
        RoleResponse,
        RolePasswordResponse,
        Database,
        DatabasesResponse,
        DatabaseResponse,
        EndpointsResponse,
        EndpointResponse,
        OperationsResponse,
        BranchSchemaResponse,
        ConnectionUriResponse,
        BranchUpdate,
        BranchUpdateRequest,
        BranchRestoreRequest,
        NeonProjectFacts,
        ImportReport,
        NeonEndpointFacts,
        ConnectionParameters,
        BranchSchemaCompareResponse,
        SchemaChange,
        BranchFreshness,
        RootRefreshRequest,
        Snapshot,
        BranchHistory,
        HistorySettings,
        SnapshotResponse,
        SnapshotsResponse,
        SnapshotRestoreRequest,
        RootRefreshResponse,
        RootFollowing,
        MigrationConflict,
        ProjectUpdate,
        ProjectUpdateRequest,
    );
    b.security_scheme(
        "api_key",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    )
    .build()
}

fn json(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let error = || json(schema_ref("ApiErrorBody"));
    for route in ROUTES {
        let method = match route.method {
            "get" => HttpMethod::Get,
            "post" => HttpMethod::Post,
            "patch" => HttpMethod::Patch,
            _ => HttpMethod::Delete,
        };
        let mut op = OperationBuilder::new()
            .summary(Some(route.summary))
            .operation_id(Some(operation_id(route)))
            .security(SecurityRequirement::new("api_key", Vec::<String>::new()));
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .min_length(Some(1)),
                        )),
                );
            }
        }
        for (name, kind, required) in route.query {
            let t = if *kind == "boolean" {
                Type::Boolean
            } else {
                Type::String
            };
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(if *required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .schema(Some(ObjectBuilder::new().schema_type(t))),
            );
        }
        if let Some(body) = route.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(schema_ref(body)))
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description("success");
        if let Some(resp) = route.response {
            ok = ok.content("application/json", json(schema_ref(resp)));
        }
        op = op.response(route.status.to_string(), ok.build());
        for (status, what) in [
            ("400", "bad request"),
            ("401", "no valid API key"),
            ("403", "the key does not allow it"),
            ("404", "not found"),
            ("409", "conflict"),
            ("413", "body too large"),
            ("415", "not JSON"),
            ("422", "cannot be done (limits, no history)"),
            ("423", "busy"),
            ("500", "server error"),
        ] {
            op = op.response(
                status,
                ResponseBuilder::new()
                    .description(what)
                    .content("application/json", error())
                    .build(),
            );
        }
        paths = paths.path(route.path, PathItem::new(method, op.build()));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("pgfork API (Neon API v2 subset)")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Copy-on-write PostgreSQL branches behind Neon's API v2. pgfork's own fields and routes are named `pgfork_*`, `pgfork:*` or live under `/pgfork/`.",
                ))
                .build(),
        )
        .servers(Some(vec![utoipa::openapi::server::Server::new("/")]))
        .paths(paths.build())
        .components(Some(components()))
        .build()
}

fn operation_id(route: &Route) -> String {
    let words: Vec<&str> = route
        .path
        .trim_start_matches("/api/v2/")
        .split('/')
        .map(|s| s.trim_start_matches('{').trim_end_matches('}'))
        .collect();
    format!("{}_{}", route.method, words.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_schema_it_refers_to() {
        let doc = serde_json::to_value(document()).expect("serializes");
        let text = doc.to_string();
        let defined = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(
                defined.contains_key(&name),
                "{name} is referred to but not defined"
            );
        }
        let ids: std::collections::HashSet<String> = ROUTES.iter().map(operation_id).collect();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique");
        let operations: usize = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| {
                item.as_object().map_or(0, |m| {
                    m.keys()
                        .filter(|k| ["get", "post", "patch", "delete"].contains(&k.as_str()))
                        .count()
                })
            })
            .sum();
        assert_eq!(
            operations,
            ROUTES.len(),
            "every route is in the document once"
        );
    }
}
