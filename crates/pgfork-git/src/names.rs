//! Git branch names → database branch names.
//!
//! Database branch names follow git's own ref-name rules, so almost every git branch
//! name is used as it is (`feature/x` stays `feature/x`). The exceptions are names over
//! 63 characters, which are cut and suffixed with a hash of the full name so that two
//! long names sharing a prefix never collide.

use pgfork_core::{validate_branch_name, MAX_NAME_CHARS};

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as u32
}

/// The database branch name for a git branch name. Always a valid branch name.
pub fn db_branch_name(git_branch: &str) -> String {
    if validate_branch_name(git_branch).is_ok() {
        return git_branch.to_string();
    }
    let hash = format!("{:08x}", fnv1a(git_branch.as_bytes()));
    // Keep what is valid of the name, cut to leave room for "-" and the hash.
    let cleaned: String = git_branch
        .chars()
        .map(|c| {
            if c.is_control()
                || c.is_whitespace()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
            {
                '-'
            } else {
                c
            }
        })
        .collect();
    let mut cut: String = cleaned.chars().take(MAX_NAME_CHARS - 9).collect();
    while cut.ends_with(['/', '.', '-']) || cut.ends_with(".lock") {
        cut.pop();
    }
    let candidate = format!(
        "{}-{hash}",
        cut.replace("..", "-")
            .replace("//", "/")
            .trim_start_matches(['-', '/', '.'])
    );
    if validate_branch_name(&candidate).is_ok() {
        candidate
    } else {
        format!("git-{hash}")
    }
}

/// When `preferred` is taken by a database branch paired with another git branch, the
/// name to use instead: the preferred name suffixed with a hash of the git name.
pub fn disambiguate(preferred: &str, git_branch: &str) -> String {
    let hash = format!("{:08x}", fnv1a(git_branch.as_bytes()));
    let cut: String = preferred.chars().take(MAX_NAME_CHARS - 9).collect();
    let cut = cut.trim_end_matches(['/', '.', '-']);
    let candidate = format!("{cut}-{hash}");
    if validate_branch_name(&candidate).is_ok() {
        candidate
    } else {
        format!("git-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_map_to_themselves() {
        for n in [
            "main",
            "feature/inventory-split",
            "fix/ünïcode",
            "release-1.2",
        ] {
            assert_eq!(db_branch_name(n), n);
        }
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_stay_distinct() {
        let a = format!("feature/{}", "a".repeat(80));
        let b = format!("feature/{}b", "a".repeat(80));
        let (ma, mb) = (db_branch_name(&a), db_branch_name(&b));
        assert_ne!(ma, mb);
        for m in [&ma, &mb] {
            assert!(m.chars().count() <= 63, "{m}");
            validate_branch_name(m).expect("valid");
        }
        assert_eq!(ma, db_branch_name(&a), "deterministic");
    }

    #[test]
    fn odd_names_become_valid() {
        for n in ["a..b", "x.lock", "@", "-lead", &"ü".repeat(70)] {
            let m = db_branch_name(n);
            validate_branch_name(&m).unwrap_or_else(|e| panic!("{n:?} → {m:?}: {e}"));
        }
    }

    #[test]
    fn collisions_get_a_stable_suffix() {
        let d = disambiguate("feature/x", "feature/X");
        assert_ne!(d, "feature/x");
        assert_eq!(d, disambiguate("feature/x", "feature/X"));
        validate_branch_name(&d).expect("valid");
        validate_branch_name(&disambiguate(&"y".repeat(63), "z")).expect("valid");
    }
}
