//! Names and ports promised to operations that have not committed yet. A create answers at once with
//! its id, port and URL, long before its row exists; reservations make sure no other request is
//! promised the same name or port meanwhile, without a global lock. When the port range is full,
//! the oldest trashed branch past its hold gives its port up here.

use super::*;

/// What planned-but-uncommitted operations hold, so that requests planned while
/// another operation is still building never get the same name or port.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) ports: std::collections::HashSet<u16>,
    /// (project name, branch name); the branch name is empty for a project itself.
    pub(crate) names: std::collections::HashSet<(String, String)>,
}

/// Releases a reservation when the operation ends, whichever way it ends.
pub(crate) struct Reservation {
    pub(crate) pending: Arc<Mutex<Pending>>,
    pub(crate) port: u16,
    pub(crate) name: (String, String),
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.ports.remove(&self.port);
        p.names.remove(&self.name);
    }
}

impl Engine {
    /// The lowest port of the range that no branch holds (trash included) and that no
    /// other process is bound to right now: a port taken by someone else would make the
    /// branch fail to start later with a less helpful error.
    pub(crate) fn allocate_port(&self, pending: &Pending) -> Result<u16, ApiError> {
        let mut used = self.store().used_ports().map_err(store_err)?;
        used.extend(pending.ports.iter().copied());
        loop {
            while let Some(port) = pick_port(self.cfg.ports, &used) {
                if self.hold_port(port) {
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
            self.write_store(|s| s.release_port(&t.id))
                .map_err(store_err)?;
            tracing::info!(branch = %t.name, port = t.port, "the port range is full: a trashed branch gives its port up");
            used.remove(&t.port);
        }
        Err(ApiError::new(
            // A limit the caller can act on, as Neon answers its branch limits: a 4xx.
            422,
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
    pub(crate) fn reserve(&self, project: &str, branch: &str) -> Result<Reservation, ApiError> {
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
}
