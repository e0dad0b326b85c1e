//! pgfork's own SQL connections: always over the branch's private unix socket, as the
//! bootstrap superuser, never through the public port.

use crate::{Instance, PgError};
use tokio_postgres::{Client, NoTls};

/// Connects to `dbname` on the instance's socket; the connection task is spawned on the
/// current tokio runtime and ends when the client is dropped.
pub async fn connect(inst: &Instance, dbname: &str) -> Result<Client, PgError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(&inst.socket_dir)
        .port(inst.port)
        .user(&inst.superuser)
        .dbname(dbname)
        .application_name("pgfork")
        // pgfork's own work (roles, passwords, sanitizing) must not be stopped by a
        // branch that is read-only for its users (time travel).
        .options("-c default_transaction_read_only=off");
    let (client, conn) = cfg.connect(NoTls).await.map_err(|source| PgError::Sql {
        what: format!("connect to {}", inst.pgdata.display()),
        source,
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "pgfork connection closed");
        }
    });
    Ok(client)
}

pub(crate) fn sql_err(what: &str) -> impl FnOnce(tokio_postgres::Error) -> PgError + '_ {
    move |source| PgError::Sql {
        what: what.to_string(),
        source,
    }
}

/// The server's message of a failed statement (the error's text otherwise), for a
/// report line.
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Quotes a string literal for SQL text (for statements that cannot take parameters,
/// like `ALTER ROLE ... PASSWORD`).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes an identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Sets a role's password. The SCRAM-SHA-256 verifier is computed here, so the
/// plaintext never reaches the server (nor its logs, whatever `log_statement` says).
/// Every login role's SCRAM verifier (`pg_authid.rolpassword`), or of one role.
pub async fn role_secrets(
    client: &Client,
    role: Option<&str>,
) -> Result<Vec<(String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT rolname::text, rolpassword FROM pg_authid WHERE rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256$%' AND ($1::text IS NULL OR rolname = $1) AND (rolvaliduntil IS NULL OR rolvaliduntil > now())",
            &[&role],
        )
        .await
        .map_err(sql_err("read the roles' password verifiers"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Login roles other than `admin`, the superusers (which keep no password: see
/// [`crate::roles`]) and Postgres's own (`pg_*`).
pub async fn login_roles(client: &Client, admin: &str) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(
            "SELECT rolname::text FROM pg_authid WHERE rolcanlogin AND NOT rolsuper AND rolname <> $1 AND rolname NOT LIKE 'pg\\_%' ORDER BY 1",
            &[&admin],
        )
        .await
        .map_err(sql_err("list the login roles"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn set_password(client: &Client, role: &str, password: &str) -> Result<(), PgError> {
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    client
        .batch_execute(&format!(
            "ALTER ROLE {} PASSWORD {}",
            quote_ident(role),
            quote_literal(&verifier)
        ))
        .await
        .map_err(sql_err("set the branch password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
