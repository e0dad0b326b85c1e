//! When a branch is refreshed onto its parent on its own, and when the user is asked.
//!
//! A repository's policy (`.pgfork.toml` `[branches] refresh`) says when a branch is
//! stale: after an age (`"7d"`) or once its parent's schema changed
//! (`"on-parent-schema-change"`). A stale branch without local changes is refreshed when
//! it is checked out (announced, and the old state kept as a branch: undoable); a stale
//! branch with local changes — or whose changes cannot be known — is only pointed out:
//! pgfork never throws away what someone wrote.

use crate::CoreError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A repository's refresh policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshPolicy {
    #[default]
    Off,
    /// Stale once this old (since it last took its parent's state).
    After(Duration),
    /// Stale once the parent's schema differs from the one the branch took.
    OnParentSchemaChange,
}

impl RefreshPolicy {
    pub fn parse(s: &str) -> Result<RefreshPolicy, CoreError> {
        match s.trim() {
            "" | "off" | "never" => Ok(RefreshPolicy::Off),
            "on-parent-schema-change" => Ok(RefreshPolicy::OnParentSchemaChange),
            other => crate::parse_ttl(other)
                .map(RefreshPolicy::After)
                .map_err(|_| CoreError::InvalidDuration {
                    input: other.to_string(),
                    reason: "a refresh policy is off, on-parent-schema-change, or an age like 7d"
                        .to_string(),
                }),
        }
    }
}

/// What to do about one branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Current enough under the policy.
    Fresh,
    /// Stale, and nothing of its own would be lost: refresh it (the reason says why).
    Refresh(String),
    /// Stale, with local changes (or unknown ones): tell the user, do nothing.
    Ask(String),
}

/// The facts a decision needs (from the branch's freshness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Staleness {
    pub forked_at: Option<DateTime<Utc>>,
    pub parent_schema_changed: Option<bool>,
    /// Writes or schema changes since the branch's baseline (`None`: unknown).
    pub local_changes: Option<bool>,
}

/// `9 days`, `5 hours`, `40 minutes`: what a message needs of an age.
fn rough_age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (n, unit) = match s {
        0..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

pub fn decide(
    policy: RefreshPolicy,
    s: Staleness,
    parent: &str,
    now: DateTime<Utc>,
) -> RefreshDecision {
    let reason = match policy {
        RefreshPolicy::Off => return RefreshDecision::Fresh,
        RefreshPolicy::After(age) => match s.forked_at {
            Some(at) if (now - at).to_std().is_ok_and(|d| d >= age) => {
                format!("it took {parent}'s state {} ago", rough_age(now - at))
            }
            _ => return RefreshDecision::Fresh,
        },
        RefreshPolicy::OnParentSchemaChange => match s.parent_schema_changed {
            Some(true) => format!("{parent}'s schema changed since it forked"),
            _ => return RefreshDecision::Fresh,
        },
    };
    match s.local_changes {
        Some(false) => RefreshDecision::Refresh(reason),
        Some(true) => RefreshDecision::Ask(format!("{reason}, and it has changes of its own")),
        None => RefreshDecision::Ask(format!(
            "{reason}, and whether it has changes of its own is unknown"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days_ago: i64) -> Option<DateTime<Utc>> {
        Some(Utc::now() - chrono::Duration::days(days_ago) - chrono::Duration::minutes(1))
    }

    #[test]
    fn policies_parse() {
        assert_eq!(RefreshPolicy::parse("off").ok(), Some(RefreshPolicy::Off));
        assert_eq!(
            RefreshPolicy::parse("on-parent-schema-change").ok(),
            Some(RefreshPolicy::OnParentSchemaChange)
        );
        assert_eq!(
            RefreshPolicy::parse("7d").ok(),
            Some(RefreshPolicy::After(Duration::from_secs(7 * 86_400)))
        );
        assert!(RefreshPolicy::parse("sometimes").is_err());
    }

    #[test]
    fn only_a_stale_branch_without_changes_is_refreshed_on_its_own() {
        let now = Utc::now();
        let week = RefreshPolicy::After(Duration::from_secs(7 * 86_400));
        let clean = |days| Staleness {
            forked_at: at(days),
            local_changes: Some(false),
            ..Default::default()
        };
        assert_eq!(decide(week, clean(2), "main", now), RefreshDecision::Fresh);
        assert!(
            matches!(decide(week, clean(8), "main", now), RefreshDecision::Refresh(r) if r == "it took main's state 8 days ago")
        );
        let dirty = Staleness {
            local_changes: Some(true),
            ..clean(8)
        };
        assert!(
            matches!(decide(week, dirty, "main", now), RefreshDecision::Ask(r) if r.contains("changes of its own"))
        );
        let unknown = Staleness {
            local_changes: None,
            ..clean(8)
        };
        assert!(matches!(
            decide(week, unknown, "main", now),
            RefreshDecision::Ask(_)
        ));
        let schema = RefreshPolicy::OnParentSchemaChange;
        let moved = Staleness {
            parent_schema_changed: Some(true),
            local_changes: Some(false),
            ..Default::default()
        };
        assert!(matches!(
            decide(schema, moved, "main", now),
            RefreshDecision::Refresh(_)
        ));
        let unknown_parent = Staleness {
            parent_schema_changed: None,
            ..moved
        };
        assert_eq!(
            decide(schema, unknown_parent, "main", now),
            RefreshDecision::Fresh
        );
        assert_eq!(
            decide(RefreshPolicy::Off, moved, "main", now),
            RefreshDecision::Fresh
        );
    }
}
