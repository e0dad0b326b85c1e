//! The git facts pgfork needs, read through the `git` command.
//!
//! Every git call names its repository (`git -C <work tree>`) and runs with no `GIT_*`
//! variable of ours: a hook runs with git's own `GIT_DIR`/`GIT_INDEX_FILE` set, and a
//! daemon or helper started from that hook must never read *that* work tree when it
//! asks about another repository (DESIGN §8).
//!
//! Facts that gc deletes on are *fallible* ([`GitError::Failed`]): "absent" is only
//! ever an unambiguous answer from git, never a git error.

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
    #[error("`git {args}` failed in {dir} (exit {code}): {stderr}")]
    Failed {
        dir: String,
        args: String,
        code: i32,
        stderr: String,
    },
}

/// Removes every `GIT_*` variable of this process from `cmd`'s environment: what a
/// hook's git set (`GIT_DIR` of one work tree) must not reach another process.
pub fn scrub_git_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
}

/// `git -C dir`, with none of this process's `GIT_*` variables (see the module docs),
/// a fixed locale (we parse its messages) and no optional locks (we only read).
pub fn git_command(dir: &Path) -> Command {
    let mut c = Command::new("git");
    scrub_git_env(&mut c);
    c.arg("-C")
        .arg(dir)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    c
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

/// In `git worktree list --porcelain` output, the work tree with `branch` checked out.
pub fn worktree_of(porcelain: &str, branch: &str) -> Option<PathBuf> {
    let want = format!("branch refs/heads/{branch}");
    let mut current: Option<&str> = None;
    for line in porcelain.lines() {
        if let Some(path) = line.strip_prefix("worktree ") {
            current = Some(path);
        } else if line == want {
            return current.map(PathBuf::from);
        }
    }
    None
}

/// One work tree of a repository.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The work tree's top level.
    pub root: PathBuf,
}

impl Repo {
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let mut c = git_command(dir);
        c.args(["rev-parse", "--show-toplevel"]);
        let out = output_retrying(&mut c).map_err(|e| GitError::NoGit(e.to_string()))?;
        if !out.status.success() {
            return Err(GitError::NotARepo(dir.display().to_string()));
        }
        Ok(Repo {
            root: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = git_command(&self.root);
        c.args(args).stderr(Stdio::null());
        c
    }

    /// Runs git and returns its exit code and stdout; only a failure to run git at all
    /// is an error. For probes whose exit code carries the answer.
    fn run(&self, args: &[&str]) -> Result<(i32, String, String), GitError> {
        let mut c = git_command(&self.root);
        c.args(args);
        let out = output_retrying(&mut c).map_err(|e| GitError::NoGit(e.to_string()))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }

    fn failed(&self, args: &[&str], code: i32, stderr: String) -> GitError {
        GitError::Failed {
            dir: self.root.display().to_string(),
            args: args.join(" "),
            code,
            stderr,
        }
    }

    /// stdout of a git command that must succeed.
    pub fn must(&self, args: &[&str]) -> Result<String, GitError> {
        match self.run(args)? {
            (0, out, _) => Ok(out),
            (code, _, err) => Err(self.failed(args, code, err)),
        }
    }

    /// A yes/no probe: exit 0 is yes, exit 1 is no, anything else is an error (a lock,
    /// a corrupt ref, a vanished repository) and never taken for "no".
    fn probe(&self, args: &[&str]) -> Result<bool, GitError> {
        match self.run(args)? {
            (0, _, _) => Ok(true),
            (1, _, _) => Ok(false),
            (code, _, err) => Err(self.failed(args, code, err)),
        }
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
        // One git process for the three paths: this runs in every checkout's hook.
        let paths = self.git(&[
            "rev-parse",
            "--git-path",
            "rebase-merge",
            "--git-path",
            "rebase-apply",
            "--git-path",
            "BISECT_LOG",
        ])?;
        let exists: Vec<bool> = paths.lines().map(|p| self.abs(p).exists()).collect();
        match exists.as_slice() {
            [merge, apply, _] if *merge || *apply => Some("rebase"),
            [_, _, true] => Some("bisect"),
            _ => None,
        }
    }

    /// Whether `refs/heads/<name>` exists. For decisions that only add things (which
    /// branch a new one forks from); deletions use [`Repo::branch_present`].
    pub fn branch_exists(&self, name: &str) -> bool {
        self.branch_present(name).unwrap_or(false)
    }

    /// Whether `refs/heads/<name>` exists: `Ok(false)` only when git says it does not.
    pub fn branch_present(&self, name: &str) -> Result<bool, GitError> {
        self.probe(&[
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{name}"),
        ])
    }

    /// Every local branch, or an error: never a partial or empty list because git failed.
    pub fn list_local_branches(&self) -> Result<Vec<String>, GitError> {
        Ok(self
            .must(&["for-each-ref", "--format=%(refname:short)", "refs/heads"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    pub fn local_branches(&self) -> Vec<String> {
        self.list_local_branches().unwrap_or_default()
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
    pub fn worktree_branches(&self) -> Result<Vec<String>, GitError> {
        Ok(self
            .must(&["worktree", "list", "--porcelain"])?
            .lines()
            .filter_map(|l| l.strip_prefix("branch refs/heads/"))
            .map(str::to_string)
            .collect())
    }

    /// The work tree where `branch` is checked out, if any.
    pub fn worktree_of(&self, branch: &str) -> Result<Option<PathBuf>, GitError> {
        Ok(worktree_of(
            &self.must(&["worktree", "list", "--porcelain"])?,
            branch,
        ))
    }

    /// Local branches whose upstream is gone (deleted on the remote, then pruned).
    pub fn upstream_gone(&self) -> Result<Vec<String>, GitError> {
        Ok(self
            .must(&[
                "for-each-ref",
                "--format=%(refname:short)\t%(upstream:track)",
                "refs/heads",
            ])?
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, t)| t.contains("gone"))
            .map(|(b, _)| b.to_string())
            .collect())
    }

    /// When `refs/heads/<branch>` was created, from its oldest reflog entry (seconds
    /// since the epoch); `None` without a reflog.
    pub fn branch_created_at(&self, branch: &str) -> Option<i64> {
        let out = self.git(&[
            "reflog",
            "show",
            "--date=unix",
            "--format=%gd",
            &format!("refs/heads/{branch}"),
            "--",
        ])?;
        infer::parse_reflog_time(out.lines().last()?)
    }

    /// Whether `branch` is merged into `into`: it has commits made on it (see
    /// [`infer::own_commit`]: not fast-forwards or merges from elsewhere) that are still
    /// part of it, and every one of them is reachable from `into`. A branch that only
    /// ever fast-forwarded to the default branch is not merged, it is up to date.
    pub fn is_merged(&self, branch: &str, into: &str) -> Result<bool, GitError> {
        if branch == into {
            return Ok(false);
        }
        let reference = format!("refs/heads/{branch}");
        let Some(tip) = self.tip(&reference) else {
            return Ok(false);
        };
        let log = self.must(&["reflog", "show", "--format=%H %gs", &reference, "--"])?;
        let own: Vec<&str> = log
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(sha, subject)| infer::own_commit(sha, subject))
            .map(|(sha, _)| sha)
            .take(64)
            .collect();
        let target = format!("refs/heads/{into}");
        let mut any = false;
        for sha in own {
            // Amended or rebased-away commits are no longer part of the branch.
            if !self.probe(&["merge-base", "--is-ancestor", sha, &tip])? {
                continue;
            }
            any = true;
            if !self.probe(&["merge-base", "--is-ancestor", sha, &target])? {
                return Ok(false);
            }
        }
        Ok(any)
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

#[cfg(test)]
mod worktree_tests {
    use super::*;

    #[test]
    fn the_work_tree_of_a_branch_is_found_in_porcelain_output() {
        let porcelain = "worktree /src/app\nHEAD 1111\nbranch refs/heads/main\n\nworktree /src/app-login\nHEAD 2222\nbranch refs/heads/feature/login\n\nworktree /src/app-detached\nHEAD 3333\ndetached\n";
        assert_eq!(
            worktree_of(porcelain, "feature/login"),
            Some(PathBuf::from("/src/app-login"))
        );
        assert_eq!(
            worktree_of(porcelain, "main"),
            Some(PathBuf::from("/src/app"))
        );
        assert_eq!(worktree_of(porcelain, "feature"), None);
    }
}
