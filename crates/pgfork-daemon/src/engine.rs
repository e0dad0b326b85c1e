//! Branch operations. Every one follows the same discipline:
//!
//! 1. Build in `tmp/` (clone or import), never in place.
//! 2. Make it durable (one `syncfs`), rename into `branches/`, fsync the directory.
//! 3. Start it, then commit the metadata row. Until that commit the branch does not
//!    exist for anyone; a crash before it leaves only leftovers that
//!    [`crate::reconcile`] sweeps at the next start.
//!
//! Locking is per branch (DESIGN §8: an operation on one branch never waits for an
//! operation on another): start, stop, wake, reset, delete, recover and update hold
//! the branch's own async mutex; a create holds its *parent's* while it decides how to
//! clone it and clones it (a parent must not start or stop mid-clone), and nothing at
//! all while it imports. Ports and names are promised up front by reservations, so
//! concurrent creates never collide. Only a reset holds two branch locks: its branch,
//! then that branch's parent while it is cloned; always child before parent, and the
//! tree has no cycle, so neither do the locks.

use crate::config::Config;
use crate::ids::{new_id, new_password};
use crate::layout::Layout;
use crate::ops::{endpoint_id, Ops};
use chrono::{DateTime, Utc};
use pgfork_api as api;
use pgfork_api::ApiError;
use pgfork_core::{
    pick_port, safe_dir_name, validate_branch_name, validate_project_name, BranchState, Progress,
};
use pgfork_cow::{CloneMethod, Probe};
use pgfork_git::gc::{Candidate, Reason};
use pgfork_pg::{
    clone, import, instance, sql, Instance, PgError, PgInstall, PgInstalls, ServerUser,
};
use pgfork_store::{Branch, Project, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a request waits for its operation before answering "running".
const FAST_WAIT: Duration = Duration::from_millis(1500);
const START_TIMEOUT: Duration = Duration::from_secs(600);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Engine {
    pub cfg: Config,
    pub layout: Layout,
    store: Mutex<Store>,
    pub installs: PgInstalls,
    pub user: ServerUser,
    pub probe: Probe,
    pub ops: Ops,
    /// One async mutex per branch id (see the module docs).
    branch_locks: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Every operation holds a read guard; shutdown takes the write guard to wait for
    /// operations in flight.
    inflight: Arc<tokio::sync::RwLock<()>>,
    /// Names and ports promised to operations that have not committed yet.
    pending: Arc<Mutex<Pending>>,
    pub started_at: DateTime<Utc>,
    pub shutdown: tokio::sync::Notify,
    /// The proxy in front of every branch, and its view of the engine; set once at
    /// daemon start.
    pub front: std::sync::OnceLock<Arc<pgfork_proxy::Proxy<crate::front::Front>>>,
    pub front_state: std::sync::OnceLock<Arc<crate::front::Front>>,
}

// ---------- error mapping: every failure becomes one sentence with a fix ----------

pub(crate) fn pg_err(e: PgError) -> ApiError {
    if e.is_no_space() {
        return ApiError::insufficient_storage(format!(
            "no space left on the store's filesystem ({e}): free some space or move PGFORK_HOME to a larger filesystem; nothing was changed"
        ));
    }
    match e {
        PgError::NoBinaries { .. }
        | PgError::BadPgBin(_)
        | PgError::MajorMissing { .. }
        | PgError::NoSuchUser(_) => ApiError::new(412, "PRECONDITION_FAILED", e.to_string()),
        PgError::Unsupported(_) | PgError::DirInUse { .. } | PgError::NotADataDir { .. } => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

pub(crate) fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::BranchExists { .. } | StoreError::ProjectExists(_) => {
            ApiError::conflict(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

pub(crate) fn is_disk_full(e: &StoreError) -> bool {
    e.is_disk_full()
}

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

fn cow_err(e: pgfork_cow::CowError) -> ApiError {
    pg_err(PgError::Cow(e))
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ApiError {
    let msg = format!("{what} {}", path.display());
    move |e| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            ApiError::insufficient_storage(format!("no space left on the store's filesystem while trying to {msg}: free some space or move PGFORK_HOME"))
        } else {
            ApiError::internal(format!("could not {msg}: {e}"))
        }
    }
}

/// Held while an operation uses a branch.
pub type BranchGuard = tokio::sync::OwnedMutexGuard<()>;

/// What planned-but-uncommitted operations hold, so that requests planned while
/// another operation is still building never get the same name or port.
#[derive(Default)]
struct Pending {
    ports: std::collections::HashSet<u16>,
    /// (project name, branch name); the branch name is empty for a project itself.
    names: std::collections::HashSet<(String, String)>,
}

/// Releases a reservation when the operation ends, whichever way it ends.
struct Reservation {
    pending: Arc<Mutex<Pending>>,
    port: u16,
    name: (String, String),
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.ports.remove(&self.port);
        p.names.remove(&self.name);
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// Removes a directory tree, tolerating its absence.
pub(crate) fn remove_tree(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove leftover directory")
        }
    }
}

/// Creates a directory the server user can traverse but not list (0711): the daemon
/// runs with umask 077, and Postgres must reach the data directories below.
fn traversable_dir(path: &Path) -> Result<(), ApiError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).map_err(io_err("create", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711))
        .map_err(io_err("set permissions on", path))
}

fn total_file_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

impl Engine {
    pub fn new(
        cfg: Config,
        layout: Layout,
        store: Store,
        installs: PgInstalls,
        user: ServerUser,
        probe: Probe,
    ) -> Engine {
        Engine {
            cfg,
            layout,
            store: Mutex::new(store),
            installs,
            user,
            probe,
            ops: Ops::default(),
            branch_locks: Mutex::new(std::collections::HashMap::new()),
            inflight: Arc::new(tokio::sync::RwLock::new(())),
            pending: Arc::new(Mutex::new(Pending::default())),
            started_at: Utc::now(),
            shutdown: tokio::sync::Notify::new(),
            front: std::sync::OnceLock::new(),
            front_state: std::sync::OnceLock::new(),
        }
    }

    /// Opens the branch's stable port on the proxy. A port another process holds is
    /// logged, not fatal: the branch still exists and `doctor` reports it.
    pub async fn expose(&self, port: u16) {
        // The idle clock of a branch starts when it becomes reachable, not at its
        // first client (it may never get one).
        if let Some(f) = self.front_state.get() {
            f.touch(port);
        }
        if let Some(p) = self.front.get() {
            if let Err(e) = p.listen(port).await {
                tracing::error!(port, error = %e, "cannot listen on the branch's port");
            }
        }
    }

    pub fn unexpose(&self, port: u16) {
        if let Some(p) = self.front.get() {
            p.close(port);
        }
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back), so a poisoned lock is safe to reuse.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Exclusive use of one branch. Callers hold [`Engine::in_flight`] already (taken
    /// once per operation: a second read of a fair RwLock could wait behind shutdown).
    pub async fn lock_branch(&self, id: &str) -> BranchGuard {
        let lock = {
            let mut locks = self.branch_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        lock.lock_owned().await
    }

    /// Held by every operation for its whole run, so shutdown can wait for them.
    pub async fn in_flight(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.inflight.clone().read_owned().await
    }

    /// Waits until no operation is in flight, and keeps new ones out (shutdown).
    pub async fn quiesce(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.inflight.clone().write_owned().await
    }

    fn forget_lock(&self, id: &str) {
        self.branch_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    // ---------- lookups ----------

    pub fn project(&self, reference: &str) -> Result<Project, ApiError> {
        self.store()
            .project(reference)
            .map_err(store_err)?
            .ok_or_else(|| ApiError::not_found(format!("no project {reference:?}: run `pgfork init` in your repository first, or pass --project")))
    }

    /// A live branch by id or name.
    pub fn branch(&self, project: &Project, reference: &str) -> Result<Branch, ApiError> {
        let store = self.store();
        if let Some(b) = store.branch(reference).map_err(store_err)? {
            if b.project_id == project.id && b.state.is_live() {
                return Ok(b);
            }
        }
        store
            .live_branch_by_name(&project.id, reference)
            .map_err(store_err)?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no branch {reference:?} in project {:?}: see `pgfork branch list`",
                    project.name
                ))
            })
    }

    /// `b` as it is now (after waiting for its lock): another operation may have
    /// changed or purged it meanwhile.
    pub(crate) fn reread(&self, b: &Branch) -> Result<Branch, ApiError> {
        self.store()
            .branch(&b.id)
            .map_err(store_err)?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "branch {:?} was purged meanwhile: see `pgfork branch list`",
                    b.name
                ))
            })
    }

    pub fn root_branch(&self, project: &Project) -> Result<Branch, ApiError> {
        self.store()
            .branches(&project.id, false)
            .map_err(store_err)?
            .into_iter()
            .find(|b| b.parent_id.is_none())
            .ok_or_else(|| {
                ApiError::internal(format!("project {:?} has no root branch", project.name))
            })
    }

    pub fn instance(&self, project: &Project, b: &Branch) -> Instance {
        Instance {
            pgdata: b.data_dir.clone(),
            socket_dir: self.layout.socket_dir(&b.id),
            port: b.port,
            log_file: self.layout.branch_log(&b.id),
            superuser: project.role_name.clone(),
        }
    }

    fn install_for(&self, pgdata: &Path) -> Result<PgInstall, ApiError> {
        self.installs.for_data_dir(pgdata).cloned().map_err(pg_err)
    }

    pub fn connection_uri(&self, project: &Project, b: &Branch) -> String {
        format!(
            "postgresql://{}:{}@127.0.0.1:{}/{}",
            project.role_name, b.password, b.port, project.db_name
        )
    }

    /// The API view of a branch. `sizes` walks its files (FIEMAP), so it is opt-in.
    pub fn view(&self, project: &Project, b: &Branch, sizes: bool) -> api::Branch {
        let (logical, unique) = if sizes {
            match pgfork_cow::usage(&b.data_dir) {
                Ok(u) => (Some(u.logical_bytes), Some(u.unique_bytes)),
                Err(e) => {
                    tracing::warn!(branch = %b.name, error = %e, "could not measure branch size");
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        let parent_name = b
            .parent_id
            .as_deref()
            .and_then(|p| self.store().branch(p).ok().flatten())
            .map(|p| p.name);
        api::Branch {
            id: b.id.clone(),
            project_id: b.project_id.clone(),
            parent_id: b.parent_id.clone(),
            parent_lsn: b.parent_lsn.clone(),
            name: b.name.clone(),
            current_state: match b.state {
                BranchState::Creating => "init",
                _ => "ready",
            }
            .to_string(),
            created_at: b.created_at,
            updated_at: b.updated_at,
            expires_at: b.expires_at,
            protected: b.protected,
            default: b.parent_id.is_none(),
            logical_size: logical,
            parent_name,
            state: b.state.to_string(),
            port: b.port,
            git_branch: b.git_branch.clone(),
            logical_bytes: logical,
            unique_bytes: unique,
            clone_method: b.clone_method.clone(),
            data_dir: b.data_dir.display().to_string(),
            masked: b.masked,
            after_create: b.after_create.clone(),
            suspend_timeout_seconds: b.suspend_timeout_seconds,
            deleted_at: b.deleted_at,
            purge_at: b
                .deleted_at
                .map(|d| pgfork_core::expires_at_from_ttl(d, self.cfg.grace)),
            pgfork_trash_reason: if b.state.is_live() {
                None
            } else {
                self.store().trash_reason(&b.id).ok().flatten()
            },
            pgfork_gc_spared: self.store().spared(&b.id).unwrap_or_default(),
            connection_uri: self.connection_uri(project, b),
        }
    }

    pub fn endpoint(&self, b: &Branch) -> api::Endpoint {
        api::Endpoint {
            id: endpoint_id(&b.id),
            project_id: b.project_id.clone(),
            branch_id: b.id.clone(),
            host: "127.0.0.1".to_string(),
            port: b.port,
            kind: "read_write".to_string(),
            suspend_timeout_seconds: b.suspend_timeout_seconds,
            current_state: if b.state == BranchState::Running {
                "active"
            } else {
                "idle"
            }
            .to_string(),
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }

    pub fn api_project(&self, p: &Project) -> api::Project {
        api::Project {
            id: p.id.clone(),
            name: p.name.clone(),
            pg_version: p.pg_major,
            created_at: p.created_at,
            database_name: p.db_name.clone(),
            role_name: p.role_name.clone(),
        }
    }

    /// Runs `work` as an operation; waits [`FAST_WAIT`] for it. `None` means it is still
    /// running and the client should poll the operation.
    async fn run_op<T, F, Fut>(
        self: &Arc<Self>,
        project_id: &str,
        branch_id: Option<&str>,
        action: &str,
        work: F,
    ) -> (String, Option<Result<T, ApiError>>)
    where
        T: Send + 'static,
        F: FnOnce(String, Arc<Progress>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let (op_id, progress) = self.ops.begin(project_id, branch_id, action);
        let fut = work(op_id.clone(), progress);
        let this = self.clone();
        let id = op_id.clone();
        let handle = tokio::spawn(async move {
            let r = fut.await;
            this.ops.finish(&id, r.as_ref().map(|_| ()));
            if let Err(e) = &r {
                tracing::warn!(op = %id, error = %e, "operation failed");
            }
            r
        });
        match tokio::time::timeout(FAST_WAIT, handle).await {
            Ok(Ok(r)) => (op_id, Some(r)),
            Ok(Err(e)) => (
                op_id,
                Some(Err(ApiError::internal(format!(
                    "operation task failed: {e}"
                )))),
            ),
            Err(_) => (op_id, None),
        }
    }

    fn op_list(&self, op_id: &str) -> Vec<api::Operation> {
        self.ops.get(op_id).into_iter().collect()
    }

    fn branch_response(
        &self,
        project: &Project,
        b: &Branch,
        op_id: Option<&str>,
    ) -> api::BranchResponse {
        api::BranchResponse {
            branch: self.view(project, b, false),
            endpoints: vec![self.endpoint(b)],
            operations: op_id.map(|id| self.op_list(id)).unwrap_or_default(),
        }
    }

    /// The lowest port of the range that no branch holds (trash included) and that no
    /// other process is bound to right now: a port taken by someone else would make the
    /// branch fail to start later with a less helpful error.
    fn allocate_port(&self, pending: &Pending) -> Result<u16, ApiError> {
        let mut used = self.store().used_ports().map_err(store_err)?;
        used.extend(pending.ports.iter().copied());
        loop {
            while let Some(port) = pick_port(self.cfg.ports, &used) {
                if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                    return Ok(port);
                }
                used.insert(port);
            }
            // The range is full. The trash keeps ports so that a recovered branch gets
            // its URL back, but not at the price of new branches: the oldest trashed
            // branch past its hold gives its port up (recover then picks a new one).
            let hold = chrono::Duration::from_std(self.cfg.trash_port_hold)
                .unwrap_or(chrono::Duration::MAX);
            let cutoff = Utc::now()
                .checked_sub_signed(hold)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            let oldest = self
                .store()
                .oldest_trashed_with_port(cutoff)
                .map_err(store_err)?;
            let Some(t) = oldest.filter(|t| !pending.ports.contains(&t.port)) else {
                break;
            };
            self.store().release_port(&t.id).map_err(store_err)?;
            tracing::info!(branch = %t.name, port = t.port, "the port range is full: a trashed branch gives its port up");
            used.remove(&t.port);
        }
        Err(ApiError::new(
            503,
            "NO_PORTS",
            format!(
                "all ports of {}-{} are taken by live branches and by branches deleted less than {} ago: purge the trash (`pgfork trash empty`), delete branches, or widen the range with PGFORK_PORTS=FIRST-LAST",
                self.cfg.ports.first,
                self.cfg.ports.last,
                humantime::format_duration(self.cfg.trash_port_hold)
            ),
        ))
    }

    /// Reserves a port and a (project, branch) name for an operation about to be
    /// planned; fails at once if the name is taken or promised.
    fn reserve(&self, project: &str, branch: &str) -> Result<Reservation, ApiError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = (project.to_string(), branch.to_string());
        if pending.names.contains(&key) {
            return Err(ApiError::conflict(if branch.is_empty() {
                format!("a project named {project:?} is being created right now")
            } else {
                format!(
                    "a branch named {branch:?} is being created in project {project:?} right now"
                )
            }));
        }
        let port = self.allocate_port(&pending)?;
        pending.ports.insert(port);
        pending.names.insert(key.clone());
        Ok(Reservation {
            pending: self.pending.clone(),
            port,
            name: key,
        })
    }

    // ---------- starting and stopping ----------

    /// Starts a branch's Postgres (if not running) and makes sure its password is set.
    async fn start_instance(
        &self,
        project: &Project,
        b: &Branch,
        set_password: bool,
    ) -> Result<(), ApiError> {
        let inst = self.instance(project, b);
        let install = self.install_for(&b.data_dir)?;
        let user = self.user.clone();
        let inst2 = inst.clone();
        blocking(move || {
            if !inst2.is_running() {
                crate::layout::rotate_if_large(&inst2.log_file);
            }
            inst2
                .start(&install, &user, &[], START_TIMEOUT)
                .map(|_| ())
                .map_err(pg_err)
        })
        .await?;
        if set_password {
            let client = sql::connect(&inst, "postgres").await.map_err(pg_err)?;
            sql::set_password(&client, &project.role_name, &b.password)
                .await
                .map_err(pg_err)?;
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

    // ---------- projects ----------

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
                        .build_project(p2, r2, spec.pg_version, source, progress)
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
            connection_uris: vec![api::ConnectionUri {
                connection_uri: self.connection_uri(&project, &root),
            }],
        })
    }

    fn ensure_no_project(&self, name: &str) -> Result<(), ApiError> {
        if self.store().project(name).map_err(store_err)?.is_some() {
            return Err(ApiError::conflict(format!(
                "a project named {name:?} already exists: pick another name with --project"
            )));
        }
        Ok(())
    }

    /// The project and root branch rows a create will commit, decided up front.
    fn plan_project(&self, name: &str, root_name: &str, port: u16) -> (Project, Branch) {
        let now = Utc::now();
        let home_dir = self
            .layout
            .branch_dir(&safe_dir_name(name), &safe_dir_name(root_name));
        let project = Project {
            id: new_id("prj"),
            name: name.to_string(),
            pg_major: 0,
            db_name: "postgres".to_string(),
            role_name: "postgres".to_string(),
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

    async fn build_project(
        self: &Arc<Self>,
        mut project: Project,
        mut root: Branch,
        pg_version: Option<u32>,
        source: api::RootSource,
        progress: Arc<Progress>,
    ) -> Result<(Project, Branch), ApiError> {
        // Again under the lock: another request may have won the name meanwhile.
        self.ensure_no_project(&project.name)?;
        let (branch_id, port) = (root.id.clone(), root.port);
        let tmp = self.layout.tmp.join(&branch_id);
        let tmp_pgdata = tmp.join("pgdata");
        let mut build_inst = Instance {
            pgdata: tmp_pgdata.clone(),
            socket_dir: self.layout.socket_dir(&branch_id),
            port,
            log_file: self.layout.branch_log(&branch_id),
            superuser: "postgres".to_string(),
        };
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
            .await;
        let result = match result {
            Ok(()) => {
                self.commit_new_branch(&project, &mut root, &tmp_pgdata, Some(&project))
                    .await
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            // An import may have left its build Postgres running in tmp/.
            let _ = self.stop_instance(build_inst.clone()).await;
        }
        remove_tree(&tmp);
        result?;
        tracing::info!(project = %project.name, branch = %root.name, "project created");
        Ok((project, root))
    }

    /// Fills `tmp/pgdata` from the root source; leaves the build instance stopped.
    #[allow(clippy::too_many_arguments)]
    async fn import_root(
        &self,
        project: &mut Project,
        root: &mut Branch,
        inst: &mut Instance,
        pg_version: Option<u32>,
        source: &api::RootSource,
        tmp: &Path,
        progress: &Arc<Progress>,
    ) -> Result<(), ApiError> {
        std::fs::create_dir_all(tmp).map_err(io_err("create", tmp))?;
        self.user.chown(tmp).map_err(pg_err)?;
        let install = match pg_version {
            Some(v) => self.installs.for_major(v).map_err(pg_err)?.clone(),
            None => self.installs.newest().clone(),
        };
        let user = self.user.clone();
        let pgdata = inst.pgdata.clone();
        let install_used: PgInstall = match source {
            api::RootSource::Empty
            | api::RootSource::Sample { .. }
            | api::RootSource::Logical { .. } => {
                progress.phase("initdb", 0);
                let (i, u, d) = (install.clone(), user.clone(), pgdata.clone());
                blocking(move || instance::initdb(&i, &u, &d, "postgres").map_err(pg_err)).await?;
                root.clone_method = "initdb".into();
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
        project.role_name = inst.superuser.clone();
        self.start_build(inst, &install_used).await?;
        match source {
            api::RootSource::Sample { scale } => {
                let (i, u, b, p, scale) = (
                    install_used.clone(),
                    user.clone(),
                    inst.clone(),
                    progress.clone(),
                    *scale,
                );
                blocking(move || {
                    import::sample(&i, &u, &b, "postgres", scale, Some(&p)).map_err(pg_err)
                })
                .await?;
            }
            api::RootSource::Logical { url } => {
                let (i, u, url2) = (install_used.clone(), user.clone(), url.clone());
                let info =
                    blocking(move || import::source_info(&i, &u, &url2).map_err(pg_err)).await?;
                let dump = tmp.join("dump");
                let jobs = std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(2)
                    .clamp(2, 8);
                let (i, u, url2, d, p) = (
                    install_used.clone(),
                    user.clone(),
                    url.clone(),
                    dump.clone(),
                    progress.clone(),
                );
                blocking(move || {
                    import::logical_dump(&i, &u, &url2, &d, jobs, Some(&p)).map_err(pg_err)
                })
                .await?;
                import::create_database(inst, &info.dbname)
                    .await
                    .map_err(pg_err)?;
                let (i, u, b, d, p, db) = (
                    install_used.clone(),
                    user.clone(),
                    inst.clone(),
                    dump.clone(),
                    progress.clone(),
                    info.dbname.clone(),
                );
                blocking(move || {
                    import::logical_restore(&i, &u, &b, &db, &d, jobs, Some(&p)).map_err(pg_err)
                })
                .await?;
                remove_tree(&dump);
                project.db_name = info.dbname;
            }
            _ => {}
        }
        progress.phase("finishing", 0);
        self.stop_instance(inst.clone()).await?;
        Ok(())
    }

    async fn start_build(&self, inst: &Instance, install: &PgInstall) -> Result<(), ApiError> {
        let (i, u, b) = (install.clone(), self.user.clone(), inst.clone());
        blocking(move || {
            b.start(&i, &u, &[], START_TIMEOUT)
                .map(|_| ())
                .map_err(pg_err)
        })
        .await
    }

    /// Reflink when `src` is on the same reflink-capable filesystem as the store.
    fn clone_method_between(&self, src: &Path) -> CloneMethod {
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
    async fn commit_new_branch(
        &self,
        project: &Project,
        b: &mut Branch,
        built: &Path,
        new_project: Option<&Project>,
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
            let mut store = self.store();
            match new_project {
                Some(p) => store.insert_project_with_root(p, b).map_err(store_err),
                None => store.insert_branch(b, &project.name).map_err(store_err),
            }
        }
        .await;
        if let Err(e) = committed {
            // We renamed it into place, so it is ours to take away again.
            let _ = self.stop_instance(self.instance(project, b)).await;
            remove_tree(&b.home_dir);
            return Err(e);
        }
        self.expose(b.port).await;
        Ok(())
    }

    // ---------- branches ----------

    pub async fn create_branch(
        self: &Arc<Self>,
        project_ref: &str,
        req: api::BranchCreateRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let spec = req.branch;
        let name = spec
            .name
            .clone()
            .ok_or_else(|| ApiError::bad_request("a branch needs a name"))?;
        validate_branch_name(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let parent = match &spec.parent_id {
            Some(p) => self.branch(&project, p).map_err(|e| {
                ApiError::not_found(format!(
                    "parent {}",
                    e.message.trim_start_matches("no branch ")
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
        if let Some(t) = spec.expires_at {
            if t <= Utc::now() {
                return Err(ApiError::bad_request(
                    "expires_at is in the past: give a future time or a --ttl",
                ));
            }
        }
        let reservation = self.reserve(&project.name, &name)?;
        let planned = self.plan_branch(&project, name, &parent, spec, reservation.port);
        let this = self.clone();
        let (p2, b2) = (project.clone(), planned.clone());
        let (op_id, result) = self
            .run_op(
                &project.id,
                Some(&planned.id),
                "create_branch",
                move |op_id, progress| async move {
                    let _op = this.in_flight().await;
                    let r = this.build_branch(&p2, b2, op_id, progress).await;
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
    fn plan_branch(
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
            masked: false,
            deleted_at: None,
            parent_lsn: None,
            after_create: None,
            suspend_timeout_seconds: spec.suspend_timeout_seconds.unwrap_or(0),
        }
    }

    async fn build_branch(
        &self,
        project: &Project,
        mut b: Branch,
        op_id: String,
        progress: Arc<Progress>,
    ) -> Result<Branch, ApiError> {
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
        let tmp = self.layout.tmp.join(&id);
        let built = tmp.join("pgdata");
        let result = async {
            let lsn = {
                // The parent must not start or stop while it is being cloned.
                let _parent = self.lock_branch(&parent.id).await;
                let parent = self.branch(project, &parent.id)?;
                self.clone_parent_into(project, &parent, &tmp, &built, &op_id, &progress, &id)
                    .await?
            };
            b.parent_lsn = lsn;
            self.commit_new_branch(project, &mut b, &built, None).await
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(branch = %b.name, error = %e, "branch creation failed; cleaned up");
        }
        remove_tree(&tmp);
        result?;
        tracing::info!(branch = %b.name, parent = %parent.name, method = %b.clone_method, "branch created");
        Ok(b)
    }

    /// Clones `parent` into `built` (inside `tmp`), online when it runs. Returns the
    /// parent LSN for online clones.
    #[allow(clippy::too_many_arguments)]
    async fn clone_parent_into(
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

    pub async fn reset_branch(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let b = self.branch(&project, branch_ref)?;
        let parent_id = b.parent_id.clone().ok_or_else(|| {
            ApiError::bad_request(format!(
                "{:?} is the root branch: it has no parent to reset from",
                b.name
            ))
        })?;
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

    async fn do_reset(
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
        let tmp = self.layout.tmp.join(format!("{}-reset", b.id));
        let built = tmp.join("pgdata");
        let old = tmp.join("old");
        let label = format!("{}-reset", b.id);
        let lsn = match self
            .clone_parent_into(project, &parent, &tmp, &built, &op_id, &progress, &label)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                remove_tree(&tmp);
                return Err(e);
            }
        };
        drop(_parent);
        crate::failpoints::crash("reset-after-clone");
        let was_running =
            self.instance(project, &b).is_running() || b.state == BranchState::Running;
        let swap = {
            let (home, built2, old2) = (b.data_dir.clone(), built.clone(), old.clone());
            let inst = self.instance(project, &b);
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
            remove_tree(&tmp);
            if was_running {
                let _ = self.start_instance(project, &b, false).await;
            }
            return Err(e);
        }
        crate::failpoints::crash("reset-after-swap");
        // The reset data carries the parent's password; put the branch's back.
        if let Err(e) = self.start_instance(project, &b, true).await {
            tracing::error!(branch = %b.name, error = %e, "reset branch did not start; restoring the previous data");
            let _ = self.stop_instance(self.instance(project, &b)).await;
            let home = b.data_dir.clone();
            let _ = std::fs::rename(&home, tmp.join("failed"));
            let _ = std::fs::rename(&old, &home);
            if was_running {
                let _ = self.start_instance(project, &b, false).await;
            }
            remove_tree(&tmp);
            return Err(e);
        }
        remove_tree(&tmp);
        b.parent_lsn = lsn;
        b.state = BranchState::Running;
        b.updated_at = Utc::now();
        self.store().update_branch(&b).map_err(store_err)?;
        Ok(b)
    }

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
        self.unexpose(b.port);
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

    async fn purge_stopped(&self, b: &mut Branch) -> Result<(), ApiError> {
        let dir = b.data_dir.clone();
        // Rename first: a crash from here on leaves `tmp/purge-<id>`, which the next
        // start takes as the purge it was and completes.
        let doomed = self.layout.tmp.join(format!("purge-{}", b.id));
        let moved = dir.exists();
        if moved {
            std::fs::rename(&dir, &doomed).map_err(io_err("remove", &dir))?;
        }
        crate::failpoints::crash("purge-after-move");
        let purged = self.store().purge_branch(&b.id);
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
            self.store().purge_branch(&b.id).map_err(|e| {
                ApiError::insufficient_storage(format!(
                    "the data of {:?} is removed but its metadata could not be written ({e}): free some space; the next daemon start completes the purge",
                    b.name
                ))
            })?;
        }
        self.forget_lock(&b.id);
        let (log, run) = (self.layout.branch_log(&b.id), self.layout.socket_dir(&b.id));
        blocking(move || {
            remove_tree(&doomed);
            remove_tree(&run);
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

    async fn trash_stopped(
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
        let written = self.store().update_branch(&trashed);
        let written = written.and_then(|()| {
            let store = self.store();
            store.set_trash_reason(&b.id, reason.map(|r| r.as_str()))
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

    async fn recover_locked(
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
        let written = self.store().update_branch(&recovered);
        let written = written.and_then(|()| {
            let store = self.store();
            store.spare_trash_reason(&b.id)
        });
        drop(reservation);
        if let Err(e) = written {
            let _ = std::fs::rename(&recovered.data_dir, &b.data_dir);
            return Err(store_err(e));
        }
        *b = recovered;
        self.start_instance(project, b, false).await?;
        b.state = BranchState::Running;
        self.store()
            .set_state(&b.id, b.state, Utc::now())
            .map_err(store_err)?;
        self.expose(b.port).await;
        tracing::info!(branch = %b.name, "recovered from the trash");
        Ok(())
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
            self.stop_instance(self.instance(project, b)).await?;
            b.state = BranchState::Suspended;
        }
        b.updated_at = Utc::now();
        self.store()
            .set_state(&b.id, b.state, b.updated_at)
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
    async fn suspend_if_idle(&self, branch_id: &str, limit: Duration) {
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

    pub async fn update_branch(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        req: api::BranchUpdateRequest,
    ) -> Result<api::BranchResponse, ApiError> {
        let project = self.project(project_ref)?;
        let _op = self.in_flight().await;
        let found = self.branch(&project, branch_ref)?;
        let _branch = self.lock_branch(&found.id).await;
        let mut b = self.reread(&found)?;
        let u = req.branch;
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
        if let Some(a) = u.after_create {
            if !matches!(a.as_str(), "ok" | "failed") {
                return Err(ApiError::bad_request("after_create is `ok` or `failed`"));
            }
            b.after_create = Some(a);
        }
        if let Some(exp) = u.expires_at {
            if let Some(t) = exp {
                if t <= Utc::now() {
                    return Err(ApiError::bad_request(
                        "expires_at is in the past: give a future time or a duration",
                    ));
                }
            }
            b.expires_at = exp;
        }
        b.updated_at = Utc::now();
        crate::failpoints::crash("update-before-write");
        self.store().update_branch(&b).map_err(store_err)?;
        Ok(self.branch_response(&project, &b, None))
    }

    pub async fn delete_project(
        self: &Arc<Self>,
        project_ref: &str,
    ) -> Result<api::ProjectResponse, ApiError> {
        let project = self.project(project_ref)?;
        let _op = self.in_flight().await;
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
        remove_tree(&self.layout.branches.join(safe_dir_name(&project.name)));
        remove_tree(&self.layout.trash.join(safe_dir_name(&project.name)));
        Ok(api::ProjectResponse {
            project: self.api_project(&project),
            branch: None,
            endpoints: vec![],
            operations: vec![],
            connection_uris: vec![],
        })
    }

    /// Trash past its grace period is purged; live branches past their TTL are trashed
    /// (never the root or protected ones).
    pub async fn reap(&self, now: DateTime<Utc>) {
        let branches = self.store().all_branches().unwrap_or_default();
        for b in branches {
            if reap_due(&b, now, self.cfg.grace).is_none() {
                continue;
            }
            let Ok(Some(project)) = self.store().project(&b.project_id) else {
                continue;
            };
            let _op = self.in_flight().await;
            let _branch = self.lock_branch(&b.id).await;
            // Re-read under the lock: the branch may have been recovered, protected or
            // given a new TTL while we waited.
            let Ok(Some(mut b)) = self.store().branch(&b.id) else {
                continue;
            };
            let Some(purge) = reap_due(&b, now, self.cfg.grace) else {
                continue;
            };
            let what = if purge {
                "purging trash past its grace period"
            } else {
                "TTL expired: moving to trash"
            };
            tracing::info!(branch = %b.name, "{what}");
            let reason = if purge {
                Reason::Grace
            } else {
                Reason::Expired
            };
            if let Err(e) = self
                .trash_or_purge(&project, &mut b, purge, Some(reason))
                .await
            {
                tracing::warn!(branch = %b.name, error = %e, "reaper could not remove branch");
            }
        }
    }

    /// The same gc as `pgfork gc`, for every registered work tree: branches whose git
    /// branch was deleted, merged or pruned go to the trash without anyone running a
    /// command. A work tree git cannot read (moved, deleted, owned by another user) is
    /// skipped, never taken as "every branch is gone".
    pub async fn reconcile_git(&self) {
        let projects = self.store().projects().unwrap_or_default();
        for project in projects {
            let repos = self.store().repos(&project.id).unwrap_or_default();
            let Some(repo) = tokio::task::spawn_blocking(move || {
                repos
                    .iter()
                    .find_map(|p| pgfork_git::Repo::discover(p).ok().filter(|r| &r.root == p))
            })
            .await
            .ok()
            .flatten() else {
                continue;
            };
            let branches = self.store().branches(&project.id, true).unwrap_or_default();
            let candidates: Vec<Candidate> =
                branches.iter().map(|b| self.gc_candidate(b)).collect();
            let plan = match plan_blocking(&repo, candidates).await {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!(project = %project.name, repo = %repo.root.display(), error = %e, "git gc skipped this repository: git could not answer");
                    continue;
                }
            };
            for action in plan {
                let _op = self.in_flight().await;
                let _branch = self.lock_branch(&action.id).await;
                // Decide again under the lock, from git as it is now: the user may
                // have recovered the branch or checked it out meanwhile.
                let Ok(Some(mut b)) = self.store().branch(&action.id) else {
                    continue;
                };
                let again = plan_blocking(&repo, vec![self.gc_candidate(&b)]).await;
                let still = again
                    .ok()
                    .and_then(|p| p.into_iter().next())
                    .is_some_and(|a| a.action == action.action && a.reason == action.reason);
                if !still {
                    continue;
                }
                tracing::info!(branch = %b.name, reason = %action.detail, "git gc: {}", action.action);
                if let Err(e) = self
                    .trash_or_purge(
                        &project,
                        &mut b,
                        action.action == "purge",
                        Some(action.reason),
                    )
                    .await
                {
                    tracing::warn!(branch = %b.name, error = %e, "git gc could not remove branch");
                }
            }
        }
    }

    /// What gc needs to know about `b` (shared by the daemon and `pgfork gc`).
    pub(crate) fn gc_candidate(&self, b: &Branch) -> Candidate {
        let spared = self
            .store()
            .spared(&b.id)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| Reason::parse(r))
            .collect();
        Candidate {
            id: b.id.clone(),
            name: b.name.clone(),
            live: b.state.is_live(),
            root: b.parent_id.is_none(),
            protected: b.protected,
            git_branch: b.git_branch.clone(),
            expires_at: b.expires_at.map(|t| t.timestamp()),
            purge_at: b
                .deleted_at
                .map(|d| pgfork_core::expires_at_from_ttl(d, self.cfg.grace).timestamp()),
            spared,
        }
    }

    /// The follow-HEAD endpoint of a work tree, made on first request: a stable port
    /// and password whose connections go to the database of the tree's current HEAD.
    pub async fn ensure_follow(
        &self,
        project_ref: &str,
        repo_path: &Path,
    ) -> Result<pgfork_store::Follow, ApiError> {
        let project = self.project(project_ref)?;
        let existing = self
            .store()
            .follow_for(&project.id, repo_path)
            .map_err(store_err)?;
        if let Some(f) = existing {
            self.expose(f.port).await;
            return Ok(f);
        }
        let reservation =
            self.reserve(&project.name, &format!("follow:{}", repo_path.display()))?;
        let f = pgfork_store::Follow {
            project_id: project.id.clone(),
            repo_path: repo_path.to_path_buf(),
            port: reservation.port,
            password: new_password(),
        };
        self.store().insert_follow(&f).map_err(store_err)?;
        drop(reservation);
        self.expose(f.port).await;
        Ok(f)
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
                let _ = self
                    .store()
                    .set_state(&b.id, BranchState::Suspended, Utc::now());
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
}

/// What the reaper owes a branch now: `Some(true)` purge (trash past its grace),
/// `Some(false)` trash (TTL expired; never the root or a protected branch), `None`.
fn reap_due(b: &Branch, now: DateTime<Utc>, grace: Duration) -> Option<bool> {
    if !b.state.is_live() {
        let past_grace = b
            .deleted_at
            .is_some_and(|d| pgfork_core::expires_at_from_ttl(d, grace) <= now);
        return past_grace.then_some(true);
    }
    let expired = b.expires_at.is_some_and(|t| t <= now) && !b.protected && b.parent_id.is_some();
    expired.then_some(false)
}

/// gc's plan for `repo`, with git run on a blocking thread.
async fn plan_blocking(
    repo: &pgfork_git::Repo,
    candidates: Vec<Candidate>,
) -> Result<Vec<pgfork_git::gc::Action>, pgfork_git::GitError> {
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || {
        let view = pgfork_git::gc::RepoView::new(&repo)?;
        pgfork_git::gc::plan(&candidates, &view, Utc::now().timestamp())
    })
    .await
    .map_err(|e| pgfork_git::GitError::NoGit(format!("git worker failed: {e}")))?
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn branch(state: BranchState) -> Branch {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        Branch {
            id: "br-x".into(),
            project_id: "prj".into(),
            name: "x".into(),
            parent_id: Some("br-root".into()),
            state,
            port: 1,
            password: String::new(),
            data_dir: PathBuf::new(),
            home_dir: PathBuf::new(),
            clone_method: "copy".into(),
            created_at: t,
            updated_at: t,
            expires_at: None,
            protected: false,
            git_branch: None,
            masked: false,
            deleted_at: None,
            parent_lsn: None,
            after_create: None,
            suspend_timeout_seconds: 0,
        }
    }

    #[test]
    fn the_reaper_trashes_expired_and_purges_past_grace_only() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
            .single()
            .expect("valid");
        let grace = Duration::from_secs(3600);
        let mut b = branch(BranchState::Running);
        assert_eq!(reap_due(&b, t0, grace), None, "no TTL");
        b.expires_at = Some(t0 - chrono::Duration::seconds(1));
        assert_eq!(reap_due(&b, t0, grace), Some(false), "expired: trash");
        b.protected = true;
        assert_eq!(reap_due(&b, t0, grace), None, "protected branches stay");
        b.protected = false;
        b.parent_id = None;
        assert_eq!(reap_due(&b, t0, grace), None, "the root stays");
        let mut d = branch(BranchState::Deleted);
        d.deleted_at = Some(t0 - chrono::Duration::minutes(30));
        assert_eq!(reap_due(&d, t0, grace), None, "within grace");
        d.deleted_at = Some(t0 - chrono::Duration::minutes(61));
        assert_eq!(reap_due(&d, t0, grace), Some(true), "past grace: purge");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
