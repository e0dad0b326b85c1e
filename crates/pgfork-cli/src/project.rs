//! `.pgfork.toml` and finding which project a command is about.

use anyhow::{bail, Context, Result};
use pgfork_api::Client;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = ".pgfork.toml";

/// The team's policy, committed with the repository. Every section but `project` is
/// optional; missing keys take the defaults below.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RepoConfig {
    pub project: ProjectSection,
    #[serde(default)]
    pub branches: BranchesSection,
    #[serde(default)]
    pub env: EnvSection,
    #[serde(default)]
    pub hooks: HooksSection,
    #[serde(default, skip_serializing_if = "MaskingSection::is_empty")]
    pub masking: MaskingSection,
    /// `[history]`: how far back this repository's branches can be branched from.
    #[serde(default, skip_serializing_if = "HistorySection::is_off")]
    pub history: HistorySection,
    /// `[postgres]`: server settings for this repository's branches, on top of pgfork's
    /// developer defaults (the root keeps its own).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub postgres: std::collections::BTreeMap<String, toml::Value>,
}

/// `[history]`: a window of WAL and snapshots per branch (`window = "24h"`; `0` off).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct HistorySection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// A history snapshot this often (`1h`): less WAL to replay for a moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<String>,
    /// At most this many history snapshots (a schedule without a window keeps 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
}

impl HistorySection {
    fn is_off(&self) -> bool {
        self.window.is_none() && self.snapshot_every.is_none() && self.keep.is_none()
    }

    /// `keep`, checked.
    pub fn keep(&self) -> Result<Option<u32>> {
        if self.keep == Some(0) {
            bail!("[history] keep = 0 keeps no snapshot: give at least 1, or remove [history]");
        }
        Ok(self.keep)
    }

    /// The snapshot interval in seconds, if set.
    pub fn snapshot_every_seconds(&self) -> Result<Option<i64>> {
        match self.snapshot_every.as_deref() {
            None => Ok(None),
            Some(e) => {
                let secs = pgfork_core::parse_ttl(e)?.as_secs() as i64;
                if secs < 60 {
                    bail!("[history] snapshot_every = {e:?} is too often: give at least 1m");
                }
                Ok(Some(secs))
            }
        }
    }

    /// The window in seconds (`None`: no history).
    pub fn window_seconds(&self) -> Result<Option<i64>> {
        match self.window.as_deref().map(str::trim) {
            None | Some("0") | Some("off") => Ok(None),
            Some(w) => Ok(Some(pgfork_core::parse_ttl(w)?.as_secs() as i64)),
        }
    }
}

impl RepoConfig {
    /// `[postgres]` as setting values (numbers and booleans as Postgres writes them).
    pub fn postgres_settings(&self) -> Option<std::collections::BTreeMap<String, String>> {
        if self.postgres.is_empty() {
            return None;
        }
        Some(
            self.postgres
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        )
    }
}

/// `[masking]`: the rules file masked branches use (`branch create --mask`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct MaskingSection {
    /// Path of the rules file (TOML, or Neon's JSON), relative to `.pgfork.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<String>,
    /// The project holds personal data: a branch of an unmasked branch is masked by
    /// the rules (git hooks) or refused (`branch create` without `--mask`), unless
    /// `--unmasked` asks for it by name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pii: bool,
}

impl MaskingSection {
    fn is_empty(&self) -> bool {
        self.rules.is_none() && !self.pii
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ProjectSection {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchesSection {
    /// `auto` (the git branch a new branch was created from) or a database branch name.
    #[serde(default = "auto")]
    pub parent: String,
    /// TTL for branches not paired with git (CI, agents), e.g. `7d`.
    #[serde(default)]
    pub default_ttl: Option<String>,
    /// One more stable URL per work tree that always reaches the current HEAD's
    /// database (`pgfork url --follow`).
    #[serde(default = "yes")]
    pub follow_head: bool,
    /// Fresh passwords for the login roles of a new branch: `protected` (when its
    /// parent is protected, such as an imported production; the default), `always`
    /// or `never`.
    #[serde(default)]
    pub rotate_passwords: Option<String>,
    /// When a branch is stale: an age (`7d`) or `on-parent-schema-change`. A stale
    /// branch without changes of its own is refreshed when checked out; one with
    /// changes is pointed out. Default off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

fn yes() -> bool {
    true
}

fn auto() -> String {
    "auto".to_string()
}

impl Default for BranchesSection {
    fn default() -> Self {
        BranchesSection {
            parent: auto(),
            default_ttl: None,
            follow_head: true,
            rotate_passwords: None,
            refresh: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvSection {
    /// The env file, relative to the work tree's top level.
    #[serde(default = "dot_env")]
    pub file: String,
    /// Variables set to the branch's connection URL.
    #[serde(default = "database_url")]
    pub vars: Vec<String>,
    /// `verify-full`: URLs that verify the server against the store's CA and bind the
    /// password exchange to its certificate (SCRAM channel binding), so no impostor
    /// on the branch's port can answer them; `require`: TLS without verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Tls {
    Require,
    VerifyFull,
}

/// The branch URL for `role`, without a password: that role logs in with its own.
pub fn for_role(url: &str, role: &str) -> Result<String> {
    let ok = !role.is_empty()
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        bail!("--role {role:?}: give a role name made of letters, digits, '_', '-' or '.'");
    }
    let (scheme, rest) = url
        .split_once("://")
        .context("the branch URL has no scheme")?;
    let host = rest.split_once('@').map(|(_, h)| h).unwrap_or(rest);
    Ok(format!("{scheme}://{role}@{host}"))
}

/// `url` (`scheme://role@host...`) with `password` for its role.
pub fn with_password(url: &str, password: &str) -> String {
    match url.split_once('@') {
        Some((user, host)) => format!("{user}:{password}@{host}"),
        None => url.to_string(),
    }
}

/// The CA that signs the branch ports' certificates: a remote server's (the CA given
/// for its API, as one pgfork CA signs both), else the local store's.
fn server_ca() -> std::path::PathBuf {
    let home = crate::connect::home();
    match crate::remote::active(&home) {
        Ok(Some(remote)) => remote.ca.unwrap_or_else(|| home.join("tls").join("ca.crt")),
        _ => home.join("tls").join("ca.crt"),
    }
}

/// `url` with the TLS parameters `tls` asks for (the CA is the local store's).
pub fn with_tls(url: &str, tls: Option<Tls>) -> String {
    let params = match tls {
        None => return url.to_string(),
        Some(Tls::Require) => "sslmode=require".to_string(),
        Some(Tls::VerifyFull) => format!(
            "sslmode=verify-full&sslrootcert={}&channel_binding=require",
            server_ca().display()
        ),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

fn dot_env() -> String {
    ".env".to_string()
}

fn database_url() -> Vec<String> {
    vec!["DATABASE_URL".to_string()]
}

impl Default for EnvSection {
    fn default() -> Self {
        EnvSection {
            file: dot_env(),
            vars: database_url(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct HooksSection {
    /// Run after a branch is created for a git branch (migrations, seeds), with the env
    /// variables set, in the work tree.
    #[serde(default)]
    pub after_create: Option<String>,
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
    let cfg: RepoConfig = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not valid: fix the TOML or delete it and run `pgfork init` again",
            path.display()
        )
    })?;
    validate(&cfg).with_context(|| format!("{} is not valid", path.display()))?;
    Ok(cfg)
}

/// Rules for a committed file anyone may have written: the env file stays inside the
/// work tree (a branch's `.pgfork.toml` must not make pgfork write a password to
/// `~/.bashrc` or `/etc`), and only real variable names are set.
pub fn validate(cfg: &RepoConfig) -> Result<()> {
    let file = Path::new(&cfg.env.file);
    let escapes = file.is_absolute()
        || file.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
    if cfg.env.file.trim().is_empty() || escapes {
        bail!(
            "env.file = {:?} must be a path inside the work tree, such as \".env\" or \"config/dev.env\"",
            cfg.env.file
        );
    }
    if let Some(r) = &cfg.branches.rotate_passwords {
        if !matches!(r.as_str(), "protected" | "always" | "never") {
            bail!(
                "branches.rotate_passwords = {r:?} must be \"protected\", \"always\" or \"never\""
            );
        }
    }
    for v in &cfg.env.vars {
        let ok = v
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            bail!("env.vars holds {v:?}, which is not a variable name: use letters, digits and _, not starting with a digit");
        }
    }
    Ok(())
}

pub fn write_config(path: &Path, name: &str) -> Result<()> {
    let text = format!(
        "# pgfork: this repository's database branching policy. Commit this file.\n\
         # Machine-local state (branch mapping, passwords) never goes here.\n\
         [project]\n\
         name = {}\n\
         \n\
         [branches]\n\
         # Where a new git branch's database forks from: \"auto\" (the git branch it was\n\
         # created from) or a database branch name such as \"main\".\n\
         parent = \"auto\"\n\
         # TTL for branches not paired with git (CI jobs, agents):\n\
         # default_ttl = \"7d\"\n\
         # A URL that always reaches the current HEAD's database (`pgfork url --follow`):\n\
         follow_head = true\n\
         # Fresh passwords for the app's login roles on branches of a protected branch\n\
         # (an imported production): \"protected\" (default), \"always\" or \"never\".\n\
         # rotate_passwords = \"protected\"\n\
         # When a branch is stale: an age (\"7d\") or \"on-parent-schema-change\". A stale\n\
         # branch without changes of its own is refreshed at checkout (its old state kept\n\
         # 7 days); one with changes is pointed out. Off by default.\n\
         # refresh = \"7d\"\n\
         \n\
         [env]\n\
         # Rewritten after every checkout to point at the current branch's database.\n\
         file = \".env\"\n\
         vars = [\"DATABASE_URL\"]\n\
         # URLs no impostor can answer (TLS verified against pgfork's CA, channel binding):\n\
         # tls = \"verify-full\"\n\
         \n\
         [hooks]\n\
         # Runs after a database branch is created for a git branch, with the vars set:\n\
         # after_create = \"npm run migrate\"\n\
         \n\
         # [postgres]\n\
         # Server settings for branches (not the root), on top of developer defaults\n\
         # (shared_buffers 128MB, huge_pages off, max_wal_size 1GB, ...):\n\
         # work_mem = \"16MB\"\n",
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

/// The rules of `--mask FILE`, or of `[masking] rules` in .pgfork.toml (`--mask` alone),
/// checked here so a typo is reported before anything is cloned.
/// The masking fields of a branch or project create request, from a rules file.
pub fn masking_request(
    rules: Option<&pgfork_mask::MaskingRules>,
) -> (
    Option<Vec<serde_json::Value>>,
    Option<bool>,
    Option<Vec<String>>,
) {
    match rules {
        None => (None, None, None),
        Some(m) => (
            Some(
                m.masking_rules
                    .iter()
                    .map(|r| serde_json::to_value(r).unwrap_or_default())
                    .collect(),
            ),
            Some(m.strict),
            Some(m.keep.clone()),
        ),
    }
}

pub fn read_masking_rules(file: &str) -> anyhow::Result<pgfork_mask::MaskingRules> {
    let path = if file.is_empty() {
        let config = find_config().ok_or_else(|| {
            anyhow::anyhow!(
                "--mask without a file needs a .pgfork.toml with [masking] rules = \"FILE\""
            )
        })?;
        let cfg = read_config(&config)?;
        let rules = cfg.masking.rules.ok_or_else(|| {
            anyhow::anyhow!(
                "{} names no masking rules: add [masking] rules = \"masking.toml\", or give the file: --mask FILE",
                config.display()
            )
        })?;
        config
            .parent()
            .map(|d| d.join(&rules))
            .unwrap_or_else(|| std::path::PathBuf::from(rules))
    } else {
        std::path::PathBuf::from(file)
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read the masking rules {}: {e}", path.display()))?;
    pgfork_mask::MaskingRules::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_stay_in_the_work_tree_and_vars_are_names() {
        let mut cfg = RepoConfig::default();
        assert!(validate(&cfg).is_ok());
        for bad in ["../outside.env", "/etc/profile", "a/../../b", ""] {
            cfg.env.file = bad.into();
            assert!(validate(&cfg).is_err(), "{bad:?}");
        }
        cfg.env.file = "config/dev.env".into();
        assert!(validate(&cfg).is_ok());
        cfg.env.vars = vec!["PATH=/tmp/x; rm".into()];
        assert!(validate(&cfg).is_err());
        cfg.env.vars = vec!["DATABASE_URL".into(), "_X1".into()];
        assert!(validate(&cfg).is_ok());
    }

    #[test]
    fn names_from_dirs() {
        assert_eq!(project_name_from_dir(Path::new("/src/My Shop")), "my-shop");
        assert_eq!(project_name_from_dir(Path::new("/")), "app");
        assert_eq!(project_name_from_dir(Path::new("/x/..odd")), "odd");
        pgfork_core::validate_project_name(&project_name_from_dir(Path::new("/x/ünï")))
            .expect("valid");
    }
}
