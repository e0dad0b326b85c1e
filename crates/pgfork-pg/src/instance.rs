//! One Postgres cluster on disk and its postmaster.
//!
//! Postmasters are started detached (their own session), not as pg_ctl children: the
//! daemon can then restart without taking every branch down, and re-adopts them from
//! `postmaster.pid`. Readiness is read from the `ready` status Postgres writes into
//! `postmaster.pid`, polled every 2 ms, instead of pg_ctl's 100 ms polling, because
//! branch start latency is a product feature.

use crate::{PgError, PgInstall, ServerUser};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a cluster lives and how it is reached.
#[derive(Debug, Clone)]
pub struct Instance {
    pub pgdata: PathBuf,
    /// Private directory (0700, server user) holding the unix socket.
    pub socket_dir: PathBuf,
    pub port: u16,
    pub log_file: PathBuf,
    /// Bootstrap superuser role, used for pgfork's own connections over the socket.
    pub superuser: String,
    /// The branch's own WAL archive, when it keeps history.
    pub archive_dir: Option<PathBuf>,
}

/// The TCP exposure of a branch's Postgres: none. The daemon's proxy owns each
/// branch's public port and reaches Postgres over its private unix socket, so a
/// suspended branch can be woken by a connection and passwords are checked before.
pub fn tcp_listen_addresses() -> &'static str {
    ""
}

/// The settings pgfork puts in every cluster it creates or adopts.
const PGFORK_CONF: &str = "\
# Added by pgfork. Per-branch settings (port, sockets) are passed on the command line.
wal_level = replica
max_replication_slots = 10
max_wal_senders = 10
logging_collector = off
# On copy-on-write filesystems zero-filling new WAL segments only costs unique bytes.
wal_init_zero = off
log_line_prefix = '%m [%p] '
password_encryption = scram-sha-256
";

/// pg_hba.conf for every branch: the unix socket sits in a private 0700 directory, so
/// trust there is safe; TCP always needs the branch's password (SCRAM).
const PGFORK_HBA: &str = "\
# Written by pgfork: the socket directory is private (0700); TCP needs the password.
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
";

/// Runs a Postgres binary to completion as the server user, returning stdout.
pub(crate) fn run(user: &ServerUser, cmd: &mut Command, what: &str) -> Result<String, PgError> {
    user.apply(cmd);
    cmd.stdin(Stdio::null());
    let out = cmd.output().map_err(|source| PgError::Spawn {
        what: what.to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(PgError::Command {
            what: what.to_string(),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Throws away a cleanly stopped cluster's WAL and starts a fresh one (`pg_resetwal`).
/// Only for a cluster that was shut down cleanly: then nothing in the WAL is needed.
pub fn reset_wal(install: &PgInstall, user: &ServerUser, pgdata: &Path) -> Result<(), PgError> {
    let mut cmd = Command::new(install.bin("pg_resetwal"));
    cmd.arg("-D").arg(pgdata);
    run(user, &mut cmd, "pg_resetwal").map(|_| ())
}

/// Creates a new cluster at `pgdata` (which must not exist or be empty).
pub fn initdb(
    install: &PgInstall,
    user: &ServerUser,
    pgdata: &Path,
    superuser: &str,
) -> Result<(), PgError> {
    initdb_with(install, user, pgdata, superuser, false)
}

/// [`initdb`], with data checksums when `checksums` (a copy of a source that has them).
pub fn initdb_with(
    install: &PgInstall,
    user: &ServerUser,
    pgdata: &Path,
    superuser: &str,
    checksums: bool,
) -> Result<(), PgError> {
    user.create_private_dir(pgdata)?;
    let mut cmd = Command::new(install.bin("initdb"));
    cmd.arg("-D")
        .arg(pgdata)
        .arg("-U")
        .arg(superuser)
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ])
        // No per-file fsync: the daemon makes the finished tree durable with one syncfs.
        .arg("--no-sync");
    if checksums {
        cmd.arg("--data-checksums");
    }
    run(user, &mut cmd, "initdb")?;
    configure(user, pgdata, install.major)
}

/// Writes pgfork's settings and pg_hba into a cluster (new, imported or adopted).
pub fn configure(user: &ServerUser, pgdata: &Path, major: u32) -> Result<(), PgError> {
    let conf = pgdata.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
    if !text.contains("# Added by pgfork.") {
        text.push('\n');
        text.push_str(PGFORK_CONF);
        // A branch starts with crash recovery; one syncfs is much faster than fsyncing
        // every file. The setting exists from 14 on, and syncfs only on Linux.
        if major >= 14 && cfg!(target_os = "linux") {
            text.push_str("recovery_init_sync_method = syncfs\n");
        }
        write_owned(user, &conf, &text)?;
    }
    write_owned(user, &pgdata.join("pg_hba.conf"), PGFORK_HBA)
}

/// Writes a file inside a data directory, owned by the server user, mode 0600.
pub(crate) fn write_owned(user: &ServerUser, path: &Path, contents: &str) -> Result<(), PgError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(PgError::io(path))?;
    f.write_all(contents.as_bytes())
        .map_err(PgError::io(path))?;
    user.chown(path)
}

/// What `postmaster.pid` says about a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    pub pid: i32,
    pub status: String,
}

pub fn read_pid_file(pgdata: &Path) -> Option<PidFile> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    // Line 8 is the postmaster status: "starting", "stopping", "ready", "standby".
    let status = text.lines().nth(7).unwrap_or("").trim().to_string();
    Some(PidFile { pid, status })
}

/// Whether a process exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        return match stat.rsplit_once(')') {
            Some((_, rest)) => {
                !rest.trim_start().starts_with('Z') && !rest.trim_start().starts_with('X')
            }
            None => true,
        };
    }
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Whether `pid` is a postmaster serving `pgdata`. After a crash or reboot the pid in
/// a stale `postmaster.pid` may belong to an unrelated process: never trust (or
/// signal) it without checking its command line.
fn is_postmaster_of(pid: i32, pgdata: &Path) -> bool {
    if !process_alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let is_postgres = args
                .first()
                .is_some_and(|a| a.ends_with(b"postgres") || a.ends_with(b"postmaster"));
            let data = pgdata.as_os_str().as_encoded_bytes();
            is_postgres && args.windows(2).any(|w| w[0] == b"-D" && w[1] == data)
        }
        // No /proc (macOS): fall back to existence.
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

impl Instance {
    /// The pid of this cluster's live postmaster, if one runs.
    pub fn running_pid(&self) -> Option<i32> {
        let pf = read_pid_file(&self.pgdata)?;
        is_postmaster_of(pf.pid, &self.pgdata).then_some(pf.pid)
    }

    pub fn is_running(&self) -> bool {
        self.running_pid().is_some()
    }

    /// Runs and accepts connections (`ready` in `postmaster.pid`).
    pub fn is_ready(&self) -> bool {
        read_pid_file(&self.pgdata).is_some_and(|pf| {
            (pf.status == "ready" || pf.status == "standby")
                && is_postmaster_of(pf.pid, &self.pgdata)
        })
    }

    fn wait_ready(&self, pid: i32, timeout: Duration) -> Result<i32, PgError> {
        let started = Instant::now();
        loop {
            match read_pid_file(&self.pgdata) {
                Some(pf) if pf.pid == pid && (pf.status == "ready" || pf.status == "standby") => {
                    return Ok(pid)
                }
                _ if !process_alive(pid) => {
                    return Err(PgError::StartFailed {
                        pgdata: self.pgdata.clone(),
                        reason: format!(
                            "postgres exited while starting: {}",
                            log_tail(&self.log_file, 3)
                        ),
                        log: self.log_file.clone(),
                    })
                }
                _ if started.elapsed() > timeout => {
                    return Err(PgError::StartFailed {
                        pgdata: self.pgdata.clone(),
                        reason: format!("not ready after {} s", timeout.as_secs()),
                        log: self.log_file.clone(),
                    })
                }
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// Starts the postmaster detached and waits until it accepts connections (the
    /// `ready` status in postmaster.pid). Extra `-c name=value` settings may be given.
    pub fn start(
        &self,
        install: &PgInstall,
        user: &ServerUser,
        extra: &[(&str, String)],
        timeout: Duration,
    ) -> Result<i32, PgError> {
        if let Some(pid) = self.running_pid() {
            // Started by someone else (a re-adopted or concurrently started
            // postmaster): it is ours once it accepts connections.
            return self.wait_ready(pid, timeout);
        }
        user.create_private_dir(&self.socket_dir)?;
        // A stale pid file from a crash: Postgres handles it itself (it checks the pid).
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(PgError::io(&self.log_file))?;
        let log_err = log.try_clone().map_err(PgError::io(&self.log_file))?;
        let mut cmd = Command::new(install.bin("postgres"));
        cmd.arg("-D")
            .arg(&self.pgdata)
            .arg("-c")
            .arg(format!("port={}", self.port))
            .arg("-c")
            .arg(format!("listen_addresses={}", tcp_listen_addresses()))
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir.display()
            ))
            .arg("-c")
            .arg("unix_socket_permissions=0700");
        // A branch never archives into its parent's archive, nor waits for its standby;
        // one with history archives into its own.
        let compression = install.history_wal_compression();
        for (k, v) in crate::sanitize::always(self.archive_dir.as_deref(), compression) {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        for (k, v) in extra {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        user.apply(&mut cmd);
        // SAFETY: setsid is async-signal-safe; it detaches the postmaster from our
        // session so a terminal's Ctrl-C or the daemon's exit does not reach it.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| PgError::Spawn {
            what: "postgres".to_string(),
            source,
        })?;
        let pid = child.id() as i32;
        let started = Instant::now();
        loop {
            if let Some(pf) = read_pid_file(&self.pgdata) {
                if pf.pid == pid && (pf.status == "ready" || pf.status == "standby") {
                    break;
                }
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Err(PgError::StartFailed {
                        pgdata: self.pgdata.clone(),
                        reason: format!(
                            "postgres exited with {status}: {}",
                            log_tail(&self.log_file, 3)
                        ),
                        log: self.log_file.clone(),
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(PgError::io(&self.pgdata)(e)),
            }
            if started.elapsed() > timeout {
                // SAFETY: signalling the child we just spawned.
                unsafe { libc::kill(pid, libc::SIGQUIT) };
                let _ = child.wait();
                return Err(PgError::StartFailed {
                    pgdata: self.pgdata.clone(),
                    reason: format!("not ready after {} s", timeout.as_secs()),
                    log: self.log_file.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // Reap the postmaster whenever it exits so it never lingers as a zombie.
        std::thread::Builder::new()
            .name(format!("reap-{pid}"))
            .spawn(move || {
                let _ = child.wait();
            })
            .map_err(PgError::io(&self.pgdata))?;
        tracing::debug!(pgdata = %self.pgdata.display(), pid, ms = started.elapsed().as_millis() as u64, "postgres ready");
        Ok(pid)
    }

    /// Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit), escalating
    /// to immediate (SIGQUIT) and finally SIGKILL if Postgres does not go away.
    pub fn stop(&self, timeout: Duration) -> Result<(), PgError> {
        let Some(pid) = self.running_pid() else {
            return Ok(());
        };
        let steps = [
            (libc::SIGINT, timeout),
            (libc::SIGQUIT, Duration::from_secs(10)),
            (libc::SIGKILL, Duration::from_secs(5)),
        ];
        for (sig, wait) in steps {
            // SAFETY: signalling a postmaster identified by its pid file and alive.
            unsafe { libc::kill(pid, sig) };
            let t = Instant::now();
            while t.elapsed() < wait {
                if !process_alive(pid) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            tracing::warn!(pgdata = %self.pgdata.display(), pid, sig, "postgres did not stop in time, escalating");
        }
        Err(PgError::StopTimeout {
            pgdata: self.pgdata.clone(),
            secs: timeout.as_secs() + 15,
        })
    }
}

/// The last `n` non-empty lines of a log, joined, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
