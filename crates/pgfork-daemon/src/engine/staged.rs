//! The directory an operation builds in (`tmp/<id>`), removed however the operation
//! ends. One guard instead of a `remove_tree` on every error path: an early `?` can no
//! longer leave a half-built cluster behind until the next daemon start.
//!
//! Removing a data directory takes long (thousands of files), so the guard first
//! renames it to a unique name — instantly, so a retry of the same operation can build
//! in the same place at once — and deletes it on a blocking thread.

use super::remove_tree;
use std::path::{Path, PathBuf};

pub(crate) struct StagedDir {
    path: PathBuf,
}

impl StagedDir {
    pub(crate) fn new(path: PathBuf) -> StagedDir {
        StagedDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.path.exists() {
            return;
        }
        let mut doomed = self.path.clone().into_os_string();
        doomed.push(format!(".removing-{}", crate::ids::new_id("x")));
        let doomed = PathBuf::from(doomed);
        let target = match std::fs::rename(&self.path, &doomed) {
            Ok(()) => doomed,
            Err(_) => self.path.clone(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || remove_tree(&target));
            }
            Err(_) => remove_tree(&target),
        }
    }
}
