//! What a shared daemon meets on a real machine: clients racing the idle reaper, a
//! connection during a long import, a full disk, the file-descriptor limit, a port
//! range used up by the trash, a reader that closes the pipe, a postmaster killed from
//! outside, and a crash at every step of every operation.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn with(env: &mut Env, key: &str, value: &str) {
    env.extra_env.push((key.into(), value.into()));
}

#[test]
fn clients_arriving_while_the_reaper_suspends_are_never_cut_off() {
    let Some(mut env) = Env::new("idle-race", Storage::Copy) else {
        return;
    };
    with(&mut env, "PGFORK_REAP_EVERY", "1s");
    with(&mut env, "PGFORK_IDLE_TIMEOUT", "1s");
    env.ok(&["init", "--empty", "--no-hooks"]);
    let url = env.url("main");
    // Sessions that start around the moment the branch turns idle: each must run its
    // whole (short) life without being terminated by a suspend.
    for i in 0..14 {
        // Gaps around the idle timeout: some sessions arrive while the reaper is
        // deciding; every fourth gap outlasts timeout + reaper tick, so the branch
        // surely suspends and the next session must wake it.
        let pause = if i % 4 == 3 {
            2600
        } else {
            700 + (i % 6) * 120
        };
        std::thread::sleep(Duration::from_millis(pause));
        let r = psql(&url, "SELECT pg_sleep(0.4); SELECT 1");
        assert!(r.is_ok(), "session {i} was cut off: {r:?}");
    }
    let suspends = std::fs::read_to_string(env.home.join("daemon.log"))
        .unwrap_or_default()
        .matches("idle: suspending")
        .count();
    report(&format!(
        "idle race: 14 sessions, {suspends} suspends between them, none cut off"
    ));
    assert!(
        suspends > 0,
        "the reaper never suspended: the race was not exercised"
    );
}

#[test]
fn a_suspended_branch_answers_during_a_long_import_elsewhere() {
    let Some(env) = Env::new("wake-during-import", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks", "--project", "quiet"]);
    let url = env
        .ok(&["url", "main", "--project", "quiet"])
        .trim()
        .to_string();
    env.ok(&["branch", "stop", "main", "--project", "quiet"]);
    let mut import = env
        .command(&[
            "init",
            "--sample",
            "--scale",
            "30",
            "--no-hooks",
            "--project",
            "big",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("import");
    // Wait until the import is really running (its build Postgres is up).
    wait_until("the import to start", Duration::from_secs(60), || {
        env.postmasters().len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    psql_ok(&url, "SELECT 1");
    let took = t.elapsed();
    let still_importing = import.try_wait().expect("wait").is_none();
    report(&format!(
        "wake during an import: {} ms (import still running: {still_importing})",
        took.as_millis()
    ));
    assert!(
        still_importing,
        "the import finished too early to prove anything"
    );
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} behind the import"
    );
    let _ = import.wait();
}

/// A small filesystem of its own mounted at the test's store (root only).
struct SmallFs {
    mnt: PathBuf,
    img: PathBuf,
}

impl SmallFs {
    fn mount(env: &Env, kind: &str, mib: u64) -> Option<SmallFs> {
        if !is_root() {
            not_run(&format!(
                "storage full-disk on {kind} (needs root to make a tiny loop filesystem)"
            ));
            return None;
        }
        let mnt = env.home.clone();
        let img = env.home.with_extension("img");
        std::fs::create_dir_all(&mnt).expect("mkdir");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(mib << 20))
            .expect("image");
        let mkfs = match kind {
            "xfs" => Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", "reflink=1"])
                .arg(&img)
                .status(),
            _ => Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&img)
                .status(),
        };
        assert!(mkfs.expect("mkfs").success(), "mkfs {kind}");
        assert!(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .status()
            .expect("mount")
            .success());
        report(&format!(
            "storage {}: ran {} on a {mib} MiB {kind} loop image (full-disk case)",
            if kind == "xfs" { "reflink" } else { "copy" },
            env.name
        ));
        Some(SmallFs { mnt, img })
    }

    /// Fills the filesystem until at most `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.mnt.join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("filler");
        let mut chunk = 1usize << 20;
        loop {
            let free = free_bytes(&self.mnt);
            if free <= leave {
                break;
            }
            let n = chunk.min((free - leave) as usize).max(4096);
            if f.write_all(&vec![7u8; n])
                .and_then(|_| f.sync_all())
                .is_err()
            {
                if chunk == 4096 {
                    break;
                }
                chunk = 4096;
            }
        }
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-9", "-f", &self.mnt.display().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        let _ = std::fs::remove_file(&self.img);
    }
}

fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.display().to_string()).expect("path");
    // SAFETY: statvfs into a zeroed struct we own.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bfree as u64 * s.f_frsize as u64
}

#[test]
fn a_create_on_a_full_reflink_store_is_refused_before_the_parent_is_touched() {
    let Some(env) = Env::new("full-reflink", Storage::Copy) else {
        return;
    };
    let Some(fs) = SmallFs::mount(&env, "xfs", 320) else {
        return;
    };
    env.init_sample(2);
    let main = env.url("main");
    let mut session = tokio_free_session(&main);
    let before = psql_ok(&main, "SELECT count(*) FROM pgbench_accounts");
    fs.fill(1 << 20);
    let err = env.fails(&["branch", "create", "f"]);
    assert!(err.contains("space"), "{err}");
    report(&format!("full reflink store: {err}"));
    assert_eq!(
        session.query("SELECT 42"),
        "42",
        "a session opened before the attempt still answers"
    );
    assert_eq!(
        psql_ok(&main, "SELECT count(*) FROM pgbench_accounts"),
        before
    );
    assert!(!env.states().contains_key("f"), "no half-made branch");
    session.close();
    env.ok(&["daemon", "stop"]);
}

/// A psql session kept open across other steps.
struct Session(std::process::Child);

fn tokio_free_session(url: &str) -> Session {
    let child = Command::new(Path::new(PG_BIN).join("psql"))
        .args(["-X", "-A", "-t", "-q", "-d", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let mut s = Session(child);
    assert_eq!(s.query("SELECT 1"), "1");
    s
}

impl Session {
    fn query(&mut self, sql: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let stdin = self.0.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{sql};").expect("send");
        stdin.flush().expect("flush");
        let stdout = self.0.stdout.as_mut().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        line.trim().to_string()
    }

    fn close(mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn delete_and_purge_on_a_full_metadata_disk_complete_or_change_nothing() {
    let Some(mut env) = Env::new("full-metadata", Storage::Copy) else {
        return;
    };
    // This test is about the metadata disk, not the create guard.
    with(&mut env, "PGFORK_MIN_FREE", "1M");
    let Some(fs) = SmallFs::mount(&env, "ext4", 320) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "b"]);
    env.ok(&["branch", "create", "c"]);
    let filler = fs.fill(0);
    // A soft delete needs a metadata write: done, or nothing changed.
    let out = env.run(&["branch", "delete", "b"]);
    report(&format!(
        "full metadata disk: soft delete {}",
        if out.status.success() {
            "completed".to_string()
        } else {
            format!(
                "changed nothing: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
    ));
    let state = env.states().get("b").cloned();
    if out.status.success() {
        assert_eq!(state.as_deref(), Some("deleted"));
    } else {
        assert_eq!(
            state.as_deref(),
            Some("running"),
            "a failed delete changed nothing"
        );
        assert!(env.branch("b")["data_dir"]
            .as_str()
            .is_some_and(|d| Path::new(d).join("PG_VERSION").exists()));
    }
    // The daemon restarts on the full disk and can free space.
    env.ok(&["daemon", "stop"]);
    env.ok(&["daemon", "start"]);
    env.ok(&["branch", "delete", "c", "--purge"]);
    assert!(!env.states().contains_key("c"));
    env.ok(&["branch", "delete", "b", "--purge"]);
    assert!(!env.states().contains_key("b"));
    let _ = std::fs::remove_file(filler);
    psql_ok(&env.url("main"), "SELECT 1");
    env.ok(&["daemon", "stop"]);
}

#[test]
fn at_the_fd_limit_the_api_and_other_branches_still_answer() {
    let Some(env) = Env::new("fd-limit", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "other"]);
    env.ok(&["daemon", "stop"]);
    // A daemon whose hard limit is 256 descriptors.
    let exe = pgfork_exe();
    let mut start = env.command(&["daemon", "start"]);
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' daemon start",
            exe.display()
        ))
        .envs(
            start
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .current_dir(&env.repo)
        .stdin(Stdio::null())
        .status()
        .expect("start");
    let _ = &mut start;
    assert!(status.success());
    let main_port = env.branch("main")["port"].as_u64().expect("port") as u16;
    let idle: Vec<std::net::TcpStream> = (0..400)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", main_port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    env.ok(&["branch", "list"]);
    let api = t.elapsed();
    let t = Instant::now();
    psql_ok(&env.url("other"), "SELECT 1");
    let other = t.elapsed();
    report(&format!(
        "fd limit 256 with {} idle connections: API {} ms, another branch {} ms",
        idle.len(),
        api.as_millis(),
        other.as_millis()
    ));
    assert!(api < Duration::from_secs(1), "API took {api:?}");
    assert!(
        other < Duration::from_secs(1),
        "another branch took {other:?}"
    );
    drop(idle);
    env.ok(&["daemon", "stop"]);
}

#[test]
fn the_trash_gives_up_ports_when_the_range_is_full() {
    let Some(mut env) = Env::new("trash-ports", Storage::Copy) else {
        return;
    };
    let first: u16 = env
        .ports
        .split('-')
        .next()
        .expect("first")
        .parse()
        .expect("port");
    env.ports = format!("{first}-{}", first + 2);
    with(&mut env, "PGFORK_TRASH_PORT_HOLD", "0s");
    env.ok(&["init", "--empty", "--no-hooks"]);
    let mut logs_of_purged = Vec::new();
    for i in 0..6 {
        let name = format!("t{i}");
        env.ok(&["branch", "create", &name]);
        let id = env.branch(&name)["id"].as_str().expect("id").to_string();
        logs_of_purged.push(id);
        env.ok(&["branch", "delete", &name]);
    }
    // The newest trashed branch comes back, on a new port if its own was given away.
    let out = env.run(&["branch", "recover", "t0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port"), "recover says its port changed: {err}");
    psql_ok(&env.url("t0"), "SELECT 1");
    let trash = env.ok(&["trash", "list"]);
    assert!(trash.contains("t5"), "{trash}");
    env.ok(&["trash", "empty"]);
    assert!(!env.ok(&["trash", "list"]).contains("t5"));
    let logs = env.home.join("logs");
    for id in &logs_of_purged[1..] {
        let left: Vec<_> = std::fs::read_dir(&logs)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.contains(id.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "purge leaves no log behind: {left:?}");
    }
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let Some(env) = Env::new("broken-pipe", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    for i in 0..3 {
        env.ok(&["branch", "create", &format!("b{i}")]);
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' branch list | head -c 1 >/dev/null; echo \"rc=${{PIPESTATUS[0]}}\"",
            pgfork_exe().display()
        ))
        .current_dir(&env.repo)
        .env("PGFORK_HOME", &env.home)
        .env("PGFORK_PORTS", &env.ports)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("rc=101"), "{stdout}");
}

#[test]
fn a_postmaster_killed_from_outside_is_not_shown_running_and_wakes_again() {
    let Some(mut env) = Env::new("killed-postmaster", Storage::Copy) else {
        return;
    };
    with(&mut env, "PGFORK_REAP_EVERY", "1s");
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "f"]);
    let data_dir = env.branch("f")["data_dir"]
        .as_str()
        .expect("dir")
        .to_string();
    let pid: i32 = std::fs::read_to_string(Path::new(&data_dir).join("postmaster.pid"))
        .expect("pid file")
        .lines()
        .next()
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    // SAFETY: killing the test's own postmaster.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(
        "the branch to stop showing as running",
        Duration::from_secs(10),
        || env.branch("f")["state"] != "running",
    );
    psql_ok(&env.url("f"), "SELECT 1");
    assert_eq!(env.branch("f")["state"], "running");
}

#[test]
fn a_tablespace_created_during_an_online_clone_aborts_it() {
    if !is_root() {
        not_run("tablespace during a clone (needs root: the tablespace directory belongs to the server user)");
        return;
    }
    let Some(env) = Env::new("tablespace-race", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    let main = env.url("main");
    env.ok(&["daemon", "stop"]);
    let mut start = env.command(&["daemon", "start"]);
    start.env("FAILPOINTS", "clone-after-data-files=sleep(4000)");
    assert!(start.status().expect("start").success());
    // The parent runs (a connection wakes it): the clone is an online one.
    psql_ok(&main, "SELECT 1");
    // Only a superuser creates tablespaces (the URL role cannot).
    let superuser = env.superuser_url("main");
    let mut create = env
        .command(&["branch", "create", "half"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("create");
    std::thread::sleep(Duration::from_millis(1500));
    let ts = env.repo.parent().expect("parent").join("tablespace");
    std::fs::create_dir_all(&ts).expect("mkdir");
    assert!(Command::new("chown")
        .arg("postgres:postgres")
        .arg(&ts)
        .status()
        .expect("chown")
        .success());
    psql_ok(
        &superuser,
        &format!("CREATE TABLESPACE late LOCATION '{}'", ts.display()),
    );
    assert!(
        create.try_wait().expect("wait").is_none(),
        "the tablespace must be created while the clone is held at its failpoint"
    );
    let out = create.wait_with_output().expect("create ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the clone must not succeed");
    assert!(stderr.contains("tablespace"), "{stderr}");
    assert!(!env.states().contains_key("half"));
    assert_eq!(consistency_violation(&superuser), None);
    psql_ok(&superuser, "DROP TABLESPACE late");
}
