//! `pgfork`: the command line. Thin on purpose: every command is a call to the API of
//! a daemon (started on demand on a unix socket in `PGFORK_HOME`, or a remote server
//! named by `PGFORK_API`), so the CLI never touches a data directory itself.

mod cli;
mod commands;
mod connect;
mod demo;
mod output;
mod pairing;
mod project;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if !matches!(args.command, cli::Command::Daemon { .. }) {
        // A command whose reader went away (`pgfork branch list | head`) ends quietly,
        // as other Unix tools do, instead of panicking on a failed print. The daemon
        // keeps ignoring SIGPIPE: a client closing its socket must never kill it.
        // SAFETY: called before any thread starts; SIG_DFL is always a valid handler.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGFORK_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if matches!(args.command, cli::Command::Daemon { .. }) {
            "info"
        } else {
            "warn"
        })
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(commands::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", output::error_sentence(&e));
            1
        }
    };
    drop(runtime);
    std::process::exit(code);
}
