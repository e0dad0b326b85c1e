//! Stable per-branch ports.
//!
//! A branch's port is chosen once, at creation, and kept for its whole life (reset and
//! restarts included) so its URL never changes. The choice is pure: the lowest free port
//! of the range that no live or trashed branch holds (a trashed branch keeps its port so
//! that recovering it restores the same URL).

use crate::CoreError;
use std::collections::HashSet;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Below Linux's ephemeral range (32768–60999), so an outgoing connection can never
/// be holding a branch's port when its Postgres starts.
impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            first: 26_000,
            last: 26_999,
        }
    }
}

impl FromStr for PortRange {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let err = || CoreError::InvalidPortRange {
            input: s.to_string(),
        };
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        let first: u16 = a.trim().parse().map_err(|_| err())?;
        let last: u16 = b.trim().parse().map_err(|_| err())?;
        if first == 0 || first > last {
            return Err(err());
        }
        Ok(PortRange { first, last })
    }
}

/// The lowest port in `range` not in `used`, or `None` when the range is exhausted.
pub fn pick_port(range: PortRange, used: &HashSet<u16>) -> Option<u16> {
    (range.first..=range.last).find(|p| !used.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_lowest_free() {
        let r = PortRange {
            first: 10,
            last: 12,
        };
        let mut used = HashSet::new();
        assert_eq!(pick_port(r, &used), Some(10));
        used.insert(10);
        used.insert(12);
        assert_eq!(pick_port(r, &used), Some(11));
        used.insert(11);
        assert_eq!(pick_port(r, &used), None);
    }

    #[test]
    fn parses_ranges() {
        assert_eq!(
            "55000-55010".parse::<PortRange>().expect("valid"),
            PortRange {
                first: 55000,
                last: 55010
            }
        );
        assert!("9-1".parse::<PortRange>().is_err());
        assert!("x".parse::<PortRange>().is_err());
        assert!("0-5".parse::<PortRange>().is_err());
    }
}
