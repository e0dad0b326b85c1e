//! `pgfork`: the binary. Thin on purpose: it parses the command line, sets up logging
//! and the runtime, and hands every command to `pgfork-cli` — a client of the API that
//! never touches a data directory — except `pgfork daemon run`, which *is* the daemon
//! (`pgfork-daemon`).

use clap::Parser;
use pgfork_cli::cli::{Cli, Command, DaemonCommand};

fn main() {
    let args = Cli::parse();
    let is_daemon = matches!(args.command, Command::Daemon { .. });
    if !is_daemon {
        quiet_on_closed_stdout();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGFORK_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match (is_daemon, args.verbose) {
            (true, _) => "info",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, _) => "debug",
        })
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour on a terminal only, and never when NO_COLOR is set (no-color.org).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .init();
    // Two workers: the daemon relays client traffic while it clones and starts
    // branches. PGFORK_RUNTIME_THREADS changes it (pgfork-bench proxy measures both).
    let workers = std::env::var("PGFORK_RUNTIME_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match args.command {
            Command::Daemon {
                command:
                    DaemonCommand::Run {
                        listen,
                        api,
                        insecure,
                        public_host,
                    },
            } => run_daemon(listen, api, insecure, public_host).await,
            _ => match pgfork_cli::run(args).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {}", pgfork_cli::error_sentence(&e));
                    1
                }
            },
        }
    });
    drop(runtime);
    std::process::exit(code);
}

/// A command whose reader went away (`pgfork branch list | head`) ends quietly, as
/// other Unix tools do, with 141 (128 + SIGPIPE). Not by restoring SIGPIPE's default
/// action: that would also kill the CLI when the daemon closes the API socket under a
/// write (a crash, a restart), instead of reporting it. SIGPIPE stays ignored, so the
/// socket write fails with an error, and only a failed print to stdout — which
/// `println!` turns into a panic — is caught here.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// `pgfork daemon run`: the daemon in the foreground (the CLI starts it detached).
async fn run_daemon(
    listen: Option<String>,
    api: Option<String>,
    insecure: bool,
    public_host: Option<String>,
) -> i32 {
    let mut cfg = match pgfork_daemon::Config::from_env(pgfork_cli::home()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Some(addr) = listen {
        match addr.parse() {
            Ok(a) => cfg.listen = a,
            Err(_) => {
                eprintln!(
                    "error: --listen {addr:?} is not an IP address: use e.g. 127.0.0.1 or 0.0.0.0"
                );
                return 1;
            }
        }
    }
    if let Some(host) = public_host {
        match pgfork_daemon::config::parse_public_host(&host) {
            Ok(h) => cfg.public_host = h,
            Err(e) => {
                eprintln!("error: --public-host: {e}");
                return 1;
            }
        }
    }
    if let Some(spec) = api.filter(|s| !s.trim().is_empty()) {
        let insecure = insecure || pgfork_daemon::config::insecure_from_env();
        match pgfork_daemon::config::parse_api_listen(&spec, insecure) {
            Ok(l) => cfg.api_listen = Some(l),
            Err(e) => {
                eprintln!("error: --api: {e}");
                return 1;
            }
        }
    }
    match pgfork_daemon::run(cfg).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
