//! `pgfork status`: the repository, HEAD, its database, the hooks, the daemon, the store and
//! what gc would do next.

use super::*;

pub(super) async fn status(explicit: Option<&str>, json: bool) -> Result<i32> {
    let c = ensure_daemon().await?;
    let st = c.status().await?;
    let repo = std::env::current_dir()
        .ok()
        .and_then(|d| pgfork_git::Repo::discover(&d).ok());
    let head = repo.as_ref().and_then(|r| r.current_branch());
    let resolved = project::resolve(&c, explicit).await;
    // Why no project applies here (none yet, or several and none chosen), in words.
    let no_project = resolved
        .as_ref()
        .err()
        .map(output::error_sentence)
        .unwrap_or_default();
    let proj = resolved.ok();
    let paired = match (&proj, &head) {
        (Some(p), Some(h)) => match paired_with_head(&c, p, h).await {
            // With its sizes (one branch: walking its files is cheap enough here).
            Some(b) => Some(
                c.get_branch(p, &b.id, true)
                    .await
                    .map(|r| r.branch)
                    .unwrap_or(b),
            ),
            None => None,
        },
        _ => None,
    };
    let hooks = repo
        .as_ref()
        .and_then(|r| r.hooks_dir())
        .map(|d| pgfork_git::hooks::status(&d));
    let hooks_line = match &hooks {
        Some(h) if h.iter().all(|x| x.installed && x.executable) => format!(
            "installed in {}",
            h[0].path
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        Some(h) if h.iter().any(|x| x.installed) => {
            "partly installed: run `pgfork hooks install`".to_string()
        }
        Some(_) => "not installed: run `pgfork hooks install`".to_string(),
        None => "(not in a git repository)".to_string(),
    };
    let gc = match (&repo, &proj) {
        (Some(_), Some(p)) => match Ctx::for_command(Some(p)).await {
            Ok(ctx) => pairing::gc_plan(&ctx).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    };
    if json {
        print_json(&serde_json::json!({
            "repo": repo.as_ref().map(|r| &r.root),
            "head": head,
            "project": proj,
            "branch": paired.as_ref().map(view),
            "hooks": hooks_line,
            "gc": gc,
            "daemon": st,
        }))?;
        return Ok(0);
    }
    println!(
        "repo:     {}",
        repo.as_ref()
            .map(|r| r.root.display().to_string())
            .unwrap_or_else(|| "(not in a git repository)".into())
    );
    println!(
        "HEAD:     {}",
        head.clone().unwrap_or_else(|| "(detached or none)".into())
    );
    println!(
        "project:  {}",
        proj.clone()
            .unwrap_or_else(|| format!("(none: {no_project})"))
    );
    match &paired {
        Some(b) => println!(
            "branch:   {} ({}, port {})\n          {}",
            b.name,
            b.state,
            b.port,
            crate::output::redacted(&b.connection_uri)
        ),
        None => println!("branch:   (no database branch paired with HEAD)"),
    }
    println!("hooks:    {hooks_line}");
    if gc.is_empty() {
        println!("gc next:  nothing to collect");
    } else {
        for (i, a) in gc.iter().enumerate() {
            println!(
                "{}{} {:?}: {}",
                if i == 0 { "gc next:  " } else { "          " },
                a.action,
                a.branch,
                a.detail
            );
        }
    }
    println!(
        "daemon:   pid {} since {}, {} branch(es) running",
        st.pid,
        st.started_at.format("%Y-%m-%d %H:%M UTC"),
        st.running_branches
    );
    // The full warning is said once, at init and by doctor; status only notes it.
    let note = if st.store_warning.is_some() {
        ": no reflinks, every branch is a full copy (`pgfork doctor` says how to fix it)"
    } else {
        ""
    };
    println!(
        "store:    {} on {} ({}{note})",
        st.home, st.filesystem, st.clone_method
    );
    Ok(0)
}
