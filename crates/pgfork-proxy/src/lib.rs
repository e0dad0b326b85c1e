//! The front door to every branch's Postgres.
//!
//! Each branch has one stable TCP port for its whole life; its Postgres listens only on
//! a private unix socket. The proxy speaks just enough of the wire protocol to do its
//! job — `SSLRequest`/`GSSENCRequest` (declined for now), `CancelRequest`, the
//! `StartupMessage` — authenticates the client with SCRAM-SHA-256 *itself* (so a wrong
//! password never wakes a suspended branch), then asks its [`Backend`] for a running
//! Postgres (which may start it: scale-to-zero), sends it the client's startup
//! parameters over the private socket, and from then on copies bytes both ways.
//!
//! This crate owns no branch metadata: the daemon implements [`Backend`].

mod protocol;
mod scram;
mod server;

pub use protocol::{parse_startup, Startup, StartupError};
pub use scram::ScramVerifier;
pub use server::{Backend, BackendError, Proxy, Target, DEFAULT_STARTUP_TIMEOUT};
