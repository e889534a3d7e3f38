//! GraphQL over HTTP (and later WebSocket) for the gateway, plus the
//! GraphiQL playground. The transport knows nothing of the read model or the
//! services: it hands each parsed request to an [`Executor`].
//!
//! It follows the GraphQL-over-HTTP spec (checked by `graphql-http`'s server
//! audits, see `gateway/tests/js/audit.mjs`): POST with `application/json`,
//! GET with the parameters in the query string (queries only: a mutation gets
//! 405), responses in `application/graphql-response+json` or
//! `application/json` by `Accept`. Every error the transport itself produces
//! is a GraphQL error body with `extensions.code`.

mod error;
mod handlers;
mod limits;
mod negotiation;
mod operation;
mod params;
mod playground;
mod response;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use axum::{http::HeaderMap, routing::get, Router};
use serde_json::value::RawValue;

pub use self::limits::HttpLimits;
pub use self::operation::operation_type;

/// What an executor answers: a response to render, or a successful one
/// whose `data` was serialized before (a cached answer).
pub enum Answer {
    Response(async_graphql::Response),
    Serialized { data: Arc<RawValue>, extensions: BTreeMap<String, async_graphql::Value> },
}

impl From<async_graphql::Response> for Answer {
    fn from(response: async_graphql::Response) -> Self {
        Answer::Response(response)
    }
}

/// Runs GraphQL requests for the transport.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Executes one request. `headers` are the HTTP request's (bearer token,
    /// `x-query-strategy`, `x-consistency-token`); `peer` is the client: the
    /// socket's peer, or the client a trusted proxy names for it.
    async fn execute(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Answer;
}

/// `GET`/`POST /graphql`, and the playground at `GET /` (and at
/// `GET /graphql` for a browser), within `limits`.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the
/// executor is given the peer address.
pub fn router(executor: Arc<dyn Executor>, limits: HttpLimits) -> Router {
    let endpoint = handlers::Endpoint { executor, body_limit_bytes: limits.body_limit_bytes };
    let graphql = Router::new().route("/graphql", get(handlers::get).post(handlers::post)).with_state(endpoint);
    limits::apply(graphql.merge(playground::routes()), limits)
}
