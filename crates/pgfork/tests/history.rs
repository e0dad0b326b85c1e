//! Going back: snapshots of a branch, branches made from them, and a restore that
//! undoes the last migration while keeping the branch's URL.

mod common;
use common::*;
use std::time::Instant;

#[test]
fn a_destructive_migration_is_undone_by_restoring_the_snapshot_taken_before_it() {
    let Some(env) = repo_with_migrations("history-undo", Storage::Reflink) else {
        return;
    };
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

#[test]
fn a_branch_at_a_past_moment_holds_exactly_what_had_committed_by_then() {
    let Some(mut env) = Env::new("history-pitr", Storage::Reflink) else {
        return;
    };
    // Time-travel branches expire fast here, and the reaper looks every second.
    env.extra_env
        .push(("PGFORK_TIME_TRAVEL_TTL".into(), "4s".into()));
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
    env.ok(&["init", "--sample", "--scale", "1", "--no-hooks"]);
    let mut cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml")).expect("cfg");
    cfg.push_str("\n[history]\nwindow = \"1h\"\nsnapshot_every = \"2m\"\n\n[postgres]\ntrack_commit_timestamp = \"on\"\n");
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.ok(&["branch", "create", "hist"]);
    let hist = env.branch("hist");
    assert_eq!(hist["history"]["window_seconds"], 3600, "{hist:#}");
    assert_eq!(hist["history"]["snapshot_every_seconds"], 120, "{hist:#}");
    let url = env.url("hist");
    psql_ok(&url, "CREATE TABLE ticks (i int)");
    let load = Load::start(&url, 2);
    let writer_url = url.clone();
    let writer = std::thread::spawn(move || {
        psql(
            &writer_url,
            "DO $$ BEGIN FOR i IN 1..60 LOOP INSERT INTO ticks VALUES (i); COMMIT; PERFORM pg_sleep(0.1); END LOOP; END $$",
        )
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let at = psql_ok(
        &url,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    writer.join().expect("writer").expect("the writer's rows");
    drop(load);

    let t = Instant::now();
    env.ok(&["branch", "create", "past", "--parent", "hist", "--at", &at]);
    report(&format!(
        "point-in-time branch (reflink, scale 1, ~6 s of pgbench WAL): {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    ));
    let want = psql_ok(
        &env.superuser_url("hist"),
        &format!("SELECT count(*) FROM ticks WHERE pg_xact_commit_timestamp(xmin) <= '{at}'"),
    );
    let got = psql_ok(&env.url("past"), "SELECT count(*) FROM ticks");
    assert_eq!(got, want, "exactly the rows committed at or before {at}");
    let n: u32 = got.parse().expect("count");
    assert!((10..=50).contains(&n), "the moment is mid-run: {n} rows");
    assert_eq!(
        psql_ok(&env.url("hist"), "SELECT count(*) FROM ticks"),
        "60"
    );
    if let Some(v) = consistency_violation(&env.superuser_url("past")) {
        panic!("the point-in-time branch is inconsistent: {v}");
    }
    // It is a branch of its own: writable, on a new timeline.
    psql_ok(&env.url("past"), "INSERT INTO ticks VALUES (1000)");

    // A moment after the parent's last commit (it has been idle since): everything.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let idle = psql_ok(
        &url,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    env.ok(&[
        "branch", "create", "latest", "--parent", "hist", "--at", &idle,
    ]);
    assert_eq!(
        psql_ok(&env.url("latest"), "SELECT count(*) FROM ticks"),
        "60"
    );

    // Time travel: a read-only URL to the past, gone after its TTL.
    let out = env
        .command(&["url", &format!("hist@{at}")])
        .output()
        .expect("url");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(said.contains("read-only"), "{said}");
    let travel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(psql_ok(&travel, "SELECT count(*) FROM ticks"), want);
    let err = psql(&travel, "INSERT INTO ticks VALUES (2000)").expect_err("read-only");
    assert!(err.contains("read-only transaction"), "{err}");
    let travel_name = env
        .states()
        .keys()
        .find(|n| n.starts_with("hist-at-"))
        .cloned()
        .expect("the time-travel branch");
    wait_until(
        "the time-travel branch to expire",
        std::time::Duration::from_secs(30),
        || env.states().get(&travel_name).map(String::as_str) == Some("deleted"),
    );

    // Restore: the branch itself back at the moment, same URL, the present kept.
    let out = env.ok(&["branch", "restore", "hist", "--to", &at]);
    assert!(out.contains("its URL is unchanged"), "{out}");
    assert_eq!(env.url("hist"), url);
    assert_eq!(psql_ok(&url, "SELECT count(*) FROM ticks"), want);
    let snaps = env.json(&["snapshot", "list"]);
    assert!(
        snaps
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["pgfork_reason"] == "before-restore"
                && s["pgfork_source_branch_name"] == "hist"),
        "{snaps:#}"
    );

    // The window is enforced, and so is the past.
    let err = env.fails(&[
        "branch", "create", "old", "--parent", "hist", "--at", "2h ago",
    ]);
    assert!(err.contains("is older than \"hist\"'s history"), "{err}");
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let err = env.fails(&[
        "branch", "create", "later", "--parent", "hist", "--at", &future,
    ]);
    assert!(err.contains("is in the future"), "{err}");
    let err = env.fails(&[
        "branch", "create", "nohist", "--parent", "main", "--at", "1m ago",
    ]);
    assert!(err.contains("keeps no history"), "{err}");
    let err = env.fails(&[
        "branch",
        "create",
        "bad",
        "--parent",
        "hist",
        "--at",
        "yesterday-ish",
    ]);
    assert!(err.contains("is not a moment"), "{err}");
    for name in ["old", "later", "nohist", "bad"] {
        assert!(!env.states().contains_key(name), "{name} left a branch");
    }
}

#[test]
fn history_is_turned_on_thinned_and_off_for_a_branch_that_exists() {
    let Some(mut env) = Env::new("history-set", Storage::Reflink) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
    env.ok(&["init", "--sample", "--scale", "1", "--no-hooks"]);
    env.ok(&["branch", "create", "feat"]);
    let out = env.ok(&["branch", "history", "feat"]);
    assert!(out.contains("keeps none"), "{out}");
    let url = env.url("feat");
    psql_ok(
        &url,
        "CREATE TABLE marks (i int); INSERT INTO marks VALUES (1)",
    );

    // Bad input is refused before anything changes.
    let err = env.fails(&["branch", "history", "feat", "--keep", "0"]);
    assert!(err.contains("keeps no snapshot"), "{err}");
    let err = env.fails(&["branch", "history", "feat", "--window", "0"]);
    assert!(err.contains("needs a snapshot interval"), "{err}");
    let err = env.fails(&[
        "branch",
        "history",
        "feat",
        "--window",
        "1h",
        "--snapshot-every",
        "10s",
    ]);
    assert!(err.contains("too often"), "{err}");

    // The archive is a server setting: a running branch restarts, so a session
    // refuses the change unless --force.
    let held = HeldSession::open(&url, "history-held");
    let err = env.fails(&["branch", "history", "feat", "--window", "1h"]);
    assert!(err.contains("open session"), "{err}");
    assert_eq!(held.count(), "1", "the refused change ended no session");
    assert!(env.branch("feat")["history"].is_null(), "nothing changed");
    let out = env.ok(&["branch", "history", "feat", "--window", "1h", "--force"]);
    assert!(out.contains("every moment of the last 1 h"), "{out}");
    drop(held);
    let feat = env.branch("feat");
    assert_eq!(feat["history"]["window_seconds"], 3600, "{feat:#}");
    assert_eq!(feat["history"]["snapshots"], 1, "{feat:#}");
    assert_eq!(env.url("feat"), url, "same URL after the restart");

    // Moments from now on can be branched from.
    psql_ok(&url, "INSERT INTO marks VALUES (2)");
    let at = psql_ok(
        &url,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    psql_ok(&url, "INSERT INTO marks VALUES (3)");
    env.ok(&["branch", "create", "then", "--parent", "feat", "--at", &at]);
    assert_eq!(
        psql_ok(
            &env.url("then"),
            "SELECT string_agg(i::text, ',' ORDER BY i) FROM marks"
        ),
        "1,2"
    );

    // Snapshots on a schedule without WAL: moments between them are refused with the
    // way to the ones there are; `keep` bounds them (the reaper takes one a minute).
    let out = env.ok(&[
        "branch",
        "history",
        "feat",
        "--window",
        "0",
        "--snapshot-every",
        "1m",
        "--keep",
        "1",
    ]);
    assert!(out.contains("a snapshot every 1 min, no WAL"), "{out}");
    let err = env.fails(&["branch", "create", "again", "--parent", "feat", "--at", &at]);
    assert!(
        err.contains("keeps snapshots on a schedule but no WAL"),
        "{err}"
    );
    let history_snaps = |env: &Env| -> Vec<String> {
        env.json(&["snapshot", "list"])
            .as_array()
            .expect("list")
            .iter()
            .filter(|s| s["pgfork_reason"] == "history" && s["pgfork_source_branch_name"] == "feat")
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    };
    let first = history_snaps(&env);
    assert_eq!(
        first.len(),
        1,
        "the window's snapshot stays as a scheduled one"
    );
    wait_until(
        "the reaper to take the next scheduled snapshot and drop the older one (keep = 1)",
        std::time::Duration::from_secs(150),
        || {
            let now = history_snaps(&env);
            now.len() == 1 && now != first
        },
    );

    // Off: nothing kept, nothing left behind.
    let out = env.ok(&["branch", "history", "feat", "--off"]);
    assert!(out.contains("keeps none"), "{out}");
    assert!(history_snaps(&env).is_empty());
    assert!(env.branch("feat")["history"].is_null());
    assert_eq!(
        psql_ok(&url, "SELECT count(*) FROM marks"),
        "3",
        "the branch's data is untouched"
    );
}
