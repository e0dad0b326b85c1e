//! The engine's core promises: branches of a running parent are consistent under
//! concurrent writes, isolated, and (on reflink filesystems) nearly free.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn create_under_load(env: &Env, branches: usize) {
    env.init_sample(10);
    let main = env.url("main");
    let before = psql_ok(&main, "SELECT count(*) FROM pgbench_history");
    let load = Load::start(&main, 4);
    let mut times = Vec::new();
    for i in 0..branches {
        let t = Instant::now();
        env.ok(&["branch", "create", &format!("load-{i}")]);
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(load);
    let after = psql_ok(&main, "SELECT count(*) FROM pgbench_history");
    assert_ne!(
        before, after,
        "the parent must have been written to during the test"
    );
    report(&format!(
        "{}: {branches} branches under pgbench load, create times {:?}",
        env.name,
        times
            .iter()
            .map(|t| format!("{:.0}ms", t.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
    ));
    let mut history_rows = Vec::new();
    for i in 0..branches {
        let name = format!("load-{i}");
        let b = env.branch(&name);
        assert_eq!(b["state"], "running", "{name}: {b}");
        let url = env.url(&name);
        if let Some(v) = consistency_violation(&env.superuser_url(&name)) {
            panic!("{name} is inconsistent: {v}");
        }
        history_rows.push(
            psql_ok(&url, "SELECT count(*) FROM pgbench_history")
                .parse::<i64>()
                .expect("count"),
        );
    }
    // Each branch is a later snapshot: history only grows from one to the next.
    assert!(
        history_rows.windows(2).all(|w| w[0] <= w[1]),
        "snapshots out of order: {history_rows:?}"
    );
    assert!(
        consistency_violation(&env.superuser_url("main")).is_none(),
        "the parent itself must stay consistent"
    );
}

#[test]
fn branches_of_a_parent_under_write_load_are_consistent_reflink() {
    let Some(env) = Env::new("load-reflink", Storage::Reflink) else {
        return;
    };
    create_under_load(&env, 10);
    assert_eq!(env.branch("load-0")["clone_method"], "reflink");
}

#[test]
fn branches_of_a_parent_under_write_load_are_consistent_copy() {
    let Some(env) = Env::new("load-copy", Storage::Copy) else {
        return;
    };
    create_under_load(&env, 3);
    assert_eq!(env.branch("load-0")["clone_method"], "copy");
}

/// The negative control: a naive copy of the running parent (no backup mode, WAL
/// before data, no backup_label) must be caught by the same consistency check. If this
/// test ever "passes the check", the check proves nothing.
#[test]
fn a_naive_copy_of_a_running_parent_fails_the_consistency_check() {
    let storage = if xfs_dir().is_some() {
        Storage::Reflink
    } else {
        Storage::Copy
    };
    let Some(env) = Env::new("naive", storage) else {
        return;
    };
    env.init_sample(10);
    let main = env.branch("main");
    let main_url = env.url("main");
    let pgdata = std::path::PathBuf::from(main["data_dir"].as_str().expect("data_dir"));
    let user = pgfork_pg::ServerUser::resolve("postgres").expect("server user");
    let installs = pgfork_pg::PgInstalls::discover(None).expect("postgres installed");
    let method = if storage == Storage::Reflink {
        pgfork_cow::CloneMethod::Reflink
    } else {
        pgfork_cow::CloneMethod::Copy
    };
    let port: u16 = env
        .ports
        .split('-')
        .nth(1)
        .expect("range")
        .parse()
        .expect("port");
    let mut detected = 0;
    let attempts = 3;
    for attempt in 0..attempts {
        let load = Load::start(&main_url, 4);
        let dir = env.home.join(format!("naive-{attempt}"));
        let checkpoint = || {
            std::thread::sleep(Duration::from_millis(500));
            psql_ok(&main_url, "CHECKPOINT");
            std::thread::sleep(Duration::from_millis(500));
        };
        pgfork_pg::clone::naive_clone_for_tests(&pgdata, &dir, method, &user, &checkpoint)
            .expect("naive clone");
        drop(load);
        let inst = pgfork_pg::Instance {
            pgdata: dir.clone(),
            socket_dir: env.home.join(format!("naive-sock-{attempt}")),
            port,
            log_file: env.home.join(format!("naive-{attempt}.log")),
            superuser: "postgres".into(),
            archive_dir: None,
        };
        let verdict = match inst.start(installs.newest(), &user, &[], Duration::from_secs(60)) {
            Err(e) => Some(format!("did not even start: {e}")),
            Ok(_) => {
                // Branch Postgres listens only on its private socket (the proxy owns TCP).
                let url = format!(
                    "postgresql:///postgres?host={}&port={port}&user=postgres",
                    inst.socket_dir.display()
                );
                consistency_violation(&url)
            }
        };
        let _ = inst.stop(Duration::from_secs(30));
        report(&format!(
            "naive copy attempt {attempt}: {}",
            verdict.as_deref().unwrap_or("NOT detected")
        ));
        if verdict.is_some() {
            detected += 1;
        }
    }
    assert!(detected > 0, "a naive copy passed the consistency check {attempts} times: the check cannot tell corruption");
    // And the real recipe, same parent, same load: consistent.
    let load = Load::start(&main_url, 4);
    env.ok(&["branch", "create", "proper"]);
    drop(load);
    assert_eq!(consistency_violation(&env.superuser_url("proper")), None);
}

#[test]
fn writes_are_isolated_between_parent_children_and_siblings() {
    let Some(env) = Env::new("isolation", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let main = env.url("main");
    psql_ok(
        &main,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('from-main')",
    );
    env.ok(&["branch", "create", "a"]);
    env.ok(&["branch", "create", "b"]);
    let (a, b) = (env.url("a"), env.url("b"));
    psql_ok(&a, "INSERT INTO t VALUES ('from-a')");
    psql_ok(&main, "INSERT INTO t VALUES ('main-later')");
    psql_ok(&b, "INSERT INTO t VALUES ('from-b')");
    let rows = |url: &str| psql_ok(url, "SELECT string_agg(v, ',' ORDER BY v) FROM t");
    assert_eq!(rows(&main), "from-main,main-later");
    assert_eq!(rows(&a), "from-a,from-main");
    assert_eq!(rows(&b), "from-b,from-main");
    // A child of a child carries its parent's writes, and its own stay home.
    env.ok(&["branch", "create", "a-child", "--parent", "a"]);
    let ac = env.url("a-child");
    assert_eq!(rows(&ac), "from-a,from-main");
    psql_ok(&ac, "INSERT INTO t VALUES ('from-a-child')");
    assert_eq!(rows(&a), "from-a,from-main");
    assert_eq!(env.branch("a-child")["parent"], "a");
    // Schema changes too.
    psql_ok(&b, "ALTER TABLE t ADD COLUMN extra int");
    assert!(psql(&main, "SELECT extra FROM t").is_err());
}

#[test]
fn a_fresh_reflink_branch_costs_under_a_mebibyte() {
    let Some(env) = Env::new("unique-bytes", Storage::Reflink) else {
        return;
    };
    env.init_sample(10);
    env.ok(&["branch", "create", "fresh"]);
    let b = env.branch("fresh");
    assert_eq!(b["clone_method"], "reflink");
    let unique = b["unique_bytes"].as_u64().expect("unique bytes measured");
    let logical = b["logical_bytes"].as_u64().expect("logical bytes measured");
    report(&format!(
        "fresh reflink branch: {unique} unique bytes of {logical} logical"
    ));
    assert!(
        logical > 100 << 20,
        "the branch holds the sample data: {logical}"
    );
    assert!(
        unique <= 1 << 20,
        "a fresh branch owns {unique} bytes, more than 1 MiB"
    );
    let listed = env.ok(&["branch", "list"]);
    assert!(
        listed.contains("reflink") && listed.contains("UNIQUE"),
        "{listed}"
    );
}

#[test]
fn the_copy_fallback_is_used_and_announced_on_a_plain_disk() {
    let Some(env) = Env::new("copy-fallback", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let out = env.run(&["branch", "create", "c"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("no reflinks") && stderr.contains("XFS"),
        "{stderr}"
    );
    assert_eq!(env.branch("c")["clone_method"], "copy");
    let doctor = env.ok(&["doctor"]);
    assert!(doctor.contains("full copy"), "{doctor}");
    // The fix says what to do, not the problem again.
    let fix = doctor
        .lines()
        .find(|l| l.contains("fix:") && l.contains("XFS"))
        .unwrap_or_else(|| panic!("a fix line: {doctor}"));
    assert!(!fix.contains("no reflinks"), "{fix}");
}
