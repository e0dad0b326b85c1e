//! The roles a branch hands out, and the one it never does.
//!
//! Whoever holds a Postgres superuser's password runs code as the OS user Postgres runs
//! as (`COPY … TO PROGRAM`, `pg_read_file`, untrusted languages). On a team server every
//! project's branches run as that one OS user, so a superuser in one branch reads every
//! other project's files: an API key confined to one project would not be confined at
//! all. So a branch has two kinds of roles:
//!
//! - the **owner** ([`OWNER_ROLE`]), whose password is the branch's and whose name is in
//!   every URL pgfork hands out: it owns the database and what the sample data or a dump
//!   created, reads and writes every table (`pg_read_all_data`, `pg_write_all_data`),
//!   sees and signals the branch's sessions, may checkpoint and replicate (so a
//!   branch's URL can seed another project, physically or logically),
//!   may create databases, and acts as each ordinary role of an imported cluster
//!   (membership), so migrations run on branches as they would for the app;
//! - the **superusers**, which keep no password at all: pgfork reaches them only
//!   through the branch's private unix socket (and so does the machine's owner, with
//!   `pgfork psql --superuser`).
//!
//! The owner is never made a member of a role that could lead back to a superuser:
//! superusers, roles that may run programs or read or write server files, and — before
//! PostgreSQL 16, where `CREATEROLE` may grant itself those — roles with `CREATEROLE`.

use crate::sql::{quote_ident, quote_literal, sql_err};
use crate::PgError;
use tokio_postgres::Client;

/// The role in every URL pgfork hands out (like Neon's `neondb_owner`).
pub const OWNER_ROLE: &str = "pgfork_owner";

/// A superuser that exists only while sample data or a dump is loaded, so that
/// everything it creates can be handed to the owner at once (`REASSIGN OWNED`, which
/// refuses the bootstrap superuser).
pub const IMPORT_ROLE: &str = "pgfork_import";

/// Predefined roles whose members act as the server's OS user.
const OS_ROLES: &str =
    "'pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'";

/// The attributes the owner has on `pg_major` (`CREATEROLE` only where it cannot be
/// turned into membership in [`OS_ROLES`]).
pub fn owner_attributes(pg_major: u32) -> &'static str {
    if pg_major >= 16 {
        "LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION NOBYPASSRLS INHERIT"
    } else {
        "LOGIN NOSUPERUSER CREATEDB NOCREATEROLE REPLICATION NOBYPASSRLS INHERIT"
    }
}

/// Creates the owner (or brings an existing role of that name to the owner's
/// attributes), gives it the data roles and sets its password. Idempotent: run on
/// every create and reset, so a branch of an older project gains it too.
pub async fn ensure_owner(client: &Client, pg_major: u32, password: &str) -> Result<(), PgError> {
    let owner = quote_ident(OWNER_ROLE);
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let mut sql = format!(
        "DO $pgfork$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN CREATE ROLE {owner}; END IF; \
         END $pgfork$; \
         ALTER ROLE {owner} {attrs} PASSWORD {verifier} VALID UNTIL 'infinity';",
        name = quote_literal(OWNER_ROLE),
        attrs = owner_attributes(pg_major),
        verifier = quote_literal(&verifier),
    );
    // The owner must never be (or become) a member of a role that reaches a superuser.
    sql.push_str(&format!(
        "DO $pgfork$ DECLARE r record; BEGIN \
           FOR r IN SELECT m.roleid::regrole::text AS role FROM pg_auth_members m \
                    WHERE m.member = {name}::regrole LOOP \
             EXECUTE format('REVOKE %s FROM {owner} CASCADE', r.role); \
           END LOOP; \
         END $pgfork$;",
        name = quote_literal(OWNER_ROLE),
    ));
    // Predefined roles that reach data and other sessions of this branch only.
    sql.push_str(&format!("GRANT pg_monitor, pg_signal_backend TO {owner};"));
    if pg_major >= 14 {
        sql.push_str(&format!(
            "GRANT pg_read_all_data, pg_write_all_data TO {owner};"
        ));
    }
    if pg_major >= 15 {
        sql.push_str(&format!("GRANT pg_checkpoint TO {owner};"));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(sql_err("create the owner role"))?;
    grant_safe_roles(client, pg_major).await
}

/// Makes the owner a member of every role it may safely act as (see the module docs).
async fn grant_safe_roles(client: &Client, pg_major: u32) -> Result<(), PgError> {
    let pre16 = pg_major < 16;
    let rows = client
        .query(
            &format!(
                "SELECT r.rolname::text FROM pg_roles r \
                 WHERE NOT r.rolsuper AND r.rolname !~ '^pg_' AND r.rolname NOT IN ($1, $2) \
                   AND NOT ($3 AND r.rolcreaterole) \
                   AND NOT pg_has_role(r.oid, $1, 'MEMBER') \
                   AND NOT EXISTS (SELECT FROM pg_roles d \
                     WHERE d.oid <> r.oid AND pg_has_role(r.oid, d.oid, 'MEMBER') \
                       AND (d.rolsuper OR d.rolname IN ({OS_ROLES}) OR ($3 AND d.rolcreaterole))) \
                 ORDER BY 1"
            ),
            &[&OWNER_ROLE, &IMPORT_ROLE, &pre16],
        )
        .await
        .map_err(sql_err("list the roles the owner may act as"))?;
    for row in rows {
        let role: String = row.get(0);
        client
            .batch_execute(&format!(
                "GRANT {} TO {}",
                quote_ident(&role),
                quote_ident(OWNER_ROLE)
            ))
            .await
            .map_err(sql_err("give the owner an application role"))?;
    }
    Ok(())
}

/// Removes every superuser's password, so that no superuser can log in over TCP (the
/// private socket still trusts them, for pgfork and the machine's owner).
pub async fn lock_superusers(client: &Client) -> Result<(), PgError> {
    client
        .batch_execute(
            "DO $pgfork$ DECLARE r record; BEGIN \
               FOR r IN SELECT rolname FROM pg_authid WHERE rolsuper AND rolpassword IS NOT NULL LOOP \
                 EXECUTE format('ALTER ROLE %I PASSWORD NULL', r.rolname); \
               END LOOP; \
             END $pgfork$;",
        )
        .await
        .map_err(sql_err("remove the superusers' passwords"))
}

/// Creates the transient import superuser (no password: it logs in over the socket).
pub async fn create_import_role(client: &Client) -> Result<(), PgError> {
    client
        .batch_execute(&format!(
            "CREATE ROLE {} SUPERUSER LOGIN",
            quote_ident(IMPORT_ROLE)
        ))
        .await
        .map_err(sql_err("create the import role"))
}

/// Hands everything the import role created in the connected database to the owner,
/// and the database itself when `take_database` (not an imported database, which keeps
/// the owner its source gave it).
pub async fn hand_over_database(
    client: &Client,
    dbname: &str,
    take_database: bool,
) -> Result<(), PgError> {
    let mut sql = format!(
        "REASSIGN OWNED BY {import} TO {owner}; DROP OWNED BY {import};",
        import = quote_ident(IMPORT_ROLE),
        owner = quote_ident(OWNER_ROLE),
    );
    if take_database {
        sql.push_str(&format!(
            "ALTER DATABASE {} OWNER TO {};",
            quote_ident(dbname),
            quote_ident(OWNER_ROLE)
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(sql_err("hand the imported objects to the owner"))
}

/// Drops the import role once every database it touched was handed over.
pub async fn drop_import_role(client: &Client) -> Result<(), PgError> {
    client
        .batch_execute(&format!("DROP ROLE {}", quote_ident(IMPORT_ROLE)))
        .await
        .map_err(sql_err("drop the import role"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_gets_createrole_only_where_it_cannot_escalate() {
        assert!(owner_attributes(15).contains("NOCREATEROLE"));
        assert!(owner_attributes(16).contains(" CREATEROLE"));
        for v in [13, 15, 16, 17] {
            assert!(owner_attributes(v).contains("NOSUPERUSER"));
        }
    }
}
