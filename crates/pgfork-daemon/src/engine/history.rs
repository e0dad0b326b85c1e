//! History: a branch's own WAL archive and history snapshots, for branches at a past
//! moment. A branch keeps history when its archive directory exists (its Postgres then
//! archives into it, never into its parent's or production's); a snapshot taken when it
//! starts keeping history, then one per interval, bound the WAL a point-in-time branch
//! replays; the reaper drops what falls out of the window.

use super::*;
use pgfork_pg::pitr::{self, RecoveryTarget};

/// How often a history snapshot is taken: a quarter of the window, at most hourly, at
/// least every ten minutes.
pub(crate) fn snapshot_every(window_seconds: i64) -> i64 {
    (window_seconds / 4).clamp(600, 3600)
}

/// Where a point-in-time branch comes from: a snapshot, and how to fetch the WAL after it.
pub(crate) struct PointInTime {
    pub snapshot_dir: PathBuf,
    pub masked: bool,
    pub target: RecoveryTarget,
    pub restore_command: String,
}

impl Engine {
    /// Turns history on for a branch about to start for the first time.
    pub(crate) fn prepare_history_dir(&self, branch_id: &str) -> Result<(), ApiError> {
        let dir = self.layout.archive_dir(branch_id);
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        self.user.chown(&dir).map_err(pg_err)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("protect", &dir))
    }

    /// Records the window and takes the first history snapshot (running branch).
    pub(crate) async fn start_history(
        &self,
        p: &Project,
        b: &Branch,
        window: i64,
        every: Option<i64>,
    ) -> Result<(), ApiError> {
        let every = every.unwrap_or_else(|| snapshot_every(window));
        self.write_store(|s| s.set_branch_history(&b.id, window, every))
            .map_err(store_err)?;
        self.history_snapshot(p, b).await.map(|_| ())
    }

    async fn history_snapshot(
        &self,
        p: &Project,
        b: &Branch,
    ) -> Result<pgfork_store::Snapshot, ApiError> {
        let name = pgfork_core::preserved_name(&b.name, "history", Utc::now())
            .replace("-before-history-", "-history-");
        self.take_snapshot(p, b, &name, "history", None).await
    }

    pub(crate) fn history_view(&self, b: &Branch, sizes: bool) -> Option<api::BranchHistory> {
        let (window, every) = self.store().branch_history(&b.id).ok().flatten()?;
        let oldest_snapshot = self
            .store()
            .snapshots(&b.project_id)
            .ok()?
            .into_iter()
            .filter(|s| s.source_branch_id == b.id && s.reason == "history")
            .map(|s| s.created_at)
            .min();
        let window_start = Utc::now() - chrono::Duration::seconds(window);
        Some(api::BranchHistory {
            window_seconds: window,
            snapshot_every_seconds: every,
            oldest: oldest_snapshot.map(|t| t.max(window_start)),
            archive_bytes: sizes
                .then(|| pgfork_pg::import::dir_bytes(&self.layout.archive_dir(&b.id))),
        })
    }

    /// Where a branch of `parent` at `target` comes from, or one sentence on why it
    /// cannot be made.
    pub(crate) async fn plan_point_in_time(
        &self,
        p: &Project,
        parent: &Branch,
        target: RecoveryTarget,
    ) -> Result<PointInTime, ApiError> {
        let archive = self.layout.archive_dir(&parent.id);
        let Some((window, _)) = self
            .store()
            .branch_history(&parent.id)
            .map_err(store_err)?
            .filter(|_| archive.is_dir())
        else {
            return Err(ApiError::new(
                422,
                "UNPROCESSABLE_ENTITY",
                format!(
                    "{:?} keeps no history, so it cannot be branched at a past moment: branches made with `[history] window = \"24h\"` in .pgfork.toml keep one",
                    parent.name
                ),
            ));
        };
        let mut snaps: Vec<pgfork_store::Snapshot> = self
            .store()
            .snapshots(&p.id)
            .map_err(store_err)?
            .into_iter()
            .filter(|s| s.source_branch_id == parent.id)
            .collect();
        snaps.sort_by_key(|s| s.created_at);
        let window_start = Utc::now() - chrono::Duration::seconds(window);
        let oldest = snaps
            .iter()
            .filter(|s| s.reason == "history")
            .map(|s| s.created_at)
            .min()
            .map(|t| t.max(window_start));
        let base = match &target {
            RecoveryTarget::Time(t) => {
                if *t > Utc::now() + chrono::Duration::seconds(1) {
                    return Err(ApiError::bad_request(format!(
                        "{} is in the future: give a moment in {:?}'s history, e.g. --at \"10m ago\"",
                        t.to_rfc3339(),
                        parent.name
                    )));
                }
                let within = oldest.is_some_and(|o| *t >= o);
                if !within {
                    return Err(ApiError::bad_request(format!(
                        "{} is older than {:?}'s history, which reaches back to {} (a window of {}): pick a later moment",
                        t.to_rfc3339(),
                        parent.name,
                        oldest.map(|o| o.to_rfc3339()).unwrap_or_else(|| "nothing yet".into()),
                        humantime::format_duration(std::time::Duration::from_secs(window.max(0) as u64))
                    )));
                }
                snaps.iter().rev().find(|s| s.created_at <= *t)
            }
            RecoveryTarget::Lsn(l) => {
                let want = pitr::parse_lsn(l).ok_or_else(|| {
                    ApiError::bad_request(format!("{l:?} is not a WAL position: write it like 0/16B3748"))
                })?;
                snaps
                    .iter()
                    .rev()
                    .find(|s| s.lsn.as_deref().and_then(pitr::parse_lsn).is_some_and(|x| x <= want))
            }
        }
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{:?}'s history has no snapshot before that moment: pick a later one",
                parent.name
            ))
        })?
        .clone();
        // Recovery stops at the first commit after the target, and fails when the WAL
        // ends first: a parent idle since the moment gets one (an empty transaction),
        // and the segment that holds it is completed (switched) so it can be read —
        // from the archive, or from the parent's own pg_wal before it is archived.
        self.while_running(p, parent, |inst| async move {
            let client = sql::connect(&inst, "postgres").await.map_err(pg_err)?;
            client
                .batch_execute("SELECT txid_current(); SELECT pg_switch_wal();")
                .await
                .map_err(|e| {
                    pg_err(pgfork_pg::PgError::Sql {
                        what: "mark the present in the parent's history".into(),
                        source: e,
                    })
                })
        })
        .await?;
        Ok(PointInTime {
            snapshot_dir: base.data_dir.clone(),
            masked: base.masked,
            restore_command: pgfork_pg::sanitize::restore_command(
                &archive,
                Some(&parent.data_dir.join("pg_wal")),
            ),
            target,
        })
    }

    /// Replays a staged copy of a snapshot to the target and promotes it, then stops
    /// it: the branch's first real start is an ordinary one.
    pub(crate) async fn recover_staged(
        &self,
        p: &Project,
        b: &Branch,
        built: &Path,
        pit: &PointInTime,
        progress: &Progress,
    ) -> Result<(), ApiError> {
        progress.phase("replaying history to the moment asked for", 0);
        let install = self.install_for(built)?;
        let label = format!("{}p", b.id);
        let inst = Instance {
            pgdata: built.to_path_buf(),
            socket_dir: self.layout.socket_dir(&label),
            port: b.port,
            log_file: self.layout.branch_log(&label),
            superuser: p.superuser.clone(),
            archive_dir: None,
        };
        if let Some(staging) = built.parent() {
            self.user.chown(staging).map_err(pg_err)?;
        }
        pitr::request_recovery(&self.user, built).map_err(pg_err)?;
        let mut settings = pgfork_pg::sanitize::first_boot();
        settings.extend(pitr::recovery_settings(&pit.target, &pit.restore_command));
        let (i, u, st, ins) = (install.clone(), self.user.clone(), settings, inst.clone());
        let started = blocking(move || {
            ins.start(&i, &u, &st, START_TIMEOUT)
                .map(|_| ())
                .map_err(pg_err)
        })
        .await;
        let promoted = match started {
            Ok(()) => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
                loop {
                    let in_recovery = match sql::connect(&inst, "postgres").await {
                        Ok(c) => c
                            .query_one("SELECT pg_is_in_recovery()", &[])
                            .await
                            .map(|r| r.get::<_, bool>(0))
                            .ok(),
                        Err(_) => None,
                    };
                    match in_recovery {
                        Some(false) => break Ok(()),
                        None if !inst.is_running() => {
                            break Err(ApiError::conflict(format!(
                                "the history does not reach the moment asked for (recovery ended before it): see {}",
                                inst.log_file.display()
                            )))
                        }
                        _ if std::time::Instant::now() > deadline => {
                            break Err(ApiError::internal("replaying the history took more than 10 minutes"))
                        }
                        _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                    }
                }
            }
            Err(e) => Err(e),
        };
        let _ = self.stop_instance(inst.clone()).await;
        let _ = std::fs::remove_dir_all(&inst.socket_dir);
        promoted
    }

    /// A branch back at a moment of its own history (or its parent's): the state it held
    /// is snapshotted first, then the moment is rebuilt aside and swapped in (same URL and
    /// password).
    pub async fn restore_to_moment(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        source_ref: Option<&str>,
        target: RecoveryTarget,
        sessions: super::Sessions,
    ) -> Result<api::BranchResponse, ApiError> {
        let p = self.project(project_ref)?;
        let b = self.branch(&p, branch_ref)?;
        let source = match source_ref {
            Some(s) => self.branch(&p, s)?,
            None => b.clone(),
        };
        if source.id != b.id && b.parent_id.as_deref() != Some(source.id.as_str()) {
            return Err(ApiError::bad_request(
                "a branch is restored to a moment of its own history or its parent's: give itself or its parent as source_branch_id",
            ));
        }
        if let super::Sessions::RefuseAfter(wait) = sessions {
            self.wait_for_no_sessions(&p, &b, wait).await?;
        }
        // Planned (and refused) before anything is kept or replaced.
        let pit = self.plan_point_in_time(&p, &source, target).await?;
        if b.masked && !pit.masked {
            return Err(ApiError::conflict(format!(
                "{:?} is masked and that history is not: restoring it would bring the originals back",
                b.name
            )));
        }
        let kept_name = pgfork_core::preserved_name(&b.name, "restore", Utc::now());
        self.take_snapshot(
            &p,
            &b,
            &kept_name,
            "before-restore",
            Some(Utc::now() + chrono::Duration::days(7)),
        )
        .await?;
        let this = self.clone();
        let (p2, b2) = (p.clone(), b.clone());
        let (op_id, result) = self
            .run_op(&p.id, Some(&b.id), "restore_branch", move |_op, progress| async move {
                let _op = this.in_flight().await;
                let _branch = this.lock_branch(&b2.id).await;
                let mut b = this.branch(&p2, &b2.id)?;
                let staged = StagedDir::new(this.layout.tmp.join(format!("{}-moment", b.id)));
                let tmp = staged.path().to_path_buf();
                let built = tmp.join("pgdata");
                std::fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
                this.user.chown(&tmp).map_err(pg_err)?;
                let method = this.clone_method_between(&pit.snapshot_dir);
                let (s, d, u, pr) = (pit.snapshot_dir.clone(), built.clone(), this.user.clone(), progress.clone());
                blocking(move || pgfork_pg::clone::clone_stopped(&s, &d, method, &u, Some(&pr)).map_err(pg_err)).await?;
                if b.parent_id.is_some() {
                    let settings = this.pg_settings_of(&b.id)?;
                    this.apply_branch_settings(&built, &settings).await?;
                }
                this.recover_staged(&p2, &b, &built, &pit, &progress).await?;
                this.swap_in(&p2, &b, &built, &tmp).await?;
                drop(staged);
                this.capture_role_secrets(&p2, &b).await;
                this.record_baseline(&p2, &b).await;
                b.state = BranchState::Running;
                b.updated_at = Utc::now();
                this.write_store(|s| s.update_branch(&b)).map_err(store_err)?;
                tracing::info!(branch = %b.name, kept = %kept_name, "branch restored to a moment of its history");
                Ok(b)
            })
            .await;
        let b = match result {
            Some(r) => r?,
            None => b,
        };
        Ok(self.branch_response(&p, &b, Some(&op_id)))
    }

    /// The reaper's part: a history snapshot per interval (of running branches only:
    /// nothing is woken for it), and what falls out of the window dropped.
    pub async fn keep_history(&self, now: DateTime<Utc>) {
        let histories = self.store().branch_histories().unwrap_or_default();
        for (branch_id, window, every) in histories {
            let Ok(Some(b)) = self.store().branch(&branch_id) else {
                continue;
            };
            if !b.state.is_live() {
                continue;
            }
            let Ok(Some(p)) = self.store().project(&b.project_id) else {
                continue;
            };
            let mut mine: Vec<pgfork_store::Snapshot> = self
                .store()
                .snapshots(&p.id)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s.source_branch_id == b.id && s.reason == "history")
                .collect();
            mine.sort_by_key(|s| s.created_at);
            let due = mine
                .last()
                .is_none_or(|s| s.created_at + chrono::Duration::seconds(every) <= now);
            if due && self.instance(&p, &b).is_running() {
                match self.history_snapshot(&p, &b).await {
                    Ok(s) => mine.push(s),
                    Err(e) => {
                        tracing::warn!(branch = %b.name, error = %e, "could not take a history snapshot")
                    }
                }
            }
            // The newest snapshot at or before the window's start is the base of the
            // window; older ones, and the WAL before it, are no longer needed.
            let start = now - chrono::Duration::seconds(window);
            let Some(base_at) = mine
                .iter()
                .filter(|s| s.created_at <= start)
                .map(|s| s.created_at)
                .max()
            else {
                continue;
            };
            for s in mine.iter().filter(|s| s.created_at < base_at) {
                tracing::info!(branch = %b.name, snapshot = %s.name, "out of the history window: deleting");
                let _ = self.delete_snapshot(&p.id, &s.id).await;
            }
            let Some(base) = mine.iter().find(|s| s.created_at == base_at) else {
                continue;
            };
            let label =
                std::fs::read_to_string(base.data_dir.join("backup_label")).unwrap_or_default();
            if let (Some(oldest), Ok(install)) =
                (pitr::start_wal_file(&label), self.install_for(&b.data_dir))
            {
                let (u, dir) = (self.user.clone(), self.layout.archive_dir(&b.id));
                let _ = blocking(move || {
                    pitr::cleanup_archive(&install, &u, &dir, &oldest).map_err(pg_err)
                })
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_snapshots_are_between_ten_minutes_and_an_hour_apart() {
        assert_eq!(snapshot_every(86_400), 3600);
        assert_eq!(snapshot_every(3600), 900);
        assert_eq!(snapshot_every(60), 600);
    }
}
