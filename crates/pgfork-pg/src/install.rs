//! Finding PostgreSQL binaries.
//!
//! Order (DESIGN.md §6): `PGFORK_PG_BIN`, then `pg_config --bindir` from PATH, then the
//! well-known locations of Debian/Ubuntu, Homebrew and Postgres.app. Several majors may
//! be installed; a data directory is always served by the major in its `PG_VERSION`,
//! because a cluster cannot be opened by another major.

use crate::PgError;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgInstall {
    pub bin_dir: PathBuf,
    pub major: u32,
    /// `postgres --version` output, e.g. "postgres (PostgreSQL) 15.18".
    pub version: String,
}

impl PgInstall {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The `wal_compression` a branch keeping history runs with: lz4 where this build
    /// has it (Postgres 15+ configured `--with-lz4`: fast, and it shrinks a busy branch's
    /// archive several times), else the always-available `on` (pglz). Asked of
    /// `pg_config` once per installation.
    pub fn history_wal_compression(&self) -> &'static str {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static SEEN: OnceLock<Mutex<HashMap<PathBuf, bool>>> = OnceLock::new();
        let seen = SEEN.get_or_init(|| Mutex::new(HashMap::new()));
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let lz4 = *seen.entry(self.bin_dir.clone()).or_insert_with(|| {
            self.major >= 15
                && Command::new(self.bin("pg_config"))
                    .arg("--configure")
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--with-lz4"))
        });
        if lz4 {
            "lz4"
        } else {
            "on"
        }
    }

    /// Inspects one bin directory; `None` when it has no working `postgres`.
    pub fn probe(bin_dir: &Path) -> Option<PgInstall> {
        let out = Command::new(bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = parse_major(&version)?;
        Some(PgInstall {
            bin_dir: bin_dir.to_path_buf(),
            major,
            version,
        })
    }
}

/// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → 15; "9.6.24" → 9.
pub fn parse_major(version_line: &str) -> Option<u32> {
    let token = version_line
        .split_whitespace()
        .find(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let digits: String = token.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// All installations found, newest major first, one per major.
#[derive(Debug, Clone)]
pub struct PgInstalls {
    pub installs: Vec<PgInstall>,
    pub looked: Vec<PathBuf>,
}

fn glob_dirs(pattern_parent: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(pattern_parent) {
        for e in entries.flatten() {
            out.push(e.path().join(suffix));
        }
    }
    out.sort();
    out.reverse();
    out
}

impl PgInstalls {
    /// Discovers installations. `pg_bin` is the value of `PGFORK_PG_BIN`, if set: it
    /// wins outright, and a wrong value is an error rather than a silent fallback.
    pub fn discover(pg_bin: Option<&Path>) -> Result<PgInstalls, PgError> {
        if let Some(dir) = pg_bin {
            let install =
                PgInstall::probe(dir).ok_or_else(|| PgError::BadPgBin(dir.to_path_buf()))?;
            return Ok(PgInstalls {
                installs: vec![install],
                looked: vec![dir.to_path_buf()],
            });
        }
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            }
        }
        candidates.extend(glob_dirs(Path::new("/usr/lib/postgresql"), "bin"));
        candidates.extend(glob_dirs(Path::new("/usr/pgsql"), "bin"));
        candidates.extend(
            glob_dirs(Path::new("/opt/homebrew/opt"), "bin")
                .into_iter()
                .filter(|p| p.to_string_lossy().contains("postgresql")),
        );
        candidates.extend(
            glob_dirs(Path::new("/usr/local/opt"), "bin")
                .into_iter()
                .filter(|p| p.to_string_lossy().contains("postgresql")),
        );
        candidates.extend(glob_dirs(
            Path::new("/Applications/Postgres.app/Contents/Versions"),
            "bin",
        ));
        let mut installs: Vec<PgInstall> = Vec::new();
        for dir in &candidates {
            if let Some(i) = PgInstall::probe(dir) {
                if !installs.iter().any(|x| x.major == i.major) {
                    installs.push(i);
                }
            }
        }
        installs.sort_by_key(|i| std::cmp::Reverse(i.major));
        if installs.is_empty() {
            return Err(PgError::NoBinaries {
                looked: "/usr/lib/postgresql/*/bin, Homebrew and Postgres.app".to_string(),
            });
        }
        Ok(PgInstalls {
            installs,
            looked: candidates,
        })
    }

    pub fn newest(&self) -> &PgInstall {
        // discover() never returns an empty list.
        &self.installs[0]
    }

    pub fn for_major(&self, major: u32) -> Result<&PgInstall, PgError> {
        self.installs
            .iter()
            .find(|i| i.major == major)
            .ok_or_else(|| PgError::MajorMissing {
                needed: major,
                available: self
                    .installs
                    .iter()
                    .map(|i| i.major.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The installation that can serve `pgdata`, by its `PG_VERSION`.
    pub fn for_data_dir(&self, pgdata: &Path) -> Result<&PgInstall, PgError> {
        self.for_major(data_dir_major(pgdata)?)
    }
}

/// The major version recorded in a data directory.
pub fn data_dir_major(pgdata: &Path) -> Result<u32, PgError> {
    let text =
        std::fs::read_to_string(pgdata.join("PG_VERSION")).map_err(|_| PgError::NotADataDir {
            path: pgdata.to_path_buf(),
        })?;
    parse_major(text.trim()).ok_or_else(|| PgError::NotADataDir {
        path: pgdata.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("15"), Some(15));
        assert_eq!(parse_major("9.6"), Some(9));
        assert_eq!(parse_major("nonsense"), None);
    }

    #[test]
    fn bad_pg_bin_is_an_error_not_a_fallback() {
        let err = PgInstalls::discover(Some(Path::new("/nonexistent/bin"))).expect_err("bad");
        assert!(err.to_string().contains("PGFORK_PG_BIN"), "{err}");
    }
}
