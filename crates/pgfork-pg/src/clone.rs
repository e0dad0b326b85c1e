//! Cloning a cluster: the invariant that matters most (DESIGN.md §4).
//!
//! A stopped cluster is consistent on disk, so a plain copy-on-write clone of its
//! directory is a valid cluster.
//!
//! A running cluster is not: its data files change while they are being cloned, and a
//! clone of them alone *often starts and passes smoke tests while being corrupt*. The
//! recipe that makes it consistent is the one pg_basebackup uses, done with reflinks:
//!
//! 1. In one session: a temporary physical replication slot that reserves WAL now, so
//!    nothing the clone needs is recycled meanwhile (dropped when the session ends).
//! 2. `pg_backup_start(label, fast => true)`: an immediate checkpoint; full-page writes
//!    are forced so torn pages in the clone are repaired by WAL replay.
//! 3. Clone the data files (not `pg_wal`, not runtime state).
//! 4. `pg_backup_stop()`: writes the backup-end record and returns the `backup_label`
//!    (and `tablespace_map`) contents.
//! 5. Clone `pg_wal` *after* the stop, so it contains everything from the checkpoint up
//!    to and past the backup-end record.
//! 6. Write `backup_label` into the clone. Its Postgres then starts with recovery from
//!    the checkpoint and is consistent once it replays past the backup end.
//!
//! A parent that is a standby (the root of a project that follows production) takes
//! the same steps, as pg_basebackup does from a standby, with two differences. The
//! backup's end is the standby's `minRecoveryPoint`, read from `pg_control` at start,
//! so `global/pg_control` is cloned *last*, after the stop and the WAL (a control file
//! older than the data would end recovery too early). And the clone must not stay a
//! standby: its recovery signal and connection to the primary are removed, so it
//! replays what it has, ends recovery and becomes a primary of its own that never
//! streams from (or archives to) production.

use crate::sql::{connect, sql_err};
use crate::{Instance, PgError, ServerUser};
use pgfork_core::Progress;
use pgfork_cow::{CloneMethod, TreeOptions, TreeStats, Visit};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a clone did, for logs, metadata and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct CloneReport {
    pub online: bool,
    /// The parent's WAL position at the backup stop (online clones only).
    pub lsn: Option<String>,
    pub files: u64,
    pub bytes: u64,
    pub backup_start: Duration,
    pub data_clone: Duration,
    pub backup_stop: Duration,
    pub wal_clone: Duration,
}

/// Entries that never belong in a clone, relative to PGDATA. Same list as
/// pg_basebackup's exclusions: runtime state that the new cluster recreates.
fn pgdata_filter(rel: &Path, online: bool) -> Visit {
    let s = rel.to_string_lossy();
    let top = rel.components().count() == 1;
    if top {
        match s.as_ref() {
            "postmaster.pid" | "postmaster.opts" => return Visit::Skip,
            // A running cluster has no backup_label of its own (non-exclusive backups);
            // a stopped never-started clone does, and needs it.
            "backup_label" | "tablespace_map" if online => return Visit::Skip,
            "pg_wal" if online => return Visit::EmptyDir,
            "pg_replslot" | "pg_stat_tmp" | "pg_dynshmem" | "pg_notify" | "pg_serial"
            | "pg_snapshots" | "pg_subtrans" => return Visit::EmptyDir,
            _ => {}
        }
    }
    if s == "pg_wal/archive_status" {
        return Visit::EmptyDir;
    }
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name == "pg_internal.init" || name.starts_with("pgsql_tmp") {
        return Visit::Skip;
    }
    Visit::Clone
}

fn check_tablespaces(pgdata: &Path) -> Result<(), PgError> {
    // A separate WAL directory (initdb --waldir) would be cloned as a symlink, and the
    // clone would write its WAL into the original's: refuse rather than corrupt.
    if let Ok(target) = std::fs::read_link(pgdata.join("pg_wal")) {
        return Err(PgError::Unsupported(format!(
            "{} keeps its WAL in {} (initdb --waldir), which pgfork cannot branch yet: move pg_wal back into the data directory",
            pgdata.display(),
            target.display()
        )));
    }
    let dir = pgdata.join("pg_tblspc");
    let has_any = std::fs::read_dir(&dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    tracing::debug!(dir = %dir.display(), has_any, "tablespace check");
    if has_any {
        return Err(PgError::Unsupported(format!(
            "{} uses tablespaces outside its data directory, which pgfork cannot branch yet: move them into pg_default",
            pgdata.display()
        )));
    }
    Ok(())
}

fn tree_opts<'a>(
    method: CloneMethod,
    user: &ServerUser,
    filter: &'a (dyn Fn(&Path) -> Visit + Sync),
    progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
) -> TreeOptions<'a> {
    TreeOptions {
        method,
        owner: user.owner(),
        filter,
        progress,
        threads: 0,
    }
}

/// A clone never follows or reaches its parent's source: a standby's clone loses its
/// recovery signal and connection settings (it becomes a primary), and the password file
/// a root keeps for its source (standby or subscription) is never a branch's.
fn make_independent(user: &ServerUser, dst: &Path) -> Result<(), PgError> {
    if dst.join("standby.signal").exists() || dst.join(crate::import::PRIMARY_PASSFILE).exists() {
        crate::import::detach_from_primary(user, dst)?;
    }
    Ok(())
}

/// Clones a stopped cluster. The caller guarantees it is stopped (and stays so).
pub fn clone_stopped(
    src: &Path,
    dst: &Path,
    method: CloneMethod,
    user: &ServerUser,
    progress: Option<&Progress>,
) -> Result<CloneReport, PgError> {
    check_tablespaces(src)?;
    let filter = |rel: &Path| pgdata_filter(rel, false);
    let cb = |done: u64, total: u64| {
        if let Some(p) = progress {
            p.set(done, total)
        }
    };
    let t = Instant::now();
    let stats: TreeStats =
        pgfork_cow::clone_tree(src, dst, &tree_opts(method, user, &filter, Some(&cb)))?;
    make_independent(user, dst)?;
    Ok(CloneReport {
        online: false,
        files: stats.files,
        bytes: stats.bytes,
        data_clone: t.elapsed(),
        ..Default::default()
    })
}

/// Clones a running cluster with the online recipe; the parent is never stopped or
/// paused. `dst` must not exist or be empty.
pub async fn clone_running(
    parent: &Instance,
    major: u32,
    dst: &Path,
    method: CloneMethod,
    user: &ServerUser,
    progress: Option<Arc<Progress>>,
    label: &str,
) -> Result<CloneReport, PgError> {
    check_tablespaces(&parent.pgdata)?;
    let client = connect(parent, "postgres").await?;
    let mut report = CloneReport {
        online: true,
        ..Default::default()
    };
    let standby: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(sql_err("ask whether the parent is a standby"))?
        .get(0);

    // 1. Pin WAL from now on for the life of this session.
    let slot = format!(
        "pgfork_{}_{}",
        std::process::id(),
        label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(40)
            .collect::<String>()
    )
    .to_lowercase();
    client
        .execute(
            "SELECT pg_create_physical_replication_slot($1, true, true)",
            &[&slot],
        )
        .await
        .map_err(sql_err("reserve WAL with a temporary replication slot"))?;

    // 2. Backup start with an immediate checkpoint.
    let t = Instant::now();
    let start_sql = if major >= 15 {
        "SELECT pg_backup_start($1, true)::text"
    } else {
        "SELECT pg_start_backup($1, true, false)::text"
    };
    client
        .query_one(start_sql, &[&label])
        .await
        .map_err(sql_err("pg_backup_start"))?;
    report.backup_start = t.elapsed();

    // 3. Data files. On failure, the backup is aborted by closing the session, which is
    //    what happens when `client` is dropped on the error path.
    let t = Instant::now();
    let (src, dst_owned, user_owned, prog) = (
        parent.pgdata.clone(),
        dst.to_path_buf(),
        user.clone(),
        progress.clone(),
    );
    let stats = tokio::task::spawn_blocking(move || {
        clone_tree_blocking(
            &src,
            &dst_owned,
            method,
            &user_owned,
            prog.as_deref(),
            Online::Yes { standby },
        )
    })
    .await
    .map_err(|e| PgError::Unsupported(format!("clone worker panicked: {e}")))??;
    report.data_clone = t.elapsed();
    // Tests hold the clone here to change the parent mid-clone (a new tablespace); a
    // `sleep` action must not block a runtime thread.
    let _ = tokio::task::spawn_blocking(|| fail::fail_point!("clone-after-data-files")).await;

    // 4. Backup stop: the label that makes the clone recover to consistency.
    let t = Instant::now();
    let stop_sql = if major >= 15 {
        "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)"
    } else {
        "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)"
    };
    let row = client
        .query_one(stop_sql, &[])
        .await
        .map_err(sql_err("pg_backup_stop"))?;
    report.backup_stop = t.elapsed();
    let lsn: String = row.get(0);
    let label_file: String = row.get(1);
    let spcmap: Option<String> = row.get(2);
    // A tablespace created while the data files were being cloned lives outside
    // PGDATA: the clone would point at the parent's files. Look again after the stop.
    check_tablespaces(&parent.pgdata).map_err(|_| {
        PgError::Unsupported(
            "a tablespace was created on the parent while it was being branched; pgfork cannot branch tablespaces outside the data directory yet: drop it (or move its tables to pg_default) and try again".into(),
        )
    })?;
    if spcmap.as_deref().is_some_and(|m| !m.trim().is_empty()) {
        return Err(PgError::Unsupported(
            "the parent uses tablespaces outside its data directory, which pgfork cannot branch yet: move them into pg_default".into(),
        ));
    }

    // 5. WAL, cloned after the stop so it reaches the backup-end record.
    let t = Instant::now();
    let (src_wal, dst_wal, user_owned) = (
        parent.pgdata.join("pg_wal"),
        dst.join("pg_wal"),
        user.clone(),
    );
    let wal_stats = tokio::task::spawn_blocking(move || {
        let filter = |rel: &Path| {
            if rel == Path::new("archive_status") {
                Visit::EmptyDir
            } else {
                Visit::Clone
            }
        };
        pgfork_cow::clone_tree(
            &src_wal,
            &dst_wal,
            &tree_opts(method, &user_owned, &filter, None),
        )
    })
    .await
    .map_err(|e| PgError::Unsupported(format!("clone worker panicked: {e}")))??;
    report.wal_clone = t.elapsed();

    // 5b. From a standby: the control file last (its minRecoveryPoint is the backup's
    //     end), and the clone made a primary of its own.
    if standby {
        let (src_ctl, dst_ctl) = (
            parent.pgdata.join("global/pg_control"),
            dst.join("global/pg_control"),
        );
        pgfork_cow::clone_file(&src_ctl, &dst_ctl, method, user.owner())?;
    }

    make_independent(user, dst)?;

    // 6. The label (and tablespace map) turn the clone into a restorable backup.
    crate::instance::write_owned(user, &dst.join("backup_label"), &label_file)?;
    drop(client); // ends the session: the temporary slot goes with it.

    report.lsn = Some(lsn);
    report.files = stats.files + wal_stats.files;
    report.bytes = stats.bytes + wal_stats.bytes;
    tracing::debug!(?report, "online clone done");
    Ok(report)
}

/// Whether a cluster being cloned runs, and is a standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Online {
    Yes { standby: bool },
}

fn clone_tree_blocking(
    src: &Path,
    dst: &Path,
    method: CloneMethod,
    user: &ServerUser,
    progress: Option<&Progress>,
    online: Online,
) -> Result<TreeStats, PgError> {
    let Online::Yes { standby } = online;
    let filter = move |rel: &Path| {
        // From a standby, the control file is cloned last, on its own.
        if standby && rel == Path::new("global/pg_control") {
            return Visit::Skip;
        }
        pgdata_filter(rel, true)
    };
    let cb = |done: u64, total: u64| {
        if let Some(p) = progress {
            p.set(done, total)
        }
    };
    Ok(pgfork_cow::clone_tree(
        src,
        dst,
        &tree_opts(method, user, &filter, Some(&cb)),
    )?)
}

/// A deliberately wrong clone of a running cluster, kept only so tests can prove that
/// the consistency checks detect corruption. In `cp -a` order it copies the data
/// files (`base/`) first, calls `meanwhile` (tests issue a `CHECKPOINT` there, as
/// happens during any copy that spans a checkpoint), then the control file, WAL and
/// commit log: no backup mode, no backup_label. Recovery then starts from a checkpoint
/// newer than the data files and never replays the changes in between, while the
/// commit log says they committed.
#[doc(hidden)]
pub fn naive_clone_for_tests(
    src: &Path,
    dst: &Path,
    method: CloneMethod,
    user: &ServerUser,
    meanwhile: &dyn Fn(),
) -> Result<(), PgError> {
    let all = |_: &Path| Visit::Clone;
    let early_base = dst.with_extension("base-first");
    pgfork_cow::clone_tree(
        &src.join("base"),
        &early_base,
        &tree_opts(method, user, &all, None),
    )?;
    meanwhile();
    let rest = |rel: &Path| match rel.to_string_lossy().as_ref() {
        "postmaster.pid" | "postmaster.opts" => Visit::Skip,
        "base" => Visit::Skip,
        _ => Visit::Clone,
    };
    pgfork_cow::clone_tree(src, dst, &tree_opts(method, user, &rest, None))?;
    std::fs::rename(&early_base, dst.join("base")).map_err(PgError::io(dst))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_excludes_runtime_state() {
        let f = |p: &str, online| pgdata_filter(Path::new(p), online);
        assert!(matches!(f("postmaster.pid", true), Visit::Skip));
        assert!(matches!(f("pg_wal", true), Visit::EmptyDir));
        assert!(matches!(f("pg_wal", false), Visit::Clone));
        assert!(matches!(f("pg_wal/archive_status", false), Visit::EmptyDir));
        assert!(matches!(f("backup_label", true), Visit::Skip));
        assert!(matches!(f("backup_label", false), Visit::Clone));
        assert!(matches!(f("pg_replslot", false), Visit::EmptyDir));
        assert!(matches!(f("base/1/pg_internal.init", true), Visit::Skip));
        assert!(matches!(f("base/pgsql_tmp", true), Visit::Skip));
        assert!(matches!(f("base/1/1259", true), Visit::Clone));
        assert!(matches!(f("global/pg_control", true), Visit::Clone));
    }
}
