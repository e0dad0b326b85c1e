//! History: a branch's own WAL archive and history snapshots, for branches at a past
//! moment. A branch keeps history when its archive directory exists (its Postgres then
//! archives into it, never into its parent's or production's); a snapshot taken when it
//! starts keeping history, then one per interval, bound the WAL a point-in-time branch
//! replays; the reaper drops what falls out of the window.

use super::*;
use pgfork_pg::pitr::{self, RecoveryTarget};

/// Where a point-in-time branch comes from: a snapshot, and how to fetch the WAL after it.
pub(crate) struct PointInTime {
    pub snapshot_dir: PathBuf,
    pub masked: bool,
    pub target: RecoveryTarget,
    pub restore_command: String,
}

/// A branch's history settings as the API gives them, checked; `None`: keep nothing.
pub(crate) fn policy_from(
    h: &api::HistorySettings,
) -> Result<Option<pgfork_core::HistoryPolicy>, ApiError> {
    if h.window_seconds < 0 {
        return Err(ApiError::bad_request(
            "a history window is a duration (0 keeps no WAL): give e.g. 24h",
        ));
    }
    if let Some(e) = h.snapshot_every_seconds.filter(|e| *e < 60) {
        return Err(ApiError::bad_request(format!(
            "a history snapshot every {e} s is too often: give at least 1m"
        )));
    }
    if h.keep == Some(0) {
        return Err(ApiError::bad_request(
            "keep = 0 keeps no snapshot: give at least 1, or turn history off with a window of 0",
        ));
    }
    Ok(pgfork_core::HistoryPolicy::new(
        h.window_seconds,
        h.snapshot_every_seconds,
        h.keep,
    ))
}

impl Engine {
    /// Refuses history where it cannot be kept: a root that follows its source is
    /// that source's copy, and archiving is the source's business.
    pub(crate) fn check_history_allowed(
        &self,
        b: &Branch,
        policy: Option<&pgfork_core::HistoryPolicy>,
    ) -> Result<(), ApiError> {
        if !b.state.is_live() {
            return Err(ApiError::not_found(format!(
                "branch {:?} is deleted: `pgfork branch recover {}` first",
                b.name, b.name
            )));
        }
        if policy.is_some() && super::create::follows_source(b) {
            return Err(ApiError::new(
                422,
                "UNPROCESSABLE_ENTITY",
                format!(
                    "{:?} follows its source, which keeps its own history: keep history on a branch of it instead",
                    b.name
                ),
            ));
        }
        Ok(())
    }

    /// Changes what an existing branch keeps of its past. Turning its WAL archive on
    /// or off restarts it if it runs (the archive is a server setting); a new window
    /// starts with a snapshot, so the moments from now on are reachable at once.
    pub(crate) async fn change_history(
        &self,
        p: &Project,
        branch_id: &str,
        policy: Option<pgfork_core::HistoryPolicy>,
        sessions: super::Sessions,
    ) -> Result<(), ApiError> {
        let b = self
            .store()
            .branch(branch_id)
            .map_err(store_err)?
            .ok_or_else(|| ApiError::not_found("the branch was deleted meanwhile"))?;
        let archive = self.layout.archive_dir(&b.id);
        let wal_now = archive.is_dir();
        let wal_next = policy.is_some_and(|h| h.keeps_wal());
        if wal_now != wal_next {
            if let super::Sessions::RefuseAfter(wait) = sessions {
                self.wait_for_no_sessions(p, &b, wait).await?;
            }
            let _branch = self.lock_branch(&b.id).await;
            let mut b = self.reread(&b)?;
            let was_running = self.instance(p, &b).is_running();
            if was_running {
                self.set_running_locked(p, &mut b, false).await?;
            }
            if wal_next {
                self.prepare_history_dir(&b.id)?;
            } else {
                // Its WAL reaches nothing without the archive's beginning.
                let dir = archive.clone();
                blocking(move || std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir)))
                    .await?;
            }
            if was_running || wal_next {
                self.set_running_locked(p, &mut b, true).await?;
            }
            tracing::info!(branch = %b.name, wal = wal_next, restarted = was_running, "history: the branch's WAL archive turned {}", if wal_next { "on" } else { "off" });
        }
        match policy {
            None => {
                self.write_store(|s| s.clear_branch_history(&b.id))
                    .map_err(store_err)?;
                for s in self.history_snapshots(&b).map_err(store_err)? {
                    self.delete_snapshot(&p.id, &s.id).await?;
                }
                tracing::info!(branch = %b.name, "history: kept no more");
                Ok(())
            }
            Some(policy) if wal_next && !wal_now => self.start_history(p, &b, &policy).await,
            Some(policy) => self
                .write_store(|s| s.set_branch_history(&b.id, &policy))
                .map_err(store_err),
        }
    }

    /// Turns history on for a branch about to start for the first time.
    pub(crate) fn prepare_history_dir(&self, branch_id: &str) -> Result<(), ApiError> {
        let dir = self.layout.archive_dir(branch_id);
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        self.user.chown(&dir).map_err(pg_err)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("protect", &dir))
    }

    /// Records what the branch keeps of its past and takes the first history snapshot
    /// (running branch).
    pub(crate) async fn start_history(
        &self,
        p: &Project,
        b: &Branch,
        policy: &pgfork_core::HistoryPolicy,
    ) -> Result<(), ApiError> {
        self.write_store(|s| s.set_branch_history(&b.id, policy))
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

    /// The history snapshots of `b`, oldest first.
    fn history_snapshots(
        &self,
        b: &Branch,
    ) -> Result<Vec<pgfork_store::Snapshot>, pgfork_store::StoreError> {
        let mut mine: Vec<pgfork_store::Snapshot> = self
            .store()
            .snapshots(&b.project_id)?
            .into_iter()
            .filter(|s| s.source_branch_id == b.id && s.reason == "history")
            .collect();
        mine.sort_by_key(|s| s.created_at);
        Ok(mine)
    }

    pub(crate) fn history_view(&self, b: &Branch, sizes: bool) -> Option<api::BranchHistory> {
        let policy = self.store().branch_history(&b.id).ok().flatten()?;
        let taken: Vec<DateTime<Utc>> = self
            .history_snapshots(b)
            .ok()?
            .into_iter()
            .map(|s| s.created_at)
            .collect();
        let oldest = taken.iter().min().copied().map(|t| {
            if policy.keeps_wal() {
                t.max(Utc::now() - chrono::Duration::seconds(policy.window_seconds))
            } else {
                t
            }
        });
        Some(api::BranchHistory {
            window_seconds: policy.window_seconds,
            snapshot_every_seconds: policy.snapshot_every_seconds,
            keep: policy.keep,
            snapshots: taken.len() as u32,
            oldest,
            archive_bytes: (sizes && policy.keeps_wal())
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
        let policy = self.store().branch_history(&parent.id).map_err(store_err)?;
        let Some(window) = policy
            .filter(|h| h.keeps_wal() && archive.is_dir())
            .map(|h| h.window_seconds)
        else {
            let why = if policy.is_some() {
                format!(
                    "{:?} keeps snapshots on a schedule but no WAL, so only those moments can be used: `pgfork snapshot list`, then `--from-snapshot` or `branch restore --to SNAPSHOT` (or `pgfork branch history {} --window 24h` to keep every moment)",
                    parent.name, parent.name
                )
            } else {
                format!(
                    "{:?} keeps no history, so it cannot be branched at a past moment: `pgfork branch history {} --window 24h` (or `[history] window = \"24h\"` in .pgfork.toml for new branches) keeps one",
                    parent.name, parent.name
                )
            };
            return Err(ApiError::new(422, "UNPROCESSABLE_ENTITY", why));
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
    /// nothing is woken for it), and what the window and `keep` no longer need dropped.
    pub async fn keep_history(&self, now: DateTime<Utc>) {
        let histories = self.store().branch_histories().unwrap_or_default();
        for (branch_id, policy) in histories {
            let Ok(Some(b)) = self.store().branch(&branch_id) else {
                continue;
            };
            if !b.state.is_live() {
                continue;
            }
            let Ok(Some(p)) = self.store().project(&b.project_id) else {
                continue;
            };
            let mut mine = self.history_snapshots(&b).unwrap_or_default();
            let newest = mine.last().map(|s| s.created_at);
            if policy.snapshot_due(newest, now) && self.instance(&p, &b).is_running() {
                match self.history_snapshot(&p, &b).await {
                    Ok(s) => mine.push(s),
                    Err(e) => {
                        tracing::warn!(branch = %b.name, error = %e, "could not take a history snapshot")
                    }
                }
            }
            let taken: Vec<DateTime<Utc>> = mine.iter().map(|s| s.created_at).collect();
            let drop = pgfork_core::history_to_drop(&taken, &policy, now);
            for &i in &drop {
                let s = &mine[i];
                tracing::info!(branch = %b.name, snapshot = %s.name, "no longer needed by the branch's history: deleting");
                let _ = self.delete_snapshot(&p.id, &s.id).await;
            }
            if !policy.keeps_wal() {
                continue;
            }
            // The WAL before the oldest snapshot kept reaches nothing any more.
            let Some(base) = (0..mine.len())
                .find(|i| !drop.contains(i))
                .map(|i| &mine[i])
            else {
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
