//! Who Postgres runs as.
//!
//! Postgres refuses to run as root. pgfork as a normal user runs it as that user; pgfork
//! as root (CI, containers, a team server) runs it as an unprivileged OS user, `postgres`
//! by default or `PGFORK_PG_USER`, and hands it the files it needs.

use crate::PgError;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// True when pgfork itself is root and must switch to this user for Postgres.
    pub switch: bool,
}

impl ServerUser {
    /// Resolves the server user for this process: the current user, or when root the
    /// named unprivileged user.
    pub fn resolve(root_user: &str) -> Result<ServerUser, PgError> {
        // SAFETY: geteuid/getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if euid != 0 {
            return Ok(ServerUser {
                name: user_name(euid).unwrap_or_else(|| euid.to_string()),
                uid: euid,
                gid: egid,
                switch: false,
            });
        }
        let (uid, gid) =
            lookup_user(root_user).ok_or_else(|| PgError::NoSuchUser(root_user.to_string()))?;
        if uid == 0 {
            return Err(PgError::NoSuchUser(format!("{root_user} (it is root)")));
        }
        Ok(ServerUser {
            name: root_user.to_string(),
            uid,
            gid,
            switch: true,
        })
    }

    /// `Some((uid, gid))` when files pgfork creates must be handed to the server user.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.switch.then_some((self.uid, self.gid))
    }

    /// Makes `cmd` run as the server user.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
            // HOME of root is not readable by the server user; libpq looks there for
            // .pgpass and psqlrc.
            cmd.env("HOME", "/tmp");
        }
    }

    /// chown one path (not following symlinks) to the server user, when switching.
    pub fn chown(&self, path: &Path) -> Result<(), PgError> {
        if !self.switch {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).map_err(PgError::io(path))
    }

    /// Creates a directory (and parents) with mode 0700 owned by the server user.
    pub fn create_private_dir(&self, path: &Path) -> Result<(), PgError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path).map_err(PgError::io(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(PgError::io(path))?;
        self.chown(path)
    }
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy the two
    // integers out immediately. pgfork resolves the user once, before spawning threads
    // that could race on that storage.
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

fn user_name(uid: u32) -> Option<String> {
    // SAFETY: as above; the name is copied before returning.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The owner name of a path, used to guess the superuser of an adopted data directory.
pub fn owner_name(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(path).ok()?.uid();
    user_name(uid)
}
