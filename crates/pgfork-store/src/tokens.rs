//! API keys for the network API. Only a SHA-256 of each key is kept: the metadata file
//! may be backed up or read by root, and a key must not be usable from a copy of it.
//! Revoked keys stay listed (with when) so an audit can tell what was used; a key is
//! never un-revoked.

use super::{parse_opt_ts, parse_ts, ts, Result, Store};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

/// An API key as recorded (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Neon's keys have integer ids; so do ours.
    pub id: i64,
    pub name: String,
    /// Limits the key to one project.
    pub project_id: Option<String>,
    /// GET requests only.
    pub read_only: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from: Option<String>,
}

/// What a new key is allowed.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub project_id: Option<String>,
    pub read_only: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

pub(crate) const TABLE: &str = "CREATE TABLE api_keys (\
    id INTEGER PRIMARY KEY AUTOINCREMENT, \
    name TEXT NOT NULL, \
    hash TEXT NOT NULL UNIQUE, \
    project_id TEXT, \
    read_only INTEGER NOT NULL DEFAULT 0, \
    created_at TEXT NOT NULL, \
    expires_at TEXT, \
    revoked_at TEXT, \
    last_used_at TEXT, \
    last_used_from TEXT);";

const COLUMNS: &str =
    "id, name, project_id, read_only, created_at, expires_at, revoked_at, last_used_at, last_used_from";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        project_id: row.get(2)?,
        read_only: row.get::<_, i64>(3)? != 0,
        created_at: parse_ts(&row.get::<_, String>(4)?)?,
        expires_at: parse_opt_ts(row.get(5)?)?,
        revoked_at: parse_opt_ts(row.get(6)?)?,
        last_used_at: parse_opt_ts(row.get(7)?)?,
        last_used_from: row.get(8)?,
    })
}

impl Store {
    /// Records a key by the hash of its secret.
    pub fn insert_api_key(
        &self,
        key: &NewApiKey,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKey> {
        self.conn.execute(
            "INSERT INTO api_keys (name, hash, project_id, read_only, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.name,
                hash,
                key.project_id,
                key.read_only as i64,
                ts(now),
                key.expires_at.map(ts)
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        // Read back: what a later lookup returns (timestamps at the stored precision).
        Ok(self.conn.query_row(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
            params![id],
            key_from_row,
        )?)
    }

    /// The key whose secret hashes to `hash`, revoked and expired ones included (the
    /// caller tells them apart, to say which).
    pub fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE hash = ?1"),
                params![hash],
                key_from_row,
            )
            .optional()?)
    }

    pub fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))?;
        let rows = stmt.query_map([], key_from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Revokes a key by id; the key as it is now, or `None` when there is no such key.
    pub fn revoke_api_key(&self, id: i64, now: DateTime<Utc>) -> Result<Option<ApiKey>> {
        self.conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, ts(now)],
        )?;
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
                params![id],
                key_from_row,
            )
            .optional()?)
    }

    /// Notes a key's use (for `pgfork token list` and audits).
    pub fn touch_api_key(&self, id: i64, now: DateTime<Utc>, from: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE api_keys SET last_used_at = ?2, last_used_from = ?3 WHERE id = ?1",
            params![id, ts(now), from],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_hash_and_revocation_sticks() {
        let s = Store::open_in_memory().expect("store");
        let now = Utc::now();
        let k = s
            .insert_api_key(
                &NewApiKey {
                    name: "ci".into(),
                    read_only: true,
                    ..Default::default()
                },
                "h1",
                now,
            )
            .expect("insert");
        assert_eq!(s.api_key_by_hash("h1").expect("get"), Some(k.clone()));
        assert_eq!(s.api_key_by_hash("h2").expect("get"), None);
        let revoked = s.revoke_api_key(k.id, now).expect("revoke").expect("found");
        assert!(revoked.revoked_at.is_some());
        let later = now + chrono::Duration::hours(1);
        let again = s
            .revoke_api_key(k.id, later)
            .expect("revoke")
            .expect("found");
        assert_eq!(
            again.revoked_at, revoked.revoked_at,
            "first revocation kept"
        );
        assert_eq!(s.revoke_api_key(999, now).expect("revoke"), None);
    }
}
