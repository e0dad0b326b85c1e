//! A hostile local user on the same machine (made by the test, as root): it must not
//! take a branch's port — live or in the trash — while the daemon runs, nor read the
//! env file that holds a branch's password; a port someone else holds is reported,
//! never silently used.

mod common;
use common::*;
use std::process::{Command, Stdio};

const HOSTILE: &str = "pgfork-hostile";

/// An unprivileged user for the test, or `None` (reported) when not root.
fn hostile_user(what: &str) -> Option<&'static str> {
    if !is_root() {
        not_run(&format!("{what} (needs root to make an unprivileged user)"));
        return None;
    }
    let exists = Command::new("id")
        .arg(HOSTILE)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                HOSTILE,
            ])
            .status()
            .expect("useradd");
        assert!(made.success(), "useradd {HOSTILE}");
    }
    Some(HOSTILE)
}

/// Runs a Python snippet as `user`; returns (success, output).
fn as_user(user: &str, python: &str) -> (bool, String) {
    let out = Command::new("runuser")
        .args(["-u", user, "--", "/usr/bin/python3", "-c", python])
        .current_dir("/")
        .output()
        .expect("runuser");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn bind_snippet(port: u16) -> String {
    format!(
        "import socket\nfor host in ('127.0.0.1', '0.0.0.0'):\n    s = socket.socket()\n    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n    s.bind((host, {port}))\n    s.listen(1)\n    print('bound', host)\n"
    )
}

#[test]
fn another_user_cannot_take_a_live_or_trashed_branch_port() {
    let Some(user) = hostile_user("port takeover") else {
        return;
    };
    let Some(env) = Env::new("port-takeover", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "live"]);
    env.ok(&["branch", "create", "gone"]);
    let live_port = env.branch("live")["port"].as_u64().expect("port") as u16;
    let gone_port = env.branch("gone")["port"].as_u64().expect("port") as u16;
    env.ok(&["branch", "delete", "gone"]);
    for port in [live_port, gone_port] {
        let (ok, out) = as_user(user, &bind_snippet(port));
        assert!(!ok, "{user} bound port {port} of a branch: {out}");
        assert!(out.contains("Address already in use"), "{out}");
    }
    // The trashed branch's port answers, from pgfork, that nothing is there.
    let gone = env.json(&["branch", "get", "gone", "--show-password"]);
    let url = gone["url"].as_str().expect("url").to_string();
    let err = psql(&url, "SELECT 1").expect_err("no branch behind a trashed port");
    assert!(err.contains("no pgfork branch"), "{err}");
    // Recover keeps the URL: the port was never anyone else's.
    env.ok(&["branch", "recover", "gone"]);
    assert_eq!(
        env.branch("gone")["port"].as_u64(),
        Some(u64::from(gone_port))
    );
    psql_ok(&env.url("gone"), "SELECT 1");
    report("hostile user: could not bind a live or a trashed branch's port");
}

#[test]
fn a_port_taken_while_the_daemon_was_down_is_reported_and_retaken() {
    let Some(user) = hostile_user("taken port reporting") else {
        return;
    };
    let Some(mut env) = Env::new("port-taken", Storage::Copy) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "f"]);
    let port = env.branch("f")["port"].as_u64().expect("port") as u16;
    env.ok(&["daemon", "stop"]);
    // The impostor grabs the port while no daemon holds it, and keeps it for a while.
    let mut impostor = Command::new("runuser")
        .args([
            "-u",
            user,
            "--",
            "/usr/bin/python3",
            "-c",
            &format!(
                "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen(8)\nprint('listening', flush=True)\ntime.sleep(6)\n"
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("impostor");
    {
        use std::io::BufRead;
        let mut line = String::new();
        let stdout = impostor.stdout.as_mut().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("impostor ready");
        assert_eq!(line.trim(), "listening");
    }
    env.ok(&["daemon", "start"]);
    let b = env.branch("f");
    let error = b["port_error"].as_str().unwrap_or("");
    assert!(!error.is_empty(), "branch get shows the taken port: {b}");
    let doctor = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        !doctor.status.success(),
        "doctor fails while the port is taken"
    );
    assert!(text.contains(&format!("port {port}")), "{text}");
    // Once the impostor is gone, the daemon takes the port back by itself.
    let _ = impostor.kill();
    let _ = impostor.wait();
    wait_until(
        "the daemon to hold the port again",
        std::time::Duration::from_secs(10),
        || env.branch("f")["port_error"].is_null(),
    );
    psql_ok(&env.url("f"), "SELECT 1");
}

#[test]
fn the_env_file_is_private_and_written_atomically() {
    let Some(user) = hostile_user("private env file") else {
        return;
    };
    let Some(env) = Env::new("env-private", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty"]);
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "pgfork"]);
    env.git(&["checkout", "-q", "-b", "f"]);
    let path = env.repo.join(".env");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect(".env").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, ".env holds a password");
    // Other users cannot read it even when every directory above lets them through.
    let mut dir = env.repo.clone();
    loop {
        let m = std::fs::metadata(&dir).expect("dir").permissions().mode();
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m | 0o005));
        if !dir.pop() || dir.as_os_str().len() <= 5 {
            break;
        }
    }
    let (ok, out) = as_user(user, &format!("print(open('{}').read())", path.display()));
    assert!(!ok && out.contains("Permission denied"), "{out}");
    // A mode the user made stricter stays.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    env.git(&["checkout", "-q", "main"]);
    let mode = std::fs::metadata(&path).expect(".env").permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    // A committed .pgfork.toml cannot point the env file outside the work tree.
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml"))
        .expect("cfg")
        .replace("file = \".env\"", "file = \"../outside.env\"");
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    let out = env.git_output(&env.repo, &["checkout", "-q", "f"]);
    assert!(out.status.success());
    assert!(
        !env.repo
            .parent()
            .expect("parent")
            .join("outside.env")
            .exists(),
        "nothing is written outside the work tree"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inside the work tree"), "{stderr}");
}

/// Every process's command line, scanned for `needle` until `child` exits.
fn watch_cmdlines(child: &mut std::process::Child, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while child.try_wait().expect("wait").is_none() {
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(needle) && !seen.contains(&cmd) {
                seen.push(cmd);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    seen
}

#[test]
fn imports_never_put_the_source_password_in_ps() {
    let Some(src) = Env::new("ps-source", Storage::Copy) else {
        return;
    };
    src.init_sample(1);
    let url = src.url("main");
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("a password in the URL");
    for method in ["logical", "physical"] {
        let Some(dst) = Env::new(&format!("ps-{method}"), Storage::Copy) else {
            return;
        };
        let mut child = dst
            .command(&[
                "init",
                "--from-env",
                "PGFORK_TEST_SOURCE_URL",
                "--method",
                method,
                "--no-hooks",
            ])
            .env("PGFORK_TEST_SOURCE_URL", &url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("init");
        let leaked = watch_cmdlines(&mut child, &password);
        let out = child.wait_with_output().expect("init ends");
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            leaked.is_empty(),
            "{method}: the password was in ps: {leaked:?}"
        );
        assert_eq!(
            psql_ok(&dst.url("main"), "SELECT count(*) FROM pgbench_accounts"),
            "100000"
        );
        dst.ok(&["daemon", "stop"]);
        report(&format!(
            "import {method}: no process showed the source password"
        ));
    }
}

#[test]
fn a_deep_store_keeps_its_sockets_in_a_private_random_directory() {
    let Some(mut env) = Env::new("deep-home", Storage::Copy) else {
        return;
    };
    // Deep enough that sockets cannot live in the store itself.
    env.home = env
        .home
        .join("a-very-long-directory-name-for-this-store".repeat(2));
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "f"]);
    psql_ok(&env.url("f"), "SELECT 1");
    let runtime = std::fs::read_to_string(env.home.join("runtime-dir")).expect("recorded");
    let runtime = std::path::PathBuf::from(runtime.trim());
    let name = runtime
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(
        name.starts_with("pgfork-") && name.len() >= 7 + 16,
        "random: {name}"
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::symlink_metadata(&runtime).expect("runtime dir");
    assert!(m.is_dir() && m.mode() & 0o022 == 0, "{:o}", m.mode());
    assert_eq!(m.uid(), unsafe { libc::geteuid() });
    // Made writable by others, it is refused on the next use, with one sentence.
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = env.fails(&["branch", "list"]);
    assert!(err.contains("writable by others"), "{err}");
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    env.ok(&["branch", "list"]);
}

#[test]
fn a_repository_can_ask_for_impostor_proof_urls_in_its_env_file() {
    let Some(env) = Env::new("env-tls", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty"]);
    let cfg = std::fs::read_to_string(env.repo.join(".pgfork.toml"))
        .expect("cfg")
        .replace("# tls = \"verify-full\"", "tls = \"verify-full\"");
    assert!(cfg.contains("\ntls = \"verify-full\""), "{cfg}");
    std::fs::write(env.repo.join(".pgfork.toml"), cfg).expect("write");
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "pgfork"]);
    env.git(&["checkout", "-q", "-b", "f"]);
    let url = env.env_var(&env.repo, "DATABASE_URL").expect("url");
    assert!(
        url.contains("sslmode=verify-full") && url.contains("channel_binding=require"),
        "{url}"
    );
    assert_eq!(psql_ok(&url, "SELECT 7"), "7");
    assert_eq!(
        env.ok(&["url"]).trim(),
        url,
        "`pgfork url` follows the policy"
    );
}

fn with_password(url_without: &str, password: &str) -> String {
    let (scheme, rest) = url_without.split_once("://").expect("url");
    let (user, host) = rest.split_once('@').expect("user@host");
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn each_role_logs_in_with_its_own_password_only() {
    let Some(env) = Env::new("roles", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    let admin = env.url("main");
    psql_ok(
        &env.superuser_url("main"),
        "CREATE ROLE app LOGIN PASSWORD 'app-secret'",
    );
    env.ok(&["branch", "create", "child"]);
    let role_url = env
        .ok(&["url", "child", "--role", "app"])
        .trim()
        .to_string();
    assert!(role_url.starts_with("postgresql://app@"), "{role_url}");
    let app = with_password(&role_url, "app-secret");
    assert_eq!(psql_ok(&app, "SELECT current_user"), "app");
    // The admin password does not open another role.
    let admin_pw = admin
        .trim_start_matches("postgresql://")
        .split_once('@')
        .and_then(|(up, _)| up.split_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("admin password");
    let err = psql(&with_password(&role_url, &admin_pw), "SELECT 1").expect_err("refused");
    assert!(err.contains("password authentication failed"), "{err}");
    let err = psql(
        &with_password(&role_url.replacen("app@", "nobody@", 1), "x"),
        "SELECT 1",
    )
    .expect_err("no such role");
    assert!(err.contains("password authentication failed"), "{err}");
    // Suspended, the branch still checks the role's own password (recorded), and wakes.
    env.ok(&["branch", "stop", "child"]);
    assert_eq!(psql_ok(&app, "SELECT current_user"), "app");
    // A password changed inside the branch counts at once.
    psql_ok(
        &env.superuser_url("child"),
        "ALTER ROLE app PASSWORD 'rotated'",
    );
    assert!(
        psql(&app, "SELECT 1").is_err(),
        "the old password no longer works"
    );
    assert_eq!(
        psql_ok(&with_password(&role_url, "rotated"), "SELECT current_user"),
        "app"
    );
    // A role imported with the data (physical copy) keeps its own password.
    let Some(dst) = Env::new("roles-import", Storage::Copy) else {
        return;
    };
    dst.init_from(&admin, &["--method", "physical", "--no-hooks"]);
    let imported = dst.ok(&["url", "main", "--role", "app"]).trim().to_string();
    assert_eq!(
        psql_ok(
            &with_password(&imported, "app-secret"),
            "SELECT current_user"
        ),
        "app"
    );
    report("roles: an imported application role logs in with its own password, never the admin's");
}

/// Rotation is what keeps production's application passwords out of every branch
/// made from it; a reset (which brings back the parent's data) must not undo it.
#[test]
fn branches_of_a_protected_branch_get_their_own_role_passwords() {
    let Some(env) = Env::new("rotate", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    psql_ok(
        &env.superuser_url("main"),
        "CREATE ROLE app LOGIN PASSWORD 'prod-secret'",
    );
    let role_url = |branch: &str| env.ok(&["url", branch, "--role", "app"]).trim().to_string();
    // An unprotected parent: the role keeps its password, and the URL carries none.
    env.ok(&["branch", "create", "plain"]);
    let plain = role_url("plain");
    assert!(plain.starts_with("postgresql://app@"), "{plain}");
    assert_eq!(
        psql_ok(&with_password(&plain, "prod-secret"), "SELECT current_user"),
        "app"
    );

    env.ok(&["branch", "protect", "main"]);
    env.ok(&["branch", "create", "child"]);
    let child = role_url("child");
    assert!(child.starts_with("postgresql://app:"), "{child}");
    assert!(!child.contains("prod-secret"), "{child}");
    assert_eq!(psql_ok(&child, "SELECT current_user"), "app");
    let refused = |url: &str| {
        let err = psql(&with_password(url, "prod-secret"), "SELECT 1")
            .expect_err("production's password is refused");
        assert!(err.contains("password authentication failed"), "{err}");
    };
    refused(&child);
    // The parent is untouched.
    assert_eq!(
        psql_ok(
            &with_password(&role_url("main"), "prod-secret"),
            "SELECT current_user"
        ),
        "app"
    );
    // Asleep, the branch checks the rotated password from its record.
    env.ok(&["branch", "stop", "child"]);
    refused(&child);
    assert_eq!(psql_ok(&child, "SELECT current_user"), "app");
    // A reset brings back production's data, not its passwords; the URL stays valid.
    env.ok(&["branch", "reset", "child"]);
    assert_eq!(role_url("child"), child);
    assert_eq!(psql_ok(&child, "SELECT current_user"), "app");
    refused(&child);

    // The repository's policy: "never" keeps the passwords; a typo is an error.
    let toml = env.repo.join(".pgfork.toml");
    let text = std::fs::read_to_string(&toml).expect("read .pgfork.toml");
    let with_policy = |value: &str| {
        text.replacen(
            "[branches]\n",
            &format!("[branches]\nrotate_passwords = \"{value}\"\n"),
            1,
        )
    };
    std::fs::write(&toml, with_policy("sometimes")).expect("write");
    let err = env.fails(&["branch", "create", "typo"]);
    assert!(err.contains("rotate_passwords"), "{err}");
    std::fs::write(&toml, with_policy("never")).expect("write");
    let names = env.json(&["branch", "list", "--all"]).to_string();
    assert!(
        !names.contains("\"typo\""),
        "no branch was made from a broken policy: {names}"
    );
    env.ok(&["branch", "create", "kept"]);
    let kept = role_url("kept");
    assert_eq!(
        psql_ok(&with_password(&kept, "prod-secret"), "SELECT current_user"),
        "app"
    );
}

/// The role in every URL pgfork hands out (and so in every API answer, to any key that
/// may read the project) must not act as the OS user Postgres runs as: on a team
/// server that user owns every project's data.
#[test]
fn the_url_role_owns_the_data_but_cannot_reach_the_server_os_user() {
    let Some(env) = Env::new("owner", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    let url = env.url("main");
    assert!(url.starts_with("postgresql://pgfork_owner:"), "{url}");
    assert_eq!(
        psql_ok(
            &url,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ),
        "f"
    );
    // It owns what the sample created and may do what an application's migrations do.
    psql_ok(
        &url,
        "ALTER TABLE pgbench_accounts ADD COLUMN note text; CREATE TABLE t (i int); \
         CREATE SCHEMA app; CHECKPOINT; SELECT count(*) FROM pg_stat_activity",
    );
    psql_ok(&url, "CREATE DATABASE other");
    let marker = env.home.join("escaped");
    let attempts = [
        (
            "COPY TO PROGRAM",
            format!("COPY (SELECT 1) TO PROGRAM 'touch {}'", marker.display()),
        ),
        (
            "pg_read_file",
            "SELECT pg_read_file('/etc/hostname')".into(),
        ),
        ("pg_ls_dir", "SELECT pg_ls_dir('.')".into()),
        (
            "COPY from a server file",
            "COPY t FROM '/etc/hostname'".into(),
        ),
        (
            "lo_export",
            format!("SELECT lo_export(lo_create(0), '{}')", marker.display()),
        ),
        (
            "granting itself program execution",
            "GRANT pg_execute_server_program TO pgfork_owner".into(),
        ),
        (
            "becoming superuser",
            "ALTER ROLE pgfork_owner SUPERUSER".into(),
        ),
        ("SET ROLE to the superuser", "SET ROLE postgres".into()),
        (
            "a C function",
            "CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'libc.so.6', 'getpid'".into(),
        ),
        (
            "ALTER SYSTEM",
            format!(
                "ALTER SYSTEM SET archive_command = 'touch {}'",
                marker.display()
            ),
        ),
        ("creating a role", "CREATE ROLE sneaky SUPERUSER".into()),
    ];
    for (what, sql) in &attempts {
        let err = psql(&url, sql).expect_err(what);
        assert!(
            err.contains("permission denied")
                || err.contains("must be superuser")
                || err.contains("must have")
                || err.contains("only superusers"),
            "{what}: refused for the wrong reason: {err}"
        );
    }
    assert!(!marker.exists(), "a statement ran as the OS user");

    // No superuser logs in over TCP, with any password pgfork knows.
    let password = url
        .trim_start_matches("postgresql://pgfork_owner:")
        .split('@')
        .next()
        .expect("password")
        .to_string();
    let as_superuser = url.replacen("pgfork_owner:", "postgres:", 1);
    let err = psql(&as_superuser, "SELECT 1").expect_err("the superuser has no password");
    assert!(err.contains("password authentication failed"), "{err}");
    env.ok(&["branch", "create", "child"]);
    let child = env.url("child");
    assert!(child.starts_with("postgresql://pgfork_owner:"), "{child}");
    assert!(
        !child.contains(&password),
        "each branch has its own password"
    );
    let err = psql(&child.replacen("pgfork_owner:", "postgres:", 1), "SELECT 1")
        .expect_err("not on a branch either");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        env.ok(&["url", "child", "--role", "postgres"])
            .trim()
            .starts_with("postgresql://postgres@"),
        "no password is handed out for the superuser"
    );
    // The machine's owner still reaches the superuser, through the private socket.
    assert_eq!(
        env.ok(&[
            "psql",
            "--superuser",
            "child",
            "--",
            "-Atc",
            "SELECT current_setting('is_superuser')"
        ])
        .trim(),
        "on"
    );

    // A cluster imported physically keeps its roles and owners: the owner acts as its
    // ordinary roles, reads and writes what a superuser owns, and gains nothing that
    // leads back to a superuser; the source's superusers lose their passwords.
    psql_ok(
        &env.superuser_url("main"),
        "CREATE ROLE app LOGIN PASSWORD 'app-secret'; \
         CREATE TABLE app_owned (i int); ALTER TABLE app_owned OWNER TO app; \
         CREATE TABLE super_owned (i int); \
         CREATE ROLE role_admin LOGIN CREATEROLE PASSWORD 'ra-secret'; \
         CREATE ROLE runner LOGIN PASSWORD 'runner-secret'; GRANT pg_execute_server_program TO runner; \
         CREATE ROLE boss LOGIN SUPERUSER PASSWORD 'boss-secret'",
    );
    let Some(dst) = Env::new("owner-import", Storage::Copy) else {
        return;
    };
    dst.init_from(&url, &["--method", "physical", "--no-hooks"]);
    let imported = dst.url("main");
    assert!(
        imported.starts_with("postgresql://pgfork_owner:"),
        "{imported}"
    );
    psql_ok(
        &imported,
        "ALTER TABLE app_owned ADD COLUMN j int; INSERT INTO super_owned VALUES (1); \
         SELECT count(*) FROM super_owned",
    );
    let err = psql(&imported, "ALTER TABLE super_owned ADD COLUMN j int")
        .expect_err("a superuser's table stays the superuser's");
    assert!(err.contains("must be owner"), "{err}");
    assert_eq!(
        psql_ok(
            &imported,
            "SELECT string_agg(r, ',' ORDER BY r) FROM unnest(ARRAY['app','role_admin','runner','boss']) r \
             WHERE pg_has_role('pgfork_owner', r, 'MEMBER')"
        ),
        "app",
        "only the ordinary role"
    );
    let boss = imported.replacen("pgfork_owner:", "boss:", 1).replacen(
        imported
            .trim_start_matches("postgresql://pgfork_owner:")
            .split('@')
            .next()
            .expect("password"),
        "boss-secret",
        1,
    );
    let err = psql(&boss, "SELECT 1").expect_err("an imported superuser has no password");
    assert!(err.contains("password authentication failed"), "{err}");
    for (what, sql) in &attempts {
        assert!(psql(&imported, sql).is_err(), "{what} on the import");
    }
    assert!(!marker.exists(), "a statement ran as the OS user");
    report("owner: the URL role owns the data; 11 ways to the OS user refused on a sample and a physical import; superusers have no password");
}
