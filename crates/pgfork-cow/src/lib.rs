//! Copy-on-write clone backends for pgfork: make a new directory tree that shares its
//! blocks with an existing one, find out whether the filesystem can do that at all, and
//! measure how many bytes a tree really owns.
//!
//! This crate knows about files and filesystems, never about PostgreSQL. Callers decide
//! *what* to clone (through [`TreeOptions::filter`]) and *when* it is consistent; this
//! crate only makes the copy as fast and as honest as the filesystem allows.
//!
//! # Clone methods
//!
//! * [`CloneMethod::Reflink`]: every regular file is cloned with `FICLONE` (Linux: XFS
//!   with `reflink=1`, btrfs, bcachefs, OpenZFS ≥ 2.2) or `clonefile` (macOS, APFS). The
//!   new file shares all extents with the original until one of them is written, so a
//!   multi-gigabyte data directory clones in tens of milliseconds and costs no space.
//! * [`CloneMethod::Copy`]: the bytes are copied in the kernel (`sendfile(2)` on Linux,
//!   so nothing crosses into user space). `copy_file_range(2)` is deliberately *not*
//!   used: on XFS and btrfs the kernel turns it into a reflink, and a caller who asked for
//!   a copy wants physically independent blocks (that is also what makes
//!   [`usage`] numbers honest).
//!
//! Which one works is decided by [`probe`], which actually tries a clone instead of
//! trusting the filesystem's name: XFS may be formatted without reflinks, ZFS may have
//! block cloning disabled, and so on.
//!
//! # Why the tree walk tolerates vanishing files
//!
//! The source of [`clone_tree`] may be a live database directory (an online clone runs
//! between "backup start" and "backup stop"). The server keeps creating, truncating and
//! unlinking files while we walk: temporary files, dropped relations, recycled WAL. A
//! file that disappears between `readdir` and `open` is not an error — it is exactly
//! what the server would have done to the copy too, and the caller's recovery procedure
//! (WAL replay) takes care of it. Such files are counted in [`TreeStats::vanished`] and
//! skipped. Files that *grow* while being copied are copied up to wherever their end is
//! when we reach it.
//!
//! # Why `syncfs` and not one `fsync` per file
//!
//! A freshly built tree must be on disk before it is renamed into place, or a crash could
//! leave a branch whose files are empty. Calling `fsync` on each of ~1,000 files costs one
//! journal flush each; [`sync_filesystem`] issues a single `syncfs(2)` that flushes
//! everything dirty on that filesystem at once. The rename itself is then made durable by
//! [`fsync_dir`] on the parent directory (the caller's job, because only the caller knows
//! when the rename happened).
//!
//! # Why FIEMAP shared flags
//!
//! After a reflink clone, `du` reports the full size for both the parent and the child,
//! although they share every block. [`usage`] asks the filesystem for the extent map of
//! each file (`FS_IOC_FIEMAP`) and counts only extents *not* flagged
//! `FIEMAP_EXTENT_SHARED`: the bytes that this tree alone owns, i.e. roughly what
//! deleting it would free. Holes are not counted. Filesystems without FIEMAP fall back to
//! allocated blocks, which is exact for them because they cannot share blocks anyway.
//!
//! # Platforms
//!
//! Linux is the primary target. macOS uses `fclonefileat(2)` for reflinks (APFS). Other
//! Unix systems have no reflink backend: [`probe`] reports [`CloneMethod::Copy`] there.

#[cfg(not(unix))]
compile_error!("pgfork-cow supports Unix systems only");

mod error;
mod probe;
mod sys;
mod tree;
mod usage;

use std::fmt;
use std::path::Path;

pub use error::CowError;
pub use probe::{probe, Probe};
pub use tree::{clone_everything, clone_file, clone_tree, TreeOptions, TreeStats, Visit};
pub use usage::{usage, Usage};

/// How a file's data gets into the new tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloneMethod {
    /// Share the original's blocks copy-on-write (`FICLONE` / `clonefile`).
    Reflink,
    /// Copy every byte into newly allocated blocks.
    Copy,
}

impl CloneMethod {
    /// The stable lowercase name used in JSON output and configuration:
    /// `"reflink"` or `"copy"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloneMethod::Reflink => "reflink",
            CloneMethod::Copy => "copy",
        }
    }

    /// Inverse of [`CloneMethod::as_str`] (ASCII case-insensitive, surrounding spaces
    /// ignored); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("reflink") {
            Some(CloneMethod::Reflink)
        } else if s.eq_ignore_ascii_case("copy") {
            Some(CloneMethod::Copy)
        } else {
            None
        }
    }
}

impl fmt::Display for CloneMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Make a just-built tree durable before it is renamed into place.
///
/// Issues one `syncfs(2)` for the filesystem holding `path`, which writes back every
/// dirty page and inode of that filesystem — far cheaper than an `fsync` per file for a
/// tree of a thousand files. After renaming the tree into place, call [`fsync_dir`] on
/// the rename's parent directory so the rename itself survives a crash.
///
/// On systems without `syncfs` (macOS, BSDs) this falls back to `sync(2)`.
pub fn sync_filesystem(path: &Path) -> Result<(), CowError> {
    let started = std::time::Instant::now();
    let file = std::fs::File::open(path).map_err(|e| CowError::io("open", path, e))?;
    sys::syncfs(&file).map_err(|e| CowError::io("flush the filesystem holding", path, e))?;
    tracing::debug!(path = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "synced filesystem");
    Ok(())
}

/// `fsync` a directory, making the creation, rename or removal of its entries durable.
pub fn fsync_dir(path: &Path) -> Result<(), CowError> {
    let dir = std::fs::File::open(path).map_err(|e| CowError::io("open directory", path, e))?;
    dir.sync_all()
        .map_err(|e| CowError::io("flush directory", path, e))
}

/// Bytes available to unprivileged users on the filesystem holding `path`
/// (`statvfs`: `f_bavail * f_frsize`).
///
/// Checked before a full copy so that the user gets "not enough space: need X, have Y"
/// up front instead of a half-written branch and a disk-full error later.
pub fn available_bytes(path: &Path) -> Result<u64, CowError> {
    sys::available_bytes(path).map_err(|e| CowError::io("query free space of", path, e))
}
