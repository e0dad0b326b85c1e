//! Going back: snapshots of a branch, branches made from them, and a restore that
//! undoes the last migration while keeping the branch's URL.

mod common;
use common::*;
use std::time::Instant;

#[test]
fn a_destructive_migration_is_undone_by_restoring_the_snapshot_taken_before_it() {
    let Some(mut env) = Env::new("history-undo", Storage::Reflink) else {
        return;
    };
    env.ok(&["init", "--sample", "--scale", "1"]);
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml"))
        .expect("cfg")
        .replace(
            "# after_create = \"npm run migrate\"",
            "after_create = \"test ! -f migrate.sql || psql \\\"$DATABASE_URL\\\" -v ON_ERROR_STOP=1 -q -f migrate.sql\"",
        );
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "pgfork"]);
    env.ok(&["allow"]);
    let path = format!("{PG_BIN}:{}", std::env::var("PATH").unwrap_or_default());
    env.extra_env.push(("PATH".into(), path));
    psql_ok(
        &env.url("main"),
        "ALTER TABLE pgbench_branches ADD COLUMN note text; UPDATE pgbench_branches SET note = 'n' || bid",
    );

    // A snapshot by hand, and a branch made from it.
    let t = Instant::now();
    env.ok(&["snapshot", "create", "main", "--name", "base"]);
    report(&format!(
        "snapshot create (reflink, sample scale 1, CLI end to end): {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    ));
    psql_ok(
        &env.url("main"),
        "UPDATE pgbench_branches SET note = 'changed'",
    );
    env.ok(&["branch", "create", "from-base", "--from-snapshot", "base"]);
    assert_eq!(
        psql_ok(
            &env.url("from-base"),
            "SELECT count(*) FROM pgbench_branches WHERE note = 'n1'"
        ),
        "1",
        "the branch holds the snapshot's data, not main's now"
    );

    // A destructive migration on a feature branch...
    env.git(&["checkout", "-q", "-b", "feature"]);
    let url = env.url("feature");
    std::fs::write(
        env.repo.join("migrate.sql"),
        "ALTER TABLE pgbench_branches DROP COLUMN note;\n",
    )
    .expect("migration");
    env.git(&["add", "migrate.sql"]);
    env.git(&["commit", "-q", "-m", "drop note"]);
    env.ok(&["branch", "migrate", "feature"]);
    assert!(
        psql(&url, "SELECT note FROM pgbench_branches").is_err(),
        "the column is gone"
    );
    let snaps = env.json(&["snapshot", "list"]);
    assert!(
        snaps
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["pgfork_reason"] == "before-migration"
                && s["pgfork_source_branch_name"] == "feature"),
        "{snaps:#}"
    );

    // ... undone.
    let out = env.ok(&[
        "branch",
        "restore",
        "feature",
        "--to",
        "before-last-migration",
    ]);
    assert!(out.contains("its URL is unchanged"), "{out}");
    assert_eq!(env.url("feature"), url);
    assert_eq!(
        psql_ok(&url, "SELECT count(note) FROM pgbench_branches"),
        psql_ok(&url, "SELECT count(*) FROM pgbench_branches"),
        "the column and its data are back"
    );
    let snaps = env.json(&["snapshot", "list"]);
    assert!(
        snaps
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["pgfork_reason"] == "before-restore"
                && s["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("feature-before-restore-"))),
        "the replaced state is kept as a snapshot: {snaps:#}"
    );
    // Bad input: one sentence each, nothing changed.
    let err = env.fails(&["branch", "restore", "feature", "--to", "nope"]);
    assert!(err.contains("no snapshot \"nope\""), "{err}");
    let err = env.fails(&[
        "branch",
        "restore",
        "from-base",
        "--to",
        "before-last-migration",
    ]);
    assert!(err.contains("no snapshot from before a migration"), "{err}");
    env.ok(&["snapshot", "delete", "base"]);
    let snaps = env.json(&["snapshot", "list"]);
    assert!(!snaps
        .as_array()
        .expect("list")
        .iter()
        .any(|s| s["name"] == "base"));
    env.ok(&["snapshot", "create", "main", "--name", "again"]);
    let err = env.fails(&["snapshot", "create", "main", "--name", "again"]);
    assert!(
        err.contains("already has a snapshot named \"again\""),
        "{err}"
    );
}
