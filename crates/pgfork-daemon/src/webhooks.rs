//! Pull-request lifecycle by webhook: GitHub, GitLab and Gitea tell the team server
//! about pull requests and deleted branches, and pgfork keeps one database branch per
//! open pull request (`pr-<n>`, from the base branch's database).
//!
//! Everything a delivery may cause is decided here from the verified payload, without
//! IO ([`verify`], [`parse`]); the engine carries the decision out. Every action is
//! idempotent — a replayed delivery finds the branch already made or already gone — and
//! every deletion goes to the trash with its reason, so it can be undone. On top of
//! that, a signed body already carried out is not carried out again ([`Replays`]): the
//! signature covers the body only, so whoever captured one delivery could otherwise
//! send it again later (say, a pull request's "closed" after it was reopened).

use hmac::{KeyInit, Mac};
use serde_json::Value;
use sha2::Digest;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a carried-out delivery is remembered (GitHub and Gitea retry for less).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How many deliveries are remembered at most (the oldest are forgotten first).
pub const REPLAY_CAPACITY: usize = 10_000;

/// Signed bodies carried out recently, per project. Only verified deliveries that
/// were carried out are recorded, so an attacker without the secret cannot fill it and
/// a delivery that failed can be redelivered.
#[derive(Default)]
pub struct Replays {
    seen: HashMap<(String, [u8; 32]), Instant>,
    order: VecDeque<((String, [u8; 32]), Instant)>,
}

impl Replays {
    pub fn digest(body: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(body).into()
    }

    /// Whether `project` already carried out this body within the window.
    pub fn seen(&mut self, project: &str, digest: [u8; 32], now: Instant) -> bool {
        self.forget_old(now);
        self.seen.contains_key(&(project.to_string(), digest))
    }

    pub fn record(&mut self, project: &str, digest: [u8; 32], now: Instant) {
        self.forget_old(now);
        let key = (project.to_string(), digest);
        if self.seen.insert(key.clone(), now).is_none() {
            self.order.push_back((key, now));
        }
        while self.order.len() > REPLAY_CAPACITY {
            if let Some((k, _)) = self.order.pop_front() {
                self.seen.remove(&k);
            }
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some((k, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < REPLAY_WINDOW {
                break;
            }
            self.seen.remove(k);
            self.order.pop_front();
        }
    }
}

/// Who sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

impl Provider {
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "github" => Some(Provider::GitHub),
            "gitlab" => Some(Provider::GitLab),
            "gitea" | "forgejo" => Some(Provider::Gitea),
            _ => None,
        }
    }
}

/// What a delivery asks of pgfork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A pull request was opened or reopened: its branch, from the base's database.
    Open { number: u64, base: String },
    /// Closed or merged: its branch goes to the trash.
    Close { number: u64, merged: bool },
    /// A git branch was deleted: the database paired with it goes to the trash.
    BranchDeleted { git_branch: String },
    /// Anything else (pushes to a pull request, comments, pings): nothing.
    Ignore(String),
}

/// The database branch of pull request `number`.
pub fn pr_branch(number: u64) -> String {
    format!("pr-{number}")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn hmac_matches(secret: &str, body: &[u8], signature_hex: &str) -> bool {
    let Ok(expected) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // Constant time: the comparison does not tell an attacker how much was right.
    mac.verify_slice(&expected).is_ok()
}

/// Whether a delivery was signed with the project's secret, as each provider signs:
/// GitHub `X-Hub-Signature-256: sha256=<hmac>`, Gitea `X-Gitea-Signature: <hmac>`
/// (HMAC-SHA256 of the body), GitLab `X-Gitlab-Token: <secret>`.
pub fn verify(provider: Provider, secret: &str, headers: &[(String, String)], body: &[u8]) -> bool {
    match provider {
        Provider::GitHub => header(headers, "x-hub-signature-256")
            .and_then(|v| v.strip_prefix("sha256="))
            .is_some_and(|sig| hmac_matches(secret, body, sig)),
        Provider::Gitea => header(headers, "x-gitea-signature")
            .or_else(|| header(headers, "x-forgejo-signature"))
            .is_some_and(|sig| hmac_matches(secret, body, sig)),
        Provider::GitLab => header(headers, "x-gitlab-token").is_some_and(|token| {
            let (a, b) = (token.as_bytes(), secret.as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        }),
    }
}

/// The delivery's id, for logs (GitHub, Gitea and GitLab each send one).
pub fn delivery_id(headers: &[(String, String)]) -> Option<String> {
    [
        "x-github-delivery",
        "x-gitea-delivery",
        "x-gitlab-event-uuid",
        "x-gitlab-webhook-uuid",
    ]
    .iter()
    .find_map(|h| header(headers, h))
    .map(str::to_string)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// What a verified delivery asks for.
pub fn parse(provider: Provider, headers: &[(String, String)], body: &Value) -> Action {
    match provider {
        Provider::GitHub | Provider::Gitea => {
            let event = header(headers, "x-github-event")
                .or_else(|| header(headers, "x-gitea-event"))
                .or_else(|| header(headers, "x-forgejo-event"))
                .unwrap_or("");
            match event {
                "pull_request" => {
                    let Some(number) = body["number"].as_u64() else {
                        return Action::Ignore("a pull_request event without a number".into());
                    };
                    let action = body["action"].as_str().unwrap_or("");
                    match action {
                        "opened" | "reopened" => {
                            match str_at(body, &["pull_request", "base", "ref"]) {
                                Some(base) => Action::Open {
                                    number,
                                    base: base.to_string(),
                                },
                                None => {
                                    Action::Ignore("a pull request without a base branch".into())
                                }
                            }
                        }
                        "closed" => Action::Close {
                            number,
                            merged: body["pull_request"]["merged"].as_bool().unwrap_or(false),
                        },
                        other => Action::Ignore(format!("pull request #{number} {other}")),
                    }
                }
                "delete" if body["ref_type"] == "branch" => match body["ref"].as_str() {
                    Some(r) => Action::BranchDeleted {
                        git_branch: r.to_string(),
                    },
                    None => Action::Ignore("a delete event without a ref".into()),
                },
                "ping" => Action::Ignore("ping".into()),
                other => Action::Ignore(format!("event {other:?}")),
            }
        }
        Provider::GitLab => {
            let kind = body["object_kind"].as_str().unwrap_or("");
            match kind {
                "merge_request" => {
                    let attrs = &body["object_attributes"];
                    let Some(number) = attrs["iid"].as_u64() else {
                        return Action::Ignore("a merge request without an iid".into());
                    };
                    match attrs["action"].as_str().unwrap_or("") {
                        "open" | "reopen" => match attrs["target_branch"].as_str() {
                            Some(base) => Action::Open {
                                number,
                                base: base.to_string(),
                            },
                            None => {
                                Action::Ignore("a merge request without a target branch".into())
                            }
                        },
                        "close" => Action::Close {
                            number,
                            merged: false,
                        },
                        "merge" => Action::Close {
                            number,
                            merged: true,
                        },
                        other => Action::Ignore(format!("merge request !{number} {other}")),
                    }
                }
                // A push whose `after` is all zeros deleted the branch.
                "push"
                    if body["after"]
                        .as_str()
                        .is_some_and(|a| !a.is_empty() && a.chars().all(|c| c == '0')) =>
                {
                    match body["ref"]
                        .as_str()
                        .and_then(|r| r.strip_prefix("refs/heads/"))
                    {
                        Some(b) => Action::BranchDeleted {
                            git_branch: b.to_string(),
                        },
                        None => Action::Ignore("a push without a branch ref".into()),
                    }
                }
                other => Action::Ignore(format!("event {other:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carried_out_body_is_not_carried_out_again_within_the_window() {
        let mut r = Replays::default();
        let t0 = Instant::now();
        let a = Replays::digest(b"closed #7");
        assert!(!r.seen("p1", a, t0));
        r.record("p1", a, t0);
        assert!(r.seen("p1", a, t0 + Duration::from_secs(60)));
        assert!(!r.seen("p2", a, t0), "per project");
        assert!(!r.seen("p1", Replays::digest(b"opened #7"), t0));
        assert!(
            !r.seen("p1", a, t0 + REPLAY_WINDOW),
            "forgotten after the window"
        );
        for i in 0..REPLAY_CAPACITY + 5 {
            r.record("p1", Replays::digest(i.to_string().as_bytes()), t0);
        }
        assert_eq!(r.seen.len(), REPLAY_CAPACITY);
        assert!(
            !r.seen("p1", Replays::digest(b"0"), t0),
            "the oldest go first"
        );
        assert!(r.seen("p1", Replays::digest(b"9"), t0) || REPLAY_CAPACITY < 10);
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn signatures_are_checked_as_each_provider_signs() {
        let body = br#"{"action":"opened"}"#;
        let sig = sign("s3cret", body);
        let github = h(&[("X-Hub-Signature-256", &format!("sha256={sig}"))]);
        assert!(verify(Provider::GitHub, "s3cret", &github, body));
        assert!(!verify(Provider::GitHub, "other", &github, body));
        assert!(!verify(
            Provider::GitHub,
            "s3cret",
            &github,
            br#"{"action":"closed"}"#
        ));
        assert!(!verify(Provider::GitHub, "s3cret", &h(&[]), body));
        assert!(verify(
            Provider::Gitea,
            "s3cret",
            &h(&[("X-Gitea-Signature", &sig)]),
            body
        ));
        assert!(verify(
            Provider::GitLab,
            "s3cret",
            &h(&[("X-Gitlab-Token", "s3cret")]),
            body
        ));
        assert!(!verify(
            Provider::GitLab,
            "s3cret",
            &h(&[("X-Gitlab-Token", "s3cre")]),
            body
        ));
    }

    #[test]
    fn pull_requests_open_close_and_branch_deletions_are_understood() {
        let gh = h(&[("X-GitHub-Event", "pull_request")]);
        let opened = serde_json::json!({"action": "opened", "number": 7, "pull_request": {"base": {"ref": "main"}, "merged": false}});
        assert_eq!(
            parse(Provider::GitHub, &gh, &opened),
            Action::Open {
                number: 7,
                base: "main".into()
            }
        );
        let merged = serde_json::json!({"action": "closed", "number": 7, "pull_request": {"base": {"ref": "main"}, "merged": true}});
        assert_eq!(
            parse(Provider::GitHub, &gh, &merged),
            Action::Close {
                number: 7,
                merged: true
            }
        );
        let sync = serde_json::json!({"action": "synchronize", "number": 7});
        assert!(matches!(
            parse(Provider::GitHub, &gh, &sync),
            Action::Ignore(_)
        ));
        let del = serde_json::json!({"ref": "feature/x", "ref_type": "branch"});
        assert_eq!(
            parse(Provider::GitHub, &h(&[("X-GitHub-Event", "delete")]), &del),
            Action::BranchDeleted {
                git_branch: "feature/x".into()
            }
        );
        let mr = serde_json::json!({"object_kind": "merge_request", "object_attributes": {"iid": 3, "action": "merge", "target_branch": "main"}});
        assert_eq!(
            parse(Provider::GitLab, &h(&[]), &mr),
            Action::Close {
                number: 3,
                merged: true
            }
        );
        let push_del = serde_json::json!({"object_kind": "push", "ref": "refs/heads/old", "after": "0000000000000000000000000000000000000000"});
        assert_eq!(
            parse(Provider::GitLab, &h(&[]), &push_del),
            Action::BranchDeleted {
                git_branch: "old".into()
            }
        );
        assert_eq!(pr_branch(12), "pr-12");
    }
}
