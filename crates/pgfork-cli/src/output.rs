//! How things look: tables, the JSON views of DESIGN.md §6, sizes, error sentences.

use pgfork_api::{Branch, ClientError};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: no progress bars and no notes on stderr (warnings and errors still show).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

static SHOW_PASSWORD: AtomicBool = AtomicBool::new(false);

/// `--show-password`: URLs in output keep their passwords.
pub fn set_show_password(show: bool) {
    SHOW_PASSWORD.store(show, Ordering::Relaxed);
}

/// A URL as output shows it: redacted unless `--show-password`.
pub fn shown_url(url: &str) -> String {
    if SHOW_PASSWORD.load(Ordering::Relaxed) {
        url.to_string()
    } else {
        redacted(url)
    }
}

/// A line on stderr that helps but is not needed: silent with `-q`.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::output::quiet() {
            eprintln!($($arg)*);
        }
    };
}

/// The `branch get --json` view (DESIGN.md §6).
#[derive(Debug, Serialize)]
pub struct BranchView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub parent: Option<&'a str>,
    pub state: &'a str,
    pub port: u16,
    /// Password as `****` unless `--show-password`.
    pub url: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub protected: bool,
    pub git_branch: Option<&'a str>,
    pub logical_bytes: Option<u64>,
    pub unique_bytes: Option<u64>,
    pub clone_method: &'a str,
    pub data_dir: &'a str,
    pub masked: bool,
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Outcome of the repository's after-create command, if it ran.
    pub after_create: Option<&'a str>,
    /// Set while another process holds the branch's port (do not use the URL).
    pub port_error: Option<&'a str>,
    /// Why gc trashed it (deleted branches only; none when a user deleted it).
    pub trash_reason: Option<&'a str>,
    /// Reasons gc no longer uses for it (it was recovered after gc took it).
    pub gc_spared: &'a [String],
    /// Its history window (`[history]`): how far back it can be branched from.
    pub history: Option<&'a pgfork_api::BranchHistory>,
}

pub fn view(b: &Branch) -> BranchView<'_> {
    BranchView {
        id: &b.id,
        name: &b.name,
        parent: b.parent_name.as_deref(),
        state: b.state_word(),
        port: b.port,
        url: shown_url(&b.connection_uri),
        created_at: b.created_at,
        expires_at: b.expires_at,
        protected: b.protected,
        git_branch: b.git_branch.as_deref(),
        logical_bytes: b.logical_bytes,
        unique_bytes: b.unique_bytes,
        clone_method: &b.clone_method,
        data_dir: &b.data_dir,
        masked: b.masked,
        deleted_at: b.deleted_at,
        after_create: b.after_create.as_deref(),
        port_error: b.pgfork_port_error.as_deref(),
        trash_reason: b.pgfork_trash_reason.as_deref(),
        gc_spared: &b.pgfork_gc_spared,
        history: b.pgfork_history.as_ref(),
    }
}

/// A URL with its password replaced by `****`, for output that is not about the URL
/// (status lines, init, recover): terminals are shared, scrolled back and pasted into
/// issues. `pgfork url` prints the real one, as that is its job.
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let Some(at) = url[scheme_end..].find('@').map(|i| i + scheme_end) else {
        return url.to_string();
    };
    match url[scheme_end..at].split_once(':') {
        Some((user, _)) => format!("{}{user}:****{}", &url[..scheme_end], &url[at..]),
        None => url.to_string(),
    }
}

/// What a branch keeps of its past, in one line.
pub fn history_summary(h: Option<&pgfork_api::BranchHistory>) -> String {
    let Some(h) = h else {
        return "none (`pgfork branch history NAME --window 24h` keeps every moment of a day)"
            .to_string();
    };
    let span = |s: i64| ago(chrono::Duration::seconds(s));
    let kept = match h.keep {
        Some(k) => format!(
            "{} snapshot{} (at most {k})",
            h.snapshots,
            if h.snapshots == 1 { "" } else { "s" }
        ),
        None => format!(
            "{} snapshot{}",
            h.snapshots,
            if h.snapshots == 1 { "" } else { "s" }
        ),
    };
    let since = h
        .oldest
        .map(|t| format!(", back to {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default();
    let archive = h
        .archive_bytes
        .map(|b| format!(", WAL archive {}", pgfork_core::human_bytes(b)))
        .unwrap_or_default();
    if h.window_seconds > 0 {
        format!(
            "every moment of the last {} ({kept}, one every {}{since}{archive})",
            span(h.window_seconds),
            span(h.snapshot_every_seconds)
        )
    } else {
        format!(
            "a snapshot every {}, no WAL ({kept}{since})",
            span(h.snapshot_every_seconds)
        )
    }
}

pub fn bytes(n: Option<u64>) -> String {
    match n {
        Some(n) => pgfork_core::human_bytes(n),
        None => "-".to_string(),
    }
}

/// A past duration in the largest unit that fits: `40 s`, `12 min`, `3 h`, `2 d`.
pub fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Aligned columns, no dependency needed.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

/// The one sentence a user sees for an error: the API's message as is, else the chain.
pub fn error_sentence(e: &anyhow::Error) -> String {
    if let Some(c) = e.downcast_ref::<ClientError>() {
        if let Some(api) = c.api() {
            return api.message.clone();
        }
    }
    format!("{e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_printed_urls() {
        assert_eq!(
            super::redacted("postgresql://postgres:s3cret@127.0.0.1:5432/db"),
            "postgresql://postgres:****@127.0.0.1:5432/db"
        );
        assert_eq!(
            super::redacted("postgresql://app@h/db"),
            "postgresql://app@h/db"
        );
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y");
    }
}
