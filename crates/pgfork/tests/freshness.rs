//! Keeping branches current with their parent: schema diff (text and JSON), refresh
//! (reset onto the parent, then the branch's own migrations again), what a reset keeps,
//! and that a reset never ends someone's session unasked.

mod common;
use common::*;

#[test]
fn diff_names_the_new_column_and_index_and_refresh_rebases_the_branch() {
    let Some(env) = repo_with_migrations("fresh-refresh", Storage::Copy) else {
        return;
    };
    env.git(&["checkout", "-q", "-b", "feature"]);
    std::fs::write(
        env.repo.join("migrate.sql"),
        "ALTER TABLE pgbench_branches ADD COLUMN region text;\nCREATE INDEX branches_region ON pgbench_branches (region);\n",
    )
    .expect("migration");
    env.git(&["add", "migrate.sql"]);
    env.git(&["commit", "-q", "-m", "region"]);
    env.ok(&["branch", "migrate", "feature"]);

    // Diff: HEAD's branch against its parent, exactly the column and the index.
    let diff = env.json(&["diff"]);
    let changes: Vec<(String, String, String)> = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap_or("").to_string(),
                c["kind"].as_str().unwrap_or("").to_string(),
                c["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (
                "added".into(),
                "column".into(),
                "public.pgbench_branches.region".into()
            ),
            (
                "added".into(),
                "index".into(),
                "public.branches_region".into()
            ),
        ],
        "{diff:#}"
    );
    let text = env.ok(&["diff"]);
    assert!(text.contains("+    region text"), "{text}");
    assert!(text.contains("+CREATE INDEX branches_region"), "{text}");
    assert!(
        !text.contains("\\restrict") && !text.contains("-- Dumped"),
        "{text}"
    );
    assert!(env.ok(&["diff", "main", "--against", "main"]).is_empty());
    let err = env.fails(&["diff", "main"]);
    assert!(err.contains("root") && err.contains("--against"), "{err}");

    // The parent moves on.
    psql_ok(
        &env.url("main"),
        "INSERT INTO pgbench_branches (bid, bbalance) VALUES (1001, 0)",
    );

    // A connected client is never cut off unasked: refused, or waited for.
    let feature = env.url("feature");
    let session = HeldSession::open(&feature, "held-session");
    let err = env.fails(&["branch", "refresh", "feature", "--wait", "1s"]);
    assert!(
        err.contains("1 open session") && err.contains("held-session"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        session.count(),
        "1",
        "the refused refresh left the session alone"
    );
    session.close();

    // Refresh: the parent's new row, and the branch's own column again.
    let out = env.ok(&["branch", "refresh", "feature"]);
    assert!(out.contains("ran the after-create command"), "{out}");
    assert_eq!(
        psql_ok(
            &feature,
            "SELECT count(*) FROM pgbench_branches WHERE bid = 1001"
        ),
        "1",
        "the parent's new row"
    );
    assert_eq!(
        psql_ok(&feature, "SELECT count(region) FROM pgbench_branches"),
        "0",
        "the branch's own column"
    );
    assert_eq!(env.url("feature"), feature, "the URL is unchanged");

    // What the refresh replaced is kept, stopped, expiring: never lost.
    let list = env.json(&["branch", "list"]);
    let kept = list
        .as_array()
        .expect("branches")
        .iter()
        .find(|b| {
            b["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("feature-before-refresh-"))
        })
        .unwrap_or_else(|| panic!("a preserved state in {list:#}"))
        .clone();
    assert!(
        out.contains(kept["name"].as_str().expect("name")),
        "{out} {kept:#}"
    );
    assert!(!kept["expires_at"].is_null(), "{kept:#}");
    let kept_name = kept["name"].as_str().expect("name").to_string();
    assert_eq!(
        env.states()[&kept_name],
        "suspended",
        "it costs nothing until used"
    );
    let kept_url = env.url(&kept_name);
    assert_eq!(
        psql_ok(
            &kept_url,
            "SELECT count(*) FROM pgbench_branches WHERE bid = 1001"
        ),
        "0",
        "the preserved state is the old one"
    );
    psql_ok(&kept_url, "SELECT count(region) FROM pgbench_branches");

    // --discard keeps nothing; --force ends a session instead of refusing.
    let mut session = std::process::Command::new(std::path::Path::new(PG_BIN).join("psql"))
        .args(["-X", "-q", "-d", &feature, "-c", "SELECT pg_sleep(60)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let before = env.json(&["branch", "list"]).as_array().map(Vec::len);
    env.ok(&["branch", "reset", "feature", "--discard", "--force"]);
    let after = env.json(&["branch", "list"]).as_array().map(Vec::len);
    assert_eq!(before, after, "--discard kept no state");
    let status = session.wait().expect("psql ended");
    assert!(!status.success(), "the forced reset ended the session");
    assert_eq!(
        psql_ok(
            &feature,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'region'"
        ),
        "0",
        "a reset does not migrate"
    );
}

#[test]
fn branches_get_developer_settings_while_the_root_keeps_its_own() {
    let Some(env) = repo_with_migrations("fresh-settings", Storage::Copy) else {
        return;
    };
    // The root is tuned like production (ALTER SYSTEM, which a copy carries along).
    let su = env.superuser_url("main");
    psql_ok(&su, "ALTER SYSTEM SET shared_buffers = '256MB'");
    psql_ok(&su, "ALTER SYSTEM SET work_mem = '64MB'");
    env.ok(&["branch", "stop", "main"]);
    env.ok(&["branch", "start", "main"]);
    let show = |branch: &str| psql_ok(&env.url(branch), "SHOW shared_buffers; SHOW work_mem");
    assert_eq!(show("main"), "256MB\n64MB");
    let mut cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml")).expect("cfg");
    cfg.push_str("\n[postgres]\nwork_mem = \"16MB\"\n");
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.git(&["checkout", "-q", "-b", "tuned"]);
    assert_eq!(
        show("tuned"),
        "128MB\n16MB",
        "developer defaults, then [postgres]"
    );
    env.ok(&["branch", "reset", "tuned", "--discard"]);
    assert_eq!(show("tuned"), "128MB\n16MB", "a reset applies them again");
    assert_eq!(show("main"), "256MB\n64MB", "the root keeps its own");
    // A setting name that is not one is refused before anything is made.
    let mut cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml")).expect("cfg");
    cfg.push_str("\"bad name\" = \"1\"\n");
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    let err = env.fails(&["branch", "create", "bad-settings"]);
    assert!(err.contains("is not a PostgreSQL setting name"), "{err}");
    assert!(!env.states().contains_key("bad-settings"));
}

#[test]
fn status_says_how_far_behind_a_branch_is_and_which_migrations_diverge() {
    let Some(env) = repo_with_migrations("fresh-status", Storage::Copy) else {
        return;
    };
    psql_ok(
        &env.url("main"),
        "CREATE TABLE knex_migrations (id serial PRIMARY KEY, name text); INSERT INTO knex_migrations (name) VALUES ('001_init')",
    );
    for (branch, column) in [("feature-a", "a"), ("feature-b", "b")] {
        env.git(&["checkout", "-q", "main"]);
        env.git(&["checkout", "-q", "-b", branch]);
        std::fs::write(
            env.repo.join("migrate.sql"),
            format!("INSERT INTO knex_migrations (name) VALUES ('002_{column}');\nALTER TABLE pgbench_branches ADD COLUMN {column} int;\n"),
        )
        .expect("migration");
        env.git(&["add", "migrate.sql"]);
        env.git(&["commit", "-q", "-m", branch]);
        env.ok(&["branch", "migrate", branch]);
    }
    // Fresh: nothing moved on main yet.
    let fresh = env.json(&["status"]);
    assert_eq!(fresh["freshness"]["parent"], "main", "{fresh:#}");
    assert_eq!(
        fresh["freshness"]["parent_schema_changed"], false,
        "{fresh:#}"
    );
    // main moves on: a schema change and writes.
    psql_ok(
        &env.url("main"),
        "ALTER TABLE pgbench_tellers ADD COLUMN note text; UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid < 5000",
    );
    let st = env.json(&["status"]);
    let f = &st["freshness"];
    assert_eq!(f["parent_schema_changed"], true, "{st:#}");
    assert!(
        f["parent_wal_bytes_since_fork"].as_i64().unwrap_or(0) > 0,
        "{st:#}"
    );
    let conflicts = f["migration_conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{st:#}");
    assert_eq!(conflicts[0]["tool"], "Knex");
    assert_eq!(conflicts[0]["branch_a"], "feature-a");
    assert_eq!(conflicts[0]["only_a"][0], "002_a");
    assert_eq!(conflicts[0]["only_b"][0], "002_b");
    let text = env.ok(&["status"]);
    assert!(text.contains("behind:   main: forked"), "{text}");
    assert!(
        text.contains("main's schema changed (`pgfork branch refresh feature-b` catches up)"),
        "{text}"
    );
    assert!(
        text.contains("warning:  feature-a and feature-b both applied Knex migrations"),
        "{text}"
    );
    // Caught up: the parent's schema is the branch's again.
    env.ok(&["branch", "refresh", "feature-b", "--discard"]);
    let after = env.json(&["status"]);
    assert_eq!(
        after["freshness"]["parent_schema_changed"], false,
        "{after:#}"
    );
    assert_eq!(
        psql_ok(
            &env.url("feature-b"),
            "SELECT count(note) FROM pgbench_tellers"
        ),
        "0",
        "the parent's new column is there"
    );
}

#[test]
fn a_stale_branch_is_refreshed_at_checkout_only_when_it_has_nothing_of_its_own() {
    let Some(env) = repo_with_migrations("fresh-policy", Storage::Copy) else {
        return;
    };
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml"))
        .expect("cfg")
        .replace(
            "[branches]\n",
            "[branches]\nrefresh = \"on-parent-schema-change\"\n",
        );
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.git(&["commit", "-q", "-am", "refresh policy"]);
    env.ok(&["allow"]);
    env.git(&["checkout", "-q", "-b", "clean"]);
    env.git(&["checkout", "-q", "main"]);
    env.git(&["checkout", "-q", "-b", "dirty"]);
    psql_ok(
        &env.url("dirty"),
        "INSERT INTO pgbench_branches (bid, bbalance) VALUES (777, 0)",
    );
    env.git(&["checkout", "-q", "main"]);
    // Nothing moved yet: a checkout leaves both alone.
    let out = env.git_output(&env.repo, &["checkout", "clean"]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("refresh"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.git(&["checkout", "-q", "main"]);
    psql_ok(
        &env.url("main"),
        "ALTER TABLE pgbench_tellers ADD COLUMN shift int",
    );

    // Clean: refreshed at checkout, said so, its old state kept.
    let out = env.git_output(&env.repo, &["checkout", "clean"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("refreshed database branch \"clean\" onto main"),
        "{said}"
    );
    assert!(
        said.contains("main's schema changed since it forked"),
        "{said}"
    );
    assert_eq!(
        psql_ok(
            &env.url("clean"),
            "SELECT count(shift) FROM pgbench_tellers"
        ),
        "0"
    );
    assert!(
        env.states()
            .keys()
            .any(|n| n.starts_with("clean-before-refresh-")),
        "{:?}",
        env.states()
    );

    // Dirty: only pointed out; its own row and old schema stay.
    let out = env.git_output(&env.repo, &["checkout", "dirty"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(said.contains("\"dirty\" is behind main"), "{said}");
    assert!(said.contains("changes of its own"), "{said}");
    assert!(said.contains("pgfork branch refresh dirty"), "{said}");
    let dirty = env.url("dirty");
    assert_eq!(
        psql_ok(
            &dirty,
            "SELECT count(*) FROM pgbench_branches WHERE bid = 777"
        ),
        "1"
    );
    assert_eq!(
        psql_ok(
            &dirty,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'shift'"
        ),
        "0"
    );
    let status = env.ok(&["status"]);
    assert!(
        status.contains(
            "refresh:  due (main's schema changed since it forked, and it has changes of its own)"
        ),
        "{status}"
    );
    assert!(!env
        .states()
        .keys()
        .any(|n| n.starts_with("dirty-before-refresh-")));
}
