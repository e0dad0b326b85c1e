//! Bad input: one clear sentence, a non-zero exit, and nothing lost.

mod common;
use common::*;
use std::process::Command;

fn branch_names(env: &Env) -> Vec<String> {
    env.json(&["branch", "list", "--all"])
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn invalid_and_unknown_names_are_refused_with_one_sentence() {
    let Some(env) = Env::new("names", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let long = "x".repeat(64);
    for (name, needle) in [
        ("", "empty"),
        ("..", ".."),
        ("-x", "'-'"),
        ("a\tb", "control"),
        (long.as_str(), "limit is 63"),
        ("a b", "git does not allow"),
        ("a..b", "'..'"),
    ] {
        let err = env.fails(&["branch", "create", "--", name]);
        assert!(err.contains(needle), "{name:?}: {err}");
    }
    for args in [
        vec!["branch", "get", "nope"],
        vec!["branch", "delete", "nope"],
        vec!["branch", "reset", "nope"],
        vec!["url", "nope"],
        vec!["branch", "create", "x", "--parent", "nope"],
    ] {
        let err = env.fails(&args);
        assert!(
            err.contains("nope") && err.contains("branch list"),
            "{args:?}: {err}"
        );
    }
    let err = env.fails(&["branch", "create", "x", "--parent", "nope"]);
    assert!(
        err.contains("no branch \"nope\" to branch from"),
        "one plain sentence: {err}"
    );
    env.ok(&["branch", "create", "dup"]);
    let err = env.fails(&["branch", "create", "dup"]);
    assert!(err.contains("already exists"), "{err}");
    let err = env.fails(&["branch", "create", "x", "--ttl", "0s"]);
    assert!(err.contains("longer than zero"), "{err}");
    let err = env.fails(&["branch", "create", "x", "--expires-at", "yesterday"]);
    assert!(err.contains("RFC 3339"), "{err}");
    assert_eq!(branch_names(&env), vec!["main", "dup"]);
}

#[test]
fn missing_postgres_binaries_are_explained_and_nothing_is_left_running() {
    let Some(mut env) = Env::new("nobin", Storage::Copy) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_PG_BIN".into(), "/nonexistent/pg/bin".into()));
    let err = env.fails(&["init", "--empty", "--no-hooks"]);
    assert!(err.contains("PGFORK_PG_BIN"), "{err}");
    assert!(env.daemon_pid().is_none(), "no daemon may linger");
    assert!(env.postmasters().is_empty());
    assert!(
        !env.repo.join(".pgfork.toml").exists(),
        "a failed init writes no config"
    );
    let doctor = env.run(&["doctor"]);
    assert!(!doctor.status.success());
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("FAIL") && text.contains("fix:"), "{text}");
}

#[test]
fn a_full_disk_fails_cleanly() {
    if !is_root() {
        not_run("storage full-disk (needs root to make a tiny loop filesystem)");
        return;
    }
    let Some(env) = Env::new("fulldisk", Storage::Copy) else {
        return;
    };
    // A tiny filesystem for the store: room for a root branch, not for a copy of it.
    let img = env.home.with_extension("img");
    let mnt = env.home.clone();
    std::fs::create_dir_all(&mnt).expect("mkdir");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(160 << 20))
        .expect("image");
    assert!(Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&img)
        .status()
        .expect("mkfs")
        .success());
    assert!(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt)
        .status()
        .expect("mount")
        .success());
    struct Unmount(std::path::PathBuf, std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            let _ = std::fs::remove_file(&self.1);
        }
    }
    let _guard = Unmount(mnt.clone(), img.clone());
    env.init_sample(2);
    let main = env.url("main");
    let before = psql_ok(&main, "SELECT count(*) FROM pgbench_accounts");
    let err = env.fails(&["branch", "create", "big"]);
    assert!(err.contains("space"), "{err}");
    report(&format!("full disk message: {err}"));
    assert_eq!(branch_names(&env), vec!["main"]);
    assert_eq!(
        std::fs::read_dir(mnt.join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing half-made remains"
    );
    assert_eq!(
        psql_ok(&main, "SELECT count(*) FROM pgbench_accounts"),
        before,
        "the parent is intact"
    );
    env.ok(&["daemon", "stop"]);
}

#[test]
fn commands_outside_a_project_say_what_to_do() {
    let Some(env) = Env::new("noproject", Storage::Copy) else {
        return;
    };
    let err = env.fails(&["branch", "list"]);
    assert!(err.contains("pgfork init"), "{err}");
    let err = env.fails(&["init", "--from-dir", "/nonexistent/pgdata"]);
    assert!(err.contains("does not exist"), "{err}");
}

/// One raw HTTP/1.1 request on the daemon's socket; returns (status, content type, body).
fn raw_api(env: &Env, method: &str, path: &str, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(env.home.join("daemon.sock"))
        .expect("daemon socket");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: pgfork\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

#[test]
fn every_api_error_is_json_and_bad_values_are_4xx() {
    let Some(env) = Env::new("api-errors", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("POST", "/api/v2/projects".into(), "this is not json"),
        ("POST", "/api/v2/projects".into(), r#"{"project": {}}"#),
        ("GET", "/api/v2/no/such/route".into(), ""),
        (
            "POST",
            "/api/v2/projects".into(),
            r#"{"project": {"name": "s0", "pgfork_source": {"kind": "sample", "scale": 0}}}"#,
        ),
        (
            "POST",
            "/api/v2/projects".into(),
            r#"{"project": {"name": "s1", "pgfork_source": {"kind": "sample", "scale": 4294967295}}}"#,
        ),
        (
            "POST",
            "/api/v2/projects/repo/branches".into(),
            r#"{"branch": {"name": "x", "suspend_timeout_seconds": -5}}"#,
        ),
        (
            "POST",
            "/api/v2/projects/repo/pgfork/follow".into(),
            r#"{"path": "/etc"}"#,
        ),
    ];
    for (method, path, body) in cases {
        let (status, ctype, text) = raw_api(&env, method, &path, body);
        assert!(
            (400..500).contains(&status),
            "{method} {path} {body}: status {status}: {text}"
        );
        assert!(
            ctype.starts_with("application/json"),
            "{method} {path}: {ctype}: {text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON error body");
        assert!(
            v["code"].is_string() && v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{text}"
        );
    }
}
