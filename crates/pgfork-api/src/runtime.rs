//! Where the sockets live when `PGFORK_HOME` is too deep for a unix socket path, shared
//! by the daemon (which listens there) and every client (which connects there).
//!
//! A name anyone can compute (`/tmp/pgfork-<hash of home>`) is a name another local
//! user can create first, and then relay or answer our clients. So the directory is
//! `$XDG_RUNTIME_DIR/pgfork-<random>` (XDG_RUNTIME_DIR is private to the user) or a
//! freshly made `/tmp/pgfork-<random>` (mkdir fails if the name exists), mode 0711 (the
//! server user must reach the branch socket directories inside), and its path is
//! recorded in `PGFORK_HOME/runtime-dir` (0600). Every use checks it again: ours, a
//! real directory (not a symlink), writable by no one else.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a directory may not hold our sockets, or `Ok`.
pub fn check_private_dir(path: &Path) -> Result<(), String> {
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if m.file_type().is_symlink() {
        return Err(format!("{} is a symbolic link", path.display()));
    }
    if !m.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {me})",
            path.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by others (mode {:o}), who could plant a socket there",
            path.display(),
            m.mode() & 0o777
        ));
    }
    Ok(())
}

fn record(home: &Path) -> PathBuf {
    home.join("runtime-dir")
}

/// The recorded directory: `Ok(None)` when there is none (or it vanished, e.g. a tmp
/// cleaner removed it), an error when it exists but fails the checks — someone changed
/// or replaced it, and silently making another would hide that.
fn recorded(home: &Path) -> io::Result<Option<PathBuf>> {
    let Ok(text) = std::fs::read_to_string(record(home)) else {
        return Ok(None);
    };
    let p = PathBuf::from(text.trim());
    if !p.is_absolute() || std::fs::symlink_metadata(&p).is_err() {
        return Ok(None);
    }
    check_private_dir(&p)
        .map(|()| Some(p))
        .map_err(|why| io::Error::new(io::ErrorKind::PermissionDenied, why))
}

fn random_name() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(format!(
        "pgfork-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The runtime directory of the store at `home`, made (and recorded) on first use.
pub fn runtime_dir(home: &Path) -> io::Result<PathBuf> {
    if let Some(p) = recorded(home)? {
        return Ok(p);
    }
    std::fs::create_dir_all(home)?;
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|b| b.is_absolute() && check_private_dir(b).is_ok())
        .unwrap_or_else(std::env::temp_dir);
    let dir = loop {
        let candidate = base.join(random_name()?);
        match std::fs::DirBuilder::new().mode(0o711).create(&candidate) {
            Ok(()) => break candidate,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    // The first writer of the record wins (daemon and CLI may race at first start);
    // the other takes the winner's directory and removes its own.
    let tmp = home.join(format!(".runtime-dir.{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(f, "{}", dir.display())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, record(home))
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_dir(&dir);
            match recorded(home)? {
                Some(p) => Ok(p),
                None => {
                    // The recorded directory vanished: record a new one.
                    std::fs::remove_file(record(home))?;
                    runtime_dir(home)
                }
            }
        }
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(e)
        }
    }
}

/// The store's layout: sockets in `home`, or in its runtime directory when `home` is
/// too deep.
pub fn layout(home: &Path) -> io::Result<pgfork_core::layout::Layout> {
    use pgfork_core::layout::Layout;
    if Layout::needs_runtime_dir(home) {
        Ok(Layout::new(home, &runtime_dir(home)?))
    } else {
        Ok(Layout::new(home, home))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_home_gets_one_private_random_runtime_dir() {
        let t = tempfile::tempdir().expect("tmp");
        let deep = t.path().join("d".repeat(90));
        let a = runtime_dir(&deep).expect("made");
        let b = runtime_dir(&deep).expect("recorded");
        assert_eq!(a, b, "the same directory every time");
        assert!(check_private_dir(&a).is_ok());
        let l = layout(&deep).expect("layout");
        assert!(l.socket.starts_with(&a) && l.run.starts_with(&a));
        // Replaced by a symlink (planted): refused, never followed or replaced silently.
        std::fs::remove_dir(&a).expect("rm");
        std::os::unix::fs::symlink("/tmp", &a).expect("plant a symlink");
        let err = runtime_dir(&deep).expect_err("a planted symlink is refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // Gone (a tmp cleaner): a new one is made and recorded.
        std::fs::remove_file(&a).expect("rm symlink");
        let c = runtime_dir(&deep).expect("replaced");
        assert_ne!(c, a);
        assert!(check_private_dir(&c).is_ok());
        let _ = std::fs::remove_dir(&c);
    }

    #[test]
    fn world_writable_or_foreign_dirs_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tmp");
        let d = t.path().join("x");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(check_private_dir(&d).is_err());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(
            check_private_dir(&d).is_ok(),
            "others may read, never write"
        );
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        assert!(check_private_dir(&d).is_ok());
        assert!(check_private_dir(Path::new("/")).is_err() || unsafe { libc::geteuid() } == 0);
    }
}
