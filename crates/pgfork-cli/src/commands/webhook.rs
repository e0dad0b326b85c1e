//! `pgfork webhook create`: the secret and URLs a forge needs to drive pull-request
//! branches on this server.

use super::*;

pub(super) async fn webhook(cmd: WebhookCommand, explicit: Option<&str>) -> Result<i32> {
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    match cmd {
        WebhookCommand::Create { ttl, json } => {
            let ttl_seconds = match ttl.as_deref() {
                Some(t) => Some(
                    pgfork_core::parse_ttl(t)
                        .with_context(|| format!("--ttl {t:?}: give a duration such as 3d"))?
                        .as_secs(),
                ),
                None => None,
            };
            let made = c
                .create_webhook(&p, &api::WebhookCreate { ttl_seconds })
                .await?;
            if json {
                print_json(&made)?;
                return Ok(0);
            }
            let base = c
                .status()
                .await
                .ok()
                .and_then(|s| s.api_url)
                .map(|u| u.trim_end_matches("/api/v2").to_string());
            println!("secret: {}", made.secret);
            println!("(shown only now; `pgfork webhook create` again replaces it)");
            for path in &made.paths {
                match &base {
                    Some(b) => println!("url:    {b}{path}"),
                    None => println!(
                        "path:   {path} (serve the API with `pgfork daemon run --api ADDR`)"
                    ),
                }
            }
            println!("GitHub/Gitea: content type application/json, events \"Pull requests\" and \"Branch or tag deletion\"; GitLab: the secret as the token, \"Merge request events\" and \"Push events\".");
        }
    }
    Ok(0)
}
