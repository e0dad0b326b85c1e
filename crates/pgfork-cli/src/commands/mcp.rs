//! `pgfork mcp`: the MCP server on stdio (pgfork-mcp), and `pgfork mcp install`, which
//! writes an MCP client's configuration for the repository.

use super::*;

pub(super) async fn mcp(args: McpArgs, explicit: Option<&str>) -> Result<i32> {
    match args.command {
        None => {
            // stdout is the protocol from here on: nothing else may print there.
            let config = project::find_config()
                .map(|path| project::read_config(&path))
                .transpose()?;
            let pii_masking = match config {
                Some(cfg) if cfg.masking.pii => {
                    let rules = project::read_masking_rules("")?;
                    let (list, strict, keep) = project::masking_request(Some(&rules));
                    Some(pgfork_mcp::PiiMasking {
                        rules: list.unwrap_or_default(),
                        strict: strict.unwrap_or_default(),
                        keep: keep.unwrap_or_default(),
                    })
                }
                _ => None,
            };
            let client = ensure_daemon().await?;
            pgfork_mcp::serve_stdio(
                client,
                pgfork_mcp::Options {
                    read_only: args.read_only,
                    project: explicit.map(str::to_string),
                    allow_protected_writes: args.allow_protected_writes,
                    default_ttl: args.default_ttl,
                    pii_masking,
                },
            )
            .await?;
            Ok(0)
        }
        Some(McpCommand::Install { client }) => {
            let root = pgfork_git::Repo::discover(&std::env::current_dir()?)
                .map(|r| r.root)
                .unwrap_or(std::env::current_dir()?);
            let exe = std::env::current_exe().context("could not find the pgfork executable")?;
            let mut server_args = vec!["mcp".to_string()];
            if let Some(p) = explicit {
                server_args.push("--project".into());
                server_args.push(p.to_string());
            }
            if args.read_only {
                server_args.push("--read-only".into());
            }
            if let Some(t) = &args.default_ttl {
                server_args.push("--default-ttl".into());
                server_args.push(t.clone());
            }
            let (path, key) = match client {
                McpClient::Claude => (root.join(".mcp.json"), "mcpServers"),
                McpClient::Cursor => (root.join(".cursor").join("mcp.json"), "mcpServers"),
                McpClient::Vscode => (root.join(".vscode").join("mcp.json"), "servers"),
            };
            let mut entry = serde_json::json!({
                "command": exe.display().to_string(),
                "args": server_args,
            });
            if matches!(client, McpClient::Vscode) {
                entry["type"] = "stdio".into();
            }
            // The store the repository uses, for clients that do not pass the shell's
            // environment to the servers they start.
            entry["env"] = serde_json::json!({"PGFORK_HOME": home().display().to_string()});
            let mut doc: serde_json::Value = match std::fs::read_to_string(&path) {
                Ok(text) => serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is not JSON: fix it or move it aside, then run this again",
                        path.display()
                    )
                })?,
                Err(_) => serde_json::json!({}),
            };
            if !doc.is_object() {
                bail!(
                    "{} is not a JSON object: fix it or move it aside",
                    path.display()
                );
            }
            if !doc[key].is_object() {
                doc[key] = serde_json::json!({});
            }
            let replaced = doc[key].get("pgfork").is_some();
            doc[key]["pgfork"] = entry;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("could not create {}", dir.display()))?;
            }
            std::fs::write(&path, format!("{}\n", serde_json::to_string_pretty(&doc)?))
                .with_context(|| format!("could not write {}", path.display()))?;
            println!(
                "{} the pgfork MCP server in {} (other servers there are kept)",
                if replaced { "updated" } else { "added" },
                path.display()
            );
            Ok(0)
        }
    }
}
