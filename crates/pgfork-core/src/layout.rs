//! Where things live in a store (`PGFORK_HOME`): one map shared by the daemon, which
//! owns the store, and the CLI, which needs the socket, the lock and the log. Pure: the
//! caller reads the environment and passes it in.
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
//! Unix socket paths are limited to 107 bytes, so when `PGFORK_HOME` is deep the sockets
//! move to a private runtime directory: `$XDG_RUNTIME_DIR/pgfork-<random>` or a freshly
//! made `/tmp/pgfork-<random>` (0711, ours, checked on every use; see
//! `pgfork_api::runtime`), recorded in `PGFORK_HOME/runtime-dir`. Never a name another
//! user could compute and create first.

use std::ffi::OsString;
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
    /// Snapshots: stopped clones of branches, never started (a backup with its label).
    pub snapshots: PathBuf,
    /// Per-branch WAL archives (a branch has history when its directory exists).
    pub history: PathBuf,
    pub tmp: PathBuf,
    pub logs: PathBuf,
    pub run: PathBuf,
}

/// A branch's directory under `run/`: at most 15 characters whatever the id's shape, as
/// socket paths are limited. Short ids (pgfork's first shape, `br-` + 12) are kept;
/// Neon-shaped ones (`br-quiet-river-a1b2c3d4`) keep only their random tail.
pub fn socket_dir_name(branch_id: &str) -> String {
    if branch_id.len() <= 15 {
        return branch_id.to_string();
    }
    let tail = branch_id.rsplit('-').next().unwrap_or(branch_id);
    let tail: String = tail.chars().take(12).collect();
    format!("br-{tail}")
}

/// Room needed after the run directory for `/<socket_dir_name>/.s.PGSQL.<port>`.
const SOCKET_SUFFIX_LEN: usize = 1 + 15 + 1 + 15;
const SUN_PATH_MAX: usize = 107;

fn fits_run(run: &Path) -> bool {
    run.as_os_str().len() + SOCKET_SUFFIX_LEN <= SUN_PATH_MAX
}

impl Layout {
    /// The layout of the store at `home`. Unix socket paths are limited to 107 bytes:
    /// when `home` is too deep for them ([`Layout::needs_runtime_dir`]), the sockets
    /// live in `runtime` instead — a private directory the caller made (this crate
    /// does no IO); otherwise `runtime` is unused.
    pub fn new(home: &Path, runtime: &Path) -> Layout {
        let run_in_home = home.join("run");
        let run = if fits_run(&run_in_home) {
            run_in_home
        } else {
            runtime.join("run")
        };
        let socket_in_home = home.join("daemon.sock");
        let socket = if socket_in_home.as_os_str().len() <= SUN_PATH_MAX {
            socket_in_home
        } else {
            runtime.join("daemon.sock")
        };
        Layout {
            home: home.to_path_buf(),
            db: home.join("pgfork.db"),
            socket,
            lock: home.join("daemon.lock"),
            daemon_log: home.join("daemon.log"),
            branches: home.join("branches"),
            trash: home.join("trash"),
            snapshots: home.join("snapshots"),
            history: home.join("history"),
            tmp: home.join("tmp"),
            logs: home.join("logs"),
            run,
        }
    }

    /// Whether `home` is too deep for its sockets, which then need a runtime directory.
    pub fn needs_runtime_dir(home: &Path) -> bool {
        !fits_run(&home.join("run")) || home.join("daemon.sock").as_os_str().len() > SUN_PATH_MAX
    }

    pub fn branch_dir(&self, project: &str, dir_name: &str) -> PathBuf {
        self.branches.join(project).join(dir_name)
    }

    /// A branch's own WAL archive: branches share their parent's system identifier and
    /// timeline, so one archive per branch is what keeps their WAL apart.
    pub fn archive_dir(&self, branch_id: &str) -> PathBuf {
        self.history.join(branch_id)
    }

    pub fn snapshot_dir(&self, project: &str, id: &str) -> PathBuf {
        self.snapshots.join(project).join(id)
    }

    pub fn trash_dir(&self, project: &str, dir_name: &str, id: &str) -> PathBuf {
        self.trash.join(project).join(format!("{dir_name}.{id}"))
    }

    pub fn socket_dir(&self, branch_id: &str) -> PathBuf {
        self.run.join(socket_dir_name(branch_id))
    }

    pub fn branch_log(&self, branch_id: &str) -> PathBuf {
        self.logs.join(format!("{branch_id}.log"))
    }
}

/// The default `PGFORK_HOME`: `PGFORK_HOME` if set; as root `/var/lib/pgfork` (root's
/// home is not traversable by the unprivileged user Postgres runs as); else
/// `$XDG_DATA_HOME/pgfork`, else `~/.local/share/pgfork`. `var` reads an environment
/// variable.
pub fn default_home(var: impl Fn(&str) -> Option<OsString>, is_root: bool) -> PathBuf {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(h) = set("PGFORK_HOME") {
        return PathBuf::from(h);
    }
    if is_root {
        return PathBuf::from("/var/lib/pgfork");
    }
    if let Some(x) = set("XDG_DATA_HOME") {
        return PathBuf::from(x).join("pgfork");
    }
    set("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join(".local/share/pgfork")
}

#[cfg(test)]
mod tests {

    #[test]
    fn socket_directories_stay_short_for_every_id_shape() {
        assert_eq!(socket_dir_name("br-abcdefghijkl"), "br-abcdefghijkl");
        assert_eq!(
            socket_dir_name("br-solitary-butterfly-a1b2c3d4"),
            "br-a1b2c3d4"
        );
        assert!(socket_dir_name(&"x".repeat(80)).len() <= 15);
    }

    use super::*;

    #[test]
    fn homes_and_long_paths() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            default_home(env(&[("PGFORK_HOME", "/s")]), true),
            PathBuf::from("/s")
        );
        assert_eq!(
            default_home(env(&[]), true),
            PathBuf::from("/var/lib/pgfork")
        );
        assert_eq!(
            default_home(env(&[("HOME", "/home/a"), ("XDG_DATA_HOME", "")]), false),
            PathBuf::from("/home/a/.local/share/pgfork")
        );
        let short = Layout::new(Path::new("/h"), Path::new("/run/user/1/pgfork-x"));
        assert_eq!(short.socket, PathBuf::from("/h/daemon.sock"));
        assert!(!Layout::needs_runtime_dir(Path::new("/h")));
        let deep = "/d".repeat(60);
        assert!(Layout::needs_runtime_dir(Path::new(&deep)));
        let long = Layout::new(Path::new(&deep), Path::new("/run/user/1/pgfork-x"));
        assert_eq!(long.run, PathBuf::from("/run/user/1/pgfork-x/run"));
        assert_eq!(
            long.socket,
            PathBuf::from("/run/user/1/pgfork-x/daemon.sock")
        );
        assert!(long.run.as_os_str().len() + SOCKET_SUFFIX_LEN <= SUN_PATH_MAX);
        assert_eq!(
            short.run,
            PathBuf::from("/h/run"),
            "short homes keep sockets inside"
        );
    }
}
