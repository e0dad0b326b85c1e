//! Masking: what a masked branch does to personal data before anyone may connect to it.
//!
//! A masked branch is a copy of its parent in which every column a rule names has been
//! rewritten by a masking function, and from which the original values are gone for
//! good: not in dead tuples, indexes, TOAST, statistics, WAL or logs. This crate holds
//! the parts that need no database: the rules ([`rules`], Neon's field names so rule
//! files move between Neon and pgfork), the built-in masking functions ([`functions`],
//! plain SQL installed for the duration of the masking), and the plan of statements
//! that masks one database ([`plan`]), and which columns look personal but no rule
//! covers ([`coverage`]). The daemon runs the plan and does the rest
//! (rewrite, checkpoint, discarding the pre-mask WAL).

pub mod coverage;
pub mod functions;
pub mod plan;
pub mod rules;

pub use plan::{plan_database, DatabasePlan, UniqueColumn};
pub use rules::{MaskingRule, MaskingRules, RuleError};
