//! Branch and project naming rules.
//!
//! Branch names follow git's ref-name rules (so every git branch can map to a database
//! branch with the same name, `feature/x` included) plus a 63-character cap, the length
//! Postgres itself allows for identifiers and the one Neon uses. Directory names are
//! derived deterministically so that the on-disk layout is predictable and
//! inspectable, but never ambiguous: names that are not already safe get a hash suffix
//! introduced by `+`, a character that safe names never contain.

use crate::CoreError;

/// The longest branch or project name, in characters.
pub const MAX_NAME_CHARS: usize = 63;

fn invalid(name: &str, reason: &str) -> CoreError {
    CoreError::InvalidBranchName {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Bidirectional controls and zero-width characters: a name holding them can display
/// as another name ("main" that is not `main`), so they are refused.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Checks a branch name; the error says exactly which rule it broke.
/// The name a replaced state is kept under: `NAME-before-WHAT-20261125-114500`.
pub fn preserved_name(name: &str, what: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{name}-before-{what}-{}", now.format("%Y%m%d-%H%M%S"))
}

pub fn validate_branch_name(name: &str) -> Result<(), CoreError> {
    if name.is_empty() {
        return Err(invalid(name, "a branch name cannot be empty"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(invalid(
            name,
            &format!("it has {chars} characters; the limit is {MAX_NAME_CHARS}"),
        ));
    }
    if name.starts_with('-') {
        return Err(invalid(name, "a branch name cannot start with '-'"));
    }
    if name.contains("..") {
        return Err(invalid(name, "a branch name cannot contain '..'"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(invalid(
            name,
            &format!("it contains the control character U+{:04X}", c as u32),
        ));
    }
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(invalid(
            name,
            &format!(
                "it contains the invisible character U+{:04X} (bidirectional override or zero-width), which can make a name look like another",
                c as u32
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err(invalid(
            name,
            &format!("it contains {c:?}, which git does not allow in branch names"),
        ));
    }
    if name.contains("@{") || name == "@" {
        return Err(invalid(name, "a branch name cannot be '@' or contain '@{'"));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(invalid(
            name,
            "slashes separate parts of a name: no leading, trailing or doubled '/'",
        ));
    }
    if name.ends_with('.') || name.ends_with(".lock") {
        return Err(invalid(
            name,
            "a branch name cannot end with '.' or '.lock'",
        ));
    }
    if name.split('/').any(|part| part.starts_with('.')) {
        return Err(invalid(name, "no part of a branch name may start with '.'"));
    }
    Ok(())
}

/// Project names are used in `.pgfork.toml` and directory names: keep them simple.
pub fn validate_project_name(name: &str) -> Result<(), CoreError> {
    let err = |reason: &str| CoreError::InvalidProjectName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(err("a project name cannot be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(err("it is longer than 63 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with(['-', '.'])
    {
        return Err(err(
            "use letters, digits, '-', '_' and '.', not starting with '-' or '.'",
        ));
    }
    Ok(())
}

fn is_safe_dir_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
}

/// 64-bit FNV-1a: tiny, stable across Rust versions and platforms (unlike `DefaultHasher`),
/// which matters because directory names are persisted.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The directory name for a (valid) branch name.
///
/// Safe names (lowercase ASCII letters, digits, `-`, `_`, `.`) are used as they are, so
/// `feature-x` lives in `feature-x`. Anything else is transliterated and suffixed with
/// `+` and a hash of the original name: `feature/X` → `feature-x+5b1c0f9e`. Case is
/// folded because some filesystems (APFS, NTFS) are case-insensitive.
pub fn safe_dir_name(name: &str) -> String {
    if !name.is_empty() && name.chars().all(is_safe_dir_char) && !name.starts_with('.') {
        return name.to_string();
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if is_safe_dir_char(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_start_matches('.').to_string();
    format!("{out}+{:08x}", fnv1a(name.as_bytes()) as u32)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_preserved_state_is_named_after_its_branch_and_time() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-25T11:45:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let n = preserved_name("feature/login", "refresh", t);
        assert_eq!(n, "feature/login-before-refresh-20261125-114500");
        validate_branch_name(&n).expect("a valid branch name");
    }

    use super::*;

    #[test]
    fn accepts_git_like_names() {
        for ok in [
            "main",
            "feature/x",
            "feature/inventory-split",
            "v1.2",
            "ünïcode",
            "a",
        ] {
            validate_branch_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        validate_branch_name(&"x".repeat(63)).expect("63 chars is the limit");
    }

    #[test]
    fn rejects_bad_names_with_the_rule_broken() {
        let cases = [
            ("", "empty"),
            ("..", "'..'"),
            ("a..b", "'..'"),
            ("-x", "start with '-'"),
            ("a\u{7}b", "control character"),
            ("a b", "git does not allow"),
            ("a:b", "git does not allow"),
            ("/a", "slashes"),
            ("a/", "slashes"),
            ("a//b", "slashes"),
            ("a.lock", ".lock"),
            ("a/.b", "start with '.'"),
            ("@", "'@'"),
        ];
        for (name, needle) in cases {
            let err = validate_branch_name(name).expect_err(name).to_string();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
        let long = "x".repeat(64);
        assert!(validate_branch_name(&long)
            .expect_err("too long")
            .to_string()
            .contains("limit is 63"));
    }

    #[test]
    fn dir_names_are_safe_deterministic_and_unambiguous() {
        assert_eq!(safe_dir_name("feature-x"), "feature-x");
        let a = safe_dir_name("feature/x");
        assert!(a.starts_with("feature-x+"), "{a}");
        assert_eq!(a, safe_dir_name("feature/x"));
        assert_ne!(safe_dir_name("Feature/x"), safe_dir_name("feature/x"));
        assert_ne!(safe_dir_name("feature/x"), safe_dir_name("feature-x"));
        let u = safe_dir_name("ünïcode");
        assert!(u.chars().all(|c| c.is_ascii() && c != '/'), "{u}");
        assert!(!safe_dir_name(".hidden").starts_with('.'));
    }

    #[test]
    fn project_names() {
        validate_project_name("shop-api").expect("valid");
        assert!(validate_project_name("a/b").is_err());
        assert!(validate_project_name("").is_err());
        assert!(validate_project_name("-x").is_err());
    }

    #[test]
    fn invisible_characters_are_refused() {
        for name in ["ma\u{202E}in", "fea\u{200B}ture", "\u{2066}x", "a\u{FEFF}"] {
            let err = validate_branch_name(name).expect_err(name);
            assert!(err.to_string().contains("invisible"), "{err}");
        }
        assert!(validate_branch_name("café/ünïcode").is_ok());
    }
}
