//! A root kept current by a subscription (`init --method subscribe`): a logical copy
//! that works from managed services (RDS, Cloud SQL) and across major versions, where a
//! physical standby cannot.
//!
//! The root gets the source's schema (the faithful logical import, schema only), then a
//! subscription to a publication of every table, which copies the data and follows it.
//! What logical replication does not carry is said by the import report and handled
//! where it matters: sequence values do not follow, so a branch advances each sequence
//! past the largest value its column holds before any client writes ([`catch_up_sequences`]);
//! large objects and DDL do not follow at all (`pgfork root refresh` takes a new schema).
//!
//! The source's password is in the same relative password file a standby root uses (a
//! subscription worker runs in the data directory), removed from every branch; branches
//! start with the subscription disabled and detached from its slot, so neither their
//! apply workers nor a `DROP SUBSCRIPTION` in a branch ever touches the source.

use crate::import::PRIMARY_PASSFILE;
use crate::instance::{run, write_owned};
use crate::sql::{quote_ident, quote_literal, sql_err};
use crate::{PgError, PgInstall, ServerUser};
use std::path::Path;
use std::process::Command;
use tokio_postgres::Client;

/// The name of the subscription (and of its slot on the source) for a project.
pub fn subscription_name(project: &str) -> String {
    let safe: String = project
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("pgfork_{safe}")
}

fn psql_source(
    install: &PgInstall,
    user: &ServerUser,
    url: &str,
    sql: &str,
    what: &str,
) -> Result<String, PgError> {
    let mut cmd = Command::new(install.bin("psql"));
    cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]);
    crate::conninfo::connect_arg(&mut cmd, url);
    cmd.arg("-c").arg(sql).env("PGCONNECT_TIMEOUT", "10");
    run(user, &mut cmd, what).map(|s| s.trim().to_string())
}

/// Refuses a source that cannot publish: its `wal_level` must be `logical`.
pub fn check_source(install: &PgInstall, user: &ServerUser, url: &str) -> Result<(), PgError> {
    let level = psql_source(
        install,
        user,
        url,
        "SHOW wal_level",
        "reading the source's wal_level",
    )
    .map_err(crate::import::source_unreachable)?;
    if level != "logical" {
        return Err(PgError::Unsupported(format!(
            "the source's wal_level is {level}, and a subscription needs logical: run ALTER SYSTEM SET wal_level = logical there and restart it (on RDS: rds.logical_replication = 1), or use --method replica"
        )));
    }
    Ok(())
}

/// Makes sure the source has `publication`; creates it for all tables when `create`.
/// Returns whether it was created.
pub fn ensure_publication(
    install: &PgInstall,
    user: &ServerUser,
    url: &str,
    publication: &str,
    create: bool,
) -> Result<bool, PgError> {
    let exists = psql_source(
        install,
        user,
        url,
        &format!(
            "SELECT count(*) FROM pg_publication WHERE pubname = {}",
            quote_literal(publication)
        ),
        "looking for the publication",
    )?;
    if exists == "1" {
        return Ok(false);
    }
    if !create {
        return Err(PgError::Unsupported(format!(
            "the source has no publication {publication:?}: create it there (CREATE PUBLICATION {} FOR ALL TABLES) or leave out --publication",
            quote_ident(publication)
        )));
    }
    psql_source(
        install,
        user,
        url,
        &format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(publication)),
        "creating a publication on the source",
    )
    .map_err(|e| match e {
        PgError::Command { stderr, .. } => PgError::Unsupported(format!(
            "could not create a publication of every table on the source ({}): a superuser may; or create one there and pass --publication NAME",
            stderr.lines().last().unwrap_or("").trim()
        )),
        other => other,
    })?;
    Ok(true)
}

/// Subscribes the connected (root) database to `publication` of the source `url`; its
/// password goes to the password file in `pgdata`, never into the catalog.
pub async fn subscribe(
    client: &Client,
    user: &ServerUser,
    pgdata: &Path,
    name: &str,
    url: &str,
    publication: &str,
) -> Result<(), PgError> {
    let (clean, password) = crate::conninfo::split_password(url);
    write_owned(
        user,
        &pgdata.join(PRIMARY_PASSFILE),
        &format!(
            "*:*:*:*:{}\n",
            password
                .as_deref()
                .unwrap_or("")
                .replace('\\', "\\\\")
                .replace(':', "\\:")
        ),
    )?;
    let conninfo = if clean.starts_with("postgres") {
        let sep = if clean.contains('?') { '&' } else { '?' };
        format!("{clean}{sep}passfile={PRIMARY_PASSFILE}&application_name={name}")
    } else {
        format!("{clean} passfile={PRIMARY_PASSFILE} application_name={name}")
    };
    client
        .batch_execute(&format!(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = true)",
            quote_ident(name),
            quote_literal(&conninfo),
            quote_ident(publication)
        ))
        .await
        .map_err(sql_err("subscribe to the source"))
}

/// Tables the subscription has not finished copying yet (and whether any errors were
/// counted), for waiting until the root holds the source's data.
pub async fn copy_pending(client: &Client) -> Result<(i64, i64), PgError> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')), \
                    (SELECT coalesce(sum(sync_error_count + apply_error_count), 0)::int8 FROM pg_stat_subscription_stats)",
            &[],
        )
        .await
        .map_err(sql_err("follow the subscription's initial copy"))?;
    Ok((row.get(0), row.get(1)))
}

/// Advances every sequence owned by a column past the largest value the column holds
/// (a subscription copies rows, not sequence values). Returns how many moved.
pub async fn catch_up_sequences(client: &Client) -> Result<u64, PgError> {
    let rows = client
        .query(
            "SELECT s.oid::regclass::text, c.oid::regclass::text, quote_ident(a.attname) \
             FROM pg_class s \
             JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid \
                              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
             JOIN pg_class c ON c.oid = d.refobjid \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE s.relkind = 'S' AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)",
            &[],
        )
        .await
        .map_err(sql_err("list the sequences owned by columns"))?;
    let mut moved = 0;
    for r in rows {
        let (seq, table, column): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let sql = format!(
            "SELECT setval({seq_lit}, m) FROM (SELECT max({column})::int8 AS m FROM {table}) x, {seq} s \
             WHERE m IS NOT NULL AND m >= s.last_value",
            seq_lit = quote_literal(&seq),
        );
        moved += client
            .execute(&sql, &[])
            .await
            .map_err(sql_err("advance a sequence past its column's values"))?;
    }
    Ok(moved)
}

/// Drops the subscription of a root (and with it the slot on the source).
pub async fn unsubscribe(client: &Client, name: &str) -> Result<(), PgError> {
    client
        .batch_execute(&format!(
            "DROP SUBSCRIPTION IF EXISTS {}",
            quote_ident(name)
        ))
        .await
        .map_err(sql_err(
            "drop the root's subscription (and its slot on the source)",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_named_after_its_project() {
        assert_eq!(subscription_name("Shop-API"), "pgfork_shop_api");
        assert!(subscription_name(&"x".repeat(100)).len() <= 47);
    }
}
