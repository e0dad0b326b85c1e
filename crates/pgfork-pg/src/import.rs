//! Root branch sources: sample data, logical import (pg_dump/pg_restore), physical import
//! (pg_basebackup) and adopting a stopped data directory.
//!
//! Every source builds into a directory the caller owns (a temporary one, renamed into
//! place when complete), and none of them ever writes to the source.

use crate::instance::{configure, run, write_owned};
use crate::sql::{connect, quote_ident, sql_err};
use crate::{Instance, PgError, PgInstall, PgInstalls, ServerUser};
use pgfork_core::Progress;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Facts about a source database, read with psql before importing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub dbname: String,
    pub major: u32,
    /// The bootstrap superuser (oid 10), which owns a physical copy.
    pub bootstrap_superuser: String,
    /// The size of the databases the role may connect to: what a physical copy moves,
    /// give or take the WAL (progress and ETA).
    pub cluster_bytes: u64,
}

/// The bytes of the files under `dir` (what a running dump or copy has written).
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Runs `work` while reporting the bytes under `dir` against `total` (0: unknown) twice
/// a second, for progress with a rate and an ETA.
fn with_bytes_progress<T>(
    progress: Option<&Progress>,
    dir: &Path,
    total: u64,
    work: impl FnOnce() -> Result<T, PgError>,
) -> Result<T, PgError> {
    let Some(p) = progress else {
        return work();
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let written = dir_bytes(dir);
                // Never past the end: the WAL streamed alongside can exceed the estimate.
                p.set(
                    if total > 0 {
                        written.min(total)
                    } else {
                        written
                    },
                    total,
                );
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        });
        let r = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })
}

/// A failed psql against a source, said as what the user must check.
pub(crate) fn source_unreachable(e: PgError) -> PgError {
    match e {
        PgError::Command { stderr, .. } if stderr.contains("connection to server") || stderr.contains("could not") || stderr.contains("authentication") => PgError::Unsupported(format!(
            "could not connect to the source database: {}: check the URL, that the server is reachable and that the role may log in",
            stderr.lines().last().unwrap_or("").trim_start_matches("psql: ").trim()
        )),
        other => other,
    }
}

/// Connects to `url` with psql and reads what an import needs to know.
pub fn source_info(
    install: &PgInstall,
    user: &ServerUser,
    url: &str,
) -> Result<SourceInfo, PgError> {
    let mut cmd = Command::new(install.bin("psql"));
    cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\t"]);
    crate::conninfo::connect_arg(&mut cmd, url);
    cmd.arg("-c")
        .arg("SELECT current_database(), current_setting('server_version_num'), (SELECT rolname FROM pg_roles WHERE oid = 10), \
              coalesce((SELECT sum(pg_database_size(oid)) FROM pg_database WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')), 0)")
        .env("PGCONNECT_TIMEOUT", "10");
    let out =
        run(user, &mut cmd, "connecting to the source database").map_err(source_unreachable)?;
    let fields: Vec<&str> = out.trim().split('\t').collect();
    match fields.as_slice() {
        [db, num, su, bytes] => Ok(SourceInfo {
            dbname: db.to_string(),
            major: num.parse::<u32>().map(|n| n / 10_000).unwrap_or(0),
            bootstrap_superuser: su.to_string(),
            cluster_bytes: bytes.parse().unwrap_or(0),
        }),
        _ => Err(PgError::Unsupported(format!(
            "unexpected answer from the source database: {out:?}"
        ))),
    }
}

/// Fills a running cluster with pgbench-shaped data at `scale` (scale 1 ≈ 15 MB:
/// 100,000 accounts, with branches, tellers, history and foreign keys). Server-side
/// generation avoids streaming rows through the client.
pub fn sample(
    install: &PgInstall,
    user: &ServerUser,
    inst: &Instance,
    dbname: &str,
    scale: u32,
    progress: Option<&Progress>,
) -> Result<(), PgError> {
    if let Some(p) = progress {
        p.phase(&format!("generating sample data (scale {scale})"), 0);
    }
    let mut cmd = Command::new(install.bin("pgbench"));
    cmd.arg("-i")
        .arg("-q")
        .args(["-I", "dtGvpf"])
        .arg("-s")
        .arg(scale.to_string())
        .arg("-h")
        .arg(&inst.socket_dir)
        .arg("-p")
        .arg(inst.port.to_string())
        .arg("-U")
        .arg(&inst.superuser)
        .arg(dbname);
    run(user, &mut cmd, "pgbench -i (sample data)")?;
    Ok(())
}

/// Creates a database in a running cluster.
pub async fn create_database(inst: &Instance, dbname: &str) -> Result<(), PgError> {
    if dbname == "postgres" {
        return Ok(());
    }
    let client = connect(inst, "postgres").await?;
    client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(dbname)))
        .await
        .map_err(sql_err("create the database"))
}

/// Dumps `url` in directory format with `jobs` parallel workers into `dump_dir`.
pub fn logical_dump(
    install: &PgInstall,
    user: &ServerUser,
    url: &str,
    dump_dir: &Path,
    jobs: u32,
    schema_only: bool,
    progress: Option<&Progress>,
) -> Result<(), PgError> {
    if let Some(p) = progress {
        p.phase("pg_dump", 0);
    }
    let mut cmd = Command::new(install.bin("pg_dump"));
    if schema_only {
        cmd.arg("--schema-only");
    }
    cmd.args(["-Fd", "--no-sync"])
        .arg(format!("-j{jobs}"))
        .arg("-f")
        .arg(dump_dir);
    crate::conninfo::connect_arg(&mut cmd, url);
    // A compressed dump has no size known in advance: bytes written and the rate.
    with_bytes_progress(progress, dump_dir, 0, || run(user, &mut cmd, "pg_dump"))?;
    Ok(())
}

/// Restores a directory-format dump into `dbname` of a running cluster with `jobs`
/// workers, reporting items restored against the dump's table of contents. Owners and
/// privileges are restored (the roles must exist: see [`crate::logical`]); never
/// subscriptions (a branch must not connect to a publisher), tablespaces (the source's
/// paths mean nothing here) or security labels (no label provider is loaded here).
pub fn logical_restore(
    install: &PgInstall,
    user: &ServerUser,
    inst: &Instance,
    dbname: &str,
    dump_dir: &Path,
    jobs: u32,
    progress: Option<&Progress>,
) -> Result<(), PgError> {
    let mut list = Command::new(install.bin("pg_restore"));
    list.arg("-l").arg(dump_dir);
    let toc = run(user, &mut list, "pg_restore -l")?;
    let total = toc
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count() as u64;
    if let Some(p) = progress {
        p.phase("pg_restore", total);
    }
    let mut cmd = Command::new(install.bin("pg_restore"));
    cmd.args([
        "-v",
        "--no-subscriptions",
        "--no-tablespaces",
        "--no-security-labels",
        "--exit-on-error",
    ])
    .arg(format!("-j{jobs}"))
    .arg("-h")
    .arg(&inst.socket_dir)
    .arg("-p")
    .arg(inst.port.to_string())
    .arg("-U")
    .arg(&inst.superuser)
    .arg("-d")
    .arg(dbname)
    .arg(dump_dir)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    user.apply(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| PgError::Spawn {
        what: "pg_restore".into(),
        source,
    })?;
    let mut errors = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        let mut done = 0u64;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("error:") {
                errors.push(line.clone());
            }
            if line.contains("finished item")
                || line.contains("creating ")
                || line.contains("processing data")
            {
                done += 1;
                if let Some(p) = progress {
                    p.set(done.min(total.saturating_sub(1)), total);
                }
            }
        }
    }
    let status = child.wait().map_err(|source| PgError::Spawn {
        what: "pg_restore".into(),
        source,
    })?;
    if !status.success() {
        return Err(PgError::Command {
            what: "pg_restore".into(),
            code: status.code(),
            stderr: errors.join("; "),
        });
    }
    if let Some(p) = progress {
        p.set(total, total);
    }
    Ok(())
}

/// Takes a physical copy of `url` with pg_basebackup (WAL streamed alongside, so the
/// copy is self-contained) into `pgdata`, then makes it a pgfork cluster. The source's
/// major must equal an installed one: a physical copy cannot change major versions.
pub fn physical(
    installs: &PgInstalls,
    user: &ServerUser,
    url: &str,
    pgdata: &Path,
    progress: Option<&Progress>,
) -> Result<(PgInstall, SourceInfo), PgError> {
    let (install, info) = base_backup(installs, user, url, pgdata, progress)?;
    detach_from_primary(user, pgdata)?;
    configure(user, pgdata, install.major)?;
    ensure_ident(user, pgdata)?;
    Ok((install, info))
}

/// The password file a standby root reads its primary's password from: inside its
/// PGDATA (0700), never in a setting a role could read, and removed from every clone.
pub const PRIMARY_PASSFILE: &str = "pgfork_primary.pgpass";

/// A physical copy of `url` that stays a streaming standby of it (a root that follows
/// production): pg_basebackup, then `standby.signal` and a `primary_conninfo` whose
/// password lives in [`PRIMARY_PASSFILE`]. No replication slot is made on the source:
/// a slot would keep production's WAL forever if pgfork went away.
pub fn standby(
    installs: &PgInstalls,
    user: &ServerUser,
    url: &str,
    pgdata: &Path,
    application_name: &str,
    progress: Option<&Progress>,
) -> Result<(PgInstall, SourceInfo), PgError> {
    let (install, info) = base_backup(installs, user, url, pgdata, progress)?;
    detach_from_primary(user, pgdata)?;
    let (clean, password) = crate::conninfo::split_password(url);
    let passfile = pgdata.join(PRIMARY_PASSFILE);
    let mut conninfo = clean.clone();
    // Relative: a postmaster runs in its data directory, which moves from the staging
    // area into place (and is a different one in every restore of a backup).
    let extra = [
        ("passfile", PRIMARY_PASSFILE.to_string()),
        ("application_name", application_name.to_string()),
    ];
    if clean.starts_with("postgresql://") || clean.starts_with("postgres://") {
        let mut u = url::Url::parse(&clean)
            .map_err(|e| PgError::Unsupported(format!("the source URL does not parse: {e}")))?;
        u.query_pairs_mut()
            .extend_pairs(extra.iter().map(|(k, v)| (*k, v.as_str())));
        conninfo = u.to_string();
    } else {
        for (k, v) in &extra {
            conninfo.push_str(&format!(
                " {k}='{}'",
                v.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    let pgpass_escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    write_owned(
        user,
        &passfile,
        &format!(
            "*:*:*:*:{}\n",
            pgpass_escape(password.as_deref().unwrap_or(""))
        ),
    )?;
    let auto = pgdata.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    text.push_str(&format!(
        "primary_conninfo = '{}'\nhot_standby = on\n",
        conninfo.replace('\'', "''")
    ));
    write_owned(user, &auto, &text)?;
    write_owned(user, &pgdata.join("standby.signal"), "")?;
    configure(user, pgdata, install.major)?;
    ensure_ident(user, pgdata)?;
    Ok((install, info))
}

/// pg_basebackup of `url` into `pgdata` with the installation of the source's major.
fn base_backup(
    installs: &PgInstalls,
    user: &ServerUser,
    url: &str,
    pgdata: &Path,
    progress: Option<&Progress>,
) -> Result<(PgInstall, SourceInfo), PgError> {
    let probe_install = installs.newest();
    let info = source_info(probe_install, user, url)?;
    let install = installs.for_major(info.major).map_err(|_| {
        PgError::Unsupported(format!(
            "the source runs PostgreSQL {}, but a physical copy needs the same major and only {} is installed here: install PostgreSQL {} or use --method logical",
            info.major,
            installs.installs.iter().map(|i| i.major.to_string()).collect::<Vec<_>>().join(", "),
            info.major
        ))
    })?;
    if let Some(p) = progress {
        p.phase("pg_basebackup", info.cluster_bytes);
    }
    user.create_private_dir(pgdata)?;
    let mut cmd = Command::new(install.bin("pg_basebackup"));
    cmd.arg("-D")
        .arg(pgdata)
        .args(["-X", "stream", "-c", "fast", "--no-sync"]);
    crate::conninfo::connect_arg(&mut cmd, url);
    with_bytes_progress(progress, pgdata, info.cluster_bytes, || {
        run(user, &mut cmd, "pg_basebackup")
    })?;
    Ok((install.clone(), info))
}

/// Adopts a stopped data directory by cloning it (reflink when the filesystems allow,
/// else a copy); the original is never modified. Returns the installation that serves
/// its major.
pub fn adopt_dir(
    installs: &PgInstalls,
    user: &ServerUser,
    src: &Path,
    pgdata: &Path,
    method: pgfork_cow::CloneMethod,
    progress: Option<&Progress>,
) -> Result<PgInstall, PgError> {
    let install = installs.for_data_dir(src)?.clone();
    if let Some(pf) = crate::instance::read_pid_file(src) {
        if crate::instance::process_alive(pf.pid) {
            return Err(PgError::DirInUse {
                path: src.to_path_buf(),
                pid: pf.pid,
            });
        }
    }
    if let Some(p) = progress {
        p.phase("cloning the data directory", 0);
    }
    crate::clone::clone_stopped(src, pgdata, method, user, progress)?;
    detach_from_primary(user, pgdata)?;
    configure(user, pgdata, install.major)?;
    ensure_ident(user, pgdata)?;
    Ok(install)
}

/// A root branch (or the child of a standby) is an independent primary: drop
/// standby/recovery signals, any replication settings that would make it follow (or
/// connect to) its source, and the password file a standby root keeps for that.
pub(crate) fn detach_from_primary(user: &ServerUser, pgdata: &Path) -> Result<(), PgError> {
    for stale in ["standby.signal", "recovery.signal", PRIMARY_PASSFILE] {
        match std::fs::remove_file(pgdata.join(stale)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PgError::io(pgdata.join(stale))(e)),
        }
    }
    let auto = pgdata.join("postgresql.auto.conf");
    if let Ok(text) = std::fs::read_to_string(&auto) {
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                let key = l.trim_start().split(['=', ' ']).next().unwrap_or("");
                !matches!(
                    key,
                    "primary_conninfo"
                        | "primary_slot_name"
                        | "restore_command"
                        | "recovery_target_timeline"
                )
            })
            .collect();
        write_owned(user, &auto, &(kept.join("\n") + "\n"))?;
    }
    Ok(())
}

fn ensure_ident(user: &ServerUser, pgdata: &Path) -> Result<(), PgError> {
    let ident = pgdata.join("pg_ident.conf");
    if !ident.exists() {
        write_owned(user, &ident, "")?;
    }
    Ok(())
}

/// Finds a superuser role of an adopted cluster by trying likely names over the
/// private socket (where pgfork's pg_hba trusts), and returns the bootstrap superuser.
pub async fn find_superuser(inst: &Instance, candidates: &[String]) -> Result<String, PgError> {
    let mut last = None;
    for name in candidates {
        let mut probe = inst.clone();
        probe.superuser = name.clone();
        match connect(&probe, "postgres").await {
            Ok(client) => {
                let row = client
                    .query_one("SELECT rolname::text FROM pg_roles WHERE oid = 10", &[])
                    .await
                    .map_err(sql_err("find the bootstrap superuser"))?;
                return Ok(row.get(0));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| PgError::Unsupported("no superuser candidates".into())))
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn bytes_written_count_every_file_below() {
        let dir = std::env::temp_dir().join(format!("pgfork-dir-bytes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).expect("dirs");
        std::fs::write(dir.join("top"), vec![0u8; 1000]).expect("file");
        std::fs::write(dir.join("a/b/deep"), vec![0u8; 234]).expect("file");
        assert_eq!(dir_bytes(&dir), 1234);
        assert_eq!(dir_bytes(&dir.join("missing")), 0);
        let p = Progress::default();
        let r = with_bytes_progress(Some(&p), &dir, 2000, || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            Ok::<_, PgError>(7)
        });
        assert_eq!(r.expect("work"), 7);
        let snap = p.snapshot();
        assert_eq!((snap.done, snap.total), (1234, 2000));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
