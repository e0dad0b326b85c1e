//! Root branch sources: logical and physical import from a live database, adopting a
//! stopped data directory (never modifying it).

mod common;
use common::*;

fn source() -> Env {
    let env = Env::new("source", Storage::Copy).expect("copy storage always exists");
    env.init_sample(1);
    psql_ok(
        &env.url("main"),
        "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('from-source')",
    );
    env
}

#[test]
fn logical_and_physical_imports_copy_the_source() {
    let src = source();
    let url = src.url("main");
    for method in ["logical", "physical"] {
        let Some(dst) = Env::new(&format!("import-{method}"), Storage::Copy) else {
            return;
        };
        dst.ok(&["init", "--from", &url, "--method", method, "--no-hooks"]);
        let main = dst.url("main");
        assert_eq!(
            psql_ok(&main, "SELECT v FROM marker"),
            "from-source",
            "{method}"
        );
        assert_eq!(
            psql_ok(&main, "SELECT count(*) FROM pgbench_accounts"),
            "100000",
            "{method}"
        );
        dst.ok(&["branch", "create", "child"]);
        assert_eq!(
            psql_ok(&dst.url("child"), "SELECT v FROM marker"),
            "from-source"
        );
        assert_ne!(main, url, "the import has its own credentials");
    }
    let Some(dst) = Env::new("import-bad", Storage::Copy) else {
        return;
    };
    let err = dst.fails(&[
        "init",
        "--from",
        "postgresql://nobody:wrong@127.0.0.1:1/none",
        "--no-hooks",
    ]);
    assert!(
        err.contains("could not connect to the source database"),
        "{err}"
    );
    assert!(!dst.repo.join(".pgfork.toml").exists());
}

#[test]
fn adopting_a_stopped_data_directory_clones_it_and_leaves_it_untouched() {
    let src = source();
    src.ok(&["branch", "create", "frozen"]);
    src.ok(&["branch", "stop", "frozen"]);
    let dir = src.branch("frozen")["data_dir"]
        .as_str()
        .expect("data_dir")
        .to_string();
    let fingerprint = || {
        let mut out = Vec::new();
        for f in [
            "pg_hba.conf",
            "postgresql.conf",
            "global/pg_control",
            "PG_VERSION",
        ] {
            out.push(std::fs::read(std::path::Path::new(&dir).join(f)).unwrap_or_default());
        }
        out
    };
    let before = fingerprint();
    let Some(dst) = Env::new("adopt", Storage::Copy) else {
        return;
    };
    dst.ok(&["init", "--from-dir", &dir, "--no-hooks"]);
    assert_eq!(
        psql_ok(&dst.url("main"), "SELECT v FROM marker"),
        "from-source"
    );
    assert_eq!(before, fingerprint(), "the adopted directory was modified");
    src.ok(&["branch", "start", "frozen"]);
    // A running directory is refused.
    let Some(dst2) = Env::new("adopt-running", Storage::Copy) else {
        return;
    };
    let err = dst2.fails(&["init", "--from-dir", &dir, "--no-hooks"]);
    assert!(err.contains("running PostgreSQL"), "{err}");
}
