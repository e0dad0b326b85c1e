//! The faithful logical import: a copy of a production database that keeps what makes
//! it production — its roles (with their password verifiers), owners, grants, default
//! privileges, row-level security policies, database and role settings, large objects,
//! comments, and the versions of its extensions.
//!
//! A plain `pg_dump | pg_restore --no-owner --no-privileges` loses all of that, and
//! fails outright on a policy that names a role. The order here is the one that works:
//! roles first (cluster-wide, from `pg_dumpall --roles-only`), then the database as the
//! source created it (encoding, locale, owner, settings, privileges, comment), then the
//! extensions at the source's versions, then the restore with owners and privileges.
//! What could not be kept is said by the [`fidelity`](crate::fidelity) report.
//!
//! Two choices are pgfork's own and are reported as such, not as losses: superusers
//! keep no password (see [`roles`](crate::roles)), and what a source superuser owned is
//! owned by the owner role, so that migrations run through a branch's URL can alter it.

use crate::dump_sql::{self, RoleStatement};
use crate::fidelity::{self, Inventory};
use crate::instance::{run, write_owned};
use crate::sql::{quote_ident, quote_literal};
use crate::{Instance, PgError, PgInstall, ServerUser};
use serde::Deserialize;
use std::path::Path;
use std::process::Command;
use tokio_postgres::Client;

/// The bootstrap superuser of a logically imported cluster. Not `postgres`: the source's
/// superusers become ordinary (non-bootstrap) superusers here, which is what lets
/// `REASSIGN OWNED` hand their objects to the owner role.
pub const IMPORT_BOOTSTRAP: &str = "pgfork_admin";

/// Whether `role` is one pgfork makes in every cluster it imports into.
pub fn is_pgfork_role(role: &str) -> bool {
    [
        crate::roles::OWNER_ROLE,
        crate::roles::IMPORT_ROLE,
        IMPORT_BOOTSTRAP,
    ]
    .contains(&role)
}

/// An extension installed in the source database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SourceExtension {
    pub name: String,
    pub version: String,
    pub schema: String,
}

/// A privilege on the source database (`grantee` empty: PUBLIC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DatabaseGrant {
    pub grantee: String,
    pub privilege: String,
    pub grantable: bool,
}

/// What the import must know of its source before it starts.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceFacts {
    /// The role may read `pg_authid`: roles keep their password verifiers.
    pub reads_passwords: bool,
    pub data_checksums: bool,
    #[serde(default)]
    pub extensions: Vec<SourceExtension>,
    #[serde(default)]
    pub superusers: Vec<String>,
    /// `None`: the database has the default privileges (no `datacl`).
    pub database_acl: Option<Vec<DatabaseGrant>>,
    pub database_comment: Option<String>,
}

const FACTS_SQL: &str = r#"SELECT json_build_object(
  'reads_passwords', has_table_privilege('pg_catalog.pg_authid', 'SELECT'),
  'data_checksums', current_setting('data_checksums') = 'on',
  'extensions', (SELECT coalesce(json_agg(json_build_object('name', extname, 'version', extversion, 'schema', extnamespace::regnamespace::text) ORDER BY extname), '[]') FROM pg_extension WHERE extname <> 'plpgsql'),
  'superusers', (SELECT coalesce(json_agg(rolname ORDER BY rolname), '[]') FROM pg_roles WHERE rolsuper),
  'database_acl', CASE WHEN d.datacl IS NULL THEN NULL ELSE (SELECT coalesce(json_agg(json_build_object('grantee', CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, 'privilege', a.privilege_type, 'grantable', a.is_grantable)), '[]') FROM aclexplode(d.datacl) a) END,
  'database_comment', shobj_description(d.oid, 'pg_database')
) FROM pg_database d WHERE d.datname = current_database()"#;

/// Where psql connects: a source URL, or a database of a cluster pgfork runs.
pub enum Target<'a> {
    Url(&'a str),
    Local(&'a Instance, &'a str),
}

/// Runs `sql` (which returns one JSON value) with psql, so that a source is reached as
/// libpq reaches it (sslmode, passfile, service files).
fn psql_json<T: serde::de::DeserializeOwned>(
    install: &PgInstall,
    user: &ServerUser,
    target: &Target,
    sql: &str,
    what: &str,
) -> Result<T, PgError> {
    let mut cmd = Command::new(install.bin("psql"));
    cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]);
    match target {
        Target::Url(url) => crate::conninfo::connect_arg(&mut cmd, url),
        Target::Local(inst, db) => {
            cmd.arg("-h")
                .arg(&inst.socket_dir)
                .arg("-p")
                .arg(inst.port.to_string())
                .arg("-U")
                .arg(&inst.superuser)
                .arg("-d")
                .arg(db);
        }
    }
    cmd.arg("-c").arg(sql).env("PGCONNECT_TIMEOUT", "10");
    let out = run(user, &mut cmd, what).map_err(|e| match target {
        Target::Url(_) => crate::import::source_unreachable(e),
        Target::Local(..) => e,
    })?;
    serde_json::from_str(out.trim())
        .map_err(|e| PgError::Unsupported(format!("{what}: unexpected answer ({e})")))
}

/// Reads the [`SourceFacts`] of the database `url` names.
pub fn source_facts(
    install: &PgInstall,
    user: &ServerUser,
    url: &str,
) -> Result<SourceFacts, PgError> {
    psql_json(
        install,
        user,
        &Target::Url(url),
        FACTS_SQL,
        "reading the source's roles and extensions",
    )
}

/// The catalog inventory of a database (see [`fidelity`]).
pub fn inventory(
    install: &PgInstall,
    user: &ServerUser,
    target: &Target,
    with_passwords: bool,
) -> Result<Inventory, PgError> {
    psql_json(
        install,
        user,
        target,
        &fidelity::inventory_sql(with_passwords),
        "taking an inventory of the catalog",
    )
}

/// The source's roles as SQL (`pg_dumpall --roles-only`), with their password verifiers
/// when the role may read them.
pub fn dump_roles(
    install: &PgInstall,
    user: &ServerUser,
    url: &str,
    with_passwords: bool,
) -> Result<String, PgError> {
    let mut cmd = Command::new(install.bin("pg_dumpall"));
    cmd.arg("--roles-only");
    if !with_passwords {
        cmd.arg("--no-role-passwords");
    }
    crate::conninfo::connect_arg(&mut cmd, url);
    cmd.env("PGCONNECT_TIMEOUT", "10");
    run(user, &mut cmd, "pg_dumpall --roles-only")
}

/// The database-level statements of a directory dump (`CREATE DATABASE` with the
/// source's encoding and locale, its owner, its settings and its roles' settings in it),
/// printed by `pg_restore --create` with an empty list: no object, only the database.
pub fn database_script(
    install: &PgInstall,
    user: &ServerUser,
    dump_dir: &Path,
    scratch: &Path,
) -> Result<String, PgError> {
    let list = scratch.join("database-only.list");
    write_owned(user, &list, "")?;
    let mut cmd = Command::new(install.bin("pg_restore"));
    cmd.args(["--create", "--schema-only", "-f", "-", "-L"])
        .arg(&list)
        .arg(dump_dir);
    let out = run(
        user,
        &mut cmd,
        "pg_restore --create (the database's settings)",
    );
    let _ = std::fs::remove_file(&list);
    out
}

/// Replays the source's roles. Statements about `reserved` roles (pgfork's own) are
/// skipped, roles that exist are altered rather than created, and a statement that
/// fails is reported rather than fatal. Returns what differs.
pub async fn apply_roles(
    client: &Client,
    script: &str,
    reserved: &[&str],
) -> Result<Vec<String>, PgError> {
    let existing: Vec<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(crate::sql::sql_err("list the roles"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut differs = Vec::new();
    let mut skipped_roles: Vec<String> = Vec::new();
    for stmt in dump_sql::statements(script) {
        let kind = dump_sql::role_statement(&stmt);
        if let Some(r) = reserved.iter().find(|r| dump_sql::touches(&kind, r)) {
            if !skipped_roles.iter().any(|s| s == r) {
                skipped_roles.push(r.to_string());
            }
            continue;
        }
        if let RoleStatement::Create(name) = &kind {
            if existing.contains(name) {
                continue;
            }
        }
        if let Err(e) = client.batch_execute(&stmt).await {
            differs.push(format!(
                "not applied: {} ({})",
                dump_sql::redacted(stmt.trim()),
                crate::sql::db_message(&e)
            ));
        }
    }
    for r in skipped_roles {
        differs.push(format!(
            "role {r}: the source's is not copied (pgfork's own role of that name is kept)"
        ));
    }
    Ok(differs)
}

/// Creates `dbname` as the source created it (the `CREATE DATABASE` of
/// [`database_script`]) — or, when this server lacks the source's locale, with its
/// own, said in the result — then applies the rest of the script (owner, settings),
/// the source's privileges on the database and its comment. Returns what differs.
pub async fn create_database(
    client: &Client,
    dbname: &str,
    script: &str,
    facts: &SourceFacts,
) -> Result<Vec<String>, PgError> {
    let mut differs = Vec::new();
    let statements = dump_sql::statements(script);
    let create = statements
        .iter()
        .find(|s| s.trim_start().starts_with("CREATE DATABASE "));
    // `postgres` exists in every cluster: an import of it keeps this server's.
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname])
        .await
        .map_err(crate::sql::sql_err("look for the database"))?
        .is_some();
    let created = match create {
        _ if exists => true,
        Some(sql) => match client.batch_execute(sql).await {
            Ok(()) => true,
            Err(e) => {
                differs.push(format!(
                    "the database uses this server's encoding and locale: the source's could not be used here ({})",
                    crate::sql::db_message(&e)
                ));
                false
            }
        },
        None => false,
    };
    if !created {
        client
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0",
                quote_ident(dbname)
            ))
            .await
            .map_err(crate::sql::sql_err("create the database"))?;
    }
    for stmt in statements
        .iter()
        .filter(|s| !s.trim_start().starts_with("CREATE DATABASE "))
    {
        if let Err(e) = client.batch_execute(stmt).await {
            differs.push(format!(
                "not applied: {} ({})",
                stmt.trim(),
                crate::sql::db_message(&e)
            ));
        }
    }
    let db = quote_ident(dbname);
    if let Some(acl) = &facts.database_acl {
        let mut sql = format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC;");
        for g in acl {
            let grantee = if g.grantee.is_empty() {
                "PUBLIC".to_string()
            } else {
                quote_ident(&g.grantee)
            };
            sql.push_str(&format!(
                "GRANT {} ON DATABASE {db} TO {grantee}{};",
                g.privilege,
                if g.grantable {
                    " WITH GRANT OPTION"
                } else {
                    ""
                }
            ));
        }
        if let Err(e) = client.batch_execute(&sql).await {
            differs.push(format!(
                "the database's privileges were not copied ({})",
                crate::sql::db_message(&e)
            ));
        }
    }
    if let Some(c) = &facts.database_comment {
        client
            .batch_execute(&format!("COMMENT ON DATABASE {db} IS {}", quote_literal(c)))
            .await
            .map_err(crate::sql::sql_err("copy the database's comment"))?;
    }
    Ok(differs)
}

/// The source's extensions this server does not have at all: the import cannot
/// restore what depends on them, so it is refused before anything is copied.
pub async fn missing_extensions(
    client: &Client,
    facts: &SourceFacts,
) -> Result<Vec<String>, PgError> {
    let available: Vec<String> = client
        .query("SELECT name::text FROM pg_available_extensions", &[])
        .await
        .map_err(crate::sql::sql_err("list the available extensions"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(facts
        .extensions
        .iter()
        .filter(|e| !available.contains(&e.name))
        .map(|e| format!("{} {}", e.name, e.version))
        .collect())
}

/// Installs the source's extensions at the source's versions where this server has
/// them, before the restore (whose `CREATE EXTENSION IF NOT EXISTS` would otherwise
/// install the newest). Only in schemas that exist before the restore (`public`);
/// the others are brought to the source's version afterwards by [`align_extensions`].
pub async fn precreate_extensions(client: &Client, facts: &SourceFacts) -> Result<(), PgError> {
    for e in facts.extensions.iter().filter(|e| e.schema == "public") {
        if version_available(client, e).await? {
            client
                .batch_execute(&format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA public VERSION {} CASCADE",
                    quote_ident(&e.name),
                    quote_literal(&e.version)
                ))
                .await
                .map_err(crate::sql::sql_err(
                    "install an extension at the source's version",
                ))?;
        }
    }
    Ok(())
}

async fn version_available(client: &Client, e: &SourceExtension) -> Result<bool, PgError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_available_extension_versions WHERE name = $1 AND version = $2",
            &[&e.name, &e.version],
        )
        .await
        .map_err(crate::sql::sql_err("list the extension versions"))?
        .is_some())
}

/// After the restore: moves an extension the restore installed at another version to
/// the source's, where an update path exists (the report says where it does not).
pub async fn align_extensions(client: &Client, facts: &SourceFacts) -> Result<(), PgError> {
    for e in &facts.extensions {
        let here: Option<String> = client
            .query_opt(
                "SELECT extversion::text FROM pg_extension WHERE extname = $1",
                &[&e.name],
            )
            .await
            .map_err(crate::sql::sql_err("read an extension's version"))?
            .map(|r| r.get(0));
        if here.as_deref().is_some_and(|v| v != e.version) && version_available(client, e).await? {
            let sql = format!(
                "ALTER EXTENSION {} UPDATE TO {}",
                quote_ident(&e.name),
                quote_literal(&e.version)
            );
            if let Err(err) = client.batch_execute(&sql).await {
                tracing::info!(extension = %e.name, error = %err, "the extension stays at this server's version");
            }
        }
    }
    Ok(())
}

/// Hands what the source's superusers own in the connected database to `owner` (their
/// roles stay, as superusers without a password). The bootstrap superuser's objects
/// cannot be reassigned; it is skipped.
pub async fn hand_over_superusers(
    client: &Client,
    superusers: &[String],
    owner: &str,
) -> Result<(), PgError> {
    for su in superusers {
        let row = client
            .query_opt(
                "SELECT oid <> 10 FROM pg_roles WHERE rolname = $1 AND rolsuper",
                &[su],
            )
            .await
            .map_err(crate::sql::sql_err("find a superuser"))?;
        if row.is_some_and(|r| r.get::<_, bool>(0)) {
            client
                .batch_execute(&format!(
                    "REASSIGN OWNED BY {} TO {}",
                    quote_ident(su),
                    quote_ident(owner)
                ))
                .await
                .map_err(crate::sql::sql_err(
                    "hand a superuser's objects to the owner",
                ))?;
        }
    }
    Ok(())
}
