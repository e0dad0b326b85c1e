//! A reserve of disk space the daemon can give back. On a full store SQLite cannot
//! even open its shared-memory file, so a daemon that needs one free block to start
//! could never start again and never free anything. The daemon keeps a small
//! preallocated file in `PGFORK_HOME`; when it finds the store full at start it
//! deletes it, starts in a degraded mode (creates are refused by the free-space guard;
//! delete --purge, `trash empty` and gc work) and says so, and it makes the reserve
//! again once there is room.

use std::path::Path;

/// Size of the reserve: room for the metadata's WAL and shared memory, a few purges'
/// worth of metadata writes, and the daemon's log lines.
pub const BALLAST_BYTES: u64 = 16 << 20;

/// Below this much free space the store counts as full at start.
const FULL_BELOW: u64 = 4 << 20;

/// Releases the reserve if the store is full; returns whether it did.
pub fn release_if_full(home: &Path) -> bool {
    let path = home.join("ballast");
    let full = pgfork_cow::available_bytes(home).is_ok_and(|free| free < FULL_BELOW);
    if full && path.exists() {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::error!(error = %e, "could not release the disk reserve");
            return false;
        }
        tracing::error!(
            "the store at {} is full: released pgfork's {} MiB reserve so the daemon can start; creates are refused until there is room: free space with `pgfork trash empty` or `pgfork branch delete NAME --purge`",
            home.display(),
            BALLAST_BYTES >> 20
        );
        return true;
    }
    false
}

/// Makes the reserve when it is missing and the store has room for it to spare.
pub fn ensure(home: &Path, min_free: u64) {
    let path = home.join("ballast");
    if path.exists() {
        return;
    }
    let room = pgfork_cow::available_bytes(home)
        .is_ok_and(|free| free > min_free.saturating_add(BALLAST_BYTES));
    if !room {
        return;
    }
    let made = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .and_then(|f| {
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, BALLAST_BYTES)
                .map_err(std::io::Error::from)
        });
    if let Err(e) = made {
        tracing::warn!(error = %e, "could not make the disk reserve");
        let _ = std::fs::remove_file(&path);
    }
}
