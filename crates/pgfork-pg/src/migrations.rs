//! Migration heads of branches, read from the tables migration tools keep, and which
//! branches have diverged.
//!
//! Two feature branches that each add a migration on top of the same parent both work
//! alone and conflict when the second merges (two alembic heads, two Django `0003_`
//! files, a Flyway version out of order). Their databases know before git does: each
//! tool records what it applied. [`conflicts`] is pure: given what each branch applied,
//! it says which pairs applied migrations the other lacks, beyond their common parent's.

use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

/// A migration tool's bookkeeping table, and the query that lists what it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub name: &'static str,
    pub table: &'static str,
    /// Selects one text column: an applied migration's identity.
    pub applied: &'static str,
}

/// The tools pgfork knows, by the table each keeps (looked up in any schema on the
/// search path's first match, `public` usually).
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "Alembic",
        table: "alembic_version",
        applied: "version_num::text",
    },
    Tool {
        name: "Django",
        table: "django_migrations",
        applied: "app || '.' || name",
    },
    Tool {
        name: "Rails / golang-migrate",
        table: "schema_migrations",
        applied: "version::text",
    },
    Tool {
        name: "Flyway",
        table: "flyway_schema_history",
        applied: "coalesce(version, description)::text",
    },
    Tool {
        name: "Prisma",
        table: "_prisma_migrations",
        applied: "migration_name::text",
    },
    Tool {
        name: "Knex",
        table: "knex_migrations",
        applied: "name::text",
    },
    Tool {
        name: "EF Core",
        table: "__EFMigrationsHistory",
        applied: "\"MigrationId\"::text",
    },
];

/// What each known tool applied in the connected database (tools whose table is not
/// there are absent).
pub async fn applied(client: &Client) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for tool in TOOLS {
        let found = client
            .query_opt(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'v') \
                 ORDER BY n.nspname = 'public' DESC LIMIT 1",
                &[&tool.table],
            )
            .await
            .ok()
            .flatten();
        let Some(row) = found else { continue };
        let table: String = row.get(0);
        // Quoted by regclass's output already.
        let sql = format!("SELECT {} FROM {table}", tool.applied);
        if let Ok(rows) = client.query(&sql, &[]).await {
            let set = rows
                .iter()
                .filter_map(|r| r.get::<_, Option<String>>(0))
                .collect();
            out.insert(tool.name, set);
        }
    }
    out
}

/// Two branches whose migrations diverged from their parent's in one tool's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub tool: &'static str,
    pub a: String,
    pub b: String,
    /// Applied in `a` only (beyond the parent).
    pub only_a: Vec<String>,
    /// Applied in `b` only (beyond the parent).
    pub only_b: Vec<String>,
}

/// The pairs of `branches` (name → tool → applied) that each applied migrations the
/// other lacks, beyond what `parent` applied: both moved on from it, separately.
pub fn conflicts(
    parent: &BTreeMap<&'static str, BTreeSet<String>>,
    branches: &[(String, BTreeMap<&'static str, BTreeSet<String>>)],
) -> Vec<Conflict> {
    let mut out = Vec::new();
    let empty = BTreeSet::new();
    for (i, (a_name, a)) in branches.iter().enumerate() {
        for (b_name, b) in &branches[i + 1..] {
            for (tool, a_set) in a {
                let Some(b_set) = b.get(tool) else { continue };
                let base = parent.get(tool).unwrap_or(&empty);
                let only_a: Vec<String> = a_set
                    .difference(b_set)
                    .filter(|m| !base.contains(*m))
                    .cloned()
                    .collect();
                let only_b: Vec<String> = b_set
                    .difference(a_set)
                    .filter(|m| !base.contains(*m))
                    .cloned()
                    .collect();
                if !only_a.is_empty() && !only_b.is_empty() {
                    out.push(Conflict {
                        tool,
                        a: a_name.clone(),
                        b: b_name.clone(),
                        only_a,
                        only_b,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn two_branches_that_each_moved_on_from_the_parent_conflict() {
        let parent = BTreeMap::from([("Django", set(&["app.0001", "app.0002"]))]);
        let a = BTreeMap::from([("Django", set(&["app.0001", "app.0002", "app.0003_a"]))]);
        let b = BTreeMap::from([("Django", set(&["app.0001", "app.0002", "app.0003_b"]))]);
        let behind = BTreeMap::from([("Django", set(&["app.0001"]))]);
        let ahead_only = BTreeMap::from([(
            "Django",
            set(&["app.0001", "app.0002", "app.0003_a", "app.0004"]),
        )]);
        let c = conflicts(
            &parent,
            &[
                ("a".into(), a),
                ("b".into(), b),
                ("behind".into(), behind),
                ("ahead".into(), ahead_only),
            ],
        );
        let pairs: Vec<(&str, &str)> = c.iter().map(|c| (c.a.as_str(), c.b.as_str())).collect();
        // a and ahead are on one line (ahead contains a); behind only lacks the parent's.
        assert_eq!(pairs, vec![("a", "b"), ("b", "ahead")]);
        assert_eq!(c[0].only_a, vec!["app.0003_a".to_string()]);
        assert_eq!(c[0].only_b, vec!["app.0003_b".to_string()]);
    }

    #[test]
    fn alembic_heads_replace_each_other() {
        // Alembic keeps only the head: two different heads past the parent's conflict.
        let parent = BTreeMap::from([("Alembic", set(&["base1"]))]);
        let a = BTreeMap::from([("Alembic", set(&["a1"]))]);
        let b = BTreeMap::from([("Alembic", set(&["b1"]))]);
        assert_eq!(
            conflicts(&parent, &[("a".into(), a.clone()), ("b".into(), b)]).len(),
            1
        );
        assert!(conflicts(&parent, &[("a".into(), a.clone()), ("a2".into(), a)]).is_empty());
    }
}
