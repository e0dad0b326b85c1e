//! `pgfork init`: a project and its root branch, `.pgfork.toml`, and in a git repository the
//! pairing of HEAD, the hooks, the env file and the store recorded in the repository's git config.

use super::*;

pub(super) async fn init(args: InitArgs, explicit: Option<&str>) -> Result<i32> {
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
    let from = match (args.from.as_deref(), args.from_env.as_deref()) {
        (Some("-"), _) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("could not read the source URL from standard input")?;
            let url = line.trim().to_string();
            if url.is_empty() {
                bail!("--from - read no URL from standard input: pipe one in, e.g. `printenv SOURCE_URL | pgfork init --from -`");
            }
            Some(url)
        }
        (Some(url), _) => Some(url.to_string()),
        (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
            anyhow::anyhow!("--from-env {var}: the environment variable {var} is not set: export it with the source database URL")
        })?),
        (None, None) => None,
    };
    if args.publication.is_some() && args.method != ImportMethod::Subscribe {
        bail!("--publication names the publication a subscription follows: add --method subscribe");
    }
    let source = if let Some(url) = from {
        match args.method {
            ImportMethod::Logical => api::RootSource::Logical { url },
            ImportMethod::Physical => api::RootSource::Physical { url },
            ImportMethod::Replica => api::RootSource::Replica { url },
            ImportMethod::Subscribe => api::RootSource::Subscribe {
                url,
                publication: args.publication.clone(),
            },
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
    // Read (and check) the rules before anything is imported.
    let masking = match &args.mask {
        None => None,
        Some(file) => Some(project::read_masking_rules(file)?),
    };
    let c = ensure_daemon().await?;
    if let Ok(existing) = c.get_project(&name).await {
        if !config_path.is_file() {
            project::write_config(&config_path, &name)?;
        }
        let root = existing.branch.map(|b| b.name).unwrap_or_default();
        crate::note!(
            "project {name:?} is already initialized (root branch {root:?}); nothing to do"
        );
        return Ok(0);
    }
    let (mask_rules, mask_strict, mask_keep) = project::masking_request(masking.as_ref());
    let started = Instant::now();
    let resp = c
        .create_project(&api::ProjectCreateRequest {
            project: api::ProjectCreate {
                name: name.clone(),
                pg_version: None,
                default_branch_name: Some(args.root.clone()),
                pgfork_source: Some(source),
                pgfork_masking_rules: mask_rules,
                pgfork_masking_strict: mask_strict,
                pgfork_masking_keep: mask_keep,
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
        println!(
            "  url:     {} (`pgfork url` prints it with the password)",
            output::redacted(&root.connection_uri)
        );
        println!("  config:  {}", config_path.display());
        for line in git_setup {
            println!("  {line}");
        }
        if let Ok(p) = c.get_project(&name).await {
            if let Some(report) = p.project.pgfork_import_report {
                print_import_report(&report);
            }
        }
    }
    // Said once, where the user starts: branches here will be full copies.
    if let Ok(Some(w)) = c.status().await.map(|st| st.store_warning) {
        eprintln!("warning: {w}");
    }
    Ok(0)
}

/// In a git repository: pair HEAD with the root, install the hooks, write the env file
/// and keep it out of git. Returns lines for the user.
pub(super) async fn setup_git(
    c: &Client,
    project: &str,
    repo: &pgfork_git::Repo,
    root: &mut api::Branch,
    no_hooks: bool,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    // A remote server cannot see this machine's work trees (its gc and follow-HEAD
    // endpoints are local features); the hooks still pair branches through it.
    if !c.is_remote() {
        c.register_repo(project, &repo.root.display().to_string())
            .await?;
    }
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
    if ctx.cfg.branches.follow_head && !c.is_remote() {
        let f = c.follow(project, &repo.root.display().to_string()).await?;
        lines.push(format!(
            "follow:  {} (always the current HEAD's database)",
            output::redacted(&f.connection_uri)
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

/// The fidelity report of a logical import: what was copied, then what differs.
pub(super) fn print_import_report(report: &api::ImportReport) {
    for (label, lines) in [("copied: ", &report.copied), ("differs:", &report.differs)] {
        for (i, line) in lines.iter().enumerate() {
            let head = if i == 0 { label } else { "        " };
            println!("  {head} {line}");
        }
    }
    if report.differs.is_empty() {
        println!("  differs: nothing (the catalog inventory equals the source's)");
    }
}
