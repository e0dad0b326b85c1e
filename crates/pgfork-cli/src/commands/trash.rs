//! `pgfork trash list | empty`: what deletion kept, and making room for good.

use super::*;

/// `pgfork trash list | empty`: what deletion kept, and making room for good.
pub(super) async fn trash(cmd: TrashCommand, explicit: Option<&str>) -> Result<i32> {
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    let trashed: Vec<api::Branch> = c
        .list_branches(&p, true, false)
        .await?
        .branches
        .into_iter()
        .filter(|b| b.state == "deleted")
        .collect();
    match cmd {
        TrashCommand::List { json } => {
            if json {
                print_json(&trashed.iter().map(view).collect::<Vec<_>>())?;
            } else if trashed.is_empty() {
                println!("the trash is empty");
            } else {
                let rows: Vec<Vec<String>> = trashed
                    .iter()
                    .map(|b| {
                        vec![
                            b.name.clone(),
                            b.id.clone(),
                            b.deleted_at
                                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_default(),
                            b.purge_at
                                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_default(),
                            if b.port == 0 {
                                "given up".into()
                            } else {
                                b.port.to_string()
                            },
                            b.pgfork_trash_reason
                                .clone()
                                .unwrap_or_else(|| "deleted".into()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["NAME", "ID", "DELETED", "PURGED AT", "PORT", "WHY"],
                        &rows
                    )
                );
                println!("`pgfork branch recover NAME|ID` brings one back; `pgfork trash empty` purges them");
            }
        }
        TrashCommand::Empty { older_than } => {
            let min_age = match older_than.as_deref() {
                Some(d) => Some(pgfork_core::parse_ttl(d).with_context(|| {
                    format!("--older-than {d:?}: give a duration such as 2h or 7d")
                })?),
                None => None,
            };
            let now = chrono::Utc::now();
            let mut purged = 0;
            for b in &trashed {
                let old_enough = match (min_age, b.deleted_at) {
                    (None, _) => true,
                    (Some(age), Some(d)) => (now - d).to_std().is_ok_and(|a| a >= age),
                    (Some(_), None) => false,
                };
                if old_enough {
                    c.delete_branch(&p, &b.id, true).await?;
                    purged += 1;
                }
            }
            println!("purged {purged} branch(es) from the trash");
        }
    }
    Ok(0)
}
