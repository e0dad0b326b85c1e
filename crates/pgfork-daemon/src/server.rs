//! The daemon process: set up the store, reconcile, serve the API on the unix socket,
//! reap expired branches, and on any shutdown path stop every Postgres it owns.

use crate::engine::Engine;
use crate::{reconcile, Config, Layout};
use pgfork_api as api;
use pgfork_api::{ApiError, Backend};
use pgfork_cow::CloneMethod;
use pgfork_pg::{PgInstalls, ServerUser};
use pgfork_store::Store;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("a pgfork daemon already runs for {0}: use it, or stop it with `pgfork daemon stop`")]
    AlreadyRunning(String),
    #[error("could not prepare the store at {path}: {source}")]
    Store {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metadata(#[from] pgfork_store::StoreError),
    #[error(transparent)]
    Pg(#[from] pgfork_pg::PgError),
    #[error(transparent)]
    Cow(#[from] pgfork_cow::CowError),
    #[error("PostgreSQL runs as {user}, which cannot reach {path}: set PGFORK_HOME to a directory every user can traverse (e.g. /var/lib/pgfork)")]
    Unreachable { user: String, path: String },
    #[error("TLS for the network API: {0}")]
    Tls(String),
    #[error("could not listen on {path}: {source}")]
    Listen {
        path: String,
        source: std::io::Error,
    },
}

fn store_io(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Store {
        path: path.display().to_string(),
        source,
    }
}

/// Checks that every ancestor of `path` lets the server user through (x permission).
pub fn check_reachable(user: &ServerUser, path: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::MetadataExt;
    if !user.switch {
        return Ok(());
    }
    for dir in path.ancestors() {
        let Ok(m) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = m.mode();
        let ok = mode & 0o001 != 0
            || (m.uid() == user.uid && mode & 0o100 != 0)
            || (m.gid() == user.gid && mode & 0o010 != 0);
        if !ok {
            return Err(DaemonError::Unreachable {
                user: user.name.clone(),
                path: dir.display().to_string(),
            });
        }
    }
    Ok(())
}

fn prepare_dirs(layout: &Layout) -> Result<(), DaemonError> {
    for dir in [
        &layout.home,
        &layout.branches,
        &layout.trash,
        &layout.snapshots,
        &layout.history,
        &layout.tmp,
        &layout.logs,
        &layout.run,
    ] {
        std::fs::create_dir_all(dir).map_err(store_io(dir))?;
    }
    // Others may traverse (Postgres runs as another user) but not list.
    std::fs::set_permissions(&layout.home, std::fs::Permissions::from_mode(0o711))
        .map_err(store_io(&layout.home))?;
    for dir in [
        &layout.branches,
        &layout.trash,
        &layout.snapshots,
        &layout.history,
        &layout.tmp,
        &layout.run,
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(store_io(dir))?;
    }
    Ok(())
}

/// Holds an exclusive flock on `daemon.lock` for the life of the daemon.
struct LockFile(#[allow(dead_code)] std::fs::File);

fn take_lock(layout: &Layout) -> Result<LockFile, DaemonError> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&layout.lock)
        .map_err(store_io(&layout.lock))?;
    // A daemon that is still exiting (killed, dumping core) holds the lock for a
    // moment: wait a little before calling it a running daemon.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    // SAFETY: flock on a file descriptor we own.
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if std::time::Instant::now() > deadline {
            return Err(DaemonError::AlreadyRunning(
                layout.home.display().to_string(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The pid, for `daemon stop` when the daemon no longer answers its socket.
    use std::io::Write;
    let _ = f.set_len(0);
    let _ = writeln!(&f, "{}", std::process::id());
    Ok(LockFile(f))
}

/// Runs the daemon until a signal or an API shutdown; stops every branch before
/// returning.
pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    // Everything the daemon creates is private unless it says otherwise: the metadata
    // (with its WAL files) holds passwords, branch logs hold production-shaped data.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    let _failpoints = crate::failpoints::setup();
    // Every client socket and every relayed connection costs descriptors: take all the
    // system allows, and size the proxy's caps from it.
    let nofile = pgfork_proxy::limits::raise_nofile();
    tracing::debug!(nofile, "open-files limit");
    let layout = crate::layout::layout_for(&cfg.home).map_err(store_io(&cfg.home))?;
    prepare_dirs(&layout)?;
    let _lock = take_lock(&layout)?;
    let degraded = crate::ballast::release_if_full(&layout.home);
    let store = Store::open(&layout.db)?;
    std::fs::set_permissions(&layout.db, std::fs::Permissions::from_mode(0o600))
        .map_err(store_io(&layout.db))?;
    let installs = PgInstalls::discover(cfg.pg_bin.as_deref())?;
    let user = ServerUser::resolve(&cfg.pg_user)?;
    check_reachable(&user, &layout.branches)?;
    let probe = match pgfork_cow::probe(&layout.home) {
        Ok(p) => p,
        // Degraded mode: a daemon on a full disk must still start, so that delete
        // --purge, `trash empty` and gc can free space. Creates are refused by the
        // free-space guard anyway; assume the slow method until the next start.
        Err(e) if e.is_no_space() => {
            tracing::error!(error = %e, "the store is full: starting without probing the clone method; free space with `pgfork trash empty` or `pgfork branch delete NAME --purge`");
            pgfork_cow::Probe {
                method: CloneMethod::Copy,
                filesystem: "unknown (store full)".into(),
                path: layout.home.clone(),
            }
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(w) = probe.warning() {
        tracing::warn!("{w}");
    }
    if degraded {
        tracing::warn!("degraded mode: the store is full");
    }
    tracing::info!(home = %layout.home.display(), method = %probe.method, fs = %probe.filesystem, pg = %installs.newest().version, "pgfork daemon starting");
    let engine = Arc::new(Engine::new(
        cfg.clone(),
        layout.clone(),
        store,
        installs,
        user,
        probe,
    ));
    // TLS is offered whenever the certificates can be made; plaintext stays allowed.
    // The certificate names the public host too, so verify-full URLs for a team server
    // verify.
    let mut tls_names: Vec<String> = std::env::var("PGFORK_TLS_NAMES")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !tls_names.contains(&cfg.public_host) {
        tls_names.push(cfg.public_host.clone());
    }
    let tls = match pgfork_proxy::tls::server_config(&layout.home.join("tls"), &tls_names) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "TLS is off");
            None
        }
    };
    let front = Arc::new(crate::front::Front::new(Arc::downgrade(&engine)));
    let _ = engine.front_state.set(front.clone());
    let _ = engine.front.set(pgfork_proxy::Proxy::new(
        front,
        cfg.listen,
        cfg.startup_timeout,
        tls,
    ));
    // Leftovers first (fast, files only): nothing may sweep a directory a request
    // made. Then the API answers at once, while branches restart in the background.
    reconcile::sweep_leftovers(&engine).await;
    // Every reserved port — live branches, the trash, follow-HEAD endpoints — is held
    // before the daemon answers: a port left open is a port an impostor can take.
    engine.hold_all_ports().await;
    for b in engine
        .store()
        .all_branches()
        .unwrap_or_default()
        .iter()
        .filter(|b| b.state.is_live())
    {
        if let Some(f) = engine.front_state.get() {
            f.touch(b.port);
        }
    }
    let _ = std::fs::remove_file(&layout.socket);
    let listener =
        tokio::net::UnixListener::bind(&layout.socket).map_err(|source| DaemonError::Listen {
            path: layout.socket.display().to_string(),
            source,
        })?;
    std::fs::set_permissions(&layout.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(store_io(&layout.socket))?;
    // The network API, when asked for: bound before the daemon answers (a caller that
    // sees the daemon up can use it) and before any branch starts (a port someone else
    // holds must fail the start without leaving Postgres behind). Keys are required
    // (pgfork_api::auth).
    let network_listener = match &cfg.api_listen {
        Some(listen) => {
            let tcp = tokio::net::TcpListener::bind(listen.addr)
                .await
                .map_err(|source| DaemonError::Listen {
                    path: format!("{} (the network API)", listen.addr),
                    source,
                })?;
            let tls = if listen.tls {
                let server = pgfork_proxy::tls::server_config(&layout.home.join("tls"), &tls_names)
                    .map_err(|e| DaemonError::Tls(e.to_string()))?;
                Some(server.config)
            } else {
                None
            };
            Some((tcp, tls, listen.url()))
        }
        None => None,
    };
    let restarts = {
        let e = engine.clone();
        tokio::spawn(async move { reconcile::restart_branches(&e).await })
    };

    let reaper = {
        let e = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(e.cfg.reap_every);
            loop {
                tick.tick().await;
                {
                    let (home, min_free) = (e.layout.home.clone(), e.cfg.min_free);
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::ballast::ensure(&home, min_free)
                    })
                    .await;
                }
                e.notice_dead_postmasters().await;
                e.hold_all_ports().await;
                e.reap(chrono::Utc::now()).await;
                e.reap_snapshots(chrono::Utc::now()).await;
                e.keep_history(chrono::Utc::now()).await;
                e.reconcile_git().await;
                e.suspend_idle(e.cfg.idle_timeout).await;
                // An import can take minutes: the reaper's other work goes on meanwhile.
                let due = e.clone();
                tokio::spawn(async move { due.refresh_due_roots(chrono::Utc::now()).await });
            }
        })
    };

    let backend = Arc::new(Api(engine.clone()));
    let app = api::router(backend.clone());
    let (stop_network, network_stopped) = tokio::sync::watch::channel(false);
    let network = network_listener.map(|(tcp, tls, url)| {
        tracing::info!(%url, "network API listening");
        let mut stopped = network_stopped.clone();
        tokio::spawn(api::serve::serve_tcp(
            tcp,
            tls,
            network_routes(backend.clone(), &layout.socket, &cfg.public_host),
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            api::serve::HEADER_READ_TIMEOUT,
        ))
    });
    let shutdown = {
        let e = engine.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => tracing::info!("SIGTERM: shutting down"),
                _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => tracing::info!("SIGHUP: shutting down"),
                _ = e.shutdown.notified() => tracing::info!("shutdown requested through the API"),
            }
        }
    };
    api::serve::serve_unix(listener, app, shutdown, api::serve::HEADER_READ_TIMEOUT).await;
    let _ = stop_network.send(true);
    if let Some(network) = network {
        let _ = network.await;
    }
    reaper.abort();
    restarts.abort();
    // Let an operation in flight finish (a create may be about to start a Postgres)
    // before stopping everything; a long import is not waited for forever.
    let in_flight =
        tokio::time::timeout(std::time::Duration::from_secs(30), engine.quiesce()).await;
    if in_flight.is_err() {
        tracing::warn!("an operation is still running after 30 s; stopping branches anyway");
    }
    tracing::info!("stopping all branches");
    engine.stop_all().await;
    {
        let e = engine.clone();
        let _ = tokio::task::spawn_blocking(move || reconcile::stop_builds_in_tmp(&e)).await;
    }
    let _ = std::fs::remove_file(&layout.socket);
    tracing::info!("pgfork daemon stopped");
    Ok(())
}

/// The network API: `/api/v2`, and `/mcp` (agents over streamable HTTP), both behind
/// the key gate; the MCP tools reach the API through the daemon's own socket, limited
/// by the caller's key (see `pgfork_mcp::http`).
fn network_routes(backend: Arc<Api>, socket: &Path, public_host: &str) -> axum::Router {
    let mcp = pgfork_mcp::http::service(
        api::Client::unix(socket),
        pgfork_mcp::Options::default(),
        vec![public_host.to_string()],
    );
    api::network_router_with(backend, axum::Router::new().route_service("/mcp", mcp))
}

/// The API backend: the engine, adapted to the router's trait.
pub struct Api(pub Arc<Engine>);

impl Backend for Api {
    async fn status(&self) -> Result<api::DaemonStatus, ApiError> {
        let e = &self.0;
        Ok(api::DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            home: e.layout.home.display().to_string(),
            socket: e.layout.socket.display().to_string(),
            api_url: e.cfg.api_listen.as_ref().map(|l| l.url()),
            clone_method: e.probe.method.as_str().to_string(),
            filesystem: e.probe.filesystem.clone(),
            store_warning: e.probe.warning(),
            pg_versions: e
                .installs
                .installs
                .iter()
                .map(|i| format!("{} ({})", i.major, i.bin_dir.display()))
                .collect(),
            server_user: e.user.name.clone(),
            running_branches: e.running_count(),
            started_at: e.started_at,
        })
    }

    async fn authenticate(&self, key: String, from: String) -> Result<api::auth::Grant, ApiError> {
        self.0.authenticate(&key, &from)
    }

    async fn project_id(&self, project: String) -> Result<String, ApiError> {
        Ok(self.0.project(&project)?.id)
    }

    async fn create_api_key(
        &self,
        req: api::ApiKeyCreateRequest,
    ) -> Result<api::ApiKeyCreateResponse, ApiError> {
        self.0.create_api_key(req)
    }

    async fn list_api_keys(&self) -> Result<Vec<api::ApiKeyInfo>, ApiError> {
        self.0.list_api_keys()
    }

    async fn revoke_api_key(&self, id: i64) -> Result<api::ApiKeyRevokeResponse, ApiError> {
        self.0.revoke_api_key(id)
    }

    async fn doctor(&self) -> Result<api::DoctorResponse, ApiError> {
        Ok(api::DoctorResponse {
            checks: doctor_checks(&self.0),
        })
    }

    async fn shutdown(&self) -> Result<(), ApiError> {
        self.0.shutdown.notify_one();
        Ok(())
    }

    async fn list_projects(&self) -> Result<api::ProjectsResponse, ApiError> {
        let projects = self
            .0
            .store()
            .projects()
            .map_err(crate::engine::store_err)?;
        Ok(api::ProjectsResponse {
            projects: projects.iter().map(|p| self.0.api_project(p)).collect(),
            applications: Default::default(),
            integrations: Default::default(),
        })
    }

    async fn create_project(
        &self,
        req: api::ProjectCreateRequest,
    ) -> Result<api::ProjectResponse, ApiError> {
        self.0.create_project(req).await
    }

    async fn get_project(&self, project: String) -> Result<api::ProjectResponse, ApiError> {
        let p = self.0.project(&project)?;
        let root = self.0.root_branch(&p)?;
        Ok(api::ProjectResponse {
            project: self.0.api_project(&p),
            branch: Some(self.0.view(&p, &root, false)),
            endpoints: vec![self.0.endpoint(&root)],
            operations: vec![],
            connection_uris: vec![self.0.connection_uri_entry(&p, &root)],
        })
    }

    async fn delete_project(&self, project: String) -> Result<api::ProjectResponse, ApiError> {
        self.0.delete_project(&project).await
    }

    async fn list_branches(
        &self,
        project: String,
        q: api::ListQuery,
    ) -> Result<api::BranchesResponse, ApiError> {
        let e = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let p = e.project(&project)?;
            let branches = e
                .store()
                .branches(&p.id, q.include_deleted)
                .map_err(crate::engine::store_err)?;
            let wanted = q.search.as_deref().unwrap_or("");
            Ok(api::BranchesResponse {
                branches: branches
                    .iter()
                    .filter(|b| b.name.contains(wanted) || b.id.contains(wanted))
                    .map(|b| e.view(&p, b, q.sizes))
                    .collect(),
                annotations: Default::default(),
            })
        })
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
    }

    async fn create_branch(
        &self,
        project: String,
        req: api::BranchCreateRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        self.0.create_branch(&project, req).await
    }

    async fn get_branch(
        &self,
        project: String,
        branch: String,
        sizes: bool,
    ) -> Result<api::BranchResponse, ApiError> {
        let e = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let p = e.project(&project)?;
            let b = match e.branch(&p, &branch) {
                Ok(b) => b,
                Err(err) => e
                    .store()
                    .trashed_branch_by_name(&p.id, &branch)
                    .map_err(crate::engine::store_err)?
                    .ok_or(err)?,
            };
            Ok(api::BranchResponse {
                branch: e.view(&p, &b, sizes),
                ..e.branch_response(&p, &b, None)
            })
        })
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
    }

    async fn update_branch(
        &self,
        project: String,
        branch: String,
        req: api::BranchUpdateRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        self.0.update_branch(&project, &branch, req).await
    }

    async fn delete_branch(
        &self,
        project: String,
        branch: String,
        query: api::DeleteQuery,
    ) -> Result<api::BranchResponse, ApiError> {
        let reason = match query.pgfork_gc_reason.as_deref() {
            None => None,
            Some(r) => Some(pgfork_git::gc::Reason::parse(r).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "pgfork_gc_reason {r:?} is not one of gone, upstream-gone, merged, expired, grace"
                ))
            })?),
        };
        self.0
            .delete_branch(&project, &branch, query.purge, reason)
            .await
    }

    async fn restore_branch(
        &self,
        project: String,
        branch: String,
        req: api::BranchRestoreRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        if req.source_lsn.is_some() || req.source_timestamp.is_some() {
            // A moment of history: the branch's own (Neon's self-restore) or its parent's.
            let target = match (req.source_timestamp.as_deref(), req.source_lsn.as_deref()) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::bad_request(
                        "give source_timestamp or source_lsn, not both",
                    ))
                }
                (Some(t), None) => pgfork_pg::pitr::RecoveryTarget::Time(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map_err(|e| {
                            ApiError::bad_request(format!(
                                "source_timestamp {t:?} is not an RFC 3339 time ({e})"
                            ))
                        })?
                        .with_timezone(&chrono::Utc),
                ),
                (None, Some(l)) => pgfork_pg::pitr::RecoveryTarget::Lsn(l.to_string()),
                (None, None) => unreachable!("one of them is set"),
            };
            let sessions = if req.pgfork_refuse_sessions {
                crate::engine::Sessions::RefuseAfter(std::time::Duration::from_secs(
                    req.pgfork_wait_seconds.unwrap_or(0).min(3600),
                ))
            } else {
                crate::engine::Sessions::End
            };
            return self
                .0
                .restore_to_moment(
                    &project,
                    &branch,
                    req.source_branch_id.as_deref(),
                    target,
                    sessions,
                )
                .await;
        }
        if let Some(src) = req.source_branch_id {
            let p = self.0.project(&project)?;
            let b = self.0.branch(&p, &branch)?;
            let s = self.0.branch(&p, &src)?;
            if b.parent_id.as_deref() != Some(s.id.as_str()) {
                return Err(ApiError::bad_request(
                    "pgfork restores a branch from its own parent only: omit source_branch_id",
                ));
            }
        }
        let sessions = if req.pgfork_refuse_sessions {
            crate::engine::Sessions::RefuseAfter(std::time::Duration::from_secs(
                req.pgfork_wait_seconds.unwrap_or(0).min(3600),
            ))
        } else {
            crate::engine::Sessions::End
        };
        // A refusal must leave nothing behind, the preserved copy included.
        if let crate::engine::Sessions::RefuseAfter(wait) = sessions {
            let p = self.0.project(&project)?;
            let b = self.0.branch(&p, &branch)?;
            self.0.wait_for_no_sessions(&p, &b, wait).await?;
        }
        if let Some(keep) = req.preserve_under_name.clone() {
            // The state being replaced lives on as a branch of its own (a clone of the
            // branch as it is now), made before the reset starts.
            let p = self.0.project(&project)?;
            let b = self.0.branch(&p, &branch)?;
            let made = self
                .0
                .create_branch(
                    &project,
                    api::BranchCreateRequest {
                        branch: api::BranchCreate {
                            name: Some(keep.clone()),
                            parent_id: Some(b.id.clone()),
                            pgfork_rotate_passwords: Some("never".into()),
                            ..Default::default()
                        },
                        endpoints: vec![],
                    },
                )
                .await?;
            for op in made.operations {
                self.0.wait_for_operation(&op.id).await.map_err(|e| {
                    ApiError::new(
                        e.status,
                        &e.code,
                        format!(
                            "the branch was not reset: preserving it as {keep:?} failed: {}",
                            e.message
                        ),
                    )
                })?;
            }
        }
        self.0.reset_branch(&project, &branch, sessions).await
    }

    async fn create_snapshot(
        &self,
        project: String,
        branch: String,
        q: api::SnapshotCreateQuery,
    ) -> Result<api::SnapshotResponse, ApiError> {
        self.0.create_snapshot(&project, &branch, q).await
    }

    async fn list_snapshots(&self, project: String) -> Result<api::SnapshotsResponse, ApiError> {
        self.0.list_snapshots(&project)
    }

    async fn delete_snapshot(
        &self,
        project: String,
        snapshot: String,
    ) -> Result<api::OperationsResponse, ApiError> {
        self.0.delete_snapshot(&project, &snapshot).await
    }

    async fn restore_snapshot(
        &self,
        project: String,
        snapshot: String,
        req: api::SnapshotRestoreRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        self.0.restore_snapshot(&project, &snapshot, req).await
    }

    async fn refresh_root(
        &self,
        project: String,
        req: api::RootRefreshRequest,
    ) -> Result<api::RootRefreshResponse, ApiError> {
        self.0.refresh_root(&project, req).await
    }

    async fn branch_freshness(
        &self,
        project: String,
        branch: String,
    ) -> Result<api::BranchFreshness, ApiError> {
        self.0.branch_freshness(&project, &branch).await
    }

    async fn recover_branch(
        &self,
        project: String,
        branch: String,
    ) -> Result<api::BranchResponse, ApiError> {
        self.0.recover_branch(&project, &branch).await
    }

    async fn set_running(
        &self,
        project: String,
        branch: String,
        run: bool,
    ) -> Result<api::BranchResponse, ApiError> {
        self.0.set_running(&project, &branch, run).await
    }

    async fn branch_endpoints(
        &self,
        project: String,
        branch: String,
    ) -> Result<api::EndpointsResponse, ApiError> {
        self.0.branch_endpoints(&project, &branch).await
    }
    async fn project_endpoints(&self, project: String) -> Result<api::EndpointsResponse, ApiError> {
        self.0.project_endpoints(&project)
    }
    async fn get_endpoint(
        &self,
        project: String,
        endpoint: String,
    ) -> Result<api::EndpointResponse, ApiError> {
        self.0.get_endpoint(&project, &endpoint)
    }
    async fn branch_roles(
        &self,
        project: String,
        branch: String,
    ) -> Result<api::RolesResponse, ApiError> {
        self.0.branch_roles(&project, &branch).await
    }
    async fn branch_role(
        &self,
        project: String,
        branch: String,
        role: String,
    ) -> Result<api::RoleResponse, ApiError> {
        self.0.branch_role(&project, &branch, &role).await
    }
    async fn branch_databases(
        &self,
        project: String,
        branch: String,
    ) -> Result<api::DatabasesResponse, ApiError> {
        self.0.branch_databases(&project, &branch).await
    }
    async fn branch_database(
        &self,
        project: String,
        branch: String,
        database: String,
    ) -> Result<api::DatabaseResponse, ApiError> {
        self.0.branch_database(&project, &branch, &database).await
    }
    async fn branch_schema(
        &self,
        project: String,
        branch: String,
        q: api::SchemaQuery,
    ) -> Result<api::BranchSchemaResponse, ApiError> {
        self.0.branch_schema(&project, &branch, q).await
    }
    async fn compare_schema(
        &self,
        project: String,
        branch: String,
        q: api::CompareSchemaQuery,
    ) -> Result<api::BranchSchemaCompareResponse, ApiError> {
        self.0.compare_schema(&project, &branch, q).await
    }
    async fn restart(
        &self,
        project: String,
        branch: String,
    ) -> Result<api::BranchResponse, ApiError> {
        self.0.restart_branch(&project, &branch).await
    }
    async fn list_operations(&self, project: String) -> Result<api::OperationsResponse, ApiError> {
        self.0.list_operations(&project)
    }
    async fn connection_uri(
        &self,
        project: String,
        q: api::ConnectionUriQuery,
    ) -> Result<api::ConnectionUriResponse, ApiError> {
        self.0.connection_uri_for(&project, q)
    }
    async fn create_webhook(
        &self,
        project: String,
        req: api::WebhookCreate,
    ) -> Result<api::WebhookCreated, ApiError> {
        self.0.create_webhook(&project, req.ttl_seconds)
    }

    async fn webhook(
        &self,
        provider: String,
        project: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<api::WebhookOutcome, ApiError> {
        self.0
            .handle_webhook(&provider, &project, headers, &body)
            .await
    }

    async fn update_project(
        &self,
        project: String,
        req: api::ProjectUpdateRequest,
    ) -> Result<api::ProjectResponse, ApiError> {
        let p = self.0.project(&project)?;
        if let Some(name) = req.project.name.filter(|n| *n != p.name) {
            pgfork_core::validate_project_name(&name)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let id = p.id.clone();
            self.0
                .write_store(|s| s.rename_project(&id, &name))
                .map_err(|e| match e {
                    pgfork_store::StoreError::ProjectExists(n) => {
                        ApiError::conflict(format!("a project named {n:?} already exists"))
                    }
                    other => crate::engine::store_err(other),
                })?;
            tracing::info!(from = %p.name, to = %name, "project renamed");
        }
        self.get_project(p.id).await
    }

    async fn me(&self) -> Result<serde_json::Value, ApiError> {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let login = std::env::var("USER").unwrap_or_else(|_| format!("uid{uid}"));
        Ok(serde_json::json!({
            "id": self.0.owner_id(),
            "login": login,
            "name": login,
            "last_name": "",
            // Neon requires an address; `.invalid` says there is no mailbox behind it.
            "email": format!("{login}@pgfork.invalid"),
            "image": "",
            "auth_accounts": [],
            "active_seconds_limit": 0,
            "projects_limit": 0,
            "branches_limit": 0,
            "max_autoscaling_limit": 0,
            "plan": "pgfork",
        }))
    }

    async fn reveal_password(
        &self,
        project: String,
        branch: String,
        role: String,
    ) -> Result<api::RolePasswordResponse, ApiError> {
        let p = self.0.project(&project)?;
        let b = self.0.branch(&p, &branch)?;
        if role == p.role_name {
            return Ok(api::RolePasswordResponse {
                password: b.password,
            });
        }
        if role == p.superuser {
            return Err(ApiError::not_found(format!(
                "role {role:?} is the superuser, which has no password: connect as {:?}, or run `pgfork psql --superuser` on the server",
                p.role_name
            )));
        }
        let stored = self
            .0
            .store()
            .role_password(&b.id, &role)
            .map_err(crate::engine::store_err)?;
        stored
            .map(|password| api::RolePasswordResponse { password })
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "pgfork did not set a password for role {role:?} on {:?}: it logs in with the password it has in the data",
                    b.name
                ))
            })
    }

    async fn masking_rules(
        &self,
        project: String,
        branch: String,
    ) -> Result<api::MaskingRulesResponse, ApiError> {
        let p = self.0.project(&project)?;
        let b = self.0.branch(&p, &branch)?;
        let stored = self
            .0
            .store()
            .branch_masking(&b.id)
            .map_err(crate::engine::store_err)?;
        let masking_rules = match stored {
            None => Vec::new(),
            Some(json) => pgfork_mask::MaskingRules::parse(&json)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .masking_rules
                .iter()
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .collect(),
        };
        Ok(api::MaskingRulesResponse { masking_rules })
    }

    async fn masking_check(
        &self,
        project: String,
        branch: String,
        req: api::MaskingCheckRequest,
    ) -> Result<api::MaskingCheckResponse, ApiError> {
        self.0.masking_check(&project, &branch, req).await
    }

    async fn follow(&self, project: String, path: String) -> Result<api::FollowResponse, ApiError> {
        let p = self.0.project(&project)?;
        let path = work_tree(path).await?;
        let f = self.0.ensure_follow(&p.id, &path).await?;
        Ok(api::FollowResponse {
            port: f.port,
            connection_uri: format!(
                "postgresql://{}:{}@127.0.0.1:{}/{}",
                p.role_name, f.password, f.port, p.db_name
            ),
        })
    }

    async fn register_repo(&self, project: String, path: String) -> Result<(), ApiError> {
        let p = self.0.project(&project)?;
        let path = work_tree(path).await?;
        self.0
            .store()
            .add_repo(&p.id, &path)
            .map_err(crate::engine::store_err)
    }

    async fn get_operation(
        &self,
        project: String,
        operation: String,
    ) -> Result<api::OperationResponse, ApiError> {
        // A project being created is not in the store until its operation finishes, and
        // clients poll that very operation: then the path's id is the only id to match.
        let project_id = match self.0.project(&project) {
            Ok(p) => p.id,
            Err(_) => project,
        };
        self.0
            .ops
            .get(&operation)
            // Another project's operation does not exist for this one.
            .filter(|op| op.project_id == project_id)
            .map(|operation| api::OperationResponse { operation })
            .ok_or_else(|| ApiError::not_found(format!("no operation {operation:?} (operations are kept in memory until the daemon restarts)")))
    }
}

/// `path` if it is the top level of a git work tree: follow-HEAD ports and gc are for
/// work trees only (any other path would take a port for good, or make gc read it).
async fn work_tree(path: String) -> Result<std::path::PathBuf, ApiError> {
    let path = std::path::PathBuf::from(path);
    if !path.is_absolute() {
        return Err(ApiError::bad_request(
            "the repository path must be absolute",
        ));
    }
    let p = path.clone();
    let root = tokio::task::spawn_blocking(move || pgfork_git::Repo::discover(&p).map(|r| r.root))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match root {
        Ok(root) if root == path => Ok(path),
        _ => Err(ApiError::bad_request(format!(
            "{} is not the top level of a git work tree: pass the directory `git rev-parse --show-toplevel` prints",
            path.display()
        ))),
    }
}

fn check(name: &str, status: &str, detail: impl Into<String>, fix: Option<String>) -> api::Check {
    api::Check {
        name: name.to_string(),
        status: status.to_string(),
        detail: detail.into(),
        fix,
    }
}

/// What works and what does not, each with its exact fix.
pub fn doctor_checks(e: &Engine) -> Vec<api::Check> {
    let mut out = vec![check(
        "postgres",
        "ok",
        e.installs
            .installs
            .iter()
            .map(|i| format!("{} at {}", i.version, i.bin_dir.display()))
            .collect::<Vec<_>>()
            .join("; "),
        None,
    )];
    out.push(check(
        "server user",
        "ok",
        if e.user.switch {
            format!(
                "pgfork runs as root; PostgreSQL runs as {} (uid {})",
                e.user.name, e.user.uid
            )
        } else {
            format!("PostgreSQL runs as {}", e.user.name)
        },
        None,
    ));
    match e.probe.method {
        CloneMethod::Reflink => out.push(check(
            "clone method",
            "ok",
            format!(
                "reflink on {} at {}: branches are copy-on-write",
                e.probe.filesystem,
                e.layout.home.display()
            ),
            None,
        )),
        CloneMethod::Copy => out.push(check(
            "clone method",
            "warn",
            format!(
                "full copy: {} at {} has no reflinks, so every branch copies all its data",
                e.probe.filesystem,
                e.layout.home.display()
            ),
            // The action only: the problem is the line above.
            Some("put PGFORK_HOME on XFS (mkfs.xfs -m reflink=1) or btrfs, e.g. a loop image as in the README".into()),
        )),
    }
    match pgfork_cow::available_bytes(&e.layout.home) {
        Ok(free) if free < 1 << 30 => out.push(check(
            "free space",
            "warn",
            format!(
                "{} free at {}",
                crate::engine::human_bytes(free),
                e.layout.home.display()
            ),
            Some("free some space or move PGFORK_HOME: branches and imports need room".into()),
        )),
        Ok(free) => out.push(check(
            "free space",
            "ok",
            format!("{} free", crate::engine::human_bytes(free)),
            None,
        )),
        Err(err) => out.push(check("free space", "warn", err.to_string(), None)),
    }
    for (port, err) in e.unbound_ports() {
        out.push(check(
            &format!("port {port}"),
            "fail",
            format!("another process listens on port {port} ({err}): clients of the branch that owns it could reach that process instead"),
            Some(format!("find it with `ss -ltnp 'sport = :{port}'` and stop it; pgfork takes the port back within one reaper interval")),
        ));
    }
    let used = e.store().used_ports().map(|s| s.len()).unwrap_or(0);
    let total = usize::from(e.cfg.ports.last - e.cfg.ports.first) + 1;
    out.push(check(
        "ports",
        if used * 10 >= total * 9 { "warn" } else { "ok" },
        format!(
            "{used} of {total} ports in {}-{} used",
            e.cfg.ports.first, e.cfg.ports.last
        ),
        (used * 10 >= total * 9).then(|| {
            "delete unused branches or widen the range with PGFORK_PORTS=FIRST-LAST".to_string()
        }),
    ));
    let branches = e.store().all_branches().unwrap_or_default();
    for b in branches
        .iter()
        .filter(|b| b.state == pgfork_core::BranchState::Failed)
    {
        out.push(check(
            &format!("branch {}", b.name),
            "fail",
            format!(
                "its Postgres does not start; log: {}",
                e.layout.branch_log(&b.id).display()
            ),
            Some(format!(
                "read the log, then `pgfork branch start {}`",
                b.name
            )),
        ));
    }
    out
}
