//! `pgfork root refresh`: make the project's root again from its source (the same import
//! it was made by, or another source), now and/or on a schedule the daemon keeps. The
//! root keeps its URL; branches made from it are untouched.

use super::*;
use crate::cli::{ImportMethod, RootCommand};

pub(super) async fn root(cmd: RootCommand, explicit: Option<&str>) -> Result<i32> {
    let RootCommand::Refresh {
        from_env,
        method,
        schedule,
        schedule_only,
        force,
        wait,
        json,
    } = cmd;
    if schedule_only && schedule.is_none() {
        bail!("--schedule-only changes the schedule: give --schedule daily (or weekly, 12h, off)");
    }
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    let root = c
        .get_project(&p)
        .await?
        .branch
        .context("the project has no root branch")?;
    let source = match from_env {
        Some(var) => {
            let url = std::env::var(&var).map_err(|_| {
                anyhow::anyhow!("--from-env {var}: the environment variable {var} is not set: export it with the source database URL")
            })?;
            let method = method.unwrap_or(match root.clone_method.as_str() {
                "replica" => ImportMethod::Replica,
                "subscribe" => ImportMethod::Subscribe,
                "pg_basebackup" => ImportMethod::Physical,
                _ => ImportMethod::Logical,
            });
            Some(match method {
                ImportMethod::Logical => api::RootSource::Logical { url },
                ImportMethod::Physical => api::RootSource::Physical { url },
                ImportMethod::Replica => api::RootSource::Replica { url },
                ImportMethod::Subscribe => api::RootSource::Subscribe {
                    url,
                    publication: None,
                },
            })
        }
        None if method.is_some() => {
            bail!("--method chooses how a new source is imported: give the source too, with --from-env VAR")
        }
        None => None,
    };
    let wait_seconds = match &wait {
        Some(w) => Some(pgfork_core::parse_ttl(w)?.as_secs()),
        None => None,
    };
    let started = Instant::now();
    let resp = c
        .refresh_root(
            &p,
            &api::RootRefreshRequest {
                source,
                schedule: schedule.clone(),
                now: Some(!schedule_only),
                refuse_sessions: !force,
                wait_seconds,
            },
        )
        .await?;
    wait_ops(&c, &p, &resp.operations).await?;
    if json {
        let after = c.get_project(&p).await?;
        print_json(&serde_json::json!({
            "branch": after.branch.as_ref().map(view),
            "schedule_seconds": resp.schedule_seconds,
            "next_refresh_at": resp.next_refresh_at,
            "import_report": after.project.pgfork_import_report,
        }))?;
        return Ok(0);
    }
    if !schedule_only {
        println!(
            "made the root {:?} again from its source in {:.1} s; its URL is unchanged and existing branches are untouched",
            root.name,
            started.elapsed().as_secs_f64()
        );
        if let Some(report) = c.get_project(&p).await?.project.pgfork_import_report {
            super::init::print_import_report(&report);
        }
    }
    match (resp.schedule_seconds, resp.next_refresh_at) {
        (Some(_), Some(next)) => println!(
            "  schedule: every {}, next at {} (`pgfork root refresh --schedule off --schedule-only` stops it)",
            output::ago(chrono::Duration::seconds(resp.schedule_seconds.unwrap_or(0))),
            next.format("%Y-%m-%d %H:%M UTC")
        ),
        _ if schedule.is_some() => println!("  schedule: off (refreshed by hand only)"),
        _ => {}
    }
    Ok(0)
}
