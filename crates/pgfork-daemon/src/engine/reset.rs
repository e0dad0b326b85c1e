//! Reset: a branch goes back to its parent's current state, keeping its id, port and password. The
//! new data is cloned aside and the directories are swapped under the branch's lock; a failed start
//! swaps back, and a crash between the two renames is repaired at start (reconcile).

use super::*;

/// What a reset does to clients connected to the branch it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// End them (Neon's behaviour, for API clients that expect it).
    End,
    /// Wait up to this long for them to close, then refuse the reset.
    RefuseAfter(std::time::Duration),
}

impl Engine {
    pub async fn reset_branch(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        sessions: Sessions,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let b = self.branch(&project, branch_ref)?;
        let parent_id = b.parent_id.clone().ok_or_else(|| {
            ApiError::bad_request(format!(
                "{:?} is the root branch: it has no parent to reset from",
                b.name
            ))
        })?;
        // Refused before anything is cloned, so a refusal costs nothing.
        if let Sessions::RefuseAfter(wait) = sessions {
            self.wait_for_no_sessions(&project, &b, wait).await?;
        }
        let this = self.clone();
        let p2 = project.clone();
        let b2 = b.clone();
        let (op_id, result) = self
            .run_op(
                &project.id,
                Some(&b.id),
                "reset_branch",
                move |op_id, progress| async move {
                    let _op = this.in_flight().await;
                    this.do_reset(&p2, &b2.id, &parent_id, op_id, progress)
                        .await
                },
            )
            .await;
        let b = match result {
            Some(r) => r?,
            None => b,
        };
        Ok(self.branch_response(&project, &b, Some(&op_id)))
    }

    /// Waits up to `wait` for every client session of a running branch to close; a
    /// 409 naming them when some stay.
    pub async fn wait_for_no_sessions(
        &self,
        project: &Project,
        b: &Branch,
        wait: std::time::Duration,
    ) -> Result<(), ApiError> {
        let inst = self.instance(project, b);
        if !inst.is_running() {
            return Ok(());
        }
        // A client that just disconnected may still have its backend for a moment: a
        // short grace, whatever the caller's wait, so a refusal names only real sessions.
        let deadline = std::time::Instant::now() + wait.max(std::time::Duration::from_secs(2));
        loop {
            // Another operation may be stopping or restarting it meanwhile: a stopped
            // branch has no sessions, and a failed look is tried again.
            if !inst.is_running() {
                return Ok(());
            }
            let open = match sql::connect(&inst, "postgres").await {
                Ok(client) => pgfork_pg::catalog::client_sessions(&client).await.ok(),
                Err(_) => None,
            };
            match open {
                Some(open) if open.is_empty() => return Ok(()),
                Some(open) if std::time::Instant::now() >= deadline => {
                    return Err(ApiError::conflict(format!(
                        "{:?} has {} open session{} ({}): close {}, wait for {} (--wait 30s), or end {} with --force",
                        b.name,
                        open.len(),
                        if open.len() == 1 { "" } else { "s" },
                        open.join(", "),
                        if open.len() == 1 { "it" } else { "them" },
                        if open.len() == 1 { "it" } else { "them" },
                        if open.len() == 1 { "it" } else { "them" },
                    )));
                }
                None if std::time::Instant::now() >= deadline => {
                    return Err(ApiError::conflict(format!(
                        "the sessions of {:?} could not be seen (another operation is changing it): try again",
                        b.name
                    )));
                }
                _ => {}
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Swaps `built` in as `b`'s data: stops it, moves its data aside (into `tmp/old`)
    /// and `built` into place, and starts it with its own password (and rotated role
    /// passwords). A failed start puts the previous data back and restarts it as it was.
    pub(crate) async fn swap_in(
        &self,
        project: &Project,
        b: &Branch,
        built: &Path,
        tmp: &Path,
    ) -> Result<(), ApiError> {
        let old = tmp.join("old");
        let was_running = self.instance(project, b).is_running() || b.state == BranchState::Running;
        let swap = {
            let (home, built2, old2) = (b.data_dir.clone(), built.to_path_buf(), old.clone());
            let inst = self.instance(project, b);
            async move {
                self.stop_instance(inst).await?;
                blocking(move || {
                    pgfork_cow::sync_filesystem(&built2).map_err(cow_err)?;
                    std::fs::rename(&home, &old2).map_err(io_err("move aside", &home))?;
                    crate::failpoints::crash("reset-after-move-aside");
                    if let Err(e) = std::fs::rename(&built2, &home) {
                        let _ = std::fs::rename(&old2, &home);
                        return Err(io_err("move the reset branch into", &home)(e));
                    }
                    if let Some(parent) = home.parent() {
                        pgfork_cow::fsync_dir(parent).map_err(cow_err)?;
                    }
                    Ok(())
                })
                .await
            }
        }
        .await;
        if let Err(e) = swap {
            if was_running {
                let _ = self.start_instance(project, b, false).await;
            }
            return Err(e);
        }
        crate::failpoints::crash("reset-after-swap");
        // The reset data carries the parent's passwords; put the branch's back (the
        // admin's in start_instance, the rotated roles' after it).
        let restarted = async {
            self.start_instance(project, b, true).await?;
            if self.store().is_rotated(&b.id).map_err(store_err)? {
                self.rotate_role_passwords(project, b).await?;
            }
            Ok::<(), ApiError>(())
        }
        .await;
        if let Err(e) = restarted {
            tracing::error!(branch = %b.name, error = %e, "reset branch did not start; restoring the previous data");
            let _ = self.stop_instance(self.instance(project, b)).await;
            let home = b.data_dir.clone();
            let _ = std::fs::rename(&home, tmp.join("failed"));
            let _ = std::fs::rename(&old, &home);
            if was_running {
                let _ = self.start_instance(project, b, false).await;
            }
            return Err(e);
        }
        Ok(())
    }

    pub(crate) async fn do_reset(
        &self,
        project: &Project,
        branch_id: &str,
        parent_id: &str,
        op_id: String,
        progress: Arc<Progress>,
    ) -> Result<Branch, ApiError> {
        // The branch for the whole reset; its parent only while it is cloned. Child
        // before parent, always: the tree has no cycle, so neither do the locks.
        let _branch = self.lock_branch(branch_id).await;
        let mut b = self.branch(project, branch_id)?;
        let _parent = self.lock_branch(parent_id).await;
        let parent = self
            .store()
            .branch(parent_id)
            .map_err(store_err)?
            .filter(|p| p.state.is_live())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "the parent of {:?} was deleted: there is nothing to reset it to",
                    b.name
                ))
            })?;
        let staged = StagedDir::new(self.layout.tmp.join(format!("{}-reset", b.id)));
        let tmp = staged.path().to_path_buf();
        let built = tmp.join("pgdata");
        let label = format!("{}-reset", b.id);
        let lsn = self
            .clone_parent_into(project, &parent, &tmp, &built, &op_id, &progress, &label)
            .await?;
        drop(_parent);
        let settings = self.pg_settings_of(&b.id)?;
        self.apply_branch_settings(&built, &settings).await?;
        // A branch masked from an unmasked parent is masked again: a reset never
        // brings the originals back (a child of a masked parent copies masked data).
        let rules = self.store().branch_masking(&b.id).map_err(store_err)?;
        match rules {
            Some(json) => {
                let rules = pgfork_mask::MaskingRules::parse(&json).map_err(|e| {
                    ApiError::internal(format!("the stored masking rules of {:?}: {e}", b.name))
                })?;
                let key = self
                    .write_store(|s| s.project_mask_key(&project.id, crate::ids::new_password))
                    .map_err(store_err)?;
                self.mask_staged(project, &b, &label, &built, &rules, &key, &progress)
                    .await?;
            }
            None if b.masked && !parent.masked => {
                return Err(ApiError::conflict(format!(
                    "{:?} is masked but its masking rules are not recorded: it cannot be reset from the unmasked {:?}; delete it and create it again with --mask",
                    b.name, parent.name
                )));
            }
            None => {}
        }
        crate::failpoints::crash("reset-after-clone");
        self.swap_in(project, &b, &built, &tmp).await?;
        drop(staged);
        self.capture_role_secrets(project, &b).await;
        self.catch_up_sequences(project, &b).await;
        self.record_fork(project, &b).await;
        b.parent_lsn = lsn;
        b.state = BranchState::Running;
        b.updated_at = Utc::now();
        self.write_store(|s| s.update_branch(&b))
            .map_err(store_err)?;
        Ok(b)
    }
}
