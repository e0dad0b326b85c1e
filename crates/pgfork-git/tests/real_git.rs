//! The git facts gc deletes on, against real repositories — with a decoy repository's
//! `GIT_DIR`, `GIT_WORK_TREE` and `GIT_INDEX_FILE` set in this process for every test,
//! as they are in a hook of a linked work tree. None of them may leak into an answer
//! about another repository.

use pgfork_git::gc::{self, Candidate, Reason};
use pgfork_git::repo::git_command;
use pgfork_git::Repo;
use std::path::{Path, PathBuf};
use std::sync::Once;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_command(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn commit(dir: &Path, file: &str) {
    std::fs::write(dir.join(file), file).expect("write");
    git(dir, &["add", file]);
    git(dir, &["commit", "-q", "-m", file]);
}

fn new_repo(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    git(&dir, &["init", "-q", "-b", "main"]);
    commit(&dir, "base");
    dir
}

static DECOY: Once = Once::new();

/// A decoy repository with a linked work tree, whose git variables this whole test
/// process carries from here on.
fn with_decoy_env() {
    DECOY.call_once(|| {
        // Kept for the whole process: the variables point into it.
        let tmp = tempfile::tempdir().expect("tempdir").keep();
        let tmp = tmp.as_path();
        let decoy = new_repo(tmp, "decoy");
        git(&decoy, &["branch", "decoy-only"]);
        let wt = tmp.join("decoy-wt");
        git(
            &decoy,
            &[
                "worktree",
                "add",
                "-q",
                &wt.display().to_string(),
                "decoy-only",
            ],
        );
        let gitdir = decoy.join(".git/worktrees/decoy-wt");
        assert!(gitdir.is_dir());
        // SAFETY: set once, before any test reads the environment concurrently.
        std::env::set_var("GIT_DIR", &gitdir);
        std::env::set_var("GIT_WORK_TREE", &wt);
        std::env::set_var("GIT_INDEX_FILE", gitdir.join("index"));
    });
}

fn tmp() -> tempfile::TempDir {
    with_decoy_env();
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn answers_are_about_the_named_repository_not_the_hook_environment() {
    let t = tmp();
    let repo_dir = new_repo(t.path(), "app");
    git(&repo_dir, &["branch", "feature"]);
    let repo = Repo::discover(&repo_dir).expect("discover");
    assert_eq!(repo.root, repo_dir.canonicalize().expect("canon"));
    let mut branches = repo.list_local_branches().expect("list");
    branches.sort();
    assert_eq!(branches, ["feature", "main"]);
    assert!(repo.branch_present("feature").expect("probe"));
    assert!(!repo.branch_present("decoy-only").expect("probe"));
    assert_eq!(repo.current_branch().as_deref(), Some("main"));
}

#[test]
fn a_fast_forward_from_main_is_not_merged_but_own_merged_work_is() {
    let t = tmp();
    let dir = new_repo(t.path(), "ff");
    let repo = Repo::discover(&dir).expect("discover");
    git(&dir, &["checkout", "-q", "-b", "feature"]);
    git(&dir, &["checkout", "-q", "main"]);
    commit(&dir, "on-main");
    git(&dir, &["checkout", "-q", "feature"]);
    git(&dir, &["merge", "-q", "main"]); // fast-forward
    assert!(!repo.is_merged("feature", "main").expect("is_merged"));
    // A merge commit from main is not the branch's own work either.
    git(&dir, &["checkout", "-q", "main"]);
    commit(&dir, "on-main-2");
    git(&dir, &["checkout", "-q", "feature"]);
    git(&dir, &["merge", "-q", "--no-ff", "--no-edit", "main"]);
    assert!(!repo.is_merged("feature", "main").expect("is_merged"));
    // Its own commit, not yet in main: not merged; merged into main: merged.
    commit(&dir, "own");
    assert!(!repo.is_merged("feature", "main").expect("is_merged"));
    git(&dir, &["checkout", "-q", "main"]);
    git(&dir, &["merge", "-q", "--no-edit", "feature"]);
    assert!(repo.is_merged("feature", "main").expect("is_merged"));
}

#[test]
fn an_amended_commit_counts_once_and_a_new_branch_is_not_merged() {
    let t = tmp();
    let dir = new_repo(t.path(), "amend");
    let repo = Repo::discover(&dir).expect("discover");
    git(&dir, &["checkout", "-q", "-b", "feature"]);
    assert!(!repo.is_merged("feature", "main").expect("fresh"));
    commit(&dir, "x");
    git(&dir, &["commit", "-q", "--amend", "-m", "x2"]);
    git(&dir, &["checkout", "-q", "main"]);
    git(&dir, &["merge", "-q", "feature"]);
    assert!(
        repo.is_merged("feature", "main").expect("is_merged"),
        "the amended-away commit is no longer part of the branch"
    );
}

#[test]
fn gc_plans_on_a_real_repository_and_fails_on_a_broken_one() {
    let t = tmp();
    let dir = new_repo(t.path(), "gc");
    git(&dir, &["branch", "alive"]);
    let repo = Repo::discover(&dir).expect("discover");
    let cand = |name: &str, git_branch: &str| Candidate {
        id: format!("br-{name}"),
        name: name.into(),
        live: true,
        git_branch: Some(git_branch.into()),
        ..Default::default()
    };
    let view = gc::RepoView::new(&repo).expect("view");
    let plan = gc::plan(&[cand("a", "alive"), cand("g", "gone")], &view, 0).expect("plan");
    assert_eq!(plan.len(), 1);
    assert_eq!(
        (plan[0].branch.as_str(), plan[0].reason),
        ("g", Reason::Gone)
    );
    // A repository git can no longer read is an error, never "every branch is gone".
    std::fs::write(dir.join(".git/HEAD"), "garbage\n").expect("corrupt");
    assert!(gc::RepoView::new(&repo).is_err());
    assert!(repo.branch_present("alive").is_err());
}
