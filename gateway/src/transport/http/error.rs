//! Errors of the transport itself: HTTP requests that never became a GraphQL
//! request, answered with a GraphQL-shaped body so that every client can read
//! them the same way as any other error.

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::negotiation::ResponseMediaType;

/// Why the transport refused or gave up on an HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request body must be a JSON object (batched requests are not supported)")]
    BodyNotAnObject,
    #[error("the query string is malformed: {0}")]
    InvalidQueryString(String),
    #[error("the `query` parameter is required")]
    MissingQuery,
    #[error("the `{name}` parameter must be {expected}")]
    InvalidParameter { name: &'static str, expected: &'static str },
    #[error("the `{name}` parameter is not valid JSON: {reason}")]
    ParameterNotJson { name: &'static str, reason: String },
    #[error("unsupported content type {0:?}: send application/json (utf-8)")]
    UnsupportedMediaType(String),
    #[error("none of the accepted media types can be served: accept application/graphql-response+json or application/json")]
    NotAcceptable,
    #[error("mutations must be sent with POST")]
    MutationOverGet,
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the request did not complete within {0:?}")]
    Timeout(Duration),
    #[error("internal error")]
    Internal,
}

impl TransportError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Self::MutationOverGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The `extensions.code` of the error (see the list in `api.graphql`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "TIMEOUT",
            Self::Internal => "INTERNAL",
            _ => "BAD_USER_INPUT",
        }
    }

    /// The error as a GraphQL response (`errors` and no `data`: the request
    /// never reached execution) in `media_type`.
    pub fn into_response_as(self, media_type: ResponseMediaType) -> Response {
        let body = json!({
            "errors": [{ "message": self.to_string(), "extensions": { "code": self.code() } }]
        });
        let mut response = (self.status(), [(header::CONTENT_TYPE, media_type.content_type())], body.to_string()).into_response();
        if matches!(self, Self::MutationOverGet) {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

impl IntoResponse for TransportError {
    /// Without a negotiated media type (the client's `Accept` is unusable, or
    /// unknown here), `application/json` is what any client can read.
    fn into_response(self) -> Response {
        self.into_response_as(ResponseMediaType::Json)
    }
}
