//! Deletion is soft: the trash keeps a branch recoverable for its grace period; purge removes it for
//! good. Each either completes or leaves the branch as it was (a failed metadata write moves the
//! directory back), a purge frees the data first when the metadata disk is full, and recover brings
//! a branch back under a new name or port when its own were taken meanwhile.

use super::*;

/// Empties a directory tree but keeps the directory itself (a marker of intent).
pub(crate) fn remove_tree_contents(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            if let Err(err) = r {
                tracing::warn!(path = %p.display(), error = %err, "could not remove");
            }
        }
    }
}

impl Engine {
    pub async fn delete_branch(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        purge: bool,
        reason: Option<pgfork_git::gc::Reason>,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let _op = self.in_flight().await;
        // A purge may also target a branch already in the trash.
        let b = match self.branch(&project, branch_ref) {
            Ok(b) => b,
            Err(e) if purge => {
                // One store lock per statement: the mutex is not reentrant.
                let trashed = self
                    .store()
                    .trashed_branch_by_name(&project.id, branch_ref)
                    .map_err(store_err)?;
                let by_id = self.store().branch(branch_ref).map_err(store_err)?;
                trashed
                    .or(by_id.filter(|b| b.project_id == project.id))
                    .ok_or(e)?
            }
            Err(e) => return Err(e),
        };
        let _branch = self.lock_branch(&b.id).await;
        let mut b = self.reread(&b)?;
        if b.parent_id.is_none() && b.state.is_live() {
            return Err(ApiError::bad_request(format!(
                "{:?} is the project's root branch and cannot be deleted",
                b.name
            )));
        }
        if b.protected {
            return Err(ApiError::new(
                403,
                "PROTECTED",
                format!(
                    "{:?} is protected: run `pgfork branch unprotect {}` first",
                    b.name, b.name
                ),
            ));
        }
        let (op_id, _) = self.ops.begin(&project.id, Some(&b.id), "delete_timeline");
        let result = self.trash_or_purge(&project, &mut b, purge, reason).await;
        self.ops.finish(&op_id, result.as_ref().map(|_| ()));
        result?;
        Ok(self.branch_response(&project, &b, Some(&op_id)))
    }

    /// Moves a branch to the trash, or purges it for good. Either completes or leaves
    /// the branch as it was (a failed metadata write moves the directory back and
    /// restarts what ran), except that a purge interrupted after its directory moved
    /// to `tmp/purge-<id>` is completed at the next start: the user asked for it.
    pub(crate) async fn trash_or_purge(
        &self,
        project: &Project,
        b: &mut Branch,
        purge: bool,
        reason: Option<pgfork_git::gc::Reason>,
    ) -> Result<(), ApiError> {
        let was_running = self.instance(project, b).is_running();
        // The port stays held while the branch is in the trash (it is reserved for
        // it): connections get "no branch" from our proxy, never a stranger's socket.
        // Wakes wait for this branch's lock, and then find it gone.
        self.stop_instance(self.instance(project, b)).await?;
        let result = if purge {
            self.purge_stopped(b).await
        } else if b.state.is_live() {
            self.trash_stopped(project, b, reason).await
        } else {
            Ok(())
        };
        if result.is_err() && b.state.is_live() {
            // Nothing changed: it serves again as before.
            if was_running {
                let _ = self.start_instance(project, b, false).await;
            }
            self.expose(b.port).await;
        }
        result
    }

    pub(crate) async fn purge_stopped(&self, b: &mut Branch) -> Result<(), ApiError> {
        let dir = b.data_dir.clone();
        // Rename first: a crash from here on leaves `tmp/purge-<id>`, which the next
        // start takes as the purge it was and completes.
        let doomed = self.layout.tmp.join(format!("purge-{}", b.id));
        let moved = dir.exists();
        if moved {
            std::fs::rename(&dir, &doomed).map_err(io_err("remove", &dir))?;
        }
        crate::failpoints::crash("purge-after-move");
        let purged = self.write_store(|s| s.purge_branch(&b.id));
        if let Err(e) = purged {
            if !is_disk_full(&e) || !moved {
                if moved {
                    let _ = std::fs::rename(&doomed, &dir);
                }
                return Err(store_err(e));
            }
            // The metadata cannot be written because the disk is full: free the space
            // this purge is about first, then write again.
            tracing::warn!(branch = %b.name, "disk full: removing the data before the metadata row");
            let d = doomed.clone();
            blocking(move || {
                remove_tree_contents(&d);
                Ok(())
            })
            .await?;
            self.write_store(|s| s.purge_branch(&b.id)).map_err(|e| {
                ApiError::insufficient_storage(format!(
                    "the data of {:?} is removed but its metadata could not be written ({e}): free some space; the next daemon start completes the purge",
                    b.name
                ))
            })?;
        }
        self.forget_lock(&b.id);
        // Purged: the port is free for new branches (the allocator holds it again).
        self.unexpose(b.port);
        // Its history goes with it: the archive and the snapshots kept for it.
        let history: Vec<pgfork_store::Snapshot> = self
            .store()
            .all_snapshots()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.source_branch_id == b.id && s.reason == "history")
            .collect();
        for s in &history {
            let _ = self.write_store(|st| st.delete_snapshot(&s.id));
        }
        let history_dirs: Vec<PathBuf> = history.into_iter().map(|s| s.data_dir).collect();
        let archive = self.layout.archive_dir(&b.id);
        let (log, run) = (self.layout.branch_log(&b.id), self.layout.socket_dir(&b.id));
        blocking(move || {
            remove_tree(&doomed);
            remove_tree(&run);
            remove_tree(&archive);
            for d in &history_dirs {
                remove_tree(d);
            }
            for f in crate::layout::rotated_logs(&log) {
                let _ = std::fs::remove_file(f);
            }
            Ok(())
        })
        .await?;
        b.state = BranchState::Deleted;
        b.deleted_at = Some(Utc::now());
        tracing::info!(branch = %b.name, "branch purged");
        Ok(())
    }

    pub(crate) async fn trash_stopped(
        &self,
        project: &Project,
        b: &mut Branch,
        reason: Option<pgfork_git::gc::Reason>,
    ) -> Result<(), ApiError> {
        let trash = self.layout.trash_dir(
            &safe_dir_name(&project.name),
            &safe_dir_name(&b.name),
            &b.id,
        );
        if let Some(parent) = trash.parent() {
            traversable_dir(parent)?;
        }
        let home = b.data_dir.clone();
        std::fs::rename(&home, &trash).map_err(io_err("move to the trash", &home))?;
        crate::failpoints::crash("trash-after-move");
        let mut trashed = b.clone();
        trashed.data_dir = trash;
        trashed.state = BranchState::Deleted;
        trashed.deleted_at = Some(Utc::now());
        trashed.updated_at = Utc::now();
        // One store lock per statement: the mutex is not reentrant.
        let written = self.write_store(|s| s.update_branch(&trashed));
        let written = written.and_then(|()| {
            self.write_store(|s| s.set_trash_reason(&b.id, reason.map(|r| r.as_str())))
        });
        if let Err(e) = written {
            if let Err(back) = std::fs::rename(&trashed.data_dir, &home) {
                tracing::error!(branch = %b.name, error = %back, "could not move the branch back from the trash; the next daemon start will");
            }
            return Err(if is_disk_full(&e) {
                ApiError::insufficient_storage(format!(
                    "no space left to record that {:?} was deleted, so nothing was changed: free some space, or purge branches (`pgfork branch delete NAME --purge`, `pgfork trash empty`)",
                    b.name
                ))
            } else {
                store_err(e)
            });
        }
        *b = trashed;
        tracing::info!(branch = %b.name, reason = reason.map(|r| r.as_str()).unwrap_or("deleted by the user"), "branch moved to trash");
        Ok(())
    }

    /// Brings a branch back from the trash. Its name, directory and port are its own
    /// again unless something took them meanwhile (a new branch of the same name, a
    /// port given up by the trash): then it gets new ones and the response says so. A
    /// branch gc took is spared that reason from now on; an expired TTL is cleared.
    pub async fn recover_branch(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let _op = self.in_flight().await;
        let by_id = self
            .store()
            .branch(branch_ref)
            .map_err(store_err)?
            .filter(|b| b.project_id == project.id && !b.state.is_live());
        let found = match by_id {
            Some(b) => b,
            None => self
                .store()
                .trashed_branch_by_name(&project.id, branch_ref)
                .map_err(store_err)?
                .ok_or_else(|| ApiError::not_found(format!("no deleted branch {branch_ref:?} in the trash of project {:?} (purged branches cannot be recovered)", project.name)))?,
        };
        let _branch = self.lock_branch(&found.id).await;
        let mut b = self.reread(&found)?;
        if b.state.is_live() {
            return Ok(self.branch_response(&project, &b, None));
        }
        let (op_id, _) = self.ops.begin(&project.id, Some(&b.id), "recover_branch");
        let result = self.recover_locked(&project, &mut b, &op_id).await;
        self.ops.finish(&op_id, result.as_ref().map(|_| ()));
        result?;
        Ok(self.branch_response(&project, &b, Some(&op_id)))
    }

    pub(crate) async fn recover_locked(
        &self,
        project: &Project,
        b: &mut Branch,
        op_id: &str,
    ) -> Result<(), ApiError> {
        let mut recovered = b.clone();
        let namesake = self
            .store()
            .live_branch_by_name(&project.id, &b.name)
            .map_err(store_err)?;
        let mut reservation = None;
        if namesake.is_some() {
            let short: String =
                b.id.chars()
                    .rev()
                    .take(6)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
            recovered.name = format!("{}-recovered-{short}", b.name);
            validate_branch_name(&recovered.name)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            self.ops.warn(
                op_id,
                format!(
                    "a live branch is named {:?} now, so this one comes back as {:?}",
                    b.name, recovered.name
                ),
            );
            // It is no longer the database of that git branch: the live one is.
            recovered.git_branch = None;
        }
        if recovered.home_dir.exists() {
            // Another branch lives there now (see `reconcile::alternate_home`).
            recovered.home_dir = crate::reconcile::alternate_home(&b.home_dir, &b.id);
        }
        if b.port == 0 {
            let r = self.reserve(&project.name, &format!("recover:{}", b.id))?;
            recovered.port = r.port;
            reservation = Some(r);
            self.ops.warn(op_id, format!("its port was given to another branch while it was in the trash: its URL now uses port {}", recovered.port));
        }
        if recovered.expires_at.is_some_and(|t| t <= Utc::now()) {
            recovered.expires_at = None;
            self.ops.warn(op_id, format!("its TTL had expired, so it comes back without one: `pgfork branch set-ttl {} 1d` sets a new one", recovered.name));
        }
        if let Some(parent) = recovered.home_dir.parent() {
            traversable_dir(parent)?;
        }
        std::fs::rename(&b.data_dir, &recovered.home_dir)
            .map_err(io_err("move out of the trash", &b.data_dir))?;
        crate::failpoints::crash("recover-after-move");
        recovered.data_dir = recovered.home_dir.clone();
        recovered.state = BranchState::Suspended;
        recovered.deleted_at = None;
        recovered.updated_at = Utc::now();
        let written = self.write_store(|s| s.update_branch(&recovered));
        let written = written.and_then(|()| self.write_store(|s| s.spare_trash_reason(&b.id)));
        drop(reservation);
        if let Err(e) = written {
            let _ = std::fs::rename(&recovered.data_dir, &b.data_dir);
            return Err(store_err(e));
        }
        *b = recovered;
        self.start_instance(project, b, false).await?;
        b.state = BranchState::Running;
        self.write_store(|s| s.set_state(&b.id, b.state, Utc::now()))
            .map_err(store_err)?;
        self.expose(b.port).await;
        tracing::info!(branch = %b.name, "recovered from the trash");
        Ok(())
    }

    pub async fn delete_project(
        self: &Arc<Self>,
        project_ref: &str,
    ) -> Result<api::ProjectResponse, ApiError> {
        let project = self.project(project_ref)?;
        let _op = self.in_flight().await;
        self.unsubscribe_root(&project).await;
        let branches = self
            .store()
            .branches(&project.id, true)
            .map_err(store_err)?;
        for b in branches {
            let _branch = self.lock_branch(&b.id).await;
            let Ok(mut b) = self.reread(&b) else { continue };
            self.trash_or_purge(&project, &mut b, true, None).await?;
        }
        self.store()
            .delete_project(&project.id)
            .map_err(store_err)?;
        // Each branch's own directory went with its purge. The project's directory goes
        // only if nothing else is in it: after a rename, another project (a new one with
        // the old name, or the renamed one) may keep its branches there.
        for dir in [
            self.layout.branches.join(safe_dir_name(&project.name)),
            self.layout.trash.join(safe_dir_name(&project.name)),
        ] {
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(api::ProjectResponse {
            project: self.api_project(&project),
            branch: None,
            endpoints: vec![],
            operations: vec![],
            connection_uris: vec![],
        })
    }
}

impl Engine {
    /// A subscriber root's slot on the source keeps the source's WAL until its
    /// subscription is dropped: dropped with the project (best effort; the log names the
    /// slot to drop by hand when the source cannot be reached).
    pub(crate) async fn unsubscribe_root(&self, project: &Project) {
        let Ok(root) = self.root_branch(project) else {
            return;
        };
        if root.clone_method != super::create::SUBSCRIBE_ROOT {
            return;
        }
        let name = pgfork_pg::subscribe::subscription_name(&project.name);
        let inst = self.instance(project, &root);
        let dropped = match sql::connect(&inst, &project.db_name).await {
            Ok(client) => pgfork_pg::subscribe::unsubscribe(&client, &name).await,
            Err(e) => Err(e),
        };
        match dropped {
            Ok(()) => {
                tracing::info!(project = %project.name, slot = %name, "dropped the root's subscription and its slot on the source")
            }
            Err(e) => {
                tracing::warn!(project = %project.name, slot = %name, error = %e, "could not drop the root's subscription: drop the replication slot on the source by hand (SELECT pg_drop_replication_slot('{name}'))")
            }
        }
    }
}
