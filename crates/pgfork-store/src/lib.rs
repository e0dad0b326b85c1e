//! Metadata: projects, branches (a tree via `parent_id`), ports, credentials, states and
//! timestamps, in one SQLite file in WAL mode.
//!
//! Why SQLite: the daemon is the only writer, but the CLI, tests and humans may read it
//! while it runs; WAL mode gives readers a consistent snapshot without blocking the
//! writer, and a transaction is the atomic "commit" step of every branch operation: a
//! branch exists exactly when its row does (the data directory is renamed into place
//! just before the row is inserted, and orphan directories are swept at start).
//!
//! This crate knows nothing about HTTP, processes or Postgres.

use chrono::{DateTime, Utc};
use pgfork_core::{BranchState, HistoryPolicy};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use thiserror::Error;

mod tokens;
pub use tokens::{ApiKey, NewApiKey};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("could not open the metadata database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("metadata database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the metadata database was written by a newer pgfork (schema {found}, this pgfork knows {known}): upgrade pgfork")]
    TooNew { found: i64, known: i64 },
    #[error("a branch named {name:?} already exists in project {project:?}")]
    BranchExists { project: String, name: String },
    #[error("a project named {0:?} already exists")]
    ProjectExists(String),
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The metadata could not be written for lack of space (SQLite's "database or disk
    /// is full", or an I/O error while writing on a full filesystem).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub pg_major: u32,
    /// The database users connect to by default (`postgres` unless an import named another).
    pub db_name: String,
    /// The role in connection URLs (the owner role; a superuser in projects made
    /// before pgfork had one, see `superuser`).
    pub role_name: String,
    /// The superuser pgfork connects as over the private socket. Equal to `role_name`
    /// only in projects made before the owner role, whose URLs still carry it.
    pub superuser: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub state: BranchState,
    pub port: u16,
    pub password: String,
    /// The branch's PGDATA while it is live; its trash location once deleted.
    pub data_dir: PathBuf,
    pub clone_method: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub protected: bool,
    pub git_branch: Option<String>,
    pub masked: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Where the data directory returns to on recover (the live location).
    pub home_dir: PathBuf,
    /// The parent's WAL position the branch was cut at, when cloned online.
    pub parent_lsn: Option<String>,
    /// Outcome of the repository's after-create command: `ok`, `failed`, or none run.
    pub after_create: Option<String>,
    /// Seconds without clients before the branch is suspended: 0 the daemon's
    /// default, -1 never.
    pub suspend_timeout_seconds: i64,
}

/// The `user_version` a store has after every migration: one past the last migration's
/// starting version. Derived, so that adding a migration cannot leave it behind (a
/// store would then be "too new" for the very binary that wrote it).
const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0 + 1;

const SCHEMA: &str = r#"
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    pg_major    INTEGER NOT NULL,
    db_name     TEXT NOT NULL,
    role_name   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE branches (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- History, not a dependency: clones are physically independent, so a purged
    -- parent leaves its id here and the child keeps working. Only the root has none.
    parent_id    TEXT,
    state        TEXT NOT NULL,
    port         INTEGER NOT NULL,
    password     TEXT NOT NULL,
    data_dir     TEXT NOT NULL,
    home_dir     TEXT NOT NULL,
    clone_method TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    expires_at   TEXT,
    protected    INTEGER NOT NULL DEFAULT 0,
    git_branch   TEXT,
    masked       INTEGER NOT NULL DEFAULT 0,
    deleted_at   TEXT,
    parent_lsn   TEXT
);
-- One live branch per name and project; the trash may hold several of the same name.
CREATE UNIQUE INDEX branches_live_name ON branches(project_id, name) WHERE state <> 'deleted';
CREATE UNIQUE INDEX branches_port ON branches(port);
"#;

/// Migrations from each older schema version to the next, applied in order.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, "ALTER TABLE branches ADD COLUMN after_create TEXT;"),
    // Work trees of each project on this machine, for the daemon's periodic git gc.
    (
        2,
        "CREATE TABLE repos (project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE, path TEXT NOT NULL, PRIMARY KEY (project_id, path));",
    ),
    // Follow-HEAD URLs: one stable port per work tree, routed to its HEAD's branch.
    (
        3,
        "CREATE TABLE follow (project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE, repo_path TEXT NOT NULL, port INTEGER NOT NULL UNIQUE, password TEXT NOT NULL, PRIMARY KEY (project_id, repo_path));",
    ),
    // Per-branch idle timeout (Neon's suspend_timeout_seconds: 0 default, -1 never).
    (4, "ALTER TABLE branches ADD COLUMN suspend_timeout_seconds INTEGER NOT NULL DEFAULT 0;"),
    // Why gc trashed a branch, and the reasons it may no longer use for it (the user
    // recovered it after gc took it); a trashed branch may give its port up (port 0).
    (
        5,
        "ALTER TABLE branches ADD COLUMN trash_reason TEXT; \
         ALTER TABLE branches ADD COLUMN spared TEXT NOT NULL DEFAULT ''; \
         DROP INDEX branches_port; \
         CREATE UNIQUE INDEX branches_port ON branches(port) WHERE port <> 0;",
    ),
    // Each login role's SCRAM verifier as the branch stores it (pg_authid), so the
    // proxy checks a role's own password without waking a suspended branch.
    (
        6,
        "CREATE TABLE role_secrets (branch_id TEXT NOT NULL REFERENCES branches(id) ON DELETE CASCADE, role TEXT NOT NULL, secret TEXT NOT NULL, PRIMARY KEY (branch_id, role));",
    ),
    // Passwords pgfork set for login roles (rotation on branches of protected ones).
    (
        7,
        "CREATE TABLE role_passwords (branch_id TEXT NOT NULL REFERENCES branches(id) ON DELETE CASCADE, role TEXT NOT NULL, password TEXT NOT NULL, PRIMARY KEY (branch_id, role)); \
         CREATE TABLE rotated_branches (branch_id TEXT PRIMARY KEY REFERENCES branches(id) ON DELETE CASCADE);",
    ),
    // API keys for the network API (hashes only).
    (8, tokens::TABLE),
    // Webhook secrets per project (plain: HMAC needs the secret itself).
    (
        9,
        "CREATE TABLE webhooks (project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE, secret TEXT NOT NULL, ttl_seconds INTEGER, created_at TEXT NOT NULL);",
    ),
    // The superuser apart from the role in URLs; older projects used one for both.
    (
        10,
        "ALTER TABLE projects ADD COLUMN superuser TEXT; UPDATE projects SET superuser = role_name;",
    ),
    // Masking: the rules a branch was masked with (so a reset masks again), and each
    // project's masking key (deterministic pseudonyms across branches and runs).
    (
        11,
        "CREATE TABLE branch_masking (branch_id TEXT PRIMARY KEY REFERENCES branches(id) ON DELETE CASCADE, rules TEXT NOT NULL); \
         CREATE TABLE project_mask_keys (project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE, mask_key TEXT NOT NULL);",
    ),
    // What a logical import copied and where it differs from its source (JSON).
    (
        12,
        "CREATE TABLE project_import_reports (project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE, report TEXT NOT NULL);",
    ),
    // A branch's own server settings (`.pgfork.toml` `[postgres]`), applied again on
    // every reset (JSON object).
    (
        13,
        "CREATE TABLE branch_pg_settings (branch_id TEXT PRIMARY KEY REFERENCES branches(id) ON DELETE CASCADE, settings TEXT NOT NULL);",
    ),
    // When a branch last took its parent's state (create, reset) and the digest of the
    // schema it took: how far behind it is, and whether the parent's schema moved.
    (
        14,
        "CREATE TABLE branch_forks (branch_id TEXT PRIMARY KEY REFERENCES branches(id) ON DELETE CASCADE, forked_at TEXT NOT NULL, schema_digest TEXT);",
    ),
    // Where a project's root came from (the source as JSON, its URL's password with it,
    // in this 0600 file like the branches' passwords), so the root can be made again:
    // by hand, or on a schedule.
    (
        15,
        "CREATE TABLE project_sources (project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE, source TEXT NOT NULL, schedule_seconds INTEGER, refreshed_at TEXT);",
    ),
    // A branch's own baseline: its user-table writes and schema digest after it forked
    // and its after-create command ran, so that "changes of its own" can be told.
    (
        16,
        "ALTER TABLE branch_forks ADD COLUMN baseline_writes INTEGER; ALTER TABLE branch_forks ADD COLUMN baseline_digest TEXT;",
    ),
    // Snapshots: a branch's data at a moment, kept as a stopped clone.
    (
        17,
        "CREATE TABLE snapshots (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE, source_branch_id TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, lsn TEXT, data_dir TEXT NOT NULL, manual INTEGER NOT NULL, reason TEXT NOT NULL, masked INTEGER NOT NULL, UNIQUE (project_id, name));",
    ),
    // A branch's history window: how far back its own WAL archive and history
    // snapshots reach, and how often a history snapshot bounds the WAL to replay.
    (
        18,
        "CREATE TABLE branch_history (branch_id TEXT PRIMARY KEY REFERENCES branches(id) ON DELETE CASCADE, window_seconds INTEGER NOT NULL, snapshot_every_seconds INTEGER NOT NULL);",
    ),
    // At most this many history snapshots (`[history] keep`); a window of 0 with an
    // interval is a snapshot schedule without WAL.
    (19, "ALTER TABLE branch_history ADD COLUMN keep INTEGER;"),
];

/// A branch's data at a moment: a stopped clone with its backup label, never started.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: String,
    pub project_id: String,
    pub source_branch_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub lsn: Option<String>,
    pub data_dir: PathBuf,
    /// Taken by a person (or a client) rather than by pgfork on its own.
    pub manual: bool,
    /// Why: `manual`, `before-migration`, `before-restore`, ...
    pub reason: String,
    pub masked: bool,
}

fn history_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryPolicy> {
    Ok(HistoryPolicy {
        window_seconds: r.get(0)?,
        snapshot_every_seconds: r.get(1)?,
        keep: r.get(2)?,
    })
}

fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Snapshot> {
    let time = |s: String| {
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    };
    Ok(Snapshot {
        id: r.get(0)?,
        project_id: r.get(1)?,
        source_branch_id: r.get(2)?,
        name: r.get(3)?,
        created_at: time(r.get(4)?),
        expires_at: r.get::<_, Option<String>>(5)?.map(time),
        lsn: r.get(6)?,
        data_dir: PathBuf::from(r.get::<_, String>(7)?),
        manual: r.get(8)?,
        reason: r.get(9)?,
        masked: r.get(10)?,
    })
}

const SNAPSHOT_COLUMNS: &str =
    "id, project_id, source_branch_id, name, created_at, expires_at, lsn, data_dir, manual, reason, masked";

/// When a branch last took its parent's state, and what it looked like then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchFork {
    pub forked_at: DateTime<Utc>,
    /// The schema digest it took (the parent's then).
    pub schema_digest: Option<String>,
    /// Its user-table writes at its baseline (after its after-create command).
    pub baseline_writes: Option<i64>,
    /// Its own schema digest at its baseline.
    pub baseline_digest: Option<String>,
}

/// Where a project's root came from and when it is made again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSourceRecord {
    /// The source as the API's JSON.
    pub source: String,
    /// Refresh the root this often (seconds); `None`: only by hand.
    pub schedule_seconds: Option<i64>,
    pub refreshed_at: Option<DateTime<Utc>>,
}

/// A follow-HEAD endpoint of a work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub project_id: String,
    pub repo_path: PathBuf,
    pub port: u16,
    pub password: String,
}

fn follow_from_row(row: &Row<'_>) -> rusqlite::Result<Follow> {
    let port: i64 = row.get(2)?;
    Ok(Follow {
        project_id: row.get(0)?,
        repo_path: PathBuf::from(row.get::<_, String>(1)?),
        port: u16::try_from(port).unwrap_or(0),
        password: row.get(3)?,
    })
}

pub struct Store {
    conn: Connection,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn parse_opt_ts(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

const BRANCH_COLS: &str = "id, project_id, name, parent_id, state, port, password, data_dir, clone_method, created_at, updated_at, expires_at, protected, git_branch, masked, deleted_at, home_dir, parent_lsn, after_create, suspend_timeout_seconds";

fn branch_from_row(row: &Row<'_>) -> rusqlite::Result<Branch> {
    let state: String = row.get(4)?;
    let port: i64 = row.get(5)?;
    Ok(Branch {
        id: row.get(0)?,
        project_id: row.get(1)?,
        name: row.get(2)?,
        parent_id: row.get(3)?,
        state: BranchState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                format!("unknown branch state {state:?}").into(),
            )
        })?,
        port: u16::try_from(port).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Integer,
                Box::new(e),
            )
        })?,
        password: row.get(6)?,
        data_dir: PathBuf::from(row.get::<_, String>(7)?),
        clone_method: row.get(8)?,
        created_at: parse_ts(&row.get::<_, String>(9)?)?,
        updated_at: parse_ts(&row.get::<_, String>(10)?)?,
        expires_at: parse_opt_ts(row.get(11)?)?,
        protected: row.get(12)?,
        git_branch: row.get(13)?,
        masked: row.get(14)?,
        deleted_at: parse_opt_ts(row.get(15)?)?,
        home_dir: PathBuf::from(row.get::<_, String>(16)?),
        parent_lsn: row.get(17)?,
        after_create: row.get(18)?,
        suspend_timeout_seconds: row.get(19)?,
    })
}

fn project_from_row(row: &Row<'_>) -> rusqlite::Result<Project> {
    let major: i64 = row.get(2)?;
    Ok(Project {
        id: row.get(0)?,
        name: row.get(1)?,
        pg_major: u32::try_from(major).unwrap_or(0),
        db_name: row.get(3)?,
        role_name: row.get(4)?,
        created_at: parse_ts(&row.get::<_, String>(5)?)?,
        superuser: row
            .get::<_, Option<String>>(6)?
            .unwrap_or_else(|| row.get(4).unwrap_or_default()),
    })
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| StoreError::Corrupt(format!("path {} is not UTF-8", p.display())))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl Store {
    /// Opens (creating and migrating if needed) the metadata database.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store { conn };
        store.configure()?;
        Ok(store)
    }

    /// An in-memory store, for tests of code above this crate.
    pub fn open_in_memory() -> Result<Store> {
        let store = Store {
            conn: Connection::open_in_memory()?,
        };
        store.configure()?;
        Ok(store)
    }

    fn configure(&self) -> Result<()> {
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            self.conn
                .execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;"))?;
        }
        for (from, sql) in MIGRATIONS {
            let current: i64 = self
                .conn
                .pragma_query_value(None, "user_version", |r| r.get(0))?;
            if current == *from {
                self.conn.execute_batch(&format!(
                    "BEGIN; {sql} PRAGMA user_version = {}; COMMIT;",
                    from + 1
                ))?;
            }
        }
        Ok(())
    }

    pub fn insert_project(&self, p: &Project) -> Result<()> {
        Store::borrowed(&self.conn).insert_project(p)
    }

    /// Inserts a project and its root branch in one transaction.
    pub fn insert_project_with_root(&mut self, p: &Project, root: &Branch) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let store = Store::borrowed(&tx);
            store.insert_project(p)?;
            store.insert_branch_inner(root, &p.name)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn borrowed(conn: &Connection) -> BorrowedStore<'_> {
        BorrowedStore { conn }
    }

    pub fn projects(&self) -> Result<Vec<Project>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, pg_major, db_name, role_name, created_at, superuser FROM projects ORDER BY created_at",
        )?;
        let rows = stmt.query_map([], project_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A project by id or by name.
    pub fn project(&self, id_or_name: &str) -> Result<Option<Project>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, pg_major, db_name, role_name, created_at, superuser FROM projects WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1",
                [id_or_name],
                project_from_row,
            )
            .optional()?)
    }

    /// Remembers a repository work tree of a project (idempotent).
    pub fn add_repo(&self, project_id: &str, path: &Path) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO repos (project_id, path) VALUES (?1, ?2)",
            params![project_id, path_str(path)?],
        )?;
        Ok(())
    }

    pub fn repos(&self, project_id: &str) -> Result<Vec<PathBuf>> {
        let mut stmt = self
            .conn
            .prepare("SELECT path FROM repos WHERE project_id = ?1 ORDER BY path")?;
        let rows = stmt.query_map([project_id], |r| r.get::<_, String>(0))?;
        Ok(rows
            .map(|r| r.map(PathBuf::from))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Renames a project (its directories keep their names: every branch row records
    /// its own paths).
    pub fn rename_project(&self, id: &str, name: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE projects SET name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::ProjectExists(name.to_string())
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    pub fn delete_project(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM projects WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn insert_branch(&self, b: &Branch, project_name: &str) -> Result<()> {
        Store::borrowed(&self.conn).insert_branch_inner(b, project_name)
    }

    /// All branches of a project (the trash included when `include_deleted`), oldest first.
    pub fn branches(&self, project_id: &str, include_deleted: bool) -> Result<Vec<Branch>> {
        let sql = format!(
            "SELECT {BRANCH_COLS} FROM branches WHERE project_id = ?1 AND (?2 OR state <> 'deleted') ORDER BY created_at, id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![project_id, include_deleted], branch_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every branch of every project, trash included (for reconcile and the reaper).
    pub fn all_branches(&self) -> Result<Vec<Branch>> {
        let sql = format!("SELECT {BRANCH_COLS} FROM branches ORDER BY created_at, id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], branch_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn branch(&self, id: &str) -> Result<Option<Branch>> {
        let sql = format!("SELECT {BRANCH_COLS} FROM branches WHERE id = ?1");
        Ok(self
            .conn
            .query_row(&sql, [id], branch_from_row)
            .optional()?)
    }

    /// The live branch holding `port`, if any.
    pub fn live_branch_by_port(&self, port: u16) -> Result<Option<Branch>> {
        let sql =
            format!("SELECT {BRANCH_COLS} FROM branches WHERE port = ?1 AND state <> 'deleted'");
        Ok(self
            .conn
            .query_row(&sql, [port], branch_from_row)
            .optional()?)
    }

    /// The live branch with this name, if any.
    pub fn live_branch_by_name(&self, project_id: &str, name: &str) -> Result<Option<Branch>> {
        let sql = format!(
            "SELECT {BRANCH_COLS} FROM branches WHERE project_id = ?1 AND name = ?2 AND state <> 'deleted'"
        );
        Ok(self
            .conn
            .query_row(&sql, params![project_id, name], branch_from_row)
            .optional()?)
    }

    /// The most recently deleted branch with this name, if any.
    pub fn trashed_branch_by_name(&self, project_id: &str, name: &str) -> Result<Option<Branch>> {
        let sql = format!(
            "SELECT {BRANCH_COLS} FROM branches WHERE project_id = ?1 AND name = ?2 AND state = 'deleted' ORDER BY deleted_at DESC LIMIT 1"
        );
        Ok(self
            .conn
            .query_row(&sql, params![project_id, name], branch_from_row)
            .optional()?)
    }

    pub fn insert_follow(&self, f: &Follow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO follow (project_id, repo_path, port, password) VALUES (?1, ?2, ?3, ?4)",
            params![f.project_id, path_str(&f.repo_path)?, f.port, f.password],
        )?;
        Ok(())
    }

    pub fn follow_for(&self, project_id: &str, repo_path: &Path) -> Result<Option<Follow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT project_id, repo_path, port, password FROM follow WHERE project_id = ?1 AND repo_path = ?2",
                params![project_id, path_str(repo_path)?],
                follow_from_row,
            )
            .optional()?)
    }

    pub fn follow_by_port(&self, port: u16) -> Result<Option<Follow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT project_id, repo_path, port, password FROM follow WHERE port = ?1",
                [port],
                follow_from_row,
            )
            .optional()?)
    }

    pub fn follows(&self) -> Result<Vec<Follow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT project_id, repo_path, port, password FROM follow")?;
        let rows = stmt.query_map([], follow_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ports held by any branch (trash included, so a recovered branch gets its URL
    /// back) or follow-HEAD endpoint.
    pub fn used_ports(&self) -> Result<std::collections::HashSet<u16>> {
        let mut stmt = self
            .conn
            .prepare("SELECT port FROM branches UNION SELECT port FROM follow")?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        let mut set = std::collections::HashSet::new();
        for p in rows {
            if let Ok(p) = u16::try_from(p?) {
                set.insert(p);
            }
        }
        Ok(set)
    }

    /// Writes every mutable field of a branch.
    /// What a root's refresh may change of its project: the database, superuser and major.
    pub fn update_project_facts(&self, p: &Project) -> Result<()> {
        self.conn.execute(
            "UPDATE projects SET db_name = ?2, superuser = ?3, pg_major = ?4 WHERE id = ?1",
            params![p.id, p.db_name, p.superuser, p.pg_major],
        )?;
        Ok(())
    }

    pub fn update_branch(&self, b: &Branch) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE branches SET name = ?2, parent_id = ?3, state = ?4, port = ?5, password = ?6, data_dir = ?7, clone_method = ?8, updated_at = ?9, expires_at = ?10, protected = ?11, git_branch = ?12, masked = ?13, deleted_at = ?14, home_dir = ?15, parent_lsn = ?16, after_create = ?17, suspend_timeout_seconds = ?18 WHERE id = ?1",
                params![
                    b.id,
                    b.name,
                    b.parent_id,
                    b.state.as_str(),
                    b.port,
                    b.password,
                    path_str(&b.data_dir)?,
                    b.clone_method,
                    ts(b.updated_at),
                    b.expires_at.map(ts),
                    b.protected,
                    b.git_branch,
                    b.masked,
                    b.deleted_at.map(ts),
                    path_str(&b.home_dir)?,
                    b.parent_lsn,
                    b.after_create,
                    b.suspend_timeout_seconds,
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::BranchExists {
                        project: b.project_id.clone(),
                        name: b.name.clone(),
                    }
                } else {
                    e.into()
                }
            })?;
        if changed == 0 {
            return Err(StoreError::Corrupt(format!("branch {} vanished", b.id)));
        }
        Ok(())
    }

    pub fn set_state(&self, id: &str, state: BranchState, now: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "UPDATE branches SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, state.as_str(), ts(now)],
        )?;
        Ok(())
    }

    /// Replaces the recorded role verifiers of a branch.
    pub fn set_role_secrets(
        &mut self,
        branch_id: &str,
        secrets: &[(String, String)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM role_secrets WHERE branch_id = ?1", [branch_id])?;
        for (role, secret) in secrets {
            tx.execute(
                "INSERT INTO role_secrets (branch_id, role, secret) VALUES (?1, ?2, ?3)",
                params![branch_id, role, secret],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks a branch whose login roles pgfork gives their own passwords (at creation
    /// and again after every reset, which brings back the parent's) and records them,
    /// in one transaction.
    pub fn set_rotated_passwords(
        &mut self,
        branch_id: &str,
        passwords: &[(String, String)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO rotated_branches (branch_id) VALUES (?1) ON CONFLICT DO NOTHING",
            params![branch_id],
        )?;
        for (role, password) in passwords {
            tx.execute(
                "INSERT INTO role_passwords (branch_id, role, password) VALUES (?1, ?2, ?3) ON CONFLICT (branch_id, role) DO UPDATE SET password = excluded.password",
                params![branch_id, role, password],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn is_rotated(&self, branch_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM rotated_branches WHERE branch_id = ?1",
                params![branch_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Sets (or replaces) a project's webhook secret and the TTL of the branches its
    /// pull requests get.
    pub fn set_webhook(
        &self,
        project_id: &str,
        secret: &str,
        ttl_seconds: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO webhooks (project_id, secret, ttl_seconds, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (project_id) DO UPDATE SET secret = excluded.secret, ttl_seconds = excluded.ttl_seconds, created_at = excluded.created_at",
            params![project_id, secret, ttl_seconds.map(|t| t as i64), ts(now)],
        )?;
        Ok(())
    }

    /// A project's webhook secret and pull-request TTL.
    pub fn webhook(&self, project_id: &str) -> Result<Option<(String, Option<u64>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT secret, ttl_seconds FROM webhooks WHERE project_id = ?1",
                params![project_id],
                |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|t| t as u64))),
            )
            .optional()?)
    }

    /// Records the rules a branch was masked with (JSON, Neon's shape).
    pub fn set_branch_masking(&self, branch_id: &str, rules_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO branch_masking (branch_id, rules) VALUES (?1, ?2) ON CONFLICT (branch_id) DO UPDATE SET rules = excluded.rules",
            params![branch_id, rules_json],
        )?;
        Ok(())
    }

    /// Records what a branch keeps of its past.
    pub fn set_branch_history(&self, branch_id: &str, h: &HistoryPolicy) -> Result<()> {
        self.conn.execute(
            "INSERT INTO branch_history (branch_id, window_seconds, snapshot_every_seconds, keep) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (branch_id) DO UPDATE SET window_seconds = excluded.window_seconds, snapshot_every_seconds = excluded.snapshot_every_seconds, keep = excluded.keep",
            params![branch_id, h.window_seconds, h.snapshot_every_seconds, h.keep],
        )?;
        Ok(())
    }

    /// Forgets a branch's history settings (it keeps no past any more).
    pub fn clear_branch_history(&self, branch_id: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM branch_history WHERE branch_id = ?1",
            params![branch_id],
        )?;
        Ok(())
    }

    /// What a branch keeps of its past, if anything.
    pub fn branch_history(&self, branch_id: &str) -> Result<Option<HistoryPolicy>> {
        Ok(self
            .conn
            .query_row(
                "SELECT window_seconds, snapshot_every_seconds, keep FROM branch_history WHERE branch_id = ?1",
                params![branch_id],
                history_row,
            )
            .optional()?)
    }

    /// Every branch that keeps some of its past, with its settings.
    pub fn branch_histories(&self) -> Result<Vec<(String, HistoryPolicy)>> {
        let mut stmt = self.conn.prepare(
            "SELECT window_seconds, snapshot_every_seconds, keep, branch_id FROM branch_history",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(3)?, history_row(r)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn insert_snapshot(&self, s: &Snapshot) -> Result<()> {
        self.conn.execute(
            &format!("INSERT INTO snapshots ({SNAPSHOT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            params![
                s.id,
                s.project_id,
                s.source_branch_id,
                s.name,
                s.created_at.to_rfc3339(),
                s.expires_at.map(|t| t.to_rfc3339()),
                s.lsn,
                s.data_dir.to_string_lossy(),
                s.manual,
                s.reason,
                s.masked
            ],
        )?;
        Ok(())
    }

    /// A project's snapshots, newest first.
    pub fn snapshots(&self, project_id: &str) -> Result<Vec<Snapshot>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE project_id = ?1 ORDER BY created_at DESC, id DESC"
        ))?;
        let rows = stmt.query_map(params![project_id], snapshot_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Every snapshot of every project.
    pub fn all_snapshots(&self) -> Result<Vec<Snapshot>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots"))?;
        let rows = stmt.query_map([], snapshot_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn delete_snapshot(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM snapshots WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Records (or replaces) where a project's root comes from.
    pub fn set_project_source(&self, project_id: &str, source_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO project_sources (project_id, source) VALUES (?1, ?2) \
             ON CONFLICT (project_id) DO UPDATE SET source = excluded.source",
            params![project_id, source_json],
        )?;
        Ok(())
    }

    /// How often a project's root is made again (`None`: by hand only).
    pub fn set_root_schedule(&self, project_id: &str, seconds: Option<i64>) -> Result<()> {
        self.conn.execute(
            "UPDATE project_sources SET schedule_seconds = ?2 WHERE project_id = ?1",
            params![project_id, seconds],
        )?;
        Ok(())
    }

    /// Records that a project's root was made again now.
    pub fn set_root_refreshed(&self, project_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "UPDATE project_sources SET refreshed_at = ?2 WHERE project_id = ?1",
            params![project_id, at.to_rfc3339()],
        )?;
        Ok(())
    }

    /// Where a project's root comes from, if recorded.
    pub fn project_source(&self, project_id: &str) -> Result<Option<RootSourceRecord>> {
        let row: Option<(String, Option<i64>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT source, schedule_seconds, refreshed_at FROM project_sources WHERE project_id = ?1",
                params![project_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.map(|(source, schedule_seconds, at)| RootSourceRecord {
            source,
            schedule_seconds,
            refreshed_at: at
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
        }))
    }

    /// Projects whose root is made again on a schedule.
    pub fn scheduled_roots(&self) -> Result<Vec<(String, RootSourceRecord)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT project_id FROM project_sources WHERE schedule_seconds IS NOT NULL")?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(rec) = self.project_source(&id)? {
                out.push((id, rec));
            }
        }
        Ok(out)
    }

    /// Records that a branch took its parent's state now, with that schema's digest.
    pub fn set_branch_fork(
        &self,
        branch_id: &str,
        forked_at: DateTime<Utc>,
        schema_digest: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO branch_forks (branch_id, forked_at, schema_digest, baseline_writes, baseline_digest) VALUES (?1, ?2, ?3, NULL, NULL) \
             ON CONFLICT (branch_id) DO UPDATE SET forked_at = excluded.forked_at, schema_digest = excluded.schema_digest, baseline_writes = NULL, baseline_digest = NULL",
            params![branch_id, forked_at.to_rfc3339(), schema_digest],
        )?;
        Ok(())
    }

    /// Records a branch's own baseline (writes and schema digest) now.
    pub fn set_branch_baseline(&self, branch_id: &str, writes: i64, digest: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE branch_forks SET baseline_writes = ?2, baseline_digest = ?3 WHERE branch_id = ?1",
            params![branch_id, writes, digest],
        )?;
        Ok(())
    }

    /// When a branch last took its parent's state, and its baseline since.
    pub fn branch_fork(&self, branch_id: &str) -> Result<Option<BranchFork>> {
        type Row = (String, Option<String>, Option<i64>, Option<String>);
        let row: Option<Row> = self
            .conn
            .query_row(
                "SELECT forked_at, schema_digest, baseline_writes, baseline_digest FROM branch_forks WHERE branch_id = ?1",
                params![branch_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        Ok(
            row.and_then(|(at, schema_digest, baseline_writes, baseline_digest)| {
                DateTime::parse_from_rfc3339(&at).ok().map(|t| BranchFork {
                    forked_at: t.with_timezone(&Utc),
                    schema_digest,
                    baseline_writes,
                    baseline_digest,
                })
            }),
        )
    }

    /// Records a branch's own server settings (JSON object).
    pub fn set_branch_pg_settings(&self, branch_id: &str, settings_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO branch_pg_settings (branch_id, settings) VALUES (?1, ?2) ON CONFLICT (branch_id) DO UPDATE SET settings = excluded.settings",
            params![branch_id, settings_json],
        )?;
        Ok(())
    }

    /// A branch's own server settings, when it has any.
    pub fn branch_pg_settings(&self, branch_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT settings FROM branch_pg_settings WHERE branch_id = ?1",
                params![branch_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records what the import of a project's root copied (JSON).
    pub fn set_import_report(&self, project_id: &str, report_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO project_import_reports (project_id, report) VALUES (?1, ?2) ON CONFLICT (project_id) DO UPDATE SET report = excluded.report",
            params![project_id, report_json],
        )?;
        Ok(())
    }

    /// What the import of a project's root copied, when it was a logical import.
    pub fn import_report(&self, project_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT report FROM project_import_reports WHERE project_id = ?1",
                params![project_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The rules a branch was masked with, when it was masked itself (not by
    /// inheriting a masked parent).
    pub fn branch_masking(&self, branch_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT rules FROM branch_masking WHERE branch_id = ?1",
                params![branch_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The project's masking key, made by `fresh` the first time.
    pub fn project_mask_key(
        &self,
        project_id: &str,
        fresh: impl FnOnce() -> String,
    ) -> Result<String> {
        let key = fresh();
        self.conn.execute(
            "INSERT INTO project_mask_keys (project_id, mask_key) VALUES (?1, ?2) ON CONFLICT (project_id) DO NOTHING",
            params![project_id, key],
        )?;
        Ok(self.conn.query_row(
            "SELECT mask_key FROM project_mask_keys WHERE project_id = ?1",
            params![project_id],
            |r| r.get(0),
        )?)
    }

    /// The passwords pgfork set for the roles of a branch.
    pub fn role_passwords(&self, branch_id: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT role, password FROM role_passwords WHERE branch_id = ?1 ORDER BY role",
        )?;
        let rows = stmt.query_map(params![branch_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// A password pgfork set for a role of a branch.
    pub fn role_password(&self, branch_id: &str, role: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT password FROM role_passwords WHERE branch_id = ?1 AND role = ?2",
                params![branch_id, role],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The recorded verifier of `role` on a branch.
    pub fn role_secret(&self, branch_id: &str, role: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT secret FROM role_secrets WHERE branch_id = ?1 AND role = ?2",
                params![branch_id, role],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records why gc trashed a branch (`None`: the user did).
    pub fn set_trash_reason(&self, id: &str, reason: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE branches SET trash_reason = ?2 WHERE id = ?1",
            params![id, reason],
        )?;
        Ok(())
    }

    /// Why gc trashed a branch, if it did.
    pub fn trash_reason(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT trash_reason FROM branches WHERE id = ?1",
                [id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Reasons gc may no longer use for a branch.
    pub fn spared(&self, id: &str) -> Result<Vec<String>> {
        let s: Option<String> = self
            .conn
            .query_row("SELECT spared FROM branches WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(s.unwrap_or_default()
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Recovering a branch gc took: it is spared that reason from now on, in the
    /// same transaction that makes it live again.
    pub fn spare_trash_reason(&self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE branches SET spared = CASE WHEN trash_reason IS NULL OR (',' || spared || ',') LIKE ('%,' || trash_reason || ',%') THEN spared WHEN spared = '' THEN trash_reason ELSE spared || ',' || trash_reason END, trash_reason = NULL WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// The trashed branch that has held a port longest, if it was deleted before
    /// `before` (ports of live branches are never taken).
    pub fn oldest_trashed_with_port(&self, before: DateTime<Utc>) -> Result<Option<Branch>> {
        let sql = format!(
            "SELECT {BRANCH_COLS} FROM branches WHERE state = 'deleted' AND port <> 0 AND deleted_at <= ?1 ORDER BY deleted_at, id LIMIT 1"
        );
        Ok(self
            .conn
            .query_row(&sql, [ts(before)], branch_from_row)
            .optional()?)
    }

    /// A trashed branch gives its port up (port 0); recover picks a new one.
    pub fn release_port(&self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE branches SET port = 0 WHERE id = ?1 AND state = 'deleted'",
            [id],
        )?;
        Ok(())
    }

    /// Removes a branch row for good. Children keep the purged parent's id as history
    /// (they are physically independent clones, so they keep working).
    pub fn purge_branch(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM branches WHERE id = ?1", [id])?;
        Ok(())
    }
}

struct BorrowedStore<'c> {
    conn: &'c Connection,
}

impl BorrowedStore<'_> {
    fn insert_project(&self, p: &Project) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO projects (id, name, pg_major, db_name, role_name, created_at, superuser) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![p.id, p.name, p.pg_major, p.db_name, p.role_name, ts(p.created_at), p.superuser],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::ProjectExists(p.name.clone())
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    fn insert_branch_inner(&self, b: &Branch, project_name: &str) -> Result<()> {
        self.conn
            .execute(
                &format!("INSERT INTO branches ({BRANCH_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"),
                params![
                    b.id,
                    b.project_id,
                    b.name,
                    b.parent_id,
                    b.state.as_str(),
                    b.port,
                    b.password,
                    path_str(&b.data_dir)?,
                    b.clone_method,
                    ts(b.created_at),
                    ts(b.updated_at),
                    b.expires_at.map(ts),
                    b.protected,
                    b.git_branch,
                    b.masked,
                    b.deleted_at.map(ts),
                    path_str(&b.home_dir)?,
                    b.parent_lsn,
                    b.after_create,
                    b.suspend_timeout_seconds,
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::BranchExists {
                        project: project_name.to_string(),
                        name: b.name.clone(),
                    }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
