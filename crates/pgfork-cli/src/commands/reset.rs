//! `pgfork branch reset` and `pgfork branch refresh`: a branch back onto its parent's
//! current state — and, for refresh, its own migrations run again on top, from the work
//! tree where its git branch is checked out (a database rebase).
//!
//! Both keep what they replace unless told not to: the old state becomes a stopped
//! branch that expires in a week (announced, and `branch set-ttl … none` keeps it), so
//! a reset is never the way data is lost. Both refuse while clients are connected
//! unless `--force` (or wait for them with `--wait`): ending someone's session is not a
//! side effect a command should have silently.

use super::*;

pub(super) struct ResetRequest {
    pub name: String,
    pub preserve_as: Option<String>,
    pub discard: bool,
    pub force: bool,
    pub wait: Option<String>,
    /// Run the after-create command afterwards (`refresh`).
    pub migrate: bool,
}

pub(super) async fn reset(
    c: &Client,
    p: &str,
    req: ResetRequest,
    explicit: Option<&str>,
) -> Result<i32> {
    let what = if req.migrate { "refresh" } else { "reset" };
    let wait = match &req.wait {
        Some(w) => Some(pgfork_core::parse_ttl(w)?.as_secs()),
        None => None,
    };
    let b = c.get_branch(p, &req.name, false).await?.branch;
    // The migration step needs the branch's work tree before anything is replaced.
    let ctx = if req.migrate {
        let ctx = Ctx::for_command(explicit).await?;
        if ctx
            .cfg
            .hooks
            .after_create
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
        {
            // Nothing of its own to run again: the refresh is the reset.
            crate::note!(
                "note: this repository's .pgfork.toml has no [hooks] after_create command, so refreshing {:?} is a reset",
                b.name
            );
            None
        } else {
            Some(ctx)
        }
    } else {
        None
    };
    let work_tree = match (&ctx, b.git_branch.as_deref()) {
        (Some(ctx), Some(git)) => match ctx.repo.worktree_of(git)? {
            Some(dir) => Some(dir),
            None => bail!(
                "git branch {git} is not checked out in any work tree, so its migrations are not on disk: check it out (or `git worktree add`), then refresh again"
            ),
        },
        (Some(ctx), None) => Some(ctx.repo.root.clone()),
        _ => None,
    };
    let preserve = if req.discard {
        None
    } else {
        Some(
            req.preserve_as
                .clone()
                .unwrap_or_else(|| pgfork_core::preserved_name(&b.name, what, chrono::Utc::now())),
        )
    };
    if let Some(name) = &preserve {
        pgfork_core::validate_branch_name(name)?;
    }
    let started = Instant::now();
    let resp = c
        .restore_branch_with(
            p,
            &b.id,
            &api::BranchRestoreRequest {
                preserve_under_name: preserve.clone(),
                pgfork_refuse_sessions: !req.force,
                pgfork_wait_seconds: wait,
                ..Default::default()
            },
        )
        .await?;
    wait_ops(c, p, &resp.operations).await?;
    println!(
        "{} {:?} to the current state of {:?} in {:.2} s; its URL is unchanged",
        if req.migrate { "refreshed" } else { "reset" },
        resp.branch.name,
        resp.branch.parent_name.as_deref().unwrap_or("-"),
        started.elapsed().as_secs_f64()
    );
    if let Some(kept) = &preserve {
        pairing::keep_preserved(c, p, kept).await?;
        println!(
            "  the previous state is branch {kept:?}, suspended until you connect, expiring in {} (`pgfork branch set-ttl {kept} none` keeps it; `pgfork branch delete {kept}` drops it now)",
            pairing::PRESERVED_TTL
        );
    }
    if let (Some(ctx), Some(dir)) = (&ctx, &work_tree) {
        let b = c.get_branch(p, &b.id, false).await?.branch;
        if !pairing::run_after_create_in(ctx, &b, dir).await {
            bail!(
                "{:?} was reset but its after-create command failed: fix it, then `pgfork branch migrate {}`{}",
                b.name,
                b.name,
                preserve
                    .as_deref()
                    .map(|k| format!(" (the state before is branch {k:?})"))
                    .unwrap_or_default()
            );
        }
        println!("  ran the after-create command in {}", dir.display());
    }
    Ok(0)
}
