//! Carrying out what a verified webhook delivery asks (`crate::webhooks` decides):
//! a branch per open pull request, to the trash when it closes.

use super::*;
use crate::webhooks::{self, Action, Provider};

impl Engine {
    /// Makes (or replaces) a project's webhook secret; returns it, shown once.
    pub fn create_webhook(
        &self,
        project: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<api::WebhookCreated, ApiError> {
        let p = self.project(project)?;
        if ttl_seconds == Some(0) {
            return Err(ApiError::bad_request(
                "the pull-request TTL must be more than zero, or absent",
            ));
        }
        let secret = crate::ids::new_api_key().replacen("pgf_", "whsec_", 1);
        self.write_store(|s| s.set_webhook(&p.id, &secret, ttl_seconds, Utc::now()))
            .map_err(store_err)?;
        tracing::info!(project = %p.name, "webhook secret created");
        Ok(api::WebhookCreated {
            secret,
            paths: ["github", "gitlab", "gitea"]
                .iter()
                .map(|provider| format!("/api/v2/pgfork/webhooks/{provider}/{}", p.name))
                .collect(),
            ttl_seconds,
        })
    }

    /// A delivery from `provider` for `project`: verified against the project's secret
    /// (401 and nothing changed otherwise), then carried out idempotently.
    pub async fn handle_webhook(
        self: &Arc<Self>,
        provider: &str,
        project: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> Result<api::WebhookOutcome, ApiError> {
        let refused = || {
            ApiError::new(
                401,
                "UNAUTHORIZED",
                "the webhook signature does not match this project's secret",
            )
        };
        let provider = Provider::parse(provider).ok_or_else(|| {
            ApiError::not_found(format!(
                "no webhook provider {provider:?}: use github, gitlab or gitea"
            ))
        })?;
        let delivery = webhooks::delivery_id(&headers).unwrap_or_default();
        // Unknown projects and projects without a secret look like a bad signature:
        // an unauthenticated caller learns nothing about which projects exist.
        let Ok(p) = self.project(project) else {
            tracing::warn!(%project, %delivery, "webhook for an unknown project refused");
            return Err(refused());
        };
        let Some((secret, ttl)) = self.store().webhook(&p.id).map_err(store_err)? else {
            tracing::warn!(project = %p.name, %delivery, "webhook refused: no secret set (`pgfork webhook create`)");
            return Err(refused());
        };
        if !webhooks::verify(provider, &secret, &headers, body) {
            tracing::warn!(project = %p.name, %delivery, "webhook refused: bad signature");
            return Err(refused());
        }
        let digest = webhooks::Replays::digest(body);
        let replays = || {
            self.webhook_replays
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if replays().seen(&p.id, digest, std::time::Instant::now()) {
            tracing::warn!(project = %p.name, %delivery, "webhook ignored: this signed body was already carried out (a replay or a redelivery)");
            return Ok(api::WebhookOutcome {
                result: "ignored".into(),
                branch: None,
                detail:
                    "this delivery was already carried out: a signed body counts once (within 24 h)"
                        .into(),
            });
        }
        let payload: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the webhook body is not JSON: {e}")))?;
        let action = webhooks::parse(provider, &headers, &payload);
        let outcome = self.carry_out(&p, action, ttl).await?;
        replays().record(&p.id, digest, std::time::Instant::now());
        tracing::info!(project = %p.name, %delivery, result = %outcome.result, branch = ?outcome.branch, detail = %outcome.detail, "webhook");
        Ok(outcome)
    }

    async fn carry_out(
        self: &Arc<Self>,
        p: &Project,
        action: Action,
        ttl: Option<u64>,
    ) -> Result<api::WebhookOutcome, ApiError> {
        let outcome = |result: &str, branch: Option<String>, detail: String| api::WebhookOutcome {
            result: result.to_string(),
            branch,
            detail,
        };
        match action {
            Action::Ignore(what) => Ok(outcome("ignored", None, what)),
            Action::Open { number, base } => {
                let name = webhooks::pr_branch(number);
                if self
                    .store()
                    .live_branch_by_name(&p.id, &name)
                    .map_err(store_err)?
                    .is_some()
                {
                    return Ok(outcome(
                        "exists",
                        Some(name),
                        format!("pull request #{number} already has its branch"),
                    ));
                }
                let parent = self.base_branch(p, &base)?;
                let made = self
                    .create_branch(
                        &p.id,
                        api::BranchCreateRequest {
                            branch: api::BranchCreate {
                                name: Some(name.clone()),
                                parent_id: Some(parent.id.clone()),
                                pgfork_ttl_seconds: ttl,
                                ..Default::default()
                            },
                            endpoints: vec![],
                        },
                    )
                    .await;
                let made = match made {
                    Ok(m) => m,
                    // A concurrent delivery of the same event made it first.
                    Err(e) if e.status == 409 => {
                        return Ok(outcome(
                            "exists",
                            Some(name),
                            format!("pull request #{number} already has its branch"),
                        ))
                    }
                    Err(e) => return Err(e),
                };
                for op in &made.operations {
                    self.wait_for_operation(&op.id).await?;
                }
                Ok(outcome(
                    "created",
                    Some(name),
                    format!(
                        "pull request #{number} opened: branched from {:?}",
                        parent.name
                    ),
                ))
            }
            Action::Close { number, merged } => {
                let name = webhooks::pr_branch(number);
                let Some(b) = self
                    .store()
                    .live_branch_by_name(&p.id, &name)
                    .map_err(store_err)?
                else {
                    return Ok(outcome(
                        "absent",
                        None,
                        format!("pull request #{number} has no live branch"),
                    ));
                };
                let why = format!(
                    "pull request #{number} {}",
                    if merged { "merged" } else { "closed" }
                );
                self.trash_for(p, &b, &why).await?;
                Ok(outcome(
                    "deleted",
                    Some(name),
                    format!(
                        "{why}: moved to the trash (`pgfork branch recover {}`)",
                        b.name
                    ),
                ))
            }
            Action::BranchDeleted { git_branch } => {
                let paired: Vec<Branch> = self
                    .store()
                    .branches(&p.id, false)
                    .map_err(store_err)?
                    .into_iter()
                    .filter(|b| b.git_branch.as_deref() == Some(git_branch.as_str()))
                    .filter(|b| b.parent_id.is_some() && !b.protected)
                    .collect();
                if paired.is_empty() {
                    return Ok(outcome(
                        "absent",
                        None,
                        format!("no database branch is paired with git branch {git_branch:?}"),
                    ));
                }
                let why = format!("git branch {git_branch:?} deleted");
                let mut names = Vec::new();
                for b in paired {
                    self.trash_for(p, &b, &why).await?;
                    names.push(b.name);
                }
                Ok(outcome(
                    "deleted",
                    Some(names.join(", ")),
                    format!("{why}: moved to the trash"),
                ))
            }
        }
    }

    /// The database a pull request into `base` starts from: the branch paired with that
    /// git branch, else the one named like it, else the root.
    fn base_branch(&self, p: &Project, base: &str) -> Result<Branch, ApiError> {
        let live = self.store().branches(&p.id, false).map_err(store_err)?;
        if let Some(b) = live.iter().find(|b| b.git_branch.as_deref() == Some(base)) {
            return Ok(b.clone());
        }
        if let Some(b) = live.iter().find(|b| b.name == base) {
            return Ok(b.clone());
        }
        self.root_branch(p)
    }

    async fn trash_for(
        self: &Arc<Self>,
        p: &Project,
        b: &Branch,
        why: &str,
    ) -> Result<(), ApiError> {
        self.delete_branch(&p.id, &b.id, false, None).await?;
        let (id, why) = (b.id.clone(), why.to_string());
        self.write_store(|s| s.set_trash_reason(&id, Some(&why)))
            .map_err(store_err)
    }
}
