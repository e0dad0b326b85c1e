//! The git facts pgfork needs, read through the `git` command.

use crate::infer;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "{0} is not inside a git repository: run this in your repository (or `git init` first)"
    )]
    NotARepo(String),
    #[error("could not run git: {0}: install git")]
    NoGit(String),
}

/// Runs git, retrying briefly when it trips over a work tree another git process is
/// still creating ("failed to read .git/worktrees/..."): parallel `git worktree add`
/// runs every hook while its siblings are half-made.
fn output_retrying(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut attempt = 0;
    loop {
        let out = cmd.output()?;
        let transient =
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("worktrees/");
        if !transient || attempt >= 20 {
            return Ok(out);
        }
        attempt += 1;
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// One work tree of a repository.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The work tree's top level.
    pub root: PathBuf,
}

impl Repo {
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let mut c = Command::new("git");
        c.args(["rev-parse", "--show-toplevel"])
            .current_dir(dir)
            .stdin(Stdio::null());
        let out = output_retrying(&mut c).map_err(|e| GitError::NoGit(e.to_string()))?;
        if !out.status.success() {
            return Err(GitError::NotARepo(dir.display().to_string()));
        }
        Ok(Repo {
            root: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// stdout of a successful git command, trimmed; `None` on failure.
    pub fn git(&self, args: &[&str]) -> Option<String> {
        let out = output_retrying(&mut self.cmd(args)).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    pub fn ok(&self, args: &[&str]) -> bool {
        self.cmd(args)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn abs(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.root.join(p)
        }
    }

    /// Where git runs hooks from (`core.hooksPath` honoured, shared by worktrees).
    pub fn hooks_dir(&self) -> Option<PathBuf> {
        self.git(&["rev-parse", "--git-path", "hooks"])
            .map(|p| self.abs(&p))
    }

    /// This work tree's private git directory.
    pub fn git_dir(&self) -> Option<PathBuf> {
        self.git(&["rev-parse", "--absolute-git-dir"])
            .map(PathBuf::from)
    }

    /// The checked-out branch; `None` when detached.
    pub fn current_branch(&self) -> Option<String> {
        self.git(&["symbolic-ref", "--quiet", "--short", "HEAD"])
    }

    /// A rebase or bisect in progress: checkouts during them are not the user's.
    pub fn special_state(&self) -> Option<&'static str> {
        let exists = |name: &str| {
            self.git(&["rev-parse", "--git-path", name])
                .map(|p| self.abs(&p).exists())
                .unwrap_or(false)
        };
        if exists("rebase-merge") || exists("rebase-apply") {
            Some("rebase")
        } else if exists("BISECT_LOG") {
            Some("bisect")
        } else {
            None
        }
    }

    pub fn branch_exists(&self, name: &str) -> bool {
        self.ok(&[
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{name}"),
        ])
    }

    pub fn local_branches(&self) -> Vec<String> {
        self.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads"])
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn reflog_subjects(&self, reference: &str) -> Vec<String> {
        self.git(&["reflog", "show", "--format=%gs", reference, "--"])
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The branch HEAD moved away from in its newest checkout entry.
    pub fn previous_branch(&self) -> Option<String> {
        self.git(&["reflog", "show", "-1", "--format=%gs", "HEAD", "--"])
            .and_then(|s| infer::parse_checkout_reflog(&s))
            .map(|(from, _)| from)
    }

    /// "Created from X" of a branch's oldest reflog entry.
    pub fn created_from(&self, branch: &str) -> Option<String> {
        self.reflog_subjects(&format!("refs/heads/{branch}"))
            .last()
            .and_then(|s| infer::parse_created_reflog(s))
    }

    pub fn tip(&self, rev: &str) -> Option<String> {
        self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
    }

    pub fn branches_at(&self, sha: &str) -> Vec<String> {
        self.git(&[
            "for-each-ref",
            "--points-at",
            sha,
            "--format=%(refname:short)",
            "refs/heads",
        ])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
    }

    /// `origin/HEAD`'s branch, else `init.defaultBranch`, else main/master if present.
    pub fn default_branch(&self) -> Option<String> {
        if let Some(r) = self.git(&[
            "symbolic-ref",
            "--quiet",
            "--short",
            "refs/remotes/origin/HEAD",
        ]) {
            return r.strip_prefix("origin/").map(str::to_string);
        }
        if let Some(d) = self
            .git(&["config", "init.defaultBranch"])
            .filter(|d| self.branch_exists(d))
        {
            return Some(d);
        }
        ["main", "master", "trunk"]
            .iter()
            .find(|b| self.branch_exists(b))
            .map(|b| b.to_string())
    }

    /// Branches checked out in any work tree of this repository.
    pub fn worktree_branches(&self) -> Vec<String> {
        self.git(&["worktree", "list", "--porcelain"])
            .map(|s| {
                s.lines()
                    .filter_map(|l| l.strip_prefix("branch refs/heads/"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Local branches whose upstream is gone (deleted on the remote, then pruned).
    pub fn upstream_gone(&self) -> Vec<String> {
        self.git(&[
            "for-each-ref",
            "--format=%(refname:short)\t%(upstream:track)",
            "refs/heads",
        ])
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_once('\t'))
                .filter(|(_, t)| t.contains("gone"))
                .map(|(b, _)| b.to_string())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Whether `branch` has work of its own (it moved since it was created) that is now
    /// contained in `into`. A branch that never moved is not "merged": it is new.
    pub fn is_merged(&self, branch: &str, into: &str) -> bool {
        if branch == into {
            return false;
        }
        let Some(tip) = self.tip(&format!("refs/heads/{branch}")) else {
            return false;
        };
        let created_at = self
            .git(&[
                "reflog",
                "show",
                "--format=%H",
                &format!("refs/heads/{branch}"),
                "--",
            ])
            .and_then(|s| s.lines().last().map(str::to_string));
        if created_at.as_deref() == Some(tip.as_str()) || created_at.is_none() {
            return false;
        }
        self.ok(&[
            "merge-base",
            "--is-ancestor",
            &tip,
            &format!("refs/heads/{into}"),
        ])
    }

    /// The new name of a branch renamed from `old`, from the rename's reflog entry.
    pub fn renamed_to(&self, old: &str) -> Option<String> {
        for b in self.local_branches() {
            let newest = self.git(&[
                "reflog",
                "show",
                "-1",
                "--format=%gs",
                &format!("refs/heads/{b}"),
                "--",
            ]);
            if let Some((from, to)) = newest.as_deref().and_then(infer::parse_rename_reflog) {
                if from == old && to == b {
                    return Some(b);
                }
            }
        }
        None
    }

    pub fn is_tracked(&self, path: &Path) -> bool {
        let p = path.display().to_string();
        self.ok(&["ls-files", "--error-unmatch", "--", &p])
    }

    pub fn is_ignored(&self, path: &Path) -> bool {
        let p = path.display().to_string();
        self.ok(&["check-ignore", "-q", "--", &p])
    }

    /// Facts for parent inference of `branch`.
    pub fn facts(&self, branch: &str) -> infer::Facts {
        let tip = self.tip(&format!("refs/heads/{branch}"));
        infer::Facts {
            policy: None,
            created_from: self.created_from(branch),
            previous_branch: self.previous_branch(),
            same_tip: tip.map(|t| self.branches_at(&t)).unwrap_or_default(),
            default_branch: self.default_branch(),
        }
    }
}
