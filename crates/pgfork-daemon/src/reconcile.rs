//! Start-up reconciliation: make the disk and the processes agree with the metadata.
//!
//! The metadata row is the commit point of every branch operation, so anything on
//! disk that no row points to is a leftover of an interrupted operation: it is stopped
//! (if a Postgres runs in it) and removed. Branches the metadata says are running are
//! re-adopted when their postmaster survived the daemon, or started again.

use crate::engine::{remove_tree, Engine};
use pgfork_core::BranchState;
use pgfork_pg::Instance;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn stop_stray(pgdata: &Path) {
    let inst = Instance {
        pgdata: pgdata.to_path_buf(),
        socket_dir: PathBuf::new(),
        port: 0,
        log_file: PathBuf::new(),
        superuser: String::new(),
        archive_dir: None,
    };
    if inst.is_running() {
        tracing::warn!(pgdata = %pgdata.display(), "stopping a Postgres left running in a leftover directory");
        if let Err(e) = inst.stop(Duration::from_secs(30)) {
            tracing::error!(pgdata = %pgdata.display(), error = %e, "could not stop leftover Postgres");
        }
    }
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Stops any Postgres running in a directory under construction (an import or a
/// build interrupted by shutdown); the next start removes the directories themselves.
pub fn stop_builds_in_tmp(engine: &Engine) {
    for entry in children(&engine.layout.tmp) {
        stop_stray(&entry);
        stop_stray(&entry.join("pgdata"));
    }
}

/// Where a branch recovered while another branch occupies its home directory lives.
pub fn alternate_home(home: &Path, id: &str) -> PathBuf {
    let mut s = home.as_os_str().to_owned();
    s.push(format!("~{id}"));
    PathBuf::from(s)
}

/// Finishes or undoes directory moves a crash interrupted, so no data is swept:
/// a delete (directory already in the trash, row still live), a recover (directory
/// back home, row still deleted) and a reset (old data aside in `tmp/<id>-reset/old`,
/// new data not yet in place).
fn repair_interrupted_moves(engine: &Engine, branches: &[pgfork_store::Branch]) {
    // A directory some live branch uses is never a candidate (a new branch may have
    // taken the name, and so the home directory, of one in the trash).
    let in_use: HashSet<&PathBuf> = branches
        .iter()
        .filter(|b| b.state.is_live())
        .map(|b| &b.data_dir)
        .collect();
    for b in branches {
        if b.data_dir.exists() {
            continue;
        }
        let Ok(Some(project)) = engine.store().project(&b.project_id) else {
            continue;
        };
        let trash = engine.layout.trash_dir(
            &pgfork_core::safe_dir_name(&project.name),
            &pgfork_core::safe_dir_name(&b.name),
            &b.id,
        );
        let reset_old = engine
            .layout
            .tmp
            .join(format!("{}-reset", b.id))
            .join("old");
        let candidates = [
            b.home_dir.clone(),
            alternate_home(&b.home_dir, &b.id),
            trash,
            reset_old,
        ];
        if let Some(found) = candidates
            .iter()
            .find(|c| !in_use.contains(c) && c.join("PG_VERSION").exists())
        {
            tracing::warn!(branch = %b.name, from = %found.display(), to = %b.data_dir.display(), "restoring a directory an interrupted operation left behind");
            if let Err(e) = std::fs::rename(found, &b.data_dir) {
                tracing::error!(branch = %b.name, error = %e, "could not restore the directory");
            }
        }
    }
}

/// A purge moves the branch's directory to `tmp/purge-<id>` before it removes the
/// row: finding that directory with the row still there means the user's purge was
/// interrupted, so it is completed (the sweep then removes the directory).
fn complete_interrupted_purges(engine: &Engine, branches: &[pgfork_store::Branch]) {
    for b in branches {
        let doomed = engine.layout.tmp.join(format!("purge-{}", b.id));
        if doomed.exists() && !b.data_dir.exists() {
            tracing::warn!(branch = %b.name, "completing a purge that was interrupted");
            if let Err(e) = engine.write_store(|s| s.purge_branch(&b.id)) {
                tracing::error!(branch = %b.name, error = %e, "could not complete the purge");
            }
        }
    }
}

/// Removes everything in `tmp/` and unreferenced directories in `branches/` and
/// `trash/`. Does nothing at all when the metadata cannot be read, or when no branch
/// points inside this store (PGFORK_HOME was moved): deleting on a wrong list of
/// known branches would be the one unrecoverable mistake.
pub fn sweep(engine: &Engine) -> usize {
    let branches = match engine.store().all_branches() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the metadata: not sweeping leftovers");
            return 0;
        }
    };
    if !branches.is_empty()
        && !branches
            .iter()
            .any(|b| b.home_dir.starts_with(&engine.layout.home))
    {
        tracing::error!(home = %engine.layout.home.display(), "no branch in the metadata lives in this store (was PGFORK_HOME moved?): not sweeping");
        return 0;
    }
    repair_interrupted_moves(engine, &branches);
    complete_interrupted_purges(engine, &branches);
    let branches = engine.store().all_branches().unwrap_or(branches);
    let mut removed = 0;
    for entry in children(&engine.layout.tmp) {
        stop_stray(&entry);
        stop_stray(&entry.join("pgdata"));
        remove_tree(&entry);
        removed += 1;
    }
    let known: HashSet<PathBuf> = branches
        .iter()
        .flat_map(|b| [b.data_dir.clone(), b.home_dir.clone()])
        .collect();
    // Snapshots too: a directory without its row is an interrupted take or delete. An
    // unreadable list of snapshots sweeps none of them.
    let snapshots = engine.store().all_snapshots();
    let mut known = known;
    let mut roots = vec![&engine.layout.branches, &engine.layout.trash];
    if let Ok(list) = &snapshots {
        known.extend(list.iter().map(|s| s.data_dir.clone()));
        roots.push(&engine.layout.snapshots);
    }
    // A history directory of no branch: an interrupted create, or a purge.
    let ids: HashSet<String> = branches.iter().map(|b| b.id.clone()).collect();
    for dir in children(&engine.layout.history) {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !ids.contains(&name) {
            tracing::warn!(dir = %dir.display(), "removing a WAL archive no branch owns");
            remove_tree(&dir);
            removed += 1;
        }
    }
    for root in roots {
        for project_dir in children(root) {
            for dir in children(&project_dir) {
                if !known.contains(&dir) {
                    tracing::warn!(dir = %dir.display(), "removing a directory no branch owns (an interrupted operation)");
                    stop_stray(&dir);
                    remove_tree(&dir);
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// Sweeps leftovers of interrupted operations (before the API answers).
pub async fn sweep_leftovers(engine: &Arc<Engine>) {
    let removed = {
        let e = engine.clone();
        tokio::task::spawn_blocking(move || sweep(&e))
            .await
            .unwrap_or(0)
    };
    if removed > 0 {
        tracing::info!(removed, "swept leftovers of interrupted operations");
    }
}

/// Re-adopts or restarts the branches that should be running, each under its own
/// lock (a client may already be waking one). Failures are logged and recorded, never
/// fatal: on a full disk the daemon must still start so space can be freed.
pub async fn restart_branches(engine: &Arc<Engine>) {
    let branches = engine.store().all_branches().unwrap_or_default();
    for b in branches.into_iter().filter(|b| b.state.is_live()) {
        let Ok(Some(project)) = engine.store().project(&b.project_id) else {
            continue;
        };
        if !b.data_dir.join("PG_VERSION").exists() {
            tracing::error!(branch = %b.name, dir = %b.data_dir.display(), "branch data directory is missing");
            let _ =
                engine.write_store(|s| s.set_state(&b.id, BranchState::Failed, chrono::Utc::now()));
            continue;
        }
        let inst = engine.instance(&project, &b);
        let alive = inst.is_running();
        let want_running = matches!(
            b.state,
            BranchState::Running | BranchState::Creating | BranchState::Failed
        );
        if alive {
            tracing::info!(branch = %b.name, "re-adopted running Postgres");
            if b.state != BranchState::Running {
                let _ = engine
                    .write_store(|s| s.set_state(&b.id, BranchState::Running, chrono::Utc::now()));
            }
        } else if want_running {
            let _op = engine.in_flight().await;
            let _branch = engine.lock_branch(&b.id).await;
            let Ok(Some(mut b)) = engine.store().branch(&b.id) else {
                continue;
            };
            if !b.state.is_live() {
                continue;
            }
            match engine.set_running_locked(&project, &mut b, true).await {
                Ok(_) => tracing::info!(branch = %b.name, "restarted"),
                Err(e) => {
                    tracing::error!(branch = %b.name, error = %e, "could not restart branch");
                    let _ = engine.write_store(|s| {
                        s.set_state(&b.id, BranchState::Failed, chrono::Utc::now())
                    });
                }
            }
        }
    }
}
