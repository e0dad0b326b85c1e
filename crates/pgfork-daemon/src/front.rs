//! The daemon's side of the proxy: which branch is behind a port (a branch's own, or a
//! work tree's follow-HEAD port), its password verifier, waking it on connect, and
//! suspending it when idle.

use crate::engine::Engine;
use pgfork_proxy::{Backend, BackendError, ScramVerifier, Target};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Activity {
    pub active: u32,
    pub last: Instant,
    /// The idle reaper decided to stop this branch and is stopping it: new clients
    /// must wait for the branch lock (and then start it again).
    pub stopping: bool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            active: 0,
            last: Instant::now(),
            stopping: false,
        }
    }
}

pub struct Front {
    engine: Weak<Engine>,
    /// Random per daemon run: verifiers are derived, never stored.
    salt: [u8; 16],
    verifiers: Mutex<HashMap<String, (String, Arc<ScramVerifier>)>>,
    pub activity: Mutex<HashMap<u16, Activity>>,
}

fn err(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

impl Front {
    pub fn new(engine: Weak<Engine>) -> Front {
        let mut salt = [0u8; 16];
        if getrandom::getrandom(&mut salt).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(7);
            salt.copy_from_slice(&t.to_le_bytes());
        }
        Front {
            engine,
            salt,
            verifiers: Mutex::new(HashMap::new()),
            activity: Mutex::new(HashMap::new()),
        }
    }

    fn target(engine: &Engine, b: &pgfork_store::Branch) -> Target {
        Target {
            socket: engine
                .layout
                .socket_dir(&b.id)
                .join(format!(".s.PGSQL.{}", b.port)),
            port: b.port,
        }
    }

    /// The branch behind `port`: the branch holding it, or for a follow-HEAD port the
    /// branch paired with its work tree's current HEAD (the root when none is). Reading
    /// HEAD runs git, so it happens on a blocking thread, with git's environment
    /// scrubbed and the work tree named explicitly.
    async fn branch_behind(
        engine: &Arc<Engine>,
        port: u16,
    ) -> Result<pgfork_store::Branch, BackendError> {
        let by_port = engine.store().live_branch_by_port(port).map_err(err)?;
        if let Some(b) = by_port {
            return Ok(b);
        }
        let follow = engine
            .store()
            .follow_by_port(port)
            .map_err(err)?
            .ok_or_else(|| BackendError("no branch on this port".into()))?;
        let project = engine
            .project(&follow.project_id)
            .map_err(|e| BackendError(e.message))?;
        let path = follow.repo_path.clone();
        let head = tokio::task::spawn_blocking(move || {
            pgfork_git::Repo::discover(&path).map(|r| r.current_branch())
        })
        .await
        .map_err(err)?
        .map_err(|e| {
            BackendError(format!(
                "cannot read HEAD of {}: {e}",
                follow.repo_path.display()
            ))
        })?;
        let branches = engine.store().branches(&project.id, false).map_err(err)?;
        let paired = head.and_then(|h| {
            branches
                .iter()
                .find(|b| b.git_branch.as_deref() == Some(h.as_str()))
                .cloned()
        });
        match paired {
            Some(b) => Ok(b),
            None => engine
                .root_branch(&project)
                .map_err(|e| BackendError(e.message)),
        }
    }

    /// Marks `port` as just used (a start counts: the idle clock starts again).
    pub fn touch(&self, port: u16) {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let entry = a.entry(port).or_insert_with(Activity::new);
        entry.last = Instant::now();
    }

    /// A client connection to the branch at `port` began (see `Engine::wake_for_client`).
    pub fn opened(&self, port: u16) {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let entry = a.entry(port).or_insert_with(Activity::new);
        entry.active += 1;
        entry.last = Instant::now();
    }

    /// A client of a branch that runs: counted at once, without the branch lock (a
    /// clone of the branch may hold it for minutes), unless the idle reaper is
    /// stopping it right now. The activity mutex is the arbiter between the two.
    pub fn lease_if_not_stopping(&self, port: u16) -> bool {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let entry = a.entry(port).or_insert_with(Activity::new);
        if entry.stopping {
            return false;
        }
        entry.active += 1;
        entry.last = Instant::now();
        true
    }

    /// The reaper's decision, atomic with respect to new clients: no client on `port`
    /// now and none for at least `limit`; if so, new clients wait from here on until
    /// [`Front::end_suspend`].
    pub fn begin_suspend(&self, port: u16, limit: Duration) -> bool {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let entry = a.entry(port).or_insert_with(Activity::new);
        if entry.stopping || entry.active > 0 || entry.last.elapsed() < limit {
            return false;
        }
        entry.stopping = true;
        true
    }

    pub fn end_suspend(&self, port: u16) {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = a.get_mut(&port) {
            entry.stopping = false;
        }
    }

    /// Ports with no client now, and for how long they have had none.
    pub fn idle_for(&self) -> Vec<(u16, Duration)> {
        let a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        a.iter()
            .filter(|(_, v)| v.active == 0)
            .map(|(p, v)| (*p, v.last.elapsed()))
            .collect()
    }
}

impl Backend for Front {
    async fn verifier(&self, port: u16, user: &str) -> Option<Arc<ScramVerifier>> {
        let engine = self.engine.upgrade()?;
        // Each role authenticates with its own credentials: pgfork's per-branch
        // password is the admin role's; any other role is checked against its own
        // verifier in the branch (never the admin password).
        let by_branch = engine.store().live_branch_by_port(port).ok()?;
        let behind = match &by_branch {
            Some(b) => b.clone(),
            None => Front::branch_behind(&engine, port).await.ok()?,
        };
        let admin = engine
            .project(&behind.project_id)
            .map(|p| p.role_name)
            .unwrap_or_default();
        if !user.is_empty() && user != admin {
            let secret = engine.role_secret(&behind, user).await;
            return Some(Arc::new(
                secret
                    .as_deref()
                    .and_then(ScramVerifier::from_postgres_secret)
                    .unwrap_or_else(|| ScramVerifier::unmatchable(&self.salt)),
            ));
        }
        // A follow-HEAD port has its own password: its URL must not change when the
        // branch behind it does.
        let (key, password) = match by_branch {
            Some(b) => (b.id, b.password),
            None => {
                let f = engine.store().follow_by_port(port).ok()??;
                (format!("follow:{port}"), f.password)
            }
        };
        {
            let cache = self.verifiers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((pw, v)) = cache.get(&key) {
                if *pw == password {
                    return Some(v.clone());
                }
            }
        }
        // PBKDF2 with 4096 rounds: milliseconds of CPU, on a blocking thread and
        // outside the cache lock.
        let salt = self.salt;
        let pw = password.clone();
        let v = tokio::task::spawn_blocking(move || Arc::new(ScramVerifier::new(&pw, &salt)))
            .await
            .ok()?;
        let mut cache = self.verifiers.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key, (password, v.clone()));
        Some(v)
    }

    async fn wake(&self, port: u16) -> Result<Target, BackendError> {
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| BackendError("pgfork is shutting down".into()))?;
        let b = Front::branch_behind(&engine, port).await?;
        let b = engine
            .wake_for_client(&b.id)
            .await
            .map_err(|e| BackendError(e.message))?;
        // Checked on every use: a socket directory someone else could write to could
        // hold a planted socket that receives our authenticated clients.
        if let Err(why) = pgfork_api::runtime::check_private_dir(&engine.layout.run) {
            self.closed(b.port);
            tracing::error!("refusing to relay a client: {why}");
            return Err(BackendError(format!(
                "the branch's socket directory is not safe: {why}"
            )));
        }
        Ok(Front::target(&engine, &b))
    }

    async fn cancel_target(&self, port: u16) -> Option<Target> {
        let engine = self.engine.upgrade()?;
        let b = Front::branch_behind(&engine, port).await.ok()?;
        Some(Front::target(&engine, &b))
    }

    async fn not_yet(&self, port: u16) -> Option<String> {
        let engine = self.engine.upgrade()?;
        let building = engine.building.lock().unwrap_or_else(|e| e.into_inner());
        building.get(&port).cloned()
    }

    fn closed(&self, port: u16) {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = a.get_mut(&port) {
            entry.active = entry.active.saturating_sub(1);
            entry.last = Instant::now();
        }
    }
}
