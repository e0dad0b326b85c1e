//! Contract tests of pgfork's client against Neon itself: the example responses of
//! Neon's published OpenAPI document (shipped in `@neondatabase/api-client`, installed
//! by CI) parse into the client's types, and the pgfork CLI in remote mode works
//! against a stand-in that answers with them.

mod common;
use common::*;

fn spec() -> Option<std::path::PathBuf> {
    let dir =
        std::env::var("PGFORK_TEST_NODE_DIR").unwrap_or_else(|_| "/tmp/pgfork-drivers/node".into());
    let spec = std::path::Path::new(&dir)
        .join("node_modules/@neondatabase/api-client/public-v2-for-users.gen.yaml");
    spec.exists().then_some(spec)
}

fn support(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

fn examples(spec: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg(support("neon_examples.py"))
        .arg(spec)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("examples JSON")
}

fn parse<T: serde::de::DeserializeOwned>(examples: &serde_json::Value, key: &str) -> T {
    let example = examples
        .get(key)
        .unwrap_or_else(|| panic!("Neon documents no example for {key}"));
    serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("the client cannot read Neon's {key}: {e}\n{example}"))
}

#[test]
fn the_client_reads_what_neon_documents_it_sends() {
    let Some(spec) = spec() else {
        not_run("Neon contract tests (npm install --prefix /tmp/pgfork-drivers/node @neondatabase/api-client)");
        return;
    };
    let ex = examples(&spec);
    use pgfork_api as api;
    let projects: api::ProjectsResponse = parse(&ex, "GET /projects");
    assert!(!projects.projects.is_empty());
    let _: api::ProjectResponse = parse(&ex, "GET /projects/{project_id}");
    let branches: api::BranchesResponse = parse(&ex, "GET /projects/{project_id}/branches");
    assert!(branches.branches.iter().any(|b| b.default));
    for key in [
        "GET /projects/{project_id}/branches/{branch_id}",
        "PATCH /projects/{project_id}/branches/{branch_id}",
        "DELETE /projects/{project_id}/branches/{branch_id}",
    ] {
        let b: api::BranchResponse = parse(&ex, key);
        assert!(b.branch.id.starts_with("br-"), "{key}");
    }
    let op: api::OperationResponse =
        parse(&ex, "GET /projects/{project_id}/operations/{operation_id}");
    assert!(!op.operation.status.is_empty());
    let _: api::EndpointsResponse = parse(
        &ex,
        "GET /projects/{project_id}/branches/{branch_id}/endpoints",
    );
    let pw: api::RolePasswordResponse = parse(
        &ex,
        "GET /projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password",
    );
    assert!(!pw.password.is_empty());
}

#[test]
fn the_cli_drives_a_server_that_answers_as_neon_does() {
    let Some(spec) = spec() else {
        not_run("Neon contract tests (npm install --prefix /tmp/pgfork-drivers/node @neondatabase/api-client)");
        return;
    };
    let Some(mut env) = Env::new("neon-stub", Storage::Copy) else {
        return;
    };
    let file = env.home.join("examples.json");
    std::fs::create_dir_all(&env.home).expect("home");
    std::fs::write(&file, examples(&spec).to_string()).expect("examples");
    let port: u16 = free_port();
    let stub = std::process::Command::new("python3")
        .arg(support("neon_stub.py"))
        .arg(&file)
        .arg(port.to_string())
        .arg("neon-key")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("stub");
    let _stub = KillOnDrop(stub);
    wait_until(
        "the stub to listen",
        std::time::Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    env.extra_env.push((
        "PGFORK_API".into(),
        format!("http://127.0.0.1:{port}/api/v2"),
    ));
    env.extra_env
        .push(("PGFORK_API_KEY".into(), "neon-key".into()));
    let p = ["--project", "shiny-wind-028834"];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(p.iter()).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let listed = run(with(&["branch", "list"]));
    assert!(listed.contains("main"), "{listed}");
    let got = run(with(&["branch", "get", "br-aged-salad-637688", "--json"]));
    assert!(got.contains("br-aged-salad-637688"), "{got}");
    // Neon's branch carries no URL: the client asks connection_uri for one, for the
    // branch's database and a role it names when there are several.
    let args = with(&["url", "br-aged-salad-637688"]);
    let err = env.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("--role"), "{err}");
    let url = run(with(&["url", "br-aged-salad-637688", "--role", "casey"]));
    assert!(
        url.trim().starts_with("postgresql://casey:") && url.contains("neon.tech"),
        "{url}"
    );
}

/// Stops the stand-in however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
