//! The `pgfork` command line, as a library the binary dispatches to. It is a client of
//! an API and nothing else (DESIGN §5): every command is a call to a daemon — started on
//! demand on a unix socket in `PGFORK_HOME` — or to a remote server named by
//! `PGFORK_API`, so it never touches a data directory itself. Its only pgfork
//! dependencies are `pgfork-api`, `pgfork-core` and `pgfork-git`; the tidy test
//! (`crates/pgfork/tests/tidy.rs`) keeps it that way.
//!
//! - [`cli`]: the clap grammar.
//! - `commands/`: one file per noun (`branch`, `daemon`, `hooks`, `trash`, …).
//! - `connect`: which store; starting the local daemon.
//! - `remote`: which server (`PGFORK_API`, `pgfork remote use`, else local).
//! - `pairing`: what the git hooks do, and gc.
//! - `project`: `.pgfork.toml`.
//! - `output`: tables, JSON, error sentences.
//! - `pgbin`: finding `psql` for `pgfork psql` and the demo.
//! - `trust`: `pgfork allow` — commands from a committed file run only once allowed.
//! - `demo`: the walkthrough.

pub mod cli;
mod commands;
mod connect;
mod demo;
mod output;
mod pairing;
mod pgbin;
mod project;
mod remote;
mod trust;

pub use commands::run;

/// The one sentence printed for an error (`error: …` on stderr).
pub fn error_sentence(e: &anyhow::Error) -> String {
    output::error_sentence(e)
}

/// The store this invocation uses (see `connect::home`).
pub fn home() -> std::path::PathBuf {
    connect::home()
}
