//! Git hooks: one marked block per hook, chained into whatever the hook already does.
//!
//! The block goes right after the shebang, so it runs even if the user's script ends
//! with `exit`, and it never fails or blocks git: every call ends in `|| true`, and the
//! `reference-transaction` block hands its standard input back to the rest of the
//! script. Installing twice replaces the block; uninstalling removes only the block
//! (and the file, when nothing else was in it).

use std::path::{Path, PathBuf};

pub const BEGIN: &str = "# >>> pgfork >>>";
pub const END: &str = "# <<< pgfork <<<";

/// The hooks pgfork uses.
pub const HOOKS: [&str; 3] = ["post-checkout", "reference-transaction", "post-merge"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HookError {
    #[error("{path} is a {interpreter} script, not a shell script: add this line to it yourself: {line}")]
    NotShell {
        path: String,
        interpreter: String,
        line: String,
    },
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The block for `hook`, calling the pgfork binary at `exe` (or `pgfork` on PATH when
/// that file is gone, e.g. after an upgrade moved it).
pub fn block(hook: &str, exe: &Path) -> String {
    let find = format!(
        "pgfork_bin={}; [ -x \"$pgfork_bin\" ] || pgfork_bin=$(command -v pgfork 2>/dev/null)",
        shell_quote(&exe.display().to_string())
    );
    let body = match hook {
        // Runs on every ref update of every git command (twice: prepared, committed),
        // so it spawns nothing unless a branch was deleted: shell builtins only. Stdin is
        // read only when committed, and handed on to any hook chained after ours.
        "reference-transaction" => format!(
            "if [ \"$1\" = committed ]; then\n\
             \x20 pgfork_stdin=; pgfork_sep=\n\
             \x20 while IFS= read -r pgfork_line || [ -n \"$pgfork_line\" ]; do\n\
             \x20   pgfork_stdin=\"$pgfork_stdin$pgfork_sep$pgfork_line\"; pgfork_sep='\n'\n\
             \x20 done\n\
             \x20 case \"$pgfork_stdin\" in\n\
             \x20   *\" {zero40} refs/heads/\"*|*\" {zero64} refs/heads/\"*)\n\
             \x20     {find}\n\
             \x20     [ -n \"$pgfork_bin\" ] && printf '%s\\n' \"$pgfork_stdin\" | \"$pgfork_bin\" hook reference-transaction \"$@\" || true ;;\n\
             \x20 esac\n\
             \x20 exec 0<<PGFORK_STDIN_EOF\n\
             $pgfork_stdin\n\
             PGFORK_STDIN_EOF\n\
             fi",
            zero40 = "0".repeat(40),
            zero64 = "0".repeat(64),
        ),
        _ => format!("{find}\n[ -n \"$pgfork_bin\" ] && \"$pgfork_bin\" hook {hook} \"$@\" </dev/null || true"),
    };
    format!("{BEGIN} managed by `pgfork hooks install`; `pgfork hooks uninstall` removes it\n{body}\n{END}\n")
}

fn is_shell_shebang(first: &str) -> bool {
    let interp = first.trim_start_matches("#!").trim();
    let words: Vec<&str> = interp.split_whitespace().collect();
    let prog = match words.as_slice() {
        [env, p, ..] if env.ends_with("/env") => *p,
        [p, ..] => p.rsplit('/').next().unwrap_or(p),
        [] => "sh",
    };
    matches!(
        prog.rsplit('/').next().unwrap_or(prog),
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash"
    )
}

/// `existing` with our block installed (or replaced). `None` existing means a new file.
pub fn install_into(existing: Option<&str>, block: &str, path: &Path) -> Result<String, HookError> {
    let Some(text) = existing.filter(|t| !t.trim().is_empty()) else {
        return Ok(format!("#!/bin/sh\n{block}"));
    };
    let without = remove_from(text).unwrap_or_else(|| text.to_string());
    let mut lines = without.split_inclusive('\n');
    let first = lines.clone().next().unwrap_or("");
    if first.starts_with("#!") {
        if !is_shell_shebang(first) {
            return Err(HookError::NotShell {
                path: path.display().to_string(),
                interpreter: first.trim_start_matches("#!").trim().to_string(),
                line: "pgfork hook <hook-name> \"$@\"".to_string(),
            });
        }
        let first = lines.next().unwrap_or("");
        let rest: String = lines.collect();
        let sep = if first.ends_with('\n') { "" } else { "\n" };
        Ok(format!("{first}{sep}{block}{rest}"))
    } else {
        Ok(format!("{block}{without}"))
    }
}

/// `text` without our block; `None` when there was no block.
pub fn remove_from(text: &str) -> Option<String> {
    let start = text.find(BEGIN)?;
    let end_rel = text[start..].find(END)?;
    let mut end = start + end_rel + END.len();
    if text[end..].starts_with('\n') {
        end += 1;
    }
    Some(format!("{}{}", &text[..start], &text[end..]))
}

/// Whether a script holds nothing but a shebang and blank lines (so the file was ours).
pub fn is_empty_script(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || (l.starts_with("#!") && is_shell_shebang(l)))
}

/// What `hooks status` reports for one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStatus {
    pub name: String,
    pub path: PathBuf,
    pub installed: bool,
    /// The file holds other commands besides ours.
    pub chained: bool,
    pub executable: bool,
}

pub fn status(dir: &Path) -> Vec<HookStatus> {
    use std::os::unix::fs::PermissionsExt;
    HOOKS
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).ok();
            let installed = text.as_deref().is_some_and(|t| t.contains(BEGIN));
            let chained = text
                .as_deref()
                .and_then(remove_from)
                .is_some_and(|rest| !is_empty_script(&rest))
                || (!installed && text.as_deref().is_some_and(|t| !is_empty_script(t)));
            let executable = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            HookStatus {
                name: name.to_string(),
                path,
                installed,
                chained,
                executable,
            }
        })
        .collect()
}

/// Installs (or refreshes) all our hooks in `dir`. Returns the paths written.
pub fn install(dir: &Path, exe: &Path) -> Result<Vec<PathBuf>, InstallError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .map_err(|e| InstallError::Io(dir.display().to_string(), e.to_string()))?;
    let mut written = Vec::new();
    for name in HOOKS {
        let path = dir.join(name);
        let existing = std::fs::read_to_string(&path).ok();
        let new = install_into(existing.as_deref(), &block(name, exe), &path)
            .map_err(InstallError::Hook)?;
        if existing.as_deref() != Some(new.as_str()) {
            std::fs::write(&path, &new)
                .map_err(|e| InstallError::Io(path.display().to_string(), e.to_string()))?;
        }
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o644);
        if mode & 0o111 != 0o111 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o755))
                .map_err(|e| InstallError::Io(path.display().to_string(), e.to_string()))?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Removes our blocks from `dir`; deletes hook files that held nothing else.
pub fn uninstall(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    let mut removed = Vec::new();
    for name in HOOKS {
        let path = dir.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some(rest) = remove_from(&text) else {
            continue;
        };
        let r = if is_empty_script(&rest) {
            std::fs::remove_file(&path)
        } else {
            std::fs::write(&path, rest)
        };
        r.map_err(|e| InstallError::Io(path.display().to_string(), e.to_string()))?;
        removed.push(path);
    }
    Ok(removed)
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Hook(HookError),
    #[error("could not write {0}: {1}")]
    Io(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: &str = "/opt/pgfork/bin/pgfork";

    #[test]
    fn new_hooks_are_a_shebang_and_our_block() {
        let b = block("post-checkout", Path::new(EXE));
        let s = install_into(None, &b, Path::new("h")).expect("ok");
        assert!(s.starts_with("#!/bin/sh\n# >>> pgfork >>>"), "{s}");
        assert!(s.contains("hook post-checkout \"$@\""));
        assert!(is_empty_script(&remove_from(&s).expect("block")));
    }

    #[test]
    fn existing_hooks_are_chained_after_the_shebang_and_kept_on_uninstall() {
        let user = "#!/usr/bin/env bash\necho mine >> log\nexit 0\n";
        let b = block("post-checkout", Path::new(EXE));
        let s = install_into(Some(user), &b, Path::new("h")).expect("ok");
        assert!(
            s.starts_with("#!/usr/bin/env bash\n# >>> pgfork >>>"),
            "{s}"
        );
        assert!(s.ends_with("echo mine >> log\nexit 0\n"), "{s}");
        assert_eq!(remove_from(&s).as_deref(), Some(user));
        // Idempotent: installing again changes nothing.
        assert_eq!(install_into(Some(&s), &b, Path::new("h")).expect("ok"), s);
        // A new binary path replaces the block in place.
        let b2 = block("post-checkout", Path::new("/new/pgfork"));
        let s2 = install_into(Some(&s), &b2, Path::new("h")).expect("ok");
        assert!(s2.contains("/new/pgfork") && !s2.contains(EXE));
        assert_eq!(s2.matches(BEGIN).count(), 1);
    }

    #[test]
    fn scripts_without_shebang_get_the_block_first_and_non_shell_is_refused() {
        let s = install_into(
            Some("echo hi\n"),
            &block("post-merge", Path::new(EXE)),
            Path::new("h"),
        )
        .expect("ok");
        assert!(s.starts_with(BEGIN) && s.ends_with("echo hi\n"));
        let err = install_into(
            Some("#!/usr/bin/env python3\nprint(1)\n"),
            &block("post-merge", Path::new(EXE)),
            Path::new("h"),
        )
        .expect_err("python");
        assert!(err.to_string().contains("python3"), "{err}");
    }

    #[test]
    fn quoting_survives_odd_paths() {
        let b = block("post-checkout", Path::new("/we'ird/pgfork"));
        assert!(b.contains("'/we'\\''ird/pgfork'"), "{b}");
    }
}
