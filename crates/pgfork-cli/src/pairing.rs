//! The git lifecycle: what the hooks do, and `gc`.
//!
//! Hooks must never break git: every entry point here returns normally, prints at most
//! one line per problem (saying how to fix it), and does slow or uncertain work — like
//! deciding whether a deleted ref was really a rename — in a detached process after
//! git has finished.

use crate::connect;
use crate::project::{self, RepoConfig};
use anyhow::{bail, Context, Result};
use pgfork_api as api;
use pgfork_api::Client;
use pgfork_git::infer::{self, Parent};
use pgfork_git::{env_file, names, Repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository, its policy and its project, for hooks and gc.
pub struct Ctx {
    pub repo: Repo,
    pub cfg: RepoConfig,
    pub client: Client,
    pub project: String,
}

/// Set by `pgfork daemon stop`: background automation (hooks) does not restart a
/// daemon the user stopped on purpose; any explicit command does.
pub fn stopped_marker() -> PathBuf {
    connect::home().join("daemon.stopped")
}

impl Ctx {
    /// For hooks: `None` (silently) outside a pgfork repository.
    /// For a line in git's terminal: this repository's project, and a client that asks
    /// a daemon already running, briefly (never starts one: git must stay fast).
    pub fn to_announce() -> Option<Ctx> {
        let repo = Repo::discover(&std::env::current_dir().ok()?).ok()?;
        let cfg = project::read_config(&repo.root.join(project::CONFIG_FILE)).ok()?;
        let client = connect::client()
            .ok()?
            .with_timeout(std::time::Duration::from_millis(500));
        let project = cfg.project.name.clone();
        Some(Ctx {
            repo,
            cfg,
            client,
            project,
        })
    }

    pub async fn for_hook() -> Result<Option<Ctx>> {
        let Ok(cwd) = std::env::current_dir() else {
            return Ok(None);
        };
        let Ok(repo) = Repo::discover(&cwd) else {
            return Ok(None);
        };
        let path = repo.root.join(project::CONFIG_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let cfg = project::read_config(&path)?;
        let local = connect::client()?;
        let client = if !local.is_remote() && stopped_marker().exists() {
            let c = local;
            if !c.ping().await {
                bail!("the pgfork daemon is stopped, so no database branch was switched or created: run `pgfork daemon start`");
            }
            c
        } else {
            connect::ensure_daemon().await?
        };
        let project = cfg.project.name.clone();
        Ok(Some(Ctx {
            repo,
            cfg,
            client,
            project,
        }))
    }

    /// For commands: the repository is required.
    pub async fn for_command(explicit: Option<&str>) -> Result<Ctx> {
        let cwd = std::env::current_dir().context("could not read the current directory")?;
        let repo = Repo::discover(&cwd)?;
        let path = repo.root.join(project::CONFIG_FILE);
        let cfg = if path.is_file() {
            project::read_config(&path)?
        } else {
            RepoConfig::default()
        };
        let client = connect::ensure_daemon().await?;
        let project = match explicit {
            Some(p) => p.to_string(),
            None if !cfg.project.name.is_empty() => cfg.project.name.clone(),
            None => project::resolve(&client, None).await?,
        };
        Ok(Ctx {
            repo,
            cfg,
            client,
            project,
        })
    }

    async fn branches(&self, include_deleted: bool) -> Result<Vec<api::Branch>> {
        Ok(self
            .client
            .list_branches(&self.project, include_deleted, false)
            .await?
            .branches)
    }
}

fn paired<'a>(branches: &'a [api::Branch], git: &str) -> Option<&'a api::Branch> {
    branches
        .iter()
        .find(|b| b.state != "deleted" && b.git_branch.as_deref() == Some(git))
}

/// The URL written to the env file when the checked-out HEAD has no database we could
/// reach: a host in the reserved `.invalid` domain never resolves, so the app fails at
/// connect, with a host name that says why, instead of silently using the database of
/// the branch checked out before.
pub fn unpaired_url(reason: &str) -> String {
    format!("postgresql://pgfork-unpaired.invalid/{reason}")
}

/// Points the work tree's env file at `b`. Warns once if the file is tracked by git.
pub fn write_env(ctx: &Ctx, b: &api::Branch) -> Result<()> {
    let url = project::with_tls(&b.connection_uri, ctx.cfg.env.tls);
    write_env_url(&ctx.repo, &ctx.cfg, &url)
}

/// Points the env file of the repository in the current directory at nothing (see
/// [`unpaired_url`]): the hook could not pair HEAD. Returns what it changed, in words
/// (e.g. "DATABASE_URL in .env"), for the one line the hook prints.
pub fn mark_unpaired_here(reason: &str) -> Option<String> {
    let repo = Repo::discover(&std::env::current_dir().ok()?).ok()?;
    let cfg = project::read_config(&repo.root.join(project::CONFIG_FILE)).ok()?;
    write_env_url(&repo, &cfg, &unpaired_url(reason)).ok()?;
    Some(format!("{} in {}", cfg.env.vars.join(", "), cfg.env.file))
}

/// Writes a file that holds a password: never readable by others (0600, or the
/// file's own stricter mode), and atomically (a temporary file in the same directory,
/// renamed over it), so no reader ever sees half a file or a moment of 0644.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o600)
        .unwrap_or(0o600);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.pgfork-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_env_url(repo: &Repo, cfg: &RepoConfig, url: &str) -> Result<()> {
    let path = repo.root.join(&cfg.env.file);
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    let vars: Vec<(&str, &str)> = cfg.env.vars.iter().map(|v| (v.as_str(), url)).collect();
    let after = env_file::update(&before, &vars);
    let private = std::fs::metadata(&path)
        .map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o077 == 0
        })
        .unwrap_or(false);
    if after != before || !private {
        write_private(&path, &after)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    if repo.is_tracked(Path::new(&cfg.env.file)) {
        if let Some(marker) = repo.git_dir().map(|d| d.join("pgfork-env-tracked-warned")) {
            if !marker.exists() {
                let _ = std::fs::write(&marker, "");
                eprintln!(
                    "pgfork: warning: {} is tracked by git and now holds a database password: `git rm --cached {}` and add it to .gitignore",
                    cfg.env.file, cfg.env.file
                );
            }
        }
    }
    Ok(())
}

/// post-checkout: make sure the checked-out git branch has its database, and point
/// the env file at it.
pub async fn on_checkout(ctx: &Ctx) -> Result<()> {
    if ctx.repo.special_state().is_some() {
        return Ok(());
    }
    let Some(git) = ctx.repo.current_branch() else {
        // Detached HEAD: no database is paired with it, and .env must not pretend.
        write_env_url(&ctx.repo, &ctx.cfg, &unpaired_url("detached-HEAD"))?;
        eprintln!("pgfork: HEAD is detached, so no database branch is paired with it: DATABASE_URL points nowhere until you check out a branch");
        return Ok(());
    };
    let all = ctx.branches(true).await?;
    if let Some(b) = paired(&all, &git) {
        write_env(ctx, b)?;
        apply_refresh_policy(ctx, b).await;
        return Ok(());
    }
    // The database of *this* git branch, trashed while the branch lived on (gc, TTL),
    // comes back with it. A new git branch that merely reuses the name of a deleted
    // one never inherits its data: it forks fresh, and the old one stays in the trash.
    let born = ctx.repo.branch_created_at(&git);
    if let Some(trashed) = all
        .iter()
        .filter(|b| b.state == "deleted" && b.git_branch.as_deref() == Some(git.as_str()))
        .filter(|b| {
            let deleted = b.deleted_at.map(|d| d.timestamp());
            matches!((born, deleted), (Some(born), Some(deleted)) if born < deleted)
        })
        .max_by_key(|b| b.deleted_at)
    {
        if let Ok(r) = ctx.client.recover_branch(&ctx.project, &trashed.id).await {
            eprintln!(
                "pgfork: recovered database branch {:?} for {git} from the trash (`pgfork branch delete {}` puts it back)",
                r.branch.name, r.branch.name
            );
            return write_env(ctx, &r.branch);
        }
    }
    let created = create_for(ctx, &git, &all).await?;
    write_env(ctx, &created)?;
    run_after_create(ctx, &created).await;
    Ok(())
}

/// A snapshot before the after-create command runs, so `pgfork branch restore NAME --to
/// before-last-migration` can undo it. Only where snapshots cost nothing until the
/// branch changes (a reflink store); kept a day.
async fn snapshot_before_migration(ctx: &Ctx, b: &api::Branch) {
    let reflinks = ctx
        .client
        .status()
        .await
        .is_ok_and(|st| st.clone_method == "reflink");
    if !reflinks {
        return;
    }
    let name = pgfork_core::preserved_name(&b.name, "migration", chrono::Utc::now());
    let expires = chrono::Utc::now() + chrono::Duration::days(1);
    if let Err(e) = ctx
        .client
        .create_snapshot(
            &ctx.project,
            &b.id,
            Some(&name),
            Some(expires),
            Some("before-migration"),
        )
        .await
    {
        eprintln!(
            "pgfork: no snapshot before the after-create command ({}): `branch restore --to before-last-migration` will not undo this run",
            crate::output::error_sentence(&anyhow::Error::from(e))
        );
    }
}

/// How long a state replaced by a reset or refresh is kept unless the user keeps it.
pub const PRESERVED_TTL: &str = "7d";

/// A replaced state costs nothing while nobody uses it, and goes away on its own.
pub async fn keep_preserved(c: &Client, project: &str, name: &str) -> Result<()> {
    let expires = crate::commands::expiry_in(PRESERVED_TTL)?;
    let req = api::BranchUpdateRequest {
        branch: api::BranchUpdate {
            expires_at: Some(Some(expires)),
            ..Default::default()
        },
    };
    c.update_branch(project, name, &req).await?;
    c.set_running(project, name, false).await?;
    Ok(())
}

/// The repository's refresh policy, at checkout of a branch that already has its
/// database: a stale one without changes of its own is refreshed (announced, its old
/// state kept), one with changes is pointed out. Never fails the checkout.
async fn apply_refresh_policy(ctx: &Ctx, b: &api::Branch) {
    let Some(word) = ctx.cfg.branches.refresh.as_deref() else {
        return;
    };
    let policy = match pgfork_core::RefreshPolicy::parse(word) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pgfork: .pgfork.toml [branches] refresh: {e}");
            return;
        }
    };
    if policy == pgfork_core::RefreshPolicy::Off || b.parent_id.is_none() {
        return;
    }
    let Ok(f) = ctx.client.branch_freshness(&ctx.project, &b.id).await else {
        return;
    };
    let parent = f.parent.clone().unwrap_or_else(|| "its parent".into());
    let facts = pgfork_core::Staleness {
        forked_at: f.forked_at,
        parent_schema_changed: f.parent_schema_changed,
        local_changes: f.local_changes,
    };
    match pgfork_core::refresh_decision(policy, facts, &parent, chrono::Utc::now()) {
        pgfork_core::RefreshDecision::Fresh => {}
        pgfork_core::RefreshDecision::Ask(why) => eprintln!(
            "pgfork: database branch {:?} is behind {parent}: {why}; `pgfork branch refresh {}` when you are ready",
            b.name, b.name
        ),
        pgfork_core::RefreshDecision::Refresh(why) => {
            let kept = pgfork_core::preserved_name(&b.name, "refresh", chrono::Utc::now());
            let req = api::BranchRestoreRequest {
                preserve_under_name: Some(kept.clone()),
                pgfork_refuse_sessions: true,
                ..Default::default()
            };
            let done = async {
                let resp = ctx.client.restore_branch_with(&ctx.project, &b.id, &req).await?;
                crate::commands::wait_ops(&ctx.client, &ctx.project, &resp.operations).await?;
                keep_preserved(&ctx.client, &ctx.project, &kept).await?;
                Ok::<api::Branch, anyhow::Error>(resp.branch)
            }
            .await;
            match done {
                Ok(fresh) => {
                    eprintln!(
                        "pgfork: refreshed database branch {:?} onto {parent} ({why}, and it had no changes of its own); its previous state is branch {kept:?} for {PRESERVED_TTL} (`pgfork branch set-ttl {kept} none` keeps it)",
                        b.name
                    );
                    run_after_create(ctx, &fresh).await;
                }
                Err(e) => eprintln!(
                    "pgfork: database branch {:?} is behind {parent} ({why}) but was not refreshed: {}",
                    b.name,
                    crate::output::error_sentence(&e)
                ),
            }
        }
    }
}

/// Creates (or adopts an unpaired namesake of) the database for git branch `git`.
async fn create_for(ctx: &Ctx, git: &str, all: &[api::Branch]) -> Result<api::Branch> {
    let mut name = names::db_branch_name(git);
    if let Some(existing) = all.iter().find(|b| b.state != "deleted" && b.name == name) {
        if existing.git_branch.is_none() {
            // Someone made it by hand for this branch: pair it rather than duplicate it.
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    git_branch: Some(Some(git.to_string())),
                    ..Default::default()
                },
            };
            return Ok(ctx
                .client
                .update_branch(&ctx.project, &existing.id, &req)
                .await?
                .branch);
        }
        name = names::disambiguate(&name, git);
    }
    let policy = (ctx.cfg.branches.parent != "auto").then(|| ctx.cfg.branches.parent.clone());
    let facts = infer::Facts {
        policy,
        ..ctx.repo.facts(git)
    };
    let parent_id = match infer::parent(git, &facts, |g| paired(all, g).is_some()) {
        Parent::Policy(p) => Some(p),
        Parent::GitBranch(g) => paired(all, &g).map(|b| b.id.clone()),
        Parent::Root => None,
    };
    // Let the daemon's periodic gc watch this work tree too (a remote server cannot see
    // this machine's work trees: gc runs here, through the hooks).
    if !ctx.client.is_remote() {
        let _ = ctx
            .client
            .register_repo(&ctx.project, &ctx.repo.root.display().to_string())
            .await;
    }
    // A project that holds personal data gets masked branches of unmasked parents,
    // by the repository's rules (a checkout must not copy personal data to a laptop).
    let source_masked = match &parent_id {
        Some(id) => all.iter().find(|b| &b.id == id).is_some_and(|b| b.masked),
        None => all
            .iter()
            .find(|b| b.parent_id.is_none())
            .is_some_and(|b| b.masked),
    };
    let masking = if ctx.cfg.masking.pii && !source_masked {
        Some(crate::project::read_masking_rules("").map_err(|e| {
            anyhow::anyhow!("this project holds personal data ([masking] pii = true), so a new branch must be masked, but its rules cannot be used: {e}")
        })?)
    } else {
        None
    };
    let (mask_rules, mask_strict, mask_keep) = crate::project::masking_request(masking.as_ref());
    let t = Instant::now();
    let resp = ctx
        .client
        .create_branch(
            &ctx.project,
            &api::BranchCreateRequest {
                branch: api::BranchCreate {
                    name: Some(name),
                    parent_id,
                    git_branch: Some(git.to_string()),
                    pgfork_rotate_passwords: ctx.cfg.branches.rotate_passwords.clone(),
                    pgfork_masking_rules: mask_rules,
                    pgfork_masking_strict: mask_strict,
                    pgfork_masking_keep: mask_keep,
                    pgfork_postgres_settings: ctx.cfg.postgres_settings(),
                    pgfork_history_window_seconds: ctx.cfg.history.window_seconds().ok().flatten(),
                    pgfork_history_snapshot_every_seconds: ctx
                        .cfg
                        .history
                        .snapshot_every_seconds()
                        .ok()
                        .flatten(),
                    pgfork_history_keep: ctx.cfg.history.keep().ok().flatten(),
                    ..Default::default()
                },
                endpoints: vec![],
            },
        )
        .await?;
    let mut b = resp.branch;
    if resp.operations.iter().any(|o| o.is_running()) {
        crate::commands::wait_ops(&ctx.client, &ctx.project, &resp.operations).await?;
        b = ctx
            .client
            .get_branch(&ctx.project, &b.id, false)
            .await?
            .branch;
    }
    eprintln!(
        "pgfork: created {}database branch {:?} from {:?} in {:.2} s; `pgfork branch delete {}` removes it",
        if masking.is_some() { "masked " } else { "" },
        b.name,
        b.parent_name.as_deref().unwrap_or("-"),
        t.elapsed().as_secs_f64(),
        b.name
    );
    Ok(b)
}

/// Runs the repository's after-create command for `b`, recording the outcome.
pub async fn run_after_create(ctx: &Ctx, b: &api::Branch) -> bool {
    run_after_create_in(ctx, b, &ctx.repo.root).await
}

/// [`run_after_create`] in `dir`: the work tree where `b`'s git branch is checked out,
/// whose migrations are the branch's own.
pub async fn run_after_create_in(ctx: &Ctx, b: &api::Branch, dir: &Path) -> bool {
    let Some(cmd) = ctx
        .cfg
        .hooks
        .after_create
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    else {
        return true;
    };
    if !crate::trust::is_allowed(&ctx.repo.root, cmd) {
        eprintln!(
            "pgfork: not running .pgfork.toml's after-create command {cmd:?}: it is not allowed on this machine yet; review it, run `pgfork allow`, then `pgfork branch migrate {}`",
            b.name
        );
        return false;
    }
    snapshot_before_migration(ctx, b).await;
    eprintln!("pgfork: running after-create command: {cmd}");
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).current_dir(dir).stdin(Stdio::null());
    // Its output is for the user, on the terminal git is using.
    c.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    for v in &ctx.cfg.env.vars {
        c.env(v, &b.connection_uri);
    }
    c.env("PGFORK_BRANCH", &b.name);
    let ok = matches!(c.status(), Ok(s) if s.success());
    let outcome = if ok { "ok" } else { "failed" };
    let req = api::BranchUpdateRequest {
        branch: api::BranchUpdate {
            after_create: Some(outcome.to_string()),
            ..Default::default()
        },
    };
    let _ = ctx.client.update_branch(&ctx.project, &b.id, &req).await;
    if !ok {
        eprintln!(
            "pgfork: the after-create command failed; branch {:?} is kept and marked: fix the command, then run `pgfork branch migrate {}`",
            b.name, b.name
        );
    }
    ok
}

/// reference-transaction: deletions of local branches are settled after git exits.
/// What a reference transaction did to local branches: each deleted branch, and the
/// branch it was renamed to when the same transaction created one at the same commit.
pub fn deleted_branches(stdin: &str) -> Vec<(String, Option<String>)> {
    let zero = |s: &str| s.chars().all(|c| c == '0');
    let changes: Vec<(&str, &str, &str)> = stdin
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?, parts.next()?, parts.next()?))
        })
        .collect();
    changes
        .iter()
        .filter(|(_, new, _)| zero(new))
        .filter_map(|(old, _, name)| {
            let branch = name.strip_prefix("refs/heads/")?;
            let renamed_to = changes
                .iter()
                .find(|(o, n, other)| zero(o) && n == old && other != name)
                .and_then(|(_, _, other)| other.strip_prefix("refs/heads/"))
                .map(str::to_string);
            Some((branch.to_string(), renamed_to))
        })
        .collect()
}

/// One line per database a git deletion or rename affects, in the terminal where git
/// ran, with the command that undoes it. Asks a daemon that already runs (never starts
/// one: `git branch -D` must stay fast); the detached settle step does the work.
pub async fn announce_deletions(changes: &[(String, Option<String>)]) {
    let Some(ctx) = Ctx::to_announce() else {
        return;
    };
    let Ok(branches) = ctx.client.list_branches(&ctx.project, false, false).await else {
        return;
    };
    // git renames a branch in two transactions (delete, then create): this one cannot
    // see the new name, but git's own command line can.
    let moving = grandparent_pid().and_then(git_branch_move);
    for (git, renamed) in changes {
        let renamed = renamed
            .clone()
            .or_else(|| moving.clone().map(Option::unwrap_or_default));
        let Some(b) = paired(&branches.branches, git) else {
            continue;
        };
        if b.default || b.protected {
            continue;
        }
        match renamed.as_deref() {
            Some("") => eprintln!(
                "pgfork: database branch {:?} follows the rename of git branch {git} (same URL); renaming it back moves it back",
                b.name
            ),
            Some(to) => eprintln!(
                "pgfork: database branch {:?} follows git branch {git} to {to} (same URL); `git branch -m {to} {git}` moves it back",
                b.name
            ),
            None => eprintln!(
                "pgfork: git branch {git} was deleted: database branch {:?} goes to the trash; `pgfork branch recover {}` brings it back",
                b.name, b.id
            ),
        }
    }
}

/// Whether git process `pid` is renaming a branch (`git branch -m|-M|--move [old] new`),
/// and to what when its arguments say.
fn git_branch_move(pid: i32) -> Option<Option<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    branch_move_target(&args)
}

/// `git … branch -m [old] new` → `Some(Some(new))`; a move without a readable target →
/// `Some(None)`; anything else → `None`.
pub fn branch_move_target(args: &[String]) -> Option<Option<String>> {
    let at = args.iter().position(|a| a == "branch")?;
    let rest = &args[at + 1..];
    let moving = rest
        .iter()
        .any(|a| matches!(a.as_str(), "-m" | "-M") || a.starts_with("--move"));
    if !moving {
        return None;
    }
    let names: Vec<&String> = rest.iter().filter(|a| !a.starts_with('-')).collect();
    Some(names.last().map(|n| n.to_string()))
}

pub fn on_reference_transaction(state: &str, stdin: &str) {
    if state != "committed" {
        return;
    }
    let deleted: Vec<String> = deleted_branches(stdin)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if deleted.is_empty() {
        return;
    }
    let git_pid = grandparent_pid();
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = Command::new(exe);
    cmd.args([
        "hook",
        "settle",
        "--wait-pid",
        &git_pid.unwrap_or(0).to_string(),
    ])
    .args(&deleted);
    detach(&mut cmd);
}

/// post-merge, in git's terminal: one line per database branch the merge made
/// removable, with the command that brings it back; the detached gc does the work.
/// Asks a daemon that already runs, and only briefly (a merge must stay fast).
pub async fn announce_gc() {
    let Some(ctx) = Ctx::to_announce() else {
        return;
    };
    let Ok(plan) = gc_plan(&ctx).await else {
        return;
    };
    for a in plan.iter().filter(|a| a.action == "delete") {
        eprintln!(
            "pgfork: database branch {:?} goes to the trash ({}); `pgfork branch recover {}` brings it back",
            a.branch, a.detail, a.branch
        );
    }
}

/// post-merge: let gc look at what the merge made removable, after git is done.
pub fn on_merge() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = Command::new(exe);
    cmd.args([
        "hook",
        "gc",
        "--wait-pid",
        &grandparent_pid().unwrap_or(0).to_string(),
    ]);
    detach(&mut cmd);
}

/// The hook's git process: our parent is the hook's shell, its parent is git.
fn grandparent_pid() -> Option<i32> {
    // SAFETY: getppid has no preconditions.
    let shell = unsafe { libc::getppid() };
    let stat = std::fs::read_to_string(format!("/proc/{shell}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Starts `cmd` in its own session with output to the store's hook log. It runs in
/// the repository's top level with no `GIT_*` variable of the hook: it finds its
/// repository from its directory and names it in every git call.
fn detach(cmd: &mut Command) {
    if let Some(root) = std::env::current_dir()
        .ok()
        .and_then(|d| Repo::discover(&d).ok())
    {
        cmd.current_dir(root.root);
    }
    cmd.env("PGFORK_HOME", connect::home());
    pgfork_git::repo::scrub_git_env(cmd);
    let log = connect::home().join("hooks.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid in the child only, so git's exit (or a terminal's Ctrl-C) does not
    // take the settling process with it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    if let Ok(mut child) = cmd.spawn() {
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
}

/// Waits for git to finish (so a rename has created its new ref).
pub async fn wait_for_pid(pid: i32) {
    let t = Instant::now();
    while pid > 0 && connect::process_alive(pid) && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// After git finished deleting `refs/heads/<old>`: a rename moves the database branch
/// with it; a real deletion soft-deletes it (recoverable for the grace period).
pub async fn settle_deletions(ctx: &Ctx, deleted: &[String]) -> Result<()> {
    let all = ctx.branches(false).await?;
    for old in deleted {
        // Only git's clear "no such branch" counts; any git error leaves it alone.
        match ctx.repo.branch_present(old) {
            Ok(false) => {}
            Ok(true) => continue,
            Err(e) => {
                println!("pgfork: kept the database of {old}: git could not say whether the branch is gone ({e})");
                continue;
            }
        }
        let Some(b) = paired(&all, old) else { continue };
        if let Some(new) = ctx.repo.renamed_to(old) {
            let mut name = names::db_branch_name(&new);
            if all.iter().any(|x| x.name == name && x.id != b.id) {
                name = names::disambiguate(&name, &new);
            }
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    name: Some(name),
                    git_branch: Some(Some(new.clone())),
                    ..Default::default()
                },
            };
            ctx.client.update_branch(&ctx.project, &b.id, &req).await?;
            println!(
                "pgfork: database branch {:?} follows the rename of {old} to {new}",
                b.name
            );
        } else if b.parent_id.is_none() || b.protected {
            println!("pgfork: kept database branch {:?} (root or protected) although git branch {old} was deleted", b.name);
        } else {
            ctx.client
                .gc_delete_branch(&ctx.project, &b.id, false, Some("gone"))
                .await?;
            println!("pgfork: git branch {old} was deleted; database branch {:?} moved to the trash (`pgfork branch recover {}`)", b.name, b.name);
        }
    }
    Ok(())
}

/// One thing gc would do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GcAction {
    pub branch: String,
    pub id: String,
    /// `delete` (to the trash) or `purge` (for good).
    pub action: &'static str,
    /// `gone`, `upstream-gone`, `merged`, `expired` or `grace`.
    pub reason: &'static str,
    /// The reason in words.
    pub detail: String,
}

/// What gc would do now (see `pgfork_git::gc::plan`, shared with the daemon). A git
/// error is an error: gc never guesses.
pub async fn gc_plan(ctx: &Ctx) -> Result<Vec<GcAction>> {
    let all = ctx.branches(true).await?;
    let candidates: Vec<pgfork_git::gc::Candidate> = all
        .iter()
        .map(|b| pgfork_git::gc::Candidate {
            id: b.id.clone(),
            name: b.name.clone(),
            live: b.state != "deleted",
            root: b.parent_id.is_none(),
            protected: b.protected,
            git_branch: b.git_branch.clone(),
            expires_at: b.expires_at.map(|t| t.timestamp()),
            purge_at: b.purge_at.map(|t| t.timestamp()),
            spared: b
                .pgfork_gc_spared
                .iter()
                .filter_map(|r| pgfork_git::gc::Reason::parse(r))
                .collect(),
        })
        .collect();
    let view = pgfork_git::gc::RepoView::new(&ctx.repo)
        .context("git could not answer, so gc removes nothing")?;
    Ok(
        pgfork_git::gc::plan(&candidates, &view, chrono::Utc::now().timestamp())
            .context("git could not answer, so gc removes nothing")?
            .into_iter()
            .map(|a| GcAction {
                branch: a.branch,
                id: a.id,
                action: a.action,
                reason: a.reason.as_str(),
                detail: a.detail,
            })
            .collect(),
    )
}

pub async fn gc_apply(ctx: &Ctx, plan: &[GcAction]) -> Result<()> {
    for a in plan {
        ctx.client
            .gc_delete_branch(&ctx.project, &a.id, a.action == "purge", Some(a.reason))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::deleted_branches;

    #[test]
    fn deletions_and_renames_are_told_apart() {
        let z = "0000000000000000000000000000000000000000";
        let a = "1111111111111111111111111111111111111111";
        let deleted = format!("{a} {z} refs/heads/gone\n");
        assert_eq!(deleted_branches(&deleted), vec![("gone".to_string(), None)]);
        let renamed = format!("{a} {z} refs/heads/old\n{z} {a} refs/heads/new\n");
        assert_eq!(
            deleted_branches(&renamed),
            vec![("old".to_string(), Some("new".to_string()))]
        );
        let tag = format!("{a} {z} refs/tags/v1\n");
        assert!(deleted_branches(&tag).is_empty());
        assert!(deleted_branches(&format!("{z} {a} refs/heads/new\n")).is_empty());
    }

    #[test]
    fn git_renames_are_read_from_its_arguments() {
        use super::branch_move_target;
        let v = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            branch_move_target(&v("git branch -m a b")),
            Some(Some("b".into()))
        );
        assert_eq!(
            branch_move_target(&v("git branch -M b")),
            Some(Some("b".into()))
        );
        assert_eq!(branch_move_target(&v("git branch -D a")), None);
        assert_eq!(branch_move_target(&v("git checkout -b x")), None);
    }
}
