//! A root that follows production: a streaming standby of a "production" Postgres the
//! test starts, branched online while production takes a write load.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_replica_root_stays_seconds_behind_and_its_branches_are_consistent_primaries() {
    let prod = Production::start("replica", &[]);
    let admin = prod.admin_url("postgres");
    let init = std::process::Command::new(std::path::Path::new(PG_BIN).join("pgbench"))
        .args(["-i", "-q", "-s", "2", &admin])
        .output()
        .expect("pgbench -i");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    psql_ok(
        &admin,
        "CREATE TABLE marks (i int PRIMARY KEY, at timestamptz DEFAULT now())",
    );
    let Some(env) = Env::new("follow-replica", Storage::Reflink) else {
        return;
    };
    env.init_from(&admin, &["--method", "replica", "--no-hooks"]);
    let root = env.branch("main");
    assert_eq!(root["clone_method"], "replica", "{root:#}");

    let list = env.ok(&["branch", "list"]);
    assert!(
        list.contains("root main: follows its source, streaming"),
        "{list}"
    );
    let load = Load::start(&admin, 4);
    let mut branches = Vec::new();
    for i in 0..10 {
        psql_ok(&admin, &format!("INSERT INTO marks (i) VALUES ({i})"));
        std::thread::sleep(Duration::from_secs(5));
        let name = format!("follow-{i}");
        let t = Instant::now();
        env.ok(&["branch", "create", &name]);
        let took = t.elapsed();
        let url = env.url(&name);
        assert_eq!(
            psql_ok(&url, &format!("SELECT count(*) FROM marks WHERE i = {i}")),
            "1",
            "a row committed on production 5 s before the branch is in it"
        );
        // A primary of its own: writable, and never streaming from production.
        psql_ok(
            &url,
            &format!("INSERT INTO marks (i) VALUES ({})", 1000 + i),
        );
        assert_eq!(psql_ok(&url, "SELECT pg_is_in_recovery()"), "f");
        let su = env.superuser_url(&name);
        assert_eq!(
            psql_ok(&su, "SELECT count(*) FROM pg_stat_wal_receiver"),
            "0"
        );
        assert_eq!(psql_ok(&su, "SHOW primary_conninfo"), "");
        assert_eq!(psql_ok(&su, "SHOW archive_mode"), "off");
        report(&format!(
            "replica root: branch {i} created in {:.0} ms under load",
            took.as_secs_f64() * 1000.0
        ));
        branches.push(name);
    }
    drop(load);
    for name in &branches {
        if let Some(v) = consistency_violation(&env.superuser_url(name)) {
            panic!("branch {name} of the replica root is inconsistent: {v}");
        }
    }
    // The branches never connected back: production sees one walsender, the root's.
    assert_eq!(
        psql_ok(&admin, "SELECT count(*) FROM pg_stat_replication"),
        "1",
        "only the root streams from production"
    );
    // The root is production's copy: read-only, and its password file stays its own.
    let data = env.branch("follow-0")["data_dir"]
        .as_str()
        .expect("data_dir")
        .to_string();
    assert!(!std::path::Path::new(&data)
        .join("pgfork_primary.pgpass")
        .exists());
    assert!(!std::path::Path::new(&data).join("standby.signal").exists());
}

#[test]
fn a_subscribed_root_follows_production_and_its_branches_do_not() {
    let prod = Production::start("subscribe", &["wal_level = logical"]);
    let admin = prod.admin_url("postgres");
    let init = std::process::Command::new(std::path::Path::new(PG_BIN).join("pgbench"))
        .args(["-i", "-q", "-s", "1", &admin])
        .output()
        .expect("pgbench -i");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    psql_ok(
        &admin,
        "CREATE TABLE marks (id bigserial PRIMARY KEY, i int UNIQUE); ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY",
    );
    let Some(env) = Env::new("follow-subscribe", Storage::Reflink) else {
        return;
    };
    // A source that cannot publish is refused with the fix.
    let replica_level = Production::start("subscribe-replica", &[]);
    let out = env
        .command(&[
            "init",
            "--from-env",
            "SRC",
            "--method",
            "subscribe",
            "--no-hooks",
        ])
        .env("SRC", replica_level.admin_url("postgres"))
        .output()
        .expect("init");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wal_level is replica") && err.contains("--method replica"),
        "{err}"
    );
    drop(replica_level);

    env.init_from(&admin, &["--method", "subscribe", "--no-hooks"]);
    let root = env.branch("main");
    assert_eq!(root["clone_method"], "subscribe", "{root:#}");
    assert_eq!(
        psql_ok(&env.url("main"), "SELECT count(*) FROM pgbench_accounts"),
        "100000",
        "init waits for the initial copy"
    );

    let load = Load::start(&admin, 4);
    let mut branches = Vec::new();
    for i in 0..10 {
        psql_ok(&admin, &format!("INSERT INTO marks (i) VALUES ({i})"));
        std::thread::sleep(Duration::from_secs(5));
        let name = format!("sub-{i}");
        let t = Instant::now();
        env.ok(&["branch", "create", &name]);
        let took = t.elapsed();
        let url = env.url(&name);
        assert_eq!(
            psql_ok(&url, &format!("SELECT count(*) FROM marks WHERE i = {i}")),
            "1",
            "a row committed on production 5 s before the branch is in it"
        );
        let su = env.superuser_url(&name);
        assert_eq!(
            psql_ok(&su, "SELECT subenabled::text || ',' || coalesce(subslotname::text, 'none') FROM pg_subscription"),
            "false,none",
            "the branch's subscription is disabled and detached from the source's slot"
        );
        // Its sequences are past the copied rows: an insert does not collide.
        psql_ok(
            &url,
            &format!("INSERT INTO marks (i) VALUES ({})", 1000 + i),
        );
        report(&format!(
            "subscribe root: branch {i} created in {:.0} ms under load",
            took.as_secs_f64() * 1000.0
        ));
        branches.push(name);
    }
    drop(load);
    for name in &branches {
        if let Some(v) = consistency_violation(&env.superuser_url(name)) {
            panic!("branch {name} of the subscribed root is inconsistent: {v}");
        }
    }
    // Production serves one subscriber (the root); the branches never connected.
    assert_eq!(
        psql_ok(&admin, "SELECT count(*) FROM pg_stat_replication"),
        "1",
        "only the root's subscription streams from production"
    );
    let data = env.branch("sub-0")["data_dir"]
        .as_str()
        .expect("data_dir")
        .to_string();
    assert!(!std::path::Path::new(&data)
        .join("pgfork_primary.pgpass")
        .exists());
    // Deleting the project drops the root's slot on production.
    let projects = env.json(&["project", "list"]);
    let name = projects[0]["name"].as_str().expect("name").to_string();
    env.ok(&["project", "delete", &name, "--yes"]);
    assert_eq!(
        psql_ok(&admin, "SELECT count(*) FROM pg_replication_slots"),
        "0",
        "no slot is left on production"
    );
}
