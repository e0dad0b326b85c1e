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
            archive_dir: None,
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
                // Nothing runs behind the masking's back, and its log quotes no value.
                ("autovacuum", "off"),
                ("log_statement", "none"),
                ("log_min_error_statement", "panic"),
                ("log_min_duration_statement", "-1"),
                ("log_parameter_max_length", "0"),
                ("log_parameter_max_length_on_error", "0"),
                ("log_destination", "stderr"),
                ("logging_collector", "off"),
            ]
            .map(|(k, v)| (k, v.to_string())),
        );
        // Replication slots cannot exist at wal_level = minimal (the start would fail),
        // and their spill files hold decoded changes: the staged copy has none.
        let slots = pgdata.join("pg_replslot");
        if let Ok(entries) = std::fs::read_dir(&slots) {
            for e in entries.flatten() {
                remove_tree(&e.path());
            }
        }
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
                "DROP ROLE IF EXISTS {MASKER}; \
                 CREATE ROLE {MASKER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS; \
                 GRANT pg_read_all_data, pg_write_all_data TO {MASKER}; \
                 DO $pgfork$ DECLARE x text; BEGIN \
                   FOR x IN SELECT gid FROM pg_prepared_xacts LOOP EXECUTE format('ROLLBACK PREPARED %L', x); END LOOP; \
                 END $pgfork$"
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
                // Every table masked, with its partitions and inheritance children.
                let family = family_of(&client, &plan.tables)
                    .await
                    .map_err(|e| failed(format!("could not read the tables of {db:?}: {e}")))?;
                if let Some(rel) = family.rewrite_rules.first() {
                    return Err(failed(format!(
                        "table {rel} has a rewrite rule (CREATE RULE): an UPDATE on it may do something else, so it cannot be masked safely; drop the rule in the parent or leave the table out"
                    )));
                }
                // Triggers off (no audit trigger copies the originals elsewhere; foreign
                // keys wait until both sides are masked), and back to what they were.
                for rel in &family.tables {
                    client
                        .batch_execute(&format!("ALTER TABLE {rel} DISABLE TRIGGER ALL"))
                        .await
                        .map_err(|e| failed(format!("{rel}: {e}")))?;
                }
                // Rule SQL runs in sessions of the masking role itself (it logs in over
                // the private socket): no RESET ROLE leads back to a superuser, one
                // statement per call (extended protocol), and only the sessions that run
                // built-ins alone hold the key.
                let masker = {
                    let mut m = inst.clone();
                    m.superuser = MASKER.to_string();
                    m
                };
                let keyed = sql::connect(&masker, &db).await.map_err(pg_err)?;
                keyed
                    .batch_execute("SET TimeZone = 'UTC'")
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                // A bound parameter: the key is never part of a statement's text.
                keyed
                    .execute("SELECT set_config('pgfork.mask_key', $1, false)", &[&key])
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let unkeyed = sql::connect(&masker, &db).await.map_err(pg_err)?;
                unkeyed
                    .batch_execute("SET TimeZone = 'UTC'")
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                #[cfg(feature = "testing")]
                let _ = tokio::task::spawn_blocking(|| fail::fail_point!("mask-before-update")).await;
                let t_update = std::time::Instant::now();
                let parallel = workers > 1 && version >= 140_000;
                for m in &plan.mask {
                    let session = if m.keyed { &keyed } else { &unkeyed };
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
                                run_in_ranges(&masker, &db, m.keyed.then_some(key), m, pages as u64, workers).await
                            } else {
                                session.execute(m.sql.as_str(), &[]).await.map(|_| ()).map_err(|e| reason(&e))
                            }
                        }
                        _ => session.execute(m.sql.as_str(), &[]).await.map(|_| ()).map_err(|e| reason(&e)),
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
                drop(keyed);
                drop(unkeyed);
                let update_ms = t_update.elapsed().as_millis();
                client
                    .batch_execute("DROP SCHEMA pgfork_mask CASCADE")
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                for (rel, trigger, state) in &family.triggers {
                    let how = match state.as_str() {
                        "D" => "DISABLE TRIGGER",
                        "R" => "ENABLE REPLICA TRIGGER",
                        "A" => "ENABLE ALWAYS TRIGGER",
                        _ => "ENABLE TRIGGER",
                    };
                    let sql = format!("ALTER TABLE {rel} {how} {}", sql::quote_ident(trigger));
                    client
                        .batch_execute(&sql)
                        .await
                        .map_err(|e| failed(format!("{sql}: {e}")))?;
                }
                let t_rewrite = std::time::Instant::now();
                // Old statistics go first (columns that are never analyzed keep theirs
                // otherwise); each table is rewritten (a partitioned parent's VACUUM
                // reaches its partitions, an inheritance parent's does not: so each one).
                client
                    .execute(
                        "DELETE FROM pg_statistic WHERE starelid = ANY ($1::text[]::regclass[]::oid[])",
                        &[&family.tables],
                    )
                    .await
                    .map_err(|e| failed(format!("could not clear the statistics: {e}")))?;
                for rel in &family.tables {
                    let sql = if family.partitioned.contains(rel) {
                        format!("ANALYZE {rel}")
                    } else {
                        format!("VACUUM (FULL, ANALYZE) {rel}")
                    };
                    client
                        .batch_execute(&sql)
                        .await
                        .map_err(|e| failed(format!("{sql}: {e}")))?;
                }
                // Materialized views hold copies of what they select: computed again from
                // the masked tables (a refresh writes new files, the old ones go), then
                // analyzed, then the statistics catalogs rewritten without the old samples.
                let views: Vec<String> = client
                    .query(
                        "SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews WHERE ispopulated",
                        &[],
                    )
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for v in &views {
                    for sql in [format!("REFRESH MATERIALIZED VIEW {v}"), format!("ANALYZE {v}")] {
                        client
                            .batch_execute(&sql)
                            .await
                            .map_err(|e| failed(format!("{sql}: {e}")))?;
                    }
                }
                client
                    .batch_execute("VACUUM FULL pg_catalog.pg_statistic, pg_catalog.pg_statistic_ext_data")
                    .await
                    .map_err(|e| failed(format!("could not rewrite the statistics: {e}")))?;
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
            .batch_execute(&format!("DROP ROLE {MASKER}; CHECKPOINT"))
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
        // No rule is a valid question ("what looks personal here?").
        let rules = if req.masking_rules.is_empty() {
            MaskingRules {
                strict: req.strict,
                keep: req.keep,
                ..MaskingRules::default()
            }
        } else {
            rules_from_request(Some(req.masking_rules), Some(req.strict), Some(req.keep))?
                .unwrap_or_default()
        };
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

/// The masked tables with their partitions and inheritance children (quoted names),
/// their triggers' states, and what would make an UPDATE unsafe.
struct Family {
    tables: Vec<String>,
    partitioned: Vec<String>,
    triggers: Vec<(String, String, String)>,
    rewrite_rules: Vec<String>,
}

async fn family_of(
    client: &tokio_postgres::Client,
    tables: &[String],
) -> Result<Family, tokio_postgres::Error> {
    let rows = client
        .query(
            "WITH RECURSIVE fam(oid) AS ( \
               SELECT t::regclass::oid FROM unnest($1::text[]) t \
               UNION SELECT i.inhrelid FROM pg_inherits i JOIN fam ON i.inhparent = fam.oid) \
             SELECT c.oid::regclass::text, c.relkind::text FROM fam JOIN pg_class c ON c.oid = fam.oid ORDER BY 1",
            &[&tables],
        )
        .await?;
    let mut family = Family {
        tables: Vec::new(),
        partitioned: Vec::new(),
        triggers: Vec::new(),
        rewrite_rules: Vec::new(),
    };
    for r in rows {
        let (name, kind): (String, String) = (r.get(0), r.get(1));
        if kind == "p" {
            family.partitioned.push(name.clone());
        }
        family.tables.push(name);
    }
    for r in client
        .query(
            "SELECT t.tgrelid::regclass::text, t.tgname::text, t.tgenabled::text FROM pg_trigger t \
             WHERE t.tgrelid = ANY ($1::text[]::regclass[]::oid[]) ORDER BY 1, 2",
            &[&family.tables],
        )
        .await?
    {
        family.triggers.push((r.get(0), r.get(1), r.get(2)));
    }
    for r in client
        .query(
            "SELECT ev_class::regclass::text FROM pg_rewrite \
             WHERE ev_class = ANY ($1::text[]::regclass[]::oid[]) AND rulename <> '_RETURN'",
            &[&family.tables],
        )
        .await?
    {
        family.rewrite_rules.push(r.get(0));
    }
    Ok(family)
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
    key: Option<&str>,
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
        let (inst, db, key) = (inst.clone(), db.to_string(), key.map(str::to_string));
        let snapshot = pgfork_pg::sql::quote_literal(&snapshot);
        tasks.push(tokio::spawn(async move {
            let c = sql::connect(&inst, &db).await.map_err(|e| e.to_string())?;
            c.batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {snapshot}; SET TimeZone = 'UTC'"
            ))
            .await
            .map_err(|e| reason(&e))?;
            if let Some(key) = &key {
                c.execute("SELECT set_config('pgfork.mask_key', $1, false)", &[key])
                    .await
                    .map_err(|e| reason(&e))?;
            }
            c.execute(sql.as_str(), &[]).await.map_err(|e| reason(&e))?;
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
