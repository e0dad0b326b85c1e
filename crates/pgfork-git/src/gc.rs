//! What garbage collection removes, decided in one pure function so the CLI (`pgfork
//! gc`) and the daemon's periodic reconcile agree exactly.
//!
//! gc deletes only on unambiguous evidence (DESIGN §8): git's answers are gathered up
//! front and any git error abandons the whole plan for that repository; "merged" means
//! the branch's own commits are in the default branch ([`crate::Repo::is_merged`]); and
//! a branch the user recovered after gc took it is never taken again for the same
//! reason ([`Candidate::spared`]).

use crate::GitError;

/// Seconds since the Unix epoch: this crate reads no clock, callers pass `now`.
pub type Timestamp = i64;

/// Why gc removes a branch; stored with a trashed branch so that recovering it spares
/// it from the same reason afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Its git branch no longer exists.
    Gone,
    /// Its git branch's upstream was deleted and pruned.
    UpstreamGone,
    /// Its git branch's own commits are all in the default branch.
    Merged,
    /// Its TTL passed.
    Expired,
    /// In the trash past its grace period (purge).
    Grace,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Gone => "gone",
            Reason::UpstreamGone => "upstream-gone",
            Reason::Merged => "merged",
            Reason::Expired => "expired",
            Reason::Grace => "grace",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::Gone,
            Reason::UpstreamGone,
            Reason::Merged,
            Reason::Expired,
            Reason::Grace,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What gc needs to know about one database branch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub live: bool,
    pub root: bool,
    pub protected: bool,
    pub git_branch: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub purge_at: Option<Timestamp>,
    /// Reasons gc may no longer use for this branch: it took the branch for them once
    /// and the user recovered it.
    pub spared: Vec<Reason>,
}

/// What git says. Facts gc deletes on are gathered completely or not at all.
pub trait GitView {
    fn checked_out(&self) -> &[String];
    fn exists(&self, branch: &str) -> bool;
    fn upstream_gone(&self, branch: &str) -> bool;
    /// The default branch `branch` is merged into, asked lazily (it costs git calls).
    fn merged_into_default(&self, branch: &str) -> Result<Option<String>, GitError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub branch: String,
    pub id: String,
    /// `delete` (to the trash) or `purge` (for good).
    pub action: &'static str,
    pub reason: Reason,
    /// The reason in words, for the user.
    pub detail: String,
}

/// Branches whose git branch is gone, merged or whose upstream was pruned, expired
/// TTLs, and trash past its grace period. Never the root, a protected branch, or a
/// branch checked out in any work tree. A git error fails the whole plan.
pub fn plan(
    branches: &[Candidate],
    git: &dyn GitView,
    now: Timestamp,
) -> Result<Vec<Action>, GitError> {
    let mut out = Vec::new();
    for b in branches {
        let act = |action: &'static str, reason: Reason, detail: String| Action {
            branch: b.name.clone(),
            id: b.id.clone(),
            action,
            reason,
            detail,
        };
        let allowed = |r: Reason| !b.spared.contains(&r);
        if !b.live {
            if b.purge_at.is_some_and(|t| t <= now) {
                out.push(act(
                    "purge",
                    Reason::Grace,
                    "in the trash past its grace period".into(),
                ));
            }
            continue;
        }
        if b.root || b.protected {
            continue;
        }
        if let Some(g) = &b.git_branch {
            if git.checked_out().iter().any(|c| c == g) {
                continue;
            }
            if !git.exists(g) {
                if allowed(Reason::Gone) {
                    out.push(act(
                        "delete",
                        Reason::Gone,
                        format!("git branch {g} no longer exists"),
                    ));
                    continue;
                }
            } else if git.upstream_gone(g) && allowed(Reason::UpstreamGone) {
                out.push(act(
                    "delete",
                    Reason::UpstreamGone,
                    format!("the upstream of {g} was deleted"),
                ));
                continue;
            } else if allowed(Reason::Merged) {
                if let Some(d) = git.merged_into_default(g)? {
                    out.push(act(
                        "delete",
                        Reason::Merged,
                        format!("{g} is merged into {d}"),
                    ));
                    continue;
                }
            }
        }
        if b.expires_at.is_some_and(|t| t <= now) && allowed(Reason::Expired) {
            out.push(act("delete", Reason::Expired, "its TTL expired".into()));
        }
    }
    Ok(out)
}

/// [`GitView`] of a real repository.
pub struct RepoView<'r> {
    repo: &'r crate::Repo,
    local: Vec<String>,
    checked_out: Vec<String>,
    gone: Vec<String>,
    default: Option<String>,
}

impl<'r> RepoView<'r> {
    /// Reads every fact gc needs up front; fails if git cannot answer any of them, or
    /// if the repository has no branch at all (an empty answer is not evidence).
    pub fn new(repo: &'r crate::Repo) -> Result<Self, GitError> {
        let local = repo.list_local_branches()?;
        if local.is_empty() {
            return Err(GitError::Failed {
                dir: repo.root.display().to_string(),
                args: "for-each-ref refs/heads".into(),
                code: 0,
                stderr: "the repository lists no branch at all".into(),
            });
        }
        Ok(RepoView {
            repo,
            local,
            checked_out: repo.worktree_branches()?,
            gone: repo.upstream_gone()?,
            default: repo.default_branch(),
        })
    }
}

impl GitView for RepoView<'_> {
    fn checked_out(&self) -> &[String] {
        &self.checked_out
    }
    fn exists(&self, branch: &str) -> bool {
        self.local.iter().any(|b| b == branch)
    }
    fn upstream_gone(&self, branch: &str) -> bool {
        self.gone.iter().any(|g| g == branch)
    }
    fn merged_into_default(&self, branch: &str) -> Result<Option<String>, GitError> {
        let Some(d) = self.default.as_deref() else {
            return Ok(None);
        };
        Ok(self.repo.is_merged(branch, d)?.then(|| d.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        checked_out: Vec<String>,
        existing: Vec<&'static str>,
        gone: Vec<&'static str>,
        merged: Vec<&'static str>,
    }

    impl GitView for Fake {
        fn checked_out(&self) -> &[String] {
            &self.checked_out
        }
        fn exists(&self, b: &str) -> bool {
            self.existing.contains(&b)
        }
        fn upstream_gone(&self, b: &str) -> bool {
            self.gone.contains(&b)
        }
        fn merged_into_default(&self, b: &str) -> Result<Option<String>, GitError> {
            if b == "broken" {
                return Err(GitError::NoGit("simulated".into()));
            }
            Ok(self.merged.contains(&b).then(|| "main".to_string()))
        }
    }

    fn c(name: &str, git: Option<&str>) -> Candidate {
        Candidate {
            id: format!("br-{name}"),
            name: name.into(),
            live: true,
            root: false,
            protected: false,
            git_branch: git.map(str::to_string),
            expires_at: None,
            purge_at: None,
            spared: Vec::new(),
        }
    }

    #[test]
    fn collects_what_git_and_time_say_and_spares_the_rest() {
        let git = Fake {
            checked_out: vec!["main".into(), "wip".into()],
            existing: vec!["main", "wip", "pushed", "merged", "alive"],
            gone: vec!["pushed"],
            merged: vec!["merged", "wip"],
        };
        let mut root = c("main", Some("main"));
        root.root = true;
        let mut protected = c("kept", Some("deleted-kept"));
        protected.protected = true;
        let mut expired = c("ci", None);
        expired.expires_at = Some(10);
        let mut future = c("ci2", None);
        future.expires_at = Some(1000);
        let mut trash = c("old", None);
        trash.live = false;
        trash.purge_at = Some(5);
        let mut fresh_trash = c("recent", None);
        fresh_trash.live = false;
        fresh_trash.purge_at = Some(500);
        let branches = vec![
            root,
            protected,
            c("wip", Some("wip")),
            c("gone", Some("deleted-branch")),
            c("pushed", Some("pushed")),
            c("merged", Some("merged")),
            c("alive", Some("alive")),
            expired,
            future,
            trash,
            fresh_trash,
        ];
        let plan = plan(&branches, &git, 100).expect("no git error");
        let got: Vec<(&str, &str)> = plan.iter().map(|a| (a.branch.as_str(), a.action)).collect();
        assert_eq!(
            got,
            vec![
                ("gone", "delete"),
                ("pushed", "delete"),
                ("merged", "delete"),
                ("ci", "delete"),
                ("old", "purge")
            ]
        );
    }

    fn fake() -> Fake {
        Fake {
            checked_out: vec!["main".into()],
            existing: vec!["main", "merged", "broken"],
            gone: vec![],
            merged: vec!["merged"],
        }
    }

    #[test]
    fn a_recovered_branch_is_not_taken_again_for_the_same_reason() {
        let mut merged = c("merged", Some("merged"));
        merged.spared = vec![Reason::Merged];
        let mut gone = c("gone", Some("deleted"));
        gone.spared = vec![Reason::Gone];
        gone.expires_at = Some(10);
        let got = plan(&[merged, gone], &fake(), 100).expect("plan");
        // The gone one is still collectable for another reason: its TTL.
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].branch.as_str(), got[0].reason),
            ("gone", Reason::Expired)
        );
    }

    #[test]
    fn a_git_error_abandons_the_whole_plan() {
        let branches = [c("gone", Some("deleted")), c("broken", Some("broken"))];
        assert!(plan(&branches, &fake(), 100).is_err());
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            Reason::Gone,
            Reason::UpstreamGone,
            Reason::Merged,
            Reason::Expired,
            Reason::Grace,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
    }
}
