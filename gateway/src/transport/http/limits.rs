//! The request body limit and the per-request timeout, as `tower_http`
//! layers, with their bare answers (a plain-text 413, an empty 504) turned
//! into GraphQL errors that carry `extensions.code`.

use std::time::Duration;

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::Response,
    Router,
};
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};

use super::{
    error::TransportError,
    negotiation::{negotiate, ResponseMediaType},
};

/// Limits on every HTTP request.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Longest a request may take; slower ones get a TIMEOUT error (504).
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { body_limit_bytes: 1024 * 1024, request_timeout: Duration::from_secs(30) }
    }
}

/// Wraps every route of `router` in the limits.
pub fn apply(router: Router, limits: HttpLimits) -> Router {
    router
        // tower_http's limit replaces axum's default one (2 MB), not adds to it.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, limits.request_timeout))
        .layer(middleware::from_fn_with_state(limits, graphql_error_bodies))
}

/// Rewrites the layers' own error responses. The transport's responses are
/// always JSON, so a 413 or 504 without a JSON body came from a layer.
async fn graphql_error_bodies(State(limits): State<HttpLimits>, request: Request, next: Next) -> Response {
    let media_type = negotiate(request.headers()).unwrap_or(ResponseMediaType::Json);
    let response = next.run(request).await;
    let from_a_layer = !response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.contains("json"));
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE if from_a_layer => {
            TransportError::PayloadTooLarge { limit: limits.body_limit_bytes }.into_response_as(media_type)
        }
        StatusCode::GATEWAY_TIMEOUT if from_a_layer => {
            tracing::warn!(timeout = ?limits.request_timeout, "a request timed out");
            TransportError::Timeout(limits.request_timeout).into_response_as(media_type)
        }
        _ => response,
    }
}
