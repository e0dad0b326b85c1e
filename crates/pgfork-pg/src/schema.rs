//! A database's schema as a set of named objects, and the changes between two of them.
//!
//! A unified diff of two `pg_dump --schema-only` outputs is what a person reads; a tool
//! (an IDE, an agent checking its migration, CI) wants to know *which* column or index
//! changed without parsing SQL. So the catalog is read as `(kind, name, definition)`
//! triples — definitions from Postgres's own `pg_get_*def` functions, so both sides
//! print alike — and [`changes`] compares two sets without IO.

use crate::sql::sql_err;
use crate::PgError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// One object of a schema: `kind` (table, column, index, constraint, function, view,
/// materialized view, type, policy, grant, trigger, sequence, schema, extension), its
/// qualified name, and its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObject {
    pub kind: String,
    pub name: String,
    pub definition: String,
}

/// How an object differs between a base and a branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaChange {
    /// `added`, `removed` or `changed`.
    pub change: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

const USER_SCHEMA: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'";

fn not_extension(class: &str, oid: &str) -> String {
    format!("NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = '{class}'::regclass AND e.objid = {oid} AND e.deptype = 'e')")
}

/// The catalog query (kind, name, definition) of the connected database.
pub fn objects_sql() -> String {
    let rel = not_extension("pg_class", "c.oid");
    let proc_ = not_extension("pg_proc", "p.oid");
    let typ = not_extension("pg_type", "t.oid");
    let ns = not_extension("pg_namespace", "n.oid");
    format!(
        r#"
SELECT 'schema', quote_ident(n.nspname), pg_get_userbyid(n.nspowner)
  FROM pg_namespace n WHERE {USER_SCHEMA} AND {ns}
UNION ALL
SELECT 'extension', quote_ident(x.extname), x.extversion FROM pg_extension x
UNION ALL
SELECT CASE c.relkind WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table' ELSE 'table' END,
       format('%I.%I', n.nspname, c.relname),
       coalesce('PARTITION OF ' || (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid LIMIT 1) || ' ' || pg_get_expr(c.relpartbound, c.oid), '')
       || CASE WHEN c.relrowsecurity THEN ' ROW LEVEL SECURITY' ELSE '' END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMA} AND {rel}
UNION ALL
SELECT 'column', format('%I.%I.%I', n.nspname, c.relname, a.attname),
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMA} AND {rel}
UNION ALL
SELECT 'index', format('%I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {USER_SCHEMA} AND {rel}
   AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
UNION ALL
SELECT 'constraint', format('%I.%I.%I', n.nspname, c.relname, k.conname), pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {USER_SCHEMA} AND {rel}
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END,
       format('%I.%I', n.nspname, c.relname), pg_get_viewdef(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {rel}
UNION ALL
SELECT 'sequence', format('%I.%I', n.nspname, c.relname),
       format_type(s.seqtypid, NULL) || ' INCREMENT ' || s.seqincrement
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {USER_SCHEMA} AND {rel}
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) ELSE '' END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {USER_SCHEMA} AND {proc_}
UNION ALL
SELECT 'type', format('%I.%I', n.nspname, t.typname),
       CASE t.typtype
         WHEN 'e' THEN 'ENUM (' || (SELECT string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid) || ')'
         WHEN 'd' THEN 'DOMAIN ' || format_type(t.typbasetype, t.typtypmod)
             || coalesce(' ' || (SELECT string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname) FROM pg_constraint k WHERE k.contypid = t.oid), '')
         WHEN 'c' THEN 'COMPOSITE (' || (SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) || ')'
         ELSE t.typtype::text END
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE {USER_SCHEMA} AND {typ}
   AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
UNION ALL
SELECT 'policy', format('%I.%I.%I', n.nspname, c.relname, pol.polname),
       concat_ws(' ',
         CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
         'FOR ' || CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
         'TO ' || (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ' ORDER BY 1) FROM unnest(pol.polroles) r),
         'USING (' || pg_get_expr(pol.polqual, pol.polrelid) || ')',
         'WITH CHECK (' || pg_get_expr(pol.polwithcheck, pol.polrelid) || ')')
  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
UNION ALL
SELECT 'trigger', format('%I.%I.%I', n.nspname, c.relname, t.tgname), pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND {USER_SCHEMA}
UNION ALL
SELECT 'grant',
       format('%s ON %I.%I TO %s', a.privilege_type, n.nspname, c.relname,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END),
       CASE WHEN a.is_grantable THEN 'WITH GRANT OPTION' ELSE '' END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
 WHERE a.grantee <> c.relowner AND {USER_SCHEMA} AND {rel}
"#
    )
}

/// The schema objects of the connected database.
pub async fn objects(client: &Client) -> Result<Vec<SchemaObject>, PgError> {
    let rows = client
        .query(&objects_sql(), &[])
        .await
        .map_err(sql_err("read the schema"))?;
    Ok(rows
        .iter()
        .map(|r| SchemaObject {
            kind: r.get(0),
            name: r.get(1),
            definition: r.get::<_, Option<String>>(2).unwrap_or_default(),
        })
        .collect())
}

/// A digest of the connected database's schema objects: equal digests, equal schemas
/// (for "has the parent's schema changed since this branch forked?").
pub async fn fingerprint(client: &Client) -> Result<String, PgError> {
    let sql = format!(
        "SELECT md5(coalesce(string_agg(k || ':' || n || ':' || coalesce(d, ''), E'\\n' ORDER BY k, n), '')) FROM ({}) AS o(k, n, d)",
        objects_sql()
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(sql_err("digest the schema"))?;
    Ok(row.get(0))
}

/// Rows written to the connected database's tables since its statistics began (inserts,
/// updates, deletes): a branch's own writes, from a baseline.
pub async fn user_writes(client: &Client) -> Result<i64, PgError> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 FROM pg_stat_user_tables",
            &[],
        )
        .await
        .map_err(sql_err("count the writes"))?;
    Ok(row.get(0))
}

/// Where a kind sorts in a list of changes: containers before what they contain.
fn kind_rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "schema",
        "extension",
        "type",
        "table",
        "partitioned table",
        "foreign table",
        "column",
        "constraint",
        "index",
        "sequence",
        "view",
        "materialized view",
        "function",
        "procedure",
        "aggregate",
        "trigger",
        "policy",
        "grant",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// What changed from `base` to `this`: added, removed and changed objects, containers
/// first, then by name.
pub fn changes(base: &[SchemaObject], this: &[SchemaObject]) -> Vec<SchemaChange> {
    let index = |objs: &[SchemaObject]| -> BTreeMap<(usize, String, String), String> {
        objs.iter()
            .map(|o| {
                (
                    (kind_rank(&o.kind), o.kind.clone(), o.name.clone()),
                    o.definition.clone(),
                )
            })
            .collect()
    };
    let (b, t) = (index(base), index(this));
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<_> = b.keys().chain(t.keys()).cloned().collect();
    for key in keys {
        let (_, kind, name) = key.clone();
        let change = match (b.get(&key), t.get(&key)) {
            (None, Some(after)) => SchemaChange {
                change: "added".into(),
                kind,
                name,
                before: None,
                after: Some(after.clone()),
            },
            (Some(before), None) => SchemaChange {
                change: "removed".into(),
                kind,
                name,
                before: Some(before.clone()),
                after: None,
            },
            (Some(before), Some(after)) if before != after => SchemaChange {
                change: "changed".into(),
                kind,
                name,
                before: Some(before.clone()),
                after: Some(after.clone()),
            },
            _ => continue,
        };
        out.push(change);
    }
    out
}

/// A pg_dump schema without what differs between two dumps of one schema (the
/// `\restrict` keys of newer pg_dump releases, the version banner) or says nothing
/// about it (comments, session `SET`s, runs of blank lines): the DDL only.
pub fn normalised_ddl(dump: &str) -> String {
    let mut out = String::new();
    let mut blank = true;
    for line in dump.lines() {
        let t = line.trim_end();
        let noise = t.starts_with("--")
            || t.starts_with("\\restrict ")
            || t.starts_with("\\unrestrict ")
            || t.starts_with("SET ")
            || t.starts_with("SELECT pg_catalog.set_config(");
        if noise {
            continue;
        }
        if t.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        out.push_str(t);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, name: &str, def: &str) -> SchemaObject {
        SchemaObject {
            kind: kind.into(),
            name: name.into(),
            definition: def.into(),
        }
    }

    #[test]
    fn a_new_column_and_index_are_the_only_changes() {
        let base = vec![
            obj("table", "app.users", ""),
            obj("column", "app.users.id", "bigint NOT NULL"),
            obj("function", "app.f()", "v1"),
        ];
        let mut this = base.clone();
        this.push(obj("index", "app.users_email_idx", "CREATE INDEX …"));
        this.push(obj("column", "app.users.email", "text"));
        this[2].definition = "v2".into();
        let c = changes(&base, &this);
        let summary: Vec<(String, String, String)> = c
            .iter()
            .map(|c| (c.change.clone(), c.kind.clone(), c.name.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("added".into(), "column".into(), "app.users.email".into()),
                ("added".into(), "index".into(), "app.users_email_idx".into()),
                ("changed".into(), "function".into(), "app.f()".into()),
            ]
        );
        assert_eq!(c[2].before.as_deref(), Some("v1"));
        assert!(changes(&this, &this).is_empty());
        let removed = changes(&this, &base);
        assert!(removed
            .iter()
            .any(|c| c.change == "removed" && c.name == "app.users.email"));
    }

    #[test]
    fn two_dumps_of_one_schema_normalise_alike() {
        let a = "--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET x = 1;\n\n\nCREATE TABLE t (\n    id int\n);\n\n\n\\unrestrict abc\n";
        let b = "--\n-- Dumped by pg_dump version 15.9\n\\restrict zzz\nSET x = 1;\nCREATE TABLE t (\n    id int\n);\n";
        assert_eq!(normalised_ddl(a).trim(), normalised_ddl(b).trim());
        assert_eq!(normalised_ddl(a), "CREATE TABLE t (\n    id int\n);\n\n");
    }
}
