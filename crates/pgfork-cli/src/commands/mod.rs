//! The commands, one file per noun. This module holds the dispatcher and what several
//! of them share (waiting for operations, the branch a command means by default).
//! One function per command; each is a few API calls and some printing.

use crate::cli::{
    BranchCommand, Cli, Command, DaemonCommand, HooksCommand, ImportMethod, InitArgs, MaskCommand,
    McpArgs, McpClient, McpCommand, ProjectCommand, RemoteCommand, TokenCommand, TrashCommand,
    WebhookCommand,
};
use crate::connect::{ensure_daemon, home};
use crate::output::{self, bytes, print_json, table, view};
use crate::pairing::{self, Ctx};
use crate::project;
use anyhow::{bail, Context, Result};
use pgfork_api as api;
use pgfork_api::Client;
use std::time::{Duration, Instant};

mod allow;
mod branch;
mod daemon;
mod diff;
mod doctor;
mod gc;
mod hooks;
mod init;
mod mask;
mod mcp;
mod project_cmd;
mod psql;
mod remote;
mod reset;
mod root;
mod snapshot;
mod status;
mod token;
mod trash;
mod travel;
mod webhook;

use branch::branch;
use daemon::daemon;
use doctor::doctor;
use gc::gc;
use hooks::{hook, hooks};
use init::init;
use mcp::mcp;
use project_cmd::project_cmd;
use psql::psql;
use remote::remote;
use status::status;
use token::token;
use trash::trash;
use webhook::webhook;

pub async fn run(cli: Cli) -> Result<i32> {
    output::set_quiet(cli.quiet);
    output::set_show_password(cli.show_password);
    let explicit = cli.project.as_deref();
    match cli.command {
        Command::Init(args) => init(args, explicit).await,
        Command::Branch { command } => branch(command, explicit).await,
        Command::Url {
            follow: true,
            secure,
            ..
        } => {
            let ctx = Ctx::for_command(explicit).await?;
            if ctx.client.is_remote() {
                bail!("follow-HEAD URLs are served by a local daemon only: on a remote server use `pgfork url` (the .env file follows HEAD through the hooks)");
            }
            let f = ctx
                .client
                .follow(&ctx.project, &ctx.repo.root.display().to_string())
                .await?;
            let tls = if secure {
                Some(project::Tls::VerifyFull)
            } else {
                ctx.cfg.env.tls
            };
            println!("{}", project::with_tls(&f.connection_uri, tls));
            Ok(0)
        }
        Command::Url {
            branch,
            direct: true,
            role,
            ..
        } => {
            let c = ensure_daemon().await?;
            if c.is_remote() {
                bail!("--direct reaches a branch's unix socket on the daemon's own machine: run it there, without PGFORK_API");
            }
            let p = project::resolve(&c, explicit).await?;
            let b = resolve_default_branch(&c, &p, branch).await?;
            let project = c.get_project(&p).await?.project;
            // Wake it: the socket exists only while it runs.
            let b = c.set_running(&p, &b.id, true).await?.branch;
            let socket = crate::connect::layout()?.socket_dir(&b.id);
            let user = role.unwrap_or(project.role_name);
            println!(
                "postgresql:///{}?host={}&port={}&user={}",
                api::encode_segment(&project.database_name),
                api::encode_segment(&socket.display().to_string()),
                b.port,
                api::encode_segment(&user)
            );
            Ok(0)
        }
        Command::Url {
            branch,
            secure,
            role,
            ..
        } => {
            let c = ensure_daemon().await?;
            let p = project::resolve(&c, explicit).await?;
            let b = resolve_default_branch(&c, &p, branch).await?;
            let tls = if secure {
                Some(project::Tls::VerifyFull)
            } else {
                project::find_config()
                    .and_then(|path| project::read_config(&path).ok())
                    .and_then(|cfg| cfg.env.tls)
            };
            let url = if b.connection_uri.is_empty() {
                // A Neon server: its branches carry no URL; ask for one.
                neon_url(&c, &p, &b.id, role.as_deref()).await?
            } else {
                match role.as_deref() {
                    Some(r) => {
                        let url = project::for_role(&b.connection_uri, r)?;
                        // A password pgfork set (rotated on a branch of a protected one)
                        // goes in the URL; otherwise the role brings its own.
                        match c.reveal_password(&p, &b.id, r).await {
                            Ok(found) => project::with_password(&url, &found.password),
                            Err(_) => url,
                        }
                    }
                    None => b.connection_uri.clone(),
                }
            };
            println!("{}", project::with_tls(&url, tls));
            Ok(0)
        }
        Command::Psql {
            branch,
            superuser,
            args,
        } => psql(explicit, branch, superuser, args).await,
        Command::Diff {
            branch,
            against,
            database,
            json,
        } => {
            let c = ensure_daemon().await?;
            let p = project::resolve(&c, explicit).await?;
            diff::diff(
                &c,
                &p,
                diff::DiffRequest {
                    branch,
                    against,
                    database,
                    json,
                },
            )
            .await
        }
        Command::Status { json } => status(explicit, json).await,
        Command::Doctor { json } => doctor(json).await,
        Command::Daemon { command } => daemon(command).await,
        Command::Hooks { command } => hooks(command).await,
        Command::Hook { name, args } => Ok(hook(&name, &args).await),
        Command::Gc { dry_run, json } => gc(explicit, dry_run, json).await,
        Command::Trash { command } => trash(command, explicit).await,
        Command::Token { command } => token(command).await,
        Command::Remote { command } => remote(command).await,
        Command::Mcp(args) => mcp(args, explicit).await,
        Command::Project { command } => project_cmd(command).await,
        Command::Root { command } => root::root(command, explicit).await,
        Command::Snapshot { command } => snapshot::snapshot(command, explicit).await,
        Command::Mask { command } => mask::mask(command, explicit).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "pgfork", &mut std::io::stdout());
            Ok(0)
        }
        Command::Webhook { command } => webhook(command, explicit).await,
        Command::Allow => allow::allow(),
        Command::Demo { scale, keep } => crate::demo::run(scale, keep).await,
    }
}

/// A branch's URL from a server whose branches carry none (Neon): its only database
/// and role unless a role is named, as Neon's own CLI picks them.
async fn neon_url(c: &Client, project: &str, branch: &str, role: Option<&str>) -> Result<String> {
    let dbs = c.branch_databases(project, branch).await?.databases;
    let db = match dbs.as_slice() {
        [] => bail!("branch {branch:?} has no database"),
        [one] => one.name.clone(),
        many => many
            .iter()
            .find(|d| d.name != "postgres")
            .unwrap_or(&many[0])
            .name
            .clone(),
    };
    let role = match role {
        Some(r) => r.to_string(),
        None => {
            let roles = c.branch_roles(project, branch).await?.roles;
            match roles.as_slice() {
                [] => bail!("branch {branch:?} has no login role"),
                [one] => one.name.clone(),
                _ => bail!(
                    "branch {branch:?} has {} roles: name one with --role",
                    roles.len()
                ),
            }
        }
    };
    Ok(c.connection_uri(project, branch, &db, &role).await?.uri)
}

/// Waits for running operations, drawing progress, and fails if one failed.
/// An absolute expiry `ttl` from now (`7d`).
pub(crate) fn expiry_in(ttl: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(pgfork_core::expires_at_from_ttl(
        chrono::Utc::now(),
        pgfork_core::parse_ttl(ttl)?,
    ))
}

pub async fn wait_ops(c: &Client, project: &str, ops: &[api::Operation]) -> Result<()> {
    let mut warned = std::collections::HashSet::new();
    for op in ops {
        let mut current = op.clone();
        let mut bar: Option<indicatif::ProgressBar> = None;
        loop {
            for w in &current.warnings {
                if warned.insert(w.clone()) {
                    eprintln!("warning: {w}");
                }
            }
            if !current.is_running() {
                break;
            }
            if output::quiet() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                current = c.get_operation(project, &current.id).await?.operation;
                continue;
            }
            let pb = bar.get_or_insert_with(|| {
                let pb = indicatif::ProgressBar::new_spinner();
                pb.enable_steady_tick(Duration::from_millis(120));
                pb
            });
            if let Some(p) = &current.progress {
                // Phases that move bytes: copies, base backups, dumps.
                let bytes = ["copying", "pg_basebackup", "pg_dump"]
                    .iter()
                    .any(|b| p.phase.starts_with(b));
                let tmpl = match (p.total > 0, bytes) {
                    (true, true) => Some("{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"),
                    (true, false) => Some("{spinner} {msg} [{bar:30}] {pos}/{len}"),
                    (false, true) if p.done > 0 => Some("{spinner} {msg} {bytes} written, {bytes_per_sec}"),
                    _ => None,
                };
                if p.total > 0 {
                    pb.set_length(p.total);
                    pb.set_position(p.done.min(p.total));
                } else {
                    pb.set_position(p.done);
                }
                if let Some(style) =
                    tmpl.and_then(|t| indicatif::ProgressStyle::with_template(t).ok())
                {
                    pb.set_style(style.progress_chars("=> "));
                }
                pb.set_message(p.phase.clone());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            current = c.get_operation(project, &current.id).await?.operation;
        }
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        if current.status == "failed" {
            bail!(
                "{}",
                current
                    .error
                    .unwrap_or_else(|| format!("operation {} failed", current.action))
            );
        }
    }
    Ok(())
}

/// The project's root branch.
pub(super) async fn root_branch(c: &Client, p: &str) -> Result<api::Branch> {
    c.list_branches(p, false, false)
        .await?
        .branches
        .into_iter()
        .find(|b| b.parent_id.is_none())
        .ok_or_else(|| anyhow::anyhow!("project {p:?} has no root branch"))
}

/// An explicit branch, else the one named like the current git branch, else the root.
pub(super) async fn resolve_default_branch(
    c: &Client,
    p: &str,
    branch: Option<String>,
) -> Result<api::Branch> {
    if let Some(b) = branch {
        if let Some((base, moment)) = travel::split(&b) {
            // Only when no branch is really named so.
            if c.get_branch(p, &b, false).await.is_err() {
                return travel::branch_at(c, p, base, moment).await;
            }
        }
        return Ok(c.get_branch(p, &b, false).await?.branch);
    }
    let repo = std::env::current_dir()
        .ok()
        .and_then(|d| pgfork_git::Repo::discover(&d).ok());
    if let Some(repo) = repo {
        let Some(head) = repo.current_branch() else {
            bail!("HEAD is detached, so no database branch is paired with it: name one, e.g. `pgfork url main` (see `pgfork branch list`)");
        };
        return match paired_with_head(c, p, &head).await {
            Some(b) => Ok(b),
            None => bail!("git branch {head} has no database branch: check it out again to create one (the hooks do), or `pgfork branch create {head}`"),
        };
    }
    let proj = c.get_project(p).await?;
    proj.branch.context("the project has no root branch")
}

/// The live database branch paired with the current git HEAD, if any.
pub(super) async fn paired_with_head(c: &Client, project: &str, head: &str) -> Option<api::Branch> {
    let list = c.list_branches(project, false, false).await.ok()?.branches;
    let by_pairing = list
        .iter()
        .find(|b| b.git_branch.as_deref() == Some(head))
        .cloned();
    by_pairing.or_else(|| list.into_iter().find(|b| b.name == head))
}
