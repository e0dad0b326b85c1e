//! The front door to every branch's Postgres.
//!
//! Each branch has one stable TCP port for its whole life; its Postgres listens only on
//! a private unix socket. The proxy speaks just enough of the wire protocol to do its
//! job — `GSSENCRequest` (declined), `CancelRequest`, the
//! `StartupMessage`, TLS on `SSLRequest` — authenticates the client with SCRAM-SHA-256 *itself* (so a wrong
//! password never wakes a suspended branch), then asks its [`Backend`] for a running
//! Postgres (which may start it: scale-to-zero), sends it the client's startup
//! parameters over the private socket, and from then on copies bytes both ways.
//!
//! This crate owns no branch metadata: the daemon implements [`Backend`].

pub mod limits;
mod protocol;
mod scram;
mod server;
pub mod tls;

pub use protocol::{parse_startup, Startup, StartupError};
pub use scram::ScramVerifier;
pub use server::{Backend, BackendError, Proxy, StartupLimits, Target, DEFAULT_STARTUP_TIMEOUT};
