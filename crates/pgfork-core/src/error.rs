use thiserror::Error;

/// Errors of the pure domain rules. Each message is one sentence a user can act on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    #[error("invalid branch name {name:?}: {reason}")]
    InvalidBranchName { name: String, reason: String },
    #[error("invalid project name {name:?}: {reason}")]
    InvalidProjectName { name: String, reason: String },
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration { input: String, reason: String },
    #[error("invalid size {input:?}: {reason}")]
    InvalidSize { input: String, reason: String },
    #[error("invalid port range {input:?}: write it as FIRST-LAST, e.g. 26000-26999")]
    InvalidPortRange { input: String },
}
