//! Making a project's root again from its source: by hand (`pgfork root refresh`) or on a
//! schedule the reaper keeps.
//!
//! The new root is imported aside (its own staging directory and socket, while the old
//! root keeps serving), then swapped in under the root's lock exactly as a reset swaps a
//! branch: the old data moved aside, the new moved into place, started, and only then
//! the old thrown away (a failed start swaps back). The root keeps its id, port and
//! password; existing branches are untouched, since clones share nothing with their
//! parent (invariant 3). A scheduled refresh never ends a session: while clients are
//! connected to the root it waits for the next round, and says so in the log.

use super::create::REPLICA_ROOT;
use super::*;

/// How often a schedule word means, in seconds; `None` for `off`.
pub(crate) fn schedule_seconds(word: &str) -> Result<Option<i64>, String> {
    match word.trim() {
        "off" | "none" | "never" => Ok(None),
        "hourly" => Ok(Some(3600)),
        "daily" => Ok(Some(86_400)),
        "weekly" => Ok(Some(7 * 86_400)),
        other => {
            let d = pgfork_core::parse_ttl(other).map_err(|e| e.to_string())?;
            if d.as_secs() < 600 {
                return Err(format!(
                    "a root refresh every {other} would import from the source nonstop: give at least 10m (or daily, weekly, off)"
                ));
            }
            Ok(Some(d.as_secs() as i64))
        }
    }
}

/// When a scheduled root is due next.
pub(crate) fn next_refresh(
    schedule_seconds: Option<i64>,
    last: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    schedule_seconds.map(|s| last + chrono::Duration::seconds(s))
}

impl Engine {
    pub async fn refresh_root(
        self: &Arc<Self>,
        project_ref: &str,
        req: api::RootRefreshRequest,
    ) -> Result<api::RootRefreshResponse, ApiError> {
        let p = self.project(project_ref)?;
        let root = self.root_branch(&p)?;
        if let Some(word) = &req.schedule {
            let secs = schedule_seconds(word).map_err(ApiError::bad_request)?;
            if self
                .store()
                .project_source(&p.id)
                .map_err(store_err)?
                .is_none()
                && req.source.is_none()
            {
                return Err(no_source(&p));
            }
            if let Some(src) = &req.source {
                self.record_source(&p, src)?;
            }
            self.write_store(|s| s.set_root_schedule(&p.id, secs))
                .map_err(store_err)?;
        }
        let mut op_list = Vec::new();
        let mut root_after = root.clone();
        if req.now.unwrap_or(true) {
            let source = match &req.source {
                Some(s) => s.clone(),
                None => self.stored_source(&p)?,
            };
            if req.refuse_sessions {
                let wait = std::time::Duration::from_secs(req.wait_seconds.unwrap_or(0).min(3600));
                self.wait_for_no_sessions(&p, &root, wait).await?;
            }
            if let Some(src) = &req.source {
                self.record_source(&p, src)?;
            }
            let this = self.clone();
            let (p2, r2) = (p.clone(), root.clone());
            let (op_id, result) = self
                .run_op(
                    &p.id,
                    Some(&root.id),
                    "refresh_root",
                    move |_op, progress| async move {
                        let _op = this.in_flight().await;
                        this.do_refresh_root(&p2, &r2, &source, progress).await
                    },
                )
                .await;
            if let Some(r) = result {
                root_after = r?;
            }
            op_list = self.op_list(&op_id);
        }
        let rec = self.store().project_source(&p.id).map_err(store_err)?;
        let schedule_seconds = rec.as_ref().and_then(|r| r.schedule_seconds);
        let refreshed_at = rec.as_ref().and_then(|r| r.refreshed_at);
        Ok(api::RootRefreshResponse {
            branch: self.view(&p, &root_after, false),
            operations: op_list,
            schedule_seconds,
            refreshed_at,
            next_refresh_at: next_refresh(
                schedule_seconds,
                refreshed_at.unwrap_or(root.created_at),
            ),
        })
    }

    /// Keeps where a project's root comes from, for refreshes.
    pub(crate) fn record_source(
        &self,
        p: &Project,
        source: &api::RootSource,
    ) -> Result<(), ApiError> {
        let json = serde_json::to_string(source)
            .map_err(|e| ApiError::internal(format!("the root's source: {e}")))?;
        self.write_store(|s| s.set_project_source(&p.id, &json))
            .map_err(store_err)
    }

    fn stored_source(&self, p: &Project) -> Result<api::RootSource, ApiError> {
        let rec = self
            .store()
            .project_source(&p.id)
            .map_err(store_err)?
            .ok_or_else(|| no_source(p))?;
        serde_json::from_str(&rec.source)
            .map_err(|e| ApiError::internal(format!("the recorded source of {:?}: {e}", p.name)))
    }

    async fn do_refresh_root(
        &self,
        p: &Project,
        root: &Branch,
        source: &api::RootSource,
        progress: Arc<Progress>,
    ) -> Result<Branch, ApiError> {
        let _root_lock = self.lock_branch(&root.id).await;
        let mut root = self.branch(p, &root.id)?;
        // Its own staging directory, socket and log: the old root serves meanwhile.
        let aside = format!("{}r", root.id);
        let staged = StagedDir::new(self.layout.tmp.join(&aside));
        let tmp = staged.path().to_path_buf();
        let built = tmp.join("pgdata");
        let mut build_inst = Instance {
            pgdata: built.clone(),
            socket_dir: self.layout.socket_dir(&aside),
            port: root.port,
            log_file: self.layout.branch_log(&aside),
            superuser: "postgres".to_string(),
            archive_dir: None,
        };
        // A subscriber's new import subscribes again under the same name: the old
        // subscription (and its slot on the source) goes first.
        if root.clone_method == super::create::SUBSCRIBE_ROOT {
            self.unsubscribe_root(p).await;
        }
        let mut project = p.clone();
        let mut fresh = root.clone();
        let pg_version = self.installs.for_major(p.pg_major).ok().map(|i| i.major);
        let imported = self
            .import_root(
                &mut project,
                &mut fresh,
                &mut build_inst,
                pg_version,
                source,
                &tmp,
                &progress,
            )
            .await;
        let imported = match imported {
            Ok(report) => {
                // A masked root is masked again before anything can reach it.
                let rules = self.store().branch_masking(&root.id).map_err(store_err)?;
                match rules {
                    Some(json) if fresh.clone_method != REPLICA_ROOT => {
                        let rules = pgfork_mask::MaskingRules::parse(&json).map_err(|e| {
                            ApiError::internal(format!(
                                "the stored masking rules of {:?}: {e}",
                                root.name
                            ))
                        })?;
                        let key = self
                            .write_store(|s| s.project_mask_key(&p.id, crate::ids::new_password))
                            .map_err(store_err)?;
                        self.mask_staged(&project, &fresh, &aside, &built, &rules, &key, &progress)
                            .await
                            .map(|_| report)
                    }
                    _ => Ok(report),
                }
            }
            Err(e) => Err(e),
        };
        let report = match imported {
            Ok(r) => r,
            Err(e) => {
                let _ = self.stop_instance(build_inst.clone()).await;
                let _ = std::fs::remove_dir_all(&build_inst.socket_dir);
                return Err(e);
            }
        };
        let _ = std::fs::remove_dir_all(&build_inst.socket_dir);
        let _ = std::fs::remove_file(&build_inst.log_file);
        progress.phase("swapping the new root in", 0);
        fresh.data_dir = root.data_dir.clone();
        self.swap_in(&project, &fresh, &built, &tmp).await?;
        drop(staged);
        root.clone_method = fresh.clone_method.clone();
        root.state = BranchState::Running;
        root.updated_at = Utc::now();
        let report_json = report.as_ref().and_then(|r| serde_json::to_string(r).ok());
        self.write_store(|s| {
            s.update_project_facts(&project)?;
            s.update_branch(&root)?;
            s.set_root_refreshed(&p.id, root.updated_at)?;
            if let Some(j) = &report_json {
                s.set_import_report(&p.id, j)?;
            }
            Ok::<(), pgfork_store::StoreError>(())
        })
        .map_err(store_err)?;
        self.capture_role_secrets(&project, &root).await;
        tracing::info!(project = %p.name, branch = %root.name, "root made again from its source; existing branches are untouched");
        Ok(root)
    }

    /// The reaper's part: roots due by their schedule are made again, one at a time,
    /// never over a connected client (the next round tries again).
    pub async fn refresh_due_roots(self: &Arc<Self>, now: DateTime<Utc>) {
        let due = self.store().scheduled_roots().unwrap_or_default();
        for (project_id, rec) in due {
            let Ok(Some(p)) = self.store().project(&project_id) else {
                continue;
            };
            let Ok(root) = self.root_branch(&p) else {
                continue;
            };
            let last = rec.refreshed_at.unwrap_or(root.created_at);
            if next_refresh(rec.schedule_seconds, last).is_none_or(|at| at > now) {
                continue;
            }
            if self.ops.running_for(&root.id) {
                continue;
            }
            tracing::info!(project = %p.name, branch = %root.name, "scheduled root refresh: making the root again from its source (`pgfork root refresh --schedule off` stops this)");
            let req = api::RootRefreshRequest {
                refuse_sessions: true,
                ..Default::default()
            };
            match self.refresh_root(&p.id, req).await {
                Ok(r) => {
                    for op in r.operations {
                        let _ = self.wait_for_operation(&op.id).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(project = %p.name, error = %e, "scheduled root refresh postponed to the next round")
                }
            }
        }
    }
}

fn no_source(p: &Project) -> ApiError {
    ApiError::bad_request(format!(
        "the source of {:?}'s root was not recorded (a project made before pgfork kept it): give it once, e.g. `pgfork root refresh --from-env SOURCE_URL`",
        p.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_words_or_durations_and_never_nonstop() {
        assert_eq!(schedule_seconds("daily"), Ok(Some(86_400)));
        assert_eq!(schedule_seconds("weekly"), Ok(Some(604_800)));
        assert_eq!(schedule_seconds("off"), Ok(None));
        assert_eq!(schedule_seconds("12h"), Ok(Some(43_200)));
        assert!(schedule_seconds("30s").is_err());
        assert!(schedule_seconds("sometimes").is_err());
        let t = Utc::now();
        assert_eq!(
            next_refresh(Some(60), t),
            Some(t + chrono::Duration::seconds(60))
        );
        assert_eq!(next_refresh(None, t), None);
    }
}
