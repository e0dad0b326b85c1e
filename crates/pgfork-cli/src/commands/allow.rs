//! `pgfork allow`: trust this repository's `.pgfork.toml` commands on this machine
//! (see `trust`).

use super::*;

pub(super) fn allow() -> Result<i32> {
    let cwd = std::env::current_dir().context("could not read the current directory")?;
    let repo = pgfork_git::Repo::discover(&cwd)?;
    let path = repo.root.join(project::CONFIG_FILE);
    if !path.is_file() {
        bail!(
            "no .pgfork.toml in {}: run `pgfork init` first",
            repo.root.display()
        );
    }
    let cfg = project::read_config(&path)?;
    let Some(cmd) = cfg.hooks.after_create.filter(|c| !c.trim().is_empty()) else {
        println!("{} runs no command: nothing to allow", path.display());
        return Ok(0);
    };
    if crate::trust::is_allowed(&repo.root, &cmd) {
        println!("already allowed: {cmd}");
        return Ok(0);
    }
    crate::trust::allow(&repo.root, &cmd)?;
    println!("allowed in {}: {cmd}", repo.root.display());
    println!("it runs after each database branch a checkout creates; a changed command needs `pgfork allow` again");
    Ok(0)
}
