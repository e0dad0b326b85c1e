//! The API on the network: keys, their limits, Neon-style errors, and the CLI and git
//! hooks of one machine driving another pgfork over https.

mod common;
use common::*;
use std::io::{Read, Write};

fn key(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["token", "create"];
    a.extend_from_slice(args);
    env.ok(&a).trim().to_string()
}

fn assert_error(resp: &(u16, serde_json::Value), status: u16, words: &str) {
    assert_eq!(resp.0, status, "{:?}", resp.1);
    let message = resp.1["message"].as_str().unwrap_or_default();
    assert!(
        resp.1["code"].is_string() && message.contains(words),
        "expected a {{code, message}} error saying {words:?}: {:?}",
        resp.1
    );
}

#[test]
fn network_requests_need_a_valid_key_and_stay_within_it() {
    let Some(mut env) = Env::new("api-keys", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.ok(&["init", "--empty", "--no-hooks", "--project", "web"]);
    env.ok(&["init", "--empty", "--no-hooks", "--project", "billing"]);
    let full = key(&env, &["ci"]);
    let reader = key(&env, &["dashboard", "--read-only"]);
    let web_only = key(&env, &["web-ci", "--project", "web"]);
    let revoked = key(&env, &["old"]);
    let short = key(&env, &["short", "--expires-in", "2s"]);
    env.ok(&["token", "revoke", "old"]);
    assert!(full.starts_with("pgf_") && full.len() > 40, "{full}");

    // No key, a wrong one, a revoked one, an expired one: 401, and nothing served.
    assert_error(
        &http(&base, "GET", "/projects", None, None),
        401,
        "needs a key",
    );
    assert_error(
        &http(&base, "GET", "/projects", Some("pgf_nope"), None),
        401,
        "not known",
    );
    assert_error(
        &http(&base, "GET", "/projects", Some(&revoked), None),
        401,
        "revoked",
    );
    assert_eq!(http(&base, "GET", "/projects", Some(&short), None).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_error(
        &http(&base, "GET", "/projects", Some(&short), None),
        401,
        "expired",
    );

    // A full key lists both projects; the owner's routes are not on the network.
    let (status, listed) = http(&base, "GET", "/projects", Some(&full), None);
    assert_eq!(status, 200);
    assert_eq!(
        listed["projects"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_error(
        &http(&base, "GET", "/api_keys", Some(&full), None),
        403,
        "unix socket",
    );
    assert_error(
        &http(
            &base,
            "POST",
            "/api_keys",
            Some(&full),
            Some(r#"{"key_name":"x"}"#),
        ),
        403,
        "unix socket",
    );
    assert_error(
        &http(&base, "POST", "/pgfork/shutdown", Some(&full), None),
        403,
        "unix socket",
    );
    assert!(env.daemon_pid().is_some(), "the daemon still runs");

    // Read-only: reads work, writes are refused before anything happens.
    assert_eq!(
        http(&base, "GET", "/projects/web/branches", Some(&reader), None).0,
        200
    );
    let create = r#"{"branch":{"name":"from-reader"}}"#;
    assert_error(
        &http(
            &base,
            "POST",
            "/projects/web/branches",
            Some(&reader),
            Some(create),
        ),
        403,
        "read-only",
    );

    // A project key sees its project only; the other one does not exist for it.
    let (_, mine) = http(&base, "GET", "/projects", Some(&web_only), None);
    let names: Vec<&str> = mine["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["web"]);
    assert_error(
        &http(
            &base,
            "GET",
            "/projects/billing/branches",
            Some(&web_only),
            None,
        ),
        404,
        "no project",
    );
    assert_error(
        &http(&base, "DELETE", "/projects/billing", Some(&web_only), None),
        404,
        "no project",
    );
    assert_error(
        &http(
            &base,
            "POST",
            "/projects",
            Some(&web_only),
            Some(r#"{"project":{"name":"x"}}"#),
        ),
        403,
        "one project",
    );
    let (status, made) = http(
        &base,
        "POST",
        "/projects/web/branches",
        Some(&web_only),
        Some(r#"{"branch":{"name":"from-ci"}}"#),
    );
    assert!(status == 200 || status == 201, "{status} {made}");

    // Bad input is a 4xx in Neon's shape, never a 5xx.
    let (status, body) = http(
        &base,
        "POST",
        "/projects/web/branches",
        Some(&full),
        Some("{not json"),
    );
    assert!(
        (400..500).contains(&status) && body["code"].is_string(),
        "{status} {body}"
    );
    let (status, body) = http(
        &base,
        "GET",
        "/projects/web/branches/br-doesnotexist",
        Some(&full),
        None,
    );
    assert_eq!(status, 404, "{body}");
    let huge = format!(
        r#"{{"branch":{{"name":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let (status, body) = http(
        &base,
        "POST",
        "/projects/web/branches",
        Some(&full),
        Some(&huge),
    );
    assert!(
        (400..500).contains(&status) && body["code"].is_string(),
        "{status} {body}"
    );

    // Nothing the refused requests asked for happened.
    let branches = env
        .json(&["branch", "list", "--all", "--project", "web"])
        .to_string();
    assert!(!branches.contains("from-reader"), "{branches}");
    assert!(env
        .json(&["branch", "list", "--all", "--project", "billing"])
        .to_string()
        .contains("main"));
    // Every key's use is on record, with where it came from.
    let listed = env.json(&["token", "list"]);
    let ci = listed
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "ci")
        .expect("ci key");
    assert_eq!(ci["last_used_from_addr"], "127.0.0.1", "{ci}");
    let text = env.ok(&["token", "list"]);
    assert!(!text.contains(&full), "secrets are never listed");
}

#[test]
fn the_cli_and_git_hooks_of_one_machine_drive_another_pgfork_over_https() {
    let Some(mut server) = Env::new("api-server", Storage::Copy) else {
        return;
    };
    let Some(mut laptop) = Env::new("api-laptop", Storage::Copy) else {
        return;
    };
    let base = server.serve_api(true);
    server.ok(&["daemon", "start"]);
    let secret = key(&server, &["laptop"]);
    let ca = server.home.join("tls").join("ca.crt");

    // Without the server's CA, https fails with a sentence, before any key is sent.
    laptop.extra_env.push(("PGFORK_API".into(), base.clone()));
    laptop
        .extra_env
        .push(("PGFORK_API_KEY".into(), secret.clone()));
    let err = laptop.fails(&["branch", "list", "--project", "x"]);
    assert!(
        err.contains("certificate") || err.contains("cannot reach"),
        "{err}"
    );

    laptop
        .extra_env
        .push(("PGFORK_API_CA".into(), ca.display().to_string()));
    laptop.ok(&["init", "--sample", "--scale", "1"]);
    laptop.git(&["checkout", "-q", "-b", "feature"]);
    let url = laptop
        .env_var(&laptop.repo, "DATABASE_URL")
        .expect("DATABASE_URL in .env");
    assert_eq!(
        psql_ok(&url, "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    psql_ok(&url, "CREATE TABLE only_on_feature (x int)");
    // The branch lives on the server: its store has it, the laptop runs no daemon.
    let on_server = server
        .json(&["branch", "list", "--project", "repo"])
        .to_string();
    assert!(on_server.contains("\"feature\""), "{on_server}");
    for file in ["daemon.sock", "daemon.log", "pgfork.db"] {
        assert!(
            !laptop.home.join(file).exists(),
            "remote mode starts no local daemon, yet {file} exists"
        );
    }

    // `pgfork remote` remembers the server instead of the environment.
    laptop
        .extra_env
        .retain(|(k, _)| !k.starts_with("PGFORK_API"));
    let mut add = laptop.command(&[
        "remote",
        "add",
        "team",
        &base,
        "--key-stdin",
        "--ca",
        &ca.display().to_string(),
        "--use",
    ]);
    add.stdin(std::process::Stdio::piped());
    let mut child = add
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("remote add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("key on stdin");
    let out = child.wait_with_output().expect("remote add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(laptop.home.join("remotes.toml"))
        .expect("remotes.toml")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds a key");
    laptop.git(&["checkout", "-q", "main"]);
    let main_url = laptop
        .env_var(&laptop.repo, "DATABASE_URL")
        .expect("DATABASE_URL");
    assert_ne!(main_url, url);
    let err = psql(&main_url, "SELECT * FROM only_on_feature").expect_err("main has no such table");
    assert!(err.contains("does not exist"), "{err}");
    laptop.ok(&["remote", "use", "local"]);
    let listed = laptop.ok(&["remote", "list"]);
    assert!(
        listed.contains("team") && !listed.contains(&secret),
        "{listed}"
    );
    server.ok(&["daemon", "stop"]);
}

fn neonctl_bin() -> Option<std::path::PathBuf> {
    let dir =
        std::env::var("PGFORK_TEST_NODE_DIR").unwrap_or_else(|_| "/tmp/pgfork-drivers/node".into());
    let bin = std::path::Path::new(&dir).join("node_modules/.bin/neonctl");
    bin.exists().then_some(bin)
}

/// Neon's own CLI, pointed at pgfork with `--api-host` and a key, runs the branch
/// workflow end to end; every command's output is checked, and the URL it prints
/// connects (TLS, SCRAM with channel binding).
#[test]
fn neonctl_drives_pgfork_through_the_neon_api() {
    let Some(neonctl) = neonctl_bin() else {
        not_run("neonctl acceptance (npm install --prefix /tmp/pgfork-drivers/node neonctl@5.0.1)");
        return;
    };
    let Some(mut env) = Env::new("neonctl", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.init_sample(1);
    let secret = key(&env, &["neonctl"]);
    let config = env.home.join("neonctl-config");
    let run = |args: &[&str]| -> String {
        let out = std::process::Command::new(&neonctl)
            .args(["--api-host", &base, "--no-analytics", "--output", "json"])
            .args(args)
            .env("NEON_API_KEY", &secret)
            .env("XDG_CONFIG_HOME", &config)
            .env("HOME", &env.home)
            .env("CI", "true")
            .current_dir(&env.home)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("neonctl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "neonctl {args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let text = run(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("neonctl {args:?}: {e}: {text}"))
    };

    let projects = json(&["projects", "list"]);
    let project = projects["projects"][0]["id"]
        .as_str()
        .expect("a project id")
        .to_string();
    assert_eq!(projects["projects"][0]["name"], "repo");
    let p = ["--project-id", project.as_str()];
    let with_p = |args: &[&str]| -> Vec<String> {
        args.iter().chain(p.iter()).map(|s| s.to_string()).collect()
    };
    let call = |args: &[&str]| -> serde_json::Value {
        let a = with_p(args);
        json(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let created = call(&["branches", "create", "--name", "x", "--parent", "main"]);
    let branch = created.get("branch").unwrap_or(&created);
    assert_eq!(branch["name"], "x", "{created}");
    let id = branch["id"].as_str().expect("branch id").to_string();
    assert!(
        id.starts_with("br-") && id.split('-').count() == 4,
        "Neon-shaped id: {id}"
    );
    let listed = call(&["branches", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert!(names.contains(&"main") && names.contains(&"x"), "{listed}");
    // The table view reads annotations and the default flag.
    let table = run(&with_p(&["branches", "list", "--output", "table"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(table.contains("[default] main"), "{table}");
    assert_eq!(call(&["branches", "get", "x"])["id"], id.as_str());
    assert_eq!(call(&["branches", "rename", "x", "y"])["name"], "y");
    let expiring = call(&[
        "branches",
        "set-expiration",
        "y",
        "--expires-at",
        "2030-01-01T00:00:00Z",
    ]);
    assert_eq!(expiring["expires_at"], "2030-01-01T00:00:00Z", "{expiring}");
    assert_eq!(env.branch("y")["expires_at"], "2030-01-01T00:00:00Z");

    // The URL neonctl builds (endpoint host, roles, databases, reveal_password) connects
    // with TLS and channel binding.
    let cs = |branch: &str| -> String {
        run(&with_p(&[
            "connection-string",
            branch,
            "--role-name",
            "pgfork_owner",
            "--database-name",
            "postgres",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>())
        .trim()
        .to_string()
    };
    let url = cs("y");
    assert!(url.contains("channel_binding=require"), "{url}");
    assert_eq!(
        psql_ok(&url, "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    // (channel_binding=require only succeeds over TLS with SCRAM-SHA-256-PLUS, which
    // the proxy terminates: the Postgres behind it sees a unix socket.)
    psql_ok(&url, "CREATE TABLE only_on_y (x int)");

    let diff = run(&with_p(&[
        "branches",
        "schema-diff",
        "main",
        "y",
        "--database",
        "postgres",
    ])
    .iter()
    .map(String::as_str)
    .collect::<Vec<_>>());
    assert!(diff.contains("+CREATE TABLE public.only_on_y"), "{diff}");
    assert!(
        !diff.contains("restrict"),
        "per-dump keys are not schema: {diff}"
    );

    let reset = call(&["branches", "reset", "y", "--parent"]);
    assert_eq!(reset["id"], id.as_str(), "{reset}");
    // Neon's reset answers with its operations; a loaded machine may not finish it
    // within pgfork's synchronous window (1.5 s), and neonctl does not wait.
    wait_until(
        "the reset to main",
        std::time::Duration::from_secs(120),
        || psql(&url, "SELECT * FROM only_on_y").is_err_and(|e| e.contains("does not exist")),
    );
    assert_eq!(cs("y"), url, "a reset keeps the URL");

    let ops = call(&["operations", "list"]);
    let actions: Vec<&str> = ops
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|o| o["pgfork_action"].as_str())
        .collect();
    assert!(
        actions.contains(&"reset_branch") && actions.contains(&"create_branch"),
        "{ops}"
    );
    assert!(
        ops.as_array()
            .expect("array")
            .iter()
            .all(|o| o["status"] == "finished"),
        "{ops}"
    );

    let deleted = call(&["branches", "delete", "y"]);
    assert_eq!(deleted["id"], id.as_str(), "{deleted}");
    let names: Vec<String> = env
        .json(&["branch", "list"])
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["main"]);

    // With one project, neonctl finds it on its own (organizations, then projects).
    let auto = json(&["branches", "list"]);
    assert_eq!(auto.as_array().map(Vec::len), Some(1), "{auto}");
}

/// A team server: API and branch ports on every interface, URLs naming the public host,
/// TLS whose certificate names it; plain HTTP beyond loopback refused unless asked.
#[test]
fn a_team_server_serves_its_public_host_over_tls_only() {
    let Some(mut server) = Env::new("team-server", Storage::Copy) else {
        return;
    };
    let Some(mut laptop) = Env::new("team-laptop", Storage::Copy) else {
        return;
    };
    let local = server.serve_api(true);
    let port = local
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .expect("port")
        .to_string();
    // 127.0.0.2 stands for the server's public address (any 127/8 address is local).
    let public = "127.0.0.2";
    server.extra_env.retain(|(k, _)| k != "PGFORK_API_LISTEN");

    // Plain HTTP on every interface is refused, with the way out in the sentence.
    let err = server.fails(&["daemon", "run", "--api", &format!("http://0.0.0.0:{port}")]);
    assert!(err.contains("--insecure") && err.contains("https"), "{err}");

    server
        .extra_env
        .push(("PGFORK_API_LISTEN".into(), format!("0.0.0.0:{port}")));
    server
        .extra_env
        .push(("PGFORK_LISTEN".into(), "0.0.0.0".into()));
    server
        .extra_env
        .push(("PGFORK_PUBLIC_HOST".into(), public.into()));
    server.ok(&["daemon", "start"]);
    let status = server.json(&["daemon", "status"]);
    assert!(
        status["api_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")),
        "{status}"
    );
    server.init_sample(1);
    let secret = key(&server, &["alice"]);

    laptop.extra_env.push((
        "PGFORK_API".into(),
        format!("https://{public}:{port}/api/v2"),
    ));
    laptop.extra_env.push(("PGFORK_API_KEY".into(), secret));
    laptop.extra_env.push((
        "PGFORK_API_CA".into(),
        server.home.join("tls/ca.crt").display().to_string(),
    ));
    laptop.ok(&["branch", "create", "alice-feature", "--project", "repo"]);
    let url = laptop
        .ok(&["url", "alice-feature", "--project", "repo"])
        .trim()
        .to_string();
    assert!(
        url.contains(&format!("@{public}:")),
        "URLs name the public host: {url}"
    );
    assert_eq!(
        psql_ok(&url, "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    // `url --secure` on the laptop trusts the server's CA (the one given for its API).
    let secure = laptop
        .ok(&["url", "alice-feature", "--project", "repo", "--secure"])
        .trim()
        .to_string();
    assert!(
        secure.contains(&format!(
            "sslrootcert={}",
            server.home.join("tls/ca.crt").display()
        )),
        "{secure}"
    );
    assert_eq!(psql_ok(&secure, "SELECT 1"), "1");
    // The branch port's certificate names the public host: verify-full passes.
    let ca = server.home.join("tls/ca.crt");
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
    assert_eq!(psql_ok(&verified, "SELECT 1"), "1");
    server.ok(&["daemon", "stop"]);
}

/// Twenty creates at once through the network API, with ports for only eighteen: each
/// succeeds or is refused with a clean 4xx, no two branches share a port, and every
/// one made accepts connections.
#[test]
fn twenty_parallel_creates_through_the_api_never_collide() {
    let Some(mut env) = Env::new("api-parallel", Storage::Copy) else {
        return;
    };
    // 20 branch ports: the root, the follow-HEAD endpoint and 18 more.
    let base = env.serve_api(false);
    env.init_sample(1);
    let secret = key(&env, &["ci"]);
    let results: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (base, secret) = (base.clone(), secret.clone());
                s.spawn(move || {
                    http(
                        &base,
                        "POST",
                        "/projects/repo/branches",
                        Some(&secret),
                        Some(&format!(r#"{{"branch":{{"name":"ci-{i}"}}}}"#)),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (status, body) in &results {
        assert!(
            (200..300).contains(status)
                || ((400..500).contains(status) && body["code"].is_string()),
            "{status} {body}"
        );
    }
    // Accepted creates finish (copies on a plain disk take a while): poll each operation.
    let mut made = 0;
    for (status, body) in &results {
        if !(200..300).contains(status) {
            continue;
        }
        for op in body["operations"].as_array().into_iter().flatten() {
            let id = op["id"].as_str().expect("operation id");
            wait_until(
                "an operation to finish",
                std::time::Duration::from_secs(300),
                || {
                    let (_, now) = http(
                        &base,
                        "GET",
                        &format!("/projects/repo/operations/{id}"),
                        Some(&secret),
                        None,
                    );
                    now["operation"]["status"] != "running"
                },
            );
            let (_, done) = http(
                &base,
                "GET",
                &format!("/projects/repo/operations/{id}"),
                Some(&secret),
                None,
            );
            assert_eq!(done["operation"]["status"], "finished", "{done}");
        }
        made += 1;
    }
    let listed = env.json(&["branch", "list"]);
    let branches = listed.as_array().expect("array");
    let mut ports: Vec<u64> = branches.iter().filter_map(|b| b["port"].as_u64()).collect();
    let count = ports.len();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), count, "no two branches share a port: {listed}");
    assert_eq!(
        count,
        made + 1,
        "every accepted create made one branch (plus main)"
    );
    // The range holds the root, the work tree's follow-HEAD port and the new branches:
    // what was refused was refused for want of a port, and only then.
    assert!(made >= 17, "{made} made");
    for (status, body) in results.iter().filter(|(s, _)| !(200..300).contains(s)) {
        assert_eq!(
            (*status, body["code"].as_str()),
            (422, Some("NO_PORTS")),
            "{body}"
        );
    }
    report(&format!(
        "api parallel creates: {made}/20 made, {} refused cleanly (port range full)",
        20 - made
    ));
    for b in branches {
        let name = b["name"].as_str().expect("name");
        assert_eq!(psql_ok(&env.url(name), "SELECT 1"), "1", "{name}");
    }
}

/// The API's own description: every documented route is served, and schemathesis,
/// fuzzing every operation from `/api/v2/openapi.json` with a real key against a real
/// project, finds no server error and no response that breaks the document.
#[test]
fn the_openapi_document_is_served_and_schemathesis_finds_no_5xx() {
    let Some(mut env) = Env::new("schemathesis", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.ok(&["init", "--empty", "--no-hooks", "--project", "repo"]);
    let secret = key(&env, &["fuzz"]);
    let (status, doc) = http(&base, "GET", "/openapi.json", None, None);
    assert_eq!(status, 200, "the description needs no key: {doc}");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "{} paths", paths.len());
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            let concrete = path
                .trim_start_matches("/api/v2")
                .replace("{project}", "repo")
                .replace("{branch}", "main")
                .replace("{role}", "postgres")
                .replace("{database}", "postgres")
                .replace("{endpoint}", "ep-none")
                .replace("{operation}", "op-none");
            // Reads only: what matters is that the router knows the route.
            if method != "get" {
                continue;
            }
            let (status, body) = http(&base, "GET", &concrete, Some(&secret), None);
            assert!(
                status != 405 && body["message"] != "no such API route",
                "documented but not served: GET {path}: {status} {body}"
            );
        }
    }

    let Some(st) = which("schemathesis") else {
        not_run("schemathesis (python3 -m pip install schemathesis)");
        return;
    };
    let config = env.home.join("schemathesis.toml");
    std::fs::write(
        &config,
        "[parameters]\n\"path.project\" = \"repo\"\n\"path.branch\" = \"main\"\n\"path.role\" = \"pgfork_owner\"\n\"path.database\" = \"postgres\"\n",
    )
    .expect("config");
    let out = std::process::Command::new(st)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {secret}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", "30", "--workers", "2"])
        // A request may wait for another worker's operation on the same branch (a
        // clone on the copy store, on a loaded 2-core machine); waiting is not a bug,
        // a 5xx is.
        .args(["--request-timeout", "30"])
        // The coverage phase trips over a CPython AST bug in some 3.11 builds.
        .args(["--phases", "examples,fuzzing,stateful"])
        // Deleting the one project would leave nothing to fuzz.
        .args(["--exclude-operation-id", "delete_projects_project"])
        .args(["--seed", "20261125"])
        .current_dir(&env.home)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: String = stdout
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed") || l.contains("failed"))
        .collect::<Vec<_>>()
        .join(" | ");
    report(&format!("schemathesis: {summary}"));
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// The requests Neon's GitHub Actions make (create-branch v6 and schema-diff call the
/// API client directly; delete-branch and reset-branch run neonctl 2.x with analytics
/// on), replayed in their order and shapes against pgfork.
#[test]
fn the_requests_of_neons_github_actions_succeed() {
    let Some(mut env) = Env::new("gh-actions", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.init_sample(1);
    let k = key(&env, &["github-actions"]);
    let get = |path: &str| http(&base, "GET", path, Some(&k), None);
    let p = "/projects/repo";

    // create-branch-action: look the branch and its parent up by search, create, then
    // read endpoint, database, role and password to build the URL itself.
    let (s, found) = get(&format!("{p}/branches?search=ci-42&limit=10000"));
    assert_eq!(s, 200);
    assert!(
        found["branches"].as_array().expect("branches").is_empty(),
        "{found}"
    );
    let (_, parents) = get(&format!("{p}/branches?search=main&limit=10000"));
    let parent = parents["branches"]
        .as_array()
        .expect("branches")
        .iter()
        .find(|b| b["name"] == "main" || b["id"] == "main")
        .expect("the parent by name")
        .clone();
    let body = serde_json::json!({
        "endpoints": [{"type": "read_write", "suspend_timeout_seconds": 0}],
        "branch": {"name": "ci-42", "parent_id": parent["id"]},
        "annotation_value": {"github-repo": "acme/web", "github-pr-number": "42"},
    })
    .to_string();
    let (s, made) = http(
        &base,
        "POST",
        &format!("{p}/branches"),
        Some(&k),
        Some(&body),
    );
    assert_eq!(s, 201, "{made}");
    let id = made["branch"]["id"].as_str().expect("id").to_string();
    for op in made["operations"].as_array().into_iter().flatten() {
        let op_id = op["id"].as_str().expect("op id");
        wait_until("the create", std::time::Duration::from_secs(120), || {
            get(&format!("{p}/operations/{op_id}")).1["operation"]["status"] != "running"
        });
    }
    let (s, eps) = get(&format!("{p}/branches/{id}/endpoints"));
    assert_eq!(s, 200);
    let ep = eps["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["type"] == "read_write")
        .expect("a read_write endpoint")
        .clone();
    assert_eq!(get(&format!("{p}/branches/{id}/databases/postgres")).0, 200);
    assert_eq!(get(&format!("{p}/branches/{id}/roles/pgfork_owner")).0, 200);
    let (s, pw) = get(&format!(
        "{p}/branches/{id}/roles/pgfork_owner/reveal_password"
    ));
    assert_eq!(s, 200);
    // The superuser has no password to reveal.
    assert_error(
        &get(&format!("{p}/branches/{id}/roles/postgres/reveal_password")),
        404,
        "superuser",
    );
    // Optional lookups the action tolerates as 404.
    assert_eq!(get(&format!("{p}/branches/{id}/auth")).0, 404);
    let url = format!(
        "postgresql://pgfork_owner:{}@{}/postgres?sslmode=require",
        pw["password"].as_str().expect("password"),
        ep["host"].as_str().expect("host")
    );
    assert_eq!(
        psql_ok(&url, "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    psql_ok(&url, "CREATE TABLE added_by_ci (x int)");

    // schema-diff-action: list, then the schema of both branches.
    let (s, all) = get(&format!("{p}/branches"));
    assert_eq!(s, 200);
    let base_id = all["branches"]
        .as_array()
        .expect("branches")
        .iter()
        .find(|b| b["id"] == made["branch"]["parent_id"])
        .and_then(|b| b["id"].as_str())
        .expect("base by the compare branch's parent_id")
        .to_string();
    let (s, compare) = get(&format!("{p}/branches/{id}/schema?db_name=postgres"));
    assert_eq!(s, 200);
    let (s, parent_schema) = get(&format!("{p}/branches/{base_id}/schema?db_name=postgres"));
    assert_eq!(s, 200);
    assert!(compare["sql"]
        .as_str()
        .is_some_and(|s| s.contains("added_by_ci")));
    assert!(parent_schema["sql"]
        .as_str()
        .is_some_and(|s| !s.contains("added_by_ci")));

    // delete-branch-action (neonctl 2.x, analytics on): auth, users/me, list, delete.
    let (s, auth) = get("/auth");
    assert_eq!(s, 200);
    assert!(auth["auth_method"].is_string(), "{auth}");
    assert!(get("/users/me").1["id"].is_string());
    let (_, all) = get(&format!("{p}/branches"));
    let target = all["branches"]
        .as_array()
        .expect("branches")
        .iter()
        .find(|b| b["name"] == "ci-42")
        .and_then(|b| b["id"].as_str())
        .expect("by name")
        .to_string();
    let (s, gone) = http(
        &base,
        "DELETE",
        &format!("{p}/branches/{target}"),
        Some(&k),
        None,
    );
    assert_eq!(s, 200, "{gone}");
    assert_eq!(gone["branch"]["id"], target.as_str());
    assert!(
        psql(&url, "SELECT 1").is_err(),
        "the deleted branch no longer answers"
    );
}

fn neon_spec() -> Option<std::path::PathBuf> {
    let dir =
        std::env::var("PGFORK_TEST_NODE_DIR").unwrap_or_else(|_| "/tmp/pgfork-drivers/node".into());
    let spec = std::path::Path::new(&dir)
        .join("node_modules/@neondatabase/api-client/public-v2-for-users.gen.yaml");
    spec.exists().then_some(spec)
}

/// Every response of the Neon subset validates against Neon's published schemas (the
/// OpenAPI document shipped in the npm package `@neondatabase/api-client`), so clients
/// generated from it parse what pgfork sends.
#[test]
fn responses_validate_against_neons_published_schemas() {
    let Some(spec) = neon_spec() else {
        not_run("Neon schema conformance (npm install --prefix /tmp/pgfork-drivers/node @neondatabase/api-client)");
        return;
    };
    let Some(mut env) = Env::new("neon-schemas", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.init_sample(1);
    let k = key(&env, &["conformance"]);
    let mut cases = Vec::new();
    let mut call = |method: &str,
                    path: &str,
                    neon_path: &str,
                    body: Option<&str>|
     -> serde_json::Value {
        let (status, json) = http(&base, method, path, Some(&k), body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {json}"
        );
        cases.push(serde_json::json!({
            "method": method.to_ascii_lowercase(), "path": neon_path, "status": status, "body": json,
        }));
        json
    };
    let projects = call("GET", "/projects", "/projects", None);
    let p = projects["projects"][0]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    call(
        "GET",
        &format!("/projects/{p}"),
        "/projects/{project_id}",
        None,
    );
    let made = call(
        "POST",
        &format!("/projects/{p}/branches"),
        "/projects/{project_id}/branches",
        Some(r#"{"branch":{"name":"conf"},"endpoints":[{"type":"read_write"}]}"#),
    );
    let b = made["branch"]["id"]
        .as_str()
        .expect("branch id")
        .to_string();
    for op in made["operations"].as_array().into_iter().flatten() {
        let id = op["id"].as_str().expect("op id").to_string();
        wait_until("the create", std::time::Duration::from_secs(120), || {
            http(
                &base,
                "GET",
                &format!("/projects/{p}/operations/{id}"),
                Some(&k),
                None,
            )
            .1["operation"]["status"]
                != "running"
        });
        call(
            "GET",
            &format!("/projects/{p}/operations/{id}"),
            "/projects/{project_id}/operations/{operation_id}",
            None,
        );
    }
    call(
        "GET",
        &format!("/projects/{p}/branches"),
        "/projects/{project_id}/branches",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}"),
        "/projects/{project_id}/branches/{branch_id}",
        None,
    );
    call(
        "PATCH",
        &format!("/projects/{p}/branches/{b}"),
        "/projects/{project_id}/branches/{branch_id}",
        Some(r#"{"branch":{"name":"conf2","expires_at":"2030-01-01T00:00:00Z"}}"#),
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}/endpoints"),
        "/projects/{project_id}/branches/{branch_id}/endpoints",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}/roles"),
        "/projects/{project_id}/branches/{branch_id}/roles",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}/roles/pgfork_owner"),
        "/projects/{project_id}/branches/{branch_id}/roles/{role_name}",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}/roles/pgfork_owner/reveal_password"),
        "/projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}/databases"),
        "/projects/{project_id}/branches/{branch_id}/databases",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}/databases/postgres"),
        "/projects/{project_id}/branches/{branch_id}/databases/{database_name}",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/branches/{b}/schema?db_name=postgres"),
        "/projects/{project_id}/branches/{branch_id}/schema",
        None,
    );
    let eps = call(
        "GET",
        &format!("/projects/{p}/endpoints"),
        "/projects/{project_id}/endpoints",
        None,
    );
    let ep = eps["endpoints"][0]["id"]
        .as_str()
        .expect("endpoint")
        .to_string();
    call(
        "GET",
        &format!("/projects/{p}/endpoints/{ep}"),
        "/projects/{project_id}/endpoints/{endpoint_id}",
        None,
    );
    call(
        "GET",
        &format!("/projects/{p}/operations"),
        "/projects/{project_id}/operations",
        None,
    );
    call(
        "GET",
        &format!(
            "/projects/{p}/connection_uri?branch_id={b}&database_name=postgres&role_name=postgres"
        ),
        "/projects/{project_id}/connection_uri",
        None,
    );
    call(
        "POST",
        &format!("/projects/{p}/branches/{b}/restore"),
        "/projects/{project_id}/branches/{branch_id}/restore",
        Some(&format!(
            r#"{{"source_branch_id":"{}"}}"#,
            made["branch"]["parent_id"].as_str().expect("parent")
        )),
    );
    call("GET", "/users/me", "/users/me", None);
    call(
        "GET",
        "/users/me/organizations",
        "/users/me/organizations",
        None,
    );
    call("GET", "/auth", "/auth", None);
    call(
        "DELETE",
        &format!("/projects/{p}/branches/{b}"),
        "/projects/{project_id}/branches/{branch_id}",
        None,
    );

    let file = env.home.join("neon-cases.json");
    std::fs::write(&file, serde_json::to_string(&cases).expect("json")).expect("write cases");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/neon_conformance.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&spec)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    report(&format!(
        "neon schemas: {} responses checked, {} ok",
        cases.len(),
        stdout.lines().filter(|l| l.starts_with("ok")).count()
    ));
    assert!(
        out.status.success(),
        "responses that break Neon's schemas:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rest of Neon's branch surface: compare_schema, endpoint restart, and the clear
/// 4xx answers for what needs history or a movable default branch.
#[test]
fn compare_schema_restart_and_clear_refusals() {
    let Some(mut env) = Env::new("neon-extras", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.init_sample(1);
    env.ok(&["branch", "create", "feat"]);
    psql_ok(&env.url("feat"), "CREATE TABLE only_here (x int)");
    let k = key(&env, &["extras"]);
    let p = "/projects/repo";
    let (s, diff) = http(
        &base,
        "GET",
        &format!("{p}/branches/feat/compare_schema?db_name=postgres"),
        Some(&k),
        None,
    );
    assert_eq!(s, 200, "{diff}");
    let text = diff["diff"].as_str().expect("diff");
    assert!(text.contains("+CREATE TABLE public.only_here"), "{text}");
    assert!(text.starts_with("--- main"), "{text}");
    let (s, body) = http(
        &base,
        "GET",
        &format!("{p}/branches/main/compare_schema?db_name=postgres"),
        Some(&k),
        None,
    );
    assert_eq!(s, 400, "the root has no parent: {body}");

    // Restart: a new postmaster, same URL, data intact.
    let data_dir = env.branch("feat")["data_dir"]
        .as_str()
        .expect("dir")
        .to_string();
    let pid = |d: &str| {
        std::fs::read_to_string(std::path::Path::new(d).join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
    };
    let before = pid(&data_dir);
    let ep = env.branch("feat")["id"]
        .as_str()
        .expect("id")
        .replacen("br-", "ep-", 1);
    let (s, body) = http(
        &base,
        "POST",
        &format!("{p}/endpoints/{ep}/restart"),
        Some(&k),
        None,
    );
    assert_eq!(s, 200, "{body}");
    assert_ne!(pid(&data_dir), before, "a new postmaster");
    assert_eq!(
        psql_ok(&env.url("feat"), "SELECT count(*) FROM only_here"),
        "0"
    );

    // A branch that keeps no history cannot be branched at a past moment: said, not
    // ignored.
    let (s, body) = http(
        &base,
        "POST",
        &format!("{p}/branches"),
        Some(&k),
        Some(r#"{"branch":{"name":"past","parent_lsn":"0/1000000"}}"#),
    );
    assert_eq!(
        (s, body["code"].as_str()),
        (422, Some("UNPROCESSABLE_ENTITY")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("history")),
        "{body}"
    );
    let (s, _) = http(
        &base,
        "GET",
        &format!("{p}/branches/feat/schema?db_name=postgres&lsn=0/1"),
        Some(&k),
        None,
    );
    assert_eq!(s, 422);
    let (s, _) = http(
        &base,
        "POST",
        &format!("{p}/branches/feat/set_as_default"),
        Some(&k),
        None,
    );
    assert_eq!(s, 422);
    assert!(!env.ok(&["branch", "list"]).contains("past"));

    // A project renamed keeps its branches; its old name can be used again.
    let (s, body) = http(
        &base,
        "PATCH",
        p,
        Some(&k),
        Some(r#"{"project":{"name":"web"}}"#),
    );
    assert_eq!(
        (s, body["project"]["name"].as_str()),
        (200, Some("web")),
        "{body}"
    );
    assert_eq!(
        psql_ok(
            env.ok(&["url", "feat", "--project", "web"]).trim(),
            "SELECT count(*) FROM only_here"
        ),
        "0"
    );
    let (s, body) = http(
        &base,
        "PATCH",
        "/projects/web",
        Some(&k),
        Some(r#"{"project":{"name":"a/b"}}"#),
    );
    assert_eq!(s, 400, "{body}");
    env.ok(&["init", "--empty", "--no-hooks", "--project", "repo"]);
    let listed = env.ok(&["branch", "list", "--project", "repo"]);
    assert!(listed.contains("main"), "{listed}");
    // Two projects now share the old name's directory: deleting the new one removes
    // only its own branches, not the renamed project's that live beside them.
    let (s, body) = http(&base, "DELETE", "/projects/repo", Some(&k), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        psql_ok(
            env.ok(&["url", "feat", "--project", "web"]).trim(),
            "SELECT count(*) FROM only_here"
        ),
        "0",
        "the renamed project's data survived"
    );
}

/// Relative TTLs on the server's clock, TTLs on a branch that has children (the child
/// outlives its parent), and a restore that keeps the replaced state under a new name.
#[test]
fn relative_ttls_and_preserved_restores_through_the_api() {
    let Some(mut env) = Env::new("api-ttl", Storage::Copy) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
    let base = env.serve_api(false);
    env.init_sample(1);
    let k = key(&env, &["ttl"]);
    let p = "/projects/repo";
    let (s, made) = http(
        &base,
        "POST",
        &format!("{p}/branches"),
        Some(&k),
        Some(r#"{"branch":{"name":"short","pgfork:ttl_seconds":8}}"#),
    );
    assert_eq!(s, 201, "{made}");
    let expires = made["branch"]["expires_at"]
        .as_str()
        .expect("expiry")
        .to_string();
    let left = chrono::DateTime::parse_from_rfc3339(&expires)
        .expect("time")
        .with_timezone(&chrono::Utc)
        - chrono::Utc::now();
    assert!((5..=8).contains(&left.num_seconds()), "{left}");
    let (s, body) = http(
        &base,
        "POST",
        &format!("{p}/branches"),
        Some(&k),
        Some(
            r#"{"branch":{"name":"both","pgfork:ttl_seconds":4,"expires_at":"2030-01-01T00:00:00Z"}}"#,
        ),
    );
    assert_eq!(s, 400, "{body}");
    // A child of the expiring branch, made before it expires.
    wait_until("short to run", std::time::Duration::from_secs(60), || {
        env.branch("short")["state"] == "running"
    });
    env.ok(&["branch", "create", "child", "--parent", "short"]);
    psql_ok(&env.url("child"), "CREATE TABLE kept (x int)");
    // (The child's PARENT column still names it: look at names only.)
    wait_until(
        "the TTL to trash short",
        std::time::Duration::from_secs(30),
        || {
            !env.json(&["branch", "list"])
                .as_array()
                .is_some_and(|a| a.iter().any(|b| b["name"] == "short"))
        },
    );
    assert!(
        env.ok(&["trash", "list"]).contains("short"),
        "expired into the trash, recoverable"
    );
    assert_eq!(
        psql_ok(&env.url("child"), "SELECT count(*) FROM kept"),
        "0",
        "the child outlives its parent"
    );

    // restore with preserve_under_name: the replaced state lives on as a branch.
    env.ok(&["branch", "create", "work"]);
    psql_ok(
        &env.url("work"),
        "CREATE TABLE wip (x int); INSERT INTO wip VALUES (1)",
    );
    let main_id = env.branch("main")["id"].as_str().expect("id").to_string();
    let (s, body) = http(
        &base,
        "POST",
        &format!("{p}/branches/work/restore"),
        Some(&k),
        Some(&format!(
            r#"{{"source_branch_id":"{main_id}","preserve_under_name":"work-before-reset"}}"#
        )),
    );
    assert_eq!(s, 200, "{body}");
    for op in body["operations"].as_array().into_iter().flatten() {
        let id = op["id"].as_str().expect("op").to_string();
        wait_until("the reset", std::time::Duration::from_secs(60), || {
            http(
                &base,
                "GET",
                &format!("{p}/operations/{id}"),
                Some(&k),
                None,
            )
            .1["operation"]["status"]
                != "running"
        });
    }
    assert!(
        psql(&env.url("work"), "SELECT * FROM wip").is_err(),
        "work was reset"
    );
    assert_eq!(
        psql_ok(&env.url("work-before-reset"), "SELECT x FROM wip"),
        "1",
        "its old state was kept"
    );
}

/// The webhook route answers before anyone is authenticated, so a client that sends a
/// body slowly, or opens connection after connection, must not hold the API.
#[test]
fn slow_uploads_and_connection_floods_cannot_hold_the_api() {
    let Some(mut env) = Env::new("api-limits", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.ok(&["init", "--empty", "--no-hooks", "--project", "web"]);
    let full = key(&env, &["ci"]);
    let authority = base
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .expect("authority")
        .to_string();

    // A body promised but never finished: answered 408 after the deadline, closed.
    let started = std::time::Instant::now();
    let mut slow = std::net::TcpStream::connect(&authority).expect("connect");
    slow.write_all(
        format!(
            "POST /api/v2/pgfork/webhooks/github/web HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"action\":"
        )
        .as_bytes(),
    )
    .expect("send the start of a body");
    // Meanwhile everyone else is served at once.
    let t = std::time::Instant::now();
    assert_eq!(http(&base, "GET", "/projects", Some(&full), None).0, 200);
    let others = t.elapsed();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within"), "{text}");
    assert!(
        (9..=20).contains(&waited.as_secs()),
        "closed after the 10 s deadline, not {waited:?}"
    );

    // 64 connections from one address are all it may hold; the next is closed unread,
    // while the local socket (the CLI) is not capped.
    let flood: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(&authority).expect("connect"))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        http(&base, "GET", "/projects", Some(&full), None).0,
        0,
        "the 65th connection is closed without an answer"
    );
    assert!(env.ok(&["project", "list"]).contains("web"));
    drop(flood);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(http(&base, "GET", "/projects", Some(&full), None).0, 200);
    let log = std::fs::read_to_string(env.home.join("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("connections from this address are open")
            && log.contains("not received within"),
        "both refusals are logged"
    );
    report(&format!(
        "api limits: a stalled body answered 408 after {:.1} s while another request took {:.0} ms; the 65th connection from one address refused",
        waited.as_secs_f64(),
        others.as_secs_f64() * 1000.0
    ));
}
