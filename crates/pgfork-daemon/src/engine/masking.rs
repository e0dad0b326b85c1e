//! Masking a branch while it is still a staged directory: no client can reach it (it
//! has no port and no row in the store until it is committed), so a branch is never
//! seen half-masked, and a failure throws the whole directory away.
//!
//! The leak surfaces and how each is closed (DESIGN.md §11): the rows are rewritten by
//! the rules, then `VACUUM FULL` rewrites each masked table with its indexes and TOAST
//! (no dead tuple or old index entry survives; the old files are unlinked at the
//! checkpoint), `ANALYZE` replaces the statistics' samples and the statistics catalogs
//! are rewritten so the old samples are not left as dead tuples, replication slots
//! (whose spill files hold decoded changes) are dropped, `pg_stat_statements` is reset,
//! the cluster is shut down cleanly and its WAL — full of pre-mask page images and the
//! parent's own changes — is discarded with `pg_resetwal`, and the server logs of the
//! masking are deleted. Rule expressions come from a file in a repository, so they run
//! as a transient role that is no superuser (it may only read and write data, and
//! bypasses row security so that no row escapes masking).

use super::*;
use pgfork_mask::{plan_database, MaskingRules, UniqueColumn};
use std::collections::{BTreeMap, BTreeSet};

/// The role rule expressions run as.
const MASKER: &str = "pgfork_masker";

/// Rules as a request carries them (Neon's objects, pgfork's strict mode and keep
/// list), checked.
pub(crate) fn rules_from_request(
    list: Option<Vec<serde_json::Value>>,
    strict: Option<bool>,
    keep: Option<Vec<String>>,
) -> Result<Option<MaskingRules>, ApiError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let rules = MaskingRules {
        masking_rules: list
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value(v)
                    .map_err(|e| ApiError::bad_request(format!("masking rule {}: {e}", i + 1)))
            })
            .collect::<Result<_, _>>()?,
        strict: strict.unwrap_or(false),
        keep: keep.unwrap_or_default(),
    };
    rules
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Some(rules))
}

impl Engine {
    /// Masks the cluster staged at `pgdata` (stopped) by `rules`; leaves it stopped,
    /// with fresh WAL. The error names the rule that failed. `label` names its socket
    /// directory and log (a reset masks beside the running branch).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn mask_staged(
        &self,
        project: &Project,
        b: &Branch,
        label: &str,
        pgdata: &Path,
        rules: &MaskingRules,
        key: &str,
        progress: &Progress,
    ) -> Result<(), ApiError> {
        let install = self.install_for(pgdata)?;
        let inst = Instance {
            pgdata: pgdata.to_path_buf(),
            socket_dir: self.layout.socket_dir(label),
            port: b.port,
            log_file: self.layout.branch_log(label),
            superuser: project.superuser.clone(),
        };
        progress.phase("masking", rules.masking_rules.len() as u64);
        // The staging directory is the daemon's; the server user must reach the copy.
        if let Some(staging) = pgdata.parent() {
            self.user.chown(staging).map_err(pg_err)?;
        }
        // The staged copy needs no durability while it is masked (a crash throws it
        // away), and its WAL is discarded afterwards: write as little as possible.
        let mut settings = pgfork_pg::sanitize::first_boot();
        settings.extend(
            [
                ("fsync", "off"),
                ("full_page_writes", "off"),
                ("synchronous_commit", "off"),
                ("wal_level", "minimal"),
                ("max_wal_senders", "0"),
                ("max_wal_size", "8GB"),
                ("checkpoint_timeout", "1h"),
                ("maintenance_work_mem", "256MB"),
            ]
            .map(|(k, v)| (k, v.to_string())),
        );
        let (i, u, s) = (install.clone(), self.user.clone(), inst.clone());
        blocking(move || {
            s.start(&i, &u, &settings, START_TIMEOUT)
                .map(|_| ())
                .map_err(pg_err)
        })
        .await?;
        let masked = self.mask_running(&inst, rules, key, progress).await;
        let stopped = self.stop_instance(inst.clone()).await;
        masked?;
        stopped?;
        let (i, u, d) = (install.clone(), self.user.clone(), pgdata.to_path_buf());
        blocking(move || instance::reset_wal(&i, &u, &d).map_err(pg_err)).await?;
        // The masking's own server log (statements, errors quoting values).
        for dir in ["log", "pg_log"] {
            let logs = pgdata.join(dir);
            if logs.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&logs) {
                    for e in entries.flatten() {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&inst.log_file);
        tracing::info!(branch = %b.name, rules = rules.masking_rules.len(), "masked");
        Ok(())
    }

    async fn mask_running(
        &self,
        inst: &Instance,
        rules: &MaskingRules,
        key: &str,
        progress: &Progress,
    ) -> Result<(), ApiError> {
        let failed = |what: String| {
            ApiError::new(
                422,
                "UNPROCESSABLE_ENTITY",
                format!("{what}; the branch was not created"),
            )
        };
        let admin = sql::connect(inst, "postgres").await.map_err(pg_err)?;
        let databases: BTreeSet<String> = admin
            .query(
                "SELECT datname::text FROM pg_database WHERE datallowconn",
                &[],
            )
            .await
            .map_err(|e| failed(format!("could not list the databases: {e}")))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (i, r) in rules.masking_rules.iter().enumerate() {
            if !databases.contains(&r.database_name) {
                return Err(failed(format!(
                    "masking rule {} ({}): there is no database {:?}",
                    i + 1,
                    r.target(),
                    r.database_name
                )));
            }
        }
        if rules.strict {
            let mut findings = Vec::new();
            for db in &databases {
                if db == "template1" {
                    continue;
                }
                let client = sql::connect(inst, db).await.map_err(pg_err)?;
                let columns = suspect_columns(&client, db)
                    .await
                    .map_err(|e| failed(format!("could not read the columns of {db:?}: {e}")))?;
                findings.extend(pgfork_mask::coverage::strict_violations(&columns, rules));
            }
            if !findings.is_empty() {
                let shown: Vec<String> = findings
                    .iter()
                    .take(5)
                    .map(|f| format!("{} ({})", f.target, f.reason))
                    .collect();
                return Err(failed(format!(
                    "strict masking: {} column(s) are not covered: {}{}; add rules for them or list them under keep",
                    findings.len(),
                    shown.join("; "),
                    if findings.len() > 5 { "; …" } else { "" }
                )));
            }
        }
        admin
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {MASKER}; CREATE ROLE {MASKER} NOLOGIN NOSUPERUSER BYPASSRLS; \
                 GRANT pg_read_all_data, pg_write_all_data TO {MASKER}"
            ))
            .await
            .map_err(|e| failed(format!("could not create the masking role: {e}")))?;
        // Big tables are masked by several sessions side by side, each a range of pages
        // (TID range scans, PostgreSQL 14 and later).
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4) as u64;
        let version: i32 = admin
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        let result = async {
            for db in rules.databases() {
                let of_db: Vec<(usize, &pgfork_mask::MaskingRule)> = rules
                    .masking_rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.database_name == db)
                    .map(|(i, r)| (i + 1, r))
                    .collect();
                let client = sql::connect(inst, &db).await.map_err(pg_err)?;
                let (columns, unique) = catalog(&client)
                    .await
                    .map_err(|e| failed(format!("could not read the tables of {db:?}: {e}")))?;
                let plan = plan_database(&of_db, &columns, &unique).map_err(failed)?;
                client
                    .batch_execute(pgfork_mask::functions::INSTALL_SQL)
                    .await
                    .map_err(|e| failed(format!("could not install the masking functions in {db:?}: {e}")))?;
                client
                    .batch_execute(&format!("GRANT USAGE ON SCHEMA pgfork_mask TO {MASKER}"))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                for s in &plan.before {
                    client
                        .batch_execute(s)
                        .await
                        .map_err(|e| failed(format!("{s}: {e}")))?;
                }
                client
                    .batch_execute(&format!("SET ROLE {MASKER}; SET TimeZone = 'UTC'"))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                // A bound parameter: the key is never part of a statement's text.
                client
                    .execute("SELECT set_config('pgfork.mask_key', $1, false)", &[&key])
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                #[cfg(feature = "testing")]
                let _ = tokio::task::spawn_blocking(|| fail::fail_point!("mask-before-update")).await;
                let t_update = std::time::Instant::now();
                let parallel = workers > 1 && version >= 140_000;
                for m in &plan.mask {
                    let outcome = match (&m.splittable, parallel) {
                        (Some(table), true) => {
                            let pages: i64 = client
                                .query_one(
                                    "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::int)::bigint",
                                    &[table],
                                )
                                .await
                                .map(|r| r.get(0))
                                .unwrap_or(0);
                            if pages >= SPLIT_PAGES {
                                run_in_ranges(inst, &db, key, m, pages as u64, workers).await
                            } else {
                                client.batch_execute(&m.sql).await.map_err(|e| reason(&e))
                            }
                        }
                        _ => client.batch_execute(&m.sql).await.map_err(|e| reason(&e)),
                    };
                    if let Err(why) = outcome {
                        let names: Vec<String> = m
                            .rules
                            .iter()
                            .map(|i| {
                                format!(
                                    "masking rule {i} ({})",
                                    rules.masking_rules[i - 1].target()
                                )
                            })
                            .collect();
                        return Err(failed(format!("{} failed: {why}", names.join(", "))));
                    }
                    progress.add(m.rules.len() as u64);
                }
                let update_ms = t_update.elapsed().as_millis();
                client
                    .batch_execute("RESET ROLE; RESET pgfork.mask_key")
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                client
                    .batch_execute("DROP SCHEMA pgfork_mask CASCADE")
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let t_rewrite = std::time::Instant::now();
                for s in &plan.after {
                    client
                        .batch_execute(s)
                        .await
                        .map_err(|e| failed(format!("{s}: {e}")))?;
                }
                // Materialized views hold copies of what they select: computed again from
                // the masked tables (a refresh writes new files, the old ones go).
                let views: Vec<String> = client
                    .query(
                        "SELECT format('REFRESH MATERIALIZED VIEW %I.%I', schemaname, matviewname) FROM pg_matviews WHERE ispopulated",
                        &[],
                    )
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for v in &views {
                    client
                        .batch_execute(v)
                        .await
                        .map_err(|e| failed(format!("{v}: {e}")))?;
                }
                tracing::info!(database = %db, update_ms, rewrite_ms = t_rewrite.elapsed().as_millis() as u64, materialized_views = views.len(), "masked a database (rules, then the rewrite)");
                let has_pgss: bool = client
                    .query_one(
                        "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements')",
                        &[],
                    )
                    .await
                    .map(|r| r.get(0))
                    .unwrap_or(false);
                if has_pgss {
                    client
                        .batch_execute("SELECT pg_stat_statements_reset()")
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                }
            }
            Ok::<(), ApiError>(())
        }
        .await;
        result?;
        admin
            .batch_execute(&format!(
                "DROP ROLE {MASKER}; \
                 SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active; \
                 CHECKPOINT"
            ))
            .await
            .map_err(|e| failed(format!("could not finish masking: {e}")))?;
        Ok(())
    }
}

impl Engine {
    /// The columns of a branch that look personal and `req`'s rules do not cover (in
    /// strict mode: also the undecided columns of masked tables). Starts the branch.
    pub async fn masking_check(
        self: &Arc<Self>,
        project_ref: &str,
        branch_ref: &str,
        req: api::MaskingCheckRequest,
    ) -> Result<api::MaskingCheckResponse, ApiError> {
        let rules = MaskingRules {
            masking_rules: req
                .masking_rules
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    serde_json::from_value(v)
                        .map_err(|e| ApiError::bad_request(format!("masking rule {}: {e}", i + 1)))
                })
                .collect::<Result<_, _>>()?,
            strict: req.strict,
            keep: req.keep,
        };
        // No rule is a valid question ("what looks personal here?").
        if !rules.masking_rules.is_empty() {
            rules
                .validate()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        let project = self.project(project_ref)?;
        let b = self.branch(&project, branch_ref)?;
        self.set_running(&project.id, &b.id, true).await?;
        let inst = self.instance(&project, &b);
        let admin = sql::connect(&inst, "postgres").await.map_err(pg_err)?;
        let databases: Vec<String> = admin
            .query(
                "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut findings = Vec::new();
        for db in databases {
            let client = sql::connect(&inst, &db).await.map_err(pg_err)?;
            let columns = suspect_columns(&client, &db).await.map_err(|e| {
                ApiError::internal(format!("could not read the columns of {db:?}: {e}"))
            })?;
            let found = if rules.strict {
                pgfork_mask::coverage::strict_violations(&columns, &rules)
            } else {
                pgfork_mask::coverage::uncovered(&columns, &rules)
            };
            findings.extend(found.into_iter().map(|f| api::MaskingFinding {
                target: f.target,
                reason: f.reason,
            }));
        }
        Ok(api::MaskingCheckResponse { findings })
    }
}

/// Tables smaller than this (8 MiB of pages) are masked by one statement.
const SPLIT_PAGES: i64 = 1024;

fn reason(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Runs `m` as `workers` statements over disjoint page ranges of the table as it is
/// now, each in its own session as the masking role. All sessions share one snapshot,
/// exported before any of them writes: a new row version one session writes into
/// another's range (free space anywhere in the table) is invisible to that other one,
/// so every row is masked exactly once (masking twice would break determinism).
async fn run_in_ranges(
    inst: &Instance,
    db: &str,
    key: &str,
    m: &pgfork_mask::plan::MaskStatement,
    pages: u64,
    workers: u64,
) -> Result<(), String> {
    let exporter = sql::connect(inst, db).await.map_err(|e| e.to_string())?;
    exporter
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(|e| reason(&e))?;
    let snapshot: String = exporter
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(|e| reason(&e))?
        .get(0);
    let per = pages.div_ceil(workers);
    tracing::info!(table = ?m.splittable, pages, sessions = workers, "masking a table in page ranges side by side");
    let mut tasks = Vec::new();
    for k in 0..workers {
        let from = k * per;
        let to = (k + 1 < workers).then_some((k + 1) * per);
        let sql = m.in_pages(from, to);
        let (inst, db, key) = (inst.clone(), db.to_string(), key.to_string());
        let snapshot = pgfork_pg::sql::quote_literal(&snapshot);
        tasks.push(tokio::spawn(async move {
            let c = sql::connect(&inst, &db).await.map_err(|e| e.to_string())?;
            c.batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {snapshot}; \
                 SET ROLE {MASKER}; SET TimeZone = 'UTC'"
            ))
            .await
            .map_err(|e| reason(&e))?;
            c.execute("SELECT set_config('pgfork.mask_key', $1, false)", &[&key])
                .await
                .map_err(|e| reason(&e))?;
            c.batch_execute(&sql).await.map_err(|e| reason(&e))?;
            c.batch_execute("COMMIT").await.map_err(|e| reason(&e))
        }));
    }
    let mut first_error = None;
    for t in tasks {
        let r = t.await.map_err(|e| e.to_string()).and_then(|r| r);
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    let _ = exporter.batch_execute("COMMIT").await;
    first_error.map_or(Ok(()), Err)
}

type Columns = pgfork_mask::plan::TableColumns;

/// The columns of every table, and those in unique indexes (primary keys included).
async fn catalog(
    client: &tokio_postgres::Client,
) -> Result<(Columns, BTreeSet<UniqueColumn>), tokio_postgres::Error> {
    let mut columns: Columns = BTreeMap::new();
    for r in client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
            &[],
        )
        .await?
    {
        columns
            .entry((r.get(0), r.get(1)))
            .or_default()
            .insert(r.get(2), r.get(3));
    }
    let unique = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey) \
             WHERE i.indisunique",
            &[],
        )
        .await?
        .iter()
        .map(|r| UniqueColumn {
            schema: r.get(0),
            table: r.get(1),
            column: r.get(2),
        })
        .collect();
    Ok((columns, unique))
}

/// Every column of the ordinary tables of `db` (system schemas aside), with a sample
/// of up to a hundred values of its text-like columns, for the coverage check.
pub(crate) async fn suspect_columns(
    client: &tokio_postgres::Client,
    db: &str,
) -> Result<Vec<pgfork_mask::coverage::Column>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    coalesce(a.atttypid = ANY (ARRAY['text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, to_regtype('citext')]::oid[]), false) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgfork_mask') AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1, 2, a.attnum",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (schema, table, column): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let texty: bool = r.get(4);
        let samples = if texty {
            let q = format!(
                "SELECT {c}::text FROM {s}.{t} WHERE {c} IS NOT NULL LIMIT 100",
                c = sql::quote_ident(&column),
                s = sql::quote_ident(&schema),
                t = sql::quote_ident(&table),
            );
            client
                .query(&q, &[])
                .await
                .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        out.push(pgfork_mask::coverage::Column {
            database: db.to_string(),
            schema,
            table,
            column,
            data_type: r.get(3),
            samples,
        });
    }
    Ok(out)
}
