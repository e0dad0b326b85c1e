//! `pgfork mcp`: a Model Context Protocol server that gives coding agents their own
//! database branches. It is a client of the pgfork API like the CLI — the local daemon,
//! a team server, or anything speaking Neon's v2 — and holds no engine code: tools are
//! API calls, plus SQL through a branch's own URL.
//!
//! Tool names and shapes follow Neon's MCP server so an agent that knows it feels at
//! home; every parameter the API has is exposed (a TTL on create, the parent, waiting for
//! readiness). Safety is the server's, not the agent's: `--read-only` lists only the
//! tools that change nothing, `--project` confines every tool to one project, and SQL
//! that would write to the root or a protected branch is refused unless the server was
//! started with `--allow-protected-writes`.

pub mod http;
mod server;
mod sql;

pub use server::{Options, PgforkMcp, PiiMasking};

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the MCP session failed: {0}")]
    Session(String),
}

/// Serves MCP over standard input and output until the client closes them.
pub async fn serve_stdio(client: pgfork_api::Client, options: Options) -> Result<(), McpError> {
    use rmcp::ServiceExt;
    let service = PgforkMcp::new(client, options)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Session(e.to_string()))?;
    service
        .waiting()
        .await
        .map_err(|e| McpError::Session(e.to_string()))?;
    Ok(())
}
