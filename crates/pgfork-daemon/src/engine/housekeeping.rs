//! What the daemon does on its own every reaper interval: expired TTLs and old trash (reap), git gc
//! over every registered work tree (decided again under the branch lock, from git as it is now), and
//! follow-HEAD endpoints. Everything here deletes only on unambiguous evidence (DESIGN §8).

use super::*;

/// What the reaper owes a branch now: `Some(true)` purge (trash past its grace),
/// `Some(false)` trash (TTL expired; never the root or a protected branch), `None`.
pub(crate) fn reap_due(b: &Branch, now: DateTime<Utc>, grace: Duration) -> Option<bool> {
    if !b.state.is_live() {
        let past_grace = b
            .deleted_at
            .is_some_and(|d| pgfork_core::expires_at_from_ttl(d, grace) <= now);
        return past_grace.then_some(true);
    }
    let expired = b.expires_at.is_some_and(|t| t <= now) && !b.protected && b.parent_id.is_some();
    expired.then_some(false)
}

/// gc's plan for `repo`, with git run on a blocking thread.
pub(crate) async fn plan_blocking(
    repo: &pgfork_git::Repo,
    candidates: Vec<Candidate>,
) -> Result<Vec<pgfork_git::gc::Action>, pgfork_git::GitError> {
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || {
        let view = pgfork_git::gc::RepoView::new(&repo)?;
        pgfork_git::gc::plan(&candidates, &view, Utc::now().timestamp())
    })
    .await
    .map_err(|e| pgfork_git::GitError::NoGit(format!("git worker failed: {e}")))?
}

impl Engine {
    /// Trash past its grace period is purged; live branches past their TTL are trashed
    /// (never the root or protected ones).
    pub async fn reap(&self, now: DateTime<Utc>) {
        let branches = self.store().all_branches().unwrap_or_default();
        for b in branches {
            if reap_due(&b, now, self.cfg.grace).is_none() {
                continue;
            }
            let Ok(Some(project)) = self.store().project(&b.project_id) else {
                continue;
            };
            let _op = self.in_flight().await;
            let _branch = self.lock_branch(&b.id).await;
            // Re-read under the lock: the branch may have been recovered, protected or
            // given a new TTL while we waited.
            let Ok(Some(mut b)) = self.store().branch(&b.id) else {
                continue;
            };
            let Some(purge) = reap_due(&b, now, self.cfg.grace) else {
                continue;
            };
            let what = if purge {
                "purging trash past its grace period"
            } else {
                "TTL expired: moving to trash"
            };
            tracing::info!(branch = %b.name, "{what}");
            let reason = if purge {
                Reason::Grace
            } else {
                Reason::Expired
            };
            if let Err(e) = self
                .trash_or_purge(&project, &mut b, purge, Some(reason))
                .await
            {
                tracing::warn!(branch = %b.name, error = %e, "reaper could not remove branch");
            }
        }
    }

    /// The same gc as `pgfork gc`, for every registered work tree: branches whose git
    /// branch was deleted, merged or pruned go to the trash without anyone running a
    /// command. A work tree git cannot read (moved, deleted, owned by another user) is
    /// skipped, never taken as "every branch is gone".
    pub async fn reconcile_git(&self) {
        let projects = self.store().projects().unwrap_or_default();
        for project in projects {
            let repos = self.store().repos(&project.id).unwrap_or_default();
            let Some(repo) = tokio::task::spawn_blocking(move || {
                repos
                    .iter()
                    .find_map(|p| pgfork_git::Repo::discover(p).ok().filter(|r| &r.root == p))
            })
            .await
            .ok()
            .flatten() else {
                continue;
            };
            let branches = self.store().branches(&project.id, true).unwrap_or_default();
            let candidates: Vec<Candidate> =
                branches.iter().map(|b| self.gc_candidate(b)).collect();
            let plan = match plan_blocking(&repo, candidates).await {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!(project = %project.name, repo = %repo.root.display(), error = %e, "git gc skipped this repository: git could not answer");
                    continue;
                }
            };
            for action in plan {
                let _op = self.in_flight().await;
                let _branch = self.lock_branch(&action.id).await;
                // Decide again under the lock, from git as it is now: the user may
                // have recovered the branch or checked it out meanwhile.
                let Ok(Some(mut b)) = self.store().branch(&action.id) else {
                    continue;
                };
                let again = plan_blocking(&repo, vec![self.gc_candidate(&b)]).await;
                let still = again
                    .ok()
                    .and_then(|p| p.into_iter().next())
                    .is_some_and(|a| a.action == action.action && a.reason == action.reason);
                if !still {
                    continue;
                }
                tracing::info!(branch = %b.name, reason = %action.detail, "git gc: {}", action.action);
                if let Err(e) = self
                    .trash_or_purge(
                        &project,
                        &mut b,
                        action.action == "purge",
                        Some(action.reason),
                    )
                    .await
                {
                    tracing::warn!(branch = %b.name, error = %e, "git gc could not remove branch");
                }
            }
        }
    }

    /// What gc needs to know about `b` (shared by the daemon and `pgfork gc`).
    pub(crate) fn gc_candidate(&self, b: &Branch) -> Candidate {
        let spared = self
            .store()
            .spared(&b.id)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| Reason::parse(r))
            .collect();
        Candidate {
            id: b.id.clone(),
            name: b.name.clone(),
            live: b.state.is_live(),
            root: b.parent_id.is_none(),
            protected: b.protected,
            git_branch: b.git_branch.clone(),
            expires_at: b.expires_at.map(|t| t.timestamp()),
            purge_at: b
                .deleted_at
                .map(|d| pgfork_core::expires_at_from_ttl(d, self.cfg.grace).timestamp()),
            spared,
        }
    }

    /// The follow-HEAD endpoint of a work tree, made on first request: a stable port
    /// and password whose connections go to the database of the tree's current HEAD.
    pub async fn ensure_follow(
        &self,
        project_ref: &str,
        repo_path: &Path,
    ) -> Result<pgfork_store::Follow, ApiError> {
        let project = self.project(project_ref)?;
        let existing = self
            .store()
            .follow_for(&project.id, repo_path)
            .map_err(store_err)?;
        if let Some(f) = existing {
            self.expose(f.port).await;
            return Ok(f);
        }
        let reservation =
            self.reserve(&project.name, &format!("follow:{}", repo_path.display()))?;
        let f = pgfork_store::Follow {
            project_id: project.id.clone(),
            repo_path: repo_path.to_path_buf(),
            port: reservation.port,
            password: new_password(),
        };
        self.write_store(|s| s.insert_follow(&f))
            .map_err(store_err)?;
        drop(reservation);
        self.expose(f.port).await;
        Ok(f)
    }
}
