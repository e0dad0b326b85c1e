//! pgfork's domain: the vocabulary every other crate speaks.
//!
//! Everything here is pure: no filesystem, no processes, no clock reads (callers pass
//! `now`). That keeps the rules users see (which names are valid, where a branch's files
//! live, when a TTL expires, which port a branch gets) unit-testable in microseconds and
//! identical in the daemon, the CLI and future remote servers.

mod error;
mod history;
pub mod layout;
mod name;
mod port;
mod refresh;
mod space;
mod state;
mod ttl;

pub use error::CoreError;
pub use history::{default_snapshot_every, history_to_drop, HistoryPolicy, DEFAULT_SCHEDULED_KEEP};
pub use name::{
    preserved_name, safe_dir_name, validate_branch_name, validate_project_name, MAX_NAME_CHARS,
};
pub use port::{pick_port, PortRange};
pub use refresh::{decide as refresh_decision, RefreshDecision, RefreshPolicy, Staleness};
pub use space::{human_bytes, parse_size, room_for, DEFAULT_MIN_FREE};
pub use state::BranchState;
pub use ttl::{expires_at_from_ttl, parse_ttl, requested_expiry, DEFAULT_GRACE, DEFAULT_TTL_NONE};

mod progress;
pub use progress::{Progress, ProgressSnapshot};
