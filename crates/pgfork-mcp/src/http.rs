//! MCP over streamable HTTP on a team server, behind the network API's keys.
//!
//! The daemon mounts this service at `/mcp` behind the same gate as `/api/v2`
//! (`pgfork_api::auth`), which has already checked the caller's key and put its
//! [`Grant`] in the request. Each call builds the tools for that grant: a read-only key
//! gets the read-only tool set, a project key a server confined to its project. The
//! tools reach the API through the daemon's own unix socket, so what a key may do is
//! decided once, here, from the grant.

use crate::server::{Migration, Options, PgforkMcp};
use pgfork_api::auth::Grant;
use pgfork_api::Client;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams, ServerInfo,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The per-session handler: tools built per call from the caller's grant.
#[derive(Clone)]
pub struct GrantedMcp {
    client: Client,
    base: Options,
    migrations: Arc<Mutex<HashMap<String, Migration>>>,
}

impl GrantedMcp {
    fn for_context(&self, context: &RequestContext<RoleServer>) -> Result<PgforkMcp, ErrorData> {
        let grant = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Grant>())
            .cloned()
            // The gate always sets it; without one, nothing is allowed.
            .ok_or_else(|| ErrorData::invalid_request("no API key grant on this request", None))?;
        let options = Options {
            read_only: self.base.read_only || grant.read_only,
            project: grant
                .project_id
                .clone()
                .or_else(|| self.base.project.clone()),
            ..self.base.clone()
        };
        Ok(PgforkMcp::with_migrations(
            self.client.clone(),
            options,
            self.migrations.clone(),
        ))
    }
}

impl ServerHandler for GrantedMcp {
    fn get_info(&self) -> ServerInfo {
        PgforkMcp::new(self.client.clone(), self.base.clone()).get_info()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let server = self.for_context(&context)?;
        server.list_tools(request, context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let server = self.for_context(&context)?;
        server.call_tool(request, context).await
    }
}

/// The `/mcp` service: `client` reaches the API as the owner (the daemon's socket);
/// `hosts` are the names clients use (DNS-rebinding protection).
pub fn service(
    client: Client,
    base: Options,
    hosts: Vec<String>,
) -> StreamableHttpService<GrantedMcp, LocalSessionManager> {
    let handler = GrantedMcp {
        client,
        base,
        migrations: Arc::new(Mutex::new(HashMap::new())),
    };
    let mut allowed = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    allowed.extend(hosts);
    StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(allowed),
    )
}
