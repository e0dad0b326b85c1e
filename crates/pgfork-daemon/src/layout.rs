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
//! Unix socket paths are limited to 107 bytes, so when `PGFORK_HOME` is deep the sockets
//! move to a private, randomly named runtime directory (`pgfork_api::runtime`).

use std::path::{Path, PathBuf};

pub use pgfork_core::layout::Layout;

/// The layout of the store at `home` (a deep home gets a private runtime directory).
pub fn layout_for(home: &Path) -> std::io::Result<Layout> {
    pgfork_api::runtime::layout(home)
}

/// The default `PGFORK_HOME` for this process (see [`pgfork_core::layout::default_home`]).
pub fn default_home() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    pgfork_core::layout::default_home(|k| std::env::var_os(k), root)
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
