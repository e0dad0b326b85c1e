//! SQL on a branch, for the tools that read or change data: through the branch's own
//! URL (the proxy checks the password like any client's), never a private socket, so
//! the same code works against a laptop daemon and a team server.

use serde_json::{json, Map, Value};
use tokio_postgres::{Client, SimpleQueryMessage};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot connect to the branch: {0}")]
    Connect(String),
    #[error("{0}")]
    Postgres(String),
}

fn pg(e: tokio_postgres::Error) -> SqlError {
    // The server's own message (with its detail and hint) is what an agent can act on.
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                text.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                text.push_str(&format!("; hint: {h}"));
            }
            SqlError::Postgres(text)
        }
        None => SqlError::Postgres(e.to_string()),
    }
}

fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// Connects to a branch URL: plaintext on loopback (the proxy's own machine), TLS
/// verified against the web's roots and `PGFORK_API_CA` elsewhere.
pub async fn connect(url: &str) -> Result<Client, SqlError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| SqlError::Connect(e.to_string()))?;
    let local = config.get_hosts().iter().all(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => is_local(name),
        tokio_postgres::config::Host::Unix(_) => true,
    });
    if local {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| SqlError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        return Ok(client);
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = std::env::var_os("PGFORK_API_CA") {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
            .map_err(|e| SqlError::Connect(format!("PGFORK_API_CA: {e}")))?;
        for cert in certs.flatten() {
            let _ = roots.add(cert);
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SqlError::Connect(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (client, conn) = config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        .await
        .map_err(|e| SqlError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Runs `sql` (one or more statements) and returns every result set as
/// `{columns, rows}` and every command's tag. Values come back as text, as psql shows
/// them, so any type survives the trip to JSON.
pub async fn run(client: &Client, sql: &str) -> Result<Value, SqlError> {
    let messages = client.simple_query(sql).await.map_err(pg)?;
    let mut results = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    let mut rows: Vec<Value> = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                columns = Some(cols.iter().map(|c| c.name().to_string()).collect());
            }
            SimpleQueryMessage::Row(row) => {
                let names: Vec<String> = columns.clone().unwrap_or_else(|| {
                    row.columns().iter().map(|c| c.name().to_string()).collect()
                });
                let mut obj = Map::new();
                for (i, name) in names.iter().enumerate() {
                    obj.insert(
                        name.clone(),
                        row.get(i)
                            .map_or(Value::Null, |v| Value::String(v.to_string())),
                    );
                }
                rows.push(Value::Object(obj));
            }
            SimpleQueryMessage::CommandComplete(n) => {
                results.push(match columns.take() {
                    Some(cols) => {
                        json!({"columns": cols, "rows": std::mem::take(&mut rows), "row_count": n})
                    }
                    None => json!({"rows_affected": n}),
                });
            }
            _ => {}
        }
    }
    Ok(match results.len() {
        1 => results.remove(0),
        _ => Value::Array(results),
    })
}

/// Whether `sql` can run inside a transaction without leaving it: exactly one statement
/// (Postgres's own parser decides: the extended protocol refuses more than one), and
/// not one that ends the transaction or changes what later ones may do. A READ ONLY
/// transaction is only a guard if nothing inside it can close it.
pub async fn confined(client: &Client, sql: &str) -> Result<(), SqlError> {
    client.prepare(sql).await.map_err(|e| {
        let text = pg(e).to_string();
        if text.contains("multiple commands") {
            SqlError::Postgres("give one statement per call here (several were given)".into())
        } else {
            SqlError::Postgres(text)
        }
    })?;
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if matches!(
        first.as_str(),
        "COMMIT"
            | "END"
            | "ROLLBACK"
            | "ABORT"
            | "BEGIN"
            | "START"
            | "SET"
            | "RESET"
            | "SAVEPOINT"
            | "RELEASE"
            | "PREPARE"
            | "DISCARD"
            | "CHECKPOINT"
    ) {
        return Err(SqlError::Postgres(format!(
            "{first} is not allowed here: it would end or change the read-only transaction"
        )));
    }
    Ok(())
}

/// Runs statements in one transaction: all or nothing.
pub async fn run_transaction(
    client: &Client,
    statements: &[String],
    read_only: bool,
) -> Result<Value, SqlError> {
    let begin = if read_only {
        "BEGIN READ ONLY"
    } else {
        "BEGIN"
    };
    if read_only {
        for s in statements {
            confined(client, s).await?;
        }
    }
    client.batch_execute(begin).await.map_err(pg)?;
    let mut out = Vec::new();
    for s in statements {
        match run(client, s).await {
            Ok(v) => out.push(v),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    client.batch_execute("COMMIT").await.map_err(pg)?;
    Ok(Value::Array(out))
}

/// User tables and views (not the catalogs).
pub async fn tables(client: &Client) -> Result<Value, SqlError> {
    run(
        client,
        "SELECT table_schema AS schema, table_name AS name, table_type AS type \
         FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1, 2",
    )
    .await
}

/// A table's columns, constraints and indexes.
pub async fn describe_table(client: &Client, table: &str) -> Result<Value, SqlError> {
    let (schema, name) = match table.split_once('.') {
        Some((s, n)) => (s.to_string(), n.to_string()),
        None => ("public".to_string(), table.to_string()),
    };
    let columns = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 \
             ORDER BY ordinal_position",
            &[&schema, &name],
        )
        .await
        .map_err(pg)?;
    if columns.is_empty() {
        return Err(SqlError::Postgres(format!(
            "there is no table {schema}.{name}: list them with get_database_tables"
        )));
    }
    let indexes = client
        .query(
            "SELECT indexname::text, indexdef::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY 1",
            &[&schema, &name],
        )
        .await
        .map_err(pg)?;
    let constraints = client
        .query(
            "SELECT c.conname::text, pg_get_constraintdef(c.oid) FROM pg_constraint c \
             JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = $1 AND t.relname = $2 ORDER BY 1",
            &[&schema, &name],
        )
        .await
        .map_err(pg)?;
    Ok(json!({
        "table": format!("{schema}.{name}"),
        "columns": columns.iter().map(|r| json!({
            "name": r.get::<_, String>(0),
            "type": r.get::<_, String>(1),
            "nullable": r.get::<_, String>(2) == "YES",
            "default": r.get::<_, Option<String>>(3),
        })).collect::<Vec<_>>(),
        "constraints": constraints.iter().map(|r| json!({
            "name": r.get::<_, String>(0), "definition": r.get::<_, String>(1),
        })).collect::<Vec<_>>(),
        "indexes": indexes.iter().map(|r| json!({
            "name": r.get::<_, String>(0), "definition": r.get::<_, String>(1),
        })).collect::<Vec<_>>(),
    }))
}

/// The plan of a statement; with `analyze`, run inside a transaction that is rolled
/// back, so even a write leaves nothing behind.
pub async fn explain(client: &Client, sql: &str, analyze: bool) -> Result<Value, SqlError> {
    let prefix = if analyze {
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
    } else {
        "EXPLAIN (FORMAT JSON) "
    };
    // One statement only: `SELECT 1; COMMIT; …` must not escape the transaction that
    // is rolled back.
    let statement = format!("{prefix}{sql}");
    confined(client, &statement).await?;
    client.batch_execute("BEGIN").await.map_err(pg)?;
    let result = client.simple_query(&statement).await;
    let _ = client.batch_execute("ROLLBACK").await;
    let messages = result.map_err(pg)?;
    for m in messages {
        if let SimpleQueryMessage::Row(row) = m {
            if let Some(text) = row.get(0) {
                return serde_json::from_str(text).map_err(|e| SqlError::Postgres(e.to_string()));
            }
        }
    }
    Err(SqlError::Postgres("EXPLAIN returned no plan".into()))
}

/// Rows per user table (exact counts; for the migration report).
pub async fn row_counts(client: &Client) -> Result<Value, SqlError> {
    let tables = client
        .query(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
             FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut out = Map::new();
    for t in tables {
        let name: String = t.get(0);
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await
            .map_err(pg)?
            .get(0);
        out.insert(name, json!(n));
    }
    Ok(Value::Object(out))
}
