//! Changing a branch's settings (name, protection, TTL, idle timeout, pairing): metadata only, under
//! the branch's lock; and what it keeps of its past (history.rs), which may restart it.

use super::*;

impl Engine {
    pub async fn update_branch(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        req: api::BranchUpdateRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let mut u = req.branch;
        // Checked before anything changes; applied after the metadata, outside the
        // branch's lock (it restarts the branch and takes a snapshot under it).
        let history = u
            .pgfork_history
            .take()
            .map(|h| super::history::policy_from(&h))
            .transpose()?;
        let sessions = if u.pgfork_refuse_sessions {
            super::Sessions::RefuseAfter(std::time::Duration::from_secs(
                u.pgfork_wait_seconds.unwrap_or(0),
            ))
        } else {
            super::Sessions::End
        };
        let _op = self.in_flight().await;
        let found = self.branch(&project, branch_ref)?;
        if let Some(h) = &history {
            self.check_history_allowed(&found, h.as_ref())?;
        }
        let branch_lock = self.lock_branch(&found.id).await;
        let mut b = self.reread(&found)?;
        if let Some(name) = u.name {
            validate_branch_name(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if name != b.name
                && self
                    .store()
                    .live_branch_by_name(&project.id, &name)
                    .map_err(store_err)?
                    .is_some()
            {
                return Err(ApiError::conflict(format!(
                    "a branch named {name:?} already exists in project {:?}",
                    project.name
                )));
            }
            b.name = name;
        }
        if let Some(p) = u.protected {
            b.protected = p;
        }
        if let Some(g) = u.git_branch {
            b.git_branch = g;
        }
        if let Some(t) = u.suspend_timeout_seconds {
            if t < -1 {
                return Err(ApiError::bad_request(
                    "suspend_timeout_seconds is seconds, 0 for the default or -1 for never",
                ));
            }
            b.suspend_timeout_seconds = t;
        }
        let req_after_create_reported = u.after_create.is_some();
        if let Some(a) = u.after_create {
            if !matches!(a.as_str(), "ok" | "failed") {
                return Err(ApiError::bad_request("after_create is `ok` or `failed`"));
            }
            b.after_create = Some(a);
        }
        match (u.expires_at, u.pgfork_ttl_seconds) {
            // `expires_at: null` removes the expiry.
            (Some(None), None) => b.expires_at = None,
            (None, None) => {}
            (at, ttl) => {
                b.expires_at = pgfork_core::requested_expiry(at.flatten(), ttl, Utc::now())
                    .map_err(ApiError::bad_request)?;
            }
        }
        let migrated = b.after_create.as_deref() == Some("ok");
        b.updated_at = Utc::now();
        crate::failpoints::crash("update-before-write");
        self.write_store(|s| s.update_branch(&b))
            .map_err(store_err)?;
        // The after-create command's migrations are the branch's baseline, not changes
        // of its own: a refresh runs them again.
        if migrated && req_after_create_reported {
            self.record_baseline(&project, &b).await;
        }
        drop(branch_lock);
        if let Some(policy) = history {
            self.change_history(&project, &b.id, policy, sessions)
                .await?;
            b = self.reread(&b)?;
        }
        Ok(self.branch_response(&project, &b, None))
    }
}
