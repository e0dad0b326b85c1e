//! How current a branch is: how long ago it took its parent's state, how much WAL the
//! parent wrote since, whether the parent's schema moved (a digest taken when the branch
//! forked, compared with the parent's now), how far a root that follows its source is
//! behind it, and which running branches applied diverging migrations. Read-only, and it
//! wakes nothing: a figure that needs a suspended branch is said to be unknown.

use super::create::REPLICA_ROOT;
use super::*;
use std::collections::{BTreeMap, BTreeSet};

type Applied = BTreeMap<&'static str, BTreeSet<String>>;

impl Engine {
    /// Records that `b` (running) took its parent's state now, with the digest of the
    /// schema it took. Best effort: a branch without a digest only loses the "parent's
    /// schema changed" figure.
    pub(crate) async fn record_fork(&self, project: &Project, b: &Branch) {
        let inst = self.instance(project, b);
        // A new branch is its parent's schema at the fork, and its baseline too: one
        // look serves both (it is on the way to the branch's first query).
        let (writes, digest) = match sql::connect(&inst, &project.db_name).await {
            Ok(client) => (
                pgfork_pg::schema::user_writes(&client).await.ok(),
                pgfork_pg::schema::fingerprint(&client).await.ok(),
            ),
            Err(_) => (None, None),
        };
        if let Err(e) =
            self.write_store(|s| s.set_branch_fork(&b.id, Utc::now(), digest.as_deref()))
        {
            tracing::warn!(branch = %b.name, error = %e, "could not record when the branch forked");
        }
        if let (Some(w), Some(d)) = (writes, digest) {
            let _ = self.write_store(|s| s.set_branch_baseline(&b.id, w, &d));
        }
    }

    /// Records `b`'s own writes and schema now, the baseline its "changes of its own"
    /// are counted from: at fork, and again once its after-create command ran (its
    /// migrations are not its user's changes: a refresh runs them again).
    pub(crate) async fn record_baseline(&self, project: &Project, b: &Branch) {
        let inst = self.instance(project, b);
        if !inst.is_running() {
            return;
        }
        let Ok(client) = sql::connect(&inst, &project.db_name).await else {
            return;
        };
        // Statistics reach the counters when a session ends or flushes: a migration that
        // just finished may still be on its way.
        let _ = client
            .batch_execute("SELECT pg_stat_force_next_flush()")
            .await;
        let (writes, digest) = (
            pgfork_pg::schema::user_writes(&client).await,
            pgfork_pg::schema::fingerprint(&client).await,
        );
        if let (Ok(w), Ok(d)) = (writes, digest) {
            let _ = self.write_store(|s| s.set_branch_baseline(&b.id, w, &d));
        }
    }

    /// Whether `b` changed since its baseline (`None`: not running, or no baseline).
    async fn local_changes(
        &self,
        project: &Project,
        b: &Branch,
        fork: Option<&pgfork_store::BranchFork>,
    ) -> Option<bool> {
        let fork = fork?;
        let (base_writes, base_digest) = (fork.baseline_writes?, fork.baseline_digest.as_ref()?);
        let inst = self.instance(project, b);
        if !inst.is_running() {
            return None;
        }
        let client = sql::connect(&inst, &project.db_name).await.ok()?;
        let writes = pgfork_pg::schema::user_writes(&client).await.ok()?;
        let digest = pgfork_pg::schema::fingerprint(&client).await.ok()?;
        // Counters lower than the baseline were lost (a crash): unknown, not "none".
        if writes < base_writes {
            return None;
        }
        Some(writes > base_writes || &digest != base_digest)
    }

    pub async fn branch_freshness(
        &self,
        project_ref: &str,
        branch_ref: &str,
    ) -> Result<api::BranchFreshness, ApiError> {
        let p = self.project(project_ref)?;
        let b = self.branch(&p, branch_ref)?;
        let mut out = api::BranchFreshness {
            branch: b.name.clone(),
            ..Default::default()
        };
        let fork = self.store().branch_fork(&b.id).map_err(store_err)?;
        out.forked_at = Some(fork.as_ref().map(|f| f.forked_at).unwrap_or(b.created_at));
        out.local_changes = self.local_changes(&p, &b, fork.as_ref()).await;
        if let Some(parent_id) = &b.parent_id {
            let parent = self.store().branch(parent_id).map_err(store_err)?;
            match parent.filter(|x| x.state.is_live()) {
                None => out
                    .notes
                    .push("its parent was deleted: there is nothing to be behind".into()),
                Some(parent) => {
                    out.parent = Some(parent.name.clone());
                    let inst = self.instance(&p, &parent);
                    if inst.is_running() {
                        self.compare_with_parent(&p, &b, &inst, fork.as_ref(), &mut out)
                            .await;
                    } else {
                        out.notes.push(format!(
                            "{:?} is suspended: how far behind it this branch is shows once it runs",
                            parent.name
                        ));
                    }
                }
            }
        }
        let root = self.root_branch(&p)?;
        if !super::create::follows_source(&root) {
            let rec = self.store().project_source(&p.id).map_err(store_err)?;
            // Only a root taken from a source ages (not an empty or sample one).
            let imported = rec.as_ref().is_some_and(|r| {
                !matches!(
                    serde_json::from_str::<api::RootSource>(&r.source),
                    Ok(api::RootSource::Empty | api::RootSource::Sample { .. }) | Err(_)
                )
            });
            if imported {
                out.root_taken_at =
                    Some(rec.and_then(|r| r.refreshed_at).unwrap_or(root.created_at));
            }
        }
        if root.clone_method == REPLICA_ROOT {
            let inst = self.instance(&p, &root);
            if inst.is_running() {
                out.root = root_following(&inst).await;
            } else {
                out.notes.push(format!(
                    "the root {:?} follows its source only while it runs: start it with `pgfork branch start {}`",
                    root.name, root.name
                ));
            }
        }
        out.migration_conflicts = self.migration_conflicts(&p).await;
        Ok(out)
    }

    async fn compare_with_parent(
        &self,
        p: &Project,
        b: &Branch,
        parent: &Instance,
        fork: Option<&pgfork_store::BranchFork>,
        out: &mut api::BranchFreshness,
    ) {
        if let (Some(lsn), Ok(client)) = (&b.parent_lsn, sql::connect(parent, "postgres").await) {
            let row = client
                .query_one(
                    "SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, $1::text::pg_lsn)::int8",
                    &[lsn],
                )
                .await;
            if let Ok(row) = row {
                out.parent_wal_bytes_since_fork = Some(row.get::<_, i64>(0).max(0));
            }
        }
        match fork.and_then(|f| f.schema_digest.as_ref()) {
            Some(digest) => {
                if let Ok(client) = sql::connect(parent, &p.db_name).await {
                    if let Ok(now) = pgfork_pg::schema::fingerprint(&client).await {
                        out.parent_schema_changed = Some(&now != digest);
                    }
                }
            }
            None => out.notes.push(
                "the schema it forked with was not recorded (a branch made before pgfork kept it): reset it to start tracking".into(),
            ),
        }
    }

    /// Running branches of one parent that each applied migrations the other lacks.
    async fn migration_conflicts(&self, p: &Project) -> Vec<api::MigrationConflict> {
        let branches = self.store().branches(&p.id, false).unwrap_or_default();
        let mut by_parent: BTreeMap<String, Vec<&Branch>> = BTreeMap::new();
        for b in &branches {
            if let Some(parent) = &b.parent_id {
                if self.instance(p, b).is_running() {
                    by_parent.entry(parent.clone()).or_default().push(b);
                }
            }
        }
        let mut out = Vec::new();
        for (parent_id, children) in by_parent {
            if children.len() < 2 {
                continue;
            }
            let mut applied: Vec<(String, Applied)> = Vec::new();
            for child in children {
                if let Some(a) = self.applied_migrations(p, child).await {
                    applied.push((child.name.clone(), a));
                }
            }
            // The parent's own migrations are no one's divergence; a suspended parent's
            // are what its children share.
            let parent = branches.iter().find(|b| b.id == parent_id);
            let base = match parent {
                Some(parent) if self.instance(p, parent).is_running() => {
                    self.applied_migrations(p, parent).await.unwrap_or_default()
                }
                _ => shared(&applied),
            };
            for c in pgfork_pg::migrations::conflicts(&base, &applied) {
                out.push(api::MigrationConflict {
                    tool: c.tool.to_string(),
                    branch_a: c.a,
                    branch_b: c.b,
                    only_a: c.only_a,
                    only_b: c.only_b,
                });
            }
        }
        out
    }

    async fn applied_migrations(&self, p: &Project, b: &Branch) -> Option<Applied> {
        let inst = self.instance(p, b);
        let client = sql::connect(&inst, &p.db_name).await.ok()?;
        Some(pgfork_pg::migrations::applied(&client).await)
    }
}

/// What every branch in `applied` has, per tool.
fn shared(applied: &[(String, Applied)]) -> Applied {
    let mut out: Applied = BTreeMap::new();
    let Some((_, first)) = applied.first() else {
        return out;
    };
    for (tool, set) in first {
        let mut common = set.clone();
        for (_, other) in &applied[1..] {
            common = match other.get(tool) {
                Some(o) => common.intersection(o).cloned().collect(),
                None => BTreeSet::new(),
            };
        }
        out.insert(tool, common);
    }
    out
}

/// A standby root's position against its source.
async fn root_following(inst: &Instance) -> Option<api::RootFollowing> {
    let client = sql::connect(inst, "postgres").await.ok()?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') > 0, \
                    pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8, \
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            &[],
        )
        .await
        .ok()?;
    Some(api::RootFollowing {
        method: REPLICA_ROOT.to_string(),
        streaming: row.get(0),
        replay_lag_bytes: row.get(1),
        last_commit_seconds_ago: row.get(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspended_parents_migrations_are_what_its_children_share() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let a: Applied = BTreeMap::from([("Knex", set(&["1", "2", "3a"]))]);
        let b: Applied = BTreeMap::from([("Knex", set(&["1", "2", "3b"]))]);
        let base = shared(&[("a".into(), a), ("b".into(), b)]);
        assert_eq!(base["Knex"], set(&["1", "2"]));
    }
}
