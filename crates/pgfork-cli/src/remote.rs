//! Which server the CLI talks to: `PGFORK_API` (with `PGFORK_API_KEY`, `PGFORK_API_CA`),
//! else the remote chosen with `pgfork remote use`, else the local daemon.
//!
//! Remotes live in `$PGFORK_HOME/remotes.toml` (0600: it holds API keys), so a store
//! and the servers it talks to move together. The environment wins over the file: a CI
//! job sets three variables and never writes one.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A server to talk to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// Base URL, e.g. `https://pgfork.example.com:4480/api/v2`.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A CA certificate (PEM) to trust besides the web's roots: a pgfork server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Remotes {
    /// The remote in use; none means the local daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub remotes: BTreeMap<String, Remote>,
}

pub fn file(home: &Path) -> PathBuf {
    home.join("remotes.toml")
}

pub fn load(home: &Path) -> Result<Remotes> {
    let path = file(home);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| {
            format!(
                "{} is not valid: fix it or remove it (`pgfork remote` rewrites it)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Remotes::default()),
        Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
    }
}

pub fn save(home: &Path, remotes: &Remotes) -> Result<()> {
    std::fs::create_dir_all(home)
        .with_context(|| format!("could not create {}", home.display()))?;
    let path = file(home);
    let text = format!(
        "# pgfork remotes (API keys inside: keep this file private)\n{}",
        toml::to_string(remotes)?
    );
    crate::pairing::write_private(&path, &text)
        .with_context(|| format!("could not write {}", path.display()))
}

/// The server this invocation talks to, when it is not the local daemon.
pub fn active(home: &Path) -> Result<Option<Remote>> {
    active_from(
        std::env::var("PGFORK_API").ok(),
        std::env::var("PGFORK_API_KEY").ok(),
        std::env::var_os("PGFORK_API_CA").map(PathBuf::from),
        || load(home),
    )
}

/// `active`'s rule, without the environment: variables first, then the file.
pub fn active_from(
    url: Option<String>,
    key: Option<String>,
    ca: Option<PathBuf>,
    file: impl FnOnce() -> Result<Remotes>,
) -> Result<Option<Remote>> {
    if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
        return Ok(Some(Remote {
            url,
            key: key.filter(|k| !k.is_empty()),
            ca,
        }));
    }
    let remotes = file()?;
    match remotes.current {
        None => Ok(None),
        Some(name) => match remotes.remotes.get(&name) {
            Some(r) => Ok(Some(Remote {
                key: key.filter(|k| !k.is_empty()).or_else(|| r.key.clone()),
                ..r.clone()
            })),
            None => bail!(
                "the remote in use, {name:?}, is not defined: `pgfork remote use local` or `pgfork remote add {name} URL`"
            ),
        },
    }
}

/// A client for `remote`.
pub fn client(remote: &Remote) -> Result<pgfork_api::Client> {
    let ca = match &remote.ca {
        Some(path) => Some(std::fs::read(path).with_context(|| {
            format!("could not read the API's CA certificate {}", path.display())
        })?),
        None => None,
    };
    Ok(pgfork_api::Client::remote(
        &remote.url,
        remote.key.clone(),
        ca.as_deref(),
    )?)
}

/// Remote names are used on command lines and in TOML keys.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name != "local";
    if !ok {
        bail!("{name:?} is not a remote name: use letters, digits, - and _ (and not \"local\", which means the local daemon)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(current: Option<&str>) -> Remotes {
        let mut r = Remotes {
            current: current.map(str::to_string),
            ..Default::default()
        };
        r.remotes.insert(
            "team".into(),
            Remote {
                url: "https://team:4480/api/v2".into(),
                key: Some("pgf_file".into()),
                ca: None,
            },
        );
        r
    }

    #[test]
    fn the_environment_wins_then_the_remote_in_use_then_local() {
        let env = active_from(Some("http://x/api/v2".into()), None, None, || {
            Ok(file_with(Some("team")))
        })
        .expect("ok")
        .expect("remote");
        assert_eq!(env.url, "http://x/api/v2");
        let team = active_from(None, None, None, || Ok(file_with(Some("team"))))
            .expect("ok")
            .expect("remote");
        assert_eq!(team.key.as_deref(), Some("pgf_file"));
        let key_from_env = active_from(None, Some("pgf_env".into()), None, || {
            Ok(file_with(Some("team")))
        })
        .expect("ok")
        .expect("remote");
        assert_eq!(key_from_env.key.as_deref(), Some("pgf_env"));
        assert_eq!(
            active_from(None, None, None, || Ok(file_with(None))).expect("ok"),
            None
        );
        assert!(active_from(None, None, None, || Ok(file_with(Some("gone")))).is_err());
    }

    #[test]
    fn remote_names_are_plain() {
        assert!(check_name("team-1").is_ok());
        assert!(check_name("local").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
    }
}
