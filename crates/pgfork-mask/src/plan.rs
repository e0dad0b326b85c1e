//! The statements that mask one database, decided before any of them runs: every rule
//! checked against the catalog (its table and column exist; it keeps a unique index
//! unique), then, per table, triggers off (so no audit trigger copies the originals
//! elsewhere and foreign keys wait until both sides are masked), one `UPDATE` per
//! table and condition, triggers on, and a rewrite (`VACUUM FULL`) that leaves no dead
//! tuple, old index entry or TOAST chunk of the original values. `ANALYZE` replaces the
//! statistics' samples, and the statistics catalogs are rewritten too, since the old
//! samples would otherwise stay behind as dead tuples.

use crate::functions::{resolve, Resolved};
use crate::rules::MaskingRule;
use std::collections::{BTreeMap, BTreeSet};

/// A column that is part of a unique index or primary key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UniqueColumn {
    pub schema: String,
    pub table: String,
    pub column: String,
}

/// A masking statement and the rules (1-based, as users count them) it carries out,
/// so a failure names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskStatement {
    pub rules: Vec<usize>,
    pub sql: String,
    /// The table it updates (quoted), when it may be split into ranges of pages run
    /// side by side (each row is masked on its own; a shuffle is not).
    pub splittable: Option<String>,
}

impl MaskStatement {
    /// The statement limited to the pages `[from, to)` (`to = None`: to the end),
    /// which PostgreSQL 14 and later read with a TID range scan.
    pub fn in_pages(&self, from: u64, to: Option<u64>) -> String {
        let mut range = format!("ctid >= '({from},0)'::tid");
        if let Some(to) = to {
            range.push_str(&format!(" AND ctid < '({to},0)'::tid"));
        }
        if self.sql.contains(" WHERE (") {
            format!("{} AND {range}", self.sql)
        } else {
            format!("{} WHERE {range}", self.sql)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabasePlan {
    /// Run as a superuser before masking.
    pub before: Vec<String>,
    /// Run as the masking role (never a superuser: rule expressions come from a file).
    pub mask: Vec<MaskStatement>,
    /// Run as a superuser afterwards, outside a transaction (`VACUUM`).
    pub after: Vec<String>,
}

fn ident(s: &str) -> String {
    postgres_protocol::escape::escape_identifier(s)
}

fn literal(s: &str) -> String {
    postgres_protocol::escape::escape_literal(s)
}

/// Plans the masking of one database. `rules` are `(1-based index, rule)` of this
/// database; `columns` are the columns of every ordinary or partitioned table
/// (`schema.table` → column names); `unique` the columns of unique indexes.
pub fn plan_database(
    rules: &[(usize, &MaskingRule)],
    columns: &BTreeMap<(String, String), BTreeSet<String>>,
    unique: &BTreeSet<UniqueColumn>,
) -> Result<DatabasePlan, String> {
    // table → condition → [(rule index, column, resolved)]
    type Group = Vec<(usize, String, Resolved)>;
    let mut tables: BTreeMap<(String, String), BTreeMap<Option<String>, Group>> = BTreeMap::new();
    for (i, r) in rules {
        let name = |m: String| format!("masking rule {i} ({}): {m}", r.target());
        let key = (r.schema_name.clone(), r.table_name.clone());
        let Some(cols) = columns.get(&key) else {
            return Err(name(format!(
                "there is no table {}.{} in database {:?}",
                r.schema_name, r.table_name, r.database_name
            )));
        };
        if !cols.contains(&r.column_name) {
            return Err(name(format!(
                "table {}.{} has no column {:?}",
                r.schema_name, r.table_name, r.column_name
            )));
        }
        let resolved = match (&r.masking_function, &r.masking_value) {
            (Some(f), _) => resolve(f, &r.column_name).map_err(&name)?,
            (None, Some(v)) => Resolved {
                sql: literal(v),
                builtin: None,
                keeps_uniqueness: Some(false),
                whole_column: false,
            },
            (None, None) => return Err(name("give masking_function or masking_value".into())),
        };
        let in_unique = unique.contains(&UniqueColumn {
            schema: r.schema_name.clone(),
            table: r.table_name.clone(),
            column: r.column_name.clone(),
        });
        if in_unique && resolved.keeps_uniqueness != Some(true) && !r.allow_uniqueness_loss {
            let why = match (&resolved.builtin, &r.masking_value) {
                (_, Some(_)) => "a constant value".to_string(),
                (Some(b), _) => format!("{b} may map two values to one"),
                (None, None) => {
                    "pgfork cannot tell whether this expression keeps values distinct".to_string()
                }
            };
            return Err(name(format!(
                "column {:?} is in a unique index or primary key and {why}: use email, uuid, id or hash, or set allow_uniqueness_loss = true",
                r.column_name
            )));
        }
        if resolved.whole_column && r.condition.is_some() {
            return Err(name(
                "shuffle applies to the whole column: drop `where`".into(),
            ));
        }
        tables
            .entry(key)
            .or_default()
            .entry(r.condition.clone())
            .or_default()
            .push((*i, r.column_name.clone(), resolved));
    }
    let mut plan = DatabasePlan::default();
    for ((schema, table), groups) in &tables {
        let t = format!("{}.{}", ident(schema), ident(table));
        plan.before
            .push(format!("ALTER TABLE {t} DISABLE TRIGGER ALL"));
        for (condition, group) in groups {
            let (whole, each): (Vec<_>, Vec<_>) =
                group.iter().partition(|(_, _, r)| r.whole_column);
            if !each.is_empty() {
                let sets: Vec<String> = each
                    .iter()
                    .map(|(_, c, r)| format!("{} = {}", ident(c), r.sql))
                    .collect();
                let mut sql = format!("UPDATE {t} SET {}", sets.join(", "));
                if let Some(c) = condition {
                    sql.push_str(&format!(" WHERE ({c})"));
                }
                plan.mask.push(MaskStatement {
                    rules: each.iter().map(|(i, _, _)| *i).collect(),
                    sql,
                    splittable: Some(t.clone()),
                });
            }
            for (i, c, _) in whole {
                let c = ident(c);
                plan.mask.push(MaskStatement {
                    rules: vec![*i],
                    splittable: None,
                    // Pair each row (in physical order) with a row in a keyed random
                    // order, and give it that row's value.
                    sql: format!(
                        "WITH src AS (SELECT ctid AS id, row_number() OVER (ORDER BY ctid) AS n FROM {t}), \
                         dst AS (SELECT {c} AS v, row_number() OVER (ORDER BY md5(current_setting('pgfork.mask_key') || ctid::text)) AS n FROM {t}) \
                         UPDATE {t} SET {c} = dst.v FROM src JOIN dst USING (n) WHERE {t}.ctid = src.id"
                    ),
                });
            }
        }
        plan.after
            .push(format!("ALTER TABLE {t} ENABLE TRIGGER ALL"));
    }
    for (schema, table) in tables.keys() {
        plan.after.push(format!(
            "VACUUM (FULL, ANALYZE) {}.{}",
            ident(schema),
            ident(table)
        ));
    }
    plan.after
        .push("VACUUM FULL pg_catalog.pg_statistic, pg_catalog.pg_statistic_ext_data".into());
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(table: &str, column: &str, f: &str) -> MaskingRule {
        MaskingRule {
            database_name: "app".into(),
            schema_name: "public".into(),
            table_name: table.into(),
            column_name: column.into(),
            masking_function: Some(f.into()),
            masking_value: None,
            condition: None,
            allow_uniqueness_loss: false,
        }
    }

    type Catalog = (
        BTreeMap<(String, String), BTreeSet<String>>,
        BTreeSet<UniqueColumn>,
    );

    fn catalog() -> Catalog {
        let mut cols = BTreeMap::new();
        cols.insert(
            ("public".to_string(), "users".to_string()),
            ["id", "email", "name", "phone"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        cols.insert(
            ("public".to_string(), "orders".to_string()),
            ["id", "email"].iter().map(|s| s.to_string()).collect(),
        );
        let unique = [("users", "email"), ("users", "id")]
            .iter()
            .map(|(t, c)| UniqueColumn {
                schema: "public".into(),
                table: t.to_string(),
                column: c.to_string(),
            })
            .collect();
        (cols, unique)
    }

    #[test]
    fn one_update_per_table_then_a_rewrite() {
        let (cols, unique) = catalog();
        let rules = [
            rule("users", "email", "email"),
            rule("users", "name", "full_name"),
            rule("orders", "email", "email"),
        ];
        let indexed: Vec<(usize, &MaskingRule)> =
            rules.iter().enumerate().map(|(i, r)| (i + 1, r)).collect();
        let p = plan_database(&indexed, &cols, &unique).expect("plan");
        assert_eq!(
            p.mask.iter().map(|m| (m.rules.clone(), m.sql.clone())).collect::<Vec<_>>(),
            vec![
                (vec![3], "UPDATE \"public\".\"orders\" SET \"email\" = pgfork_mask.email(\"email\"::text)".to_string()),
                (
                    vec![1, 2],
                    "UPDATE \"public\".\"users\" SET \"email\" = pgfork_mask.email(\"email\"::text), \"name\" = pgfork_mask.full_name(\"name\"::text)".to_string()
                ),
            ]
        );
        assert!(p.before.iter().all(|s| s.ends_with("DISABLE TRIGGER ALL")));
        assert!(p
            .after
            .contains(&"VACUUM (FULL, ANALYZE) \"public\".\"users\"".to_string()));
        assert!(p.after.last().expect("last").contains("pg_statistic"));
    }

    #[test]
    fn a_lossy_rule_on_a_unique_column_is_refused_unless_allowed() {
        let (cols, unique) = catalog();
        let lossy = rule("users", "email", "partial(1, 4)");
        let e = plan_database(&[(4, &lossy)], &cols, &unique).expect_err("lossy");
        assert!(
            e.starts_with("masking rule 4 (app.public.users.email)") && e.contains("unique index"),
            "{e}"
        );
        let mut constant = rule("users", "id", "x");
        constant.masking_function = None;
        constant.masking_value = Some("0".into());
        assert!(plan_database(&[(1, &constant)], &cols, &unique)
            .expect_err("constant")
            .contains("a constant value"));
        let custom = rule("users", "email", "lower(email)");
        assert!(plan_database(&[(1, &custom)], &cols, &unique)
            .expect_err("unknown")
            .contains("cannot tell"));
        let mut allowed = lossy.clone();
        allowed.allow_uniqueness_loss = true;
        assert!(plan_database(&[(1, &allowed)], &cols, &unique).is_ok());
        assert!(plan_database(&[(1, &rule("users", "id", "id"))], &cols, &unique).is_ok());
    }

    #[test]
    fn missing_tables_and_columns_name_the_rule() {
        let (cols, unique) = catalog();
        let e = plan_database(&[(2, &rule("people", "email", "email"))], &cols, &unique)
            .expect_err("table");
        assert!(
            e.contains("rule 2") && e.contains("no table public.people"),
            "{e}"
        );
        let e = plan_database(&[(1, &rule("users", "mail", "email"))], &cols, &unique)
            .expect_err("column");
        assert!(e.contains("no column \"mail\""), "{e}");
    }

    #[test]
    fn conditions_and_shuffles_get_their_own_statements() {
        let (cols, unique) = catalog();
        let mut vip = rule("users", "phone", "partial(0, 2)");
        vip.condition = Some("name <> 'test'".into());
        let shuffled = rule("users", "name", "shuffle");
        let p = plan_database(&[(1, &vip), (2, &shuffled)], &cols, &unique).expect("plan");
        assert!(p
            .mask
            .iter()
            .any(|m| m.sql.ends_with("WHERE (name <> 'test')")));
        assert!(p.mask.iter().any(|m| m.rules == vec![2]
            && m.sql.contains("row_number()")
            && m.splittable.is_none()));
        let vip_update = p
            .mask
            .iter()
            .find(|m| m.sql.contains("WHERE (name"))
            .expect("vip");
        assert!(vip_update.in_pages(0, Some(100)).ends_with(
            "WHERE (name <> 'test') AND ctid >= '(0,0)'::tid AND ctid < '(100,0)'::tid"
        ));
        let plain = MaskStatement {
            rules: vec![1],
            sql: "UPDATE t SET c = 1".into(),
            splittable: Some("t".into()),
        };
        assert_eq!(
            plain.in_pages(7, None),
            "UPDATE t SET c = 1 WHERE ctid >= '(7,0)'::tid"
        );
    }
}
