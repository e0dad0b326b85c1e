//! The git lifecycle with real git and real Postgres: a database branch appears with
//! each git branch, follows it, and goes away with it — without a pgfork command.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn init_repo(env: &Env) {
    env.ok(&["init", "--empty"]);
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "pgfork"]);
}

fn db_url(env: &Env, dir: &Path) -> String {
    env.env_var(dir, "DATABASE_URL")
        .expect("DATABASE_URL in .env")
}

fn wait_state(env: &Env, name: &str, state: &str) {
    wait_until(
        &format!("{name} to be {state}"),
        Duration::from_secs(20),
        || env.states().get(name).map(String::as_str) == Some(state),
    );
}

#[test]
fn the_workflow_just_works() {
    let Some(env) = Env::new("git-workflow", Storage::Copy) else {
        return;
    };
    init_repo(&env);
    let repo = env.repo.clone();
    let main_url = db_url(&env, &repo);
    assert_eq!(main_url, env.url("main"));
    assert!(std::fs::read_to_string(repo.join(".gitignore"))
        .expect("gitignore")
        .contains("/.env"));
    psql_ok(
        &main_url,
        "CREATE TABLE items (v text); INSERT INTO items VALUES ('from-main')",
    );

    let t = Instant::now();
    env.git(&["checkout", "-q", "-b", "feature/inventory-split"]);
    let create_ms = t.elapsed().as_millis();
    let feature_url = db_url(&env, &repo);
    assert_ne!(feature_url, main_url, ".env points at the new branch");
    let b = env.branch("feature/inventory-split");
    assert_eq!(b["parent"], "main");
    assert_eq!(b["git_branch"], "feature/inventory-split");
    psql_ok(&feature_url, "INSERT INTO items VALUES ('from-feature')");

    let t = Instant::now();
    env.git(&["checkout", "-q", "main"]);
    let switch_ms = t.elapsed().as_millis();
    assert_eq!(
        db_url(&env, &repo),
        main_url,
        "back on main's database, no creation"
    );
    assert_eq!(
        psql_ok(&main_url, "SELECT string_agg(v, ',') FROM items"),
        "from-main"
    );
    env.git(&["checkout", "-q", "feature/inventory-split"]);
    assert_eq!(db_url(&env, &repo), feature_url, "same database, same URL");
    assert_eq!(
        psql_ok(
            &feature_url,
            "SELECT string_agg(v, ',' ORDER BY v) FROM items"
        ),
        "from-feature,from-main"
    );
    report(&format!("git checkout -b (creates the database): {create_ms} ms; git checkout of a branch with a database: {switch_ms} ms"));

    env.git(&["branch", "-m", "feature/inv-split"]);
    wait_until(
        "the database branch to follow the rename",
        Duration::from_secs(20),
        || env.states().contains_key("feature/inv-split"),
    );
    assert_eq!(
        env.url("feature/inv-split"),
        feature_url,
        "a rename keeps the URL"
    );
    assert_eq!(
        env.branch("feature/inv-split")["git_branch"],
        "feature/inv-split"
    );

    std::fs::write(repo.join("inv.txt"), "x").expect("write");
    env.git(&["add", "inv.txt"]);
    env.git(&["commit", "-q", "-m", "inventory"]);
    env.git(&["checkout", "-q", "main"]);
    env.git(&["merge", "-q", "feature/inv-split"]);
    env.git(&["branch", "-d", "feature/inv-split"]);
    wait_state(&env, "feature/inv-split", "deleted");
    assert_eq!(
        env.states().get("main").map(String::as_str),
        Some("running")
    );
    // Recoverable within the grace period.
    env.ok(&["branch", "recover", "feature/inv-split"]);
    assert_eq!(psql_ok(&feature_url, "SELECT count(*) FROM items"), "2");
}

#[test]
fn stacked_branches_fork_from_the_branch_they_were_created_from() {
    let Some(env) = Env::new("git-stacked", Storage::Copy) else {
        return;
    };
    init_repo(&env);
    env.git(&["checkout", "-q", "-b", "feature/a"]);
    psql_ok(&db_url(&env, &env.repo), "CREATE TABLE only_in_a (x int)");
    env.git(&["checkout", "-q", "-b", "feature/b"]);
    assert_eq!(env.branch("feature/b")["parent"], "feature/a");
    psql_ok(&db_url(&env, &env.repo), "SELECT * FROM only_in_a");
    // An explicit start point wins over where HEAD was.
    env.git(&["checkout", "-q", "main"]);
    env.git(&["branch", "feature/c", "feature/a"]);
    env.git(&["checkout", "-q", "feature/c"]);
    assert_eq!(env.branch("feature/c")["parent"], "feature/a");
    // Detached HEAD creates nothing.
    let before = env.states().len();
    env.git(&["checkout", "-q", "--detach", "HEAD"]);
    assert_eq!(env.states().len(), before);
    // The team's policy can force the parent.
    env.git(&["checkout", "-q", "main"]);
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml"))
        .expect("cfg")
        .replace("parent = \"auto\"", "parent = \"main\"");
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.git(&["checkout", "-q", "feature/a"]);
    env.git(&["checkout", "-q", "-b", "feature/d"]);
    assert_eq!(env.branch("feature/d")["parent"], "main");
}

#[test]
fn existing_hooks_keep_running_and_uninstall_removes_only_our_part() {
    let Some(env) = Env::new("git-chain", Storage::Copy) else {
        return;
    };
    let hook = env.repo.join(".git/hooks/post-checkout");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"user hook $3\" >> \"$(git rev-parse --show-toplevel)/hook.log\"\n",
    )
    .expect("write hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    init_repo(&env);
    env.ok(&["hooks", "install"]); // idempotent
    let text = std::fs::read_to_string(&hook).expect("hook");
    assert_eq!(text.matches(">>> pgfork >>>").count(), 1, "{text}");
    env.git(&["checkout", "-q", "-b", "x"]);
    assert!(std::fs::read_to_string(env.repo.join("hook.log"))
        .expect("user hook ran")
        .contains("user hook 1"));
    assert!(env.states().contains_key("x"));
    let status = env.ok(&["hooks", "status"]);
    assert!(status.contains("chained with your own hook"), "{status}");
    env.ok(&["hooks", "uninstall"]);
    let text = std::fs::read_to_string(&hook).expect("user hook kept");
    assert!(
        !text.contains("pgfork") && text.contains("user hook"),
        "{text}"
    );
    assert!(
        !env.repo.join(".git/hooks/post-merge").exists(),
        "hooks that were only ours are removed"
    );
    env.git(&["checkout", "-q", "-b", "y"]);
    assert!(!env.states().contains_key("y"), "no hooks, no branch");
}

#[test]
fn husky_style_hooks_path_and_worktrees_each_with_their_own_env() {
    let Some(env) = Env::new("git-husky", Storage::Copy) else {
        return;
    };
    env.git(&["config", "core.hooksPath", ".husky"]);
    init_repo(&env);
    assert!(
        env.repo.join(".husky/post-checkout").exists(),
        "hooks follow core.hooksPath"
    );
    env.git(&["branch", "wt-a"]);
    env.git(&["branch", "wt-b"]);
    let a = env.repo.with_file_name("wt-a");
    let b = env.repo.with_file_name("wt-b");
    env.git(&["worktree", "add", "-q", a.to_str().expect("utf8"), "wt-a"]);
    env.git(&["worktree", "add", "-q", b.to_str().expect("utf8"), "wt-b"]);
    let (ua, ub) = (db_url(&env, &a), db_url(&env, &b));
    assert_ne!(ua, ub);
    assert_eq!(ua, env.url("wt-a"));
    assert_eq!(ub, env.url("wt-b"));
    assert_eq!(
        db_url(&env, &env.repo),
        env.url("main"),
        "the main work tree is untouched"
    );
    psql_ok(&ua, "SELECT 1");
    psql_ok(&ub, "SELECT 1");
}

#[test]
fn a_stopped_daemon_never_breaks_git() {
    let Some(env) = Env::new("git-stopped", Storage::Copy) else {
        return;
    };
    init_repo(&env);
    env.ok(&["daemon", "stop"]);
    let out = env.git_output(&env.repo, &["checkout", "-b", "offline"]);
    assert!(out.status.success(), "git must succeed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("pgfork:"))
        .collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].contains("pgfork daemon start"), "{stderr}");
    assert_eq!(env.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "offline");
    // Once the user starts it again, the next checkout catches up.
    env.ok(&["daemon", "start"]);
    env.git(&["checkout", "-q", "main"]);
    env.git(&["checkout", "-q", "offline"]);
    assert!(env.states().contains_key("offline"));
}

#[test]
fn deletions_prunes_ttls_and_gc() {
    let Some(env) = Env::new("git-gc", Storage::Copy) else {
        return;
    };
    init_repo(&env);
    // -D of an unmerged branch: soft delete. Its creation said how to undo it.
    let out = env.git_output(&env.repo, &["checkout", "-q", "-b", "unmerged"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("created database branch \"unmerged\"")
            && said.contains("`pgfork branch delete unmerged` removes it"),
        "{said}"
    );
    std::fs::write(env.repo.join("u.txt"), "u").expect("write");
    env.git(&["add", "u.txt"]);
    env.git(&["commit", "-q", "-m", "u"]);
    env.git(&["checkout", "-q", "main"]);
    // The terminal where git ran says what happens to the database, and how to undo it.
    let out = env.git_output(&env.repo, &["branch", "-D", "unmerged"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("database branch \"unmerged\" goes to the trash")
            && said.contains("pgfork branch recover"),
        "{said}"
    );
    wait_state(&env, "unmerged", "deleted");
    // A rename says the database follows.
    env.git(&["checkout", "-q", "-b", "old-name"]);
    env.git(&["checkout", "-q", "main"]);
    let out = env.git_output(&env.repo, &["branch", "-m", "old-name", "new-name"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("follows git branch old-name to new-name")
            && said.contains("`git branch -m new-name old-name` moves it back"),
        "{said}"
    );

    // A branch whose remote counterpart was deleted and pruned.
    let remote = env.repo.with_file_name("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().expect("utf8")]);
    env.git(&["remote", "add", "origin", remote.to_str().expect("utf8")]);
    env.git(&["push", "-q", "origin", "main"]);
    env.git(&["checkout", "-q", "-b", "pushed"]);
    env.git(&["push", "-q", "-u", "origin", "pushed"]);
    env.git(&["checkout", "-q", "main"]);
    env.git(&["push", "-q", "origin", "--delete", "pushed"]);
    env.git(&["fetch", "-q", "--prune"]);

    // One with an expired TTL (not paired with git), and a protected one whose git
    // branch is gone.
    env.ok(&["branch", "create", "ci-job", "--ttl", "1s"]);
    env.git(&["checkout", "-q", "-b", "kept"]);
    env.ok(&["branch", "protect", "kept"]);
    env.git(&["checkout", "-q", "main"]);
    env.git(&["branch", "-D", "kept"]);
    std::thread::sleep(Duration::from_millis(1500));

    let plan = env.json(&["gc", "--dry-run"]);
    let names: Vec<String> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["branch"].as_str().unwrap_or("").to_string())
        .collect();
    for expected in ["pushed", "ci-job"] {
        assert!(
            names.contains(&expected.to_string()),
            "gc should collect {expected}: {plan}"
        );
    }
    assert!(
        !names.contains(&"main".to_string()) && !names.contains(&"kept".to_string()),
        "root and protected stay: {plan}"
    );
    assert_eq!(
        env.states().get("pushed").map(String::as_str),
        Some("running"),
        "dry run changes nothing"
    );
    env.ok(&["gc"]);
    let states = env.states();
    for gone in ["pushed", "ci-job"] {
        assert_eq!(
            states.get(gone).map(String::as_str),
            Some("deleted"),
            "{gone}: {states:?}"
        );
    }
    assert_eq!(states.get("kept").map(String::as_str), Some("running"));
    assert_eq!(states.get("main").map(String::as_str), Some("running"));

    // A merge into the default branch: the post-merge hook's gc collects the merged
    // branch, while one that never moved (brand new) is not "merged".
    env.git(&["checkout", "-q", "-b", "fresh"]);
    env.git(&["checkout", "-q", "main"]);
    env.git(&["checkout", "-q", "-b", "merged"]);
    std::fs::write(env.repo.join("m.txt"), "m").expect("write");
    env.git(&["add", "m.txt"]);
    env.git(&["commit", "-q", "-m", "m"]);
    env.git(&["checkout", "-q", "main"]);
    let out = env.git_output(
        &env.repo,
        &["merge", "-q", "--no-ff", "-m", "merge", "merged"],
    );
    assert!(out.status.success(), "{out:?}");
    // The terminal where git merged says which database goes, and how to undo it.
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("database branch \"merged\" goes to the trash")
            && said.contains("`pgfork branch recover merged` brings it back")
            && !said.contains("\"fresh\""),
        "{said}"
    );
    wait_state(&env, "merged", "deleted");
    assert_eq!(
        env.states().get("fresh").map(String::as_str),
        Some("running")
    );
}

#[test]
fn after_create_runs_with_the_url_and_failures_keep_the_branch() {
    let Some(env) = Env::new("git-after-create", Storage::Copy) else {
        return;
    };
    init_repo(&env);
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml")).expect("cfg").replace(
        "# after_create = \"npm run migrate\"",
        "after_create = \"psql \\\"$DATABASE_URL\\\" -c 'CREATE TABLE migrated (x int)' && test ! -e fail-marker\"",
    );
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    let psql_dir = PG_BIN;
    let path = format!("{psql_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let mut env = env;
    env.extra_env.push(("PATH".into(), path));
    // A command from a committed file does not run before a local `pgfork allow`.
    let out = env.git_output(&env.repo, &["checkout", "-b", "not-allowed"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pgfork allow"), "{stderr}");
    assert_eq!(
        psql_ok(
            &env.url("not-allowed"),
            "SELECT to_regclass('migrated') IS NULL"
        ),
        "t",
        "the command did not run"
    );
    env.git(&["checkout", "-q", "main"]);
    env.ok(&["allow"]);
    env.git(&["checkout", "-q", "-b", "migrated-ok"]);
    psql_ok(&env.url("migrated-ok"), "SELECT * FROM migrated");
    assert_eq!(env.branch("migrated-ok")["after_create"], "ok");
    std::fs::write(env.repo.join("fail-marker"), "").expect("write");
    let out = env.git_output(&env.repo, &["checkout", "-b", "migrated-bad"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pgfork branch migrate migrated-bad"),
        "{stderr}"
    );
    assert_eq!(env.branch("migrated-bad")["after_create"], "failed");
    std::fs::remove_file(env.repo.join("fail-marker")).expect("rm");
    psql_ok(&env.url("migrated-bad"), "DROP TABLE migrated");
    env.ok(&["branch", "migrate", "migrated-bad"]);
    assert_eq!(env.branch("migrated-bad")["after_create"], "ok");
    // A changed command is asked for again.
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml"))
        .expect("cfg")
        .replace(
            "CREATE TABLE migrated (x int)",
            "CREATE TABLE migrated2 (x int)",
        );
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.git(&["checkout", "-q", "main"]);
    let out = env.git_output(&env.repo, &["checkout", "-b", "changed"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pgfork allow"));
    assert_eq!(
        psql_ok(
            &env.url("changed"),
            "SELECT to_regclass('migrated2') IS NULL"
        ),
        "t"
    );
}

#[test]
fn parallel_checkouts_in_ten_worktrees_all_get_their_own_database() {
    let Some(env) = Env::new("git-parallel", Storage::Copy) else {
        return;
    };
    init_repo(&env);
    // Ten work trees (detached: that creates nothing), then ten checkouts at once.
    let dirs: Vec<std::path::PathBuf> = (0..10)
        .map(|i| env.repo.with_file_name(format!("par-{i}")))
        .collect();
    for d in &dirs {
        env.git(&[
            "worktree",
            "add",
            "-q",
            "--detach",
            d.to_str().expect("utf8"),
        ]);
    }
    assert_eq!(
        env.states().len(),
        1,
        "detached work trees create no database"
    );
    let handles: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let mut cmd = std::process::Command::new("git");
            cmd.args(["checkout", "-q", "-b", &format!("par-{i}")])
                .current_dir(dir)
                .env("PGFORK_HOME", &env.home)
                .env("PGFORK_PORTS", &env.ports);
            (dir.clone(), cmd.spawn().expect("spawn git"))
        })
        .collect();
    let mut urls = std::collections::HashSet::new();
    for (dir, mut child) in handles {
        assert!(
            child.wait().expect("wait").success(),
            "git checkout failed in {}",
            dir.display()
        );
        let url = db_url(&env, &dir);
        psql_ok(&url, "SELECT 1");
        urls.insert(url);
    }
    assert_eq!(urls.len(), 10, "ten distinct databases");
    let ports: std::collections::HashSet<u64> = env
        .json(&["branch", "list"])
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["port"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(ports.len(), 11, "main and ten branches on distinct ports");
}

#[test]
fn the_daemon_reaps_expired_ttls_and_git_branches_gone_behind_its_back() {
    let Some(mut env) = Env::new("git-reaper", Storage::Copy) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
    init_repo(&env);
    env.git(&["checkout", "-q", "-b", "doomed"]);
    env.git(&["checkout", "-q", "main"]);
    env.ok(&["branch", "create", "short-lived", "--ttl", "2s"]);
    env.ok(&["branch", "create", "parent-with-ttl", "--ttl", "3s"]);
    env.ok(&[
        "branch",
        "create",
        "child-of-ttl",
        "--parent",
        "parent-with-ttl",
    ]);
    // Without hooks, only the daemon's periodic git gc can notice the deletion.
    env.ok(&["hooks", "uninstall"]);
    env.git(&["branch", "-D", "doomed"]);
    wait_state(&env, "doomed", "deleted");
    wait_state(&env, "short-lived", "deleted");
    wait_state(&env, "parent-with-ttl", "deleted");
    assert_eq!(
        env.states().get("child-of-ttl").map(String::as_str),
        Some("running"),
        "children outlive a parent's TTL"
    );
    psql_ok(&env.url("child-of-ttl"), "SELECT 1");
    assert_eq!(
        env.states().get("main").map(String::as_str),
        Some("running")
    );
}

#[test]
fn the_follow_head_url_reaches_whatever_branch_is_checked_out() {
    let Some(env) = Env::new("git-follow", Storage::Copy) else {
        return;
    };
    init_repo(&env);
    let follow = env.ok(&["url", "--follow"]).trim().to_string();
    assert_eq!(env.ok(&["url", "--follow"]).trim(), follow, "stable");
    psql_ok(
        &env.url("main"),
        "CREATE TABLE whoami (v text); INSERT INTO whoami VALUES ('main')",
    );
    assert_eq!(psql_ok(&follow, "SELECT v FROM whoami"), "main");
    env.git(&["checkout", "-q", "-b", "feature/follow"]);
    psql_ok(
        &env.url("feature/follow"),
        "UPDATE whoami SET v = 'feature'",
    );
    assert_eq!(
        psql_ok(&follow, "SELECT v FROM whoami"),
        "feature",
        "new connections follow HEAD"
    );
    env.git(&["checkout", "-q", "main"]);
    assert_eq!(psql_ok(&follow, "SELECT v FROM whoami"), "main");
    // Its own password: a branch's password does not open it, and vice versa.
    let main_pw = env
        .url("main")
        .split(':')
        .nth(2)
        .and_then(|s| s.split('@').next())
        .expect("pw")
        .to_string();
    let follow_pw = follow
        .split(':')
        .nth(2)
        .and_then(|s| s.split('@').next())
        .expect("pw")
        .to_string();
    assert!(psql(&follow.replace(&follow_pw, &main_pw), "SELECT 1").is_err());
}
