//! What garbage collection removes, decided in one pure function so the CLI (`pgfork
//! gc`) and the daemon's periodic reconcile agree exactly.

/// Seconds since the Unix epoch: this crate reads no clock, callers pass `now`.
pub type Timestamp = i64;

/// What gc needs to know about one database branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub live: bool,
    pub root: bool,
    pub protected: bool,
    pub git_branch: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub purge_at: Option<Timestamp>,
}

/// What git says, asked lazily: only branches that could be collected are looked up.
pub trait GitView {
    fn checked_out(&self) -> &[String];
    fn exists(&self, branch: &str) -> bool;
    fn upstream_gone(&self, branch: &str) -> bool;
    fn merged_into_default(&self, branch: &str) -> Option<String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub branch: String,
    pub id: String,
    /// `delete` (to the trash) or `purge` (for good).
    pub action: &'static str,
    pub reason: String,
}

/// Branches whose git branch is gone, merged or whose upstream was pruned, expired
/// TTLs, and trash past its grace period. Never the root, a protected branch, or a
/// branch checked out in any work tree.
pub fn plan(branches: &[Candidate], git: &dyn GitView, now: Timestamp) -> Vec<Action> {
    let mut out = Vec::new();
    for b in branches {
        let act = |action: &'static str, reason: String| Action {
            branch: b.name.clone(),
            id: b.id.clone(),
            action,
            reason,
        };
        if !b.live {
            if b.purge_at.is_some_and(|t| t <= now) {
                out.push(act("purge", "in the trash past its grace period".into()));
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
                out.push(act("delete", format!("git branch {g} no longer exists")));
                continue;
            }
            if git.upstream_gone(g) {
                out.push(act("delete", format!("the upstream of {g} was deleted")));
                continue;
            }
            if let Some(d) = git.merged_into_default(g) {
                out.push(act("delete", format!("{g} is merged into {d}")));
                continue;
            }
        }
        if b.expires_at.is_some_and(|t| t <= now) {
            out.push(act("delete", "its TTL expired".into()));
        }
    }
    out
}

/// [`GitView`] of a real repository.
pub struct RepoView<'r> {
    repo: &'r crate::Repo,
    checked_out: Vec<String>,
    gone: Vec<String>,
    default: Option<String>,
}

impl<'r> RepoView<'r> {
    pub fn new(repo: &'r crate::Repo) -> Self {
        RepoView {
            repo,
            checked_out: repo.worktree_branches(),
            gone: repo.upstream_gone(),
            default: repo.default_branch(),
        }
    }
}

impl GitView for RepoView<'_> {
    fn checked_out(&self) -> &[String] {
        &self.checked_out
    }
    fn exists(&self, branch: &str) -> bool {
        self.repo.branch_exists(branch)
    }
    fn upstream_gone(&self, branch: &str) -> bool {
        self.gone.iter().any(|g| g == branch)
    }
    fn merged_into_default(&self, branch: &str) -> Option<String> {
        let d = self.default.as_deref()?;
        self.repo.is_merged(branch, d).then(|| d.to_string())
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
        fn merged_into_default(&self, b: &str) -> Option<String> {
            self.merged.contains(&b).then(|| "main".to_string())
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
        let plan = plan(&branches, &git, 100);
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
}
