//! A branch must never act on production's behalf. A copy of a production cluster
//! carries everything that makes production reach out: an archive command, replication
//! slots (which would pin WAL, or be consumed by a standby that finds the branch),
//! subscriptions (whose apply workers would consume production's publication and
//! advance its slot, so the real subscriber misses changes), `pg_cron` jobs (emails,
//! billing runs) and synchronous standbys (every commit would wait forever).
//!
//! So every start runs with [`ALWAYS`], a branch's first start (create, reset, and the
//! builds of imports and masking) also with [`FIRST_BOOT`], which keeps subscription
//! workers and cron jobs from starting at all, and [`sanitize`] then turns them off
//! for good inside the branch before any client may connect.

use crate::sql::{connect, quote_ident, sql_err};
use crate::{Instance, PgError};

/// Settings on every start's command line (they override the cluster's files).
pub const ALWAYS: &[(&str, &str)] = &[("archive_mode", "off"), ("synchronous_standby_names", "")];

/// [`ALWAYS`], except that a branch keeping history archives its WAL into its own
/// `archive` directory (never its parent's or production's archive).
pub fn always(
    archive: Option<&std::path::Path>,
    wal_compression: &str,
) -> Vec<(&'static str, String)> {
    match archive {
        None => ALWAYS.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        Some(dir) => vec![
            ("archive_mode", "on".to_string()),
            ("archive_command", archive_command(dir)),
            ("synchronous_standby_names", String::new()),
            // Full-page images are most of a busy branch's WAL: compressed, the archive
            // is smaller and a branch at a past moment has less to read (pgfork-bench
            // history measures both).
            ("wal_compression", wal_compression.to_string()),
        ],
    }
}

/// Copies a finished WAL segment into `dir` (a reflink where the filesystem can): an
/// existing file is accepted only when it is the same (a retry after a crash), never
/// overwritten; a partial copy is never visible under the segment's name.
pub fn archive_command(dir: &std::path::Path) -> String {
    let d = shell_quote(&dir.to_string_lossy());
    format!(
        "if test -f {d}/%f; then cmp -s %p {d}/%f; else cp --reflink=auto %p {d}/%f.part && mv -f {d}/%f.part {d}/%f; fi"
    )
}

/// Reads a WAL file from `archive`, then from a stopped parent's `pg_wal` (where the
/// last, unarchived segment of a suspended branch is).
pub fn restore_command(
    archive: &std::path::Path,
    fallback_wal: Option<&std::path::Path>,
) -> String {
    // Reflinks where the filesystem can: replaying gigabytes of WAL should not copy them.
    let a = shell_quote(&archive.to_string_lossy());
    match fallback_wal {
        Some(w) => format!(
            "cp --reflink=auto {a}/%f %p 2>/dev/null || cp --reflink=auto {}/%f %p",
            shell_quote(&w.to_string_lossy())
        ),
        None => format!("cp --reflink=auto {a}/%f %p"),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Settings for a branch's first start, until [`sanitize`] has run.
pub const FIRST_BOOT: &[(&str, &str)] = &[
    ("max_logical_replication_workers", "0"),
    ("cron.launch_active_jobs", "off"),
];

/// [`FIRST_BOOT`] in the shape `Instance::start` takes.
pub fn first_boot() -> Vec<(&'static str, String)> {
    FIRST_BOOT
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect()
}

/// What [`sanitize`] turned off, for the log and the user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sanitized {
    pub slots: Vec<String>,
    pub subscriptions: Vec<String>,
    pub cron_jobs: u64,
}

impl Sanitized {
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.subscriptions.is_empty() && self.cron_jobs == 0
    }
}

/// Drops replication slots, disables subscriptions and deactivates `pg_cron` jobs.
pub async fn sanitize(inst: &Instance) -> Result<Sanitized, PgError> {
    let admin = connect(inst, "postgres").await?;
    let mut done = Sanitized::default();
    for r in admin
        .query(
            "SELECT slot_name::text FROM pg_replication_slots WHERE NOT active",
            &[],
        )
        .await
        .map_err(sql_err("list the replication slots"))?
    {
        let slot: String = r.get(0);
        admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .map_err(sql_err("drop a replication slot"))?;
        done.slots.push(slot);
    }
    let databases: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql_err("list the databases"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let subscribed: Vec<(String, String)> = admin
        .query(
            "SELECT d.datname::text, s.subname::text FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE s.subenabled OR s.subslotname IS NOT NULL",
            &[],
        )
        .await
        .map_err(sql_err("list the subscriptions"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for db in databases {
        let client = connect(inst, &db).await?;
        for (_, sub) in subscribed.iter().filter(|(d, _)| *d == db) {
            // Detached from its slot too: a DROP SUBSCRIPTION in the branch would
            // otherwise connect to the publisher and drop the slot the real subscriber
            // (production's, or the root's) depends on.
            client
                .batch_execute(&format!(
                    "ALTER SUBSCRIPTION {s} DISABLE; ALTER SUBSCRIPTION {s} SET (slot_name = NONE)",
                    s = quote_ident(sub)
                ))
                .await
                .map_err(sql_err("disable a subscription"))?;
            done.subscriptions.push(format!("{db}.{sub}"));
        }
        let has_cron: bool = client
            .query_one("SELECT to_regclass('cron.job') IS NOT NULL", &[])
            .await
            .map_err(sql_err("look for pg_cron"))?
            .get(0);
        if has_cron {
            done.cron_jobs += client
                .execute("UPDATE cron.job SET active = false WHERE active", &[])
                .await
                .map_err(sql_err("deactivate the pg_cron jobs"))?;
        }
    }
    Ok(done)
}
