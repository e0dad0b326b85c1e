//! `pgfork snapshot …` and the two ways back from one: `branch create NAME
//! --from-snapshot S` (a new branch) and `branch restore NAME --to S` (the branch's own
//! data replaced, same URL and password, what it held kept as a snapshot).

use super::*;
use crate::cli::SnapshotCommand;

pub(super) async fn snapshot(cmd: SnapshotCommand, explicit: Option<&str>) -> Result<i32> {
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    match cmd {
        SnapshotCommand::Create {
            branch,
            name,
            ttl,
            json,
        } => {
            if let Some(n) = &name {
                pgfork_core::validate_branch_name(n)?;
            }
            let expires = match ttl.as_deref() {
                Some(t) => Some(super::expiry_in(t)?),
                None => None,
            };
            let b = resolve_default_branch(&c, &p, branch).await?;
            let started = Instant::now();
            let s = c
                .create_snapshot(&p, &b.id, name.as_deref(), expires, None)
                .await?
                .snapshot;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "snapshot {:?} of {:?} taken in {:.2} s (`pgfork branch restore {} --to {}` goes back to it)",
                    s.name,
                    b.name,
                    started.elapsed().as_secs_f64(),
                    b.name,
                    s.name
                );
            }
        }
        SnapshotCommand::List { json } => {
            let list = c.list_snapshots(&p).await?.snapshots;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                crate::note!("no snapshots yet: `pgfork snapshot create BRANCH`");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.pgfork_source_branch_name.clone(),
                            s.pgfork_reason.clone(),
                            s.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            s.expires_at
                                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["NAME", "BRANCH", "REASON", "TAKEN", "EXPIRES"], &rows)
                );
            }
        }
        SnapshotCommand::Delete { name } => {
            c.delete_snapshot(&p, &name).await?;
            println!("deleted snapshot {name:?}");
        }
    }
    Ok(0)
}

/// The snapshot `--to` names: a snapshot's name or id, or `before-last-migration` (the
/// newest snapshot taken of `branch` before its after-create command ran).
pub(super) async fn resolve_target(
    c: &Client,
    p: &str,
    branch: &api::Branch,
    to: &str,
) -> Result<String> {
    if to != "before-last-migration" {
        return Ok(to.to_string());
    }
    let list = c.list_snapshots(p).await?.snapshots;
    list.into_iter()
        .filter(|s| s.source_branch_id == branch.id && s.pgfork_reason == "before-migration")
        .max_by_key(|s| s.created_at)
        .map(|s| s.id)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{:?} has no snapshot from before a migration: they are taken before each after-create command on a reflink store; see `pgfork snapshot list`",
                branch.name
            )
        })
}

pub(super) async fn restore(
    c: &Client,
    p: &str,
    name: String,
    to: String,
    force: bool,
    wait: Option<String>,
) -> Result<i32> {
    let b = c.get_branch(p, &name, false).await?.branch;
    let wait_seconds = match &wait {
        Some(w) => Some(pgfork_core::parse_ttl(w)?.as_secs()),
        None => None,
    };
    if super::branch::looks_like_moment(&to) {
        let (timestamp, lsn) = super::branch::parse_moment(&to)?;
        let started = Instant::now();
        let resp = c
            .restore_branch_with(
                p,
                &b.id,
                &api::BranchRestoreRequest {
                    source_branch_id: Some(b.id.clone()),
                    source_timestamp: timestamp,
                    source_lsn: lsn,
                    pgfork_refuse_sessions: !force,
                    pgfork_wait_seconds: wait_seconds,
                    ..Default::default()
                },
            )
            .await?;
        wait_ops(c, p, &resp.operations).await?;
        println!(
            "restored {:?} to {to} in {:.2} s; its URL is unchanged, and what it held is kept as snapshot {}-before-restore-… for 7 days (`pgfork snapshot list`)",
            b.name,
            started.elapsed().as_secs_f64(),
            b.name
        );
        return Ok(0);
    }
    let snap = resolve_target(c, p, &b, &to).await?;
    let started = Instant::now();
    let resp = c
        .restore_snapshot(
            p,
            &snap,
            &api::SnapshotRestoreRequest {
                target_branch_id: Some(b.id.clone()),
                finalize_restore: true,
                pgfork_refuse_sessions: !force,
                pgfork_wait_seconds: wait_seconds,
                ..Default::default()
            },
        )
        .await?;
    wait_ops(c, p, &resp.operations).await?;
    println!(
        "restored {:?} from snapshot {to:?} in {:.2} s; its URL is unchanged, and what it held is kept as snapshot {}-before-restore-… for 7 days (`pgfork snapshot list`)",
        b.name,
        started.elapsed().as_secs_f64(),
        b.name
    );
    Ok(0)
}
