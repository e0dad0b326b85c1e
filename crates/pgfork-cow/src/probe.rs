//! Finding out whether a directory's filesystem can reflink.
//!
//! The only reliable test is to try: XFS can be formatted with `reflink=0`, OpenZFS
//! clones only when block cloning is enabled, btrfs refuses across some mount setups, a
//! FUSE or network filesystem may or may not pass the ioctl through. So [`probe`] clones a
//! small scratch file and reports what happened; the filesystem name is only used to
//! write a helpful message.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{clone_file, sys, CloneMethod, CowError};

/// Result of [`probe`].
#[derive(Debug, Clone)]
pub struct Probe {
    /// The fastest method that works in this directory.
    pub method: CloneMethod,
    /// Filesystem type: `"xfs"`, `"ext4"`, `"btrfs"`, `"tmpfs"`, `"apfs"`, ... or
    /// `"unknown (0x…)"` with the `statfs` magic number.
    pub filesystem: String,
    /// The directory that was probed.
    pub path: PathBuf,
}

impl Probe {
    /// One line for users when branches will be full copies, naming the filesystem and
    /// how to get copy-on-write; `None` when reflinks work.
    pub fn warning(&self) -> Option<String> {
        if self.method == CloneMethod::Reflink {
            return None;
        }
        let why = match self.filesystem.as_str() {
            "xfs" => "which was formatted without reflink support".to_string(),
            "zfs" => "which has block cloning disabled or unsupported".to_string(),
            "btrfs" | "apfs" | "bcachefs" => "which refused a test reflink".to_string(),
            _ => "which has no reflinks".to_string(),
        };
        let fix = if cfg!(target_os = "macos") {
            "For sub-second branches put PGFORK_HOME on an APFS volume."
        } else if self.filesystem == "zfs" {
            "For sub-second branches enable ZFS block cloning (OpenZFS >= 2.2, zfs_bclone_enabled=1) or put PGFORK_HOME on XFS (mkfs.xfs -m reflink=1) or btrfs."
        } else {
            "For sub-second branches put PGFORK_HOME on XFS (mkfs.xfs -m reflink=1) or btrfs."
        };
        Some(format!(
            "the store at {} is on {}, {}: every branch is a full copy. {}",
            self.path.display(),
            self.filesystem,
            why,
            fix
        ))
    }
}

/// Decide how to clone in `dir` by actually trying: create a small scratch file there,
/// reflink it to a second one (`FICLONE` on Linux, `clonefile` on macOS), remove both.
/// Never guesses from the filesystem's name alone.
pub fn probe(dir: &Path) -> Result<Probe, CowError> {
    let filesystem =
        sys::filesystem_name(dir).map_err(|e| CowError::io("inspect the filesystem of", dir, e))?;
    let method = if reflink_works(dir)? {
        CloneMethod::Reflink
    } else {
        CloneMethod::Copy
    };
    tracing::debug!(path = %dir.display(), %filesystem, %method, "probed clone method");
    Ok(Probe {
        method,
        filesystem,
        path: dir.to_path_buf(),
    })
}

/// Removes the scratch files however the probe ends.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.0 {
            if let Err(e) = fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove probe file");
                }
            }
        }
    }
}

fn reflink_works(dir: &Path) -> Result<bool, CowError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tag = format!(
        ".pgfork-probe-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let src = dir.join(format!("{tag}-a"));
    let dst = dir.join(format!("{tag}-b"));
    let _scratch = Scratch(vec![src.clone(), dst.clone()]);

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&src)
        .map_err(|e| CowError::io("create a probe file in", dir, e))?;
    // One full block: some filesystems only clone whole blocks.
    file.write_all(&[0x5a; 4096])
        .map_err(|e| CowError::io("write probe file", &src, e))?;
    drop(file);

    match clone_file(&src, &dst, CloneMethod::Reflink, None) {
        Ok(_) => Ok(true),
        Err(CowError::Unsupported { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
