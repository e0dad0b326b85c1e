//! `pgfork branch …`: create, list, get, delete, recover, reset, start, stop, rename and the
//! per-branch settings; every one a call to the API.

use super::*;

pub(super) async fn branch(cmd: BranchCommand, explicit: Option<&str>) -> Result<i32> {
    // Validate names before anything else, so bad input never starts a daemon.
    let name_arg = match &cmd {
        BranchCommand::Create { name, .. } => Some(name),
        BranchCommand::Rename { new, .. } => Some(new),
        _ => None,
    };
    if let Some(n) = name_arg {
        pgfork_core::validate_branch_name(n)?;
    }
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    match cmd {
        BranchCommand::Create {
            name,
            parent,
            ttl,
            expires_at,
            protected,
            idle_timeout,
            no_wait,
            mask,
            unmasked,
            from_snapshot,
            at,
            history,
            json,
        } => {
            if let Some(snap) = from_snapshot {
                let started = Instant::now();
                let resp = c
                    .restore_snapshot(
                        &p,
                        &snap,
                        &api::SnapshotRestoreRequest {
                            name: Some(name.clone()),
                            ..Default::default()
                        },
                    )
                    .await?;
                wait_ops(&c, &p, &resp.operations).await?;
                let b = c.get_branch(&p, &resp.branch.id, false).await?.branch;
                if json {
                    print_json(&view(&b))?;
                } else {
                    println!(
                        "created branch {:?} from snapshot {snap:?} in {:.2} s\n  url: {}",
                        b.name,
                        started.elapsed().as_secs_f64(),
                        crate::output::redacted(&b.connection_uri)
                    );
                }
                return Ok(0);
            }
            let masking = match mask {
                None => None,
                Some(file) => Some(project::read_masking_rules(&file)?),
            };
            let pii = project::find_config()
                .map(|path| project::read_config(&path))
                .transpose()?
                .is_some_and(|cfg| cfg.masking.pii);
            let mut unmasked_reason = None;
            if pii && masking.is_none() {
                let source = match &parent {
                    Some(name) => c.get_branch(&p, name, false).await?.branch,
                    None => root_branch(&c, &p).await?,
                };
                if !source.masked {
                    if !unmasked {
                        bail!(
                            "this project holds personal data ([masking] pii = true in .pgfork.toml) and {:?} is not masked: create the branch with --mask, or ask for an unmasked copy by name with --unmasked (it is recorded)",
                            source.name
                        );
                    }
                    let who = std::env::var("USER").unwrap_or_else(|_| "someone".into());
                    unmasked_reason = Some(format!("pgfork branch create --unmasked by {who}"));
                    eprintln!("pgfork: making an UNMASKED copy of {:?} as asked (--unmasked); the daemon's log records it", source.name);
                }
            }
            let suspend_timeout_seconds = idle_timeout
                .as_deref()
                .map(parse_idle_timeout)
                .transpose()?;
            // The repository's policy applies to branches made by hand (CI jobs, agents):
            // its default TTL and password rotation. A broken policy file is an error,
            // not a silent default.
            let repo_cfg = project::find_config()
                .map(|path| project::read_config(&path))
                .transpose()?;
            let postgres_settings = repo_cfg.as_ref().and_then(|c| c.postgres_settings());
            let (mut history_window, history_every, history_keep) = match &repo_cfg {
                Some(c) => (
                    c.history.window_seconds()?,
                    c.history.snapshot_every_seconds()?,
                    c.history.keep()?,
                ),
                None => (None, None, None),
            };
            if let Some(w) = history.as_deref() {
                history_window = Some(parse_window(w)?);
            }
            let (parent_timestamp, parent_lsn) = match at.as_deref() {
                Some(a) => parse_moment(a)?,
                None => (None, None),
            };
            let policy = repo_cfg.map(|cfg| cfg.branches).unwrap_or_default();
            let default_ttl = policy.default_ttl;
            let ttl = ttl.or(if expires_at.is_none() {
                default_ttl
            } else {
                None
            });
            let expires_at = parse_expiry(ttl.as_deref(), expires_at.as_deref())?;
            let (mask_rules, mask_strict, mask_keep) = project::masking_request(masking.as_ref());
            let started = Instant::now();
            let resp = c
                .create_branch(
                    &p,
                    &api::BranchCreateRequest {
                        branch: api::BranchCreate {
                            name: Some(name.clone()),
                            parent_id: parent,
                            expires_at,
                            protected: protected.then_some(true),
                            git_branch: None,
                            suspend_timeout_seconds,
                            pgfork_rotate_passwords: policy.rotate_passwords,
                            pgfork_unmasked_reason: unmasked_reason,
                            pgfork_masking_rules: mask_rules,
                            pgfork_masking_strict: mask_strict,
                            pgfork_masking_keep: mask_keep,
                            pgfork_postgres_settings: postgres_settings,
                            pgfork_history_window_seconds: history_window,
                            pgfork_history_snapshot_every_seconds: history_every,
                            pgfork_history_keep: history_keep,
                            // An absolute time is what every Neon-v2 server understands.
                            pgfork_ttl_seconds: None,
                            parent_lsn,
                            parent_timestamp,
                        },
                        endpoints: vec![serde_json::json!({"type": "read_write"})],
                    },
                )
                .await?;
            if no_wait {
                if json {
                    let mut resp = resp;
                    resp.branch.connection_uri = output::shown_url(&resp.branch.connection_uri);
                    print_json(&resp)?;
                } else {
                    let running: Vec<&str> = resp
                        .operations
                        .iter()
                        .filter(|o| o.is_running())
                        .map(|o| o.id.as_str())
                        .collect();
                    println!(
                        "requested branch {:?} ({}){}",
                        resp.branch.name,
                        resp.branch.id,
                        if running.is_empty() {
                            String::new()
                        } else {
                            format!("; still building: operation {}", running.join(", "))
                        }
                    );
                }
                return Ok(0);
            }
            wait_ops(&c, &p, &resp.operations).await?;
            let b = if resp.operations.iter().any(|o| o.is_running()) {
                c.get_branch(&p, &resp.branch.id, false).await?.branch
            } else {
                resp.branch
            };
            let secs = started.elapsed().as_secs_f64();
            if json {
                print_json(&view(&b))?;
            } else {
                println!(
                    "created branch {:?} from {:?} in {secs:.2} s ({})",
                    b.name,
                    b.parent_name.as_deref().unwrap_or("-"),
                    b.clone_method
                );
                println!("{}", output::shown_url(&b.connection_uri));
            }
        }
        BranchCommand::List { all, json } => {
            let list = c.list_branches(&p, all, true).await?.branches;
            if json {
                print_json(&list.iter().map(view).collect::<Vec<_>>())?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|b| {
                        vec![
                            b.name.clone(),
                            b.parent_name.clone().unwrap_or_else(|| "-".into()),
                            b.state_word().to_string(),
                            b.port.to_string(),
                            bytes(b.logical_bytes),
                            bytes(b.unique_bytes),
                            b.clone_method.clone(),
                            b.expires_at
                                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "NAME", "PARENT", "STATE", "PORT", "LOGICAL", "UNIQUE", "METHOD",
                            "EXPIRES"
                        ],
                        &rows
                    )
                );
                // The root's lag behind its source (or its age): what every branch's
                // data is measured against.
                if let Some(root) = list.iter().find(|b| b.parent_id.is_none()) {
                    if let Ok(f) = c.branch_freshness(&p, &root.id).await {
                        for line in
                            super::status::freshness_lines(&f, &root.name, chrono::Utc::now())
                        {
                            if let Some(rest) = line.strip_prefix("root:     ") {
                                println!("root {}: {rest}", root.name);
                            }
                        }
                    }
                }
            }
        }
        BranchCommand::Get { name, json } => {
            let b = c.get_branch(&p, &name, true).await?.branch;
            if json {
                print_json(&view(&b))?;
            } else {
                let v = serde_json::to_value(view(&b))?;
                if let Some(obj) = v.as_object() {
                    for (k, val) in obj {
                        if k == "history" {
                            let h = crate::output::history_summary(b.pgfork_history.as_ref());
                            println!("{k:<14} {h}");
                            continue;
                        }
                        let s = match val {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => "-".into(),
                            other => other.to_string(),
                        };
                        println!("{k:<14} {s}");
                    }
                }
            }
        }
        BranchCommand::Delete { name, purge } => {
            let b = c.delete_branch(&p, &name, purge).await?.branch;
            if purge {
                println!("purged branch {:?}", b.name);
            } else {
                let until = b
                    .purge_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                println!(
                    "deleted branch {:?}; recover it until {until} with `pgfork branch recover {}`",
                    b.name, b.name
                );
            }
        }
        BranchCommand::Recover { name } => {
            let resp = c.recover_branch(&p, &name).await?;
            for w in resp.operations.iter().flat_map(|o| &o.warnings) {
                crate::note!("note: {w}");
            }
            let b = resp.branch;
            println!(
                "recovered branch {:?}: {} (`pgfork url {}` prints it with the password)",
                b.name,
                output::redacted(&b.connection_uri),
                b.name
            );
        }
        BranchCommand::Reset { name, opts } => {
            return super::reset::reset(&c, &p, reset_request(name, opts, false), explicit).await;
        }
        BranchCommand::Restore {
            name,
            to,
            force,
            wait,
        } => {
            return super::snapshot::restore(&c, &p, name, to, force, wait).await;
        }
        BranchCommand::Refresh { name, opts } => {
            return super::reset::reset(&c, &p, reset_request(name, opts, true), explicit).await;
        }
        BranchCommand::History {
            name,
            window,
            snapshot_every,
            keep,
            off,
            force,
            wait,
            json,
        } => {
            if keep == Some(0) {
                bail!("--keep 0 keeps no snapshot: give at least 1, or --off to keep nothing");
            }
            let current = c.get_branch(&p, &name, true).await?.branch;
            let change = off || window.is_some() || snapshot_every.is_some() || keep.is_some();
            let b = if change {
                let now = current.pgfork_history.as_ref();
                let window_seconds = match window.as_deref() {
                    Some(w) => parse_window(w)?,
                    None if off => 0,
                    None => now.map(|h| h.window_seconds).unwrap_or(0),
                };
                let snapshot_every_seconds = match snapshot_every.as_deref() {
                    Some(e) => Some(pgfork_core::parse_ttl(e)?.as_secs() as i64),
                    // A new window gets the interval that suits it, unless one was set.
                    None if off || window.is_some() => None,
                    None => now.map(|h| h.snapshot_every_seconds),
                };
                let keep = if off {
                    None
                } else {
                    keep.or(now.and_then(|h| h.keep))
                };
                if !off && window_seconds == 0 && snapshot_every_seconds.is_none() {
                    bail!(
                        "a window of 0 keeps no WAL, so history needs a snapshot interval: add --snapshot-every 1h, or use --off to keep nothing"
                    );
                }
                let wait_seconds = match &wait {
                    Some(w) => Some(pgfork_core::parse_ttl(w)?.as_secs()),
                    None => None,
                };
                let req = api::BranchUpdateRequest {
                    branch: api::BranchUpdate {
                        pgfork_history: Some(api::HistorySettings {
                            window_seconds,
                            snapshot_every_seconds,
                            keep,
                        }),
                        pgfork_refuse_sessions: !force,
                        pgfork_wait_seconds: wait_seconds,
                        ..Default::default()
                    },
                };
                c.update_branch(&p, &current.id, &req).await?;
                c.get_branch(&p, &current.id, true).await?.branch
            } else {
                current
            };
            if json {
                print_json(&b.pgfork_history)?;
            } else {
                println!(
                    "{:?} keeps {}",
                    b.name,
                    crate::output::history_summary(b.pgfork_history.as_ref())
                );
            }
        }
        BranchCommand::Start { name } => {
            let b = c.set_running(&p, &name, true).await?.branch;
            println!("{:?} is running on port {}", b.name, b.port);
        }
        BranchCommand::Stop { name } => {
            let b = c.set_running(&p, &name, false).await?.branch;
            println!("{:?} is stopped", b.name);
        }
        BranchCommand::Rename { old, new } => {
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    name: Some(new),
                    ..Default::default()
                },
            };
            let b = c.update_branch(&p, &old, &req).await?.branch;
            println!("renamed {old:?} to {:?}", b.name);
        }
        BranchCommand::SetTtl { name, ttl } => {
            let expires = if ttl.eq_ignore_ascii_case(pgfork_core::DEFAULT_TTL_NONE) {
                None
            } else {
                parse_expiry(Some(&ttl), None)?
            };
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    expires_at: Some(expires),
                    ..Default::default()
                },
            };
            let b = c.update_branch(&p, &name, &req).await?.branch;
            match b.expires_at {
                Some(t) => println!("{:?} expires at {}", b.name, t.format("%Y-%m-%d %H:%M UTC")),
                None => println!("{:?} no longer expires", b.name),
            }
        }
        BranchCommand::SetIdleTimeout { name, timeout } => {
            let secs = parse_idle_timeout(&timeout)?;
            let req = api::BranchUpdateRequest {
                branch: api::BranchUpdate {
                    suspend_timeout_seconds: Some(secs),
                    ..Default::default()
                },
            };
            let b = c.update_branch(&p, &name, &req).await?.branch;
            match b.suspend_timeout_seconds {
                -1 => println!("{:?} is never suspended for idleness", b.name),
                0 => println!("{:?} uses the daemon's idle timeout", b.name),
                s => println!("{:?} is suspended after {s} s without clients", b.name),
            }
        }
        BranchCommand::Migrate { name } => {
            let ctx = Ctx::for_command(Some(&p)).await?;
            if ctx.cfg.hooks.after_create.is_none() {
                bail!("this repository's .pgfork.toml has no [hooks] after_create command to run");
            }
            let b = c.get_branch(&p, &name, false).await?.branch;
            if !pairing::run_after_create(&ctx, &b).await {
                bail!("the after-create command failed on {:?}", b.name);
            }
            println!("after-create command succeeded on {:?}", b.name);
        }
        BranchCommand::Diff {
            name,
            against,
            database,
            json,
        } => {
            return super::diff::diff(
                &c,
                &p,
                super::diff::DiffRequest {
                    branch: Some(name),
                    against,
                    database,
                    json,
                },
            )
            .await;
        }
        BranchCommand::Protect { name } => set_protected(&c, &p, &name, true).await?,
        BranchCommand::Unprotect { name } => set_protected(&c, &p, &name, false).await?,
    }
    Ok(0)
}

/// A history window: a duration, or `0`/`off` for none.
pub(super) fn parse_window(s: &str) -> Result<i64> {
    match s.trim() {
        "0" | "off" | "none" => Ok(0),
        other => Ok(pgfork_core::parse_ttl(other)?
            .as_secs()
            .min(i64::MAX as u64) as i64),
    }
}

/// `10m` → 600, `-1`/`never` → -1, `default` → 0 (Neon's suspend_timeout_seconds).
pub(super) fn parse_idle_timeout(s: &str) -> Result<i64> {
    match s.trim() {
        "-1" | "never" => Ok(-1),
        "default" | "0" => Ok(0),
        other => Ok(pgfork_core::parse_ttl(other)?
            .as_secs()
            .min(i64::MAX as u64) as i64),
    }
}

pub(super) fn parse_expiry(
    ttl: Option<&str>,
    at: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    if let Some(t) = ttl {
        let d = pgfork_core::parse_ttl(t)?;
        return Ok(Some(pgfork_core::expires_at_from_ttl(
            chrono::Utc::now(),
            d,
        )));
    }
    if let Some(a) = at {
        let t = chrono::DateTime::parse_from_rfc3339(a).with_context(|| {
            format!(
                "--expires-at {a:?} is not an RFC 3339 time: write it like 2026-12-01T18:00:00Z"
            )
        })?;
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    Ok(None)
}

pub(super) async fn set_protected(c: &Client, p: &str, name: &str, protected: bool) -> Result<()> {
    let req = api::BranchUpdateRequest {
        branch: api::BranchUpdate {
            protected: Some(protected),
            ..Default::default()
        },
    };
    let b = c.update_branch(p, name, &req).await?.branch;
    println!(
        "{:?} is {}",
        b.name,
        if b.protected {
            "protected"
        } else {
            "no longer protected"
        }
    );
    Ok(())
}

fn reset_request(
    name: String,
    opts: crate::cli::ResetOpts,
    migrate: bool,
) -> super::reset::ResetRequest {
    super::reset::ResetRequest {
        name,
        preserve_as: opts.preserve_as,
        discard: opts.discard,
        force: opts.force,
        wait: opts.wait,
        migrate,
    }
}

/// Whether `s` names a moment (rather than a snapshot): `… ago`, an RFC 3339 time, or a
/// WAL position.
pub(super) fn looks_like_moment(s: &str) -> bool {
    let s = s.trim();
    s.ends_with(" ago")
        || chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || s.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && (a.chars().chain(b.chars())).all(|c| c.is_ascii_hexdigit())
        })
}

/// `--at`: a WAL position (`0/16B3748`), an RFC 3339 time, or `10m ago`; as Neon's
/// (`parent_timestamp`, `parent_lsn`).
pub(super) fn parse_moment(at: &str) -> Result<(Option<String>, Option<String>)> {
    let at = at.trim();
    if at.contains('/') && !at.contains(':') {
        return Ok((None, Some(at.to_string())));
    }
    if let Some(ago) = at.strip_suffix(" ago") {
        let d = pgfork_core::parse_ttl(ago)?;
        let t = chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default();
        return Ok((
            Some(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            None,
        ));
    }
    let t = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| {
        anyhow::anyhow!("--at {at:?} is not a moment: give an RFC 3339 time (2026-11-25T12:00:00Z), a duration ago (\"10m ago\") or a WAL position (0/16B3748)")
    })?;
    Ok((
        Some(
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        None,
    ))
}
