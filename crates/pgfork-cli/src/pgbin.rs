//! Finding `psql` on this machine, for `pgfork psql` and the demo. The daemon finds
//! its own server binaries; the CLI only needs a client, and may talk to a remote
//! server, so it looks for itself: `PGFORK_PG_BIN`, `pg_config --bindir`, the newest
//! `/usr/lib/postgresql/*/bin`, Homebrew and Postgres.app, then `PATH`.

use std::path::{Path, PathBuf};

pub fn psql() -> PathBuf {
    find("psql").unwrap_or_else(|| PathBuf::from("psql"))
}

/// `name` in the first Postgres bin directory that has it.
pub fn find(name: &str) -> Option<PathBuf> {
    candidates()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("PGFORK_PG_BIN").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .stderr(std::process::Stdio::null())
        .output()
    {
        if out.status.success() {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.extend(debian.into_iter().map(|(_, d)| d));
    for d in [
        "/opt/homebrew/bin",
        "/usr/local/bin",
        "/Applications/Postgres.app/Contents/Versions/latest/bin",
    ] {
        dirs.push(Path::new(d).to_path_buf());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}
