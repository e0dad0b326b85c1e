//! Free-space rules. On a copy-on-write store a new branch costs almost nothing, but
//! cloning a *running* parent makes the parent write (a checkpoint, the backup's WAL
//! records) and every later write of the parent or the child allocates new blocks. On
//! a nearly full filesystem that write fails and Postgres PANICs, dropping every
//! session of the parent. So a create is refused, with one sentence, while the store
//! has less than a reserve left: before anything touches the parent.

use crate::CoreError;

/// The reserve kept free on the store by default (`PGFORK_MIN_FREE`).
pub const DEFAULT_MIN_FREE: u64 = 256 << 20;

/// `512M`, `2G`, `1.5GiB`, `100000` (bytes) → bytes.
pub fn parse_size(input: &str) -> Result<u64, CoreError> {
    let s = input.trim();
    let bad = |reason: &str| CoreError::InvalidSize {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| bad("write a number with an optional unit, e.g. 512M or 2G"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad("the unit is one of K, M, G, T")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad("the size is out of range"));
    }
    Ok(bytes as u64)
}

/// Whether a create that needs `need` bytes (0 for a reflink clone) may go ahead on a
/// store with `free` bytes free, keeping `reserve` free afterwards. `Err` holds how
/// many bytes are missing.
pub fn room_for(free: u64, need: u64, reserve: u64) -> Result<(), u64> {
    let wanted = need.saturating_add(reserve);
    if free >= wanted {
        Ok(())
    } else {
        Err(wanted - free)
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `5.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }

    #[test]
    fn room_keeps_the_reserve() {
        assert_eq!(room_for(300, 0, 256), Ok(()));
        assert_eq!(room_for(200, 0, 256), Err(56));
        assert_eq!(room_for(1000, 800, 256), Err(56));
        assert_eq!(room_for(0, u64::MAX, 1), Err(u64::MAX));
    }
}
