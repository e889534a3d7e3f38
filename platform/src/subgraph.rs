//! The HTTP edge of a subgraph's `/graphql` (auth-service, post-service):
//! only JSON request bodies are read (a `text/plain` body is what a
//! cross-site form can send without a preflight), every refusal is a
//! GraphQL-shaped body with `extensions.code`, every error of an answer
//! has a code, and an answer with a RATE_LIMITED error carries `Retry-After`.

use async_graphql_axum::GraphQLResponse;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors::ErrorCode;

/// The media types a request body may have.
const ACCEPTED: [&str; 2] = ["application/json", "application/graphql-response+json"];

/// Whether `headers` name a JSON body in UTF-8 (no charset means UTF-8).
pub fn is_json_body(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else { return false };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let utf8 = parts.filter_map(|parameter| parameter.split_once('=')).all(|(name, value)| {
        !name.trim().eq_ignore_ascii_case("charset") || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    });
    utf8 && ACCEPTED.iter().any(|accepted| essence.eq_ignore_ascii_case(accepted))
}

/// A GraphQL-shaped error answer from the transport.
pub fn refusal(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Middleware for `/graphql`: refuses bodies that are not JSON (415), and
/// turns the bare answers of the layers and extractors (413 from the body
/// limit, 400 for a body that is not a GraphQL request) into GraphQL errors.
pub async fn json_only(request: Request, next: Next) -> Response {
    if !is_json_body(request.headers()) {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "send the request as application/json (utf-8)",
        );
    }
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    let status = response.status();
    if is_json || !status.is_client_error() {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        _ => "the request body is not a GraphQL request",
    };
    refusal(status, ErrorCode::BadUserInput, message)
}

/// The HTTP answer of an executed request: every error with a code (the
/// parser's and validator's come without one), and `Retry-After` when it
/// was rate limited.
pub fn respond(mut response: async_graphql::Response) -> Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            // The query limits code their own refusals; what is left is the
            // parser's and validator's (no path: the client's document) or
            // a resolver's that forgot one.
            let code = if error.path.is_empty() { ErrorCode::BadUserInput } else { ErrorCode::Internal };
            extensions.set("code", code.as_str());
        }
    }
    let retry_after = crate::budget::retry_after_of(&response.errors);
    let mut answer = GraphQLResponse::from(response).into_response();
    if let Some(seconds) = retry_after {
        answer.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    answer
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn typed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn json_bodies_are_read() {
        assert!(is_json_body(&typed("application/json")));
        assert!(is_json_body(&typed("Application/JSON; charset=utf-8")));
        assert!(is_json_body(&typed("application/graphql-response+json")));
    }

    async fn codes_of(response: async_graphql::Response) -> Vec<serde_json::Value> {
        let body = axum::body::to_bytes(respond(response).into_body(), usize::MAX).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        body["errors"].as_array().unwrap().iter().map(|error| error["extensions"]["code"].clone()).collect()
    }

    #[tokio::test]
    async fn an_error_without_a_code_gets_one_from_where_it_happened_not_from_its_message() {
        use async_graphql::{PathSegment, ServerError};
        // The query limits code their refusals themselves; a message that reads like one decides nothing.
        let request_error = ServerError::new("Query is too complex.", None);
        let field_error = ServerError::new("Query is nested too deep.", None).with_path(vec![PathSegment::Field("me".into())]);
        let mut coded = ServerError::new("no", None);
        coded.extensions = Some(Default::default());
        coded.extensions.as_mut().unwrap().set("code", "RATE_LIMITED");
        let codes = codes_of(async_graphql::Response::from_errors(vec![request_error, field_error, coded])).await;
        assert_eq!(codes, ["BAD_USER_INPUT", "INTERNAL", "RATE_LIMITED"]);
    }

    #[test]
    fn what_a_cross_site_form_can_send_is_not() {
        for value in ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data"] {
            assert!(!is_json_body(&typed(value)), "{value}");
        }
        assert!(!is_json_body(&typed("application/json; charset=latin1")));
        assert!(!is_json_body(&HeaderMap::new()));
    }
}
