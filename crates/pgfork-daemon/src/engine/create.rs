//! Creating projects (root imports) and branches. Both are planned synchronously (ids, ports and names
//! promised at once), built in `tmp/` (the parent's lock held only while it is cloned, nothing held
//! while importing), made durable, renamed into place, started, and committed last: until the row
//! exists the branch does not, and a crash leaves only leftovers for reconcile to sweep.
//! Before anything touches a running parent, the free-space guard refuses a create that would
//! leave the store nearly full (the parent would PANIC on its next write).

use super::*;
use pgfork_pg::{fidelity, logical};

/// The bytes of the files below `path` (one walker for imports and copies).
/// The clone method recorded for a root that is a streaming standby of its source.
pub(crate) const REPLICA_ROOT: &str = "replica";

/// The clone method recorded for a root kept current by a subscription to its source.
pub(crate) const SUBSCRIBE_ROOT: &str = "subscribe";

/// Whether `b` is a root that follows its source (never suspended, never sanitized).
pub(crate) fn follows_source(b: &Branch) -> bool {
    b.parent_id.is_none() && (b.clone_method == REPLICA_ROOT || b.clone_method == SUBSCRIBE_ROOT)
}

/// What a logical import reads: its source, what is known of it, and whether the data
/// comes too (a subscriber root copies it through its subscription instead).
struct LogicalImport<'a> {
    url: &'a str,
    facts: &'a logical::SourceFacts,
    schema_only: bool,
}

/// What a new branch is made into beyond a clone of its parent.
pub(crate) struct BranchRecipe<'a> {
    /// Fresh passwords for the application's login roles.
    pub rotate: bool,
    pub mask: Option<&'a pgfork_mask::MaskingRules>,
    /// Server settings on top of the developer defaults.
    pub settings: &'a [(String, String)],
    /// The data comes from this snapshot instead of a clone of the parent.
    pub from_snapshot: Option<&'a Path>,
    /// ... replayed to this moment of the parent's history.
    pub point_in_time: Option<&'a super::history::PointInTime>,
    /// What the branch keeps of its past (a WAL window, snapshots on a schedule).
    pub history_window: Option<pgfork_core::HistoryPolicy>,
}

pub(crate) fn total_file_bytes(path: &Path) -> u64 {
    import::dir_bytes(path)
}

impl Engine {
    pub async fn create_project(
        self: &Arc<Self>,
        req: api::ProjectCreateRequest,
    ) -> Result<api::ProjectResponse, ApiError> {
        let spec = req.project;
        validate_project_name(&spec.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.ensure_no_project(&spec.name)?;
        let root_name = spec
            .default_branch_name
            .clone()
            .unwrap_or_else(|| "main".to_string());
        validate_branch_name(&root_name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let source = spec.pgfork_source.clone().unwrap_or(api::RootSource::Empty);
        let mask = super::masking::rules_from_request(
            spec.pgfork_masking_rules.clone(),
            spec.pgfork_masking_strict,
            spec.pgfork_masking_keep.clone(),
        )?;
        if let api::RootSource::Sample { scale } = source {
            if !(1..=100_000).contains(&scale) {
                return Err(ApiError::bad_request(format!(
                    "sample scale {scale} is out of range: give 1 (about 15 MB) to 100000 (about 1.5 TB)"
                )));
            }
        }
        if let Some(v) = spec.pg_version {
            self.installs.for_major(v).map_err(pg_err)?;
        }
        let reservation = self.reserve(&spec.name, "")?;
        let (project, root) = self.plan_project(&spec.name, &root_name, reservation.port);
        let this = self.clone();
        let (p2, r2) = (project.clone(), root.clone());
        let (op_id, result) = self
            .run_op(
                &project.id,
                Some(&root.id),
                "create_project",
                move |_op_id, progress| async move {
                    // An import holds no lock: a connection to any other branch, or
                    // an import whose source is a branch of this daemon, never waits.
                    let _op = this.in_flight().await;
                    let r = this
                        .build_project(p2, r2, spec.pg_version, source, mask, progress)
                        .await;
                    drop(reservation);
                    r
                },
            )
            .await;
        let (project, root) = match result {
            Some(r) => r?,
            None => (project, root),
        };
        Ok(api::ProjectResponse {
            project: self.api_project(&project),
            branch: Some(self.view(&project, &root, false)),
            endpoints: vec![self.endpoint(&root)],
            operations: self.op_list(&op_id),
            connection_uris: vec![self.connection_uri_entry(&project, &root)],
        })
    }

    pub(crate) fn ensure_no_project(&self, name: &str) -> Result<(), ApiError> {
        if self.store().project(name).map_err(store_err)?.is_some() {
            return Err(ApiError::conflict(format!(
                "a project named {name:?} already exists: pick another name with --project"
            )));
        }
        Ok(())
    }

    /// The project and root branch rows a create will commit, decided up front.
    pub(crate) fn plan_project(&self, name: &str, root_name: &str, port: u16) -> (Project, Branch) {
        let now = Utc::now();
        let id = new_id("prj");
        let mut home_dir = self
            .layout
            .branch_dir(&safe_dir_name(name), &safe_dir_name(root_name));
        if home_dir.exists() {
            // A renamed project's root may still occupy this name's directory.
            home_dir = self.layout.branch_dir(
                &safe_dir_name(name),
                &format!("{}~{id}", safe_dir_name(root_name)),
            );
        }
        let project = Project {
            id,
            name: name.to_string(),
            pg_major: 0,
            db_name: "postgres".to_string(),
            role_name: pgfork_pg::roles::OWNER_ROLE.to_string(),
            superuser: "postgres".to_string(),
            created_at: now,
        };
        let root = Branch {
            id: new_id("br"),
            project_id: project.id.clone(),
            name: root_name.to_string(),
            parent_id: None,
            state: BranchState::Creating,
            port,
            password: new_password(),
            data_dir: home_dir.clone(),
            home_dir,
            clone_method: "initdb".to_string(),
            created_at: now,
            updated_at: now,
            expires_at: None,
            protected: false,
            git_branch: None,
            masked: false,
            deleted_at: None,
            parent_lsn: None,
            after_create: None,
            suspend_timeout_seconds: 0,
        };
        (project, root)
    }

    pub(crate) async fn build_project(
        self: &Arc<Self>,
        mut project: Project,
        mut root: Branch,
        pg_version: Option<u32>,
        source: api::RootSource,
        mask: Option<pgfork_mask::MaskingRules>,
        progress: Arc<Progress>,
    ) -> Result<(Project, Branch), ApiError> {
        // Again under the lock: another request may have won the name meanwhile.
        self.ensure_no_project(&project.name)?;
        let (branch_id, port) = (root.id.clone(), root.port);
        let staged = StagedDir::new(self.layout.tmp.join(&branch_id));
        let tmp = staged.path().to_path_buf();
        let tmp_pgdata = tmp.join("pgdata");
        let mut build_inst = Instance {
            pgdata: tmp_pgdata.clone(),
            socket_dir: self.layout.socket_dir(&branch_id),
            port,
            log_file: self.layout.branch_log(&branch_id),
            superuser: "postgres".to_string(),
            archive_dir: None,
        };
        let mut import_report = None;
        let result = self
            .import_root(
                &mut project,
                &mut root,
                &mut build_inst,
                pg_version,
                &source,
                &tmp,
                &progress,
            )
            .await
            .map(|report| import_report = report);
        // A masked base: the root itself is masked before it exists, so no branch of
        // the project ever holds the originals.
        let key = crate::ids::new_password();
        let result = match (result, &mask) {
            (Ok(()), Some(_)) if root.clone_method == REPLICA_ROOT => Err(ApiError::bad_request(
                "a root that follows production cannot be masked (masking writes, a standby is read-only): mask its branches instead ([masking] pii = true in .pgfork.toml)",
            )),
            (Ok(()), Some(rules)) => {
                root.masked = true;
                let label = root.id.clone();
                self.mask_staged(&project, &root, &label, &tmp_pgdata, rules, &key, &progress)
                    .await
            }
            (r, _) => r,
        };
        let result = match result {
            Ok(()) => {
                self.commit_new_branch(&project, &mut root, &tmp_pgdata, Some(&project), false)
                    .await
            }
            Err(e) => Err(e),
        };
        // A subscriber holds the source's data once its initial copy is done: the
        // project is ready then, not before.
        let result = match result {
            Ok(()) if root.clone_method == SUBSCRIBE_ROOT => {
                self.wait_for_initial_copy(&project, &root, &progress).await
            }
            r => r,
        };
        let result = match (result, &mask) {
            (Ok(()), Some(rules)) => self
                .write_store(|s| {
                    s.project_mask_key(&project.id, || key.clone())?;
                    s.set_branch_masking(&root.id, &rules.to_json())
                })
                .map_err(store_err),
            (r, _) => r,
        };
        // Where the root came from, for `pgfork root refresh` and its schedule.
        let result = match result {
            Ok(()) => self.record_source(&project, &source),
            Err(e) => Err(e),
        };
        let result = match (result, &import_report) {
            (Ok(()), Some(report)) => {
                for d in &report.differs {
                    tracing::warn!(project = %project.name, "import: {d}");
                }
                let json = serde_json::to_string(report).unwrap_or_default();
                self.write_store(|s| s.set_import_report(&project.id, &json))
                    .map_err(store_err)
            }
            (r, _) => r,
        };
        if result.is_err() {
            // An import may have left its build Postgres running in tmp/.
            let _ = self.stop_instance(build_inst.clone()).await;
        }
        drop(staged);
        result?;
        tracing::info!(project = %project.name, branch = %root.name, "project created");
        Ok((project, root))
    }

    /// Fills `tmp/pgdata` from the root source; leaves the build instance stopped.
    /// A logical import returns its fidelity report.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn import_root(
        &self,
        project: &mut Project,
        root: &mut Branch,
        inst: &mut Instance,
        pg_version: Option<u32>,
        source: &api::RootSource,
        tmp: &Path,
        progress: &Arc<Progress>,
    ) -> Result<Option<fidelity::Report>, ApiError> {
        std::fs::create_dir_all(tmp).map_err(io_err("create", tmp))?;
        let mut import_differs = Vec::new();
        self.user.chown(tmp).map_err(pg_err)?;
        let install = match pg_version {
            Some(v) => self.installs.for_major(v).map_err(pg_err)?.clone(),
            None => self.installs.newest().clone(),
        };
        let user = self.user.clone();
        let pgdata = inst.pgdata.clone();
        // A logical import is told about its source first: data checksums are chosen
        // at initdb, and a missing extension refuses the import before anything is made.
        if let api::RootSource::Subscribe { url, .. } = source {
            let (i, u, url) = (install.clone(), user.clone(), url.clone());
            blocking(move || pgfork_pg::subscribe::check_source(&i, &u, &url).map_err(pg_err))
                .await?;
        }
        let facts = match source.logical_url() {
            Some(url) => {
                let (i, u, url) = (install.clone(), user.clone(), url.to_string());
                Some(blocking(move || logical::source_facts(&i, &u, &url).map_err(pg_err)).await?)
            }
            None => None,
        };
        let install_used: PgInstall = match source {
            api::RootSource::Empty | api::RootSource::Sample { .. } => {
                progress.phase("initdb", 0);
                let (i, u, d) = (install.clone(), user.clone(), pgdata.clone());
                blocking(move || instance::initdb(&i, &u, &d, "postgres").map_err(pg_err)).await?;
                root.clone_method = "initdb".into();
                install
            }
            api::RootSource::Logical { .. } | api::RootSource::Subscribe { .. } => {
                progress.phase("initdb", 0);
                let checksums = facts.as_ref().is_some_and(|f| f.data_checksums);
                let (i, u, d) = (install.clone(), user.clone(), pgdata.clone());
                blocking(move || {
                    instance::initdb_with(&i, &u, &d, logical::IMPORT_BOOTSTRAP, checksums)
                        .map_err(pg_err)
                })
                .await?;
                inst.superuser = logical::IMPORT_BOOTSTRAP.to_string();
                root.clone_method = if matches!(source, api::RootSource::Subscribe { .. }) {
                    // Following its source, it is never suspended for idleness.
                    root.suspend_timeout_seconds = -1;
                    SUBSCRIBE_ROOT.into()
                } else {
                    "initdb".into()
                };
                install
            }
            api::RootSource::Physical { url } => {
                let (installs, u, d, url, p) = (
                    self.installs.clone(),
                    user.clone(),
                    pgdata.clone(),
                    url.clone(),
                    progress.clone(),
                );
                let (i, info) = blocking(move || {
                    import::physical(&installs, &u, &url, &d, Some(&p)).map_err(pg_err)
                })
                .await?;
                inst.superuser = info.bootstrap_superuser.clone();
                project.db_name = info.dbname;
                root.clone_method = "pg_basebackup".into();
                i
            }
            api::RootSource::Replica { url } => {
                let (installs, u, d, url, p, app) = (
                    self.installs.clone(),
                    user.clone(),
                    pgdata.clone(),
                    url.clone(),
                    progress.clone(),
                    format!(
                        "pgfork_{}",
                        project
                            .name
                            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                    ),
                );
                let (i, info) = blocking(move || {
                    import::standby(&installs, &u, &url, &d, &app, Some(&p)).map_err(pg_err)
                })
                .await?;
                inst.superuser = info.bootstrap_superuser.clone();
                project.db_name = info.dbname;
                root.clone_method = REPLICA_ROOT.into();
                // Following its source, it is never suspended for idleness.
                root.suspend_timeout_seconds = -1;
                i
            }
            api::RootSource::Dir { path } => {
                let src = PathBuf::from(path);
                if !src.is_dir() {
                    return Err(ApiError::bad_request(format!(
                        "{path} is not a directory: pass the PGDATA of a stopped PostgreSQL"
                    )));
                }
                let method = self.clone_method_between(&src);
                let (installs, u, d, p) = (
                    self.installs.clone(),
                    user.clone(),
                    pgdata.clone(),
                    progress.clone(),
                );
                let s = src.clone();
                let i = blocking(move || {
                    import::adopt_dir(&installs, &u, &s, &d, method, Some(&p)).map_err(pg_err)
                })
                .await?;
                root.clone_method = method.as_str().into();
                let mut candidates = Vec::new();
                if let Some(owner) = pgfork_pg::user::owner_name(&src) {
                    candidates.push(owner);
                }
                candidates.push("postgres".to_string());
                candidates.push(self.user.name.clone());
                candidates.dedup();
                // Start to discover the superuser; the rest of the flow restarts it.
                self.start_build(inst, &i).await?;
                inst.superuser = import::find_superuser(inst, &candidates)
                    .await
                    .map_err(pg_err)?;
                i
            }
        };
        project.pg_major = install_used.major;
        project.superuser = inst.superuser.clone();
        self.start_build(inst, &install_used).await?;
        // Whatever the sample or a dump creates is the owner's: it is loaded by a
        // transient superuser whose objects are then handed over in one statement.
        let loads = matches!(
            source,
            api::RootSource::Sample { .. }
                | api::RootSource::Logical { .. }
                | api::RootSource::Subscribe { .. }
                | api::RootSource::Empty
        );
        // A standby is read-only: its roles are production's own; its branches get the
        // owner role when they first start as primaries.
        if root.clone_method != REPLICA_ROOT {
            let client = sql::connect(inst, "postgres").await.map_err(pg_err)?;
            roles::ensure_owner(&client, project.pg_major, &root.password)
                .await
                .map_err(pg_err)?;
            if loads {
                roles::create_import_role(&client).await.map_err(pg_err)?;
            }
        }
        let mut loader = inst.clone();
        loader.superuser = roles::IMPORT_ROLE.to_string();
        match source {
            api::RootSource::Sample { scale } => {
                let (i, u, b, p, scale) = (
                    install_used.clone(),
                    user.clone(),
                    loader.clone(),
                    progress.clone(),
                    *scale,
                );
                blocking(move || {
                    import::sample(&i, &u, &b, "postgres", scale, Some(&p)).map_err(pg_err)
                })
                .await?;
            }
            api::RootSource::Logical { url } | api::RootSource::Subscribe { url, .. } => {
                let facts = facts.as_ref().ok_or_else(|| {
                    ApiError::internal("a logical import without its source's facts")
                })?;
                // A subscription copies the data itself, consistently with what follows.
                let schema_only = matches!(source, api::RootSource::Subscribe { .. });
                let (dbname, differs) = self
                    .import_logical(
                        LogicalImport {
                            url,
                            facts,
                            schema_only,
                        },
                        &install_used,
                        &loader,
                        tmp,
                        progress,
                    )
                    .await?;
                project.db_name = dbname;
                import_differs = differs;
            }
            _ => {}
        }
        let superusers = facts
            .as_ref()
            .map(|f| f.superusers.clone())
            .unwrap_or_default();
        if loads {
            let mut databases = vec!["postgres".to_string()];
            if project.db_name != "postgres" {
                databases.push(project.db_name.clone());
            }
            for db in &databases {
                let client = sql::connect(inst, db).await.map_err(pg_err)?;
                logical::hand_over_superusers(&client, &superusers, roles::OWNER_ROLE)
                    .await
                    .map_err(pg_err)?;
                // An imported database keeps the owner the source gave it.
                let take_database = facts.is_none() || db == "postgres";
                roles::hand_over_database(&client, db, take_database)
                    .await
                    .map_err(pg_err)?;
            }
            let client = sql::connect(inst, "postgres").await.map_err(pg_err)?;
            roles::drop_import_role(&client).await.map_err(pg_err)?;
        }
        let mut follow_note = None;
        if let api::RootSource::Subscribe { url, publication } = source {
            progress.phase("subscribing to the source", 0);
            let name = pgfork_pg::subscribe::subscription_name(&project.name);
            let publication = publication.clone().unwrap_or_else(|| name.clone());
            let create = matches!(
                source,
                api::RootSource::Subscribe {
                    publication: None,
                    ..
                }
            );
            let (i, u, url2, pub2) = (
                install_used.clone(),
                user.clone(),
                url.clone(),
                publication.clone(),
            );
            let created = blocking(move || {
                pgfork_pg::subscribe::ensure_publication(&i, &u, &url2, &pub2, create)
                    .map_err(pg_err)
            })
            .await?;
            // Owned by a superuser (PostgreSQL 15 requires it of a subscription's owner).
            let client = sql::connect(inst, &project.db_name).await.map_err(pg_err)?;
            pgfork_pg::subscribe::subscribe(
                &client,
                &self.user,
                &inst.pgdata,
                &name,
                url,
                &publication,
            )
            .await
            .map_err(pg_err)?;
            follow_note = Some(format!(
                "data: copied and followed by subscription {name} to publication {publication}{} (its slot {name} on the source keeps WAL until `pgfork project delete` drops it); sequence values are caught up in each branch; large objects and schema changes do not follow (`pgfork root refresh` takes them)",
                if created { ", created on the source" } else { "" }
            ));
        }
        let report = match (source.logical_url(), &facts) {
            (Some(url), Some(facts)) => {
                progress.phase("checking the copy against the source", 0);
                let (i, u, url, here, db, passwords) = (
                    install_used.clone(),
                    user.clone(),
                    url.to_string(),
                    inst.clone(),
                    project.db_name.clone(),
                    facts.reads_passwords,
                );
                let (source_inv, here_inv) = blocking(move || {
                    let s = logical::inventory(&i, &u, &logical::Target::Url(&url), passwords)
                        .map_err(pg_err)?;
                    let h = logical::inventory(&i, &u, &logical::Target::Local(&here, &db), true)
                        .map_err(pg_err)?;
                    Ok((s, h))
                })
                .await?;
                let choices = fidelity::Choices {
                    superusers: superusers
                        .iter()
                        .filter(|s| !logical::is_pgfork_role(s))
                        .cloned()
                        .collect(),
                    owner_role: roles::OWNER_ROLE.to_string(),
                    own_roles: vec![
                        logical::IMPORT_BOOTSTRAP.to_string(),
                        roles::IMPORT_ROLE.to_string(),
                    ],
                };
                let mut report = fidelity::compare(&source_inv, &here_inv, &choices);
                if let Some(note) = follow_note.take() {
                    // The data is the subscription's to copy: counts of rows and large
                    // objects are not the schema-only import's to match.
                    report.differs.retain(|d| !d.starts_with("large objects:"));
                    report.copied.push(note);
                }
                if !facts.reads_passwords {
                    report.differs.push(
                        "roles have no password here: the source role may not read pg_authid (import as a superuser to keep them, or set them with ALTER ROLE)".to_string(),
                    );
                }
                report.differs.extend(import_differs);
                report.differs.dedup();
                Some(report)
            }
            _ => None,
        };
        progress.phase("finishing", 0);
        self.stop_instance(inst.clone()).await?;
        Ok(report)
    }

    /// The faithful logical import (see `pgfork_pg::logical`): roles, the database as
    /// the source made it, the extensions at the source's versions, then the dump with
    /// its owners and privileges. Returns the database's name and what could not be
    /// kept.
    async fn import_logical(
        &self,
        what: LogicalImport<'_>,
        install: &PgInstall,
        loader: &Instance,
        tmp: &Path,
        progress: &Arc<Progress>,
    ) -> Result<(String, Vec<String>), ApiError> {
        let LogicalImport {
            url,
            facts,
            schema_only,
        } = what;
        let user = self.user.clone();
        let admin = sql::connect(loader, "postgres").await.map_err(pg_err)?;
        let missing = logical::missing_extensions(&admin, facts)
            .await
            .map_err(pg_err)?;
        if !missing.is_empty() {
            return Err(ApiError::bad_request(format!(
                "the source uses extensions this server does not have ({}): install them here (on Debian, the postgresql-{}-… package of each) and run the import again",
                missing.join(", "),
                install.major
            )));
        }
        let (i, u, url2) = (install.clone(), user.clone(), url.to_string());
        let info = blocking(move || import::source_info(&i, &u, &url2).map_err(pg_err)).await?;
        progress.phase("copying roles", 0);
        let (i, u, url2, pw) = (
            install.clone(),
            user.clone(),
            url.to_string(),
            facts.reads_passwords,
        );
        let role_script =
            blocking(move || logical::dump_roles(&i, &u, &url2, pw).map_err(pg_err)).await?;
        let reserved = [
            roles::OWNER_ROLE,
            roles::IMPORT_ROLE,
            logical::IMPORT_BOOTSTRAP,
        ];
        let mut differs = logical::apply_roles(&admin, &role_script, &reserved)
            .await
            .map_err(pg_err)?;
        let dump = tmp.join("dump");
        let jobs = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2)
            .clamp(2, 8);
        let (i, u, url2, d, p) = (
            install.clone(),
            user.clone(),
            url.to_string(),
            dump.clone(),
            progress.clone(),
        );
        blocking(move || {
            import::logical_dump(&i, &u, &url2, &d, jobs, schema_only, Some(&p)).map_err(pg_err)
        })
        .await?;
        let (i, u, d, scratch) = (
            install.clone(),
            user.clone(),
            dump.clone(),
            tmp.to_path_buf(),
        );
        let db_script =
            blocking(move || logical::database_script(&i, &u, &d, &scratch).map_err(pg_err))
                .await?;
        differs.extend(
            logical::create_database(&admin, &info.dbname, &db_script, facts)
                .await
                .map_err(pg_err)?,
        );
        let in_db = sql::connect(loader, &info.dbname).await.map_err(pg_err)?;
        logical::precreate_extensions(&in_db, facts)
            .await
            .map_err(pg_err)?;
        let (i, u, b, d, p, db) = (
            install.clone(),
            user.clone(),
            loader.clone(),
            dump.clone(),
            progress.clone(),
            info.dbname.clone(),
        );
        blocking(move || {
            import::logical_restore(&i, &u, &b, &db, &d, jobs, Some(&p)).map_err(pg_err)
        })
        .await?;
        logical::align_extensions(&in_db, facts)
            .await
            .map_err(pg_err)?;
        remove_tree(&dump);
        Ok((info.dbname, differs))
    }

    /// Waits until a subscriber root's initial copy is done (every table ready).
    async fn wait_for_initial_copy(
        &self,
        project: &Project,
        root: &Branch,
        progress: &Arc<Progress>,
    ) -> Result<(), ApiError> {
        progress.phase("the subscription's initial copy", 0);
        let inst = self.instance(project, root);
        let client = sql::connect(&inst, &project.db_name)
            .await
            .map_err(pg_err)?;
        let started = std::time::Instant::now();
        loop {
            let (pending, errors) = pgfork_pg::subscribe::copy_pending(&client)
                .await
                .map_err(pg_err)?;
            if pending == 0 {
                return Ok(());
            }
            if errors > 0 && started.elapsed() > std::time::Duration::from_secs(60) {
                return Err(ApiError::conflict(format!(
                    "the subscription's initial copy keeps failing ({errors} errors, {pending} tables left): see the root's log ({})",
                    inst.log_file.display()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// A branch of a subscriber root: its sequences past its columns' values (a
    /// subscription copies rows, not sequence values), before any client writes.
    pub(crate) async fn catch_up_sequences(&self, project: &Project, b: &Branch) {
        let Ok(root) = self.root_branch(project) else {
            return;
        };
        if root.clone_method != SUBSCRIBE_ROOT || b.parent_id.is_none() {
            return;
        }
        let inst = self.instance(project, b);
        let moved = match sql::connect(&inst, &project.db_name).await {
            Ok(client) => pgfork_pg::subscribe::catch_up_sequences(&client).await,
            Err(e) => Err(e),
        };
        match moved {
            Ok(n) if n > 0 => {
                tracing::info!(branch = %b.name, sequences = n, "advanced sequences past their columns' values (a subscription does not copy them)")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(branch = %b.name, error = %e, "could not advance the branch's sequences: inserts may collide with copied rows")
            }
        }
    }

    /// Reflink when `src` is on the same reflink-capable filesystem as the store.
    pub(crate) fn clone_method_between(&self, src: &Path) -> CloneMethod {
        if self.probe.method != CloneMethod::Reflink {
            return CloneMethod::Copy;
        }
        use std::os::unix::fs::MetadataExt;
        let same_fs = match (std::fs::metadata(src), std::fs::metadata(&self.layout.home)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => false,
        };
        if same_fs {
            CloneMethod::Reflink
        } else {
            CloneMethod::Copy
        }
    }

    /// Steps 2–3 of the discipline: durable, renamed into place, started, committed.
    /// `new_project` inserts the project in the same transaction (root branches).
    pub(crate) async fn commit_new_branch(
        &self,
        project: &Project,
        b: &mut Branch,
        built: &Path,
        new_project: Option<&Project>,
        rotate: bool,
    ) -> Result<(), ApiError> {
        let home = b.home_dir.clone();
        let built2 = built.to_path_buf();
        blocking(move || {
            pgfork_cow::sync_filesystem(&built2).map_err(cow_err)?;
            if let Some(parent) = home.parent() {
                traversable_dir(parent)?;
            }
            if home.exists() {
                return Err(ApiError::conflict(format!(
                    "{} already exists: remove it or pick another branch name",
                    home.display()
                )));
            }
            std::fs::rename(&built2, &home).map_err(io_err("move the new branch into", &home))?;
            if let Some(parent) = home.parent() {
                pgfork_cow::fsync_dir(parent).map_err(cow_err)?;
            }
            Ok(())
        })
        .await?;
        crate::failpoints::crash("create-after-rename");
        b.data_dir = b.home_dir.clone();
        let committed = async {
            self.start_instance(project, b, true).await?;
            crate::failpoints::crash("create-after-start");
            b.state = BranchState::Running;
            b.updated_at = Utc::now();
            let b: &Branch = b;
            self.write_store(|store| match new_project {
                Some(p) => store.insert_project_with_root(p, b),
                None => store.insert_branch(b, &project.name),
            })
            .map_err(store_err)?;
            // Before anyone learns the branch's port: a branch of a protected branch
            // (production) never serves production's role passwords.
            if rotate {
                if let Err(e) = self.rotate_role_passwords(project, b).await {
                    let id = b.id.clone();
                    let _ = self.write_store(|s| s.purge_branch(&id));
                    return Err(e);
                }
            }
            Ok::<(), ApiError>(())
        }
        .await;
        if let Err(e) = committed {
            // We renamed it into place, so it is ours to take away again.
            let _ = self.stop_instance(self.instance(project, b)).await;
            remove_tree(&b.home_dir);
            return Err(e);
        }
        self.expose(b.port).await;
        self.capture_role_secrets(project, b).await;
        Ok(())
    }

    pub async fn create_branch(
        self: &Arc<Self>,
        project_ref: &str,
        req: api::BranchCreateRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let mut spec = req.branch;
        // A past moment of the parent: Neon's parent_timestamp / parent_lsn.
        let target = match (spec.parent_timestamp.take(), spec.parent_lsn.take()) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give parent_timestamp or parent_lsn, not both",
                ))
            }
            (Some(t), None) => Some(pgfork_pg::pitr::RecoveryTarget::Time(
                DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "parent_timestamp {t:?} is not an RFC 3339 time ({e}): write it like 2026-11-25T12:00:00Z"
                        ))
                    })?
                    .with_timezone(&Utc),
            )),
            (None, Some(l)) => Some(pgfork_pg::pitr::RecoveryTarget::Lsn(l)),
            (None, None) => None,
        };
        let every = match spec.pgfork_history_snapshot_every_seconds {
            Some(e) if e < 60 => {
                return Err(ApiError::bad_request(format!(
                    "a history snapshot every {e} s is too often: give at least 60"
                )))
            }
            e => e,
        };
        let history_window = pgfork_core::HistoryPolicy::new(
            spec.pgfork_history_window_seconds.unwrap_or(0),
            every,
            spec.pgfork_history_keep,
        );
        let name = spec
            .name
            .clone()
            .ok_or_else(|| ApiError::bad_request("a branch needs a name"))?;
        validate_branch_name(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let parent = match &spec.parent_id {
            Some(p) => self.branch(&project, p).map_err(|_| {
                ApiError::not_found(format!(
                    "there is no branch {p:?} to branch from in project {:?}: see `pgfork branch list`",
                    project.name
                ))
            })?,
            None => self.root_branch(&project)?,
        };
        if self
            .store()
            .live_branch_by_name(&project.id, &name)
            .map_err(store_err)?
            .is_some()
        {
            return Err(ApiError::conflict(format!("a branch named {name:?} already exists in project {:?}: pick another name or delete it first", project.name)));
        }
        if spec.suspend_timeout_seconds.is_some_and(|t| t < -1) {
            return Err(ApiError::bad_request(
                "suspend_timeout_seconds is seconds, 0 for the default or -1 for never",
            ));
        }
        spec.expires_at =
            pgfork_core::requested_expiry(spec.expires_at, spec.pgfork_ttl_seconds, Utc::now())
                .map_err(ApiError::bad_request)?;
        let rotate = match spec.pgfork_rotate_passwords.as_deref() {
            None | Some("protected") => parent.protected,
            Some("always") => true,
            Some("never") => false,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "pgfork_rotate_passwords {other:?} is one of protected, always, never"
                )))
            }
        };
        let mask = super::masking::rules_from_request(
            spec.pgfork_masking_rules.take(),
            spec.pgfork_masking_strict,
            spec.pgfork_masking_keep.take(),
        )?;
        let point_in_time = match target {
            Some(t) => {
                if mask.is_some() {
                    return Err(ApiError::bad_request(
                        "a branch at a past moment copies its parent's history as it was: mask the parent, or mask a branch of this one",
                    ));
                }
                Some(self.plan_point_in_time(&project, &parent, t).await?)
            }
            None => None,
        };
        let settings: Vec<(String, String)> = match spec.pgfork_postgres_settings.take() {
            Some(s) => s.into_iter().collect(),
            None => self.pg_settings_of(&parent.id)?,
        };
        pgfork_pg::settings::check(&settings).map_err(ApiError::bad_request)?;
        if let Some(why) = &spec.pgfork_unmasked_reason {
            tracing::warn!(project = %project.name, branch = %name, parent = %parent.name, reason = %why, "an unmasked branch of unmasked data was asked for by name in a project that holds personal data");
        }
        let reservation = self.reserve(&project.name, &name)?;
        let mut planned = self.plan_branch(&project, name, &parent, spec, reservation.port);
        if mask.is_some() || point_in_time.as_ref().is_some_and(|pit| pit.masked) {
            planned.masked = true;
        }
        let building = BuildingPort::new(
            self,
            planned.port,
            if mask.is_some() {
                format!(
                    "branch {:?} is being masked: it accepts connections once its personal data has been masked",
                    planned.name
                )
            } else {
                format!(
                    "branch {:?} is being created: it accepts connections in a moment",
                    planned.name
                )
            },
        );
        let this = self.clone();
        let (p2, b2) = (project.clone(), planned.clone());
        let (op_id, result) = self
            .run_op(
                &project.id,
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
                            BranchRecipe {
                                rotate,
                                mask: mask.as_ref(),
                                settings: &settings,
                                from_snapshot: point_in_time
                                    .as_ref()
                                    .map(|pit| pit.snapshot_dir.as_path()),
                                point_in_time: point_in_time.as_ref(),
                                history_window,
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
        Ok(self.branch_response(&project, &b, Some(&op_id)))
    }

    /// The branch row a create will commit, decided up front (so the client gets its
    /// id, port and URL at once, even when the build waits behind other work).
    pub(crate) fn plan_branch(
        &self,
        project: &Project,
        name: String,
        parent: &Branch,
        spec: api::BranchCreate,
        port: u16,
    ) -> Branch {
        let id = new_id("br");
        let mut dir_name = safe_dir_name(&name);
        if self
            .layout
            .branch_dir(&safe_dir_name(&project.name), &dir_name)
            .exists()
        {
            // A renamed branch may still occupy this name's directory.
            dir_name = format!("{dir_name}~{id}");
        }
        let home = self
            .layout
            .branch_dir(&safe_dir_name(&project.name), &dir_name);
        let now = Utc::now();
        Branch {
            id,
            project_id: project.id.clone(),
            name,
            parent_id: Some(parent.id.clone()),
            state: BranchState::Creating,
            port,
            password: new_password(),
            data_dir: home.clone(),
            home_dir: home,
            clone_method: self.probe.method.as_str().to_string(),
            created_at: now,
            updated_at: now,
            expires_at: spec.expires_at,
            protected: spec.protected.unwrap_or(false),
            git_branch: spec.git_branch,
            // A child of a masked branch is a copy of masked data.
            masked: parent.masked,
            deleted_at: None,
            parent_lsn: None,
            after_create: None,
            suspend_timeout_seconds: spec.suspend_timeout_seconds.unwrap_or(0),
        }
    }

    pub(crate) async fn build_branch(
        &self,
        project: &Project,
        mut b: Branch,
        op_id: String,
        progress: Arc<Progress>,
        recipe: BranchRecipe<'_>,
    ) -> Result<Branch, ApiError> {
        let BranchRecipe {
            rotate,
            mask,
            settings,
            from_snapshot,
            point_in_time,
            history_window,
        } = recipe;
        // Re-check under the lock: the parent may have gone, the name been taken.
        if self
            .store()
            .live_branch_by_name(&project.id, &b.name)
            .map_err(store_err)?
            .is_some()
        {
            return Err(ApiError::conflict(format!(
                "a branch named {:?} already exists in project {:?}",
                b.name, project.name
            )));
        }
        let parent_id = b.parent_id.clone().unwrap_or_default();
        let parent = self.branch(project, &parent_id)?;
        let id = b.id.clone();
        let staged = StagedDir::new(self.layout.tmp.join(&id));
        let tmp = staged.path().to_path_buf();
        let built = tmp.join("pgdata");
        let result = async {
            let lsn = match from_snapshot {
                // A snapshot is a stopped clone: cloned again, it recovers when it starts.
                Some(snap) => {
                    std::fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
                    self.user.chown(&tmp).map_err(pg_err)?;
                    let method = self.clone_method_between(snap);
                    let (s, d, u, p) = (
                        snap.to_path_buf(),
                        built.clone(),
                        self.user.clone(),
                        progress.clone(),
                    );
                    blocking(move || {
                        clone::clone_stopped(&s, &d, method, &u, Some(&p)).map_err(pg_err)
                    })
                    .await?;
                    None
                }
                None => {
                    // The parent must not start or stop while it is being cloned.
                    let _parent = self.lock_branch(&parent.id).await;
                    let parent = self.branch(project, &parent.id)?;
                    self.clone_parent_into(project, &parent, &tmp, &built, &op_id, &progress, &id)
                        .await?
                }
            };
            b.parent_lsn = lsn;
            // Before anything starts it: production's tuning may not even start here.
            self.apply_branch_settings(&built, settings).await?;
            if let Some(pit) = point_in_time {
                self.recover_staged(project, &b, &built, pit, &progress)
                    .await?;
            }
            if history_window.is_some_and(|h| h.keeps_wal()) {
                self.prepare_history_dir(&b.id)?;
            }
            if let Some(rules) = mask {
                let key = self
                    .write_store(|s| s.project_mask_key(&project.id, crate::ids::new_password))
                    .map_err(store_err)?;
                self.mask_staged(project, &b, &b.id, &built, rules, &key, &progress)
                    .await?;
            }
            self.commit_new_branch(project, &mut b, &built, None, rotate)
                .await?;
            self.catch_up_sequences(project, &b).await;
            self.record_fork(project, &b).await;
            if let Some(policy) = &history_window {
                self.start_history(project, &b, policy).await?;
            }
            if !settings.is_empty() {
                let json = serde_json::to_string(&settings).unwrap_or_default();
                let id = b.id.clone();
                self.write_store(|s| s.set_branch_pg_settings(&id, &json))
                    .map_err(store_err)?;
            }
            if let Some(rules) = mask {
                let id = b.id.clone();
                self.write_store(|s| s.set_branch_masking(&id, &rules.to_json()))
                    .map_err(store_err)?;
            }
            Ok::<(), ApiError>(())
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(branch = %b.name, error = %e, "branch creation failed; cleaned up");
        }
        drop(staged);
        result?;
        tracing::info!(branch = %b.name, parent = %parent.name, method = %b.clone_method, "branch created");
        Ok(b)
    }

    /// A branch's own server settings as stored (none: the developer defaults only).
    pub(crate) fn pg_settings_of(
        &self,
        branch_id: &str,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let json = self
            .store()
            .branch_pg_settings(branch_id)
            .map_err(store_err)?;
        Ok(json
            .and_then(|j| serde_json::from_str::<Vec<(String, String)>>(&j).ok())
            .unwrap_or_default())
    }

    /// Writes the developer defaults and `settings` into a staged branch's own
    /// `postgresql.conf` (never a root's).
    pub(crate) async fn apply_branch_settings(
        &self,
        built: &Path,
        settings: &[(String, String)],
    ) -> Result<(), ApiError> {
        let (user, built, settings) = (self.user.clone(), built.to_path_buf(), settings.to_vec());
        blocking(move || pgfork_pg::settings::apply(&user, &built, &settings).map_err(pg_err)).await
    }

    /// Clones `parent` into `built` (inside `tmp`), online when it runs. Returns the
    /// parent LSN for online clones.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn clone_parent_into(
        &self,
        project: &Project,
        parent: &Branch,
        tmp: &Path,
        built: &Path,
        op_id: &str,
        progress: &Arc<Progress>,
        label: &str,
    ) -> Result<Option<String>, ApiError> {
        let method = self.probe.method;
        // Before anything touches the parent: a clone of a running parent makes it
        // write (checkpoint, backup WAL), and every later write of parent or child
        // needs new blocks. A full store would make the parent PANIC.
        let need = if method == CloneMethod::Copy {
            let src = parent.data_dir.clone();
            tokio::task::spawn_blocking(move || total_file_bytes(&src))
                .await
                .unwrap_or(0)
        } else {
            0
        };
        let free = pgfork_cow::available_bytes(&self.layout.tmp).map_err(cow_err)?;
        if pgfork_core::room_for(free, need, self.cfg.min_free).is_err() {
            let what = if need > 0 {
                format!(
                    "a full copy of {:?} needs {}",
                    parent.name,
                    human_bytes(need)
                )
            } else {
                format!("branching {:?} needs little", parent.name)
            };
            return Err(ApiError::insufficient_storage(format!(
                "the store has {} free: {what}, and pgfork keeps {} free so that running branches can go on writing; nothing was changed: free some space (`pgfork trash empty`, delete branches){}",
                human_bytes(free),
                human_bytes(self.cfg.min_free),
                if method == CloneMethod::Copy {
                    ", or put PGFORK_HOME on a reflink filesystem (XFS, btrfs) where branches cost almost nothing"
                } else {
                    ""
                }
            )));
        }
        std::fs::create_dir_all(tmp).map_err(io_err("create", tmp))?;
        if method == CloneMethod::Copy {
            if let Some(w) = self.probe.warning() {
                self.ops.warn(op_id, w);
            }
            progress.phase(&format!("copying {}", parent.name), need);
        }
        let parent_inst = self.instance(project, parent);
        let report = if parent_inst.is_running() {
            clone::clone_running(
                &parent_inst,
                project.pg_major,
                built,
                method,
                &self.user,
                Some(progress.clone()),
                label,
            )
            .await
            .map_err(pg_err)?
        } else {
            let (src, dst, user, p) = (
                parent.data_dir.clone(),
                built.to_path_buf(),
                self.user.clone(),
                progress.clone(),
            );
            blocking(move || {
                clone::clone_stopped(&src, &dst, method, &user, Some(&p)).map_err(pg_err)
            })
            .await?
        };
        tracing::debug!(?report, "parent cloned");
        crate::failpoints::crash("create-after-clone");
        Ok(report.lsn)
    }
}

/// A port whose branch is being built: clients are told why it does not answer yet,
/// until the build ends (either way).
pub(crate) struct BuildingPort {
    engine: std::sync::Weak<Engine>,
    port: u16,
}

impl BuildingPort {
    pub(crate) fn new(engine: &Arc<Engine>, port: u16, why: String) -> BuildingPort {
        engine
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port, why);
        BuildingPort {
            engine: Arc::downgrade(engine),
            port,
        }
    }
}

impl Drop for BuildingPort {
    fn drop(&mut self) {
        if let Some(e) = self.engine.upgrade() {
            e.building
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.port);
        }
    }
}
