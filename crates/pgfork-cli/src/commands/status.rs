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
    let freshness = match (&proj, &paired) {
        (Some(p), Some(b)) => c.branch_freshness(p, &b.id).await.ok(),
        _ => None,
    };
    if json {
        print_json(&serde_json::json!({
            "repo": repo.as_ref().map(|r| &r.root),
            "head": head,
            "project": proj,
            "branch": paired.as_ref().map(view),
            "freshness": freshness,
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
    if let (Some(f), Some(b)) = (&freshness, &paired) {
        for line in freshness_lines(f, &b.name, chrono::Utc::now()) {
            println!("{line}");
        }
        let policy = project::find_config()
            .and_then(|path| project::read_config(&path).ok())
            .and_then(|cfg| cfg.branches.refresh)
            .and_then(|w| pgfork_core::RefreshPolicy::parse(&w).ok())
            .unwrap_or_default();
        let facts = pgfork_core::Staleness {
            forked_at: f.forked_at,
            parent_schema_changed: f.parent_schema_changed,
            local_changes: f.local_changes,
        };
        let parent = f.parent.clone().unwrap_or_default();
        match pgfork_core::refresh_decision(policy, facts, &parent, chrono::Utc::now()) {
            pgfork_core::RefreshDecision::Fresh => {}
            pgfork_core::RefreshDecision::Refresh(why) => println!(
                "refresh:  due ({why}); no changes of its own, so the next checkout refreshes it"
            ),
            pgfork_core::RefreshDecision::Ask(why) => println!(
                "refresh:  due ({why}): `pgfork branch refresh {}` when you are ready",
                b.name
            ),
        }
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

/// What `status` says about how current the branch is, one line each.
pub(super) fn freshness_lines(
    f: &api::BranchFreshness,
    branch: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(parent) = &f.parent {
        let mut facts = Vec::new();
        if let Some(at) = f.forked_at {
            facts.push(format!("forked {} ago", output::ago(now - at)));
        }
        if let Some(bytes) = f.parent_wal_bytes_since_fork {
            facts.push(if bytes == 0 {
                format!("{parent} has not changed since")
            } else {
                format!(
                    "{parent} has written {} of WAL since",
                    output::bytes(Some(bytes as u64))
                )
            });
        }
        let stale_schema = f.parent_schema_changed == Some(true);
        if stale_schema {
            facts.push(format!("and {parent}'s schema changed"));
        }
        let mut line = format!("behind:   {parent}: {}", facts.join(", "));
        if stale_schema || f.parent_wal_bytes_since_fork.is_some_and(|b| b > 0) {
            line.push_str(&format!(" (`pgfork branch refresh {branch}` catches up)"));
        }
        lines.push(line);
    }
    if let Some(root) = &f.root {
        let state = if root.streaming {
            "streaming"
        } else {
            "NOT streaming (see the root's log: `pgfork branch get ROOT`)"
        };
        let last = root
            .last_commit_seconds_ago
            .map(|s| format!(", last source commit replayed {s:.1} s ago"))
            .unwrap_or_default();
        lines.push(format!("root:     follows its source, {state}{last}"));
    }
    if let Some(at) = f.root_taken_at {
        lines.push(format!(
            "root:     a snapshot of its source taken {} ago (`pgfork root refresh` takes a new one)",
            output::ago(now - at)
        ));
    }
    for c in &f.migration_conflicts {
        lines.push(format!(
            "warning:  {} and {} both applied {} migrations the other lacks ({} vs {}): the second to merge must rebase its migrations",
            c.branch_a,
            c.branch_b,
            c.tool,
            c.only_a.join(", "),
            c.only_b.join(", ")
        ));
    }
    for n in &f.notes {
        lines.push(format!("note:     {n}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_branch_is_told_how_to_catch_up() {
        let now = chrono::Utc::now();
        let f = api::BranchFreshness {
            branch: "feature".into(),
            parent: Some("main".into()),
            forked_at: Some(now - chrono::Duration::hours(3)),
            parent_wal_bytes_since_fork: Some(5 * 1024 * 1024),
            parent_schema_changed: Some(true),
            migration_conflicts: vec![api::MigrationConflict {
                tool: "Django".into(),
                branch_a: "feature".into(),
                branch_b: "other".into(),
                only_a: vec!["app.0003_a".into()],
                only_b: vec!["app.0003_b".into()],
            }],
            ..Default::default()
        };
        let lines = freshness_lines(&f, "feature", now);
        assert!(lines[0].starts_with("behind:   main: forked 3 h ago, main has written 5.0 MiB of WAL since, and main's schema changed"), "{lines:?}");
        assert!(
            lines[0].ends_with("(`pgfork branch refresh feature` catches up)"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("feature and other both applied Django migrations"),
            "{lines:?}"
        );
        let fresh = api::BranchFreshness {
            parent: Some("main".into()),
            forked_at: Some(now),
            parent_wal_bytes_since_fork: Some(0),
            parent_schema_changed: Some(false),
            ..Default::default()
        };
        let l = freshness_lines(&fresh, "feature", now);
        assert!(!l[0].contains("refresh"), "{l:?}");
    }
}
