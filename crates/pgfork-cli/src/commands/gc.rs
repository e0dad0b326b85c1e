//! `pgfork gc`: the same plan the daemon applies every reaper interval, shown or applied now.

use super::*;

pub(super) async fn gc(explicit: Option<&str>, dry_run: bool, json: bool) -> Result<i32> {
    let ctx = Ctx::for_command(explicit).await?;
    let plan = pairing::gc_plan(&ctx).await?;
    if json {
        print_json(&serde_json::json!({"dry_run": dry_run, "actions": plan}))?;
    } else if plan.is_empty() {
        println!("nothing to collect");
    } else {
        for a in &plan {
            let verb = match (dry_run, a.action) {
                (true, "purge") => "would purge",
                (true, _) => "would delete",
                (false, "purge") => "purged",
                (false, _) => "deleted",
            };
            println!("{verb} {:?}: {}", a.branch, a.detail);
        }
    }
    if !dry_run {
        pairing::gc_apply(&ctx, &plan).await?;
    }
    Ok(0)
}
