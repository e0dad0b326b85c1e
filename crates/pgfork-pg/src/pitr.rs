//! A branch at a past moment: a snapshot taken before the moment, then the branch's own
//! WAL archive replayed up to it (a recovery target), then promotion on a new timeline.

use crate::instance::write_owned;
use crate::{PgError, ServerUser};
use chrono::{DateTime, Utc};
use std::path::Path;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// After every transaction that committed at or before this moment.
    Time(DateTime<Utc>),
    /// After the WAL record at this position (`X/Y`).
    Lsn(String),
}

/// A WAL position `X/Y` as a number (for ordering), `None` when it is not one.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
        return None;
    }
    Some(hi << 32 | lo)
}

/// The settings of the start that replays to `target` and promotes.
pub fn recovery_settings(
    target: &RecoveryTarget,
    restore_command: &str,
) -> Vec<(&'static str, String)> {
    let mut s = vec![
        ("restore_command", restore_command.to_string()),
        // A staged copy: a crash throws it away, so replay needs no durability, and
        // room and prefetching make it faster (no restartpoint mid-replay).
        ("fsync", "off".to_string()),
        ("shared_buffers", "512MB".to_string()),
        ("max_wal_size", "64GB".to_string()),
        ("checkpoint_timeout", "1d".to_string()),
        ("recovery_prefetch", "on".to_string()),
        ("maintenance_io_concurrency", "64".to_string()),
        ("recovery_target_action", "promote".to_string()),
        ("recovery_target_inclusive", "on".to_string()),
        ("recovery_target_timeline", "current".to_string()),
    ];
    match target {
        RecoveryTarget::Time(t) => s.push((
            "recovery_target_time",
            t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        )),
        RecoveryTarget::Lsn(l) => s.push(("recovery_target_lsn", l.clone())),
    }
    s
}

/// Marks a staged copy for targeted recovery at its next start.
pub fn request_recovery(user: &ServerUser, pgdata: &Path) -> Result<(), PgError> {
    write_owned(user, &pgdata.join("recovery.signal"), "")
}

/// The WAL file a snapshot's replay starts from (its `backup_label`), the oldest one
/// a history must keep for it.
pub fn start_wal_file(backup_label: &str) -> Option<String> {
    let line = backup_label
        .lines()
        .find(|l| l.starts_with("START WAL LOCATION:"))?;
    let file = line.split("(file ").nth(1)?.trim_end_matches(')').trim();
    (file.len() == 24 && file.chars().all(|c| c.is_ascii_hexdigit())).then(|| file.to_string())
}

/// Removes archived WAL files older than `oldest_kept` (`pg_archivecleanup`): what no
/// snapshot left in the history window needs.
pub fn cleanup_archive(
    install: &crate::PgInstall,
    user: &ServerUser,
    archive: &Path,
    oldest_kept: &str,
) -> Result<(), PgError> {
    let mut cmd = std::process::Command::new(install.bin("pg_archivecleanup"));
    cmd.arg(archive).arg(oldest_kept);
    crate::instance::run(user, &mut cmd, "pg_archivecleanup").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_order_and_labels_name_their_first_wal_file() {
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B3748));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        assert_eq!(parse_lsn("zz"), None);
        let label = "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/5000060\n";
        assert_eq!(
            start_wal_file(label).as_deref(),
            Some("000000010000000000000005")
        );
        assert_eq!(start_wal_file("nothing"), None);
        let t = DateTime::parse_from_rfc3339("2026-11-25T12:00:01.5Z")
            .expect("time")
            .with_timezone(&Utc);
        let s = recovery_settings(&RecoveryTarget::Time(t), "cp a/%f %p");
        assert!(s.contains(&(
            "recovery_target_time",
            "2026-11-25 12:00:01.500000+00".to_string()
        )));
        assert!(s.contains(&("recovery_target_action", "promote".to_string())));
    }
}
