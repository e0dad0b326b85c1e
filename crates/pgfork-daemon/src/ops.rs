//! Operations: Neon's record of asynchronous work, with pgfork's progress added.
//!
//! A request that changes branches runs as an operation task. The HTTP handler waits a
//! short while for it; quick operations (a reflink branch) answer with the finished
//! result in one round trip, slow ones (a full copy, an import) answer at once with a
//! running operation that clients poll for progress. Operations live in memory: they
//! describe work in flight, and the branch metadata is the durable record.

use chrono::Utc;
use pgfork_api::{ApiError, Operation, OperationProgress};
use pgfork_core::Progress;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct Entry {
    op: Operation,
    progress: Arc<Progress>,
    started: Instant,
}

#[derive(Default)]
pub struct Ops {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Keep at most this many finished operations for polling clients.
const KEEP_FINISHED: usize = 500;

impl Ops {
    pub fn begin(
        &self,
        project_id: &str,
        branch_id: Option<&str>,
        action: &str,
    ) -> (String, Arc<Progress>) {
        let id = crate::ids::new_id("op");
        let now = Utc::now();
        let progress = Arc::new(Progress::new());
        let op = Operation {
            id: id.clone(),
            project_id: project_id.to_string(),
            branch_id: branch_id.map(str::to_string),
            endpoint_id: branch_id.map(endpoint_id),
            action: neon_action(action).to_string(),
            pgfork_action: action.to_string(),
            failures_count: 0,
            status: "running".to_string(),
            error: None,
            error_code: None,
            created_at: now,
            updated_at: now,
            total_duration_ms: 0,
            progress: None,
            warnings: Vec::new(),
        };
        if let Ok(mut map) = self.entries.lock() {
            if map.len() > KEEP_FINISHED {
                map.retain(|_, e| e.op.is_running());
            }
            map.insert(
                id.clone(),
                Entry {
                    op,
                    progress: progress.clone(),
                    started: Instant::now(),
                },
            );
        }
        (id, progress)
    }

    pub fn set_branch(&self, id: &str, branch_id: &str) {
        self.update(id, |op| {
            op.branch_id = Some(branch_id.to_string());
            op.endpoint_id = Some(endpoint_id(branch_id));
        });
    }

    pub fn warn(&self, id: &str, warning: String) {
        self.update(id, |op| op.warnings.push(warning));
    }

    pub fn finish(&self, id: &str, result: Result<(), &ApiError>) {
        self.update(id, |op| match result {
            Ok(()) => op.status = "finished".to_string(),
            Err(e) => {
                op.status = "failed".to_string();
                op.failures_count = 1;
                op.error = Some(e.message.clone());
                op.error_code = Some(e.code.clone());
            }
        });
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Operation)) {
        if let Ok(mut map) = self.entries.lock() {
            if let Some(e) = map.get_mut(id) {
                f(&mut e.op);
                e.op.updated_at = Utc::now();
                e.op.total_duration_ms = e.started.elapsed().as_millis() as u64;
            }
        }
    }

    /// A project's operations, newest first.
    pub fn for_project(&self, project_id: &str) -> Vec<Operation> {
        let ids: Vec<String> = match self.entries.lock() {
            Ok(map) => map
                .iter()
                .filter(|(_, e)| e.op.project_id == project_id)
                .map(|(id, _)| id.clone())
                .collect(),
            Err(_) => return Vec::new(),
        };
        let mut ops: Vec<Operation> = ids.iter().filter_map(|id| self.get(id)).collect();
        ops.sort_by_key(|o| std::cmp::Reverse(o.created_at));
        ops
    }

    /// Whether an operation on `branch_id` is under way.
    pub fn running_for(&self, branch_id: &str) -> bool {
        match self.entries.lock() {
            Ok(map) => map
                .values()
                .any(|e| e.op.branch_id.as_deref() == Some(branch_id) && e.op.is_running()),
            Err(_) => false,
        }
    }

    pub fn get(&self, id: &str) -> Option<Operation> {
        let map = self.entries.lock().ok()?;
        let e = map.get(id)?;
        let mut op = e.op.clone();
        if op.is_running() {
            op.total_duration_ms = e.started.elapsed().as_millis() as u64;
        }
        let snap = e.progress.snapshot();
        if !snap.phase.is_empty() || snap.total > 0 {
            op.progress = Some(OperationProgress {
                phase: snap.phase,
                done: snap.done,
                total: snap.total,
            });
        }
        Some(op)
    }
}

/// Neon's name for a pgfork operation (its schema enumerates the actions it has).
pub fn neon_action(pgfork: &str) -> &'static str {
    match pgfork {
        "create_branch" => "create_branch",
        // A reset gives the branch a new timeline from its parent's head.
        "reset_branch" => "create_timeline",
        "delete_timeline" => "delete_timeline",
        "recover_branch" => "timeline_unarchive",
        "import" | "create_project" | "refresh_root" => "import_data",
        _ => "apply_config",
    }
}

/// Each branch has one endpoint whose id mirrors the branch id.
pub fn endpoint_id(branch_id: &str) -> String {
    match branch_id.strip_prefix("br-") {
        Some(rest) => format!("ep-{rest}"),
        None => format!("ep-{branch_id}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn actions_map_to_neons_names() {
        assert_eq!(super::neon_action("reset_branch"), "create_timeline");
        assert_eq!(super::neon_action("create_branch"), "create_branch");
        assert_eq!(super::neon_action("recover_branch"), "timeline_unarchive");
        assert_eq!(super::neon_action("something_new"), "apply_config");
    }
}
