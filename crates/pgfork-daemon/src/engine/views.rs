//! What the API shows of a branch, an endpoint and a project. Views read the metadata (and, when asked, the
//! files: sizes walk every file with FIEMAP), never change anything; keeping them apart keeps the
//! operations' files about operations.

use super::*;
pub use pgfork_core::human_bytes;

/// The one region of a pgfork server, in Neon's `region_id` fields.
const NEON_REGION: &str = "pgfork-local";

impl Engine {
    pub fn connection_uri(&self, project: &Project, b: &Branch) -> String {
        format!(
            "postgresql://{}:{}@{}:{}/{}",
            project.role_name, b.password, self.cfg.public_host, b.port, project.db_name
        )
    }

    /// A connection URI with Neon's parts of it.
    pub fn connection_uri_entry(&self, project: &Project, b: &Branch) -> api::ConnectionUri {
        let host = format!("{}:{}", self.cfg.public_host, b.port);
        api::ConnectionUri {
            connection_uri: self.connection_uri(project, b),
            connection_parameters: Some(api::ConnectionParameters {
                database: project.db_name.clone(),
                password: b.password.clone(),
                role: project.role_name.clone(),
                // No pooler: the pooled host is the branch's own.
                pooler_host: host.clone(),
                host,
            }),
        }
    }

    /// The API view of a branch. `sizes` walks its files (FIEMAP), so it is opt-in.
    pub fn view(&self, project: &Project, b: &Branch, sizes: bool) -> api::Branch {
        let (logical, unique) = if sizes {
            match pgfork_cow::usage(&b.data_dir) {
                Ok(u) => (Some(u.logical_bytes), Some(u.unique_bytes)),
                Err(e) => {
                    tracing::warn!(branch = %b.name, error = %e, "could not measure branch size");
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        let parent_name = b
            .parent_id
            .as_deref()
            .and_then(|p| self.store().branch(p).ok().flatten())
            .map(|p| p.name);
        api::Branch {
            id: b.id.clone(),
            project_id: b.project_id.clone(),
            parent_id: b.parent_id.clone(),
            parent_lsn: b.parent_lsn.clone(),
            name: b.name.clone(),
            current_state: match b.state {
                BranchState::Creating => "init",
                _ => "ready",
            }
            .to_string(),
            created_at: b.created_at,
            updated_at: b.updated_at,
            expires_at: b.expires_at,
            protected: b.protected,
            default: b.parent_id.is_none(),
            logical_size: logical,
            state_changed_at: b.updated_at,
            creation_source: "pgfork".to_string(),
            primary: b.parent_id.is_none(),
            cpu_used_sec: 0,
            active_time_seconds: 0,
            compute_time_seconds: 0,
            written_data_bytes: unique.map_or(0, |u| u as i64),
            data_transfer_bytes: 0,
            parent_name,
            state: b.state.to_string(),
            port: b.port,
            git_branch: b.git_branch.clone(),
            logical_bytes: logical,
            unique_bytes: unique,
            clone_method: b.clone_method.clone(),
            data_dir: b.data_dir.display().to_string(),
            masked: b.masked,
            after_create: b.after_create.clone(),
            pgfork_history: self.history_view(b, sizes),
            suspend_timeout_seconds: b.suspend_timeout_seconds,
            deleted_at: b.deleted_at,
            purge_at: b
                .deleted_at
                .map(|d| pgfork_core::expires_at_from_ttl(d, self.cfg.grace)),
            pgfork_port_error: (b.port != 0).then(|| self.port_error(b.port)).flatten(),
            pgfork_trash_reason: if b.state.is_live() {
                None
            } else {
                self.store().trash_reason(&b.id).ok().flatten()
            },
            pgfork_gc_spared: self.store().spared(&b.id).unwrap_or_default(),
            connection_uri: self.connection_uri(project, b),
        }
    }

    pub fn endpoint(&self, b: &Branch) -> api::Endpoint {
        api::Endpoint {
            neon: api::NeonEndpointFacts {
                region_id: NEON_REGION.to_string(),
                autoscaling_limit_min_cu: 0.25,
                autoscaling_limit_max_cu: 0.25,
                pooler_enabled: false,
                pooler_mode: "transaction".to_string(),
                disabled: false,
                passwordless_access: false,
                creation_source: "pgfork".to_string(),
                settings: serde_json::json!({}),
                proxy_host: self.cfg.public_host.clone(),
                provisioner: "k8s-pod".to_string(),
            },
            id: endpoint_id(&b.id),
            project_id: b.project_id.clone(),
            branch_id: b.id.clone(),
            // Neon's clients append `/db` to the host: ours carries the branch's port.
            host: format!("{}:{}", self.cfg.public_host, b.port),
            port: b.port,
            kind: "read_write".to_string(),
            suspend_timeout_seconds: b.suspend_timeout_seconds,
            current_state: if b.state == BranchState::Running {
                "active"
            } else {
                "idle"
            }
            .to_string(),
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }

    pub fn api_project(&self, p: &Project) -> api::Project {
        api::Project {
            neon: api::NeonProjectFacts {
                platform_id: "pgfork".to_string(),
                region_id: NEON_REGION.to_string(),
                proxy_host: self.cfg.public_host.clone(),
                provisioner: "k8s-pod".to_string(),
                owner_id: self.owner_id(),
                creation_source: "pgfork".to_string(),
                updated_at: p.created_at,
                store_passwords: true,
                consumption_period_start: p.created_at,
                consumption_period_end: Utc::now(),
                ..Default::default()
            },
            id: p.id.clone(),
            name: p.name.clone(),
            pg_version: p.pg_major,
            created_at: p.created_at,
            database_name: p.db_name.clone(),
            role_name: p.role_name.clone(),
            pgfork_superuser: Some(p.superuser.clone()),
            pgfork_import_report: self
                .store()
                .import_report(&p.id)
                .ok()
                .flatten()
                .and_then(|j| serde_json::from_str(&j).ok()),
        }
    }

    pub(crate) fn op_list(&self, op_id: &str) -> Vec<api::Operation> {
        self.ops.get(op_id).into_iter().collect()
    }

    pub(crate) fn branch_response(
        &self,
        project: &Project,
        b: &Branch,
        op_id: Option<&str>,
    ) -> api::BranchResponse {
        api::BranchResponse {
            branch: self.view(project, b, false),
            endpoints: vec![self.endpoint(b)],
            operations: op_id.map(|id| self.op_list(id)).unwrap_or_default(),
            // What pgfork makes every branch with, without reading the branch (which may
            // still be building): the admin role and the default database.
            roles: vec![api::Role {
                branch_id: b.id.clone(),
                name: project.role_name.clone(),
                protected: true,
                created_at: b.created_at,
                updated_at: b.updated_at,
            }],
            databases: vec![api::Database {
                // The OID is known only once read from the branch (`…/databases`).
                id: 0,
                branch_id: b.id.clone(),
                name: project.db_name.clone(),
                owner_name: project.role_name.clone(),
                created_at: b.created_at,
                updated_at: b.updated_at,
            }],
            connection_uris: vec![self.connection_uri_entry(project, b)],
            annotation: Some(serde_json::json!({
                "object": {"type": "console/branch", "id": b.id},
                "value": {},
            })),
        }
    }

    /// Who owns the server's projects, in Neon's terms: the OS user running pgfork.
    pub fn owner_id(&self) -> String {
        // SAFETY: geteuid has no preconditions.
        format!("pgfork-{}", unsafe { libc::geteuid() })
    }
}
