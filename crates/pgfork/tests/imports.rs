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

/// One line per fact a faithful copy must keep, from a superuser's view of `url`'s
/// database and cluster. pgfork's own roles are left out, and so are superusers'
/// passwords (a branch's superusers have none, by design).
fn fingerprint(url: &str) -> Vec<String> {
    let queries = [
        ("rows", "SELECT string_agg(format('%s=%s', c.oid::regclass, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', c.oid::regclass), false, true, '')))[1]::text), ',' ORDER BY c.oid::regclass::text) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"),
        ("sequences", "SELECT string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value::text, '-'), ',' ORDER BY sequencename) FROM pg_sequences"),
        ("roles", "SELECT string_agg(rolname || ':' || rolsuper || rolinherit || rolcreaterole || rolcreatedb || rolcanlogin || rolreplication || rolbypassrls || ':' || rolconnlimit || ':' || CASE WHEN rolsuper THEN '' ELSE coalesce(rolpassword, '-') END, ',' ORDER BY rolname) FROM pg_authid WHERE rolname !~ '^pg_' AND rolname !~ '^pgfork_'"),
        ("members", "SELECT string_agg(roleid::regrole || '>' || member::regrole, ',' ORDER BY roleid::regrole::text, member::regrole::text) FROM pg_auth_members WHERE roleid::regrole::text !~ '^pg(fork)?_' AND member::regrole::text !~ '^pgfork_'"),
        ("owners", "SELECT string_agg(c.oid::regclass || '@' || pg_get_userbyid(c.relowner), ',' ORDER BY c.oid::regclass::text) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"),
        ("grants", "SELECT string_agg(c.oid::regclass || ':' || array_to_string(c.relacl, ';'), ',' ORDER BY c.oid::regclass::text) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relacl IS NOT NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema')"),
        ("schema grants", "SELECT string_agg(nspname || ':' || array_to_string(nspacl, ';'), ',') FROM pg_namespace WHERE nspname = 'app'"),
        ("default privileges", "SELECT string_agg(defaclrole::regrole || ':' || defaclobjtype || ':' || array_to_string(defaclacl, ';'), ',') FROM pg_default_acl"),
        ("settings", "SELECT string_agg(coalesce(nullif(setrole, 0)::regrole::text, '-') || ':' || coalesce((SELECT datname FROM pg_database WHERE oid = setdatabase), '-') || ':' || array_to_string(setconfig, ';'), ',' ORDER BY setrole::regrole::text, setdatabase) FROM pg_db_role_setting"),
        ("extensions", "SELECT string_agg(extname || '=' || extversion, ',' ORDER BY extname) FROM pg_extension"),
        ("policies", "SELECT string_agg(polname || ':' || pg_get_expr(polqual, polrelid) || ':' || array_to_string(polroles::regrole[]::text[], ';'), ',') FROM pg_policy"),
        ("rls", "SELECT string_agg(oid::regclass::text, ',') FROM pg_class WHERE relrowsecurity"),
        ("large objects", "SELECT string_agg(lomowner::regrole || ':' || encode(lo_get(oid), 'escape'), ',') FROM pg_largeobject_metadata"),
        ("partitions", "SELECT string_agg(inhrelid::regclass || '<' || inhparent::regclass, ',' ORDER BY inhrelid::regclass::text) FROM pg_inherits"),
        ("triggers", "SELECT string_agg(tgrelid::regclass || '.' || tgname, ',') FROM pg_trigger WHERE NOT tgisinternal"),
        ("comments", "SELECT obj_description('app.customers'::regclass) || '/' || shobj_description((SELECT oid FROM pg_database WHERE datname = 'shop'), 'pg_database')"),
        ("database", "SELECT pg_get_userbyid(datdba) || ':' || array_to_string(datacl, ';') || ':' || pg_encoding_to_char(encoding) || ':' || datcollate FROM pg_database WHERE datname = 'shop'"),
        ("checksums", "SHOW data_checksums"),
        ("matview", "SELECT count(*) || '/' || sum(total) FROM app.daily"),
        ("publications", "SELECT string_agg(pubname, ',') FROM pg_publication"),
    ];
    queries
        .iter()
        .map(|(what, sql)| {
            format!(
                "{what}: {}",
                psql(url, sql).unwrap_or_else(|e| format!("ERROR {e}"))
            )
        })
        .collect()
}

#[test]
fn a_production_database_imports_with_its_roles_grants_settings_and_extension_versions() {
    let prod = Production::start("faithful", &[]);
    prod.script("postgres", include_str!("support/production_schema.sql"));
    let Some(env) = Env::new("faithful-import", Storage::Copy) else {
        return;
    };
    let out = env
        .command(&["init", "--from-env", "PGFORK_TEST_SOURCE_URL", "--no-hooks"])
        .env("PGFORK_TEST_SOURCE_URL", prod.admin_url("shop"))
        .output()
        .expect("init");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The superuser owned one table: here the URL's role does, so migrations can alter
    // it; every other fact is the source's.
    let source: Vec<String> = fingerprint(&prod.admin_url("shop"))
        .into_iter()
        .map(|l| l.replace("@postgres", "@pgfork_owner"))
        .collect();
    let here = fingerprint(&env.superuser_url("main").replace("/postgres?", "/shop?"));
    for (s, h) in source.iter().zip(&here) {
        assert_eq!(s, h, "the import differs from production");
    }
    assert!(
        here.iter()
            .any(|l| l == "extensions: citext=1.6,hstore=1.7,pg_trgm=1.6,pgcrypto=1.3,plpgsql=1.0"),
        "the source's extension versions, not this server's newest: {here:#?}"
    );
    assert!(here.contains(&"checksums: on".to_string()), "{here:#?}");
    report(&format!(
        "faithful import: {} facts equal to production's",
        here.len()
    ));

    // The report says what was copied, and names the one thing deliberately left out.
    let projects = env.json(&["project", "list"]);
    let report = &projects[0]["pgfork_import_report"];
    let differs: Vec<&str> = report["differs"]
        .as_array()
        .expect("differs")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert_eq!(
        differs,
        vec!["1 subscription: not copied, so that no branch connects to a publisher"],
        "{report:#}"
    );
    let copied = report["copied"].to_string();
    for want in [
        "4 roles (3 with their password verifiers)",
        "row-level security policy",
        "extensions citext 1.6, hstore 1.7",
        "large object",
        "data checksums on",
    ] {
        assert!(copied.contains(want), "{want:?} not in {copied}");
    }
    assert!(
        printed.contains("copied:") && printed.contains("subscription"),
        "init prints the report: {printed}"
    );

    // The application's own role logs in with its production password, and sees what
    // production would show it: its settings, and only its tenant's rows.
    let port = env.branch("main")["port"].as_u64().expect("port");
    let app = format!("postgresql://app_user:user-secret@127.0.0.1:{port}/shop");
    assert_eq!(
        psql_ok(
            &app,
            "SHOW work_mem; SHOW statement_timeout; SHOW search_path; SHOW timezone"
        ),
        "8MB\n30s\napp, public\nAsia/Tokyo"
    );
    assert_eq!(
        psql_ok(&app, "SET app.tenant = '1'; SELECT count(*) FROM customers"),
        "334"
    );
    assert!(
        psql(&app, "DELETE FROM customers").is_err(),
        "app_user has no DELETE grant"
    );
    // The superuser's production password opens nothing here.
    let su = format!(
        "postgresql://postgres:{}@127.0.0.1:{port}/shop",
        common::production::SUPERUSER_PASSWORD
    );
    assert!(
        psql(&su, "SELECT 1").is_err(),
        "a superuser logged in over TCP"
    );
    // The URL's role runs a migration on the superuser's table and on the app's.
    let owner = env.url("main").replace("/postgres", "/shop");
    psql_ok(&owner, "ALTER TABLE public.su_owned ADD COLUMN note text; ALTER TABLE app.customers ADD COLUMN plan text");
    // A branch has no subscription to start.
    env.ok(&["branch", "create", "feature"]);
    let feature = env.superuser_url("feature").replace("/postgres?", "/shop?");
    assert_eq!(
        psql_ok(&feature, "SELECT count(*) FROM pg_subscription"),
        "0"
    );
}

#[test]
fn the_root_is_made_again_from_production_and_branches_stay_as_they_were() {
    let prod = Production::start("refresh", &[]);
    prod.script(
        "postgres",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('v1');",
    );
    let Some(env) = Env::new("root-refresh", Storage::Copy) else {
        return;
    };
    env.init_from(&prod.admin_url("postgres"), &["--no-hooks"]);
    let root_url = env.url("main");
    env.ok(&["branch", "create", "before"]);
    prod.script(
        "postgres",
        "UPDATE t SET v = 'v2'; CREATE TABLE t2 (x int);",
    );

    // A client of the root is never cut off unasked.
    let session = HeldSession::open(&root_url, "root-reader");
    let err = env.fails(&["root", "refresh"]);
    assert!(err.contains("root-reader"), "{err}");
    assert_eq!(
        psql_ok(&root_url, "SELECT v FROM t"),
        "v1",
        "a refused refresh changed nothing"
    );
    session.close();

    let out = env.ok(&["root", "refresh"]);
    assert!(out.contains("existing branches are untouched"), "{out}");
    assert!(out.contains("copied:"), "the import report again: {out}");
    assert_eq!(env.url("main"), root_url, "the root keeps its URL");
    assert_eq!(psql_ok(&root_url, "SELECT v FROM t"), "v2");
    psql_ok(&root_url, "SELECT count(*) FROM t2");
    assert_eq!(
        psql_ok(&env.url("before"), "SELECT v FROM t"),
        "v1",
        "a branch is untouched"
    );
    env.ok(&["branch", "create", "after"]);
    assert_eq!(psql_ok(&env.url("after"), "SELECT v FROM t"), "v2");

    let status = env.ok(&["status"]);
    assert!(
        status.contains("root:     a snapshot of its source taken "),
        "{status}"
    );
    // A schedule: set, shown, refused when it would never stop, turned off.
    let out = env.ok(&["root", "refresh", "--schedule", "daily", "--schedule-only"]);
    assert!(out.contains("schedule: every 24 h, next at"), "{out}");
    let err = env.fails(&["root", "refresh", "--schedule", "30s", "--schedule-only"]);
    assert!(err.contains("at least 10m"), "{err}");
    let out = env.ok(&["root", "refresh", "--schedule", "off", "--schedule-only"]);
    assert!(out.contains("schedule: off"), "{out}");
}
