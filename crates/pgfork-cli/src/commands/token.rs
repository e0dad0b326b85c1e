//! `pgfork token create | list | revoke`: API keys for the network API.

use super::*;

pub(super) async fn token(cmd: TokenCommand) -> Result<i32> {
    let c = ensure_daemon().await?;
    match cmd {
        TokenCommand::Create {
            name,
            project,
            read_only,
            expires_in,
            json,
        } => {
            let expires_at = match expires_in.as_deref() {
                Some(d) => {
                    let ttl = pgfork_core::parse_ttl(d).with_context(|| {
                        format!("--expires-in {d:?}: give a duration such as 8h or 30d")
                    })?;
                    Some(chrono::Utc::now() + chrono::Duration::from_std(ttl)?)
                }
                None => None,
            };
            let made = c
                .create_api_key(&api::ApiKeyCreateRequest {
                    key_name: name,
                    pgfork_project_id: project,
                    pgfork_read_only: read_only,
                    pgfork_expires_at: expires_at,
                })
                .await?;
            if json {
                print_json(&made)?;
            } else {
                // The secret on stdout alone, so `$(pgfork token create ci)` captures it.
                println!("{}", made.key);
                eprintln!(
                    "pgfork: API key {} ({:?}) created; it is shown only now. Clients use it as PGFORK_API_KEY (or neonctl --api-key).",
                    made.id, made.name
                );
            }
        }
        TokenCommand::List { json } => {
            let keys = c.list_api_keys().await?;
            if json {
                print_json(&keys)?;
            } else if keys.is_empty() {
                println!("no API keys: `pgfork token create NAME` makes one");
            } else {
                let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "-".into())
                };
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        let mut limits = Vec::new();
                        if k.pgfork_read_only {
                            limits.push("read-only".to_string());
                        }
                        if let Some(p) = &k.pgfork_project_id {
                            limits.push(format!("project {p}"));
                        }
                        vec![
                            k.id.to_string(),
                            k.name.clone(),
                            if limits.is_empty() {
                                "full".into()
                            } else {
                                limits.join(", ")
                            },
                            when(Some(k.created_at)),
                            when(k.pgfork_expires_at),
                            match (k.last_used_at, k.last_used_from_addr.as_str()) {
                                (Some(t), "") => when(Some(t)),
                                (Some(t), from) => format!("{} from {from}", when(Some(t))),
                                (None, _) => "never".into(),
                            },
                            if k.pgfork_revoked_at.is_some() {
                                "revoked".into()
                            } else {
                                "active".into()
                            },
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "ID",
                            "NAME",
                            "ALLOWS",
                            "CREATED",
                            "EXPIRES",
                            "LAST USED",
                            "STATE"
                        ],
                        &rows
                    )
                );
            }
        }
        TokenCommand::Revoke { key } => {
            let keys = c.list_api_keys().await?;
            let found: Vec<&api::ApiKeyInfo> = keys
                .iter()
                .filter(|k| k.id.to_string() == key || k.name == key)
                .filter(|k| k.pgfork_revoked_at.is_none() || k.id.to_string() == key)
                .collect();
            let target = match found.as_slice() {
                [one] => one.id,
                [] => bail!("no active API key with id or name {key:?}: see `pgfork token list`"),
                _ => bail!(
                    "{} active keys are named {key:?}: revoke one by its id (see `pgfork token list`)",
                    found.len()
                ),
            };
            let r = c.revoke_api_key(target).await?;
            println!("revoked API key {} ({:?})", r.id, r.name);
        }
    }
    Ok(0)
}
