//! Request and response bodies. Names and shapes follow Neon's API v2.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `{code, message}`, Neon's error body. `code` is a stable machine-readable string.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

/// An error a backend returns: an HTTP status plus the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BAD_REQUEST", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "CONFLICT", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "INTERNAL", message)
    }
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        Self::new(507, "INSUFFICIENT_STORAGE", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// Where a project's root branch comes from (pgfork extension of project creation).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RootSource {
    Empty,
    Sample {
        scale: u32,
    },
    Logical {
        url: String,
    },
    Physical {
        url: String,
    },
    /// A streaming standby of the source: the root follows it.
    Replica {
        url: String,
    },
    /// The source's schema, then a subscription that copies its data and follows it
    /// (managed services, other major versions). `publication`: an existing one; absent:
    /// pgfork creates one of every table.
    Subscribe {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publication: Option<String>,
    },
    Dir {
        path: String,
    },
}

impl RootSource {
    /// The source URL of the imports that read it with pg_dump (logical, subscribe).
    pub fn logical_url(&self) -> Option<&str> {
        match self {
            RootSource::Logical { url } | RootSource::Subscribe { url, .. } => Some(url),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct ProjectCreate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_version: Option<u32>,
    /// Name of the root branch (Neon: `branch.name`), default `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_source: Option<RootSource>,
    /// pgfork: mask the imported root by these rules (Neon's `MaskingRule` objects)
    /// before it is committed: every branch of the project copies masked data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub pgfork_masking_rules: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_masking_strict: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_masking_keep: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectCreateRequest {
    pub project: ProjectCreate,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub pg_version: u32,
    pub created_at: DateTime<Utc>,
    /// pgfork: the default database and role of connection URLs (absent from Neon's
    /// answers, hence the defaults: a client reads both servers).
    #[serde(default)]
    pub database_name: String,
    #[serde(default)]
    pub role_name: String,
    /// pgfork: the superuser, which has no password and logs in only through the
    /// branch's private socket on the server's machine (`pgfork psql --superuser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_superuser: Option<String>,
    /// pgfork: what the logical import of the root copied from its source and where
    /// the copy differs (a catalog inventory of both, compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_import_report: Option<ImportReport>,
    /// Neon's placement, limits and metering, which clients generated from Neon's
    /// schema require: pgfork has one place, no limits and meters nothing.
    #[serde(flatten, default)]
    pub neon: NeonProjectFacts,
}

/// What an import copied (`copied`) and what differs from the source, with why
/// (`differs`); each entry one sentence.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Default)]
pub struct ImportReport {
    pub copied: Vec<String>,
    pub differs: Vec<String>,
}

/// The fields Neon requires of a project that describe Neon's service rather than the
/// data (see [`Project::neon`]).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Default)]
#[serde(default)]
pub struct NeonProjectFacts {
    pub platform_id: String,
    pub region_id: String,
    pub proxy_host: String,
    pub provisioner: String,
    pub owner_id: String,
    pub creation_source: String,
    pub updated_at: DateTime<Utc>,
    pub store_passwords: bool,
    pub branch_logical_size_limit: i64,
    pub branch_logical_size_limit_bytes: i64,
    pub history_retention_seconds: i64,
    pub active_time: i64,
    pub active_time_seconds: i64,
    pub compute_time_seconds: i64,
    pub cpu_used_sec: i64,
    pub written_data_bytes: i64,
    pub data_transfer_bytes: i64,
    pub data_storage_bytes_hour: i64,
    pub consumption_period_start: DateTime<Utc>,
    pub consumption_period_end: DateTime<Utc>,
}

/// Neon's `PATCH /projects/{id}` body: pgfork changes the name only.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct ProjectUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct ProjectUpdateRequest {
    pub project: ProjectUpdate,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectResponse {
    pub project: Project,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<Branch>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub connection_uris: Vec<ConnectionUri>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectsResponse {
    pub projects: Vec<Project>,
    /// Neon: installed applications and integrations by project (none on pgfork).
    #[serde(default)]
    pub applications: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub integrations: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct ConnectionUri {
    pub connection_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_parameters: Option<ConnectionParameters>,
}

/// Neon's parts of a connection URI.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct ConnectionParameters {
    pub database: String,
    pub password: String,
    pub role: String,
    pub host: String,
    pub pooler_host: String,
}

/// A branch, with Neon's fields and pgfork's (`state`, `port`, sizes, `clone_method`...).
/// Absent values are left out rather than `null`: Neon's schema has no nullable fields.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct Branch {
    pub id: String,
    pub project_id: String,
    pub parent_id: Option<String>,
    pub parent_lsn: Option<String>,
    pub name: String,
    /// Neon's coarse state: `init` while being built, `ready` after.
    pub current_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub protected: bool,
    pub default: bool,
    /// Neon: logical size in bytes.
    pub logical_size: Option<u64>,
    /// Neon: when `current_state` last changed.
    #[serde(default)]
    pub state_changed_at: DateTime<Utc>,
    /// Neon: who made it (`pgfork`).
    #[serde(default)]
    pub creation_source: String,
    /// Neon: the root branch.
    #[serde(default)]
    pub primary: bool,
    /// Neon's metering, which pgfork does not do; `written_data_bytes` is the branch's
    /// unique bytes when sizes were asked for.
    #[serde(default)]
    pub cpu_used_sec: i64,
    #[serde(default)]
    pub active_time_seconds: i64,
    #[serde(default)]
    pub compute_time_seconds: i64,
    #[serde(default)]
    pub written_data_bytes: i64,
    #[serde(default)]
    pub data_transfer_bytes: i64,
    // ---- pgfork ----
    pub parent_name: Option<String>,
    /// `creating`, `running`, `suspended`, `deleted`, `failed`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub port: u16,
    pub git_branch: Option<String>,
    pub logical_bytes: Option<u64>,
    pub unique_bytes: Option<u64>,
    #[serde(default)]
    pub clone_method: String,
    #[serde(default)]
    pub data_dir: String,
    #[serde(default)]
    pub masked: bool,
    /// Outcome of the repository's after-create command (`ok`, `failed`), if run.
    #[serde(default)]
    pub after_create: Option<String>,
    /// pgfork: the branch's history, when it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_history: Option<BranchHistory>,
    /// Seconds without clients before suspend: 0 the server default, -1 never.
    #[serde(default)]
    pub suspend_timeout_seconds: i64,
    pub deleted_at: Option<DateTime<Utc>>,
    /// When a deleted branch is purged for good.
    pub purge_at: Option<DateTime<Utc>>,
    /// pgfork: set when another process listens on the branch's port (the daemon
    /// retries every reaper interval); clients must not use the URL meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_port_error: Option<String>,
    /// pgfork: why garbage collection trashed it (none when a user deleted it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_trash_reason: Option<String>,
    /// pgfork: reasons gc no longer uses for this branch (it was recovered after gc
    /// took it for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pgfork_gc_spared: Vec<String>,
    /// Connection URL including the branch's password (pgfork; Neon's branches have
    /// none: ask `connection_uri`).
    #[serde(default)]
    pub connection_uri: String,
}

/// Neon's endpoint: the compute serving a branch. In pgfork, the branch's Postgres.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct Endpoint {
    /// Neon's placement and compute settings, fixed on pgfork (no autoscaling, no
    /// pooler, one region).
    #[serde(flatten, default)]
    pub neon: NeonEndpointFacts,
    pub id: String,
    pub project_id: String,
    pub branch_id: String,
    pub host: String,
    /// pgfork: the branch's port (also in `host`).
    #[serde(default)]
    pub port: u16,
    #[serde(rename = "type")]
    pub kind: String,
    /// `active` or `idle`.
    pub current_state: String,
    /// Neon: seconds of inactivity before suspend; 0 default, -1 never.
    #[serde(default)]
    pub suspend_timeout_seconds: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// See [`Endpoint::neon`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Default)]
#[serde(default)]
pub struct NeonEndpointFacts {
    pub region_id: String,
    pub autoscaling_limit_min_cu: f64,
    pub autoscaling_limit_max_cu: f64,
    pub pooler_enabled: bool,
    pub pooler_mode: String,
    pub disabled: bool,
    pub passwordless_access: bool,
    pub creation_source: String,
    pub settings: serde_json::Value,
    pub proxy_host: String,
    pub provisioner: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq, Default)]
pub struct OperationProgress {
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct Operation {
    pub id: String,
    pub project_id: String,
    pub branch_id: Option<String>,
    pub endpoint_id: Option<String>,
    /// Neon's action: `create_branch`, `create_timeline` (a reset), `delete_timeline`,
    /// `timeline_unarchive` (a recover), `import_data`.
    pub action: String,
    /// pgfork's own name for it: `create_branch`, `reset_branch`, `recover_branch`…
    #[serde(default)]
    pub pgfork_action: String,
    /// Neon: how many times it failed (0 or 1: pgfork does not retry).
    #[serde(default)]
    pub failures_count: i64,
    /// `running`, `finished`, `failed`.
    pub status: String,
    pub error: Option<String>,
    /// pgfork: machine-readable error code when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub total_duration_ms: u64,
    /// pgfork: progress of long operations (copies, imports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<OperationProgress>,
    /// pgfork: one-line warnings for the user (e.g. "full copy: no reflinks here").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Branch {
    /// pgfork's state word, or Neon's `current_state` from a Neon server.
    pub fn state_word(&self) -> &str {
        if self.state.is_empty() {
            &self.current_state
        } else {
            &self.state
        }
    }
}

impl Operation {
    pub fn is_running(&self) -> bool {
        self.status == "running" || self.status == "scheduling"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperationResponse {
    pub operation: Operation,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct BranchCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parent branch id (or, as a pgfork extension, its name). Default: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Neon: branch from the parent's past. pgfork keeps no history yet: a 422.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    /// pgfork: the git branch this database branch is paired with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    /// Seconds without clients before suspend: 0 the server default, -1 never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_seconds: Option<i64>,
    /// pgfork: expire this many seconds after the server receives the request (a
    /// relative TTL, immune to the client's clock); not with `expires_at`.
    #[serde(
        rename = "pgfork:ttl_seconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pgfork_ttl_seconds: Option<u64>,
    /// pgfork: give the new branch's login roles (all but the admin role) fresh
    /// passwords: `protected` (when the parent is protected; the default), `always`
    /// or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_rotate_passwords: Option<String>,
    /// pgfork: create the branch masked by these rules (Neon's `MaskingRule` objects:
    /// `database_name`, `schema_name`, `table_name`, `column_name`, and
    /// `masking_function` or `masking_value`). No client reaches it before masking
    /// has finished; a failing rule removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub pgfork_masking_rules: Option<Vec<serde_json::Value>>,
    /// pgfork: with masking rules, refuse the branch when a column looks personal and
    /// no rule covers it, or a column of a masked table is neither masked nor kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_masking_strict: Option<bool>,
    /// pgfork: columns reviewed as not personal (`db.schema.table.column`, or
    /// `db.schema.table.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_masking_keep: Option<Vec<String>>,
    /// pgfork: why an unmasked branch of unmasked data was asked for in a project that
    /// holds personal data (recorded in the server's log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_unmasked_reason: Option<String>,
    /// pgfork: keep this much history (its own WAL archive and snapshots), for branches
    /// at a past moment (`parent_timestamp`, `parent_lsn`); 0 or absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_history_window_seconds: Option<i64>,
    /// pgfork: with a history window, a history snapshot this often (seconds; default a
    /// quarter of the window, 10 minutes to an hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_history_snapshot_every_seconds: Option<i64>,
    /// pgfork: at most this many history snapshots (without a window, a snapshot
    /// schedule keeps 24 unless told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_history_keep: Option<u32>,
    /// pgfork: server settings for the branch on top of pgfork's developer defaults
    /// (a repository's `.pgfork.toml` `[postgres]`); absent: the parent branch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_postgres_settings: Option<std::collections::BTreeMap<String, String>>,
}

/// Neon's `reveal_password` answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolePasswordResponse {
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct BranchCreateRequest {
    pub branch: BranchCreate,
    #[serde(default)]
    pub endpoints: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BranchResponse {
    pub branch: Branch,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Neon: the branch's roles and databases (on create) and its annotation.
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_uris: Vec<ConnectionUri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BranchesResponse {
    pub branches: Vec<Branch>,
    /// Neon: annotations by branch id (pgfork has none yet; always present, as
    /// neonctl's table output reads it).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A role of a branch (Neon's shape).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct Role {
    pub branch_id: String,
    pub name: String,
    pub protected: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolesResponse {
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoleResponse {
    pub role: Role,
}

/// A database of a branch (Neon's shape; `id` is its OID).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct Database {
    pub id: i64,
    pub branch_id: String,
    pub name: String,
    pub owner_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatabasesResponse {
    pub databases: Vec<Database>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatabaseResponse {
    pub database: Database,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointsResponse {
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointResponse {
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperationsResponse {
    pub operations: Vec<Operation>,
}

/// Neon's `GET …/schema`: the database's schema as SQL (`pg_dump --schema-only`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BranchSchemaResponse {
    pub sql: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct SchemaQuery {
    pub db_name: Option<String>,
    pub lsn: Option<String>,
    pub timestamp: Option<String>,
}

/// Neon's `GET …/compare_schema` query.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct CompareSchemaQuery {
    pub base_branch_id: Option<String>,
    pub db_name: Option<String>,
    pub lsn: Option<String>,
    pub timestamp: Option<String>,
    pub base_lsn: Option<String>,
    pub base_timestamp: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BranchSchemaCompareResponse {
    pub diff: String,
    /// pgfork: the same changes as a list of objects (columns, indexes, constraints,
    /// functions, views, types, policies, grants, …), for tools.
    #[serde(default)]
    pub pgfork_changes: Vec<SchemaChange>,
}

/// One object that differs between two branches' schemas.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct SchemaChange {
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// `table`, `column`, `index`, `constraint`, `function`, `view`, `type`, `policy`,
    /// `grant`, `trigger`, `sequence`, `schema`, `extension`, …
    pub kind: String,
    /// The qualified name (`schema.table.column` for a column).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Neon's `GET /projects/{id}/connection_uri` query.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct ConnectionUriQuery {
    pub branch_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub database_name: Option<String>,
    pub role_name: Option<String>,
    #[serde(default)]
    pub pooled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectionUriResponse {
    pub uri: String,
}

/// PATCH body. `expires_at: null` clears the TTL, absent leaves it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct BranchUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// pgfork: expire this many seconds from now; not with `expires_at`.
    #[serde(
        rename = "pgfork:ttl_seconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pgfork_ttl_seconds: Option<u64>,
    /// pgfork: pair with a git branch (`null` unpairs).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub git_branch: Option<Option<String>>,
    /// pgfork: record the after-create command's outcome (`ok` or `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_create: Option<String>,
    /// Seconds without clients before suspend: 0 the server default, -1 never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_seconds: Option<i64>,
    /// pgfork: what the branch keeps of its past from now on. Turning its WAL archive on
    /// or off restarts a running branch (its sessions end, unless refused below); a
    /// window of 0 with no interval keeps nothing and drops its history snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_history: Option<HistorySettings>,
    /// pgfork: when the change restarts the branch, refuse while clients are connected
    /// (waiting up to `pgfork_wait_seconds`) instead of ending their sessions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pgfork_refuse_sessions: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_wait_seconds: Option<u64>,
}

/// What a branch keeps of its past (`[history]`): a window of WAL (0: none), a snapshot
/// interval and a count.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default, PartialEq)]
pub struct HistorySettings {
    pub window_seconds: i64,
    /// Default: a quarter of the window, 10 minutes to an hour (hourly without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_every_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct BranchUpdateRequest {
    pub branch: BranchUpdate,
}

/// Neon's `restore` body; pgfork's reset is a restore from the parent's head.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct BranchRestoreRequest {
    pub source_branch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_timestamp: Option<String>,
    /// Keep the branch's current state as a new branch of this name before resetting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_under_name: Option<String>,
    /// pgfork: refuse (409) while clients are connected to the branch, instead of
    /// ending their sessions as Neon does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pgfork_refuse_sessions: bool,
    /// pgfork: with `pgfork_refuse_sessions`, wait up to this long for the sessions to
    /// close before refusing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_wait_seconds: Option<u64>,
}

/// Query of DELETE: `?purge=true` removes for good instead of trashing.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct DeleteQuery {
    #[serde(default)]
    pub purge: bool,
    /// pgfork: why garbage collection removes it (`gone`, `upstream-gone`, `merged`,
    /// `expired`, `grace`); a branch recovered afterwards is spared that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_gc_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct ListQuery {
    /// Neon: only branches whose name or id contains this.
    #[serde(default)]
    pub search: Option<String>,
    /// pgfork: include the trash.
    #[serde(default)]
    pub include_deleted: bool,
    /// pgfork: compute logical and unique bytes (walks the files).
    #[serde(default)]
    pub sizes: bool,
}

/// `GET /api/v2/pgfork/status`: the daemon and its store.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct DaemonStatus {
    pub version: String,
    pub pid: u32,
    pub home: String,
    pub socket: String,
    /// TCP base of /api/v2 when the daemon listens on TCP (team server mode).
    pub api_url: Option<String>,
    pub clone_method: String,
    pub filesystem: String,
    pub store_warning: Option<String>,
    pub pg_versions: Vec<String>,
    pub server_user: String,
    pub running_branches: u32,
    pub started_at: DateTime<Utc>,
}

/// One line of `pgfork doctor`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    /// `ok`, `warn`, `fail`.
    pub status: String,
    pub detail: String,
    /// The exact fix, when not ok.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DoctorResponse {
    pub checks: Vec<Check>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

/// pgfork: `POST /api/v2/projects/{id}/pgfork/repos`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepoRegistration {
    pub path: String,
}

/// pgfork: `POST …/branches/{id}/pgfork/masking_check`: masking rules (Neon's objects),
/// and whether to judge them as strict mode would.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct MaskingCheckRequest {
    #[schema(value_type = Vec<Object>)]
    pub masking_rules: Vec<serde_json::Value>,
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub keep: Vec<String>,
}

/// Neon's `POST /projects/{id}/branch_anonymized` body. pgfork masks while it creates
/// the branch, so `start_anonymization` is always in effect.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct BranchAnonymizedCreateRequest {
    #[serde(default)]
    pub branch_create: Option<BranchCreateRequest>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub masking_rules: Vec<serde_json::Value>,
    #[serde(default)]
    pub start_anonymization: Option<bool>,
}

/// Neon's `MaskingRulesResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct MaskingRulesResponse {
    #[schema(value_type = Vec<Object>)]
    pub masking_rules: Vec<serde_json::Value>,
}

/// A column that looks personal (or, in strict mode, is undecided) and no rule covers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct MaskingFinding {
    /// `database.schema.table.column`
    pub target: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct MaskingCheckResponse {
    pub findings: Vec<MaskingFinding>,
}

/// pgfork: `POST /api/v2/projects/{id}/pgfork/follow` answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FollowResponse {
    pub port: u16,
    pub connection_uri: String,
}

/// Neon's `POST /api_keys` body, with pgfork's limits (`pgfork_*`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct ApiKeyCreateRequest {
    pub key_name: String,
    /// Limit the key to one project (id or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_project_id: Option<String>,
    /// GET requests only.
    #[serde(default)]
    pub pgfork_read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_expires_at: Option<DateTime<Utc>>,
}

/// A key as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from_addr: String,
    #[serde(default)]
    pub pgfork_project_id: Option<String>,
    #[serde(default)]
    pub pgfork_read_only: bool,
    #[serde(default)]
    pub pgfork_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub pgfork_revoked_at: Option<DateTime<Utc>>,
}

/// Neon's answer to a create: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyCreateResponse {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyRevokeResponse {
    pub id: i64,
    pub name: String,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from_addr: String,
}

/// `POST /api/v2/projects/{p}/pgfork/webhook`: a new webhook secret (shown once).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct WebhookCreate {
    /// TTL of the branches pull requests get; none: until the pull request closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    pub secret: String,
    /// Where each provider delivers, on the server's network API.
    pub paths: Vec<String>,
    pub ttl_seconds: Option<u64>,
}

/// What a webhook delivery did: `created`, `exists`, `deleted`, `absent` or `ignored`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookOutcome {
    pub result: String,
    pub branch: Option<String>,
    pub detail: String,
}

/// pgfork: how current a branch is with its parent, how far the project's root is
/// behind its source, and which live branches applied diverging migrations.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Default)]
pub struct BranchFreshness {
    pub branch: String,
    pub parent: Option<String>,
    /// When the branch last took its parent's state (create, reset, refresh).
    pub forked_at: Option<DateTime<Utc>>,
    /// WAL the parent wrote since then (unknown while the parent is suspended).
    pub parent_wal_bytes_since_fork: Option<i64>,
    /// The parent's schema differs from the one the branch took.
    pub parent_schema_changed: Option<bool>,
    /// The branch has writes or schema changes of its own since it forked and its
    /// after-create command ran (unknown while it is suspended).
    #[serde(default)]
    pub local_changes: Option<bool>,
    /// The project's root, when it follows its source.
    pub root: Option<RootFollowing>,
    /// When a root that does not follow its source was last taken from it (import or
    /// `pgfork root refresh`).
    #[serde(default)]
    pub root_taken_at: Option<DateTime<Utc>>,
    pub migration_conflicts: Vec<MigrationConflict>,
    /// Why a figure above is unknown.
    pub notes: Vec<String>,
}

/// A root that follows its source (`replica`): whether it streams and how far behind.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Default)]
pub struct RootFollowing {
    pub method: String,
    pub streaming: bool,
    /// WAL received but not replayed yet.
    pub replay_lag_bytes: Option<i64>,
    /// How long ago the last replayed transaction committed on the source.
    pub last_commit_seconds_ago: Option<f64>,
}

/// Two live branches that each applied migrations the other lacks, past their parent.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Default)]
pub struct MigrationConflict {
    pub tool: String,
    pub branch_a: String,
    pub branch_b: String,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
}

/// pgfork: make a project's root again from its source (`POST
/// /projects/{id}/pgfork_root_refresh`), and how often to do it on its own.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Default)]
pub struct RootRefreshRequest {
    /// Another source from now on (new credentials, another host); default: the one
    /// the root was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RootSource>,
    /// `daily`, `weekly`, a duration (`12h`) or `off`; absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Refresh now (default true); false only changes the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<bool>,
    /// Refuse while clients are connected to the root (waiting up to `wait_seconds`),
    /// instead of ending their sessions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refuse_sessions: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
}

/// The root being made again, and its schedule.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct RootRefreshResponse {
    pub branch: Branch,
    pub operations: Vec<Operation>,
    /// Seconds between automatic refreshes, if scheduled.
    pub schedule_seconds: Option<i64>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub next_refresh_at: Option<DateTime<Utc>>,
}

/// Neon's snapshot: a branch's data at a moment (pgfork: a stopped clone, never started).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    pub source_branch_id: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub manual: bool,
    /// pgfork: why it was taken (`manual`, `before-migration`, `before-restore`).
    #[serde(default)]
    pub pgfork_reason: String,
    /// pgfork: the name of the branch it was taken of (at the time).
    #[serde(default)]
    pub pgfork_source_branch_name: String,
    #[serde(default)]
    pub pgfork_masked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct SnapshotResponse {
    pub snapshot: Snapshot,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct SnapshotsResponse {
    pub snapshots: Vec<Snapshot>,
}

/// Neon's `POST /projects/{id}/branches/{branch}/snapshot` query.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct SnapshotCreateQuery {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub lsn: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// pgfork: why (default `manual`); anything else marks it automatic.
    #[serde(default)]
    pub pgfork_reason: Option<String>,
}

/// Neon's `POST /projects/{id}/snapshots/{snapshot}/restore` body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, Default)]
pub struct SnapshotRestoreRequest {
    /// A name for a new branch made from the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With `finalize_restore`: the branch whose data the snapshot replaces (default
    /// the branch it was taken of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_branch_id: Option<String>,
    /// Replace the target branch's data now (same URL and password), keeping what it
    /// replaces as a snapshot; otherwise a new branch is made.
    #[serde(default)]
    pub finalize_restore: bool,
    /// pgfork: as for a reset, refuse while clients are connected (waiting this long).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pgfork_refuse_sessions: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgfork_wait_seconds: Option<u64>,
}

/// How far back a branch can be branched from (`parent_timestamp`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq)]
pub struct BranchHistory {
    pub window_seconds: i64,
    /// A history snapshot this often.
    #[serde(default)]
    pub snapshot_every_seconds: i64,
    /// At most this many history snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// History snapshots kept now.
    #[serde(default)]
    pub snapshots: u32,
    /// The oldest moment a branch can be made at now (without a window: the oldest
    /// snapshot).
    pub oldest: Option<DateTime<Utc>>,
    /// Bytes of its WAL archive (with sizes only).
    pub archive_bytes: Option<u64>,
}
