//! `pgfork remote add | use | list | remove`: which server the CLI drives.

use super::*;
use crate::remote::{self as remotes, Remote};

pub(super) async fn remote(cmd: RemoteCommand) -> Result<i32> {
    let home = home();
    let mut all = remotes::load(&home)?;
    match cmd {
        RemoteCommand::Add {
            name,
            url,
            key_stdin,
            ca,
            use_it,
        } => {
            remotes::check_name(&name)?;
            let key = if key_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("could not read the API key from standard input")?;
                Some(line.trim().to_string()).filter(|k| !k.is_empty())
            } else {
                std::env::var("PGFORK_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty())
            };
            let ca = match ca {
                Some(p) => Some(
                    std::fs::canonicalize(&p)
                        .with_context(|| format!("--ca {}: no such file", p.display()))?,
                ),
                None => None,
            };
            let r = Remote { url, key, ca };
            // Refuse what cannot work now rather than at the next git checkout.
            let client = remotes::client(&r)?;
            if let Err(e) = client.list_projects().await {
                bail!("{} does not answer as a pgfork or Neon API ({e}): check the URL, the key and --ca", r.url);
            }
            all.remotes.insert(name.clone(), r);
            if use_it {
                all.current = Some(name.clone());
            }
            remotes::save(&home, &all)?;
            println!(
                "added remote {name:?}{}",
                if use_it {
                    " (in use)"
                } else {
                    "; `pgfork remote use NAME` to use it"
                }
            );
        }
        RemoteCommand::Use { name } => {
            if name == "local" {
                all.current = None;
            } else if all.remotes.contains_key(&name) {
                all.current = Some(name.clone());
            } else {
                bail!("no remote named {name:?}: see `pgfork remote list`");
            }
            remotes::save(&home, &all)?;
            if std::env::var("PGFORK_API").is_ok() {
                eprintln!("warning: PGFORK_API is set and wins over the remote in use");
            }
            println!(
                "using {}",
                if name == "local" {
                    "the local daemon".to_string()
                } else {
                    format!("remote {name:?}")
                }
            );
        }
        RemoteCommand::List { json } => {
            if json {
                let list: Vec<serde_json::Value> = all
                    .remotes
                    .iter()
                    .map(|(n, r)| {
                        serde_json::json!({
                            "name": n,
                            "url": r.url,
                            "has_key": r.key.is_some(),
                            "ca": r.ca,
                            "in_use": all.current.as_deref() == Some(n.as_str()),
                        })
                    })
                    .collect();
                print_json(&list)?;
            } else {
                let mut rows = vec![vec![
                    if all.current.is_none() { "*" } else { "" }.to_string(),
                    "local".to_string(),
                    home.display().to_string(),
                    "-".to_string(),
                ]];
                for (n, r) in &all.remotes {
                    rows.push(vec![
                        if all.current.as_deref() == Some(n.as_str()) {
                            "*"
                        } else {
                            ""
                        }
                        .to_string(),
                        n.clone(),
                        r.url.clone(),
                        if r.key.is_some() { "yes" } else { "no" }.to_string(),
                    ]);
                }
                print!("{}", table(&["", "NAME", "URL", "KEY"], &rows));
            }
        }
        RemoteCommand::Remove { name } => {
            if all.remotes.remove(&name).is_none() {
                bail!("no remote named {name:?}: see `pgfork remote list`");
            }
            if all.current.as_deref() == Some(name.as_str()) {
                all.current = None;
                crate::note!("pgfork: {name:?} was in use; the local daemon is used from now on");
            }
            remotes::save(&home, &all)?;
            println!("removed remote {name:?}");
        }
    }
    Ok(0)
}
