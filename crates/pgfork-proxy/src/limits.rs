//! The descriptor budget. A front door that can be made to run out of file descriptors
//! takes every branch and the API down with it, so the daemon raises its soft limit to
//! the hard one at start and sizes the proxy's caps from what it then has.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            tracing::warn!(error = %e, "could not raise the open-files limit");
        }
    }
    nofile()
}

/// The soft `RLIMIT_NOFILE` now (unlimited counts as a large number).
pub fn nofile() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(1 << 20)
}

#[cfg(test)]
mod tests {
    use crate::StartupLimits;

    #[test]
    fn caps_leave_room_and_never_vanish() {
        let small = StartupLimits::for_fd_limit(256);
        assert_eq!(small.total, 96);
        assert_eq!(small.per_port, 24);
        assert!(StartupLimits::for_fd_limit(10).total >= 8);
        assert!(StartupLimits::for_fd_limit(1 << 20).total <= 4096);
    }
}
