//! The statements that mask one database, decided before any of them runs: every rule
//! checked against the catalog (its table and column exist; it keeps a unique index
//! unique), then, per table, triggers off (so no audit trigger copies the originals
//! elsewhere and foreign keys wait until both sides are masked), one `UPDATE` per
//! table and condition, triggers on, and a rewrite (`VACUUM FULL`) that leaves no dead
//! tuple, old index entry or TOAST chunk of the original values. `ANALYZE` replaces the
//! statistics' samples, and the statistics catalogs are rewritten too, since the old
//! samples would otherwise stay behind as dead tuples.

use crate::functions::Resolved;
use crate::rules::MaskingRule;
use std::collections::{BTreeMap, BTreeSet};

/// The columns of each table (`(schema, table)` → column → its type as `format_type`
/// writes it).
pub type TableColumns = BTreeMap<(String, String), BTreeMap<String, String>>;

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
    /// It has a `WHERE` of its own (a rule's `where`).
    pub has_condition: bool,
    /// It runs only built-ins and literals, which need the masking key. A statement
    /// with an SQL expression from the rules file runs in a session without the key,
    /// so the expression cannot read it.
    pub keyed: bool,
}

impl MaskStatement {
    /// The statement limited to the pages `[from, to)` (`to = None`: to the end),
    /// which PostgreSQL 14 and later read with a TID range scan.
    pub fn in_pages(&self, from: u64, to: Option<u64>) -> String {
        let mut range = format!("ctid >= '({from},0)'::tid");
        if let Some(to) = to {
            range.push_str(&format!(" AND ctid < '({to},0)'::tid"));
        }
        if self.has_condition {
            format!("{} AND {range}", self.sql)
        } else {
            format!("{} WHERE {range}", self.sql)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabasePlan {
    /// The tables masked (quoted `schema.table`): the daemon turns their triggers (and
    /// their partitions' and children's) off and back to what they were, and rewrites
    /// and analyzes them afterwards.
    pub tables: Vec<String>,
    /// Run as the masking role (never a superuser: rule expressions come from a file).
    pub mask: Vec<MaskStatement>,
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
    columns: &TableColumns,
    unique: &BTreeSet<UniqueColumn>,
) -> Result<DatabasePlan, String> {
    // table → condition → [(rule index, column, resolved)]
    type Group = Vec<(usize, String, Resolved)>;
    type Groups = BTreeMap<(Option<String>, bool), Group>;
    let mut tables: BTreeMap<(String, String), Groups> = BTreeMap::new();
    for (i, r) in rules {
        let name = |m: String| format!("masking rule {i} ({}): {m}", r.target());
        let key = (r.schema_name.clone(), r.table_name.clone());
        let Some(cols) = columns.get(&key) else {
            return Err(name(format!(
                "there is no table {}.{} in database {:?}",
                r.schema_name, r.table_name, r.database_name
            )));
        };
        let Some(column_type) = cols.get(&r.column_name) else {
            return Err(name(format!(
                "table {}.{} has no column {:?}",
                r.schema_name, r.table_name, r.column_name
            )));
        };
        // A JSON path masks the value there, read from the row as it was.
        let path_lit = r.json_path.as_ref().map(|p| {
            let keys: Vec<String> = p
                .iter()
                .map(|k| format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            literal(&format!("{{{}}}", keys.join(",")))
        });
        let input = match &path_lit {
            Some(p) => format!("({} #>> {p})", ident(&r.column_name)),
            None => ident(&r.column_name),
        };
        let resolved = match (&r.masking_function, &r.masking_value) {
            (Some(f), _) => crate::functions::resolve_input(f, &input).map_err(&name)?,
            (None, Some(v)) => Resolved {
                // Typed, so that to_jsonb knows what it holds in a JSON path.
                sql: format!("{}::text", literal(v)),
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
        let resolved = match &path_lit {
            // Built-ins compute text: back to the column's own type (date, uuid, inet…).
            None if !resolved.whole_column => Resolved {
                sql: format!("({})::{column_type}", resolved.sql),
                ..resolved
            },
            None => resolved,
            Some(p) => Resolved {
                // Keeps the rest of the document; a row without the path is unchanged.
                // create_missing = false: a document without the path stays as it is.
                sql: format!(
                    "jsonb_set({{base}}, {p}, coalesce(to_jsonb({v}), 'null'::jsonb), false)",
                    v = resolved.sql,
                ),
                keeps_uniqueness: Some(false),
                ..resolved
            },
        };
        // SQL from the rules file goes apart from the built-ins (see `keyed`).
        let custom = resolved.builtin.is_none() && r.masking_function.is_some();
        tables
            .entry(key)
            .or_default()
            .entry((r.condition.clone(), custom))
            .or_default()
            .push((*i, r.column_name.clone(), resolved));
    }
    let mut plan = DatabasePlan::default();
    for ((schema, table), groups) in &tables {
        let t = format!("{}.{}", ident(schema), ident(table));
        plan.tables.push(t.clone());
        for ((condition, custom), group) in groups {
            let (whole, each): (Vec<_>, Vec<_>) =
                group.iter().partition(|(_, _, r)| r.whole_column);
            if !each.is_empty() {
                // One assignment per column: JSON paths in one column nest, each
                // reading the original document.
                let mut per_column: BTreeMap<&str, String> = BTreeMap::new();
                for (_, c, r) in &each {
                    let is_path = r.sql.contains("{base}");
                    match per_column.get(c.as_str()) {
                        None if is_path => {
                            per_column.insert(c, r.sql.replace("{base}", &ident(c)));
                        }
                        None => {
                            per_column.insert(c, r.sql.clone());
                        }
                        Some(prev) if is_path && prev.contains("jsonb_set") => {
                            let nested = r.sql.replace("{base}", &format!("({prev})"));
                            per_column.insert(c, nested);
                        }
                        Some(_) => {
                            return Err(format!(
                                "masking rules {} mask column {c:?} of {t} both whole and by JSON path: keep one",
                                each.iter().filter(|(_, cc, _)| cc == c).map(|(i, _, _)| i.to_string()).collect::<Vec<_>>().join(" and ")
                            ));
                        }
                    }
                }
                let sets: Vec<String> = per_column
                    .iter()
                    .map(|(c, sql)| format!("{} = {sql}", ident(c)))
                    .collect();
                let mut sql = format!("UPDATE {t} SET {}", sets.join(", "));
                if let Some(c) = condition {
                    sql.push_str(&format!(" WHERE ({c})"));
                }
                plan.mask.push(MaskStatement {
                    rules: each.iter().map(|(i, _, _)| *i).collect(),
                    sql,
                    splittable: Some(t.clone()),
                    has_condition: condition.is_some(),
                    keyed: !custom,
                });
            }
            for (i, c, _) in whole {
                let c = ident(c);
                plan.mask.push(MaskStatement {
                    rules: vec![*i],
                    splittable: None,
                    has_condition: false,
                    keyed: true,
                    // Pair each row (in physical order) with a row in a keyed random
                    // order, and give it that row's value; rows are named by table and
                    // ctid (ctids repeat across partitions and inheritance children).
                    sql: format!(
                        "WITH src AS (SELECT tableoid AS rel, ctid AS id, row_number() OVER (ORDER BY tableoid, ctid) AS n FROM {t}), \
                         dst AS (SELECT {c} AS v, row_number() OVER (ORDER BY md5(current_setting('pgfork.mask_key') || tableoid::text || ctid::text)) AS n FROM {t}) \
                         UPDATE {t} SET {c} = dst.v FROM src JOIN dst USING (n) WHERE {t}.tableoid = src.rel AND {t}.ctid = src.id"
                    ),
                });
            }
        }
    }
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
            json_path: None,
            allow_uniqueness_loss: false,
        }
    }

    type Catalog = (TableColumns, BTreeSet<UniqueColumn>);

    fn catalog() -> Catalog {
        let typed = |cols: &[&str]| -> BTreeMap<String, String> {
            cols.iter()
                .map(|c| {
                    (
                        c.to_string(),
                        if *c == "id" { "bigint" } else { "text" }.to_string(),
                    )
                })
                .collect()
        };
        let mut cols = BTreeMap::new();
        cols.insert(
            ("public".to_string(), "users".to_string()),
            typed(&["id", "email", "name", "phone"]),
        );
        cols.insert(
            ("public".to_string(), "orders".to_string()),
            typed(&["id", "email"]),
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
                (vec![3], "UPDATE \"public\".\"orders\" SET \"email\" = (pgfork_mask.email(\"email\"::text))::text".to_string()),
                (
                    vec![1, 2],
                    "UPDATE \"public\".\"users\" SET \"email\" = (pgfork_mask.email(\"email\"::text))::text, \"name\" = (pgfork_mask.full_name(\"name\"::text))::text".to_string()
                ),
            ]
        );
        assert_eq!(
            p.tables,
            vec!["\"public\".\"orders\"", "\"public\".\"users\""]
        );
        assert!(p.mask.iter().all(|m| m.keyed && !m.has_condition));
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
            has_condition: false,
            keyed: true,
        };
        assert_eq!(
            plain.in_pages(7, None),
            "UPDATE t SET c = 1 WHERE ctid >= '(7,0)'::tid"
        );
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn json_paths_mask_values_inside_a_document_and_nest_per_column() {
        let mut cols = BTreeMap::new();
        cols.insert(
            ("public".to_string(), "users".to_string()),
            [("profile".to_string(), "jsonb".to_string())]
                .into_iter()
                .collect(),
        );
        let rule = |path: &[&str], f: &str| MaskingRule {
            database_name: "app".into(),
            schema_name: "public".into(),
            table_name: "users".into(),
            column_name: "profile".into(),
            masking_function: Some(f.into()),
            masking_value: None,
            condition: None,
            json_path: Some(path.iter().map(|s| s.to_string()).collect()),
            allow_uniqueness_loss: false,
        };
        let (a, b) = (
            rule(&["contact", "email"], "email"),
            rule(&["name"], "full_name"),
        );
        let p = plan_database(&[(1, &a), (2, &b)], &cols, &BTreeSet::new()).expect("plan");
        let sql = &p.mask[0].sql;
        assert_eq!(p.mask.len(), 1, "{sql}");
        assert!(
            sql.starts_with("UPDATE \"public\".\"users\" SET \"profile\" = jsonb_set("),
            "{sql}"
        );
        assert!(
            sql.contains("pgfork_mask.email((\"profile\" #>> '{\"contact\",\"email\"}')::text)"),
            "{sql}"
        );
        assert!(
            sql.contains("pgfork_mask.full_name((\"profile\" #>> '{\"name\"}')::text)"),
            "{sql}"
        );
        assert_eq!(sql.matches("jsonb_set").count(), 2, "nested: {sql}");
    }
}
