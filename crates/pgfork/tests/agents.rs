//! Agents: `pgfork mcp` driven by the real MCP inspector (CLI mode, stdio) and by an
//! `rmcp` client, through the workflow an agent runs for a task.

mod common;
use common::*;

fn inspector() -> Option<std::path::PathBuf> {
    let dir =
        std::env::var("PGFORK_TEST_NODE_DIR").unwrap_or_else(|_| "/tmp/pgfork-drivers/node".into());
    let bin = std::path::Path::new(&dir).join("node_modules/.bin/mcp-inspector");
    bin.exists().then_some(bin)
}

/// One inspector call: `tools/list`, or `tools/call` of `tool` with `args`. Returns the
/// parsed JSON answer (for a call, the tool's text parsed as JSON when it is JSON).
fn inspect(
    env: &Env,
    server_args: &[&str],
    method: &str,
    tool: Option<&str>,
    args: &[(&str, &str)],
) -> (bool, serde_json::Value) {
    let bin = inspector().expect("inspector");
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--cli")
        .arg(pgfork_exe())
        .arg("mcp")
        .args(server_args)
        .args(["--method", method]);
    if let Some(t) = tool {
        cmd.args(["--tool-name", t]);
    }
    for (k, v) in args {
        cmd.arg("--tool-arg").arg(format!("{k}={v}"));
    }
    cmd.env("PGFORK_HOME", &env.home)
        .env("PGFORK_PORTS", &env.ports)
        .current_dir(&env.repo)
        .stdin(std::process::Stdio::null());
    let out = cmd.output().expect("inspector runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // The inspector exits non-zero for a tool error too: the JSON tells which it was.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "inspector {method} {tool:?} gave no JSON ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if method != "tools/call" {
        return (true, v);
    }
    let is_error = v["isError"].as_bool().unwrap_or(false);
    let body = v["content"][0]["text"].as_str().unwrap_or_default();
    (
        !is_error,
        serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::String(body.to_string())),
    )
}

#[test]
fn an_agent_task_through_the_mcp_inspector() {
    let Some(_) = inspector() else {
        not_run("MCP inspector (npm install --prefix /tmp/pgfork-drivers/node @modelcontextprotocol/inspector)");
        return;
    };
    let Some(env) = Env::new("mcp-inspector", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    let (_, listed) = inspect(&env, &[], "tools/list", None, &[]);
    let tools = listed["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for expected in [
        "list_projects",
        "describe_project",
        "list_branches",
        "create_branch",
        "describe_branch",
        "delete_branch",
        "recover_branch",
        "reset_from_parent",
        "set_branch_ttl",
        "get_connection_string",
        "run_sql",
        "run_sql_transaction",
        "get_database_tables",
        "describe_table_schema",
        "compare_database_schema",
        "explain_sql_statement",
        "prepare_database_migration",
        "complete_database_migration",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} is not listed: {names:?}"
        );
    }
    let create = tools
        .iter()
        .find(|t| t["name"] == "create_branch")
        .expect("create_branch");
    for param in ["name", "parent", "ttl", "wait"] {
        assert!(
            create["inputSchema"]["properties"][param].is_object(),
            "create_branch lacks {param}: {create}"
        );
    }
    assert_eq!(create["annotations"]["readOnlyHint"], false);
    let tables = tools
        .iter()
        .find(|t| t["name"] == "get_database_tables")
        .expect("tables");
    assert_eq!(tables["annotations"]["readOnlyHint"], true);

    // create_branch returns once the branch answers, with its URL.
    let (ok, made) = inspect(
        &env,
        &[],
        "tools/call",
        Some("create_branch"),
        &[("name", "task-1"), ("ttl", "2h")],
    );
    assert!(ok, "{made}");
    let url = made["connection_string"].as_str().expect("url").to_string();
    assert_eq!(
        psql_ok(&url, "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    assert!(
        made["branch"]["expires_at"].is_string(),
        "the TTL was kept: {made}"
    );

    let (ok, r) = inspect(
        &env,
        &[],
        "tools/call",
        Some("run_sql"),
        &[
            ("branch", "task-1"),
            (
                "sql",
                "CREATE TABLE agent_notes (id int PRIMARY KEY, body text)",
            ),
        ],
    );
    assert!(ok, "{r}");
    let (ok, diff) = inspect(
        &env,
        &[],
        "tools/call",
        Some("compare_database_schema"),
        &[("branch", "task-1")],
    );
    assert!(ok, "{diff}");
    assert!(
        diff["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+CREATE TABLE public.agent_notes")),
        "{diff}"
    );
    let (ok, cs) = inspect(
        &env,
        &[],
        "tools/call",
        Some("get_connection_string"),
        &[("branch", "task-1")],
    );
    assert!(ok, "{cs}");
    assert_eq!(
        psql_ok(
            cs["connection_string"].as_str().expect("url"),
            "SELECT count(*) FROM agent_notes"
        ),
        "0"
    );

    let (ok, r) = inspect(
        &env,
        &[],
        "tools/call",
        Some("reset_from_parent"),
        &[("branch", "task-1")],
    );
    assert!(ok, "{r}");
    let (ok, t) = inspect(
        &env,
        &[],
        "tools/call",
        Some("get_database_tables"),
        &[("branch", "task-1")],
    );
    assert!(ok, "{t}");
    assert!(
        !t.to_string().contains("agent_notes"),
        "the reset took the table away: {t}"
    );

    // The root refuses writes through run_sql; reads work.
    let (ok, r) = inspect(
        &env,
        &[],
        "tools/call",
        Some("run_sql"),
        &[("branch", "main"), ("sql", "CREATE TABLE nope (x int)")],
    );
    assert!(!ok && r.to_string().contains("root"), "{r}");
    let (ok, r) = inspect(
        &env,
        &[],
        "tools/call",
        Some("run_sql"),
        &[
            ("branch", "main"),
            ("sql", "SELECT count(*) AS n FROM pgbench_branches"),
        ],
    );
    assert!(ok && r["rows"][0]["n"] == "1", "{r}");
    assert!(psql(&env.url("main"), "SELECT * FROM nope").is_err());

    let (ok, r) = inspect(
        &env,
        &[],
        "tools/call",
        Some("delete_branch"),
        &[("branch", "task-1")],
    );
    assert!(ok, "{r}");
    assert!(
        psql(&url, "SELECT 1").is_err(),
        "the deleted branch no longer answers"
    );

    // --read-only lists only tools that change nothing.
    let (_, ro) = inspect(&env, &["--read-only"], "tools/list", None, &[]);
    let ro_names: Vec<&str> = ro["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for hidden in [
        "create_branch",
        "delete_branch",
        "run_sql",
        "prepare_database_migration",
    ] {
        assert!(
            !ro_names.contains(&hidden),
            "{hidden} listed in read-only mode"
        );
    }
    assert!(ro_names.contains(&"get_database_tables"));
}

#[test]
fn migrations_are_tried_on_a_temporary_branch_first() {
    let Some(_) = inspector() else {
        not_run("MCP inspector (npm install --prefix /tmp/pgfork-drivers/node @modelcontextprotocol/inspector)");
        return;
    };
    let Some(env) = Env::new("mcp-migrations", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    env.ok(&["branch", "create", "feature"]);
    let branches = || env.ok(&["branch", "list"]);
    // A bad migration: the error, and nothing left behind.
    let (ok, r) = inspect(
        &env,
        &[],
        "tools/call",
        Some("prepare_database_migration"),
        &[("branch", "feature"), ("sql", "ALTER TABLE pgbench_accounts ADD COLUMN x int; ALTER TABLE no_such_table ADD COLUMN y int")],
    );
    assert!(!ok, "{r}");
    assert!(
        r.to_string().contains("no_such_table") && r.to_string().contains("untouched"),
        "{r}"
    );
    assert!(!branches().contains("migration-"), "{}", branches());
    assert!(psql(
        &env.url("feature"),
        "SELECT x FROM pgbench_accounts LIMIT 1"
    )
    .is_err());

    // A good one: the diff and counts first, the target untouched until applied. The
    // migration id lives in the MCP session, so prepare and complete go through one
    // server: the rmcp test covers that; here the prepared state is checked.
    let (ok, r) = inspect(
        &env,
        &[],
        "tools/call",
        Some("prepare_database_migration"),
        &[
            ("branch", "feature"),
            (
                "sql",
                "CREATE TABLE audit (id int); INSERT INTO audit VALUES (1), (2)",
            ),
        ],
    );
    assert!(ok, "{r}");
    assert!(
        r["schema_diff"]
            .as_str()
            .is_some_and(|d| d.contains("+CREATE TABLE public.audit")),
        "{r}"
    );
    assert_eq!(r["row_counts"]["public.audit"], 2, "{r}");
    assert!(
        psql(&env.url("feature"), "SELECT * FROM audit").is_err(),
        "the target is untouched"
    );
}

/// One `pgfork mcp` session through the official Rust SDK's client.
struct Session {
    client: rmcp::service::RunningService<rmcp::RoleClient, ()>,
}

impl Session {
    async fn start(env: &Env, extra: &[&str]) -> Session {
        use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
        use rmcp::ServiceExt;
        let cmd = tokio::process::Command::new(pgfork_exe()).configure(|c| {
            c.arg("mcp")
                .args(extra)
                .env("PGFORK_HOME", &env.home)
                .env("PGFORK_PORTS", &env.ports)
                .current_dir(&env.repo);
        });
        let transport = TokioChildProcess::new(cmd).expect("spawn pgfork mcp");
        Session {
            client: ().serve(transport).await.expect("MCP handshake"),
        }
    }

    async fn tools(&self) -> Vec<String> {
        self.client
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    /// (ok, the tool's answer parsed as JSON when it is JSON).
    async fn call(&self, tool: &str, args: serde_json::Value) -> (bool, serde_json::Value) {
        let args = args.as_object().cloned().unwrap_or_default();
        let r = self
            .client
            .call_tool(
                rmcp::model::CallToolRequestParams::new(tool.to_string()).with_arguments(args),
            )
            .await
            .expect("tools/call");
        let text = r
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default();
        (
            !r.is_error.unwrap_or(false),
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_task_through_the_rust_sdk() {
    let Some(env) = Env::new("mcp-rmcp", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    env.ok(&["branch", "create", "feature"]);
    let s = Session::start(&env, &[]).await;
    assert!(s.tools().await.contains(&"create_branch".to_string()));

    let (ok, made) = s
        .call("create_branch", serde_json::json!({"name": "sdk-task"}))
        .await;
    assert!(ok, "{made}");
    let url = made["connection_string"].as_str().expect("url").to_string();
    let (ok, r) = s
        .call(
            "run_sql",
            serde_json::json!({"branch": "sdk-task", "sql": "CREATE TABLE t (x int)"}),
        )
        .await;
    assert!(ok, "{r}");
    let (ok, d) = s
        .call(
            "compare_database_schema",
            serde_json::json!({"branch": "sdk-task"}),
        )
        .await;
    assert!(
        ok && d["diff"]
            .as_str()
            .is_some_and(|x| x.contains("+CREATE TABLE public.t ")),
        "{d}"
    );
    let (ok, r) = s
        .call(
            "reset_from_parent",
            serde_json::json!({"branch": "sdk-task"}),
        )
        .await;
    assert!(ok, "{r}");
    assert!(
        psql(&url, "SELECT * FROM t").is_err(),
        "reset took the table"
    );
    let (ok, r) = s
        .call(
            "run_sql",
            serde_json::json!({"branch": "main", "sql": "DROP TABLE pgbench_history"}),
        )
        .await;
    assert!(!ok && r.to_string().contains("root"), "{r}");
    assert_eq!(
        psql_ok(&env.url("main"), "SELECT count(*) FROM pgbench_history"),
        "0",
        "still there"
    );

    // The migration pair, in one session: a good migration is applied to its target
    // and its temporary branch is gone.
    let (ok, prepared) = s
        .call(
            "prepare_database_migration",
            serde_json::json!({"branch": "feature", "sql": "ALTER TABLE pgbench_branches ADD COLUMN region text"}),
        )
        .await;
    assert!(ok, "{prepared}");
    let id = prepared["migration_id"].as_str().expect("id").to_string();
    let temp = prepared["temporary_branch"]
        .as_str()
        .expect("temp")
        .to_string();
    assert!(env.ok(&["branch", "list"]).contains(&temp));
    assert!(
        psql(&env.url("feature"), "SELECT region FROM pgbench_branches").is_err(),
        "not applied yet"
    );
    let (ok, done) = s
        .call(
            "complete_database_migration",
            serde_json::json!({"migration_id": id, "apply": true}),
        )
        .await;
    assert!(ok, "{done}");
    assert_eq!(
        psql_ok(
            &env.url("feature"),
            "SELECT count(region) FROM pgbench_branches"
        ),
        "0"
    );
    assert!(
        !env.ok(&["branch", "list", "--all"]).contains(&temp),
        "the temporary branch is gone"
    );
    // Applying to the root needs --allow-protected-writes.
    let (ok, p2) = s
        .call(
            "prepare_database_migration",
            serde_json::json!({"sql": "CREATE TABLE on_root (x int)"}),
        )
        .await;
    assert!(ok, "{p2}");
    let (ok, r) = s
        .call(
            "complete_database_migration",
            serde_json::json!({"migration_id": p2["migration_id"], "apply": true}),
        )
        .await;
    assert!(
        !ok && r.to_string().contains("--allow-protected-writes"),
        "{r}"
    );
    assert!(psql(&env.url("main"), "SELECT * FROM on_root").is_err());
    let (ok, r) = s
        .call(
            "complete_database_migration",
            serde_json::json!({"migration_id": p2["migration_id"], "apply": false}),
        )
        .await;
    assert!(ok, "{r}");
    let _ = s.client.cancel().await;

    // --read-only: the write tools are not there, and calling one fails.
    let ro = Session::start(&env, &["--read-only"]).await;
    let names = ro.tools().await;
    assert!(
        !names.contains(&"run_sql".to_string()) && names.contains(&"list_branches".to_string()),
        "{names:?}"
    );
    let refused = ro
        .client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("delete_branch").with_arguments(
                serde_json::json!({"branch": "feature"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await;
    assert!(refused.is_err() || refused.is_ok_and(|r| r.is_error == Some(true)));
    assert!(env.ok(&["branch", "list"]).contains("feature"));
    let _ = ro.client.cancel().await;
}

#[test]
fn mcp_install_writes_each_clients_configuration_and_keeps_others() {
    let Some(env) = Env::new("mcp-install", Storage::Copy) else {
        return;
    };
    std::fs::write(
        env.repo.join(".mcp.json"),
        r#"{"mcpServers": {"other": {"command": "other-server"}}}"#,
    )
    .expect("existing config");
    env.ok(&["mcp", "install", "--client", "claude"]);
    env.ok(&["mcp", "install", "--client", "cursor", "--read-only"]);
    env.ok(&["mcp", "install", "--client", "vscode"]);
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(env.repo.join(p)).expect(p)).expect("JSON")
    };
    let claude = read(".mcp.json");
    assert_eq!(
        claude["mcpServers"]["other"]["command"], "other-server",
        "kept"
    );
    let ours = &claude["mcpServers"]["pgfork"];
    assert_eq!(ours["args"][0], "mcp");
    assert!(std::path::Path::new(ours["command"].as_str().expect("command")).is_file());
    assert_eq!(ours["env"]["PGFORK_HOME"], env.home.display().to_string());
    let cursor = read(".cursor/mcp.json");
    assert!(cursor["mcpServers"]["pgfork"]["args"]
        .to_string()
        .contains("--read-only"));
    let vscode = read(".vscode/mcp.json");
    assert_eq!(vscode["servers"]["pgfork"]["type"], "stdio");
    // Again: replaced, not duplicated; a broken file is an error, not overwritten.
    env.ok(&["mcp", "install", "--client", "claude"]);
    assert_eq!(
        read(".mcp.json")["mcpServers"].as_object().map(|m| m.len()),
        Some(2)
    );
    std::fs::write(env.repo.join(".vscode/mcp.json"), "{ not json").expect("write");
    let err = env.fails(&["mcp", "install", "--client", "vscode"]);
    assert!(err.contains("not JSON"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.repo.join(".vscode/mcp.json")).expect("read"),
        "{ not json"
    );
}

/// On a team server, agents reach `/mcp` over streamable HTTP with an API key, and the
/// key's limits are the tools' limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reach_a_team_server_over_http_with_their_key() {
    let Some(mut env) = Env::new("mcp-http", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.init_sample(1);
    let full = env.ok(&["token", "create", "agent"]).trim().to_string();
    let reader = env
        .ok(&["token", "create", "viewer", "--read-only"])
        .trim()
        .to_string();
    let mcp_url = base.replace("/api/v2", "/mcp");
    let connect = |key: Option<String>| {
        let url = mcp_url.clone();
        async move {
            use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
            use rmcp::transport::StreamableHttpClientTransport;
            use rmcp::ServiceExt;
            let mut config = StreamableHttpClientTransportConfig::with_uri(url);
            if let Some(k) = key {
                config = config.auth_header(k);
            }
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
        }
    };
    // No key: the gate answers before any MCP session exists.
    assert!(connect(None).await.is_err(), "a session without a key");
    let s = Session {
        client: connect(Some(full)).await.expect("session with a key"),
    };
    let names = s.tools().await;
    assert!(names.contains(&"create_branch".to_string()), "{names:?}");
    let (ok, made) = s
        .call("create_branch", serde_json::json!({"name": "remote-task"}))
        .await;
    assert!(ok, "{made}");
    let url = made["connection_string"].as_str().expect("url").to_string();
    assert_eq!(
        psql_ok(&url, "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    let _ = s.client.cancel().await;
    // A read-only key gets the read-only tools.
    let ro = Session {
        client: connect(Some(reader)).await.expect("read-only session"),
    };
    let names = ro.tools().await;
    assert!(
        !names.contains(&"create_branch".to_string())
            && names.contains(&"list_branches".to_string()),
        "{names:?}"
    );
    let _ = ro.client.cancel().await;
}

/// The rest of the tool set through the SDK: transactions are all or nothing, plans,
/// TTLs, trash and recovery, table descriptions, and a server confined to one project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_does_what_it_says() {
    let Some(env) = Env::new("mcp-tools", Storage::Copy) else {
        return;
    };
    env.init_sample(1);
    env.ok(&["init", "--empty", "--no-hooks", "--project", "other"]);
    let s = Session::start(&env, &["--project", "repo"]).await;
    let (ok, projects) = s.call("list_projects", serde_json::json!({})).await;
    assert!(
        ok && projects.as_array().map(Vec::len) == Some(1),
        "{projects}"
    );
    let (ok, r) = s
        .call("list_branches", serde_json::json!({"project": "other"}))
        .await;
    assert!(!ok && r.to_string().contains("serves project"), "{r}");

    let (ok, _) = s
        .call(
            "create_branch",
            serde_json::json!({"name": "t", "ttl": "none"}),
        )
        .await;
    assert!(ok);
    let (ok, r) = s
        .call(
            "run_sql_transaction",
            serde_json::json!({"branch": "t", "statements": ["CREATE TABLE a (x int)", "INSERT INTO missing VALUES (1)"]}),
        )
        .await;
    assert!(!ok && r.to_string().contains("missing"), "{r}");
    let (ok, tables) = s
        .call("get_database_tables", serde_json::json!({"branch": "t"}))
        .await;
    assert!(
        ok && !tables.to_string().contains("\"a\""),
        "all or nothing: {tables}"
    );
    let (ok, d) = s
        .call(
            "describe_table_schema",
            serde_json::json!({"branch": "t", "table": "pgbench_accounts"}),
        )
        .await;
    assert!(
        ok && d["columns"].as_array().is_some_and(|c| c.len() == 4),
        "{d}"
    );
    assert!(d["constraints"].to_string().contains("PRIMARY KEY"), "{d}");
    let (ok, plan) = s
        .call(
            "explain_sql_statement",
            serde_json::json!({"branch": "t", "sql": "DELETE FROM pgbench_history", "analyze": true}),
        )
        .await;
    assert!(ok && plan[0]["Plan"].is_object(), "{plan}");
    // The read-only guard cannot be escaped by ending its transaction.
    for sql in [
        "COMMIT; CREATE TABLE escaped_1 (x int)",
        "SELECT 1; COMMIT; CREATE TABLE escaped_2 (x int)",
    ] {
        let (ok, r) = s
            .call("run_sql", serde_json::json!({"branch": "main", "sql": sql}))
            .await;
        assert!(!ok, "{sql}: {r}");
        let (ok, r) = s
            .call(
                "explain_sql_statement",
                serde_json::json!({"branch": "t", "sql": sql}),
            )
            .await;
        assert!(!ok, "{sql}: {r}");
    }
    let (ok, r) = s
        .call(
            "run_sql_transaction",
            serde_json::json!({"branch": "main", "statements": ["COMMIT", "CREATE TABLE escaped_3 (x int)"]}),
        )
        .await;
    assert!(!ok, "{r}");
    for branch in ["main", "t"] {
        let url = env.ok(&["url", branch, "--project", "repo"]);
        let found = psql_ok(
            url.trim(),
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'escaped%'",
        );
        assert_eq!(found, "0", "nothing escaped on {branch}");
    }
    let (ok, r) = s
        .call(
            "set_branch_ttl",
            serde_json::json!({"branch": "t", "ttl": "3h"}),
        )
        .await;
    assert!(ok && r["expires_at"].is_string(), "{r}");
    let (ok, r) = s
        .call("delete_branch", serde_json::json!({"branch": "main"}))
        .await;
    assert!(!ok && r.to_string().contains("root"), "{r}");
    let (ok, _) = s
        .call("delete_branch", serde_json::json!({"branch": "t"}))
        .await;
    assert!(ok);
    let (ok, r) = s
        .call("recover_branch", serde_json::json!({"branch": "t"}))
        .await;
    assert!(ok, "{r}");
    let (ok, b) = s
        .call("describe_branch", serde_json::json!({"branch": "t"}))
        .await;
    assert!(ok && b["state"] == "running", "{b}");
    let _ = s.client.cancel().await;
}

/// In a repository marked `[masking] pii = true`, an agent's branch of unmasked data is
/// masked by the repository's rules, as a git checkout's is.
#[test]
fn an_agents_branch_in_a_project_with_personal_data_is_masked() {
    let Some(_) = inspector() else {
        not_run("MCP inspector (npm install --prefix /tmp/pgfork-drivers/node @modelcontextprotocol/inspector)");
        return;
    };
    let Some(env) = Env::new("mcp-pii", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    psql_ok(
        &env.url("main"),
        "CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users VALUES (1, 'gina@corp.example');",
    );
    env.mark_pii(&mask_rule("users", "email", "email"));
    let (ok, made) = inspect(
        &env,
        &[],
        "tools/call",
        Some("create_branch"),
        &[("name", "agent-task")],
    );
    assert!(ok, "{made}");
    let url = made["connection_string"].as_str().expect("url").to_string();
    assert_eq!(
        psql_ok(
            &url,
            "SELECT count(*) FROM users WHERE email LIKE '%corp.example'"
        ),
        "0"
    );
    assert_eq!(env.branch("agent-task")["masked"], true);
}
