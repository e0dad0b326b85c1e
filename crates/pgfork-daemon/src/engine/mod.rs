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
    clone, import, instance, roles, sql, Instance, PgError, PgInstall, PgInstalls, ServerUser,
};
use pgfork_store::{Branch, Project, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod catalog;
mod create;
mod freshness;
mod history;
mod housekeeping;
mod instances;
mod masking;
mod pull_requests;
mod reservations;
mod reset;
mod root;
mod snapshots;
mod staged;
mod trash;
mod update;
mod views;

use reservations::Pending;
pub use reset::Sessions;
use staged::StagedDir;
pub use views::human_bytes;

/// How long a request waits for its operation before answering "running".
pub(crate) const FAST_WAIT: Duration = Duration::from_millis(1500);

pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Ports the daemon should hold but another process has: port → the bind error.
    unbound: Mutex<std::collections::BTreeMap<u16, String>>,
    pub shutdown: tokio::sync::Notify,
    /// The proxy in front of every branch, and its view of the engine; set once at
    /// daemon start.
    pub front: std::sync::OnceLock<Arc<pgfork_proxy::Proxy<crate::front::Front>>>,
    pub front_state: std::sync::OnceLock<Arc<crate::front::Front>>,
    /// Ports of branches being built, and what a client connecting there is told.
    pub(crate) building: Mutex<std::collections::HashMap<u16, String>>,
    /// Webhook bodies already carried out (replay protection).
    pub(crate) webhook_replays: Mutex<crate::webhooks::Replays>,
}

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

pub(crate) fn cow_err(e: pgfork_cow::CowError) -> ApiError {
    pg_err(PgError::Cow(e))
}

pub(crate) fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ApiError {
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

pub(crate) async fn blocking<T: Send + 'static>(
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
pub(crate) fn traversable_dir(path: &Path) -> Result<(), ApiError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).map_err(io_err("create", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711))
        .map_err(io_err("set permissions on", path))
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
            unbound: Mutex::new(std::collections::BTreeMap::new()),
            shutdown: tokio::sync::Notify::new(),
            front: std::sync::OnceLock::new(),
            front_state: std::sync::OnceLock::new(),
            webhook_replays: Mutex::new(crate::webhooks::Replays::default()),
            building: Mutex::new(std::collections::HashMap::new()),
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
        self.listen(port).await;
    }

    /// Holds `port` on the proxy. A port another process took is recorded (doctor,
    /// `branch get` and the reaper's retries see it), never silently ignored: a client
    /// would send its password to whoever listens there.
    async fn listen(&self, port: u16) {
        let Some(p) = self.front.get() else { return };
        let result = p.listen(port).await;
        let mut unbound = self.unbound.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                if unbound.remove(&port).is_some() {
                    tracing::info!(port, "the port is held again");
                }
            }
            Err(e) => {
                if unbound.insert(port, e.to_string()).is_none() {
                    tracing::error!(port, error = %e, "cannot hold the port: another process listens on it; pgfork retries every reaper interval");
                }
            }
        }
    }

    /// Binds a port that is about to be promised, and hands the socket to the proxy
    /// at once: between choosing a port and serving it, no one else may take it.
    /// `false` when another process has it.
    fn hold_port(&self, port: u16) -> bool {
        let Some(p) = self.front.get() else {
            return std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        };
        if p.holds(port) {
            // Ours already (a port the trash just gave up).
            return true;
        }
        match std::net::TcpListener::bind((p.bind_addr(), port)) {
            Ok(l) => p.adopt(port, l).is_ok(),
            Err(_) => false,
        }
    }

    /// Why a port is not held, if it is not.
    pub fn port_error(&self, port: u16) -> Option<String> {
        self.unbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .cloned()
    }

    /// Ports the daemon should hold but does not, with the reason.
    pub fn unbound_ports(&self) -> Vec<(u16, String)> {
        self.unbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, e)| (*p, e.clone()))
            .collect()
    }

    /// Every port a branch (live or in the trash), a follow-HEAD endpoint or a pending
    /// operation owns is held; others are let go. Run at start, before the daemon
    /// reports ready, and every reaper interval (which retries ports someone else held).
    pub async fn hold_all_ports(&self) {
        let Some(p) = self.front.get() else { return };
        let mut wanted: std::collections::BTreeSet<u16> = self
            .store()
            .used_ports()
            .unwrap_or_default()
            .into_iter()
            .collect();
        wanted.remove(&0);
        wanted.extend(
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ports
                .iter()
                .copied(),
        );
        for port in p.ports() {
            if !wanted.contains(&port) {
                p.close(port);
            }
        }
        self.unbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|port, _| wanted.contains(port));
        for port in wanted {
            self.listen(port).await;
        }
    }

    pub fn unexpose(&self, port: u16) {
        if let Some(p) = self.front.get() {
            p.close(port);
        }
    }

    /// A metadata write: SQLite fsyncs its WAL on every commit (synchronous=FULL, so a
    /// branch the client was told about survives a power cut), which must not stall a
    /// runtime thread that relays other clients' bytes. On the daemon's multi-thread
    /// runtime the write runs in `block_in_place`, which moves this thread's other
    /// tasks elsewhere first.
    pub fn write_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let on_multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_multi_thread {
            tokio::task::block_in_place(|| f(&mut self.store()))
        } else {
            f(&mut self.store())
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

    pub(crate) fn forget_lock(&self, id: &str) {
        self.branch_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

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
            superuser: project.superuser.clone(),
            // History is on while the branch's archive directory exists.
            archive_dir: Some(self.layout.archive_dir(&b.id)).filter(|d| d.is_dir()),
        }
    }

    pub(crate) fn install_for(&self, pgdata: &Path) -> Result<PgInstall, ApiError> {
        self.installs.for_data_dir(pgdata).cloned().map_err(pg_err)
    }

    /// Runs `work` as an operation; waits [`FAST_WAIT`] for it. `None` means it is still
    /// running and the client should poll the operation.
    pub(crate) async fn run_op<T, F, Fut>(
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
}

#[cfg(test)]
mod tests {
    use super::housekeeping::reap_due;
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
