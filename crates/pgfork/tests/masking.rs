//! Masked branches: personal data is rewritten before anyone may connect, and no byte of
//! the originals is left in the branch's files (heap, dead tuples, indexes, TOAST,
//! statistics, WAL, logs); pseudonyms are deterministic so joins still match; rules that
//! could break a unique key, or that fail, leave no branch behind.

mod common;
use common::*;
use std::path::Path;

/// Every file under `dir` (and the extra files) that contains `needle`.
fn files_containing(dir: &Path, extra: &[&Path], needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files: Vec<std::path::PathBuf> = extra.iter().map(|p| p.to_path_buf()).collect();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                files.push(p);
            }
        }
    }
    let needle = needle.as_bytes();
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.push(f.display().to_string());
        }
    }
    hits
}

fn token() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    )
}

#[test]
fn a_masked_branch_keeps_no_byte_of_the_originals() {
    for storage in [Storage::Copy, Storage::Reflink] {
        let Some(env) = Env::new("mask-leak", storage) else {
            continue;
        };
        env.ok(&["init", "--empty", "--no-hooks"]);
        let main = env.url("main");
        let t = token();
        let email = format!("alice.{t}@corp.example");
        let name = format!("Zebulon{t} Quixote");
        let bio = format!("BIOMARKER{t}");
        psql_ok(
            &main,
            &format!(
                "CREATE TABLE people (id bigint PRIMARY KEY, email text UNIQUE, name text, bio text);
                 ALTER TABLE people ALTER COLUMN bio SET STORAGE EXTERNAL;
                 INSERT INTO people SELECT g, CASE WHEN g = 1 THEN '{email}' ELSE 'user' || g || '@corp.example' END,
                        CASE WHEN g = 1 THEN '{name}' ELSE 'Someone ' || g END,
                        CASE WHEN g = 1 THEN repeat('{bio} ', 600) ELSE repeat('x', 3000) END
                   FROM generate_series(1, 500) g;
                 CREATE INDEX people_name ON people (name);
                 CREATE MATERIALIZED VIEW people_emails AS SELECT id, email FROM people;
                 UPDATE people SET name = name, bio = bio WHERE id = 1;
                 -- A production-style policy that hides the row with the originals from
                 -- anyone but the table's owner: masking must still reach it.
                 ALTER TABLE people ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY not_the_first ON people USING (id > 1);
                 ANALYZE people;
                 SELECT count(*) FROM people WHERE email = '{email}'"
            ),
        );
        // Dead tuples exist: the update left the old version behind.
        let rules = env.home.join("rules.toml");
        std::fs::write(
            &rules,
            r#"
[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "people"
column_name = "email"
masking_function = "email"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "people"
column_name = "name"
masking_function = "full_name"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "people"
column_name = "bio"
masking_function = "lorem"
"#,
        )
        .expect("rules");
        let started = std::time::Instant::now();
        env.ok(&[
            "branch",
            "create",
            "masked",
            "--mask",
            &rules.display().to_string(),
        ]);
        let took = started.elapsed();
        let b = env.branch("masked");
        assert_eq!(b["masked"], true, "{b}");
        let masked = env.url("masked");
        assert_eq!(psql_ok(&masked, "SELECT count(*) FROM people"), "500");
        assert_eq!(
            psql_ok(
                &masked,
                &format!("SELECT count(*) FROM people WHERE email = '{email}' OR name = '{name}' OR bio LIKE '%{bio}%'")
            ),
            "0"
        );
        assert_eq!(
            psql_ok(
                &masked,
                "SELECT count(*) FROM people WHERE email LIKE 'user\\_%@example.com'"
            ),
            "500"
        );
        // The parent is untouched.
        assert_eq!(
            psql_ok(
                &main,
                &format!("SELECT count(*) FROM people WHERE email = '{email}'")
            ),
            "1"
        );
        // A child of a masked branch is masked too.
        env.ok(&["branch", "create", "masked-child", "--parent", "masked"]);
        assert_eq!(env.branch("masked-child")["masked"], true);
        // A reset brings the parent's new rows, masked again.
        let bob = format!("bob.{t}@corp.example");
        psql_ok(
            &main,
            &format!("INSERT INTO people VALUES (501, '{bob}', 'Bob', 'b')"),
        );
        env.ok(&["branch", "reset", "masked"]);
        assert_eq!(
            psql_ok(
                &masked,
                &format!(
                    "SELECT count(*) || ',' || count(*) FILTER (WHERE email = '{bob}') FROM people"
                )
            ),
            "501,0"
        );
        env.ok(&["branch", "create", "plain"]);

        let scan = |branch: &str| -> Vec<String> {
            env.ok(&["branch", "stop", branch]);
            let b = env.branch(branch);
            let dir = b["data_dir"].as_str().expect("data_dir").to_string();
            let log = env
                .home
                .join("logs")
                .join(format!("{}.log", b["id"].as_str().expect("id")));
            let mut hits = Vec::new();
            for needle in [&email, &name, &bio, &bob] {
                hits.extend(files_containing(Path::new(&dir), &[&log], needle));
            }
            hits
        };
        let leaks = scan("masked");
        assert!(
            leaks.is_empty(),
            "original values in the masked branch: {leaks:?}"
        );
        assert!(scan("masked-child").is_empty());
        // The negative control: the same scan finds them in an unmasked branch.
        let found = scan("plain");
        assert!(
            found.len() >= 4,
            "the scan must find the originals in an unmasked branch (heap, index, TOAST): {found:?}"
        );
        report(&format!(
            "masking ({}): 3 columns × 500 rows masked in {:.1} s; 0 hits of 3 originals in the masked branch's files (WAL, logs included), {} in an unmasked one",
            env.name,
            took.as_secs_f64(),
            found.len()
        ));
    }
}

#[test]
fn pseudonyms_keep_joins_and_unsafe_or_failing_rules_leave_no_branch() {
    let Some(env) = Env::new("mask-joins", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let main = env.url("main");
    psql_ok(
        &main,
        "CREATE TABLE customers (id bigint PRIMARY KEY, email text UNIQUE NOT NULL, phone text);
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers(id), email text);
         INSERT INTO customers SELECT g, 'c' || g || '@shop.example', '+49 170 ' || g FROM generate_series(1, 1000) g;
         INSERT INTO orders SELECT g, 1 + g % 1000, 'c' || (1 + g % 1000) || '@shop.example' FROM generate_series(1, 5000) g;",
    );
    let joins = |url: &str| {
        psql_ok(
            url,
            "SELECT (SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id) || ',' || \
                    (SELECT count(*) FROM orders o JOIN customers c ON c.email = o.email)",
        )
    };
    assert_eq!(joins(&main), "5000,5000");
    let rules = env.home.join("rules.json");
    // Neon's request shape, PostgreSQL Anonymizer's names included.
    std::fs::write(
        &rules,
        r#"{"masking_rules": [
  {"database_name": "postgres", "schema_name": "public", "table_name": "customers", "column_name": "email", "masking_function": "anon.fake_email()"},
  {"database_name": "postgres", "schema_name": "public", "table_name": "orders", "column_name": "email", "masking_function": "email"},
  {"database_name": "postgres", "schema_name": "public", "table_name": "customers", "column_name": "id", "masking_function": "id"},
  {"database_name": "postgres", "schema_name": "public", "table_name": "orders", "column_name": "customer_id", "masking_function": "id"},
  {"database_name": "postgres", "schema_name": "public", "table_name": "customers", "column_name": "phone", "masking_function": "anon.partial(phone, 3, '***', 2)"}
]}"#,
    )
    .expect("rules");
    let r = rules.display().to_string();
    env.ok(&["branch", "create", "m1", "--mask", &r]);
    env.ok(&["branch", "create", "m2", "--mask", &r]);
    let (m1, m2) = (env.url("m1"), env.url("m2"));
    assert_eq!(joins(&m1), "5000,5000", "joins on masked keys still match");
    assert_eq!(
        psql_ok(&m1, "SELECT count(*) FROM customers WHERE email LIKE '%@shop.example' OR id BETWEEN 1 AND 1000"),
        "0"
    );
    assert_eq!(
        psql_ok(
            &m1,
            "SELECT count(DISTINCT email) || ',' || count(DISTINCT id) FROM customers"
        ),
        "1000,1000",
        "unique stays unique"
    );
    assert_eq!(
        psql_ok(
            &m1,
            "SELECT count(*) FROM customers WHERE phone LIKE '+49%' AND phone LIKE '%*%'"
        ),
        "1000",
        "partial keeps the first and last characters"
    );
    let digest = "SELECT md5(string_agg(email || id, ',' ORDER BY email)) FROM customers";
    assert_eq!(
        psql_ok(&m1, digest),
        psql_ok(&m2, digest),
        "deterministic across branches"
    );

    let write = |name: &str, body: &str| {
        let p = env.home.join(name);
        std::fs::write(&p, body).expect("rules");
        p.display().to_string()
    };
    let lossy = write(
        "lossy.toml",
        &mask_rule("customers", "email", "partial(1, 4)"),
    );
    let err = env.fails(&["branch", "create", "lossy", "--mask", &lossy]);
    assert!(
        err.contains("masking rule 1 (postgres.public.customers.email)") && err.contains("unique"),
        "{err}"
    );
    let missing = write("missing.toml", &mask_rule("customers", "e_mail", "email"));
    let err = env.fails(&["branch", "create", "missing", "--mask", &missing]);
    assert!(
        err.contains("masking rule 1") && err.contains("no column \"e_mail\""),
        "{err}"
    );
    let failing = write("failing.toml", &mask_rule("customers", "phone", "1 / 0"));
    let err = env.fails(&["branch", "create", "failing", "--mask", &failing]);
    assert!(
        err.contains("masking rule 1 (postgres.public.customers.phone) failed")
            && err.contains("division by zero"),
        "{err}"
    );
    let typo = write(
        "typo.toml",
        "[[masking_rules]]\ndatabase_name = \"postgres\"\n",
    );
    let err = env.fails(&["branch", "create", "typo", "--mask", &typo]);
    assert!(err.contains("typo.toml") && err.contains("TOML"), "{err}");
    let states = env.states();
    for name in ["lossy", "missing", "failing", "typo"] {
        assert!(
            !states.contains_key(name),
            "{name} left a branch: {states:?}"
        );
    }
    // Failed builds are removed in the background.
    wait_until(
        "the failed builds' staged directories to go",
        std::time::Duration::from_secs(30),
        || {
            std::fs::read_dir(env.home.join("tmp"))
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
        },
    );
    assert_eq!(joins(&main), "5000,5000", "the parent is untouched");

    // Fail closed: while a branch is masked, a client is refused with the reason.
    env.ok(&["daemon", "stop"]);
    let mut start = env.command(&["daemon", "start"]);
    start.env("FAILPOINTS", "mask-before-update=sleep(5000)");
    assert!(start.status().expect("start").success());
    let made = env.json(&[
        "branch",
        "create",
        "slow",
        "--mask",
        &r,
        "--no-wait",
        "--show-password",
    ]);
    let url = made["branch"]["connection_uri"]
        .as_str()
        .expect("the planned branch's URL")
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let err = psql(&url, "SELECT count(*) FROM customers").expect_err("refused while masking");
    assert!(
        err.contains("is being masked") && err.contains("once its personal data has been masked"),
        "{err}"
    );
    wait_until(
        "the masked branch to accept connections",
        std::time::Duration::from_secs(60),
        || psql(&url, "SELECT 1").is_ok(),
    );
    assert_eq!(
        psql_ok(
            &url,
            "SELECT count(*) FROM customers WHERE email LIKE '%@shop.example'"
        ),
        "0",
        "the first connection it accepts sees masked data"
    );
    report("masking: FK and email joins match after masking (5000/5000), pseudonyms identical across branches, lossy/missing/failing rules refused by name with no branch left");
}

/// Every branch, masked or not, is sanitised before a client may connect: it must not
/// archive, replicate, apply subscriptions or run cron jobs for its parent.
#[test]
fn a_branch_never_acts_for_its_parent() {
    let Some(env) = Env::new("sanitize", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let su = env.superuser_url("main");
    for sql in [
        "SELECT pg_create_physical_replication_slot('prod_standby')",
        "CREATE SUBSCRIPTION from_prod CONNECTION 'host=127.0.0.1 port=1 dbname=prod' PUBLICATION p \
         WITH (connect = false, slot_name = 'from_prod', create_slot = false, enabled = false)",
        "ALTER SUBSCRIPTION from_prod ENABLE",
        "CREATE SCHEMA cron; CREATE TABLE cron.job (jobid int, command text, active boolean); \
         INSERT INTO cron.job VALUES (1, 'SELECT send_invoices()', true)",
        "ALTER SYSTEM SET archive_mode = on",
        "ALTER SYSTEM SET archive_command = 'false'",
        "ALTER SYSTEM SET synchronous_standby_names = 'prod_standby'",
    ] {
        psql_ok(&su, sql);
    }
    env.ok(&["branch", "create", "child"]);
    // The parent's own settings are back before it restarts for any reason.
    for setting in [
        "archive_mode",
        "archive_command",
        "synchronous_standby_names",
    ] {
        psql_ok(&su, &format!("ALTER SYSTEM RESET {setting}"));
    }
    let child = env.superuser_url("child");
    assert_eq!(
        psql_ok(
            &child,
            "SELECT (SELECT count(*) FROM pg_replication_slots) || ',' || \
                    (SELECT count(*) FROM pg_subscription WHERE subenabled) || ',' || \
                    (SELECT count(*) FROM cron.job WHERE active) || ',' || \
                    current_setting('archive_mode') || ',' || \
                    current_setting('synchronous_standby_names') || ',' || \
                    current_setting('max_logical_replication_workers')"
        ),
        "0,0,0,off,,0"
    );
    // A commit does not wait for the parent's synchronous standby.
    psql_ok(
        &env.url("child"),
        "CREATE TABLE t (i int); INSERT INTO t VALUES (1)",
    );
    // The parent keeps its own.
    assert_eq!(
        psql_ok(
            &su,
            "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'prod_standby') || ',' || \
                    (SELECT count(*) FROM cron.job WHERE active)"
        ),
        "1,1"
    );
    // Later starts run normally: the branch's subscriptions stay disabled by itself.
    env.ok(&["branch", "stop", "child"]);
    assert_eq!(
        psql_ok(
            &env.superuser_url("child"),
            "SELECT (SELECT count(*) FROM pg_subscription WHERE subenabled) || ',' || current_setting('max_logical_replication_workers')"
        ),
        "0,4"
    );
    report("sanitize: a branch of a parent with a slot, an enabled subscription, a cron job, archiving and a synchronous standby starts with none of them acting");
}

/// Rules are written once; schemas keep changing. `mask check` lists what looks personal
/// and is not covered, and strict mode refuses a branch for it.
#[test]
fn strict_mode_refuses_a_branch_when_a_personal_column_appears() {
    let Some(env) = Env::new("mask-strict", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let main = env.url("main");
    psql_ok(
        &main,
        "CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE, plan text);
         INSERT INTO users SELECT g, 'u' || g || '@corp.example', 'free' FROM generate_series(1, 100) g;
         CREATE TABLE products (id int, name text, price numeric);
         INSERT INTO products VALUES (1, 'Widget', 9.5);",
    );
    let rules = env.home.join("masking.toml");
    std::fs::write(
        &rules,
        r#"strict = true
keep = ["postgres.public.users.id", "postgres.public.users.plan"]

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "users"
column_name = "email"
masking_function = "email"
"#,
    )
    .expect("rules");
    let r = rules.display().to_string();
    let ok = env.ok(&["mask", "check", &r]);
    assert!(
        ok.contains("every column that looks personal is covered"),
        "{ok}"
    );
    env.ok(&["branch", "create", "before", "--mask", &r]);

    // The schema moves on: a second address column, a table of phone numbers.
    psql_ok(
        &main,
        "ALTER TABLE users ADD COLUMN backup_email text;
         UPDATE users SET backup_email = 'b' || id || '@home.example';
         CREATE TABLE callers (caller text); INSERT INTO callers VALUES ('+49 170 5550101'), ('+49 170 5550102');",
    );
    let out = env.run(&["mask", "check", &r, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "uncovered columns fail the check"
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let targets: Vec<&str> = found
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["target"].as_str().unwrap_or(""))
        .collect();
    assert!(
        targets.contains(&"postgres.public.users.backup_email"),
        "{found}"
    );
    assert!(
        targets.contains(&"postgres.public.callers.caller"),
        "found by its sampled values: {found}"
    );
    assert!(
        !targets.iter().any(|t| t.contains("products")),
        "a product's name is not personal: {found}"
    );
    let err = env.fails(&["branch", "create", "after", "--mask", &r]);
    assert!(
        err.contains("strict masking") && err.contains("postgres.public.users.backup_email"),
        "{err}"
    );
    assert!(!env.states().contains_key("after"));
    report("masking: strict mode refused a branch when a new email column appeared; mask check found it by name and a phone column by its values");
}

/// `[masking] pii = true`: a checkout copies no personal data to a laptop (its branch
/// is masked by the repository's rules), and an unmasked copy must be asked for by name.
#[test]
fn a_project_with_personal_data_masks_its_checkouts() {
    let Some(env) = Env::new("mask-pii", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty"]);
    psql_ok(
        &env.url("main"),
        "CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE);
         INSERT INTO users SELECT g, 'u' || g || '@corp.example' FROM generate_series(1, 50) g;",
    );
    env.mark_pii(&mask_rule("users", "email", "email"));

    let out = env.git_output(&env.repo, &["checkout", "-b", "feature"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("created masked database branch \"feature\""),
        "{said}"
    );
    assert_eq!(env.branch("feature")["masked"], true);
    let feature = env
        .env_var(&env.repo, "DATABASE_URL")
        .expect("the env file is paired");
    assert_eq!(
        psql_ok(&feature, "SELECT count(*) FILTER (WHERE email LIKE '%@corp.example') || ',' || count(*) FROM users"),
        "0,50"
    );
    // A checkout from the masked branch copies masked data (no second masking).
    env.git(&["checkout", "-b", "feature-2"]);
    assert_eq!(env.branch("feature-2")["masked"], true);

    let err = env.fails(&["branch", "create", "copy"]);
    assert!(
        err.contains("holds personal data") && err.contains("--unmasked"),
        "{err}"
    );
    assert!(!env.states().contains_key("copy"));
    env.ok(&["branch", "create", "copy", "--unmasked"]);
    assert_eq!(env.branch("copy")["masked"], false);
    let log = std::fs::read_to_string(env.home.join("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("unmasked branch of unmasked data was asked for by name"),
        "recorded"
    );
    report("masking: pii = true masks the branch a checkout makes, and refuses an unmasked copy unless asked for by name (recorded)");
}

/// A masked base: `init --from URL --mask RULES` masks the imported root before it
/// exists, so no branch of the project ever holds the originals.
#[test]
fn a_masked_import_is_masked_before_it_exists() {
    let Some(src) = Env::new("mask-src", Storage::Copy) else {
        return;
    };
    src.ok(&["init", "--empty", "--no-hooks"]);
    let t = token();
    let email = format!("carol.{t}@corp.example");
    psql_ok(
        &src.url("main"),
        &format!(
            "CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE);
             INSERT INTO users VALUES (1, '{email}'), (2, 'dave@corp.example');"
        ),
    );
    let Some(dst) = Env::new("mask-base", Storage::Copy) else {
        return;
    };
    let rules = dst.home.join("rules.json");
    std::fs::create_dir_all(&dst.home).expect("home");
    std::fs::write(
        &rules,
        r#"{"masking_rules": [{"database_name": "postgres", "schema_name": "public", "table_name": "users", "column_name": "email", "masking_function": "anon.fake_email()"}]}"#,
    )
    .expect("rules");
    dst.init_from(
        &src.url("main"),
        &["--mask", &rules.display().to_string(), "--no-hooks"],
    );
    let root = dst.branch("main");
    assert_eq!(root["masked"], true, "{root}");
    assert_eq!(
        psql_ok(
            &dst.url("main"),
            "SELECT count(*) FILTER (WHERE email LIKE '%@corp.example') || ',' || count(*) FROM users"
        ),
        "0,2"
    );
    dst.ok(&["branch", "create", "child"]);
    assert_eq!(dst.branch("child")["masked"], true);
    dst.ok(&["branch", "stop", "main"]);
    let dir = dst.branch("main")["data_dir"]
        .as_str()
        .expect("data_dir")
        .to_string();
    let hits = files_containing(Path::new(&dir), &[], &email);
    assert!(
        hits.is_empty(),
        "the import left originals behind: {hits:?}"
    );
    report("masking: init --from URL --mask makes a masked base (0 hits of the original in its files); its branches are masked");
}

/// Big tables are masked by several sessions over page ranges; every row must still be
/// masked exactly once (twice would break determinism, and with it joins).
#[test]
fn a_big_table_masked_in_parallel_masks_each_row_once() {
    let Some(env) = Env::new("mask-split", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let main = env.url("main");
    psql_ok(
        &main,
        "CREATE TABLE big (email text, pad text) WITH (fillfactor = 70);
         INSERT INTO big SELECT 'u' || g || '@big.example', repeat('p', 200) FROM generate_series(1, 60000) g;
         CREATE TABLE small (email text);
         INSERT INTO small SELECT 'u' || g || '@big.example' FROM generate_series(1, 60000, 60) g;",
    );
    let pages = psql_ok(&main, "SELECT pg_relation_size('big') / 8192");
    assert!(
        pages.parse::<i64>().expect("pages") >= 1024,
        "big enough to be split: {pages} pages"
    );
    let rules = env.home.join("rules.toml");
    std::fs::write(
        &rules,
        mask_rule("big", "email", "email") + &mask_rule("small", "email", "email"),
    )
    .expect("rules");
    env.ok(&[
        "branch",
        "create",
        "m",
        "--mask",
        &rules.display().to_string(),
    ]);
    let m = env.url("m");
    assert_eq!(
        psql_ok(
            &m,
            "SELECT (SELECT count(*) FROM big WHERE email LIKE '%@big.example') || ',' || \
                    (SELECT count(DISTINCT email) FROM big) || ',' || \
                    (SELECT count(*) FROM small JOIN big USING (email))"
        ),
        "0,60000,1000",
        "each row of the split table masked once: the small table's pseudonyms still join"
    );
    let log = std::fs::read_to_string(env.home.join("daemon.log")).unwrap_or_default();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert!(
            log.contains("masking a table in page ranges side by side"),
            "the split path ran (this machine has more than one core)"
        );
    }
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("masked a database"))
        .unwrap_or("")
        .to_string();
    report(&format!(
        "masking split: {pages} pages masked by page ranges, each row once ({line})"
    ));
}

/// JSON-path rules mask a value inside a `jsonb` document and keep the rest of it.
#[test]
fn json_path_rules_mask_inside_documents() {
    let Some(env) = Env::new("mask-json", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    psql_ok(
        &env.url("main"),
        r#"CREATE TABLE accounts (id int PRIMARY KEY, profile jsonb);
           INSERT INTO accounts VALUES
             (1, '{"contact": {"email": "erin@corp.example", "phone": "+49 170 1"}, "plan": "pro"}'),
             (2, '{"plan": "free"}'),
             (3, NULL);
           CREATE TABLE visits (id uuid PRIMARY KEY, born date, seen timestamptz, addr inet, spent numeric(10,2), age int);
           INSERT INTO visits VALUES ('6f1c2a36-5d27-4c55-9b53-1d1f2f0a8e11', '1980-05-17', '2026-01-02 03:04:05+00', '203.0.113.7', 123.45, 37);"#,
    );
    let rules = env.home.join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "accounts"
column_name = "profile"
json_path = ["contact", "email"]
masking_function = "email"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "accounts"
column_name = "profile"
json_path = ["contact", "phone"]
masking_value = "redacted"

# Built-ins compute text; every column gets its own type back.
[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "visits"
column_name = "id"
masking_function = "uuid"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "visits"
column_name = "born"
masking_function = "date_shift(30)"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "visits"
column_name = "seen"
masking_function = "date_shift(2)"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "visits"
column_name = "addr"
masking_function = "ip"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "visits"
column_name = "spent"
masking_function = "noise(0.1)"

[[masking_rules]]
database_name = "postgres"
schema_name = "public"
table_name = "visits"
column_name = "age"
masking_function = "generalize(10)"
"#,
    )
    .expect("rules");
    env.ok(&[
        "branch",
        "create",
        "m",
        "--mask",
        &rules.display().to_string(),
    ]);
    let m = env.url("m");
    assert_eq!(
        psql_ok(
            &m,
            "SELECT string_agg(coalesce(profile #>> '{contact,email}', '-') || '|' || coalesce(profile #>> '{contact,phone}', '-') || '|' || coalesce(profile ->> 'plan', '-'), ';' ORDER BY id) FROM accounts"
        ),
        psql_ok(
            &m,
            "SELECT (SELECT profile #>> '{contact,email}' FROM accounts WHERE id = 1) || '|redacted|pro;-|-|free;-|-|-'"
        )
    );
    assert_eq!(
        psql_ok(&m, "SELECT count(*) FROM accounts WHERE profile::text LIKE '%corp.example%' OR profile::text LIKE '%+49%'"),
        "0"
    );
    assert_eq!(
        psql_ok(&m, "SELECT profile #>> '{contact,email}' LIKE 'user\\_%@example.com' FROM accounts WHERE id = 1"),
        "t"
    );
    assert_eq!(
        psql_ok(
            &m,
            "SELECT id <> '6f1c2a36-5d27-4c55-9b53-1d1f2f0a8e11' AND abs(born - date '1980-05-17') <= 30 \
                    AND addr << inet '10.0.0.0/8' AND spent BETWEEN 111 AND 136 AND age = 30 FROM visits"
        ),
        "t"
    );
}

/// Neon's anonymized-branch API: `POST /branch_anonymized` creates a masked branch, and
/// `GET …/masking_rules` gives the rules back exactly as they were sent.
#[test]
fn neons_anonymized_branch_api_masks_and_round_trips_its_rules() {
    let Some(mut env) = Env::new("mask-neon", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.ok(&["init", "--empty", "--no-hooks"]);
    psql_ok(
        &env.url("main"),
        "CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users VALUES (1, 'frank@corp.example');",
    );
    let key = env
        .ok(&["token", "create", "neon-client"])
        .trim()
        .to_string();
    let rules = serde_json::json!([{
        "database_name": "postgres",
        "schema_name": "public",
        "table_name": "users",
        "column_name": "email",
        "masking_function": "anon.fake_email()"
    }]);
    let body = serde_json::json!({
        "branch_create": {"branch": {"name": "anon"}},
        "masking_rules": rules,
        "start_anonymization": true
    })
    .to_string();
    let (status, made) = http(
        &base,
        "POST",
        "/projects/repo/branch_anonymized",
        Some(&key),
        Some(&body),
    );
    assert_eq!(status, 201, "{made}");
    let id = made["branch"]["id"].as_str().expect("id").to_string();
    wait_until(
        "the anonymized branch",
        std::time::Duration::from_secs(60),
        || env.branch("anon")["state"] == "running",
    );
    assert_eq!(env.branch("anon")["masked"], true);
    assert_eq!(
        psql_ok(
            &env.url("anon"),
            "SELECT count(*) FROM users WHERE email LIKE '%corp.example'"
        ),
        "0"
    );
    let (status, got) = http(
        &base,
        "GET",
        &format!("/projects/repo/branches/{id}/masking_rules"),
        Some(&key),
        None,
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["masking_rules"], rules,
        "the rules round-trip unchanged"
    );
    let (status, none) = http(
        &base,
        "POST",
        "/projects/repo/branch_anonymized",
        Some(&key),
        Some(r#"{"branch_create": {"branch": {"name": "x"}}}"#),
    );
    assert_eq!(status, 400, "{none}");
}

/// A rules file is code from a repository: its SQL must not reach a superuser, run a
/// second statement, or read the masking key.
#[test]
fn rule_sql_cannot_escape_the_masking_role_or_read_the_key() {
    let Some(env) = Env::new("mask-escape", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    psql_ok(
        &env.url("main"),
        "CREATE TABLE t (id int PRIMARY KEY, note text, other text); INSERT INTO t VALUES (1, 'n', 'o');",
    );
    let marker = env.home.join("escaped");
    let rule = |f: &str| {
        format!(
            "[[masking_rules]]\ndatabase_name = \"postgres\"\nschema_name = \"public\"\ntable_name = \"t\"\ncolumn_name = \"note\"\nmasking_function = {}\n",
            toml::Value::String(f.to_string())
        )
    };
    let attempts = [
        format!(
            "note || ''); RESET ROLE; COPY (SELECT 1) TO PROGRAM 'touch {}'; SELECT (''",
            marker.display()
        ),
        "set_config('role', 'postgres', false)".to_string(),
        "(SELECT note FROM (SELECT pg_read_file('/etc/hostname')) x)".to_string(),
    ];
    for (i, f) in attempts.iter().enumerate() {
        let file = env.home.join(format!("evil-{i}.toml"));
        std::fs::write(&file, rule(f)).expect("rules");
        let err = env.fails(&[
            "branch",
            "create",
            &format!("evil-{i}"),
            "--mask",
            &file.display().to_string(),
        ]);
        assert!(err.contains("masking rule 1"), "{f}: {err}");
    }
    assert!(!marker.exists(), "a rule ran a program");
    // An expression from the file runs without the key, so it cannot copy it out.
    let leak = env.home.join("leak.toml");
    std::fs::write(
        &leak,
        format!(
            "{}\n[[masking_rules]]\ndatabase_name = \"postgres\"\nschema_name = \"public\"\ntable_name = \"t\"\ncolumn_name = \"other\"\nmasking_function = \"email\"\n",
            rule("coalesce(current_setting('pgfork.mask_key', true), 'no key')")
        ),
    )
    .expect("rules");
    env.ok(&[
        "branch",
        "create",
        "leak",
        "--mask",
        &leak.display().to_string(),
    ]);
    assert_eq!(
        psql_ok(
            &env.url("leak"),
            "SELECT note || ',' || (other LIKE 'user\\_%') FROM t"
        ),
        "no key,true",
        "the built-in had the key; the expression did not"
    );
}
