//! The transports: GraphQL over HTTP ([`http`], with the GraphiQL
//! playground) and over WebSocket ([`websocket`], subscriptions), both at
//! `/graphql`, and the one application state they are served with.
//!
//! Stage: transports. Use the pipeline through its [`Executor`] interface,
//! `api::document` (which operation a document selects) and what a
//! subscriber carries (`upstream::Forwarded`, `live::SlowSubscriber`); they
//! know nothing of the read model or the services.

pub mod http;
pub mod websocket;

use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use self::http::HttpLimits;
use self::websocket::LiveSettings;
use crate::pipeline::Executor;

/// What every route is served with, built once at startup.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Runs every request: the gateway's pipeline.
    pub executor: Arc<dyn Executor>,
    pub limits: HttpLimits,
    pub websocket: LiveSettings,
    /// Cancelled when the gateway shuts down: WebSocket connections close.
    pub closing: CancellationToken,
}

/// `GET`/`POST /graphql` (a GET that asks to upgrade is a WebSocket), the
/// playground at `GET /` (and at `GET /graphql` for a browser) and the demo
/// app at `GET /app`, within the HTTP limits.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the
/// executor is given the peer address.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    let routes = Router::new()
        .route("/graphql", get(get_graphql).post(http::post))
        .merge(http::playground::routes())
        .merge(http::app::routes())
        .with_state(state);
    http::limits::apply(routes, limits)
}

/// `GET /graphql`: a WebSocket when the client asks to upgrade, else a
/// query (or the playground) over HTTP.
async fn get_graphql(State(state): State<AppState>, request: Request) -> Response {
    if websocket::asks_to_upgrade(request.headers()) {
        websocket::upgrade(request, state.executor, state.websocket, state.closing).await
    } else {
        http::get(&state.executor, request).await
    }
}
