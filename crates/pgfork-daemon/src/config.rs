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
    /// The network API (`PGFORK_API_LISTEN`, `--api`); off unless asked for.
    pub api_listen: Option<ApiListen>,
    /// The host name clients reach branches by, in every URL and endpoint
    /// (`PGFORK_PUBLIC_HOST`, `--public-host`; default 127.0.0.1).
    pub public_host: String,
}

/// Where the network API listens, and whether over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiListen {
    pub addr: std::net::SocketAddr,
    pub tls: bool,
}

impl ApiListen {
    /// The base URL clients use (`PGFORK_API`) when they reach this address as is.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        format!("{scheme}://{host}:{}/api/v2", self.addr.port())
    }
}

/// `PORT` (loopback), `IP:PORT`, `http://IP:PORT` or `https://IP:PORT`. TLS is the
/// default beyond loopback, and plain HTTP there needs `insecure`: API keys and branch
/// passwords cross the wire.
pub fn parse_api_listen(spec: &str, insecure: bool) -> Result<ApiListen, String> {
    let spec = spec.trim();
    let (scheme, rest) = match spec.split_once("://") {
        Some((s, r)) => (Some(s), r.trim_end_matches('/')),
        None => (None, spec),
    };
    let addr: std::net::SocketAddr = match rest.parse::<u16>() {
        Ok(port) => ([127, 0, 0, 1], port).into(),
        Err(_) => rest.parse().map_err(|_| {
            format!("API address {spec:?} is not PORT, IP:PORT or http(s)://IP:PORT (e.g. 127.0.0.1:4480 or https://0.0.0.0:4480)")
        })?,
    };
    let loopback = addr.ip().is_loopback();
    let tls = match scheme {
        Some("https") => true,
        Some("http") => false,
        None => !loopback,
        Some(other) => {
            return Err(format!(
                "API address {spec:?}: the scheme is http or https, not {other:?}"
            ))
        }
    };
    if !tls && !loopback && !insecure {
        return Err(format!(
            "API address {spec:?} is reachable from other machines without TLS: use https://{addr}, or pass --insecure if a trusted network or proxy protects it"
        ));
    }
    Ok(ApiListen { addr, tls })
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
            public_host: match std::env::var("PGFORK_PUBLIC_HOST") {
                Ok(h) if !h.trim().is_empty() => {
                    parse_public_host(&h).map_err(|e| format!("PGFORK_PUBLIC_HOST: {e}"))?
                }
                _ => "127.0.0.1".to_string(),
            },
            api_listen: match std::env::var("PGFORK_API_LISTEN") {
                Ok(v) if !v.trim().is_empty() => Some(
                    parse_api_listen(&v, insecure_from_env())
                        .map_err(|e| format!("PGFORK_API_LISTEN: {e}"))?,
                ),
                _ => None,
            },
        })
    }
}

/// A host name or IPv4 address for URLs (`postgresql://user:pw@HOST:PORT/db`): no
/// scheme, port, path or user part, which would silently make every URL wrong.
pub fn parse_public_host(host: &str) -> Result<String, String> {
    let host = host.trim();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        return Err(format!(
            "{host:?} is not a host name or IPv4 address: give e.g. db.example.com or 10.0.0.5"
        ));
    }
    Ok(host.to_ascii_lowercase())
}

/// `PGFORK_API_INSECURE=1` (what `--insecure` sets).
pub fn insecure_from_env() -> bool {
    matches!(
        std::env::var("PGFORK_API_INSECURE").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_hosts_are_bare_names() {
        assert_eq!(
            parse_public_host(" DB.example.com ").as_deref(),
            Ok("db.example.com")
        );
        assert!(parse_public_host("10.0.0.5").is_ok());
        for bad in ["", "https://db", "db:5432", "user@db", "a b", "db/x"] {
            assert!(parse_public_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_addresses_default_to_tls_beyond_loopback() {
        let l = parse_api_listen("4480", false).expect("port");
        assert_eq!(l.addr.to_string(), "127.0.0.1:4480");
        assert!(!l.tls);
        assert_eq!(l.url(), "http://127.0.0.1:4480/api/v2");
        assert!(parse_api_listen("0.0.0.0:4480", false).expect("any").tls);
        assert!(
            parse_api_listen("https://127.0.0.1:4480", false)
                .expect("tls")
                .tls
        );
        let err = parse_api_listen("http://0.0.0.0:4480", false).expect_err("plain");
        assert!(err.contains("--insecure"), "{err}");
        assert!(
            !parse_api_listen("http://0.0.0.0:4480", true)
                .expect("insecure")
                .tls
        );
        assert!(
            parse_api_listen("localhost:80", false).is_err(),
            "names are not bound"
        );
        assert!(parse_api_listen("ftp://127.0.0.1:1", false).is_err());
        assert_eq!(
            parse_api_listen("[::1]:4480", false).expect("v6").url(),
            "http://[::1]:4480/api/v2"
        );
    }
}
