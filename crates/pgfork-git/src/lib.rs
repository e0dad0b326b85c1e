//! pgfork's git side. It never talks to Postgres or the daemon: it reads git (through
//! the `git` command, so every git feature and ref backend is honoured), edits hook
//! scripts and env files, and decides things in pure functions the CLI acts on.
//!
//! - [`names`]: git branch name → database branch name (deterministic, always valid).
//! - [`env_file`]: rewrite only our keys of a `.env`-style file.
//! - [`hooks`]: the marked block we chain into existing hooks, installed idempotently.
//! - [`infer`]: which database a new git branch forks from.
//! - [`gc`]: which database branches garbage collection removes.
//! - [`repo`]: the git facts those decisions need.

pub mod env_file;
pub mod gc;
pub mod hooks;
pub mod infer;
pub mod names;
pub mod repo;

pub use repo::{GitError, Repo};
