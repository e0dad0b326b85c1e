//! Daemon settings, from the environment (the CLI passes its own through when it
//! starts the daemon).

use pgfork_core::PortRange;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub home: PathBuf,
    /// `PGFORK_PG_BIN`.
    pub pg_bin: Option<PathBuf>,
    /// OS user for Postgres when pgfork runs as root (`PGFORK_PG_USER`, default `postgres`).
    pub pg_user: String,
    /// `PGFORK_PORTS`, e.g. `26000-26999`.
    pub ports: PortRange,
    /// How long deleted branches stay recoverable (`PGFORK_GRACE`, default 24h).
    pub grace: Duration,
    /// How often the reaper (TTLs, trash, git gc) runs (`PGFORK_REAP_EVERY`, default 30s).
    pub reap_every: Duration,
    /// Suspend a branch after this long without client connections
    /// (`PGFORK_IDLE_TIMEOUT`, default 300s, `-1` never).
    pub idle_timeout: Option<Duration>,
    /// How long a client may take to authenticate (`PGFORK_STARTUP_TIMEOUT`, 15s).
    pub startup_timeout: Duration,
    /// Address the branch ports listen on (`PGFORK_LISTEN`, default 127.0.0.1).
    pub listen: std::net::IpAddr,
    /// Free space a create leaves on the store (`PGFORK_MIN_FREE`, default 256M): a
    /// running parent must never hit a full disk because it was branched.
    pub min_free: u64,
    /// How long a trashed branch surely keeps its port (`PGFORK_TRASH_PORT_HOLD`,
    /// default 1h); past it, when the range is full, the oldest trash gives its port up.
    pub trash_port_hold: Duration,
}

impl Config {
    /// Reads the environment. Invalid values are errors, not silent defaults.
    pub fn from_env(home: PathBuf) -> Result<Config, String> {
        let ports = match std::env::var("PGFORK_PORTS") {
            Ok(v) => v
                .parse()
                .map_err(|e: pgfork_core::CoreError| format!("PGFORK_PORTS: {e}"))?,
            Err(_) => PortRange::default(),
        };
        let grace = match std::env::var("PGFORK_GRACE") {
            Ok(v) => pgfork_core::parse_ttl(&v).map_err(|e| format!("PGFORK_GRACE: {e}"))?,
            Err(_) => pgfork_core::DEFAULT_GRACE,
        };
        let reap_every = match std::env::var("PGFORK_REAP_EVERY") {
            Ok(v) => pgfork_core::parse_ttl(&v).map_err(|e| format!("PGFORK_REAP_EVERY: {e}"))?,
            Err(_) => Duration::from_secs(30),
        };
        let idle_timeout = match std::env::var("PGFORK_IDLE_TIMEOUT").as_deref() {
            Ok("-1") | Ok("never") => None,
            Ok(v) => Some(
                pgfork_core::parse_ttl(v)
                    .map_err(|e| format!("PGFORK_IDLE_TIMEOUT: {e} (or -1 for never)"))?,
            ),
            Err(_) => Some(Duration::from_secs(300)),
        };
        let listen = match std::env::var("PGFORK_LISTEN") {
            Ok(v) => v.parse().map_err(|_| {
                format!("PGFORK_LISTEN={v:?} is not an IP address: use e.g. 127.0.0.1 or 0.0.0.0")
            })?,
            Err(_) => std::net::IpAddr::from([127, 0, 0, 1]),
        };
        let startup_timeout = match std::env::var("PGFORK_STARTUP_TIMEOUT") {
            Ok(v) => {
                pgfork_core::parse_ttl(&v).map_err(|e| format!("PGFORK_STARTUP_TIMEOUT: {e}"))?
            }
            Err(_) => pgfork_proxy::DEFAULT_STARTUP_TIMEOUT,
        };
        Ok(Config {
            home,
            startup_timeout,
            idle_timeout,
            listen,
            pg_bin: std::env::var_os("PGFORK_PG_BIN").map(PathBuf::from),
            pg_user: std::env::var("PGFORK_PG_USER").unwrap_or_else(|_| "postgres".to_string()),
            ports,
            grace,
            reap_every,
            min_free: match std::env::var("PGFORK_MIN_FREE") {
                Ok(v) => {
                    pgfork_core::parse_size(&v).map_err(|e| format!("PGFORK_MIN_FREE: {e}"))?
                }
                Err(_) => pgfork_core::DEFAULT_MIN_FREE,
            },
            trash_port_hold: match std::env::var("PGFORK_TRASH_PORT_HOLD") {
                // Zero is allowed: the trash then gives ports up whenever needed.
                Ok(v) => humantime::parse_duration(v.trim()).map_err(|e| {
                    format!("PGFORK_TRASH_PORT_HOLD={v:?}: {e} (write e.g. 1h, 10m or 0s)")
                })?,
                Err(_) => Duration::from_secs(3600),
            },
        })
    }
}
