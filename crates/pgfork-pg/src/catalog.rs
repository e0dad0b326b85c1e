//! What a branch holds, as Neon's API describes it: its roles, its databases and a
//! database's schema (`pg_dump --schema-only`, what Neon's `/schema` returns and what
//! schema-diff tools compare).

use crate::instance::run;
use crate::sql::sql_err;
use crate::{Instance, PgError, PgInstall, ServerUser};
use std::process::Command;
use tokio_postgres::Client;

/// Login roles (not Postgres's own `pg_*`), with whether each is a superuser.
pub async fn roles(client: &Client) -> Result<Vec<(String, bool)>, PgError> {
    let rows = client
        .query(
            "SELECT rolname::text, rolsuper FROM pg_roles WHERE rolcanlogin AND rolname NOT LIKE 'pg\\_%' ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql_err("list the roles"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The client sessions of a running branch other than pgfork's own, each as
/// "application as role" (what the user needs to find and close them).
pub async fn client_sessions(client: &Client) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(
            "SELECT coalesce(nullif(application_name, ''), 'a client') || ' as ' || coalesce(usename::text, '?') || ' (pid ' || pid || ')' \
             FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'pgfork' \
             ORDER BY pid",
            &[],
        )
        .await
        .map_err(sql_err("list the open sessions"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Databases that accept connections: (oid, name, owner).
pub async fn databases(client: &Client) -> Result<Vec<(i64, String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT d.oid::int8, d.datname::text, pg_get_userbyid(d.datdba)::text FROM pg_database d WHERE NOT d.datistemplate AND d.datallowconn ORDER BY 2",
            &[],
        )
        .await
        .map_err(sql_err("list the databases"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The schema of `dbname` as SQL, from the branch's private socket. Blocking (runs
/// `pg_dump`); `dbname` must be one [`databases`] listed.
pub fn dump_schema(
    install: &PgInstall,
    user: &ServerUser,
    inst: &Instance,
    dbname: &str,
) -> Result<String, PgError> {
    let mut cmd = Command::new(install.bin("pg_dump"));
    cmd.arg("--schema-only")
        .arg("--host")
        .arg(&inst.socket_dir)
        .arg("--port")
        .arg(inst.port.to_string())
        .arg("--username")
        .arg(&inst.superuser)
        // A conninfo, so a database name with `=` or spaces is a name, not options.
        .arg(format!(
            "--dbname=dbname='{}'",
            dbname.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    let dump = run(user, &mut cmd, "pg_dump --schema-only")?;
    Ok(without_restrict_keys(&dump))
}

/// Newer pg_dump releases fence a dump with `\restrict KEY` / `\unrestrict KEY`, a
/// random key per run: two dumps of one schema would always differ. Schema
/// comparisons want the schema only.
pub fn without_restrict_keys(dump: &str) -> String {
    dump.lines()
        .filter(|l| !(l.starts_with("\\restrict ") || l.starts_with("\\unrestrict ")))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn restrict_keys_leave_the_dump() {
        let dump = "--\n\\restrict abc\nCREATE TABLE t ();\n\\unrestrict abc\n";
        assert_eq!(
            super::without_restrict_keys(dump),
            "--\nCREATE TABLE t ();\n"
        );
    }
}
