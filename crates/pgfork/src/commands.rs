//! One function per command; each is a few API calls and some printing.

use crate::cli::{
    BranchCommand, Cli, Command, DaemonCommand, HooksCommand, ImportMethod, InitArgs, TrashCommand,
};
use crate::connect::{client, ensure_daemon, home};
use crate::output::{self, bytes, print_json, table, view};
use crate::pairing::{self, Ctx};
use crate::project;
use anyhow::{bail, Context, Result};
use pgfork_api as api;
use pgfork_api::Client;
use std::time::{Duration, Instant};

pub async fn run(cli: Cli) -> Result<i32> {
    let explicit = cli.project.as_deref();
    match cli.command {
        Command::Init(args) => init(args, explicit).await,
        Command::Branch { command } => branch(command, explicit).await,
        Command::Url { follow: true, .. } => {
            let ctx = Ctx::for_command(explicit).await?;
            let f = ctx
                .client
                .follow(&ctx.project, &ctx.repo.root.display().to_string())
                .await?;
            println!("{}", f.connection_uri);
            Ok(0)
        }
        Command::Url { branch, .. } => {
            let c = ensure_daemon().await?;
            let p = project::resolve(&c, explicit).await?;
            let b = resolve_default_branch(&c, &p, branch).await?;
            println!("{}", b.connection_uri);
            Ok(0)
        }
        Command::Psql { branch, args } => psql(explicit, branch, args).await,
        Command::Status { json } => status(explicit, json).await,
        Command::Doctor { json } => doctor(json).await,
        Command::Daemon { command } => daemon(command).await,
        Command::Hooks { command } => hooks(command).await,
        Command::Hook { name, args } => Ok(hook(&name, &args).await),
        Command::Gc { dry_run, json } => gc(explicit, dry_run, json).await,
        Command::Trash { command } => trash(command, explicit).await,
        Command::Demo { scale, keep } => crate::demo::run(scale, keep).await,
    }
}

/// Waits for running operations, drawing progress, and fails if one failed.
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
            let pb = bar.get_or_insert_with(|| {
                let pb = indicatif::ProgressBar::new_spinner();
                pb.enable_steady_tick(Duration::from_millis(120));
                pb
            });
            if let Some(p) = &current.progress {
                if p.total > 0 {
                    pb.set_length(p.total);
                    pb.set_position(p.done.min(p.total));
                    let tmpl = if p.phase.starts_with("copying") {
                        "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                    } else {
                        "{spinner} {msg} [{bar:30}] {pos}/{len}"
                    };
                    if let Ok(style) = indicatif::ProgressStyle::with_template(tmpl) {
                        pb.set_style(style.progress_chars("=> "));
                    }
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

async fn init(args: InitArgs, explicit: Option<&str>) -> Result<i32> {
    let cwd = std::env::current_dir().context("could not read the current directory")?;
    let top = pgfork_git::Repo::discover(&cwd)
        .map(|r| r.root)
        .unwrap_or(cwd);
    let config_path = top.join(project::CONFIG_FILE);
    let name = match (explicit, config_path.is_file()) {
        (Some(p), _) => p.to_string(),
        (None, true) => project::read_config(&config_path)?.project.name,
        (None, false) => project::project_name_from_dir(&top),
    };
    pgfork_core::validate_project_name(&name)?;
    let source = if let Some(url) = args.from {
        match args.method {
            ImportMethod::Logical => api::RootSource::Logical { url },
            ImportMethod::Physical => api::RootSource::Physical { url },
        }
    } else if let Some(dir) = args.from_dir {
        let abs = std::fs::canonicalize(&dir).with_context(|| {
            format!(
                "{} does not exist: pass the data directory of a stopped PostgreSQL",
                dir.display()
            )
        })?;
        api::RootSource::Dir {
            path: abs.display().to_string(),
        }
    } else if args.sample {
        api::RootSource::Sample { scale: args.scale }
    } else {
        api::RootSource::Empty
    };
    let c = ensure_daemon().await?;
    if let Ok(existing) = c.get_project(&name).await {
        if !config_path.is_file() {
            project::write_config(&config_path, &name)?;
        }
        let root = existing.branch.map(|b| b.name).unwrap_or_default();
        eprintln!("project {name:?} is already initialized (root branch {root:?}); nothing to do");
        return Ok(0);
    }
    let started = Instant::now();
    let resp = c
        .create_project(&api::ProjectCreateRequest {
            project: api::ProjectCreate {
                name: name.clone(),
                pg_version: None,
                default_branch_name: Some(args.root.clone()),
                pgfork_source: Some(source),
            },
        })
        .await?;
    wait_ops(&c, &resp.project.id, &resp.operations).await?;
    let mut root = c.get_branch(&name, &args.root, false).await?.branch;
    project::write_config(&config_path, &name)?;
    let git_setup = match pgfork_git::Repo::discover(&top) {
        Ok(repo) => setup_git(&c, &name, &repo, &mut root, args.no_hooks).await?,
        Err(_) => vec!["not a git repository: no hooks, no pairing (run `pgfork init` in a repository for those)".to_string()],
    };
    if args.json {
        print_json(&serde_json::json!({"project": resp.project, "branch": view(&root)}))?;
    } else {
        println!(
            "initialized project {name:?}: root branch {:?} in {:.1} s",
            root.name,
            started.elapsed().as_secs_f64()
        );
        println!("  url:     {}", root.connection_uri);
        println!("  config:  {}", config_path.display());
        for line in git_setup {
            println!("  {line}");
        }
    }
    Ok(0)
}

/// In a git repository: pair HEAD with the root, install the hooks, write the env file
/// and keep it out of git. Returns lines for the user.
async fn setup_git(
    c: &Client,
    project: &str,
    repo: &pgfork_git::Repo,
    root: &mut api::Branch,
    no_hooks: bool,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    c.register_repo(project, &repo.root.display().to_string())
        .await?;
    // Hooks run by GUI clients and IDEs lack the shell's PGFORK_HOME: the repository
    // remembers its store (machine-local git config, never committed).
    let home = crate::connect::home();
    repo.must(&[
        "config",
        "--local",
        crate::connect::REPO_HOME_KEY,
        &home.display().to_string(),
    ])
    .context("could not record the store in the repository's git config")?;
    if let Some(head) = repo.current_branch() {
        let req = api::BranchUpdateRequest {
            branch: api::BranchUpdate {
                git_branch: Some(Some(head.clone())),
                ..Default::default()
            },
        };
        *root = c.update_branch(project, &root.id, &req).await?.branch;
        lines.push(format!(
            "paired:  git branch {head} <-> database branch {}",
            root.name
        ));
    }
    if no_hooks {
        lines.push("hooks:   not installed (--no-hooks); `pgfork hooks install` adds them".into());
    } else {
        let dir = repo
            .hooks_dir()
            .context("git did not say where its hooks live")?;
        let exe = std::env::current_exe().context("could not find the pgfork executable")?;
        pgfork_git::hooks::install(&dir, &exe)?;
        lines.push(format!(
            "hooks:   installed in {} (post-checkout, reference-transaction, post-merge)",
            dir.display()
        ));
    }
    let ctx = Ctx {
        repo: repo.clone(),
        cfg: project::read_config(&repo.root.join(project::CONFIG_FILE))?,
        client: c.clone(),
        project: project.to_string(),
    };
    pairing::write_env(&ctx, root)?;
    if ctx.cfg.branches.follow_head {
        let f = c.follow(project, &repo.root.display().to_string()).await?;
        lines.push(format!(
            "follow:  {} (always the current HEAD's database)",
            f.connection_uri
        ));
    }
    let env = std::path::Path::new(&ctx.cfg.env.file);
    lines.push(format!(
        "env:     {} sets {}",
        ctx.cfg.env.file,
        ctx.cfg.env.vars.join(", ")
    ));
    if !repo.is_ignored(env) && !repo.is_tracked(env) {
        let gitignore = repo.root.join(".gitignore");
        let mut text = std::fs::read_to_string(&gitignore).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "# pgfork: holds the current branch's database URL and password\n/{}\n",
            ctx.cfg.env.file
        ));
        std::fs::write(&gitignore, text)
            .with_context(|| format!("could not write {}", gitignore.display()))?;
        lines.push(format!(
            "ignored: added /{} to .gitignore (it holds a password)",
            ctx.cfg.env.file
        ));
    }
    Ok(lines)
}

/// `10m` → 600, `-1`/`never` → -1, `default` → 0 (Neon's suspend_timeout_seconds).
fn parse_idle_timeout(s: &str) -> Result<i64> {
    match s.trim() {
        "-1" | "never" => Ok(-1),
        "default" | "0" => Ok(0),
        other => Ok(pgfork_core::parse_ttl(other)?
            .as_secs()
            .min(i64::MAX as u64) as i64),
    }
}

fn parse_expiry(
    ttl: Option<&str>,
    at: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    if let Some(t) = ttl {
        let d = pgfork_core::parse_ttl(t)?;
        return Ok(Some(pgfork_core::expires_at_from_ttl(
            chrono::Utc::now(),
            d,
        )));
    }
    if let Some(a) = at {
        let t = chrono::DateTime::parse_from_rfc3339(a).with_context(|| {
            format!(
                "--expires-at {a:?} is not an RFC 3339 time: write it like 2026-12-01T18:00:00Z"
            )
        })?;
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    Ok(None)
}

async fn branch(cmd: BranchCommand, explicit: Option<&str>) -> Result<i32> {
    // Validate names before anything else, so bad input never starts a daemon.
    let name_arg = match &cmd {
        BranchCommand::Create { name, .. } => Some(name),
        BranchCommand::Rename { new, .. } => Some(new),
        _ => None,
    };
    if let Some(n) = name_arg {
        pgfork_core::validate_branch_name(n)?;
    }
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    match cmd {
        BranchCommand::Create {
            name,
            parent,
            ttl,
            expires_at,
            protected,
            idle_timeout,
            json,
        } => {
            let suspend_timeout_seconds = idle_timeout
                .as_deref()
                .map(parse_idle_timeout)
                .transpose()?;
            // Branches made by hand (CI jobs, agents) get the repository's default TTL.
            let default_ttl = project::find_config()
                .and_then(|p| project::read_config(&p).ok())
                .and_then(|c| c.branches.default_ttl);
            let ttl = ttl.or(if expires_at.is_none() {
                default_ttl
            } else {
                None
            });
            let expires_at = parse_expiry(ttl.as_deref(), expires_at.as_deref())?;
            let started = Instant::now();
            let resp = c
                .create_branch(
                    &p,
                    &api::BranchCreateRequest {
                        branch: api::BranchCreate {
                            name: Some(name.clone()),
                            parent_id: parent,
                            expires_at,
                            protected: protected.then_some(true),
                            git_branch: None,
                            suspend_timeout_seconds,
                        },
                        endpoints: vec![serde_json::json!({"type": "read_write"})],
                    },
                )
                .await?;
            wait_ops(&c, &p, &resp.operations).await?;
            let b = if resp.operations.iter().any(|o| o.is_running()) {
                c.get_branch(&p, &resp.branch.id, false).await?.branch
            } else {
                resp.branch
            };
            let secs = started.elapsed().as_secs_f64();
            if json {
                print_json(&view(&b))?;
            } else {
                println!(
                    "created branch {:?} from {:?} in {secs:.2} s ({})",
                    b.name,
                    b.parent_name.as_deref().unwrap_or("-"),
                    b.clone_method
                );
                println!("{}", b.connection_uri);
            }
        }
        BranchCommand::List { all, json } => {
            let list = c.list_branches(&p, all, true).await?.branches;
            if json {
                print_json(&list.iter().map(view).collect::<Vec<_>>())?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|b| {
                        vec![
                            b.name.clone(),
                            b.parent_name.clone().unwrap_or_else(|| "-".into()),
                            b.state.clone(),
                            b.port.to_string(),
                            bytes(b.logical_bytes),
                            bytes(b.unique_bytes),
                            b.clone_method.clone(),
                            b.expires_at
                                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "NAME", "PARENT", "STATE", "PORT", "LOGICAL", "UNIQUE", "METHOD",
                            "EXPIRES"
                        ],
                        &rows
                    )
                );
            }
        }
        BranchCommand::Get { name, json } => {
            let b = c.get_branch(&p, &name, true).await?.branch;
            if json {
                print_json(&view(&b))?;
            } else {
                let v = serde_json::to_value(view(&b))?;
                if let Some(obj) = v.as_object() {
                    for (k, val) in obj {
                        let s = match val {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => "-".into(),
                            other => other.to_string(),
                        };
                        println!("{k:<14} {s}");
                    }
                }
            }
        }
        BranchCommand::Delete { name, purge } => {
            let b = c.delete_branch(&p, &name, purge).await?.branch;
            if purge {
                println!("purged branch {:?}", b.name);
            } else {
                let until = b
                    .purge_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                println!(
                    "deleted branch {:?}; recover it until {until} with `pgfork branch recover {}`",
                    b.name, b.name
                );
            }
        }
        BranchCommand::Recover { name } => {
            let resp = c.recover_branch(&p, &name).await?;
            for w in resp.operations.iter().flat_map(|o| &o.warnings) {
                eprintln!("note: {w}");
            }
            let b = resp.branch;
            println!("recovered branch {:?}\n{}", b.name, b.connection_uri);
        }
        BranchCommand::Reset { name } => {
            let started = Instant::now();
            let resp = c.restore_branch(&p, &name).await?;
            wait_ops(&c, &p, &resp.operations).await?;
            println!(
                "reset {:?} to the current state of {:?} in {:.2} s; its URL is unchanged",
                resp.branch.name,
                resp.branch.parent_name.as_deref().unwrap_or("-"),
                started.elapsed().as_secs_f64()
            );
        }
        BranchCommand::Start { name } => {
            let b = c.set_running(&p, &name, true).await?.branch;
            println!("{:?} is running on port {}", b.name, b.port);
        }
        BranchCommand::Stop { name } => {
            let b = c.set_running(&p, &name, false).await?.branch;
            println!("{:?} is stopped", b.name);
        }
        BranchCommand::Rename { old, new } => {
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    name: Some(new),
                    ..Default::default()
                },
            };
            let b = c.update_branch(&p, &old, &req).await?.branch;
            println!("renamed {old:?} to {:?}", b.name);
        }
        BranchCommand::SetTtl { name, ttl } => {
            let expires = if ttl.eq_ignore_ascii_case(pgfork_core::DEFAULT_TTL_NONE) {
                None
            } else {
                parse_expiry(Some(&ttl), None)?
            };
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    expires_at: Some(expires),
                    ..Default::default()
                },
            };
            let b = c.update_branch(&p, &name, &req).await?.branch;
            match b.expires_at {
                Some(t) => println!("{:?} expires at {}", b.name, t.format("%Y-%m-%d %H:%M UTC")),
                None => println!("{:?} no longer expires", b.name),
            }
        }
        BranchCommand::SetIdleTimeout { name, timeout } => {
            let secs = parse_idle_timeout(&timeout)?;
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    suspend_timeout_seconds: Some(secs),
                    ..Default::default()
                },
            };
            let b = c.update_branch(&p, &name, &req).await?.branch;
            match b.suspend_timeout_seconds {
                -1 => println!("{:?} is never suspended for idleness", b.name),
                0 => println!("{:?} uses the daemon's idle timeout", b.name),
                s => println!("{:?} is suspended after {s} s without clients", b.name),
            }
        }
        BranchCommand::Migrate { name } => {
            let ctx = Ctx::for_command(Some(&p)).await?;
            if ctx.cfg.hooks.after_create.is_none() {
                bail!("this repository's .pgfork.toml has no [hooks] after_create command to run");
            }
            let b = c.get_branch(&p, &name, false).await?.branch;
            if !pairing::run_after_create(&ctx, &b).await {
                bail!("the after-create command failed on {:?}", b.name);
            }
            println!("after-create command succeeded on {:?}", b.name);
        }
        BranchCommand::Protect { name } => set_protected(&c, &p, &name, true).await?,
        BranchCommand::Unprotect { name } => set_protected(&c, &p, &name, false).await?,
    }
    Ok(0)
}

async fn hooks(cmd: HooksCommand) -> Result<i32> {
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
async fn hook(name: &str, args: &[String]) -> i32 {
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
                pairing::on_reference_transaction(
                    args.first().map(String::as_str).unwrap_or(""),
                    &stdin,
                );
                Ok(())
            }
            "post-merge" => {
                pairing::on_merge();
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

/// `pgfork trash list | empty`: what deletion kept, and making room for good.
async fn trash(cmd: TrashCommand, explicit: Option<&str>) -> Result<i32> {
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

async fn gc(explicit: Option<&str>, dry_run: bool, json: bool) -> Result<i32> {
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

async fn set_protected(c: &Client, p: &str, name: &str, protected: bool) -> Result<()> {
    let req = api::BranchUpdateRequest {
        branch: api::BranchUpdate {
            protected: Some(protected),
            ..Default::default()
        },
    };
    let b = c.update_branch(p, name, &req).await?.branch;
    println!(
        "{:?} is {}",
        b.name,
        if b.protected {
            "protected"
        } else {
            "no longer protected"
        }
    );
    Ok(())
}

/// An explicit branch, else the one named like the current git branch, else the root.
async fn resolve_default_branch(
    c: &Client,
    p: &str,
    branch: Option<String>,
) -> Result<api::Branch> {
    if let Some(b) = branch {
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

async fn psql(explicit: Option<&str>, branch: Option<String>, args: Vec<String>) -> Result<i32> {
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    let b = resolve_default_branch(&c, &p, branch).await?;
    let psql = pgfork_pg::PgInstalls::discover(
        std::env::var_os("PGFORK_PG_BIN")
            .map(std::path::PathBuf::from)
            .as_deref(),
    )
    .map(|i| i.newest().bin("psql"))
    .unwrap_or_else(|_| "psql".into());
    use std::os::unix::process::CommandExt;
    // The password goes through the environment, not argv, where `ps` would show it.
    let (url, password) = split_password(&b.connection_uri);
    let mut cmd = std::process::Command::new(&psql);
    cmd.arg(url).args(&args);
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    let err = cmd.exec();
    bail!("could not run {}: {err}: install the PostgreSQL client (apt-get install postgresql-client)", psql.display())
}

/// Whether `pid` runs `pgfork daemon run` (a pid in a stale lock file may be reused).
fn is_pgfork_daemon(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let s = String::from_utf8_lossy(&c).replace('\0', " ");
            s.contains("pgfork") && s.contains("daemon run")
        })
        .unwrap_or(false)
}

/// `postgresql://user:pw@host/db` → (`postgresql://user@host/db`, `Some(pw)`).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_string(), None);
    };
    let Some(at) = url[scheme_end..].find('@').map(|i| i + scheme_end) else {
        return (url.to_string(), None);
    };
    match url[scheme_end..at].split_once(':') {
        Some((user, pw)) => (
            format!("{}{user}{}", &url[..scheme_end], &url[at..]),
            Some(pw.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

async fn status(explicit: Option<&str>, json: bool) -> Result<i32> {
    let c = ensure_daemon().await?;
    let st = c.status().await?;
    let repo = std::env::current_dir()
        .ok()
        .and_then(|d| pgfork_git::Repo::discover(&d).ok());
    let head = repo.as_ref().and_then(|r| r.current_branch());
    let proj = project::resolve(&c, explicit).await.ok();
    let paired = match (&proj, &head) {
        (Some(p), Some(h)) => paired_with_head(&c, p, h).await,
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
            .unwrap_or_else(|| "(none: run `pgfork init`)".into())
    );
    match &paired {
        Some(b) => println!(
            "branch:   {} ({}, port {})\n          {}",
            b.name, b.state, b.port, b.connection_uri
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
    println!(
        "store:    {} on {} ({})",
        st.home, st.filesystem, st.clone_method
    );
    if let Some(w) = st.store_warning {
        eprintln!("warning: {w}");
    }
    Ok(0)
}

/// The live database branch paired with the current git HEAD, if any.
async fn paired_with_head(c: &Client, project: &str, head: &str) -> Option<api::Branch> {
    let list = c.list_branches(project, false, false).await.ok()?.branches;
    let by_pairing = list
        .iter()
        .find(|b| b.git_branch.as_deref() == Some(head))
        .cloned();
    by_pairing.or_else(|| list.into_iter().find(|b| b.name == head))
}

async fn doctor(json: bool) -> Result<i32> {
    let checks = match ensure_daemon().await {
        Ok(c) => c.doctor().await?.checks,
        Err(e) => {
            // The daemon cannot start: diagnose locally what it would need.
            let mut checks = vec![api::Check {
                name: "daemon".into(),
                status: "fail".into(),
                detail: output::error_sentence(&e),
                fix: Some(format!(
                    "fix the problems below, then run `pgfork daemon start`; log: {}",
                    pgfork_daemon::Layout::new(&home()).daemon_log.display()
                )),
            }];
            match pgfork_pg::PgInstalls::discover(
                std::env::var_os("PGFORK_PG_BIN")
                    .map(std::path::PathBuf::from)
                    .as_deref(),
            ) {
                Ok(i) => checks.push(api::Check {
                    name: "postgres".into(),
                    status: "ok".into(),
                    detail: i.newest().version.clone(),
                    fix: None,
                }),
                Err(err) => checks.push(api::Check {
                    name: "postgres".into(),
                    status: "fail".into(),
                    detail: "no PostgreSQL binaries found".into(),
                    fix: Some(err.to_string()),
                }),
            }
            checks
        }
    };
    let failed = checks.iter().any(|c| c.status == "fail");
    if json {
        print_json(&checks)?;
    } else {
        for c in &checks {
            let mark = match c.status.as_str() {
                "ok" => "ok  ",
                "warn" => "WARN",
                _ => "FAIL",
            };
            println!("{mark} {:<14} {}", c.name, c.detail);
            if let Some(f) = &c.fix {
                println!("     {:<14} fix: {f}", "");
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

async fn daemon(cmd: DaemonCommand) -> Result<i32> {
    match cmd {
        DaemonCommand::Run { listen } => {
            let mut cfg = pgfork_daemon::Config::from_env(home()).map_err(anyhow::Error::msg)?;
            if let Some(addr) = listen {
                cfg.listen = addr.parse().with_context(|| {
                    format!("--listen {addr:?} is not an IP address: use e.g. 127.0.0.1 or 0.0.0.0")
                })?;
            }
            pgfork_daemon::run(cfg).await?;
            Ok(0)
        }
        DaemonCommand::Start => {
            let c = ensure_daemon().await?;
            let st = c.status().await?;
            println!("pgfork daemon running (pid {}, home {})", st.pid, st.home);
            Ok(0)
        }
        DaemonCommand::Stop => {
            let c = client()?.with_timeout(Duration::from_secs(10));
            let layout = pgfork_daemon::Layout::new(&home());
            // Hooks will not bring back a daemon the user stopped on purpose.
            let _ = std::fs::write(pairing::stopped_marker(), "");
            let (pid, branches) = match c.status().await {
                Ok(st) => {
                    let _ = c.shutdown().await;
                    (st.pid as i32, st.running_branches)
                }
                Err(_) => {
                    // Not answering: a hung daemon still holds its lock file with its pid.
                    let pid = std::fs::read_to_string(&layout.lock)
                        .ok()
                        .and_then(|t| t.trim().parse::<i32>().ok());
                    match pid
                        .filter(|p| pgfork_pg::instance::process_alive(*p) && is_pgfork_daemon(*p))
                    {
                        Some(p) => {
                            eprintln!(
                                "warning: the daemon (pid {p}) does not answer; sending it SIGTERM"
                            );
                            // SAFETY: signalling the daemon identified by its lock file.
                            unsafe { libc::kill(p, libc::SIGTERM) };
                            (p, 0)
                        }
                        None => {
                            println!("no pgfork daemon is running for {}", home().display());
                            return Ok(0);
                        }
                    }
                }
            };
            let started = Instant::now();
            // The daemon answers until it has stopped every branch; wait for it to go.
            while pgfork_pg::instance::process_alive(pid) {
                if started.elapsed() > Duration::from_secs(90) {
                    // SAFETY: as above; its postmasters are re-adopted by the next daemon.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    bail!("the daemon (pid {pid}) did not stop within 90 s and was killed: its branches keep running until the next `pgfork daemon start`");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!("pgfork daemon stopped ({branches} branch(es) stopped)");
            Ok(0)
        }
        DaemonCommand::Status { json } => {
            let c = client()?;
            match c.status().await {
                Ok(st) => {
                    if json {
                        print_json(&st)?;
                    } else {
                        println!(
                            "running: pid {}, home {}, {} on {}, {} branch(es) running",
                            st.pid, st.home, st.clone_method, st.filesystem, st.running_branches
                        );
                    }
                    Ok(0)
                }
                Err(_) => {
                    if json {
                        print_json(&serde_json::json!({"running": false, "home": home()}))?;
                    } else {
                        println!("not running (home {})", home().display());
                    }
                    Ok(3)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        let (url, pw) = split_password("postgresql://postgres:s3cret@127.0.0.1:26001/postgres");
        assert_eq!(url, "postgresql://postgres@127.0.0.1:26001/postgres");
        assert_eq!(pw.as_deref(), Some("s3cret"));
        assert_eq!(
            split_password("postgresql://u@h/d"),
            ("postgresql://u@h/d".to_string(), None)
        );
    }
}
