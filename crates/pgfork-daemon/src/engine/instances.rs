//! Starting and stopping branch Postgres, and the two parties that race to do it: the proxy waking a
//! branch for a client and the idle reaper suspending it. The rule that keeps them apart (a client is
//! counted before the branch can stop) is ARCHITECTURE invariant 11.

use super::*;

impl Engine {
    /// Starts a branch's Postgres (if not running) and makes sure its password is set.
    pub(crate) async fn start_instance(
        &self,
        project: &Project,
        b: &Branch,
        set_password: bool,
    ) -> Result<(), ApiError> {
        let inst = self.instance(project, b);
        let install = self.install_for(&b.data_dir)?;
        let user = self.user.clone();
        let inst2 = inst.clone();
        // A root that follows its source (a standby, or a subscriber) must go on doing
        // so: its own replication is what sanitizing would turn off in a copy.
        let follows = super::create::follows_source(b);
        blocking(move || {
            if !inst2.is_running() {
                crate::layout::rotate_if_large(&inst2.log_file);
            }
            // A first start (create, reset) keeps subscription workers and cron jobs
            // from starting until `sanitize` has turned them off inside the branch.
            let extra = if set_password && !follows {
                pgfork_pg::sanitize::first_boot()
            } else {
                Vec::new()
            };
            inst2
                .start(&install, &user, &extra, START_TIMEOUT)
                .map(|_| ())
                .map_err(pg_err)
        })
        .await?;
        // A standby root is read-only: nothing in it can or may be changed; what
        // sanitizing protects against is removed from its clones.
        let standby_root = follows && b.clone_method == super::create::REPLICA_ROOT;
        if set_password && !standby_root {
            if !follows {
                let done = pgfork_pg::sanitize::sanitize(&inst).await.map_err(pg_err)?;
                if !done.is_empty() {
                    tracing::info!(branch = %b.name, slots = ?done.slots, subscriptions = ?done.subscriptions, cron_jobs = done.cron_jobs, "a branch must not act for its parent: dropped its replication slots, disabled its subscriptions and pg_cron jobs");
                }
            }
            let client = sql::connect(&inst, "postgres").await.map_err(pg_err)?;
            if project.role_name == project.superuser {
                // A project made before the owner role: its URLs keep the superuser.
                sql::set_password(&client, &project.role_name, &b.password)
                    .await
                    .map_err(pg_err)?;
            } else {
                roles::ensure_owner(&client, project.pg_major, &b.password)
                    .await
                    .map_err(pg_err)?;
                roles::lock_superusers(&client).await.map_err(pg_err)?;
            }
        }
        Ok(())
    }

    pub(crate) async fn stop_instance(&self, inst: Instance) -> Result<(), ApiError> {
        blocking(move || inst.stop(STOP_TIMEOUT).map_err(pg_err)).await
    }

    /// Stops every running branch (daemon shutdown), in parallel.
    pub async fn stop_all(&self) {
        let branches = self.store().all_branches().unwrap_or_default();
        let mut tasks = Vec::new();
        for b in branches {
            let Ok(Some(p)) = self.store().project(&b.project_id) else {
                continue;
            };
            let inst = self.instance(&p, &b);
            if inst.is_running() {
                tasks.push(tokio::task::spawn_blocking(move || {
                    if let Err(e) = inst.stop(STOP_TIMEOUT) {
                        tracing::error!(pgdata = %inst.pgdata.display(), error = %e, "could not stop branch");
                    }
                }));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    pub(crate) async fn start_build(
        &self,
        inst: &Instance,
        install: &PgInstall,
    ) -> Result<(), ApiError> {
        let (i, u, b) = (install.clone(), self.user.clone(), inst.clone());
        blocking(move || {
            b.start(&i, &u, &pgfork_pg::sanitize::first_boot(), START_TIMEOUT)
                .map(|_| ())
                .map_err(pg_err)
        })
        .await
    }

    pub async fn set_running(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        run: bool,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let _op = self.in_flight().await;
        let found = self.branch(&project, branch_ref)?;
        let _branch = self.lock_branch(&found.id).await;
        let mut b = self.reread(&found)?;
        if !b.state.is_live() {
            return Err(ApiError::not_found(format!(
                "branch {:?} was deleted meanwhile: see `pgfork branch list --all`",
                b.name
            )));
        }
        self.set_running_locked(&project, &mut b, run).await?;
        Ok(self.branch_response(&project, &b, None))
    }

    /// Neon's endpoint restart: stop and start under one hold of the branch's lock (a
    /// client arriving meanwhile waits for the start instead of waking it twice).
    pub async fn restart_branch(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let _op = self.in_flight().await;
        let found = self.branch(&project, branch_ref)?;
        let _branch = self.lock_branch(&found.id).await;
        let mut b = self.reread(&found)?;
        if !b.state.is_live() {
            return Err(ApiError::not_found(format!(
                "branch {:?} was deleted meanwhile: see `pgfork branch list --all`",
                b.name
            )));
        }
        self.set_running_locked(&project, &mut b, false).await?;
        self.set_running_locked(&project, &mut b, true).await?;
        tracing::info!(branch = %b.name, "restarted");
        Ok(self.branch_response(&project, &b, None))
    }

    /// Starts or stops `b`; the caller holds its lock.
    pub(crate) async fn set_running_locked(
        &self,
        project: &Project,
        b: &mut Branch,
        run: bool,
    ) -> Result<(), ApiError> {
        if run {
            self.start_instance(project, b, false).await?;
            b.state = BranchState::Running;
            if let Some(f) = self.front_state.get() {
                f.touch(b.port);
            }
        } else {
            // The record is what the proxy checks while the branch sleeps.
            if self.instance(project, b).is_ready() {
                self.capture_role_secrets(project, b).await;
            }
            self.stop_instance(self.instance(project, b)).await?;
            b.state = BranchState::Suspended;
        }
        b.updated_at = Utc::now();
        self.write_store(|s| s.set_state(&b.id, b.state, b.updated_at))
            .map_err(store_err)
    }

    /// The proxy's wake: the branch behind a connection, running, with the connection
    /// counted as a client *before* the lock is released, so the idle reaper (which
    /// checks under the same lock) can never stop it under a client that just arrived.
    pub(crate) async fn wake_for_client(&self, branch_id: &str) -> Result<Branch, ApiError> {
        let live = |b: Option<Branch>| {
            b.filter(|b| b.state.is_live())
                .ok_or_else(|| ApiError::not_found("the branch behind this port was deleted"))
        };
        let b = live(self.store().branch(branch_id).map_err(store_err)?)?;
        let project = self.project(&b.project_id)?;
        // Fast path: it runs, so count the client and go; no lock (a clone of this
        // branch may hold it) unless the idle reaper is stopping it this instant.
        if let Some(f) = self.front_state.get() {
            if b.state == BranchState::Running
                && self.instance(&project, &b).is_ready()
                && f.lease_if_not_stopping(b.port)
            {
                // A suspend may have finished between the two checks.
                if self.instance(&project, &b).is_ready() {
                    return Ok(b);
                }
                use pgfork_proxy::Backend as _;
                f.closed(b.port);
            }
        }
        let _op = self.in_flight().await;
        let _branch = self.lock_branch(branch_id).await;
        let mut b = live(self.store().branch(branch_id).map_err(store_err)?)?;
        if !self.instance(&project, &b).is_running() || b.state != BranchState::Running {
            tracing::info!(branch = %b.name, "waking on connect");
            self.set_running_locked(&project, &mut b, true).await?;
        }
        if let Some(f) = self.front_state.get() {
            f.opened(b.port);
        }
        Ok(b)
    }

    /// Suspends `branch_id` if no client has used it for `limit`; decided under its
    /// lock, against the live client count.
    pub(crate) async fn suspend_if_idle(&self, branch_id: &str, limit: Duration) {
        let _op = self.in_flight().await;
        let _branch = self.lock_branch(branch_id).await;
        let Ok(Some(mut b)) = self.store().branch(branch_id) else {
            return;
        };
        let Some(front) = self.front_state.get() else {
            return;
        };
        let Ok(project) = self.project(&b.project_id) else {
            return;
        };
        if b.state != BranchState::Running || !front.begin_suspend(b.port, limit) {
            return;
        }
        tracing::info!(branch = %b.name, "idle: suspending");
        if let Err(e) = self.set_running_locked(&project, &mut b, false).await {
            tracing::warn!(branch = %b.name, error = %e, "could not suspend idle branch");
        }
        front.end_suspend(b.port);
    }

    /// Scale to zero: stops running branches no client has used for their idle
    /// timeout (the branch's own, else `default`; -1 never).
    pub async fn suspend_idle(self: &Arc<Self>, default: Option<Duration>) {
        let Some(front) = self.front_state.get() else {
            return;
        };
        for (port, idle_for) in front.idle_for() {
            let Ok(Some(b)) = self.store().live_branch_by_port(port) else {
                continue;
            };
            let limit = match b.suspend_timeout_seconds {
                -1 => None,
                s if s > 0 => Some(Duration::from_secs(s as u64)),
                _ => default,
            };
            let Some(limit) = limit else { continue };
            // A root that stopped would stop following its source.
            if super::create::follows_source(&b) {
                continue;
            }
            if b.state != BranchState::Running || idle_for < limit {
                continue;
            }
            self.suspend_if_idle(&b.id, limit).await;
        }
    }

    /// A postmaster that died without us (killed, crashed, OOM) is not "running":
    /// its state says so until the next connection wakes it.
    pub async fn notice_dead_postmasters(&self) {
        let branches = self.store().all_branches().unwrap_or_default();
        for b in branches
            .into_iter()
            .filter(|b| b.state == BranchState::Running)
        {
            let Ok(project) = self.project(&b.project_id) else {
                continue;
            };
            if self.instance(&project, &b).is_running() {
                continue;
            }
            let _branch = self.lock_branch(&b.id).await;
            let Ok(Some(now)) = self.store().branch(&b.id) else {
                continue;
            };
            if now.state == BranchState::Running && !self.instance(&project, &now).is_running() {
                tracing::warn!(branch = %b.name, "its Postgres exited on its own; marked suspended (the next connection starts it)");
                let _ =
                    self.write_store(|s| s.set_state(&b.id, BranchState::Suspended, Utc::now()));
            }
        }
    }

    pub fn running_count(&self) -> u32 {
        let branches = self.store().all_branches().unwrap_or_default();
        branches
            .iter()
            .filter(|b| b.state.is_live() && b.data_dir.join("postmaster.pid").exists())
            .count() as u32
    }

    /// Records every login role's own verifier, so the proxy can check a role's
    /// password while the branch is suspended. Best effort: a failure only means a
    /// suspended branch's application roles wait for the next capture.
    pub(crate) async fn capture_role_secrets(&self, project: &Project, b: &Branch) {
        let inst = self.instance(project, b);
        let read = async {
            let client = sql::connect(&inst, "postgres").await?;
            sql::role_secrets(&client, None).await
        }
        .await;
        match read {
            Ok(secrets) => {
                let id = b.id.clone();
                if let Err(e) = self.write_store(|s| s.set_role_secrets(&id, &secrets)) {
                    tracing::warn!(branch = %b.name, error = %e, "could not record the roles' verifiers");
                }
            }
            Err(e) => {
                tracing::warn!(branch = %b.name, error = %e, "could not read the roles' verifiers")
            }
        }
    }

    /// The verifier of `role` on `b`: read from the branch when it runs (a password
    /// changed inside it counts at once), else the one recorded.
    pub(crate) async fn role_secret(&self, b: &Branch, role: &str) -> Option<String> {
        let project = self.project(&b.project_id).ok()?;
        let inst = self.instance(&project, b);
        if inst.is_ready() {
            let live = async {
                let client = sql::connect(&inst, "postgres").await?;
                sql::role_secrets(&client, Some(role)).await
            }
            .await;
            if let Ok(found) = live {
                return found.into_iter().next().map(|(_, s)| s);
            }
        }
        self.store().role_secret(&b.id, role).ok().flatten()
    }

    /// Gives every login role but the admin its own password in the branch: the one
    /// pgfork set before (a reset brings back the parent's, the app keeps its URL) or
    /// a fresh one, and records them (`reveal_password`, `pgfork url --role`).
    pub(crate) async fn rotate_role_passwords(
        &self,
        project: &Project,
        b: &Branch,
    ) -> Result<(), ApiError> {
        let kept: std::collections::HashMap<String, String> = self
            .store()
            .role_passwords(&b.id)
            .map_err(store_err)?
            .into_iter()
            .collect();
        let client = sql::connect(&self.instance(project, b), "postgres")
            .await
            .map_err(pg_err)?;
        let roles = sql::login_roles(&client, &project.role_name)
            .await
            .map_err(pg_err)?;
        let mut set = Vec::new();
        for role in roles {
            let password = kept
                .get(&role)
                .cloned()
                .unwrap_or_else(crate::ids::new_password);
            sql::set_password(&client, &role, &password)
                .await
                .map_err(pg_err)?;
            set.push((role, password));
        }
        self.write_store(|s| s.set_rotated_passwords(&b.id, &set))
            .map_err(store_err)?;
        let count = set.len();
        tracing::info!(branch = %b.name, roles = count, "gave the login roles their own passwords");
        Ok(())
    }
}
