use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Progress of a long operation (a copy, an import), shared between the worker that
/// advances it and the API that reports it to clients drawing a progress bar.
///
/// Plain atomics rather than a channel: readers want the latest value, not every step.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    phase: Mutex<String>,
}

/// A consistent-enough reading of a [`Progress`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new phase; `total` 0 means "unknown" (a spinner, not a bar).
    pub fn phase(&self, name: &str, total: u64) {
        if let Ok(mut p) = self.phase.lock() {
            *p = name.to_string();
        }
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    pub fn set(&self, done: u64, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            phase: self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }
}
