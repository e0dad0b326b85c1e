//! How much of a branch's past is kept, and which history snapshots the reaper drops.
//!
//! A branch keeps its past in one of two ways. With a *window* (`[history] window =
//! "24h"`) it archives its own WAL and takes a snapshot every so often: any moment in
//! the window can be branched from (the newest snapshot before it, WAL replayed to it).
//! Without a window but with `snapshot_every`, it only takes snapshots on a schedule:
//! those moments, and no others, can be restored or branched from. `keep` bounds the
//! number of snapshots either way. The rules are here, without IO, so the reaper's
//! choices are unit-tested.

use chrono::{DateTime, Duration, Utc};

/// Scheduled snapshots kept when no window bounds them and `keep` is not given.
pub const DEFAULT_SCHEDULED_KEEP: u32 = 24;

/// A branch's history settings (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// How far back any moment can be reached (its own WAL archive); 0: snapshots only.
    pub window_seconds: i64,
    /// A snapshot this often.
    pub snapshot_every_seconds: i64,
    /// At most this many history snapshots.
    pub keep: Option<u32>,
}

impl HistoryPolicy {
    /// The policy for a window (0: none) and the optional interval and count a user gave.
    /// `None` when nothing is kept at all.
    pub fn new(window_seconds: i64, every: Option<i64>, keep: Option<u32>) -> Option<Self> {
        if window_seconds <= 0 && every.is_none() {
            return None;
        }
        let window_seconds = window_seconds.max(0);
        Some(HistoryPolicy {
            window_seconds,
            snapshot_every_seconds: every.unwrap_or_else(|| default_snapshot_every(window_seconds)),
            keep,
        })
    }

    /// Whether the branch archives its WAL (every moment of the window is reachable).
    pub fn keeps_wal(&self) -> bool {
        self.window_seconds > 0
    }

    /// The snapshot count that bounds history: `keep`, or for a schedule without a
    /// window, [`DEFAULT_SCHEDULED_KEEP`].
    pub fn effective_keep(&self) -> Option<u32> {
        match (self.keep, self.keeps_wal()) {
            (Some(k), _) => Some(k.max(1)),
            (None, false) => Some(DEFAULT_SCHEDULED_KEEP),
            (None, true) => None,
        }
    }

    /// Whether a snapshot is due, given when the newest one was taken.
    pub fn snapshot_due(&self, newest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        newest.is_none_or(|t| t + Duration::seconds(self.snapshot_every_seconds) <= now)
    }
}

/// How often a history snapshot is taken when the user does not say: a quarter of the
/// window, at least every ten minutes and at most hourly (hourly without a window).
pub fn default_snapshot_every(window_seconds: i64) -> i64 {
    if window_seconds <= 0 {
        return 3600;
    }
    (window_seconds / 4).clamp(600, 3600)
}

/// Which history snapshots to drop (indexes into `taken`, oldest first).
///
/// With a window, the newest snapshot at or before the window's start is its *base*:
/// older ones reach nothing in the window and go. Then, while more than `keep` remain,
/// the one whose removal leaves the shortest gap between its neighbours goes (never the
/// base nor the newest): every moment stays reachable, only the replay to some grows.
/// Without a window, the newest `keep` stay.
pub fn history_to_drop(
    taken: &[DateTime<Utc>],
    policy: &HistoryPolicy,
    now: DateTime<Utc>,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..taken.len()).collect();
    order.sort_by_key(|&i| taken[i]);
    let mut drop = Vec::new();
    let mut kept: Vec<usize> = if policy.keeps_wal() {
        let start = now - Duration::seconds(policy.window_seconds);
        match order.iter().rposition(|&i| taken[i] <= start) {
            Some(base) => {
                drop.extend_from_slice(&order[..base]);
                order[base..].to_vec()
            }
            None => order,
        }
    } else {
        order
    };
    if let Some(keep) = policy.effective_keep() {
        let keep = keep as usize;
        if !policy.keeps_wal() {
            let excess = kept.len().saturating_sub(keep);
            drop.extend(kept.drain(..excess));
        } else {
            while kept.len() > keep.max(2) {
                // Removing kept[j] merges the gaps on either side of it.
                let j = (1..kept.len() - 1)
                    .min_by_key(|&j| taken[kept[j + 1]] - taken[kept[j - 1]])
                    .unwrap_or(1);
                drop.push(kept.remove(j));
            }
        }
    }
    drop.sort_unstable();
    drop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).expect("valid time")
    }

    #[test]
    fn nothing_kept_without_window_or_schedule() {
        assert_eq!(HistoryPolicy::new(0, None, Some(3)), None);
        let p = HistoryPolicy::new(0, Some(3600), None).expect("a schedule");
        assert!(!p.keeps_wal());
        assert_eq!(p.effective_keep(), Some(DEFAULT_SCHEDULED_KEEP));
    }

    #[test]
    fn default_interval_is_a_quarter_of_the_window_between_ten_minutes_and_an_hour() {
        assert_eq!(default_snapshot_every(86_400), 3600);
        assert_eq!(default_snapshot_every(3600), 900);
        assert_eq!(default_snapshot_every(60), 600);
        assert_eq!(default_snapshot_every(0), 3600);
    }

    #[test]
    fn a_snapshot_is_due_after_its_interval() {
        let p = HistoryPolicy::new(3600, Some(600), None).expect("window");
        assert!(p.snapshot_due(None, at(0)));
        assert!(!p.snapshot_due(Some(at(0)), at(9)));
        assert!(p.snapshot_due(Some(at(0)), at(10)));
    }

    #[test]
    fn the_window_keeps_its_base_and_drops_what_is_older() {
        let p = HistoryPolicy::new(3600, Some(900), None).expect("window");
        // Snapshots every 15 min for 2 h; now is 2 h: the window starts at 60 min.
        let taken: Vec<_> = (0..=8).map(|i| at(i * 15)).collect();
        let drop = history_to_drop(&taken, &p, at(120));
        assert_eq!(drop, vec![0, 1, 2, 3], "the one at 60 min is the base");
    }

    #[test]
    fn a_young_window_drops_nothing() {
        let p = HistoryPolicy::new(3600, Some(900), None).expect("window");
        let taken = vec![at(0), at(15)];
        assert!(history_to_drop(&taken, &p, at(20)).is_empty());
    }

    #[test]
    fn keep_thins_a_window_but_keeps_the_base_and_the_newest() {
        let p = HistoryPolicy::new(86_400, Some(3600), Some(3)).expect("window");
        // 0, 60, 70, 180 min: the 70 is closest to its neighbours... removing 60 leaves
        // a gap 0..70, removing 70 leaves 60..180: the first is shorter.
        let taken = vec![at(0), at(60), at(70), at(180)];
        assert_eq!(history_to_drop(&taken, &p, at(200)), vec![1]);
        let keep2 = HistoryPolicy { keep: Some(2), ..p };
        assert_eq!(history_to_drop(&taken, &keep2, at(200)), vec![1, 2]);
        // keep = 1 still keeps the base and the newest: the window must stay reachable.
        let keep1 = HistoryPolicy { keep: Some(1), ..p };
        assert_eq!(history_to_drop(&taken, &keep1, at(200)), vec![1, 2]);
    }

    #[test]
    fn a_schedule_without_window_keeps_the_newest() {
        let p = HistoryPolicy::new(0, Some(3600), Some(2)).expect("schedule");
        // Given out of order, answered as indexes of the input.
        let taken = vec![at(120), at(0), at(180), at(60)];
        assert_eq!(history_to_drop(&taken, &p, at(200)), vec![1, 3]);
        let default = HistoryPolicy::new(0, Some(3600), None).expect("schedule");
        let many: Vec<_> = (0..30).map(|i| at(i * 60)).collect();
        assert_eq!(
            history_to_drop(&many, &default, at(30 * 60)),
            (0..6).collect::<Vec<_>>()
        );
    }
}
