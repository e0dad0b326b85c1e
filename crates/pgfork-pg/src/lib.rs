//! Everything pgfork does to PostgreSQL, and nothing about git, HTTP or metadata.
//!
//! - [`install`]: find Postgres binaries (`PGFORK_PG_BIN`, `pg_config`, well-known
//!   paths) and pick the major version a data directory needs.
//! - [`user`]: when pgfork runs as root, every Postgres process runs as an unprivileged
//!   OS user (Postgres refuses to run as root, and it should).
//! - [`instance`]: initdb, start (detached, so branches survive a daemon restart and are
//!   re-adopted), fast stop, readiness, logs.
//! - [`clone`]: the online-clone recipe of DESIGN.md §4 — a consistent copy-on-write
//!   clone of a *running* cluster without stopping or pausing it.
//! - [`import`]: root branch sources (sample data, pg_dump/pg_restore, pg_basebackup,
//!   adopting a stopped data directory).
//! - [`logical`]: the faithful logical import (roles, ownership, grants, settings,
//!   extension versions) and its [`fidelity`] report.
//! - [`migrations`]: which branches applied diverging migrations (alembic, Django, …).
//! - [`pitr`]: a branch at a past moment (a snapshot, then WAL replayed to a target).
//! - [`roles`]: the owner role every URL carries, and the superusers no URL does.
//! - [`schema`]: a database's schema as named objects, and the changes between two.
//! - [`settings`]: developer defaults for the server settings of every non-root branch.
//! - [`subscribe`]: a root kept current by a subscription to the source.
//! - [`sanitize`]: what keeps a copy of production from acting on its behalf.

pub mod catalog;
pub mod clone;
pub mod conninfo;
pub mod dump_sql;
mod error;
pub mod fidelity;
pub mod import;
pub mod install;
pub mod instance;
pub mod logical;
pub mod migrations;
pub mod pitr;
pub mod roles;
pub mod sanitize;
pub mod schema;
pub mod settings;
pub mod sql;
pub mod subscribe;
pub mod user;

pub use error::PgError;
pub use install::{PgInstall, PgInstalls};
pub use instance::Instance;
pub use user::ServerUser;
