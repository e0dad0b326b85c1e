//! `pgfork doctor`: what works and what does not, each with its fix; diagnosed locally when
//! the daemon cannot start.

use super::*;

pub(super) async fn doctor(json: bool) -> Result<i32> {
    let checks = match ensure_daemon().await {
        Ok(c) => c.doctor().await?.checks,
        Err(e) => {
            // The daemon cannot start: diagnose locally what it would need.
            let mut checks = vec![api::Check {
                name: "daemon".into(),
                status: "fail".into(),
                detail: output::error_sentence(&e),
                fix: Some(format!(
                    "fix the problems below, then run `pgfork daemon start`; log: {}",
                    crate::connect::home().join("daemon.log").display()
                )),
            }];
            match crate::pgbin::find("psql") {
                Some(p) => checks.push(api::Check {
                    name: "postgres".into(),
                    status: "ok".into(),
                    detail: format!("client tools at {}", p.display()),
                    fix: None,
                }),
                None => checks.push(api::Check {
                    name: "postgres".into(),
                    status: "fail".into(),
                    detail: "no PostgreSQL binaries found".into(),
                    fix: Some("install PostgreSQL (`apt-get install postgresql`) or set PGFORK_PG_BIN to its bin directory".into()),
                }),
            }
            checks
        }
    };
    let failed = checks.iter().any(|c| c.status == "fail");
    if json {
        print_json(&checks)?;
    } else {
        for c in &checks {
            let mark = match c.status.as_str() {
                "ok" => "ok  ",
                "warn" => "WARN",
                _ => "FAIL",
            };
            println!("{mark} {:<14} {}", c.name, c.detail);
            if let Some(f) = &c.fix {
                println!("     {:<14} fix: {f}", "");
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
