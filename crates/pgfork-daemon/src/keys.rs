//! API keys: made here, shown once, kept as SHA-256 hashes (`pgfork-store`), checked on
//! every network request (`pgfork_api::auth` enforces what they allow).

use crate::engine::{store_err, Engine};
use chrono::{DateTime, Utc};
use pgfork_api::{self as api, auth::Grant, ApiError};
use pgfork_store::{ApiKey, NewApiKey};
use sha2::Digest;

/// The stored form of a key's secret.
pub fn hash_key(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Why a known key allows nothing now, if it does not.
pub fn refusal(key: &ApiKey, now: DateTime<Utc>) -> Option<&'static str> {
    if key.revoked_at.is_some() {
        Some("this API key was revoked: ask the server's owner for a new one")
    } else if key.expires_at.is_some_and(|t| t <= now) {
        Some("this API key has expired: ask the server's owner for a new one")
    } else {
        None
    }
}

/// A key's use is written at most this often (every request would be a write).
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

pub fn info(k: &ApiKey) -> api::ApiKeyInfo {
    api::ApiKeyInfo {
        id: k.id,
        name: k.name.clone(),
        created_at: k.created_at,
        last_used_at: k.last_used_at,
        last_used_from_addr: k.last_used_from.clone().unwrap_or_default(),
        pgfork_project_id: k.project_id.clone(),
        pgfork_read_only: k.read_only,
        pgfork_expires_at: k.expires_at,
        pgfork_revoked_at: k.revoked_at,
    }
}

impl Engine {
    pub fn authenticate(&self, secret: &str, from: &str) -> Result<Grant, ApiError> {
        let unauthorized = |m: &str| ApiError::new(401, "UNAUTHORIZED", m);
        let now = Utc::now();
        let key = self
            .store()
            .api_key_by_hash(&hash_key(secret))
            .map_err(store_err)?
            .ok_or_else(|| {
                unauthorized("this API key is not known to this server: check PGFORK_API_KEY")
            })?;
        if let Some(why) = refusal(&key, now) {
            return Err(unauthorized(why));
        }
        if key.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY) {
            let id = key.id;
            if let Err(e) = self.write_store(|s| s.touch_api_key(id, now, from)) {
                tracing::warn!(error = %e, "could not note an API key's use");
            }
        }
        Ok(Grant {
            key_id: key.id,
            project_id: key.project_id,
            read_only: key.read_only,
        })
    }

    pub fn create_api_key(
        &self,
        req: api::ApiKeyCreateRequest,
    ) -> Result<api::ApiKeyCreateResponse, ApiError> {
        let name = req.key_name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "key_name is empty or holds control characters: name the key after who uses it, e.g. \"ci\"",
            ));
        }
        let now = Utc::now();
        if req.pgfork_expires_at.is_some_and(|t| t <= now) {
            return Err(ApiError::bad_request(
                "pgfork_expires_at is in the past: give a future time",
            ));
        }
        let project_id = match req.pgfork_project_id.as_deref() {
            Some(p) => Some(self.project(p)?.id),
            None => None,
        };
        let secret = crate::ids::new_api_key();
        let new = NewApiKey {
            name: name.to_string(),
            project_id,
            read_only: req.pgfork_read_only,
            expires_at: req.pgfork_expires_at,
        };
        let hash = hash_key(&secret);
        let key = self
            .write_store(|s| s.insert_api_key(&new, &hash, now))
            .map_err(store_err)?;
        tracing::info!(id = key.id, name = %key.name, read_only = key.read_only, project = ?key.project_id, "API key created");
        Ok(api::ApiKeyCreateResponse {
            id: key.id,
            key: secret,
            name: key.name,
            created_at: key.created_at,
        })
    }

    pub fn list_api_keys(&self) -> Result<Vec<api::ApiKeyInfo>, ApiError> {
        Ok(self
            .store()
            .api_keys()
            .map_err(store_err)?
            .iter()
            .map(info)
            .collect())
    }

    pub fn revoke_api_key(&self, id: i64) -> Result<api::ApiKeyRevokeResponse, ApiError> {
        let key = self
            .write_store(|s| s.revoke_api_key(id, Utc::now()))
            .map_err(store_err)?
            .ok_or_else(|| {
                ApiError::not_found(format!("no API key with id {id}: see `pgfork token list`"))
            })?;
        tracing::info!(id = key.id, name = %key.name, "API key revoked");
        Ok(api::ApiKeyRevokeResponse {
            id: key.id,
            name: key.name,
            revoked: true,
            last_used_at: key.last_used_at,
            last_used_from_addr: key.last_used_from.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey {
            id: 1,
            name: "ci".into(),
            project_id: None,
            read_only: false,
            created_at: Utc::now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            last_used_from: None,
        }
    }

    #[test]
    fn hashes_are_sha256_hex_and_differ_per_secret() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash_key("pgf_a"), hash_key("pgf_b"));
    }

    #[test]
    fn revoked_and_expired_keys_allow_nothing() {
        let now = Utc::now();
        assert_eq!(refusal(&key(), now), None);
        let revoked = ApiKey {
            revoked_at: Some(now),
            ..key()
        };
        assert!(refusal(&revoked, now).is_some_and(|m| m.contains("revoked")));
        let expired = ApiKey {
            expires_at: Some(now - chrono::Duration::seconds(1)),
            ..key()
        };
        assert!(refusal(&expired, now).is_some_and(|m| m.contains("expired")));
        let later = ApiKey {
            expires_at: Some(now + chrono::Duration::hours(1)),
            ..key()
        };
        assert_eq!(refusal(&later, now), None);
    }
}
