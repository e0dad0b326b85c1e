//! A crash (abort: no destructor, no cleanup) at every step of every operation that
//! moves data: after the restart each operation is either done or undone, every live
//! branch answers with its own data, and nothing half-made is left in the store.
//!
//! The failpoints are compiled into the binary the tests run (the `testing` feature of
//! pgfork-daemon, enabled as a dev-dependency) and never into a release build.

mod common;
use common::*;
use std::path::Path;

/// Starts the daemon so that it aborts at `point`, runs `args` (which fails: the
/// daemon dies under it), then lets the next command start a clean daemon.
fn crash_during(env: &Env, point: &str, args: &[&str]) {
    env.ok(&["daemon", "stop"]);
    let mut start = env.command(&["daemon", "start"]);
    start.env("FAILPOINTS", format!("{point}=return"));
    assert!(start.status().expect("start").success());
    let out = env.run(args);
    assert!(
        !out.status.success(),
        "{point}: the daemon should have died during {args:?}"
    );
    // The next command starts a daemon without failpoints, which reconciles.
    env.ok(&["branch", "list"]);
}

fn marker(url: &str) -> Option<String> {
    psql(url, "SELECT v FROM marker").ok()
}

/// Every live branch answers; nothing half-made remains on disk.
fn assert_store_clean(env: &Env, point: &str) {
    let tmp = env.home.join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{point}: tmp/ still holds {left:?}");
    let all = env.json(&["branch", "list", "--all"]);
    let known: Vec<String> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["data_dir"].as_str().unwrap_or("").to_string())
        .collect();
    for root in ["branches", "trash"] {
        for project in std::fs::read_dir(env.home.join(root))
            .into_iter()
            .flatten()
            .flatten()
        {
            for dir in std::fs::read_dir(project.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let d = dir.path().display().to_string();
                assert!(known.contains(&d), "{point}: {d} belongs to no branch");
            }
        }
    }
    for b in all.as_array().expect("array") {
        if b["state"] != "deleted" {
            let name = b["name"].as_str().expect("name");
            assert!(
                Path::new(b["data_dir"].as_str().expect("dir"))
                    .join("PG_VERSION")
                    .exists(),
                "{point}: live branch {name} has no data"
            );
            psql_ok(&env.url(name), "SELECT 1");
        }
    }
}

#[test]
fn every_step_of_every_operation_survives_a_crash() {
    let Some(env) = Env::new("crash-points", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let main = env.url("main");
    psql_ok(&main, "CREATE TABLE marker AS SELECT 'main'::text AS v");

    for point in [
        "create-after-clone",
        "create-after-rename",
        "create-after-start",
    ] {
        crash_during(&env, point, &["branch", "create", "c"]);
        assert_store_clean(&env, point);
        if env.states().get("c").map(String::as_str) == Some("running") {
            assert_eq!(marker(&env.url("c")).as_deref(), Some("main"), "{point}");
            env.ok(&["branch", "delete", "c", "--purge"]);
        }
        report(&format!(
            "crash at {point}: create undone or done, store clean"
        ));
    }

    env.ok(&["branch", "create", "r"]);
    psql_ok(&env.url("r"), "UPDATE marker SET v = 'r before reset'");
    for point in [
        "reset-after-clone",
        "reset-after-move-aside",
        "reset-after-swap",
    ] {
        crash_during(&env, point, &["branch", "reset", "r"]);
        assert_store_clean(&env, point);
        let v = marker(&env.url("r"));
        assert!(
            matches!(v.as_deref(), Some("r before reset") | Some("main")),
            "{point}: r holds {v:?}"
        );
        psql_ok(&env.url("r"), "UPDATE marker SET v = 'r before reset'");
        report(&format!("crash at {point}: reset undone or done ({v:?})"));
    }

    env.ok(&["branch", "create", "d"]);
    psql_ok(&env.url("d"), "UPDATE marker SET v = 'd'");
    crash_during(&env, "trash-after-move", &["branch", "delete", "d"]);
    assert_store_clean(&env, "trash-after-move");
    if env.states().get("d").map(String::as_str) == Some("deleted") {
        env.ok(&["branch", "recover", "d"]);
    }
    assert_eq!(marker(&env.url("d")).as_deref(), Some("d"));

    env.ok(&["branch", "delete", "d"]);
    crash_during(&env, "recover-after-move", &["branch", "recover", "d"]);
    assert_store_clean(&env, "recover-after-move");
    if env.states().get("d").map(String::as_str) == Some("deleted") {
        env.ok(&["branch", "recover", "d"]);
    }
    assert_eq!(marker(&env.url("d")).as_deref(), Some("d"));

    crash_during(
        &env,
        "purge-after-move",
        &["branch", "delete", "d", "--purge"],
    );
    assert_store_clean(&env, "purge-after-move");
    assert!(
        !env.states().contains_key("d") || marker(&env.url("d")).as_deref() == Some("d"),
        "purge: done, or the branch intact"
    );

    env.ok(&["branch", "create", "u"]);
    crash_during(
        &env,
        "update-before-write",
        &["branch", "rename", "u", "u2"],
    );
    assert_store_clean(&env, "update-before-write");
    let s = env.states();
    assert!(s.contains_key("u") ^ s.contains_key("u2"), "{s:?}");

    assert_eq!(
        marker(&main).as_deref(),
        Some("main"),
        "the root never changed"
    );
    assert_eq!(consistency_violation_free(&env.superuser_url("main")), None);
}

/// Whether the root's catalog indexes are sound (amcheck).
fn consistency_violation_free(url: &str) -> Option<String> {
    psql(
        url,
        "CREATE EXTENSION IF NOT EXISTS amcheck; SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid",
    )
    .err()
}
