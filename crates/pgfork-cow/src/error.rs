//! Typed errors. Every message is one sentence naming the path involved, because these
//! end up in front of users verbatim ("could not clone X to Y: Permission denied").
//!
//! The OS error is part of each message and is therefore *not* also exposed through
//! [`std::error::Error::source`]: printing the chain (anyhow's `{:#}`) would otherwise
//! repeat it. Use [`CowError::io_error`] to inspect it.

use std::io;
use std::path::{Path, PathBuf};

use crate::CloneMethod;

/// Everything that can go wrong while probing, cloning or measuring.
#[derive(Debug, thiserror::Error)]
pub enum CowError {
    /// Cloning or copying the data of one file failed.
    #[error("could not clone {} to {}: {error}", src.display(), dst.display())]
    Clone {
        src: PathBuf,
        dst: PathBuf,
        error: io::Error,
    },

    /// The filesystem is full (`ENOSPC`) or the user's quota is exhausted (`EDQUOT`).
    #[error("no space left on the device holding {}: free some space or move PGFORK_HOME", path.display())]
    NoSpace { path: PathBuf, error: io::Error },

    /// [`crate::clone_tree`] only writes into a directory that does not exist yet or is
    /// empty, so that it can never mix a new clone with leftovers.
    #[error("the destination {} already exists and is not an empty directory", path.display())]
    DestinationNotEmpty { path: PathBuf },

    /// The filesystem refused a reflink (`EOPNOTSUPP`, `EXDEV`, `EINVAL`, `ENOTTY`).
    #[error("the filesystem at {} does not support reflinks", path.display())]
    Unsupported { method: CloneMethod, path: PathBuf },

    /// The source does not exist. [`crate::clone_tree`] treats this as a file that
    /// vanished during the walk; [`crate::clone_file`] returns it.
    #[error("{} does not exist (it may have been removed while it was being cloned)", path.display())]
    NotFound { path: PathBuf },

    /// The source of a tree clone is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },

    /// Any other system call failure; `action` is a verb phrase such as "create
    /// directory" or "read directory".
    #[error("could not {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
}

impl CowError {
    /// True when the operation failed because the disk (or quota) is full, so callers
    /// can clean up and tell the user to free space rather than report a generic
    /// failure.
    pub fn is_no_space(&self) -> bool {
        match self {
            CowError::NoSpace { .. } => true,
            other => other.io_error().is_some_and(is_no_space_error),
        }
    }

    /// The underlying OS error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            CowError::Clone { error, .. }
            | CowError::NoSpace { error, .. }
            | CowError::Io { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Wrap a failed system call on `path`; out-of-space errors become
    /// [`CowError::NoSpace`].
    pub(crate) fn io(action: &'static str, path: &Path, error: io::Error) -> Self {
        if is_no_space_error(&error) {
            CowError::NoSpace {
                path: path.to_path_buf(),
                error,
            }
        } else {
            CowError::Io {
                action,
                path: path.to_path_buf(),
                error,
            }
        }
    }

    /// Wrap a failed data clone/copy; out-of-space errors become [`CowError::NoSpace`]
    /// (naming the destination, which is where the space was needed).
    pub(crate) fn clone_failed(src: &Path, dst: &Path, error: io::Error) -> Self {
        if is_no_space_error(&error) {
            CowError::NoSpace {
                path: dst.to_path_buf(),
                error,
            }
        } else {
            CowError::Clone {
                src: src.to_path_buf(),
                dst: dst.to_path_buf(),
                error,
            }
        }
    }
}

fn is_no_space_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_becomes_no_space() {
        let e = CowError::io(
            "write",
            Path::new("/x"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(matches!(e, CowError::NoSpace { .. }));
        assert!(e.is_no_space());
        assert_eq!(
            e.to_string(),
            "no space left on the device holding /x: free some space or move PGFORK_HOME"
        );
        let e = CowError::clone_failed(
            Path::new("/a"),
            Path::new("/b"),
            io::Error::from_raw_os_error(libc::EDQUOT),
        );
        assert!(e.is_no_space());
        let e = CowError::clone_failed(
            Path::new("/a"),
            Path::new("/b"),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(!e.is_no_space());
        assert!(e.to_string().starts_with("could not clone /a to /b: "));
    }
}
