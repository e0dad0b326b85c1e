//! `.pgfork.toml` and finding which project a command is about.

use anyhow::{bail, Context, Result};
use pgfork_api::Client;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = ".pgfork.toml";

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RepoConfig {
    pub project: ProjectSection,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ProjectSection {
    pub name: String,
}

/// The nearest `.pgfork.toml` at or above the current directory.
pub fn find_config() -> Option<PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let candidate = dir.join(CONFIG_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

pub fn read_config(path: &Path) -> Result<RepoConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "{} is not valid: fix the TOML or delete it and run `pgfork init` again",
            path.display()
        )
    })
}

pub fn write_config(path: &Path, name: &str) -> Result<()> {
    let text = format!(
        "# pgfork: this repository's database branching policy. Commit this file.\n\
         # Machine-local state (branch mapping, passwords) never goes here.\n\
         [project]\n\
         name = {}\n",
        toml::Value::String(name.to_string())
    );
    std::fs::write(path, text).with_context(|| format!("could not write {}", path.display()))
}

/// The project a command acts on: `--project`, `.pgfork.toml`, or the only project.
pub async fn resolve(client: &Client, explicit: Option<&str>) -> Result<String> {
    if let Some(p) = explicit {
        return Ok(p.to_string());
    }
    if let Some(path) = find_config() {
        return Ok(read_config(&path)?.project.name);
    }
    let projects = client.list_projects().await?.projects;
    match projects.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => bail!("no pgfork project yet: run `pgfork init` in your repository"),
        _ => bail!(
            "several projects exist ({}) and no .pgfork.toml is here: pass --project NAME or run inside a repository",
            projects.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `git rev-parse --show-toplevel`, if inside a work tree.
pub fn git_toplevel() -> Option<PathBuf> {
    git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from)
}

/// The current branch name, `None` when detached or outside git.
pub fn git_head_branch() -> Option<String> {
    git(&["symbolic-ref", "--quiet", "--short", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A project name from a directory name: lowercase, safe characters, never empty.
pub fn project_name_from_dir(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').chars().take(63).collect();
    if name.is_empty() || name.starts_with(['-', '.']) {
        "app".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_dirs() {
        assert_eq!(project_name_from_dir(Path::new("/src/My Shop")), "my-shop");
        assert_eq!(project_name_from_dir(Path::new("/")), "app");
        assert_eq!(project_name_from_dir(Path::new("/x/..odd")), "odd");
        pgfork_core::validate_project_name(&project_name_from_dir(Path::new("/x/ünï")))
            .expect("valid");
    }
}
