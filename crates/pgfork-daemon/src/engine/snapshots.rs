//! Snapshots: a branch's data at a moment, kept as a stopped clone with its backup label
//! and never started — on a reflink store it costs nothing until the branch diverges.
//!
//! A snapshot is taken with the same online recipe as a branch (the branch is never
//! stopped), made durable in `tmp/`, moved under `snapshots/`, and only then recorded
//! (invariant 2, for snapshots). It becomes data again by being cloned: into a new branch,
//! or over its branch (a restore), which keeps the branch's URL and password and first
//! snapshots what it replaces. A masked branch's snapshot is masked data; an unmasked
//! snapshot never replaces a masked branch's data.

use super::create::BuildingPort;
use super::*;

impl Engine {
    fn snapshot_view(&self, s: &pgfork_store::Snapshot) -> api::Snapshot {
        let source_name = self
            .store()
            .branch(&s.source_branch_id)
            .ok()
            .flatten()
            .map(|b| b.name)
            .unwrap_or_default();
        api::Snapshot {
            id: s.id.clone(),
            name: s.name.clone(),
            lsn: s.lsn.clone(),
            timestamp: Some(s.created_at),
            source_branch_id: s.source_branch_id.clone(),
            created_at: s.created_at,
            expires_at: s.expires_at,
            manual: s.manual,
            pgfork_reason: s.reason.clone(),
            pgfork_source_branch_name: source_name,
            pgfork_masked: s.masked,
        }
    }

    /// A snapshot of a project by id or name.
    pub(crate) fn snapshot(
        &self,
        p: &Project,
        r: &str,
    ) -> Result<pgfork_store::Snapshot, ApiError> {
        self.store()
            .snapshots(&p.id)
            .map_err(store_err)?
            .into_iter()
            .find(|s| s.id == r || s.name == r)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "project {:?} has no snapshot {r:?}: see `pgfork snapshot list`",
                    p.name
                ))
            })
    }

    pub async fn create_snapshot(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        q: api::SnapshotCreateQuery,
    ) -> Result<api::SnapshotResponse, ApiError> {
        if q.lsn.is_some() || q.timestamp.is_some() {
            return Err(super::catalog::history_not_kept());
        }
        let p = self.project(project_ref)?;
        let b = self.branch(&p, branch_ref)?;
        let reason = q.pgfork_reason.unwrap_or_else(|| "manual".to_string());
        let name = match q.name {
            Some(n) => n,
            None => pgfork_core::preserved_name(&b.name, &reason, Utc::now())
                .replace("-before-manual-", "-"),
        };
        validate_branch_name(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let s = self
            .take_snapshot(&p, &b, &name, &reason, q.expires_at)
            .await?;
        Ok(api::SnapshotResponse {
            snapshot: self.snapshot_view(&s),
            operations: vec![],
        })
    }

    /// Takes a snapshot of `b` (online when it runs), durable before it is recorded.
    pub(crate) async fn take_snapshot(
        &self,
        p: &Project,
        b: &Branch,
        name: &str,
        reason: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<pgfork_store::Snapshot, ApiError> {
        if self
            .store()
            .snapshots(&p.id)
            .map_err(store_err)?
            .iter()
            .any(|s| s.name == name)
        {
            return Err(ApiError::conflict(format!(
                "project {:?} already has a snapshot named {name:?}: pick another name or delete it",
                p.name
            )));
        }
        let id = new_id("snap");
        let staged = StagedDir::new(self.layout.tmp.join(&id));
        let tmp = staged.path().to_path_buf();
        let built = tmp.join("pgdata");
        let progress = Arc::new(Progress::default());
        let lsn = {
            let _branch = self.lock_branch(&b.id).await;
            let b = self.branch(p, &b.id)?;
            self.clone_parent_into(p, &b, &tmp, &built, "", &progress, &id)
                .await?
        };
        let dest = self.layout.snapshot_dir(&safe_dir_name(&p.name), &id);
        {
            let (built, dest) = (built.clone(), dest.clone());
            blocking(move || {
                pgfork_cow::sync_filesystem(&built).map_err(cow_err)?;
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
                }
                std::fs::rename(&built, &dest).map_err(io_err("move the snapshot into", &dest))?;
                if let Some(parent) = dest.parent() {
                    pgfork_cow::fsync_dir(parent).map_err(cow_err)?;
                }
                Ok(())
            })
            .await?;
        }
        drop(staged);
        let snap = pgfork_store::Snapshot {
            id,
            project_id: p.id.clone(),
            source_branch_id: b.id.clone(),
            name: name.to_string(),
            created_at: Utc::now(),
            expires_at,
            lsn,
            data_dir: dest.clone(),
            manual: reason == "manual",
            reason: reason.to_string(),
            masked: b.masked,
        };
        if let Err(e) = self.write_store(|s| s.insert_snapshot(&snap)) {
            remove_tree(&dest);
            return Err(store_err(e));
        }
        tracing::info!(project = %p.name, branch = %b.name, snapshot = %snap.name, reason, "snapshot taken");
        Ok(snap)
    }

    pub fn list_snapshots(&self, project_ref: &str) -> Result<api::SnapshotsResponse, ApiError> {
        let p = self.project(project_ref)?;
        let list = self.store().snapshots(&p.id).map_err(store_err)?;
        Ok(api::SnapshotsResponse {
            snapshots: list.iter().map(|s| self.snapshot_view(s)).collect(),
        })
    }

    pub async fn delete_snapshot(
        &self,
        project_ref: &str,
        snapshot_ref: &str,
    ) -> Result<api::OperationsResponse, ApiError> {
        let p = self.project(project_ref)?;
        let s = self.snapshot(&p, snapshot_ref)?;
        self.drop_snapshot(&s).await?;
        Ok(api::OperationsResponse { operations: vec![] })
    }

    /// The row first, then the directory: a crash in between leaves an orphan the
    /// start-up sweep removes, never a row pointing at nothing.
    async fn drop_snapshot(&self, s: &pgfork_store::Snapshot) -> Result<(), ApiError> {
        self.write_store(|st| st.delete_snapshot(&s.id))
            .map_err(store_err)?;
        let dir = s.data_dir.clone();
        blocking(move || {
            remove_tree(&dir);
            Ok(())
        })
        .await
    }

    pub async fn restore_snapshot(
        self: &Arc<Self>,
        project_ref: &str,
        snapshot_ref: &str,
        req: api::SnapshotRestoreRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        let p = self.project(project_ref)?;
        let snap = self.snapshot(&p, snapshot_ref)?;
        if !req.finalize_restore {
            let name = req.name.clone().unwrap_or_else(|| {
                format!("{}-restored-{}", snap.name, Utc::now().format("%H%M%S"))
            });
            return self.branch_from_snapshot(&p, &snap, name).await;
        }
        let target_ref = req
            .target_branch_id
            .clone()
            .unwrap_or_else(|| snap.source_branch_id.clone());
        let target = self.branch(&p, &target_ref).map_err(|_| {
            ApiError::not_found(format!(
                "the branch snapshot {:?} was taken of is gone: restore it into a new branch (`pgfork branch create NAME --from-snapshot {}`)",
                snap.name, snap.name
            ))
        })?;
        if target.masked && !snap.masked {
            return Err(ApiError::conflict(format!(
                "{:?} is masked and snapshot {:?} is not: restoring it would bring the originals back",
                target.name, snap.name
            )));
        }
        if req.pgfork_refuse_sessions {
            let wait =
                std::time::Duration::from_secs(req.pgfork_wait_seconds.unwrap_or(0).min(3600));
            self.wait_for_no_sessions(&p, &target, wait).await?;
        }
        // What the restore replaces is kept, as a snapshot, for a week.
        let kept_name = pgfork_core::preserved_name(&target.name, "restore", Utc::now());
        let kept = self
            .take_snapshot(
                &p,
                &target,
                &kept_name,
                "before-restore",
                Some(Utc::now() + chrono::Duration::days(7)),
            )
            .await?;
        let this = self.clone();
        let (p2, t2, s2) = (p.clone(), target.clone(), snap.clone());
        let (op_id, result) = self
            .run_op(
                &p.id,
                Some(&target.id),
                "restore_snapshot",
                move |_op, progress| async move {
                    let _op = this.in_flight().await;
                    this.replace_with_snapshot(&p2, &t2.id, &s2, progress).await
                },
            )
            .await;
        let b = match result {
            Some(r) => r?,
            None => target,
        };
        tracing::info!(project = %p.name, branch = %b.name, snapshot = %snap.name, kept = %kept.name, "branch restored from a snapshot");
        Ok(self.branch_response(&p, &b, Some(&op_id)))
    }

    async fn branch_from_snapshot(
        self: &Arc<Self>,
        p: &Project,
        snap: &pgfork_store::Snapshot,
        name: String,
    ) -> Result<api::BranchResponse, ApiError> {
        validate_branch_name(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if self
            .store()
            .live_branch_by_name(&p.id, &name)
            .map_err(store_err)?
            .is_some()
        {
            return Err(ApiError::conflict(format!(
                "a branch named {name:?} already exists in project {:?}: pick another name",
                p.name
            )));
        }
        // Its parent in the tree is the branch the snapshot was taken of, if it lives.
        let parent = match self.branch(p, &snap.source_branch_id) {
            Ok(b) => b,
            Err(_) => self.root_branch(p)?,
        };
        let settings = self.pg_settings_of(&snap.source_branch_id)?;
        let reservation = self.reserve(&p.name, &name)?;
        let mut planned = self.plan_branch(
            p,
            name,
            &parent,
            api::BranchCreate::default(),
            reservation.port,
        );
        planned.masked = snap.masked;
        let building = BuildingPort::new(
            self,
            planned.port,
            format!(
                "branch {:?} is being made from a snapshot: it accepts connections in a moment",
                planned.name
            ),
        );
        let this = self.clone();
        let (p2, b2, dir) = (p.clone(), planned.clone(), snap.data_dir.clone());
        let (op_id, result) = self
            .run_op(
                &p.id,
                Some(&planned.id),
                "create_branch",
                move |op_id, progress| async move {
                    let _op = this.in_flight().await;
                    let r = this
                        .build_branch(
                            &p2,
                            b2,
                            op_id,
                            progress,
                            super::create::BranchRecipe {
                                rotate: false,
                                mask: None,
                                settings: &settings,
                                from_snapshot: Some(&dir),
                                point_in_time: None,
                                history_window: None,
                            },
                        )
                        .await;
                    drop(building);
                    drop(reservation);
                    r
                },
            )
            .await;
        let b = match result {
            Some(r) => r?,
            None => planned,
        };
        Ok(self.branch_response(p, &b, Some(&op_id)))
    }

    /// Replaces a branch's data with a clone of `snap`, swapping directories as a reset
    /// does (a failed start swaps back).
    async fn replace_with_snapshot(
        &self,
        p: &Project,
        branch_id: &str,
        snap: &pgfork_store::Snapshot,
        progress: Arc<Progress>,
    ) -> Result<Branch, ApiError> {
        let _branch = self.lock_branch(branch_id).await;
        let mut b = self.branch(p, branch_id)?;
        let staged = StagedDir::new(self.layout.tmp.join(format!("{}-restore", b.id)));
        let tmp = staged.path().to_path_buf();
        let built = tmp.join("pgdata");
        std::fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
        self.user.chown(&tmp).map_err(pg_err)?;
        let method = self.clone_method_between(&snap.data_dir);
        let (s, d, u, pr) = (
            snap.data_dir.clone(),
            built.clone(),
            self.user.clone(),
            progress.clone(),
        );
        blocking(move || clone::clone_stopped(&s, &d, method, &u, Some(&pr)).map_err(pg_err))
            .await?;
        let settings = self.pg_settings_of(&b.id)?;
        if b.parent_id.is_some() {
            self.apply_branch_settings(&built, &settings).await?;
        }
        self.swap_in(p, &b, &built, &tmp).await?;
        drop(staged);
        self.capture_role_secrets(p, &b).await;
        self.record_baseline(p, &b).await;
        b.masked = b.masked || snap.masked;
        b.state = BranchState::Running;
        b.updated_at = Utc::now();
        self.write_store(|s| s.update_branch(&b))
            .map_err(store_err)?;
        Ok(b)
    }

    /// The reaper's part: snapshots past their expiry go, said in the log.
    pub async fn reap_snapshots(&self, now: DateTime<Utc>) {
        let all = self.store().all_snapshots().unwrap_or_default();
        for s in all
            .into_iter()
            .filter(|s| s.expires_at.is_some_and(|t| t <= now))
        {
            tracing::info!(snapshot = %s.name, reason = %s.reason, "snapshot expired: deleting it");
            if let Err(e) = self.drop_snapshot(&s).await {
                tracing::warn!(snapshot = %s.name, error = %e, "could not delete an expired snapshot");
            }
        }
    }
}
