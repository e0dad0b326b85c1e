use std::path::PathBuf;
use thiserror::Error;

/// Errors from driving Postgres. Messages are one sentence that says what to do.
#[derive(Debug, Error)]
pub enum PgError {
    #[error("no PostgreSQL binaries found (looked at PGFORK_PG_BIN, pg_config on PATH and {looked}): install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or set PGFORK_PG_BIN to its bin directory")]
    NoBinaries { looked: String },
    #[error("PGFORK_PG_BIN={0} has no postgres binary: point it at the bin directory of a PostgreSQL installation")]
    BadPgBin(PathBuf),
    #[error("the data directory needs PostgreSQL {needed}, but only {available} is installed: install PostgreSQL {needed} (Debian/Ubuntu: apt-get install postgresql-{needed})")]
    MajorMissing { needed: u32, available: String },
    #[error("{path} is not a PostgreSQL data directory (no PG_VERSION file)")]
    NotADataDir { path: PathBuf },
    #[error("the OS user {0:?} that should run PostgreSQL does not exist: create it (useradd --system {0}) or set PGFORK_PG_USER to an existing unprivileged user")]
    NoSuchUser(String),
    #[error("{what} failed ({}): {stderr}", exit_words(*code))]
    Command {
        what: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("could not run {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("PostgreSQL for {pgdata} did not start: {reason}. Its log is {log}")]
    StartFailed {
        pgdata: PathBuf,
        reason: String,
        log: PathBuf,
    },
    #[error("PostgreSQL for {pgdata} did not stop within {secs} s")]
    StopTimeout { pgdata: PathBuf, secs: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cow(#[from] pgfork_cow::CowError),
    #[error("SQL to {what} failed: {}", crate::sql::db_message(source))]
    Sql {
        what: String,
        source: tokio_postgres::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{path} is in use by a running PostgreSQL (pid {pid}): stop it first, pgfork never touches a running directory it does not own")]
    DirInUse { path: PathBuf, pid: i32 },
}

impl PgError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PgError {
        let path = path.into();
        move |source| PgError::Io { path, source }
    }

    /// Whether the failure was the disk filling up, so callers can say so plainly.
    pub fn is_no_space(&self) -> bool {
        match self {
            PgError::Cow(e) => e.is_no_space(),
            PgError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            PgError::Command { stderr, .. } | PgError::StartFailed { reason: stderr, .. } => {
                stderr.contains("No space left on device")
            }
            _ => false,
        }
    }
}

/// How a command ended, in words (`exit 1`, or killed by a signal).
fn exit_words(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".to_string(),
    }
}
