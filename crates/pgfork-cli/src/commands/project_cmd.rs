//! `pgfork project list | get | delete`.

use super::*;

pub(super) async fn project_cmd(cmd: ProjectCommand) -> Result<i32> {
    let c = ensure_daemon().await?;
    match cmd {
        ProjectCommand::List { json } => {
            let all = c.list_projects().await?.projects;
            if json {
                print_json(&all)?;
            } else if all.is_empty() {
                println!("no projects: `pgfork init` in a repository makes one");
            } else {
                let mut rows = Vec::new();
                for p in &all {
                    let branches = c
                        .list_branches(&p.id, false, false)
                        .await
                        .map(|b| b.branches.len().to_string())
                        .unwrap_or_else(|_| "?".into());
                    rows.push(vec![
                        p.name.clone(),
                        p.id.clone(),
                        p.pg_version.to_string(),
                        branches,
                        p.created_at.format("%Y-%m-%d %H:%M").to_string(),
                    ]);
                }
                print!(
                    "{}",
                    table(&["NAME", "ID", "PG", "BRANCHES", "CREATED"], &rows)
                );
            }
        }
        ProjectCommand::Get { name, json } => {
            let p = c.get_project(&name).await?;
            if json {
                print_json(&p.project)?;
            } else {
                println!("name:     {}", p.project.name);
                println!("id:       {}", p.project.id);
                println!("postgres: {}", p.project.pg_version);
                println!(
                    "database: {} (role {})",
                    p.project.database_name, p.project.role_name
                );
                if let Some(su) = &p.project.pgfork_superuser {
                    println!("superuser: {su} (no password: pgfork psql --superuser)");
                }
                if let Some(root) = &p.branch {
                    println!("root:     {} ({})", root.name, root.state_word());
                }
            }
        }
        ProjectCommand::Delete { name, yes } => {
            let p = c.get_project(&name).await?.project;
            let count = c.list_branches(&p.id, true, false).await?.branches.len();
            if !yes {
                bail!(
                    "deleting project {:?} removes its {count} branch(es) for good, trash included: run `pgfork project delete {} --yes` to confirm",
                    p.name,
                    p.name
                );
            }
            c.delete_project(&p.id).await?;
            println!("deleted project {:?} and its {count} branch(es)", p.name);
        }
    }
    Ok(0)
}
