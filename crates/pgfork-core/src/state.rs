use serde::{Deserialize, Serialize};
use std::fmt;

/// The life of a branch, as users see it (`branch get --json` → `state`).
///
/// `creating` exists only in memory while the daemon builds a branch: metadata is
/// committed after the data directory is complete, so a crash never leaves a persisted
/// half-made branch. `failed` marks a branch whose Postgres cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BranchState {
    Creating,
    Running,
    Suspended,
    Deleted,
    Failed,
}

impl BranchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BranchState::Creating => "creating",
            BranchState::Running => "running",
            BranchState::Suspended => "suspended",
            BranchState::Deleted => "deleted",
            BranchState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "creating" => BranchState::Creating,
            "running" => BranchState::Running,
            "suspended" => BranchState::Suspended,
            "deleted" => BranchState::Deleted,
            "failed" => BranchState::Failed,
            _ => return None,
        })
    }

    /// Whether the branch is visible and usable (not in the trash).
    pub fn is_live(self) -> bool {
        !matches!(self, BranchState::Deleted)
    }
}

impl fmt::Display for BranchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            BranchState::Creating,
            BranchState::Running,
            BranchState::Suspended,
            BranchState::Deleted,
            BranchState::Failed,
        ] {
            assert_eq!(BranchState::parse(s.as_str()), Some(s));
        }
        assert_eq!(BranchState::parse("nope"), None);
        assert!(!BranchState::Deleted.is_live());
        assert!(BranchState::Suspended.is_live());
    }
}
