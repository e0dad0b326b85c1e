//! The tools. Each is a few API calls (or SQL through the branch's URL) and a JSON
//! answer; failures an agent can act on are tool errors with one sentence, not protocol
//! errors.

use crate::sql;
use pgfork_api::{self as api, Client};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Content};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server was started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// List and serve only the tools that change nothing.
    pub read_only: bool,
    /// Every tool acts on this project only.
    pub project: Option<String>,
    /// Let SQL write to the root and protected branches.
    pub allow_protected_writes: bool,
    /// TTL of branches made without one (agents forget to clean up).
    pub default_ttl: Option<String>,
    /// The repository holds personal data (`[masking] pii = true`): a branch of an
    /// unmasked branch is masked by these rules, as a git checkout's would be.
    pub pii_masking: Option<PiiMasking>,
}

/// Masking rules (Neon's objects) with pgfork's strict mode and reviewed columns.
#[derive(Debug, Clone, Default)]
pub struct PiiMasking {
    pub rules: Vec<serde_json::Value>,
    pub strict: bool,
    pub keep: Vec<String>,
}

/// The tools that change something: absent in `--read-only` mode.
pub const WRITE_TOOLS: &[&str] = &[
    "create_branch",
    "delete_branch",
    "recover_branch",
    "reset_from_parent",
    "set_branch_ttl",
    "run_sql",
    "run_sql_transaction",
    "prepare_database_migration",
    "complete_database_migration",
];

/// A migration tried on a temporary branch, waiting to be applied or discarded.
#[derive(Debug, Clone)]
pub(crate) struct Migration {
    project: String,
    target: String,
    temporary: String,
    sql: String,
}

#[derive(Clone)]
pub struct PgforkMcp {
    client: Client,
    options: Options,
    migrations: Arc<Mutex<HashMap<String, Migration>>>,
    tool_router: ToolRouter<Self>,
}

// ---- tool arguments ----

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ProjectArg {
    /// Project id or name; default: the only project (or the server's --project).
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct BranchArg {
    /// Branch id or name.
    pub branch: String,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CreateBranchArgs {
    /// Name of the new branch; default: agent-<random>.
    pub name: Option<String>,
    /// Parent branch id or name; default: the project's root.
    pub parent: Option<String>,
    /// Delete automatically after this long (e.g. 2h, 3d); "none" keeps it. Default 24h.
    pub ttl: Option<String>,
    /// Return only once the branch accepts connections (default true).
    pub wait: Option<bool>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DeleteBranchArgs {
    pub branch: String,
    /// Remove for good instead of moving to the trash (recoverable for a day).
    pub purge: Option<bool>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ResetArgs {
    pub branch: String,
    /// Keep the branch's current state as a new branch of this name first.
    pub preserve_under_name: Option<String>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TtlArgs {
    pub branch: String,
    /// A duration from now (e.g. 8h, 7d), or "none" to keep the branch.
    pub ttl: String,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ConnectionArgs {
    /// Branch id or name; default: the root.
    pub branch: Option<String>,
    /// A role other than the branch's admin role.
    pub role: Option<String>,
    /// A database other than the project's default.
    pub database: Option<String>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SqlArgs {
    pub branch: String,
    /// One or more SQL statements.
    pub sql: String,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TransactionArgs {
    pub branch: String,
    /// Statements run in one transaction: all or nothing.
    pub statements: Vec<String>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TableArgs {
    pub branch: String,
    /// `table` or `schema.table`.
    pub table: String,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CompareArgs {
    pub branch: String,
    /// The branch to compare against; default: the branch's parent.
    pub against: Option<String>,
    /// Database; default: the project's.
    pub database: Option<String>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExplainArgs {
    pub branch: String,
    pub sql: String,
    /// Run it (in a transaction that is rolled back) for real timings.
    pub analyze: Option<bool>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PrepareMigrationArgs {
    /// The migration's SQL.
    pub sql: String,
    /// The branch it is for; default: the root.
    pub branch: Option<String>,
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CompleteMigrationArgs {
    /// The id prepare_database_migration returned.
    pub migration_id: String,
    /// Apply it to the target branch (true) or discard it (false).
    pub apply: bool,
}

// ---- answers ----

fn answer(value: Value) -> Result<CallToolResult, ErrorData> {
    let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    Ok(CallToolResult::success(vec![Content::text(text)]))
}

/// A failure the agent can act on: a tool result marked as an error, with the sentence.
fn refuse(message: impl Into<String>) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::error(vec![Content::text(message.into())]))
}

fn api_message(e: &pgfork_api::ClientError) -> String {
    match e.api() {
        Some(a) => a.message.clone(),
        None => e.to_string(),
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return refuse(e.to_string()),
        }
    };
}

macro_rules! call {
    ($e:expr) => {
        match $e.await {
            Ok(v) => v,
            Err(e) => return refuse(api_message(&e)),
        }
    };
}

fn branch_summary(b: &api::Branch) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "parent": b.parent_name,
        "state": b.state_word(),
        "default": b.default,
        "protected": b.protected,
        "expires_at": b.expires_at,
        "git_branch": b.git_branch,
        "created_at": b.created_at,
    })
}

impl PgforkMcp {
    pub fn new(client: Client, options: Options) -> PgforkMcp {
        Self::with_migrations(client, options, Arc::new(Mutex::new(HashMap::new())))
    }

    /// A server sharing prepared migrations with others (one per HTTP request).
    pub(crate) fn with_migrations(
        client: Client,
        options: Options,
        migrations: Arc<Mutex<HashMap<String, Migration>>>,
    ) -> PgforkMcp {
        let mut router = Self::tool_router();
        if options.read_only {
            for name in WRITE_TOOLS {
                router.remove_route(name);
            }
        }
        PgforkMcp {
            client,
            options,
            migrations,
            tool_router: router,
        }
    }

    /// The project a call means: the server's, else the one asked for, else the only one.
    async fn project(&self, asked: Option<String>) -> Result<String, String> {
        if let Some(own) = &self.options.project {
            if let Some(a) = asked.filter(|a| a != own) {
                return Err(format!(
                    "this server serves project {own:?} only, not {a:?}"
                ));
            }
            return Ok(own.clone());
        }
        if let Some(a) = asked {
            return Ok(a);
        }
        let all = self
            .client
            .list_projects()
            .await
            .map_err(|e| api_message(&e))?
            .projects;
        match all.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err("there is no project yet: run `pgfork init` in the repository".into()),
            many => Err(format!(
                "{} projects exist ({}): say which with `project`",
                many.len(),
                many.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    async fn branch(&self, project: &str, branch: &str) -> Result<api::Branch, String> {
        self.client
            .get_branch(project, branch, false)
            .await
            .map(|r| r.branch)
            .map_err(|e| api_message(&e))
    }

    async fn root(&self, project: &str) -> Result<api::Branch, String> {
        let all = self
            .client
            .list_branches(project, false, false)
            .await
            .map_err(|e| api_message(&e))?
            .branches;
        all.into_iter()
            .find(|b| b.default)
            .ok_or_else(|| format!("project {project:?} has no root branch"))
    }

    async fn wait(&self, project: &str, ops: &[api::Operation]) -> Result<(), String> {
        for op in ops {
            let mut current = op.clone();
            while current.is_running() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                current = self
                    .client
                    .get_operation(project, &op.id)
                    .await
                    .map_err(|e| api_message(&e))?
                    .operation;
            }
            if current.status == "failed" {
                return Err(current
                    .error
                    .unwrap_or_else(|| format!("operation {} failed", current.id)));
            }
        }
        Ok(())
    }

    /// A URL for the branch (its own, or one from `connection_uri` on Neon).
    async fn url(
        &self,
        project: &str,
        b: &api::Branch,
        role: Option<&str>,
        database: Option<&str>,
    ) -> Result<String, String> {
        if !b.connection_uri.is_empty() && role.is_none() {
            return Ok(match database {
                Some(db) => with_database(&b.connection_uri, db),
                None => b.connection_uri.clone(),
            });
        }
        let p = self
            .client
            .get_project(project)
            .await
            .map_err(|e| api_message(&e))?;
        let role = role
            .map(str::to_string)
            .unwrap_or_else(|| p.project.role_name.clone());
        let db = database
            .map(str::to_string)
            .unwrap_or_else(|| p.project.database_name.clone());
        self.client
            .connection_uri(project, &b.id, &db, &role)
            .await
            .map(|r| r.uri)
            .map_err(|e| api_message(&e))
    }

    /// Whether SQL may write to `b` from this server.
    fn guarded(&self, b: &api::Branch) -> bool {
        (b.default || b.protected) && !self.options.allow_protected_writes
    }

    fn guard_message(b: &api::Branch) -> String {
        format!(
            "{:?} is {}: SQL here may only read. Make a branch with create_branch and work there, or start the server with --allow-protected-writes",
            b.name,
            if b.default { "the project's root" } else { "protected" }
        )
    }

    async fn create(
        &self,
        project: &str,
        name: String,
        parent: Option<String>,
        ttl: Option<String>,
        wait: bool,
    ) -> Result<(api::Branch, String), String> {
        let ttl = ttl
            .or_else(|| self.options.default_ttl.clone())
            .unwrap_or_else(|| "24h".into());
        let expires_at = if ttl == "none" {
            None
        } else {
            let d = pgfork_core::parse_ttl(&ttl).map_err(|e| e.to_string())?;
            Some(pgfork_core::expires_at_from_ttl(chrono::Utc::now(), d))
        };
        // In a project with personal data an agent's branch of unmasked data is masked.
        let masking = match &self.options.pii_masking {
            None => None,
            Some(pii) => {
                let source = match &parent {
                    Some(p) => self.branch(project, p).await?,
                    None => self
                        .client
                        .list_branches(project, false, false)
                        .await
                        .map_err(|e| api_message(&e))?
                        .branches
                        .into_iter()
                        .find(|b| b.parent_id.is_none())
                        .ok_or_else(|| format!("project {project:?} has no root branch"))?,
                };
                (!source.masked).then(|| pii.clone())
            }
        };
        let resp = self
            .client
            .create_branch(
                project,
                &api::BranchCreateRequest {
                    branch: api::BranchCreate {
                        name: Some(name),
                        parent_id: parent,
                        expires_at,
                        pgfork_masking_strict: masking.as_ref().map(|m| m.strict),
                        pgfork_masking_keep: masking.as_ref().map(|m| m.keep.clone()),
                        pgfork_masking_rules: masking.map(|m| m.rules),
                        ..Default::default()
                    },
                    endpoints: vec![json!({"type": "read_write"})],
                },
            )
            .await
            .map_err(|e| api_message(&e))?;
        if wait {
            self.wait(project, &resp.operations).await?;
        }
        let b = self.branch(project, &resp.branch.id).await?;
        let url = self.url(project, &b, None, None).await?;
        Ok((b, url))
    }
}

fn with_database(url: &str, db: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, rest)) => {
            let query = rest
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{base}/{db}{query}")
        }
        None => url.to_string(),
    }
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7))
        .unwrap_or(0);
    format!(
        "{:06x}",
        (nanos ^ std::process::id().rotate_left(13)) & 0xff_ffff
    )
}

#[tool_router]
impl PgforkMcp {
    #[tool(
        description = "List the projects (each is one database tree: a root and its branches).",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn list_projects(&self) -> Result<CallToolResult, ErrorData> {
        let all = call!(self.client.list_projects()).projects;
        let own = self.options.project.clone();
        answer(json!(all
            .iter()
            .filter(|p| own.as_ref().is_none_or(|o| *o == p.id || *o == p.name))
            .map(|p| json!({"id": p.id, "name": p.name, "pg_version": p.pg_version, "database": p.database_name, "role": p.role_name}))
            .collect::<Vec<_>>()))
    }

    #[tool(
        description = "Describe a project: its settings and its root branch.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn describe_project(
        &self,
        Parameters(a): Parameters<ProjectArg>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let got = call!(self.client.get_project(&p));
        answer(json!({
            "project": {"id": got.project.id, "name": got.project.name, "pg_version": got.project.pg_version,
                        "database": got.project.database_name, "role": got.project.role_name},
            "root": got.branch.as_ref().map(branch_summary),
        }))
    }

    #[tool(
        description = "List a project's branches with their state, parent and expiry.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn list_branches(
        &self,
        Parameters(a): Parameters<ProjectArg>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let all = call!(self.client.list_branches(&p, false, false)).branches;
        answer(json!(all.iter().map(branch_summary).collect::<Vec<_>>()))
    }

    #[tool(
        description = "Create a branch: a copy-on-write clone of a running parent (default: the root), isolated from it. By default it expires after 24h and the call returns once it accepts connections, with its connection string.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false
        )
    )]
    async fn create_branch(
        &self,
        Parameters(a): Parameters<CreateBranchArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let name = a
            .name
            .unwrap_or_else(|| format!("agent-{}", random_suffix()));
        let (b, url) = tri!(
            self.create(&p, name, a.parent, a.ttl, a.wait.unwrap_or(true))
                .await
        );
        answer(json!({"branch": branch_summary(&b), "connection_string": url}))
    }

    #[tool(
        description = "Describe a branch.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn describe_branch(
        &self,
        Parameters(a): Parameters<BranchArg>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let b = call!(self.client.get_branch(&p, &a.branch, true)).branch;
        let mut v = branch_summary(&b);
        v["logical_bytes"] = json!(b.logical_bytes);
        v["unique_bytes"] = json!(b.unique_bytes);
        v["clone_method"] = json!(b.clone_method);
        answer(v)
    }

    #[tool(
        description = "Delete a branch: to the trash (recover_branch brings it back for a day), or for good with purge.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true
        )
    )]
    async fn delete_branch(
        &self,
        Parameters(a): Parameters<DeleteBranchArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let b = tri!(self.branch(&p, &a.branch).await);
        if b.default {
            return refuse(format!(
                "{:?} is the project's root and is never deleted by an agent",
                b.name
            ));
        }
        let purge = a.purge.unwrap_or(false);
        call!(self.client.delete_branch(&p, &b.id, purge));
        answer(json!({"deleted": b.name, "id": b.id, "recoverable": !purge}))
    }

    #[tool(
        description = "Bring a deleted branch back from the trash.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true
        )
    )]
    async fn recover_branch(
        &self,
        Parameters(a): Parameters<BranchArg>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let r = call!(self.client.recover_branch(&p, &a.branch));
        answer(json!({"recovered": branch_summary(&r.branch)}))
    }

    #[tool(
        description = "Reset a branch to its parent's current state (same connection string). Its changes are lost unless preserve_under_name keeps them as a new branch.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false
        )
    )]
    async fn reset_from_parent(
        &self,
        Parameters(a): Parameters<ResetArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let b = tri!(self.branch(&p, &a.branch).await);
        if b.default {
            return refuse(format!(
                "{:?} is the root: it has no parent to reset to",
                b.name
            ));
        }
        let r = call!(self.client.restore_branch_with(
            &p,
            &b.id,
            &api::BranchRestoreRequest {
                preserve_under_name: a.preserve_under_name.clone(),
                ..Default::default()
            }
        ));
        tri!(self.wait(&p, &r.operations).await);
        answer(
            json!({"reset": b.name, "from": b.parent_name, "preserved_as": a.preserve_under_name}),
        )
    }

    #[tool(
        description = "Set when a branch is deleted automatically: a duration from now (8h, 7d) or \"none\".",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true
        )
    )]
    async fn set_branch_ttl(
        &self,
        Parameters(a): Parameters<TtlArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let expires = if a.ttl == "none" {
            None
        } else {
            let d = tri!(pgfork_core::parse_ttl(&a.ttl));
            Some(pgfork_core::expires_at_from_ttl(chrono::Utc::now(), d))
        };
        let r = call!(self.client.update_branch(
            &p,
            &a.branch,
            &api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    expires_at: Some(expires),
                    ..Default::default()
                }
            }
        ));
        answer(json!({"branch": r.branch.name, "expires_at": r.branch.expires_at}))
    }

    #[tool(
        description = "A connection string (postgresql://…) for a branch (default: the root), optionally for another role or database.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_connection_string(
        &self,
        Parameters(a): Parameters<ConnectionArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let b = match a.branch {
            Some(name) => tri!(self.branch(&p, &name).await),
            None => tri!(self.root(&p).await),
        };
        let url = tri!(
            self.url(&p, &b, a.role.as_deref(), a.database.as_deref())
                .await
        );
        answer(json!({"branch": b.name, "connection_string": url}))
    }

    #[tool(
        description = "Run SQL on a branch and return the rows (values as text). On the root or a protected branch it may only read.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false
        )
    )]
    async fn run_sql(
        &self,
        Parameters(a): Parameters<SqlArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.sql_on(a.project, &a.branch, vec![a.sql], false).await
    }

    #[tool(
        description = "Run several statements on a branch in one transaction: all or nothing.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false
        )
    )]
    async fn run_sql_transaction(
        &self,
        Parameters(a): Parameters<TransactionArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.sql_on(a.project, &a.branch, a.statements, true).await
    }

    #[tool(
        description = "List a branch's tables and views.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn get_database_tables(
        &self,
        Parameters(a): Parameters<BranchArg>,
    ) -> Result<CallToolResult, ErrorData> {
        let (client, _) = tri!(self.sql_client(a.project, &a.branch).await);
        answer(tri!(sql::tables(&client).await))
    }

    #[tool(
        description = "A table's columns, constraints and indexes.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn describe_table_schema(
        &self,
        Parameters(a): Parameters<TableArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (client, _) = tri!(self.sql_client(a.project, &a.branch).await);
        answer(tri!(sql::describe_table(&client, &a.table).await))
    }

    #[tool(
        description = "A unified diff of the schema from another branch (default: the parent) to this branch.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn compare_database_schema(
        &self,
        Parameters(a): Parameters<CompareArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let db = match a.database {
            Some(d) => d,
            None => call!(self.client.get_project(&p)).project.database_name,
        };
        let diff = call!(self
            .client
            .compare_schema(&p, &a.branch, a.against.as_deref(), &db))
        .diff;
        answer(
            json!({"branch": a.branch, "against": a.against.unwrap_or_else(|| "parent".into()), "diff": diff}),
        )
    }

    #[tool(
        description = "The query plan of a statement (EXPLAIN, JSON); analyze runs it inside a transaction that is rolled back.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn explain_sql_statement(
        &self,
        Parameters(a): Parameters<ExplainArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let analyze = a.analyze.unwrap_or(false);
        if analyze && self.options.read_only {
            // ANALYZE runs the statement (rolled back, but its side effects are real).
            return refuse("this server is read-only: explain without analyze");
        }
        let (client, _) = tri!(self.sql_client(a.project, &a.branch).await);
        answer(tri!(sql::explain(&client, &a.sql, analyze).await))
    }

    #[tool(
        description = "Try a migration on a temporary branch of the target (default: the root): returns the schema diff and row counts, and a migration_id for complete_database_migration. The target is not touched.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false
        )
    )]
    async fn prepare_database_migration(
        &self,
        Parameters(a): Parameters<PrepareMigrationArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = tri!(self.project(a.project).await);
        let target = match a.branch {
            Some(b) => tri!(self.branch(&p, &b).await),
            None => tri!(self.root(&p).await),
        };
        let name = format!("migration-{}", random_suffix());
        let (temp, url) = tri!(
            self.create(&p, name, Some(target.id.clone()), Some("2h".into()), true)
                .await
        );
        let outcome = async {
            let client = sql::connect(&url).await.map_err(|e| e.to_string())?;
            sql::run_transaction(&client, std::slice::from_ref(&a.sql), false)
                .await
                .map_err(|e| e.to_string())?;
            let counts = sql::row_counts(&client).await.map_err(|e| e.to_string())?;
            let db = self
                .client
                .get_project(&p)
                .await
                .map_err(|e| api_message(&e))?
                .project
                .database_name;
            let diff = self
                .client
                .compare_schema(&p, &temp.id, Some(&target.id), &db)
                .await
                .map_err(|e| api_message(&e))?
                .diff;
            Ok::<_, String>((diff, counts))
        }
        .await;
        match outcome {
            Ok((diff, counts)) => {
                let id = temp.id.clone();
                if let Ok(mut m) = self.migrations.lock() {
                    m.insert(
                        id.clone(),
                        Migration {
                            project: p.clone(),
                            target: target.id.clone(),
                            temporary: temp.id.clone(),
                            sql: a.sql,
                        },
                    );
                }
                answer(json!({
                    "migration_id": id,
                    "target": target.name,
                    "temporary_branch": temp.name,
                    "schema_diff": diff,
                    "row_counts": counts,
                    "next": "review the diff, then call complete_database_migration with apply=true (or false to discard)",
                }))
            }
            Err(why) => {
                let _ = self.client.delete_branch(&p, &temp.id, true).await;
                refuse(format!(
                    "the migration failed on a temporary branch and was discarded; {:?} is untouched: {why}",
                    target.name
                ))
            }
        }
    }

    #[tool(
        description = "Apply a prepared migration to its target branch (apply=true) or discard it; the temporary branch is removed either way.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false
        )
    )]
    async fn complete_database_migration(
        &self,
        Parameters(a): Parameters<CompleteMigrationArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let found = self
            .migrations
            .lock()
            .ok()
            .and_then(|m| m.get(&a.migration_id).cloned());
        let Some(m) = found else {
            return refuse(format!(
                "no prepared migration {:?} in this session: call prepare_database_migration first",
                a.migration_id
            ));
        };
        // Prepared by this server's project (an HTTP server serves many keys).
        if self
            .options
            .project
            .as_ref()
            .is_some_and(|own| *own != m.project)
        {
            return refuse(format!(
                "no prepared migration {:?} in this project",
                a.migration_id
            ));
        }
        let target = tri!(self.branch(&m.project, &m.target).await);
        if a.apply && self.guarded(&target) {
            return refuse(format!(
                "{} (the prepared migration stays available)",
                Self::guard_message(&target)
            ));
        }
        let applied = if a.apply {
            let url = tri!(self.url(&m.project, &target, None, None).await);
            let client = tri!(sql::connect(&url).await);
            match sql::run_transaction(&client, std::slice::from_ref(&m.sql), false).await {
                Ok(_) => true,
                Err(e) => {
                    return refuse(format!(
                        "the migration failed on {:?} and was rolled back there (the temporary branch is kept for another try): {e}",
                        target.name
                    ))
                }
            }
        } else {
            false
        };
        let _ = self
            .client
            .delete_branch(&m.project, &m.temporary, true)
            .await;
        if let Ok(mut all) = self.migrations.lock() {
            all.remove(&a.migration_id);
        }
        answer(
            json!({"migration_id": a.migration_id, "target": target.name, "applied": applied, "temporary_branch_removed": true}),
        )
    }
}

impl PgforkMcp {
    async fn sql_client(
        &self,
        project: Option<String>,
        branch: &str,
    ) -> Result<(tokio_postgres::Client, api::Branch), String> {
        let p = self.project(project).await?;
        let b = self.branch(&p, branch).await?;
        let url = self.url(&p, &b, None, None).await?;
        let client = sql::connect(&url).await.map_err(|e| e.to_string())?;
        Ok((client, b))
    }

    async fn sql_on(
        &self,
        project: Option<String>,
        branch: &str,
        statements: Vec<String>,
        transaction: bool,
    ) -> Result<CallToolResult, ErrorData> {
        let (client, b) = tri!(self.sql_client(project, branch).await);
        let guarded = self.guarded(&b);
        let result = if guarded || transaction {
            // On the root or a protected branch everything runs READ ONLY: Postgres
            // itself refuses the first write, whatever the SQL's shape.
            sql::run_transaction(&client, &statements, guarded).await
        } else {
            sql::run(&client, &statements.join(";\n")).await
        };
        match result {
            // run_sql answers with its statement's result, however it ran.
            Ok(Value::Array(mut one)) if !transaction && one.len() == 1 => answer(one.remove(0)),
            Ok(v) => answer(v),
            Err(e) if guarded && e.to_string().contains("read-only transaction") => {
                refuse(Self::guard_message(&b))
            }
            Err(e) => refuse(e.to_string()),
        }
    }
}

#[tool_handler(router = self.tool_router, name = "pgfork", instructions = "pgfork gives every task its own PostgreSQL branch: create_branch (a copy-on-write clone that accepts connections when the call returns), work there with run_sql, check compare_database_schema, and delete_branch when done. Branches expire after 24h unless told otherwise.")]
impl ServerHandler for PgforkMcp {}
