//! Branch lifecycle through the CLI: reset, delete/recover/purge, protection, rename,
//! TTL, start/stop, daemon restarts and a crash in the middle of a create.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn reset_returns_to_the_parents_current_state_keeping_url_and_password() {
    let Some(env) = Env::new("reset", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let main = env.url("main");
    psql_ok(
        &main,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('one')",
    );
    env.ok(&["branch", "create", "f"]);
    let url = env.url("f");
    psql_ok(&url, "INSERT INTO t VALUES ('branch-only')");
    psql_ok(&main, "INSERT INTO t VALUES ('two')");
    env.ok(&["branch", "reset", "f"]);
    assert_eq!(env.url("f"), url, "reset must keep the URL and password");
    assert_eq!(
        psql_ok(&url, "SELECT string_agg(v, ',' ORDER BY v) FROM t"),
        "one,two"
    );
    assert_ne!(url, main, "a child has its own password and port");
    let root = env.fails(&["branch", "reset", "main"]);
    assert!(root.contains("root branch"), "{root}");
    // Secrets stay private: metadata (and its WAL) 0600, logs 0600, no plaintext
    // password in any Postgres log.
    use std::os::unix::fs::PermissionsExt;
    for f in ["pgfork.db", "pgfork.db-wal"] {
        let mode = std::fs::metadata(env.home.join(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    let password = url
        .split(':')
        .nth(2)
        .and_then(|s| s.split('@').next())
        .expect("password in URL")
        .to_string();
    for log in std::fs::read_dir(env.home.join("logs"))
        .expect("logs")
        .flatten()
    {
        let mode = log.metadata().expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", log.path());
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        assert!(
            !text.contains(&password),
            "the password leaked into {:?}",
            log.path()
        );
    }
}

#[test]
fn delete_is_soft_recover_brings_it_back_purge_is_final() {
    let Some(env) = Env::new("delete", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "f"]);
    let url = env.url("f");
    psql_ok(
        &url,
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
    );
    let out = env.ok(&["branch", "delete", "f"]);
    assert!(out.contains("recover"), "{out}");
    assert!(
        psql(&url, "SELECT 1").is_err(),
        "a deleted branch is stopped"
    );
    let listed = env.json(&["branch", "list"]);
    assert_eq!(
        listed.as_array().map(|a| a.len()),
        Some(1),
        "deleted branches are hidden: {listed}"
    );
    let all = env.json(&["branch", "list", "--all"]);
    assert!(all
        .as_array()
        .expect("array")
        .iter()
        .any(|b| b["name"] == "f" && b["state"] == "deleted"));
    // The name is free again while the old one waits in the trash.
    env.ok(&["branch", "create", "f2"]);
    env.ok(&["branch", "recover", "f"]);
    assert_eq!(env.url("f"), url, "recovered branch keeps its URL");
    assert_eq!(psql_ok(&url, "SELECT x FROM kept"), "42");
    env.ok(&["branch", "delete", "f", "--purge"]);
    let err = env.fails(&["branch", "recover", "f"]);
    assert!(err.contains("no deleted branch"), "{err}");
    let data_dirs = std::fs::read_dir(env.home.join("trash"))
        .map(|d| d.count())
        .unwrap_or(0);
    let _ = data_dirs;
    // Deleting a parent never harms its children.
    env.ok(&["branch", "create", "p"]);
    psql_ok(&env.url("p"), "CREATE TABLE fromp (x int)");
    env.ok(&["branch", "create", "c", "--parent", "p"]);
    env.ok(&["branch", "delete", "p", "--purge"]);
    psql_ok(&env.url("c"), "SELECT count(*) FROM fromp");
}

#[test]
fn protection_rename_ttl_and_start_stop() {
    let Some(env) = Env::new("manage", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "f", "--protected", "--ttl", "2h"]);
    let b = env.branch("f");
    assert_eq!(b["protected"], true);
    assert!(b["expires_at"].is_string(), "{b}");
    let err = env.fails(&["branch", "delete", "f"]);
    assert!(
        err.contains("protected") && err.contains("unprotect"),
        "{err}"
    );
    env.ok(&["branch", "unprotect", "f"]);
    env.ok(&["branch", "set-ttl", "f", "none"]);
    assert!(env.branch("f")["expires_at"].is_null());
    let err = env.fails(&["branch", "set-ttl", "f", "soon"]);
    assert!(err.contains("24h"), "{err}");
    env.ok(&["branch", "rename", "f", "feature/renamed"]);
    let url = env.url("feature/renamed");
    psql_ok(&url, "SELECT 1");
    env.ok(&["branch", "stop", "feature/renamed"]);
    assert_eq!(env.branch("feature/renamed")["state"], "suspended");
    // A wrong password is refused without waking it; the right one wakes it.
    let wrong = url.replacen(
        &url[url.find("://").expect("url") + 3..url.find('@').expect("url")],
        "pgfork_owner:wrong",
        1,
    );
    let err = psql(&wrong, "SELECT 1").expect_err("wrong password");
    assert!(err.contains("password authentication failed"), "{err}");
    assert_eq!(env.branch("feature/renamed")["state"], "suspended");
    psql_ok(&url, "SELECT 1");
    assert_eq!(
        env.branch("feature/renamed")["state"],
        "running",
        "a connection wakes a suspended branch"
    );
    env.ok(&["branch", "stop", "feature/renamed"]);
    env.ok(&["branch", "start", "feature/renamed"]);
    psql_ok(&url, "SELECT 1");
    // A branch of a stopped parent is cloned offline.
    env.ok(&["branch", "stop", "feature/renamed"]);
    env.ok(&[
        "branch",
        "create",
        "from-stopped",
        "--parent",
        "feature/renamed",
    ]);
    psql_ok(&env.url("from-stopped"), "SELECT 1");
    assert_eq!(
        env.branch("feature/renamed")["state"],
        "suspended",
        "cloning never starts the parent"
    );
    let err = env.fails(&["branch", "delete", "main"]);
    assert!(err.contains("root"), "{err}");
}

#[test]
fn daemon_restart_readopts_running_branches_and_stop_leaves_no_postmaster() {
    let Some(env) = Env::new("restart", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "f"]);
    let before = {
        let mut p = env.postmasters();
        p.sort();
        p
    };
    assert_eq!(before.len(), 2, "main and f run");
    let pid = env.daemon_pid().expect("daemon runs");
    // SAFETY: killing the test's own daemon.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("daemon death", Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
    });
    // The branches survive the daemon...
    psql_ok(&env.url("f"), "SELECT 1");
    let after = {
        let mut p = env.postmasters();
        p.sort();
        p
    };
    assert_eq!(
        before, after,
        "the new daemon re-adopts the same postmasters"
    );
    // ...and a clean stop leaves nothing behind.
    env.ok(&["daemon", "stop"]);
    assert!(
        env.postmasters().is_empty(),
        "postmasters left: {:?}",
        env.postmasters()
    );
    // Starting again restarts what should run.
    psql_ok(&env.url("f"), "SELECT 1");
    assert_eq!(env.postmasters().len(), 2);
}

#[test]
fn a_crash_in_the_middle_of_a_create_leaves_no_half_branch() {
    let Some(env) = Env::new("crash", Storage::Copy) else {
        return;
    };
    env.init_sample(2);
    let main = env.url("main");
    let before = psql_ok(&main, "SELECT count(*) FROM pgbench_accounts");
    env.ok(&["daemon", "stop"]);
    // A daemon that dies (abort: no cleanup) right after the clone was built in tmp/.
    let mut start = env.command(&["daemon", "start"]);
    start.env("FAILPOINTS", "create-after-clone=return");
    assert!(start.status().expect("start").success());
    let tmp = env.home.join("tmp");
    let out = env.run(&["branch", "create", "half"]);
    assert!(!out.status.success(), "the daemon died mid-create");
    assert!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) > 0,
        "the half-made branch sits in tmp/"
    );
    // Restart (any command does): no trace of the half branch, parent intact.
    let names: Vec<String> = env
        .json(&["branch", "list", "--all"])
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, vec!["main".to_string()]);
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "tmp/ was swept"
    );
    assert_eq!(
        psql_ok(&main, "SELECT count(*) FROM pgbench_accounts"),
        before
    );
    assert_eq!(consistency_violation(&env.superuser_url("main")), None);
    assert_eq!(env.postmasters().len(), 1, "only main runs");
    // And the name is usable.
    env.ok(&["branch", "create", "half"]);
}

#[test]
fn a_branch_in_the_trash_can_be_purged_by_name_or_id() {
    let Some(env) = Env::new("purge-trash", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "t1"]);
    env.ok(&["branch", "create", "t2"]);
    let id = env.branch("t2")["id"].as_str().expect("id").to_string();
    env.ok(&["branch", "delete", "t1"]);
    env.ok(&["branch", "delete", "t2"]);
    env.ok(&["branch", "delete", "t1", "--purge"]);
    env.ok(&["branch", "delete", &id, "--purge"]);
    let left: Vec<String> = env
        .json(&["branch", "list", "--all"])
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(left, vec!["main".to_string()]);
}
