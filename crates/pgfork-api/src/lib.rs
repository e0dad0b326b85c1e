//! The HTTP API between pgfork's clients (the CLI, CI jobs, IDEs, agents) and a server
//! (the local daemon on a unix socket, a team server, later Neon itself).
//!
//! The shape follows Neon's API v2 from the start — `/api/v2/projects/{id}/branches`,
//! `{branch, endpoints, operations}` bodies, `{code, message}` errors — so making it
//! fully Neon-compatible later adds routes and fields, and never rewrites the CLI.
//! pgfork-only fields sit next to Neon's in the same objects (clients ignore unknown
//! fields) and pgfork-only routes live under `/api/v2/pgfork/` or are documented as
//! extensions in `docs/api.md`.
//!
//! This crate never shells out and never touches branch data: the router delegates every
//! request to a [`Backend`], which the daemon implements.

pub mod auth;
mod client;
pub mod openapi;
mod router;
pub mod runtime;
pub mod serve;
mod types;

pub use client::{encode_segment, Client, ClientError};
pub use router::{endpoint_to_branch, network_router, network_router_with, router, Backend};
pub use types::*;
