//! `pgfork hooks …` (install, uninstall, status) and the hidden `pgfork hook NAME` the hook
//! scripts call. A hook never fails git: every problem is one line on stderr and exit 0.

use super::*;

pub(super) async fn hooks(cmd: HooksCommand) -> Result<i32> {
    let cwd = std::env::current_dir().context("could not read the current directory")?;
    let repo = pgfork_git::Repo::discover(&cwd)?;
    let dir = repo
        .hooks_dir()
        .context("git did not say where its hooks live")?;
    match cmd {
        HooksCommand::Install => {
            let exe = std::env::current_exe().context("could not find the pgfork executable")?;
            for p in pgfork_git::hooks::install(&dir, &exe)? {
                println!("installed {}", p.display());
            }
        }
        HooksCommand::Uninstall => {
            let removed = pgfork_git::hooks::uninstall(&dir)?;
            if removed.is_empty() {
                println!("no pgfork hooks in {}", dir.display());
            }
            for p in removed {
                println!("removed pgfork's block from {}", p.display());
            }
        }
        HooksCommand::Status { json } => {
            let status = pgfork_git::hooks::status(&dir);
            if json {
                let v: Vec<_> = status
                    .iter()
                    .map(|h| serde_json::json!({"hook": h.name, "path": h.path, "installed": h.installed, "chained": h.chained, "executable": h.executable}))
                    .collect();
                print_json(&v)?;
            } else {
                println!("hooks directory: {}", dir.display());
                for h in status {
                    let state = match (h.installed, h.executable) {
                        (true, true) => "installed",
                        (true, false) => "installed but NOT executable (chmod +x it)",
                        (false, _) => "not installed (`pgfork hooks install`)",
                    };
                    println!(
                        "  {:<22} {state}{}",
                        h.name,
                        if h.chained {
                            ", chained with your own hook"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    Ok(0)
}

/// Runs a hook; never fails git: problems become one line on stderr and exit 0.
pub(super) async fn hook(name: &str, args: &[String]) -> i32 {
    let result: Result<()> = async {
        match name {
            "post-checkout" => {
                // Only branch checkouts (flag 1), not file checkouts.
                if args.get(2).map(String::as_str) != Some("1") {
                    return Ok(());
                }
                let Some(ctx) = Ctx::for_hook().await? else {
                    return Ok(());
                };
                pairing::on_checkout(&ctx).await
            }
            "reference-transaction" => {
                let mut stdin = String::new();
                use std::io::Read;
                let _ = std::io::stdin().read_to_string(&mut stdin);
                let state = args.first().map(String::as_str).unwrap_or("");
                pairing::on_reference_transaction(state, &stdin);
                if state == "committed" {
                    let changes = pairing::deleted_branches(&stdin);
                    if !changes.is_empty() {
                        pairing::announce_deletions(&changes).await;
                    }
                }
                Ok(())
            }
            "post-merge" => {
                pairing::on_merge();
                pairing::announce_gc().await;
                Ok(())
            }
            "settle" | "gc" => {
                let (pid, rest) = match args {
                    [flag, pid, rest @ ..] if flag == "--wait-pid" => {
                        (pid.parse().unwrap_or(0), rest)
                    }
                    _ => (0, args),
                };
                pairing::wait_for_pid(pid).await;
                let Some(ctx) = Ctx::for_hook().await? else {
                    return Ok(());
                };
                if name == "settle" {
                    pairing::settle_deletions(&ctx, rest).await
                } else {
                    let plan = pairing::gc_plan(&ctx).await?;
                    for a in &plan {
                        println!(
                            "pgfork gc: {} {:?}: {} (`pgfork branch recover {}` brings it back)",
                            a.action, a.branch, a.detail, a.branch
                        );
                    }
                    pairing::gc_apply(&ctx, &plan).await
                }
            }
            _ => Ok(()),
        }
    }
    .await;
    if let Err(e) = result {
        let mut line = output::error_sentence(&e);
        if name == "post-checkout" && args.get(2).map(String::as_str) == Some("1") {
            // The new HEAD's database could not be reached: .env must not keep the
            // previous branch's URL as if nothing happened.
            let reason = if pairing::stopped_marker().exists() {
                "daemon-stopped"
            } else {
                "pgfork-error"
            };
            if let Some(what) = pairing::mark_unpaired_here(reason) {
                line = format!(
                    "{}; {what} points nowhere until a checkout pairs HEAD again",
                    line.trim_end_matches('.')
                );
            }
        }
        // One line per problem, where git runs.
        eprintln!("pgfork: {line} (git continues)");
    }
    0
}
