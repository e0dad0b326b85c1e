//! Which git branch a new git branch's database forks from.
//!
//! Pure: the CLI gathers the [`Facts`] from git and passes them in, so every rule is
//! unit-tested here without a repository.

/// What git knows about how `new` came to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `.pgfork.toml` `branches.parent`, unless it is `auto`: a database branch name.
    pub policy: Option<String>,
    /// From the new branch's oldest reflog entry, "branch: Created from X".
    pub created_from: Option<String>,
    /// From HEAD's newest reflog entry, "checkout: moving from X to new".
    pub previous_branch: Option<String>,
    /// Local branches whose tip is the new branch's tip (its start point when it has no
    /// commits of its own).
    pub same_tip: Vec<String>,
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// The team's policy names a database branch.
    Policy(String),
    /// The database paired with this git branch.
    GitBranch(String),
    /// The project's root branch.
    Root,
}

fn is_remote_ref(s: &str) -> bool {
    s.starts_with("refs/remotes/")
        || s.contains('/')
            && s.split('/')
                .next()
                .is_some_and(|r| r == "origin" || r == "upstream")
}

/// Decides the parent of `new`. `has_db(git)` says whether a git branch has a database.
pub fn parent(new: &str, f: &Facts, has_db: impl Fn(&str) -> bool) -> Parent {
    if let Some(p) = &f.policy {
        return Parent::Policy(p.clone());
    }
    let usable = |b: &str| b != new && b != "HEAD" && has_db(b);
    let created = f
        .created_from
        .as_deref()
        .map(|c| c.trim_start_matches("refs/heads/"));
    if let Some(c) = created {
        if !is_remote_ref(c) && usable(c) {
            return Parent::GitBranch(c.to_string());
        }
    }
    // "Created from HEAD" (checkout -b, switch -c) means "from where HEAD was": the
    // previous branch. A branch created from a remote ref did not come from there.
    let from_remote = created.is_some_and(is_remote_ref);
    if !from_remote {
        if let Some(p) = f.previous_branch.as_deref() {
            if usable(p) {
                return Parent::GitBranch(p.to_string());
            }
        }
    }
    let mut candidates: Vec<&str> = f
        .same_tip
        .iter()
        .map(String::as_str)
        .filter(|b| usable(b))
        .collect();
    candidates.sort_by_key(|b| {
        (
            Some(*b) != f.previous_branch.as_deref(),
            Some(*b) != f.default_branch.as_deref(),
            b.to_string(),
        )
    });
    match candidates.first() {
        Some(b) => Parent::GitBranch(b.to_string()),
        None => Parent::Root,
    }
}

/// "checkout: moving from X to Y" → (X, Y).
pub fn parse_checkout_reflog(subject: &str) -> Option<(String, String)> {
    let rest = subject.strip_prefix("checkout: moving from ")?;
    let (from, to) = rest.split_once(" to ")?;
    Some((from.to_string(), to.to_string()))
}

/// "branch: Created from X" → X.
pub fn parse_created_reflog(subject: &str) -> Option<String> {
    subject
        .strip_prefix("branch: Created from ")
        .map(|s| s.trim().to_string())
}

/// "Branch: renamed refs/heads/a to refs/heads/b" → (a, b).
pub fn parse_rename_reflog(subject: &str) -> Option<(String, String)> {
    let rest = subject.strip_prefix("Branch: renamed ")?;
    let (from, to) = rest.split_once(" to ")?;
    Some((
        from.trim_start_matches("refs/heads/").to_string(),
        to.trim_start_matches("refs/heads/").to_string(),
    ))
}

/// Whether a branch reflog entry (`sha`, subject) recorded a commit made *on* the branch:
/// a commit, an amend, a cherry-pick or revert, or the end of a rebase that replayed
/// something. Fast-forwards, merges (of the default branch or anything else), resets and
/// creation are not the branch's own work, so a branch that only ever took in the
/// default branch never counts as "merged" into it.
pub fn own_commit(sha: &str, subject: &str) -> bool {
    let action = subject.split(':').next().unwrap_or("");
    if let Some(rest) = subject
        .split_once("(finish): ")
        .map(|(_, r)| r)
        .filter(|_| action.contains("rebase"))
    {
        // "rebase (finish): refs/heads/f onto <sha>": nothing was replayed when the
        // branch simply moved onto its upstream.
        let onto = rest.rsplit_once(" onto ").map(|(_, o)| o.trim());
        return onto.is_some_and(|o| o != sha);
    }
    matches!(
        action,
        "commit" | "commit (amend)" | "commit (initial)" | "cherry-pick" | "revert"
    )
}

/// `refs/heads/x@{1795571925}` (reflog `%gd` with `--date=unix`) → 1795571925.
pub fn parse_reflog_time(selector: &str) -> Option<i64> {
    let inner = selector.rsplit_once("@{")?.1.strip_suffix('}')?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn policy_wins() {
        let f = Facts {
            policy: Some("main".into()),
            previous_branch: Some("feature/a".into()),
            ..Default::default()
        };
        assert_eq!(parent("x", &f, all), Parent::Policy("main".into()));
    }

    #[test]
    fn checkout_b_forks_from_the_previous_branch() {
        let f = Facts {
            created_from: Some("HEAD".into()),
            previous_branch: Some("feature/a".into()),
            ..Default::default()
        };
        assert_eq!(
            parent("feature/b", &f, all),
            Parent::GitBranch("feature/a".into())
        );
    }

    #[test]
    fn an_explicit_start_point_beats_the_previous_branch() {
        let f = Facts {
            created_from: Some("feature/a".into()),
            previous_branch: Some("main".into()),
            ..Default::default()
        };
        assert_eq!(
            parent("feature/b", &f, all),
            Parent::GitBranch("feature/a".into())
        );
    }

    #[test]
    fn branches_without_databases_are_skipped_down_to_the_root() {
        let f = Facts {
            created_from: Some("HEAD".into()),
            previous_branch: Some("nodb".into()),
            ..Default::default()
        };
        assert_eq!(parent("x", &f, |b| b != "nodb"), Parent::Root);
    }

    #[test]
    fn same_tip_prefers_previous_then_default() {
        let f = Facts {
            created_from: Some("origin/x".into()),
            previous_branch: Some("other".into()),
            same_tip: vec!["zeta".into(), "main".into()],
            default_branch: Some("main".into()),
            ..Default::default()
        };
        assert_eq!(parent("x", &f, all), Parent::GitBranch("main".into()));
    }

    #[test]
    fn reflog_subjects_parse() {
        assert_eq!(
            parse_checkout_reflog("checkout: moving from main to feature/x"),
            Some(("main".into(), "feature/x".into()))
        );
        assert_eq!(
            parse_created_reflog("branch: Created from HEAD").as_deref(),
            Some("HEAD")
        );
        assert_eq!(
            parse_rename_reflog("Branch: renamed refs/heads/a to refs/heads/b/c"),
            Some(("a".into(), "b/c".into()))
        );
        assert_eq!(parse_checkout_reflog("commit: x"), None);
    }

    #[test]
    fn own_commits_are_made_on_the_branch_not_taken_in() {
        let sha = "a4450ec742b0478733bc896badd92acbcbcf80d0";
        assert!(own_commit(sha, "commit: x"));
        assert!(own_commit(sha, "commit (amend): x2"));
        assert!(own_commit(sha, "cherry-pick: fix"));
        assert!(!own_commit(sha, "merge main: Fast-forward"));
        assert!(!own_commit(
            sha,
            "merge main: Merge made by the 'ort' strategy."
        ));
        assert!(!own_commit(sha, "commit (merge): Merge branch 'main'"));
        assert!(!own_commit(sha, "pull: Fast-forward"));
        assert!(!own_commit(sha, "branch: Created from HEAD"));
        assert!(!own_commit(sha, "reset: moving to HEAD~1"));
        assert!(own_commit(
            sha,
            "rebase (finish): refs/heads/f onto 3ca36a01d5714c626db485e474b411f1fc753d79"
        ));
        assert!(
            !own_commit(sha, &format!("rebase (finish): refs/heads/f onto {sha}")),
            "a rebase that replayed nothing only moved the branch"
        );
        assert!(own_commit(
            sha,
            "rebase -i (finish): refs/heads/f onto 3ca36a01d5714c626db485e474b411f1fc753d79"
        ));
    }

    #[test]
    fn reflog_times_parse() {
        assert_eq!(
            parse_reflog_time("refs/heads/g@{1795571925}"),
            Some(1795571925)
        );
        assert_eq!(parse_reflog_time("g@{0}x"), None);
    }
}
