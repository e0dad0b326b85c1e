//! The pgfork daemon: the single process that owns every branch's Postgres and the
//! metadata, and serves the HTTP API on a unix socket in `PGFORK_HOME`.
//!
//! - [`layout`]: where everything lives in the store.
//! - [`engine`]: branch operations (create, reset, delete, recover, start/stop), each
//!   built in a temporary directory and committed last, so a crash never leaves a
//!   visible half-made branch.
//! - [`reconcile`]: at start, sweep leftovers and re-adopt or restart branches.
//! - `keys`: API keys for the network API (hashed at rest).
//! - [`server`]: the sockets, signals, the reaper and a clean shutdown that stops every
//!   Postgres.

mod ballast;
pub mod config;
pub mod engine;
mod failpoints;
pub mod front;
mod ids;
mod keys;
pub mod layout;
mod ops;
mod reconcile;
pub mod server;
mod webhooks;

pub use config::Config;
pub use layout::Layout;
pub use server::run;
