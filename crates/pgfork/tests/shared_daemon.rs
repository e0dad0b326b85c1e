//! One daemon serving several repositories and work trees, as it does on a real
//! machine: nothing of one hook's git environment may reach another repository, gc
//! deletes only on unambiguous evidence, a reused name never brings old data back, and
//! `.env` never silently points at the wrong database.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Three reaper intervals at `PGFORK_REAP_EVERY=1s`, with room for the last to finish.
const THREE_REAPS: Duration = Duration::from_millis(3600);

fn fast_reaper(env: &mut Env) {
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
}

fn init_repo_in(env: &Env, dir: &Path) {
    let out = env
        .command_in(dir, &["init", "--empty"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "init in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    env.git_in(dir, &["add", "-A"]);
    env.git_in(dir, &["commit", "-q", "-m", "pgfork"]);
}

/// A second git repository beside the test's own.
fn second_repo(env: &Env, name: &str) -> PathBuf {
    let dir = env.repo.parent().expect("parent").join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    env.git_in(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), name).expect("write");
    env.git_in(&dir, &["add", "."]);
    env.git_in(&dir, &["commit", "-q", "-m", "init"]);
    dir
}

fn ok_in(env: &Env, dir: &Path, args: &[&str]) -> String {
    let out = env.command_in(dir, args).output().expect("runs");
    assert!(
        out.status.success(),
        "pgfork {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// name → state of every branch (trash included) of the project of `dir`.
fn states_in(env: &Env, dir: &Path) -> std::collections::BTreeMap<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(&ok_in(env, dir, &["branch", "list", "--all", "--json"]))
            .expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .filter(|b| b["state"] != "deleted")
        .map(|b| {
            (
                b["name"].as_str().unwrap_or("").to_string(),
                b["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn kill_daemon(env: &Env) {
    let pid = env.daemon_pid().expect("daemon runs");
    // SAFETY: killing the test's own daemon.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("daemon death", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
}

fn mark(url: &str, value: &str) {
    psql_ok(
        url,
        &format!("CREATE TABLE marker AS SELECT '{value}'::text AS v"),
    );
}

fn marker(url: &str) -> String {
    psql_ok(url, "SELECT v FROM marker")
}

#[test]
fn two_repositories_and_a_linked_work_tree_on_one_daemon_stay_apart() {
    let Some(mut env) = Env::new("two-repos", Storage::Copy) else {
        return;
    };
    fast_reaper(&mut env);
    let repo_a = env.repo.clone();
    init_repo_in(&env, &repo_a);
    env.git(&["checkout", "-q", "-b", "a-feature"]);
    env.git(&["checkout", "-q", "main"]);
    let repo_b = second_repo(&env, "other-repo");
    init_repo_in(&env, &repo_b);
    env.git_in(&repo_b, &["checkout", "-q", "-b", "b-feature"]);
    env.git_in(&repo_b, &["checkout", "-q", "main"]);
    let wt = env.repo.parent().expect("parent").join("a-worktree");
    env.git(&[
        "worktree",
        "add",
        "-q",
        &wt.display().to_string(),
        "-b",
        "a-wt",
    ]);

    mark(&ok_in(&env, &repo_a, &["url", "main"]), "a:main");
    mark(&ok_in(&env, &repo_b, &["url", "main"]), "b:main");
    mark(&ok_in(&env, &repo_b, &["url", "b-feature"]), "b:b-feature");
    let follow_a = ok_in(&env, &repo_a, &["url", "--follow"]);
    let follow_b = ok_in(&env, &repo_b, &["url", "--follow"]);
    let follow_wt = ok_in(&env, &wt, &["url", "--follow"]);

    // The daemon dies; the next one is started by a hook in the linked work tree,
    // where git sets GIT_DIR to that work tree's private git directory.
    kill_daemon(&env);
    env.git_in(&wt, &["checkout", "-q", "-b", "a-wt-new"]);
    assert!(env.daemon_pid().is_some(), "the hook started the daemon");
    mark(&ok_in(&env, &wt, &["url", "a-wt-new"]), "a:a-wt-new");
    let before_a = states_in(&env, &repo_a);
    let before_b = states_in(&env, &repo_b);
    assert!(before_a.contains_key("a-wt-new"), "{before_a:?}");

    std::thread::sleep(THREE_REAPS);
    assert_eq!(
        states_in(&env, &repo_b).keys().collect::<Vec<_>>(),
        before_b.keys().collect::<Vec<_>>(),
        "the other repository's branches are untouched"
    );
    assert_eq!(
        states_in(&env, &repo_a).keys().collect::<Vec<_>>(),
        before_a.keys().collect::<Vec<_>>(),
        "this repository's live git branches keep their databases"
    );
    assert_eq!(
        marker(&follow_a),
        "a:main",
        "repo A's follow URL reaches A's HEAD"
    );
    assert_eq!(
        marker(&follow_b),
        "b:main",
        "repo B's follow URL reaches B's HEAD"
    );
    assert_eq!(
        marker(&follow_wt),
        "a:a-wt-new",
        "the work tree's follow URL reaches its HEAD"
    );
    env.git_in(&repo_b, &["checkout", "-q", "b-feature"]);
    assert_eq!(
        marker(&follow_b),
        "b:b-feature",
        "follow moves with B's HEAD only"
    );
    assert_eq!(marker(&follow_a), "a:main");
}

#[test]
fn a_fast_forward_from_main_is_not_a_merge_and_a_recovered_branch_stays() {
    let Some(mut env) = Env::new("ff-merge", Storage::Copy) else {
        return;
    };
    fast_reaper(&mut env);
    init_repo_in(&env, &env.repo.clone());
    env.git(&["checkout", "-q", "-b", "feature"]);
    env.git(&["checkout", "-q", "main"]);
    std::fs::write(env.repo.join("main.txt"), "m").expect("write");
    env.git(&["add", "main.txt"]);
    env.git(&["commit", "-q", "-m", "on main"]);
    env.git(&["checkout", "-q", "feature"]);
    env.git(&["merge", "-q", "main"]);
    env.git(&["checkout", "-q", "main"]);
    std::thread::sleep(THREE_REAPS);
    assert_eq!(
        env.states().get("feature").map(String::as_str),
        Some("running"),
        "a fast-forward from main is not the branch's own work being merged"
    );

    // Own work, merged into main, git branch kept: gc takes it as merged...
    env.git(&["checkout", "-q", "feature"]);
    std::fs::write(env.repo.join("f.txt"), "f").expect("write");
    env.git(&["add", "f.txt"]);
    env.git(&["commit", "-q", "-m", "feature work"]);
    env.git(&["checkout", "-q", "main"]);
    env.git(&["merge", "-q", "feature"]);
    wait_until(
        "gc to take the merged branch",
        Duration::from_secs(15),
        || env.states().get("feature").map(String::as_str) == Some("deleted"),
    );
    // ...and once recovered, never again for the same reason.
    env.ok(&["branch", "recover", "feature"]);
    std::thread::sleep(THREE_REAPS);
    assert_eq!(
        env.states().get("feature").map(String::as_str),
        Some("running"),
        "a recovered branch is not collected again for the same reason"
    );
    // Deleting the git branch is new evidence: trashed.
    env.git(&["branch", "-d", "feature"]);
    wait_until(
        "the deleted branch's database in the trash",
        Duration::from_secs(15),
        || env.states().get("feature").map(String::as_str) == Some("deleted"),
    );
}

#[test]
fn a_reused_name_forks_fresh_and_the_old_database_stays_recoverable() {
    let Some(env) = Env::new("name-reuse", Storage::Copy) else {
        return;
    };
    init_repo_in(&env, &env.repo.clone());
    env.git(&["checkout", "-q", "-b", "feature/x"]);
    let old = env.branch("feature/x");
    mark(&env.url("feature/x"), "old data");
    env.git(&["checkout", "-q", "main"]);
    env.git(&["branch", "-D", "feature/x"]);
    wait_until(
        "the old database in the trash",
        Duration::from_secs(15),
        || env.states().get("feature/x").map(String::as_str) == Some("deleted"),
    );
    env.git(&["checkout", "-q", "-b", "feature/x"]);
    let new = env.branch("feature/x");
    assert_ne!(new["id"], old["id"], "a new database, not the trashed one");
    assert_eq!(
        psql_ok(
            &env.url("feature/x"),
            "SELECT to_regclass('marker') IS NULL"
        ),
        "t",
        "the new branch forked fresh from main"
    );
    let all = env.json(&["branch", "list", "--all"]);
    assert!(
        all.as_array()
            .expect("array")
            .iter()
            .any(|b| b["id"] == old["id"] && b["state"] == "deleted"),
        "the old database is still in the trash: {all}"
    );
    // Recovering it by id, beside its live namesake, gives it a name of its own.
    let old_id = old["id"].as_str().expect("id");
    env.ok(&["branch", "recover", old_id]);
    let recovered = env.branch(old_id);
    assert_ne!(recovered["name"], "feature/x");
    assert_eq!(marker(&env.url(old_id)), "old data");
}

/// `.env`'s URL when the hook could not pair HEAD with a database.
fn unpaired(url: &str) -> bool {
    url.contains("pgfork-unpaired.invalid")
}

#[test]
fn env_never_silently_points_at_another_branch() {
    let Some(env) = Env::new("env-honest", Storage::Copy) else {
        return;
    };
    init_repo_in(&env, &env.repo.clone());
    env.git(&["checkout", "-q", "-b", "f"]);
    let f_url = env.url("f");
    assert_eq!(
        env.env_var(&env.repo, "DATABASE_URL").as_deref(),
        Some(f_url.as_str())
    );

    // Detached HEAD: no pairing, and .env says so.
    env.git(&["checkout", "-q", "--detach"]);
    let v = env.env_var(&env.repo, "DATABASE_URL").expect("var");
    assert!(unpaired(&v), "{v}");
    let err = env.fails(&["url"]);
    assert!(err.contains("detached"), "{err}");

    // A stopped daemon: the hook says so where git runs and .env cannot be mistaken.
    env.git(&["checkout", "-q", "f"]);
    env.ok(&["daemon", "stop"]);
    let out = env.git_output(&env.repo, &["checkout", "-q", "main"]);
    assert!(out.status.success(), "a hook never fails git");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pgfork daemon start"), "{stderr}");
    let v = env.env_var(&env.repo, "DATABASE_URL").expect("var");
    assert!(unpaired(&v), "{v}");

    // A git client without the shell's PGFORK_HOME (an IDE) reaches the same store.
    env.ok(&["daemon", "start"]);
    let fake_home = env.repo.parent().expect("parent").join("ide-home");
    std::fs::create_dir_all(&fake_home).expect("mkdir");
    let out = Command::new("git")
        .args(["checkout", "-q", "f"])
        .current_dir(&env.repo)
        .env_remove("PGFORK_HOME")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", &fake_home)
        .env("PGFORK_PORTS", &env.ports)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("git");
    assert!(out.status.success());
    assert_eq!(
        env.env_var(&env.repo, "DATABASE_URL").as_deref(),
        Some(f_url.as_str()),
        "the hook used the store the repository was initialised with: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !fake_home.join(".local/share/pgfork/daemon.sock").exists(),
        "no second daemon in an empty store"
    );
}
