//! Pull-request branches by webhook: deliveries shaped and signed as GitHub and GitLab
//! send them create `pr-<n>` on open and trash it on merge; a bad signature changes
//! nothing; a replayed delivery is idempotent; every deletion can be undone.

mod common;
use common::*;
use hmac::{KeyInit, Mac};
use std::io::{Read, Write};

fn post(
    base: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, serde_json::Value) {
    let rest = base.strip_prefix("http://").expect("http base");
    let authority = rest.split('/').next().expect("authority");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    let mut req = format!(
        "POST /api/v2{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send");
    stream.write_all(body.as_bytes()).expect("send");
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Small JSON answers come in one chunk when chunked: take the JSON object.
    let json = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| &body[a..=b]))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn sign(secret: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `pull_request` delivery in GitHub's documented shape (the fields pgfork reads
/// and the ones around them).
fn github_pr(action: &str, number: u64, merged: bool) -> String {
    serde_json::json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": if action == "closed" { "closed" } else { "open" },
            "merged": merged,
            "head": {"ref": "feature/login", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
            "base": {"ref": "main", "sha": "0c3c3f3b5f0c1d4e1b1a2f0e9d8c7b6a5f4e3d2c"},
        },
        "repository": {"full_name": "acme/web"},
        "sender": {"login": "octocat"},
    })
    .to_string()
}

fn names(env: &Env) -> Vec<String> {
    env.json(&["branch", "list"])
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn pull_requests_get_branches_from_signed_webhooks_only() {
    let Some(mut env) = Env::new("webhooks", Storage::Copy) else {
        return;
    };
    let base = env.serve_api(false);
    env.init_sample(1);
    let made = env.json(&["webhook", "create", "--ttl", "3d"]);
    let secret = made["secret"].as_str().expect("secret").to_string();
    let github = "/pgfork/webhooks/github/repo";

    let gh = |event: &str, delivery: &str, body: &str, secret: &str| {
        post(
            &base,
            github,
            &[
                ("X-GitHub-Event", event.to_string()),
                ("X-GitHub-Delivery", delivery.to_string()),
                (
                    "X-Hub-Signature-256",
                    format!("sha256={}", sign(secret, body)),
                ),
                ("User-Agent", "GitHub-Hookshot/abc".to_string()),
            ],
            body,
        )
    };

    // Opened: pr-7 from main's database, with the webhook's TTL, no API key involved.
    let opened = github_pr("opened", 7, false);
    let (status, body) = gh("pull_request", "d-1", &opened, &secret);
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("created")),
        "{body}"
    );
    assert!(names(&env).contains(&"pr-7".to_string()));
    assert_eq!(
        psql_ok(&env.url("pr-7"), "SELECT count(*) FROM pgbench_accounts"),
        "100000"
    );
    let expires = env.branch("pr-7")["expires_at"]
        .as_str()
        .expect("a TTL")
        .to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(&expires).expect("time");
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((70..=72).contains(&days), "about 3 days: {days} h");

    // The same delivery again (a replay, or a redelivery): counted once.
    let (status, body) = gh("pull_request", "d-1", &opened, &secret);
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("already carried out"),
        "{body}"
    );
    // A reopen (another body) finds the branch there.
    let (status, body) = gh(
        "pull_request",
        "d-1b",
        &github_pr("reopened", 7, false),
        &secret,
    );
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("exists")),
        "{body}"
    );
    assert_eq!(
        names(&env).iter().filter(|n| n.starts_with("pr-")).count(),
        1
    );

    // Forged: a wrong secret, a missing signature, a body changed after signing.
    let merged = github_pr("closed", 7, true);
    let (status, body) = gh("pull_request", "d-2", &merged, "not-the-secret");
    assert_eq!(status, 401, "{body}");
    let (status, _) = post(
        &base,
        github,
        &[("X-GitHub-Event", "pull_request".into())],
        &merged,
    );
    assert_eq!(status, 401);
    let signed_for_other = format!("sha256={}", sign(&secret, &opened));
    let (status, _) = post(
        &base,
        github,
        &[
            ("X-GitHub-Event", "pull_request".into()),
            ("X-Hub-Signature-256", signed_for_other),
        ],
        &merged,
    );
    assert_eq!(status, 401);
    assert!(
        names(&env).contains(&"pr-7".to_string()),
        "forged deliveries changed nothing"
    );
    let (status, body) = gh("pull_request", "d-2", &merged, &secret);
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("deleted")),
        "{body}"
    );
    assert!(!names(&env).contains(&"pr-7".to_string()));

    // Synchronize (a push to the pull request) changes nothing.
    let (status, body) = gh(
        "pull_request",
        "d-3",
        &github_pr("synchronize", 8, false),
        &secret,
    );
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );

    // Merged went to the trash with its reason, and can be undone.
    let trash = env.ok(&["trash", "list"]);
    assert!(
        trash.contains("pr-7") && trash.contains("pull request #7 merged"),
        "{trash}"
    );
    env.ok(&["branch", "recover", "pr-7"]);
    assert!(names(&env).contains(&"pr-7".to_string()));
    // A captured merge delivery sent again, even under another delivery id, does not
    // take the recovered branch away.
    let (status, body) = gh("pull_request", "d-2-replayed", &merged, &secret);
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );
    assert!(
        names(&env).contains(&"pr-7".to_string()),
        "the recovered branch stays"
    );

    // GitLab: the secret as X-Gitlab-Token, merge requests by iid.
    let gitlab = "/pgfork/webhooks/gitlab/repo";
    let mr = |action: &str| {
        serde_json::json!({
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": {"username": "root"},
            "project": {"path_with_namespace": "acme/web"},
            "object_attributes": {"iid": 3, "action": action, "state": "opened", "source_branch": "feature/x", "target_branch": "main"},
        })
        .to_string()
    };
    let gl = |body: &str, token: &str| {
        post(
            &base,
            gitlab,
            &[
                ("X-Gitlab-Event", "Merge Request Hook".into()),
                ("X-Gitlab-Token", token.into()),
            ],
            body,
        )
    };
    assert_eq!(gl(&mr("open"), "wrong").0, 401);
    assert!(
        !names(&env).contains(&"pr-3".to_string()),
        "a refused delivery made nothing"
    );
    let (status, body) = gl(&mr("open"), &secret);
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("created")),
        "{body}"
    );
    let (status, body) = gl(&mr("merge"), &secret);
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("deleted")),
        "{body}"
    );

    // A deleted git branch takes its paired database to the trash, never the root.
    env.ok(&["branch", "create", "login"]);
    let key = env.ok(&["token", "create", "pairing"]).trim().to_string();
    let pair = r#"{"branch":{"git_branch":"feature/login"}}"#;
    let rest = base.strip_prefix("http://").expect("base");
    let authority = rest.split('/').next().expect("authority");
    let mut s = std::net::TcpStream::connect(authority).expect("connect");
    write!(
        s,
        "PATCH /api/v2/projects/repo/branches/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{pair}",
        pair.len()
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let deleted =
        serde_json::json!({"ref": "feature/login", "ref_type": "branch", "pusher_type": "user"})
            .to_string();
    let (status, body) = gh("delete", "d-9", &deleted, &secret);
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("deleted")),
        "{body}"
    );
    assert!(!names(&env).contains(&"login".to_string()));
    let main_deleted = serde_json::json!({"ref": "main", "ref_type": "branch"}).to_string();
    let (status, body) = gh("delete", "d-10", &main_deleted, &secret);
    assert_eq!(status, 200, "{body}");
    assert!(
        names(&env).contains(&"main".to_string()),
        "the root is never deleted by a webhook"
    );
}
