//! `pgfork daemon start | stop | status` (`daemon run` is the binary's own). Stop waits for
//! every branch to stop, and falls back to the pid in the lock file when the daemon hangs.

use super::*;

pub(super) async fn daemon(cmd: DaemonCommand) -> Result<i32> {
    match cmd {
        DaemonCommand::Run { .. } => {
            bail!("`pgfork daemon run` is served by the pgfork binary itself, not the CLI library")
        }
        DaemonCommand::Start => {
            let c = crate::connect::ensure_local_daemon().await?;
            let st = c.status().await?;
            println!("pgfork daemon running (pid {}, home {})", st.pid, st.home);
            Ok(0)
        }
        DaemonCommand::Stop => {
            let c = crate::connect::local_client()?.with_timeout(Duration::from_secs(10));
            let layout = crate::connect::layout()?;
            // Hooks will not bring back a daemon the user stopped on purpose.
            let _ = std::fs::write(pairing::stopped_marker(), "");
            let (pid, branches) = match c.status().await {
                Ok(st) => {
                    let _ = c.shutdown().await;
                    (st.pid as i32, st.running_branches)
                }
                Err(_) => {
                    // Not answering: a hung daemon still holds its lock file with its pid.
                    let pid = std::fs::read_to_string(&layout.lock)
                        .ok()
                        .and_then(|t| t.trim().parse::<i32>().ok());
                    match pid.filter(|p| crate::connect::process_alive(*p) && is_pgfork_daemon(*p))
                    {
                        Some(p) => {
                            eprintln!(
                                "warning: the daemon (pid {p}) does not answer; sending it SIGTERM"
                            );
                            // SAFETY: signalling the daemon identified by its lock file.
                            unsafe { libc::kill(p, libc::SIGTERM) };
                            (p, 0)
                        }
                        None => {
                            println!("no pgfork daemon is running for {}", home().display());
                            return Ok(0);
                        }
                    }
                }
            };
            let started = Instant::now();
            // The daemon answers until it has stopped every branch; wait for it to go.
            while crate::connect::process_alive(pid) {
                if started.elapsed() > Duration::from_secs(90) {
                    // SAFETY: as above; its postmasters are re-adopted by the next daemon.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    bail!("the daemon (pid {pid}) did not stop within 90 s and was killed: its branches keep running until the next `pgfork daemon start`");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!("pgfork daemon stopped ({branches} branch(es) stopped)");
            Ok(0)
        }
        DaemonCommand::Status { json } => {
            let c = crate::connect::local_client()?;
            match c.status().await {
                Ok(st) => {
                    if json {
                        print_json(&st)?;
                    } else {
                        println!(
                            "running: pid {}, home {}, {} on {}, {} branch(es) running",
                            st.pid, st.home, st.clone_method, st.filesystem, st.running_branches
                        );
                        if let Some(url) = &st.api_url {
                            println!("network API: {url} (clients need a key: `pgfork token create NAME`)");
                        }
                    }
                    Ok(0)
                }
                Err(_) => {
                    if json {
                        print_json(&serde_json::json!({"running": false, "home": home()}))?;
                    } else {
                        println!("not running (home {})", home().display());
                    }
                    Ok(3)
                }
            }
        }
    }
}

/// Whether `pid` runs `pgfork daemon run` (a pid in a stale lock file may be reused).
pub(super) fn is_pgfork_daemon(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let s = String::from_utf8_lossy(&c).replace('\0', " ");
            s.contains("pgfork") && s.contains("daemon run")
        })
        .unwrap_or(false)
}
