//! Failpoints for crash and race tests, compiled in only with the `testing` feature
//! (the `fail` crate; configured through `FAILPOINTS` when the daemon starts). A
//! release build has no failpoint and reads no such variable.
//!
//! [`crash`] is the one the crash tests use: `FAILPOINTS=create-after-rename=return`
//! makes the daemon die right there (SIGKILL) — no destructor, no cleanup, like a power cut
//! or `kill -9` — so the test can restart it and check that every operation is either
//! done or undone.

/// Aborts the daemon at `name` when the failpoint is configured (any action that
/// returns). Without the `testing` feature this is nothing.
#[inline]
pub(crate) fn crash(name: &str) {
    #[cfg(feature = "testing")]
    if fail::eval(name, |_| ()).is_some() {
        eprintln!("failpoint {name}: killing the daemon (crash test)");
        // SIGKILL, as `kill -9` or the OOM killer would: no destructor, no flush, and
        // no core dump that keeps the process (and its lock) alive for seconds.
        // SAFETY: signalling ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        std::process::abort();
    }
    #[cfg(not(feature = "testing"))]
    let _ = name;
}

/// Reads `FAILPOINTS` for the life of the returned guard (testing builds only).
pub fn setup() -> Option<Box<dyn std::any::Any>> {
    #[cfg(feature = "testing")]
    {
        Some(Box::new(fail::FailScenario::setup()))
    }
    #[cfg(not(feature = "testing"))]
    {
        None
    }
}
