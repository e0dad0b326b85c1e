//! Where things live in `PGFORK_HOME`.
//!
//! ```text
//! PGFORK_HOME/
//!   pgfork.db            metadata (SQLite, WAL), 0600: it holds branch passwords
//!   daemon.sock          the API, 0600
//!   daemon.lock          flock held by the running daemon
//!   daemon.log           the daemon's log
//!   branches/<project>/<branch-dir>/   each branch's PGDATA (0700, server user)
//!   trash/<project>/<branch-dir>.<id>/ soft-deleted branches until purged
//!   tmp/                 branches under construction; swept at daemon start
//!   logs/<branch-id>.log each branch's Postgres log
//!   run/<branch-id>/     each branch's private unix socket directory (0700)
//! ```
//!
//! Unix socket paths are limited to 107 bytes, so when `PGFORK_HOME` is deep the socket
//! directories move to `/tmp/pgfork-<hash>/` (still private, still per branch).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub home: PathBuf,
    pub db: PathBuf,
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub daemon_log: PathBuf,
    pub branches: PathBuf,
    pub trash: PathBuf,
    pub tmp: PathBuf,
    pub logs: PathBuf,
    pub run: PathBuf,
}

/// Room needed after the run directory for `/<branch-id>/.s.PGSQL.<port>`.
const SOCKET_SUFFIX_LEN: usize = 1 + 15 + 1 + 15;
const SUN_PATH_MAX: usize = 107;

fn short_hash(p: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in p.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}

impl Layout {
    pub fn new(home: &Path) -> Layout {
        let run_in_home = home.join("run");
        let run = if run_in_home.as_os_str().len() + SOCKET_SUFFIX_LEN > SUN_PATH_MAX {
            std::env::temp_dir().join(format!("pgfork-{}", short_hash(home)))
        } else {
            run_in_home
        };
        let socket_in_home = home.join("daemon.sock");
        let socket = if socket_in_home.as_os_str().len() > SUN_PATH_MAX {
            std::env::temp_dir().join(format!("pgfork-{}.sock", short_hash(home)))
        } else {
            socket_in_home
        };
        Layout {
            home: home.to_path_buf(),
            db: home.join("pgfork.db"),
            socket,
            lock: home.join("daemon.lock"),
            daemon_log: home.join("daemon.log"),
            branches: home.join("branches"),
            trash: home.join("trash"),
            tmp: home.join("tmp"),
            logs: home.join("logs"),
            run,
        }
    }

    pub fn branch_dir(&self, project: &str, dir_name: &str) -> PathBuf {
        self.branches.join(project).join(dir_name)
    }

    pub fn trash_dir(&self, project: &str, dir_name: &str, id: &str) -> PathBuf {
        self.trash.join(project).join(format!("{dir_name}.{id}"))
    }

    pub fn socket_dir(&self, branch_id: &str) -> PathBuf {
        self.run.join(branch_id)
    }

    pub fn branch_log(&self, branch_id: &str) -> PathBuf {
        self.logs.join(format!("{branch_id}.log"))
    }
}

/// A branch log and its rotated predecessor (`<id>.log.1`).
pub fn rotated_logs(log: &Path) -> [PathBuf; 2] {
    let mut old = log.as_os_str().to_owned();
    old.push(".1");
    [log.to_path_buf(), PathBuf::from(old)]
}

/// Logs grow with every start of a branch; past this size a log is rotated at the next
/// start (one predecessor is kept).
pub const MAX_BRANCH_LOG: u64 = 8 << 20;

/// Rotates `log` if it has grown past [`MAX_BRANCH_LOG`].
pub fn rotate_if_large(log: &Path) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_BRANCH_LOG) {
        let [cur, old] = rotated_logs(log);
        if let Err(e) = std::fs::rename(&cur, &old) {
            tracing::warn!(log = %cur.display(), error = %e, "could not rotate the branch log");
        }
    }
}

/// The default `PGFORK_HOME`: `$XDG_DATA_HOME/pgfork`, else `~/.local/share/pgfork`.
/// As root it is `/var/lib/pgfork`, because root's home is not traversable by the
/// unprivileged user Postgres runs as.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("PGFORK_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/pgfork");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("pgfork");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/pgfork")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_homes_keep_sockets_inside() {
        let l = Layout::new(Path::new("/home/u/.local/share/pgfork"));
        assert_eq!(l.run, PathBuf::from("/home/u/.local/share/pgfork/run"));
        assert_eq!(
            l.socket,
            PathBuf::from("/home/u/.local/share/pgfork/daemon.sock")
        );
    }

    #[test]
    fn deep_homes_move_sockets_to_tmp() {
        let deep = PathBuf::from(format!("/{}", "d".repeat(100)));
        let l = Layout::new(&deep);
        assert!(l.run.starts_with(std::env::temp_dir()), "{:?}", l.run);
        assert!(l.run.as_os_str().len() + SOCKET_SUFFIX_LEN <= SUN_PATH_MAX);
        assert_eq!(l, l.clone());
    }
}
