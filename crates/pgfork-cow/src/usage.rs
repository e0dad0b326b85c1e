//! Space accounting: how many bytes a tree holds, and how many of them it alone owns.
//!
//! `du` cannot answer the second question: after a reflink clone, parent and child both
//! "use" the full size while the disk holds one copy. The extent map can: FIEMAP flags
//! every extent that is referenced by more than one file as `FIEMAP_EXTENT_SHARED`, so
//! the unflagged extents are the bytes that only this tree holds — what deleting it
//! would give back (bytes shared with a sibling are freed only when the last holder
//! goes). Note that the flag is symmetric: right after cloning, the *parent's* unique
//! bytes drop too.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::tree::{clone_everything, effective_threads, for_each_parallel, walk, Kind};
use crate::{sys, CowError};

/// Space accounting of a tree, see [`usage`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the sizes of the regular files (what `du --apparent-size` counts for
    /// files).
    pub logical_bytes: u64,
    /// Allocated bytes in extents not shared with any other file (holes and extents
    /// flagged `FIEMAP_EXTENT_SHARED` do not count). Where the filesystem has no FIEMAP,
    /// allocated blocks (`st_blocks * 512`), which is exact there since nothing can be
    /// shared.
    pub unique_bytes: u64,
}

/// Account the regular files under `path` (a directory or a single file; symlinks are
/// not followed). Files that vanish while we look are ignored: the tree may belong to a
/// running server. Dirty data is flushed first (`FIEMAP_FLAG_SYNC`), so freshly
/// written, not-yet-allocated data counts.
pub fn usage(path: &Path) -> Result<Usage, CowError> {
    let started = Instant::now();
    let meta = std::fs::symlink_metadata(path).map_err(|e| CowError::io("inspect", path, e))?;
    if meta.is_file() {
        let u = file_usage(path)?.unwrap_or_default();
        return Ok(u);
    }
    if !meta.is_dir() {
        return Ok(Usage::default());
    }
    let walk = walk(path, &clone_everything, false)?;
    let files: Vec<_> = walk.files.iter().filter(|e| e.kind == Kind::File).collect();
    let logical = AtomicU64::new(0);
    let unique = AtomicU64::new(0);
    for_each_parallel(&files, effective_threads(0, files.len()), |entry| {
        if let Some(u) = file_usage(&path.join(&entry.rel))? {
            logical.fetch_add(u.logical_bytes, Ordering::Relaxed);
            unique.fetch_add(u.unique_bytes, Ordering::Relaxed);
        }
        Ok(())
    })?;
    let usage = Usage {
        logical_bytes: logical.into_inner(),
        unique_bytes: unique.into_inner(),
    };
    tracing::debug!(
        path = %path.display(),
        files = files.len(),
        logical_bytes = usage.logical_bytes,
        unique_bytes = usage.unique_bytes,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "measured usage"
    );
    Ok(usage)
}

/// Usage of one regular file; `None` if it vanished.
fn file_usage(path: &Path) -> Result<Option<Usage>, CowError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CowError::io("open", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| CowError::io("inspect", path, e))?;
    let block = meta.blksize().max(512);
    let limit = meta.len().div_ceil(block).saturating_mul(block);
    let unique = match sys::unshared_bytes(&file, limit)
        .map_err(|e| CowError::io("map the extents of", path, e))?
    {
        Some(n) => n,
        None => meta.blocks().saturating_mul(512),
    };
    Ok(Some(Usage {
        logical_bytes: meta.len(),
        unique_bytes: unique,
    }))
}
