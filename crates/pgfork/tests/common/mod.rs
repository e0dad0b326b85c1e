//! Test harness: real pgfork binary, real daemon, real Postgres, real git, on a real
//! reflink filesystem (XFS loop image) or the plain disk (copy fallback).
//!
//! One XFS image per test run: `scripts/test.sh` makes it and exports
//! `PGFORK_TEST_XFS`; a test binary run on its own as root makes its own (once per
//! process) and unmounts it at exit. Without root there is no XFS, and every test that
//! needed it says so in the report (`PGFORK_TEST_REPORT`) instead of passing silently.
#![allow(dead_code)]

pub mod production;
#[allow(unused_imports)]
pub use production::Production;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Reflink,
    Copy,
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn report(line: &str) {
    eprintln!("[pgfork-test] {line}");
    if let Ok(path) = std::env::var("PGFORK_TEST_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Reports that a check could not run here. Under `CI` that is a failure, never a
/// silent green: CI installs everything and runs as root, so a skip there is a bug.
pub fn not_run(what: &str) {
    report(&format!("{what}: NOT RUN"));
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{what} did not run, and CI is set: CI must run every test (as root, with every driver installed)");
    }
}

fn sh(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

static OWN_XFS: OnceLock<Option<PathBuf>> = OnceLock::new();

extern "C" fn unmount_own_xfs() {
    if let Some(Some(dir)) = OWN_XFS.get() {
        // Stop anything still running from the image before unmounting it.
        let _ = Command::new("pkill")
            .args(["-9", "-f", &dir.display().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("umount").arg("-l").arg(dir).status();
        let _ = std::fs::remove_file(dir.with_extension("img"));
        let _ = std::fs::remove_dir(dir);
    }
}

/// The directory on a reflink filesystem for this run, or `None` (reported) without root.
pub fn xfs_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PGFORK_TEST_XFS").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    OWN_XFS
        .get_or_init(|| {
            if !is_root() {
                return None;
            }
            let dir = std::env::temp_dir().join(format!("pgfork-test-xfs-{}", std::process::id()));
            let img = dir.with_extension("img");
            std::fs::create_dir_all(&dir).expect("mkdir xfs mount point");
            let f = std::fs::File::create(&img).expect("create xfs image");
            f.set_len(30 << 30).expect("size xfs image");
            assert!(
                sh(
                    "mkfs.xfs",
                    &["-q", "-f", "-m", "reflink=1", &img.display().to_string()]
                ),
                "mkfs.xfs failed: apt-get install xfsprogs"
            );
            assert!(
                sh(
                    "mount",
                    &[
                        "-o",
                        "loop",
                        &img.display().to_string(),
                        &dir.display().to_string()
                    ]
                ),
                "mounting the XFS image failed"
            );
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(unmount_own_xfs) };
            Some(dir)
        })
        .clone()
}

static NEXT: AtomicU16 = AtomicU16::new(0);
static NEXT_SERVICE_PORT: AtomicU16 = AtomicU16::new(0);

/// A port for a server a test starts (the network API, code-server, a stand-in),
/// free on every interface now, from 30000–32767: above every env's branch ports and
/// below the kernel's ephemeral range, where the source port of any outgoing
/// connection could take it between this choice and the server's bind.
pub fn free_port() -> u16 {
    let offset = (std::process::id() % 27) * 100;
    for _ in 0..2_700 {
        let n = u32::from(NEXT_SERVICE_PORT.fetch_add(1, Ordering::SeqCst));
        let port = (30_000 + (offset + n) % 2_700) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 30000-32699 for a test server");
}

pub struct Env {
    pub name: String,
    pub home: PathBuf,
    pub repo: PathBuf,
    pub ports: String,
    pub storage: Storage,
    pub extra_env: Vec<(String, String)>,
    root: PathBuf,
}

pub fn pgfork_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgfork"))
}

impl Env {
    /// A fresh store and git repository. For `Reflink` without root this returns `None`
    /// after reporting that the reflink path did not run.
    pub fn new(name: &str, storage: Storage) -> Option<Env> {
        let base = match storage {
            Storage::Reflink => match xfs_dir() {
                Some(d) => d,
                None => {
                    not_run(&format!(
                        "storage reflink for {name} (needs root to make an XFS loop image)"
                    ));
                    return None;
                }
            },
            Storage::Copy => std::env::temp_dir(),
        };
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let root = base.join(format!("pgfork-t-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("home");
        let repo = root.join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir repo");
        // Distinct port ranges so parallel tests never collide.
        // Below the ephemeral port range, where client sockets could collide.
        let first = 20_000 + (std::process::id() % 25) as u16 * 400 + (n * 20) % 400;
        let ports = format!("{first}-{}", first + 19);
        let env = Env {
            name: name.to_string(),
            home,
            repo,
            ports,
            storage,
            extra_env: Vec::new(),
            root,
        };
        env.git_plain(&["init", "-q", "-b", "main"]);
        std::fs::write(env.repo.join("README.md"), "test\n").expect("write");
        env.git_plain(&["add", "."]);
        env.git_plain(&["commit", "-q", "-m", "init"]);
        let fs = match storage {
            Storage::Reflink => "xfs loop image",
            Storage::Copy => "plain disk",
        };
        report(&format!(
            "storage {}: ran {name} on {fs} ({})",
            match storage {
                Storage::Reflink => "reflink",
                Storage::Copy => "copy",
            },
            env.home.display()
        ));
        Some(env)
    }

    /// Serves the network API from this env's daemon, on a [`free_port`]; returns the
    /// base URL.
    pub fn serve_api(&mut self, tls: bool) -> String {
        let port = free_port();
        let scheme = if tls { "https" } else { "http" };
        self.extra_env.push((
            "PGFORK_API_LISTEN".into(),
            format!("{scheme}://127.0.0.1:{port}"),
        ));
        format!("{scheme}://127.0.0.1:{port}/api/v2")
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo, args)
    }

    /// A git command in `dir` (a work tree of the test repository), with this test's
    /// store, so the hooks talk to the test's daemon. Panics on failure.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_output(dir, args);
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn git_output(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = Command::new("git");
        c.args(args)
            .current_dir(dir)
            .env("PGFORK_HOME", &self.home)
            .env("PGFORK_PORTS", &self.ports)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .stdin(Stdio::null());
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c.output().expect("git runs")
    }

    fn git_plain(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(&self.repo, args)
    }

    pub fn command_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(pgfork_exe());
        c.args(args)
            .current_dir(dir)
            .env("PGFORK_HOME", &self.home)
            .env("PGFORK_PORTS", &self.ports)
            .env_remove("PGFORK_PROJECT")
            .env_remove("PGFORK_API")
            .env_remove("PGFORK_TEST_PAUSE")
            .stdin(Stdio::null());
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("pgfork runs")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pgfork {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs and expects failure; returns stderr (asserted to be one `error:` sentence).
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "pgfork {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors.len(),
            1,
            "expected exactly one error line, got: {stderr}"
        );
        errors[0].to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).expect("valid JSON")
    }

    pub fn branch(&self, name: &str) -> serde_json::Value {
        self.json(&["branch", "get", name])
    }

    /// The value of `var` in the env file of work tree `dir`.
    pub fn env_var(&self, dir: &Path, var: &str) -> Option<String> {
        let text = std::fs::read_to_string(dir.join(".env")).ok()?;
        text.lines().rev().find_map(|l| {
            l.strip_prefix(&format!("{var}="))
                .map(|v| v.trim_matches('"').to_string())
        })
    }

    /// Live and trashed branches by name → state.
    pub fn states(&self) -> std::collections::BTreeMap<String, String> {
        self.json(&["branch", "list", "--all"])
            .as_array()
            .expect("array")
            .iter()
            .map(|b| {
                (
                    b["name"].as_str().unwrap_or("").to_string(),
                    b["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub fn url(&self, branch: &str) -> String {
        self.ok(&["url", branch]).trim().to_string()
    }

    /// `pgfork init --from-env` with the source URL in the environment (never in argv),
    /// plus `args`; panics unless it succeeds.
    pub fn init_from(&self, source_url: &str, args: &[&str]) {
        let mut a = vec!["init", "--from-env", "PGFORK_TEST_SOURCE_URL"];
        a.extend_from_slice(args);
        let out = self
            .command(&a)
            .env("PGFORK_TEST_SOURCE_URL", source_url)
            .output()
            .expect("init");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Marks the repository as holding personal data (`[masking] pii = true`), with
    /// `rules` (TOML) as its masking rules in `masking.toml`.
    pub fn mark_pii(&self, rules: &str) {
        std::fs::write(self.repo.join("masking.toml"), rules).expect("rules");
        let toml = self.repo.join(".pgfork.toml");
        let mut text = std::fs::read_to_string(&toml).expect("config");
        text.push_str("\n[masking]\nrules = \"masking.toml\"\npii = true\n");
        std::fs::write(&toml, text).expect("config");
    }

    /// The superuser's URL on a branch: through its private socket (the superuser has
    /// no password, so no TCP URL reaches it). Starts the branch.
    pub fn superuser_url(&self, branch: &str) -> String {
        self.ok(&["branch", "start", branch]);
        let b = self.branch(branch);
        let projects = self.json(&["project", "list"]);
        let [project] = projects.as_array().expect("projects").as_slice() else {
            panic!("superuser_url needs an env with one project: {projects}");
        };
        let user = project["pgfork_superuser"]
            .as_str()
            .expect("the project names its superuser")
            .to_string();
        let layout = pgfork_api::runtime::layout(&self.home).expect("layout");
        let socket = layout.socket_dir(b["id"].as_str().expect("id"));
        format!(
            "postgresql:///postgres?host={}&port={}&user={user}",
            socket.display(),
            b["port"]
        )
    }

    pub fn init_sample(&self, scale: u32) {
        self.ok(&[
            "init",
            "--sample",
            "--scale",
            &scale.to_string(),
            "--no-hooks",
        ]);
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        let out = self.run(&["daemon", "status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.get("pid").and_then(|p| p.as_i64()).map(|p| p as i32)
    }

    /// Postmaster pids whose command line mentions this store.
    pub fn postmasters(&self) -> Vec<i32> {
        let needle = self.home.display().to_string();
        let mut pids = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    continue;
                };
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let zombie = stat
                    .rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
                    .unwrap_or(false);
                if !zombie
                    && cmd.contains("postgres")
                    && cmd.contains(" -D ")
                    && cmd.contains(&needle)
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.command(&["daemon", "stop"]).output();
        for pid in self.postmasters() {
            // SAFETY: killing a test's own leftover postmaster.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if std::env::var_os("PGFORK_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// psql against a URL; Err carries stderr.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(Path::new(PG_BIN).join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

pub fn psql_ok(url: &str, sql: &str) -> String {
    psql(url, sql).unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
}

/// pgbench's invariant: account, teller and branch balances each sum to the history's
/// deltas. Then amcheck (`bt_index_check` with heapallindexed) on every btree index.
/// Returns a description of the first violation, if any.
pub fn consistency_violation(url: &str) -> Option<String> {
    let sums = match psql(
        url,
        "SELECT (SELECT coalesce(sum(abalance),0) FROM pgbench_accounts) || ',' || (SELECT coalesce(sum(tbalance),0) FROM pgbench_tellers) || ',' || (SELECT coalesce(sum(bbalance),0) FROM pgbench_branches) || ',' || (SELECT coalesce(sum(delta),0) FROM pgbench_history)",
    ) {
        Ok(s) => s,
        Err(e) => return Some(format!("invariant query failed: {e}")),
    };
    let parts: Vec<&str> = sums.split(',').collect();
    if parts.len() != 4 || parts.iter().any(|p| *p != parts[0]) {
        return Some(format!(
            "balances disagree (accounts, tellers, branches, history): {sums}"
        ));
    }
    if let Err(e) = psql(
        url,
        "CREATE EXTENSION IF NOT EXISTS amcheck; SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid",
    ) {
        return Some(format!("amcheck found corruption: {e}"));
    }
    None
}

/// A pgbench write load against `url` until dropped.
pub struct Load(std::process::Child);

impl Load {
    pub fn start(url: &str, clients: u32) -> Load {
        let child = Command::new(Path::new(PG_BIN).join("pgbench"))
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                "600",
                url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbench runs");
        // Let it get going.
        std::thread::sleep(Duration::from_millis(700));
        Load(child)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One plain-HTTP request (loopback API); the status and the parsed JSON body.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let rest = base.strip_prefix("http://").expect("http base");
    let authority = rest.split('/').next().expect("authority");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to the API");
    let mut req =
        format!("{method} /api/v2{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    if let Some(k) = key {
        req.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" || method == "PATCH" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send");
    stream.write_all(body.as_bytes()).expect("send body");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, json)
}

pub fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// One masking rule (TOML) on `public.<table>.<column>` of database `postgres`.
pub fn mask_rule(table: &str, column: &str, function: &str) -> String {
    format!(
        "[[masking_rules]]\ndatabase_name = \"postgres\"\nschema_name = \"public\"\ntable_name = \"{table}\"\ncolumn_name = \"{column}\"\nmasking_function = \"{function}\"\n\n"
    )
}

/// A client session held open on `url` (psql in `pg_sleep`), visible to the server
/// under `app` as its application name before `open` returns.
pub struct HeldSession {
    url: String,
    app: String,
    child: std::process::Child,
}

impl HeldSession {
    pub fn open(url: &str, app: &str) -> HeldSession {
        let child = Command::new(Path::new(PG_BIN).join("psql"))
            .args(["-X", "-q", "-d", url, "-c", "SELECT pg_sleep(60)"])
            .env("PGAPPNAME", app)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        let held = HeldSession {
            url: url.to_string(),
            app: app.to_string(),
            child,
        };
        wait_until("the session to open", Duration::from_secs(10), || {
            held.count() == "1"
        });
        held
    }

    /// How many sessions of this application the server sees.
    pub fn count(&self) -> String {
        psql_ok(
            &self.url,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}'",
                self.app
            ),
        )
    }

    /// Ends it as its user would (the backend outlives a killed psql in pg_sleep).
    pub fn close(mut self) {
        psql_ok(
            &self.url,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
                self.app
            ),
        );
        let _ = self.child.wait();
    }
}

impl Drop for HeldSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository whose after-create command applies the branch's `migrate.sql`, if it
/// has one (with psql on PATH for it).
pub fn repo_with_migrations(name: &str, storage: Storage) -> Option<Env> {
    let mut env = Env::new(name, storage)?;
    env.ok(&["init", "--sample", "--scale", "1"]);
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml"))
        .expect("cfg")
        .replace(
            "# after_create = \"npm run migrate\"",
            "after_create = \"test ! -f migrate.sql || psql \\\"$DATABASE_URL\\\" -v ON_ERROR_STOP=1 -q -f migrate.sql\"",
        );
    assert!(
        cfg.contains("migrate.sql"),
        "the template has an after_create line"
    );
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "pgfork"]);
    env.ok(&["allow"]);
    let path = format!("{PG_BIN}:{}", std::env::var("PATH").unwrap_or_default());
    env.extra_env.push(("PATH".into(), path));
    Some(env)
}
