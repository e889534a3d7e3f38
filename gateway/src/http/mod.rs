//! GraphQL over HTTP (and later WebSocket) for the gateway, plus the
//! GraphiQL playground. The transport knows nothing of the read model or the
//! services: it hands each parsed request to an [`Executor`].

use std::net::SocketAddr;

use axum::http::HeaderMap;

/// Runs GraphQL requests for the transport.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Executes one request. `headers` are the HTTP request's (bearer token,
    /// `x-query-strategy`, `x-consistency-token`); `peer` is the client socket.
    async fn execute(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> async_graphql::Response;
}
