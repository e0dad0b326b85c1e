//! Neon's read-only views of a branch's contents: endpoints, roles, databases, the
//! schema, and connection URIs built from them. Reading roles or databases needs the
//! branch's Postgres, so a suspended branch is woken — counted as a client for the
//! call, like a connection, so the idle reaper cannot stop it mid-read.

use super::*;

impl Engine {
    /// Runs `f` against `b`'s running instance.
    pub(crate) async fn while_running<T, F, Fut>(
        &self,
        project: &Project,
        b: &Branch,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(Instance) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let b = self.wake_for_client(&b.id).await?;
        let result = f(self.instance(project, &b)).await;
        if let Some(front) = self.front_state.get() {
            use pgfork_proxy::Backend as _;
            front.closed(b.port);
        }
        result
    }

    pub async fn branch_endpoints(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<api::EndpointsResponse, ApiError> {
        let p = self.project(project)?;
        let b = self.branch(&p, branch)?;
        Ok(api::EndpointsResponse {
            endpoints: vec![self.endpoint(&b)],
        })
    }

    pub fn project_endpoints(&self, project: &str) -> Result<api::EndpointsResponse, ApiError> {
        let p = self.project(project)?;
        let branches = self.store().branches(&p.id, false).map_err(store_err)?;
        Ok(api::EndpointsResponse {
            endpoints: branches.iter().map(|b| self.endpoint(b)).collect(),
        })
    }

    pub fn get_endpoint(
        &self,
        project: &str,
        endpoint: &str,
    ) -> Result<api::EndpointResponse, ApiError> {
        let p = self.project(project)?;
        let b = self
            .branch(&p, &pgfork_api::endpoint_to_branch(endpoint))
            .map_err(|_| {
                ApiError::not_found(format!("no endpoint {endpoint:?} in project {:?}", p.name))
            })?;
        Ok(api::EndpointResponse {
            endpoint: self.endpoint(&b),
        })
    }

    pub async fn branch_roles(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<api::RolesResponse, ApiError> {
        let p = self.project(project)?;
        let b = self.branch(&p, branch)?;
        let found = self
            .while_running(&p, &b, |inst| async move {
                let client = sql::connect(&inst, "postgres").await.map_err(pg_err)?;
                pgfork_pg::catalog::roles(&client).await.map_err(pg_err)
            })
            .await?;
        Ok(api::RolesResponse {
            roles: found
                .into_iter()
                .map(|(name, superuser)| api::Role {
                    branch_id: b.id.clone(),
                    // pgfork's admin role and superusers are what Neon calls protected.
                    protected: superuser || name == p.role_name,
                    name,
                    created_at: b.created_at,
                    updated_at: b.updated_at,
                })
                .collect(),
        })
    }

    pub async fn branch_role(
        &self,
        project: &str,
        branch: &str,
        role: &str,
    ) -> Result<api::RoleResponse, ApiError> {
        let all = self.branch_roles(project, branch).await?;
        all.roles
            .into_iter()
            .find(|r| r.name == role)
            .map(|role| api::RoleResponse { role })
            .ok_or_else(|| {
                ApiError::not_found(format!("no login role {role:?} on branch {branch:?}"))
            })
    }

    pub async fn branch_databases(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<api::DatabasesResponse, ApiError> {
        let p = self.project(project)?;
        let b = self.branch(&p, branch)?;
        let found = self
            .while_running(&p, &b, |inst| async move {
                let client = sql::connect(&inst, "postgres").await.map_err(pg_err)?;
                pgfork_pg::catalog::databases(&client).await.map_err(pg_err)
            })
            .await?;
        Ok(api::DatabasesResponse {
            databases: found
                .into_iter()
                .map(|(id, name, owner_name)| api::Database {
                    id,
                    branch_id: b.id.clone(),
                    name,
                    owner_name,
                    created_at: b.created_at,
                    updated_at: b.updated_at,
                })
                .collect(),
        })
    }

    pub async fn branch_database(
        &self,
        project: &str,
        branch: &str,
        db: &str,
    ) -> Result<api::DatabaseResponse, ApiError> {
        let all = self.branch_databases(project, branch).await?;
        all.databases
            .into_iter()
            .find(|d| d.name == db)
            .map(|database| api::DatabaseResponse { database })
            .ok_or_else(|| ApiError::not_found(format!("no database {db:?} on branch {branch:?}")))
    }

    pub async fn branch_schema(
        &self,
        project: &str,
        branch: &str,
        q: api::SchemaQuery,
    ) -> Result<api::BranchSchemaResponse, ApiError> {
        if q.lsn.is_some() || q.timestamp.is_some() {
            return Err(history_not_kept());
        }
        let db = q.db_name.filter(|d| !d.is_empty()).ok_or_else(|| {
            ApiError::bad_request(
                "db_name is required: the database whose schema to show, e.g. ?db_name=postgres",
            )
        })?;
        // Only a database the branch has reaches pg_dump.
        self.branch_database(project, branch, &db).await?;
        let p = self.project(project)?;
        let b = self.branch(&p, branch)?;
        let install = self.install_for(&b.data_dir)?;
        let user = self.user.clone();
        let sql = self
            .while_running(&p, &b, |inst| async move {
                blocking(move || {
                    pgfork_pg::catalog::dump_schema(&install, &user, &inst, &db).map_err(pg_err)
                })
                .await
            })
            .await?;
        Ok(api::BranchSchemaResponse { sql })
    }

    /// Neon's `compare_schema`: a unified diff from the base branch's schema (default:
    /// the parent's) to this branch's, for one database.
    pub async fn compare_schema(
        &self,
        project: &str,
        branch: &str,
        q: api::CompareSchemaQuery,
    ) -> Result<api::BranchSchemaCompareResponse, ApiError> {
        if q.lsn.is_some()
            || q.timestamp.is_some()
            || q.base_lsn.is_some()
            || q.base_timestamp.is_some()
        {
            return Err(history_not_kept());
        }
        let p = self.project(project)?;
        let b = self.branch(&p, branch)?;
        let base = match q.base_branch_id.as_deref() {
            Some(base) => self.branch(&p, base)?,
            None => {
                let parent = b.parent_id.as_deref().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{:?} has no parent to compare with: give base_branch_id",
                        b.name
                    ))
                })?;
                self.branch(&p, parent)?
            }
        };
        let query = || api::SchemaQuery {
            db_name: q.db_name.clone(),
            lsn: None,
            timestamp: None,
        };
        let base_sql = self.branch_schema(project, &base.id, query()).await?.sql;
        let this_sql = self.branch_schema(project, &b.id, query()).await?.sql;
        let db = q.db_name.clone().unwrap_or_default();
        let base_objects = self.schema_objects(&p, &base, &db).await?;
        let this_objects = self.schema_objects(&p, &b, &db).await?;
        let pgfork_changes = pgfork_pg::schema::changes(&base_objects, &this_objects)
            .into_iter()
            .map(|c| api::SchemaChange {
                change: c.change,
                kind: c.kind,
                name: c.name,
                before: c.before,
                after: c.after,
            })
            .collect();
        let (base_sql, this_sql) = (
            pgfork_pg::schema::normalised_ddl(&base_sql),
            pgfork_pg::schema::normalised_ddl(&this_sql),
        );
        let diff = similar::TextDiff::from_lines(&base_sql, &this_sql)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{} ({})", base.name, base.id),
                &format!("{} ({})", b.name, b.id),
            )
            .to_string();
        Ok(api::BranchSchemaCompareResponse {
            diff,
            pgfork_changes,
        })
    }

    /// The schema objects of one database of a branch (which [`Engine::branch_schema`]
    /// checked exists).
    async fn schema_objects(
        &self,
        p: &Project,
        b: &Branch,
        db: &str,
    ) -> Result<Vec<pgfork_pg::schema::SchemaObject>, ApiError> {
        let db = db.to_string();
        self.while_running(p, b, |inst| async move {
            let client = sql::connect(&inst, &db).await.map_err(pg_err)?;
            pgfork_pg::schema::objects(&client).await.map_err(pg_err)
        })
        .await
    }

    /// Waits for an operation to end; its error when it failed.
    pub async fn wait_for_operation(&self, id: &str) -> Result<(), ApiError> {
        loop {
            match self.ops.get(id) {
                Some(op) if op.is_running() => {}
                Some(op) if op.status == "failed" => {
                    return Err(ApiError::new(
                        409,
                        op.error_code.as_deref().unwrap_or("FAILED"),
                        op.error.unwrap_or_else(|| "the operation failed".into()),
                    ))
                }
                _ => return Ok(()),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn list_operations(&self, project: &str) -> Result<api::OperationsResponse, ApiError> {
        let p = self.project(project)?;
        Ok(api::OperationsResponse {
            operations: self.ops.for_project(&p.id),
        })
    }

    /// Neon's `connection_uri`: a URI for a role and database of a branch (default the
    /// root). The admin role's carries the branch password; a rotated role's, the one
    /// pgfork set; any other role's none (it logs in with its own).
    pub fn connection_uri_for(
        &self,
        project: &str,
        q: api::ConnectionUriQuery,
    ) -> Result<api::ConnectionUriResponse, ApiError> {
        let p = self.project(project)?;
        let b = match (q.branch_id.as_deref(), q.endpoint_id.as_deref()) {
            (Some(b), _) => self.branch(&p, b)?,
            (None, Some(ep)) => self.branch(&p, &pgfork_api::endpoint_to_branch(ep))?,
            (None, None) => self.root_branch(&p)?,
        };
        if q.pooled {
            return Err(ApiError::new(
                422,
                "UNPROCESSABLE_ENTITY",
                "pgfork has no connection pooler: ask for pooled=false",
            ));
        }
        let role = q.role_name.unwrap_or_else(|| p.role_name.clone());
        let db = q.database_name.unwrap_or_else(|| p.db_name.clone());
        let password = if role == p.role_name {
            Some(b.password.clone())
        } else {
            self.store()
                .role_password(&b.id, &role)
                .map_err(store_err)?
        };
        let enc = |s: &str| pgfork_api::encode_segment(s);
        let user = match password {
            Some(pw) => format!("{}:{}", enc(&role), enc(&pw)),
            None => enc(&role),
        };
        Ok(api::ConnectionUriResponse {
            uri: format!(
                "postgresql://{user}@{}:{}/{}",
                self.cfg.public_host,
                b.port,
                enc(&db)
            ),
        })
    }
}

/// Neon's point-in-time arguments need history, which pgfork does not keep yet.
pub(crate) fn history_not_kept() -> ApiError {
    ApiError::new(
        422,
        "UNPROCESSABLE_ENTITY",
        "pgfork keeps no history yet, so LSNs and timestamps in the past cannot be used: omit them to use the branch as it is now",
    )
}
