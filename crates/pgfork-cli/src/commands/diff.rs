//! `pgfork diff [BRANCH]` (and `pgfork branch diff NAME`): a branch's schema against its
//! parent or another branch, as a unified diff of normalised DDL for people and as a
//! list of changed objects (`--json`) for tools. Both come from one API call, Neon's
//! `compare_schema`, so a remote server answers the same.

use super::*;

pub(super) struct DiffRequest {
    pub branch: Option<String>,
    pub against: Option<String>,
    pub database: Option<String>,
    pub json: bool,
}

pub(super) async fn diff(c: &Client, p: &str, req: DiffRequest) -> Result<i32> {
    let b = resolve_default_branch(c, p, req.branch).await?;
    let database = match req.database {
        Some(d) => d,
        None => {
            let db = c.get_project(p).await?.project.database_name;
            // Neon's projects do not name a default database.
            if db.is_empty() {
                "postgres".to_string()
            } else {
                db
            }
        }
    };
    let against = match req.against {
        Some(a) => Some(c.get_branch(p, &a, false).await?.branch),
        None => None,
    };
    if against.is_none() && b.parent_id.is_none() {
        bail!(
            "{:?} is the root and has no parent to compare with: pass --against BRANCH",
            b.name
        );
    }
    let resp = c
        .compare_schema(p, &b.id, against.as_ref().map(|a| a.id.as_str()), &database)
        .await?;
    if req.json {
        print_json(&serde_json::json!({
            "branch": b.name,
            "against": against.map(|a| a.name),
            "database": database,
            "changes": resp.pgfork_changes,
            "diff": resp.diff,
        }))?;
    } else if resp.diff.trim().is_empty() {
        crate::note!("no schema differences");
    } else {
        print!("{}", resp.diff);
    }
    Ok(0)
}
