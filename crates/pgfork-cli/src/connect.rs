//! Reaching the API: a remote server (see `remote`), else the local daemon, started on
//! demand.

use anyhow::{bail, Context, Result};
use pgfork_api::Client;
use pgfork_core::layout::Layout;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The store this invocation uses: `PGFORK_HOME` when set; else the store the
/// repository in the current directory was initialised with (`git config
/// pgfork.home`, written by `pgfork init`), because GUI git clients and IDEs run hooks
/// without the shell's exports; else the default.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("PGFORK_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(h) = repo_home() {
        return h;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    pgfork_core::layout::default_home(|k| std::env::var_os(k), root)
}

/// The layout of the store this invocation uses (a deep home's sockets live in its
/// private runtime directory, made on first use).
pub fn layout() -> Result<Layout> {
    let home = home();
    pgfork_api::runtime::layout(&home).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            anyhow::anyhow!(
                "refusing to use the store's runtime directory: {e}: check who changed it, remove it, and run the command again"
            )
        } else {
            anyhow::anyhow!(
                "could not prepare the runtime directory for {}: {e}: set PGFORK_HOME to a shorter path",
                home.display()
            )
        }
    })
}

/// Whether a process exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        return stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')));
    }
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn repo_home() -> Option<PathBuf> {
    static HOME: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let cwd = std::env::current_dir().ok()?;
        let out = pgfork_git::repo::git_command(&cwd)
            .args(["config", "--get", REPO_HOME_KEY])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty())
            .then(|| PathBuf::from(text))
            .filter(|p| p.is_absolute())
    })
    .clone()
}

/// The git config key (in the repository's own, machine-local config) naming the
/// store the repository was initialised with.
pub const REPO_HOME_KEY: &str = "pgfork.home";

/// A client for the configured server, without starting anything.
pub fn client() -> Result<Client> {
    if let Some(remote) = crate::remote::active(&home())? {
        return crate::remote::client(&remote);
    }
    local_client()
}

/// The local daemon's client, whatever remote is in use: `pgfork daemon …` is about
/// this machine's daemon (stopping a team server is not a client's job).
pub fn local_client() -> Result<Client> {
    let socket = layout()?.socket;
    // The socket's directory must be ours, a real directory, not writable by others:
    // a planted one would answer our requests (and receive them) as the daemon.
    if let Some(dir) = socket.parent() {
        if dir.exists() {
            pgfork_api::runtime::check_private_dir(dir).map_err(|why| {
                anyhow::anyhow!(
                    "refusing to talk to the daemon: {why}: remove it and run the command again"
                )
            })?;
        }
    }
    Ok(Client::unix(socket))
}

/// A client whose daemon is known to answer; starts the local daemon when needed.
pub async fn ensure_daemon() -> Result<Client> {
    ensure(client()?).await
}

/// The local daemon, started when needed, whatever remote is in use.
pub async fn ensure_local_daemon() -> Result<Client> {
    ensure(local_client()?).await
}

async fn ensure(client: Client) -> Result<Client> {
    // An explicit command is the user asking for pgfork again: hooks may use it too.
    let _ = std::fs::remove_file(home().join("daemon.stopped"));
    // A remote server is not ours to start; its first answer (or silence) says enough.
    if client.is_remote() || client.ping().await {
        return Ok(client);
    }
    start_daemon(&client).await?;
    Ok(client)
}

async fn start_daemon(client: &Client) -> Result<()> {
    let home = home();
    let layout = layout()?;
    std::fs::create_dir_all(&home)
        .with_context(|| format!("could not create PGFORK_HOME {}", home.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&layout.daemon_log)
        .with_context(|| format!("could not open {}", layout.daemon_log.display()))?;
    let log_err = log.try_clone()?;
    let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe()
        .context("could not find the pgfork executable to start the daemon")?;
    let mut cmd = Command::new(exe);
    cmd.args(["daemon", "run"])
        .env("PGFORK_HOME", &home)
        // The daemon serves every repository: nothing of this invocation's git
        // environment (a hook's GIT_DIR of one work tree) or directory may reach it.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    pgfork_git::repo::scrub_git_env(&mut cmd);
    // SAFETY: setsid in the child only; detaches the daemon from our terminal so that
    // Ctrl-C on a CLI command never takes every branch down.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("could not start the pgfork daemon")?;
    let started = Instant::now();
    loop {
        if client.ping().await {
            // The daemon is not our child to wait for; reap it in the background if it
            // ever exits while we still run.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another CLI may have started a daemon at the same moment: ours lost the
            // lock race and exited. Wait for the winner instead of failing.
            if wait_for_other_daemon(client, &layout, log_len).await {
                return Ok(());
            }
            let text = std::fs::read_to_string(&layout.daemon_log).unwrap_or_default();
            let tail: String = text.get(log_len as usize..).unwrap_or("").to_string();
            let reason = tail
                .lines()
                .rev()
                .find(|l| l.contains("error"))
                .map(|l| l.split("error:").last().unwrap_or(l).trim().to_string())
                .unwrap_or_else(|| format!("it exited with {status}"));
            bail!(
                "the pgfork daemon could not start: {reason} (log: {})",
                layout.daemon_log.display()
            );
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "the pgfork daemon did not answer within 120 s: see {}",
                layout.daemon_log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// True when our daemon exited because another one holds the lock and that one answers.
async fn wait_for_other_daemon(client: &Client, layout: &Layout, log_from: u64) -> bool {
    let text = std::fs::read_to_string(&layout.daemon_log).unwrap_or_default();
    if !text
        .get(log_from as usize..)
        .unwrap_or("")
        .contains("already runs")
    {
        return false;
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if client.ping().await {
            return true;
        }
        // The winner died before it answered: nobody holds the lock any more.
        if lock_is_free(&layout.lock) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether no process holds the daemon's lock file.
fn lock_is_free(path: &std::path::Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return true;
    };
    // SAFETY: flock on a descriptor we own; released when `f` is closed.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) == 0 }
}
