//! Time travel: `BRANCH@MOMENT` wherever a branch is named (`pgfork url main@"10m ago"`,
//! `pgfork psql feature@2026-11-25T12:00:00Z`) is a read-only branch of BRANCH at that
//! moment of its history, made on first use, reused for the same moment, and gone by
//! itself after an hour (`PGFORK_TIME_TRAVEL_TTL`). Announced where it is made.

use super::*;

/// Splits `BRANCH@MOMENT` when what follows the last `@` is a moment.
pub(super) fn split(spec: &str) -> Option<(&str, &str)> {
    let (branch, moment) = spec.rsplit_once('@')?;
    (!branch.is_empty() && super::branch::looks_like_moment(moment)).then_some((branch, moment))
}

/// The name a moment's branch gets: `feature-at-20261125-120000` (`-lsn-0-16B3748`).
fn travel_name(branch: &str, timestamp: Option<&str>, lsn: Option<&str>) -> String {
    match (timestamp, lsn) {
        (Some(t), _) => {
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .format("%Y%m%d-%H%M%S")
                        .to_string()
                })
                .unwrap_or_default();
            format!("{branch}-at-{t}")
        }
        (None, Some(l)) => format!("{branch}-lsn-{}", l.replace('/', "-")),
        (None, None) => branch.to_string(),
    }
}

/// The read-only branch of `branch` at `moment` (made if needed).
pub(super) async fn branch_at(
    c: &Client,
    p: &str,
    branch: &str,
    moment: &str,
) -> Result<api::Branch> {
    let (timestamp, lsn) = super::branch::parse_moment(moment)?;
    let name = travel_name(branch, timestamp.as_deref(), lsn.as_deref());
    if let Ok(found) = c.get_branch(p, &name, false).await {
        return Ok(found.branch);
    }
    let parent = c.get_branch(p, branch, false).await?.branch;
    let ttl = std::env::var("PGFORK_TIME_TRAVEL_TTL").unwrap_or_else(|_| "1h".into());
    let expires = super::expiry_in(&ttl)?;
    let mut settings = project::find_config()
        .and_then(|path| project::read_config(&path).ok())
        .and_then(|cfg| cfg.postgres_settings())
        .unwrap_or_default();
    settings.insert("default_transaction_read_only".into(), "on".into());
    let resp = c
        .create_branch(
            p,
            &api::BranchCreateRequest {
                branch: api::BranchCreate {
                    name: Some(name.clone()),
                    parent_id: Some(parent.id.clone()),
                    parent_timestamp: timestamp,
                    parent_lsn: lsn,
                    expires_at: Some(expires),
                    pgfork_postgres_settings: Some(settings),
                    ..Default::default()
                },
                endpoints: vec![],
            },
        )
        .await?;
    wait_ops(c, p, &resp.operations).await?;
    eprintln!(
        "pgfork: {name:?} is {branch:?} as it was at {moment}, read-only, until {} (`pgfork branch delete {name}` drops it now)",
        expires.format("%Y-%m-%d %H:%M UTC")
    );
    Ok(c.get_branch(p, &resp.branch.id, false).await?.branch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_follows_the_last_at_sign() {
        assert_eq!(split("main@10m ago"), Some(("main", "10m ago")));
        assert_eq!(
            split("a@b@2026-11-25T12:00:00Z"),
            Some(("a@b", "2026-11-25T12:00:00Z"))
        );
        assert_eq!(split("main@0/16B3748"), Some(("main", "0/16B3748")));
        assert_eq!(split("user@example"), None);
        assert_eq!(split("@10m ago"), None);
        assert_eq!(
            travel_name("main", Some("2026-11-25T12:00:00Z"), None),
            "main-at-20261125-120000"
        );
        assert_eq!(
            travel_name("main", None, Some("0/16B3748")),
            "main-lsn-0-16B3748"
        );
    }
}
