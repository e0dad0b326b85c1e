//! Durations and expiry: TTLs, trash grace periods.

use crate::CoreError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long a deleted branch stays recoverable in the trash.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The word users type to remove a TTL (`set-ttl NAME none`).
pub const DEFAULT_TTL_NONE: &str = "none";

/// Parses `24h`, `90m`, `7d`, `1h30m`. Zero is rejected: a branch that expires at once
/// is a mistake, not a policy.
pub fn parse_ttl(input: &str) -> Result<Duration, CoreError> {
    let d = humantime::parse_duration(input.trim()).map_err(|e| CoreError::InvalidDuration {
        input: input.to_string(),
        reason: format!("{e}; write it like 30m, 24h or 7d"),
    })?;
    if d.is_zero() {
        return Err(CoreError::InvalidDuration {
            input: input.to_string(),
            reason: "a TTL must be longer than zero".to_string(),
        });
    }
    Ok(d)
}

/// `now + ttl`, saturating at the far future instead of overflowing.
pub fn expires_at_from_ttl(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The expiry a request asks for: an absolute `expires_at`, or a relative TTL in
/// seconds counted from `now` (the server's clock, not the client's). Both at once,
/// a zero TTL or a time already past are mistakes, said in one sentence.
pub fn requested_expiry(
    expires_at: Option<DateTime<Utc>>,
    ttl_seconds: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, &'static str> {
    match (expires_at, ttl_seconds) {
        (Some(_), Some(_)) => Err("give expires_at or pgfork:ttl_seconds, not both"),
        (None, Some(0)) => Err("pgfork:ttl_seconds must be more than zero"),
        (None, Some(s)) => Ok(Some(expires_at_from_ttl(now, Duration::from_secs(s)))),
        (Some(t), None) if t <= now => {
            Err("expires_at is in the past: give a future time or a TTL")
        }
        (t, None) => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn requested_expiry_is_absolute_or_relative_to_the_server_clock() {
        use super::requested_expiry;
        let now = chrono::Utc::now();
        assert_eq!(
            requested_expiry(None, Some(60), now),
            Ok(Some(now + chrono::Duration::seconds(60)))
        );
        assert!(requested_expiry(Some(now), Some(1), now).is_err());
        assert!(requested_expiry(None, Some(0), now).is_err());
        assert!(requested_expiry(Some(now - chrono::Duration::seconds(1)), None, now).is_err());
        assert_eq!(requested_expiry(None, None, now), Ok(None));
    }

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_ttl("24h").expect("ok"), Duration::from_secs(86_400));
        assert_eq!(parse_ttl("1h30m").expect("ok"), Duration::from_secs(5400));
        assert_eq!(
            parse_ttl("7d").expect("ok"),
            Duration::from_secs(7 * 86_400)
        );
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon")
            .expect_err("bad")
            .to_string()
            .contains("24h"));
    }

    #[test]
    fn expiry_saturates() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(
            expires_at_from_ttl(now, Duration::from_secs(3600)),
            Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0)
                .single()
                .expect("valid")
        );
        assert_eq!(
            expires_at_from_ttl(now, Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
