//! Turns an executed GraphQL response into an HTTP response: the body in the
//! negotiated media type, and the status code GraphQL over HTTP asks for.

use std::collections::BTreeMap;

use async_graphql::{ServerError, Value};
use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::error::TransportError;
use super::negotiation::ResponseMediaType;
use crate::pipeline::Answer;

/// The wire form of a GraphQL response; `data` is left out entirely when a
/// request error stopped the request before execution.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

/// The wire form of an answer whose `data` was serialized before.
#[derive(Serialize)]
struct SerializedBody<'a> {
    data: &'a serde_json::value::RawValue,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

/// Renders `answer` as `media_type`.
pub fn render(answer: Answer, media_type: ResponseMediaType) -> Response {
    match answer {
        Answer::Response(response) => render_response(response, media_type),
        Answer::Serialized { data, extensions } => {
            match serde_json::to_vec(&SerializedBody { data: &data, extensions: &extensions }) {
                Ok(json) => json_response(StatusCode::OK, json, media_type),
                Err(error) => {
                    tracing::error!(error = %error, "could not serialize a GraphQL response");
                    super::error::TransportError::Internal.into_response_as(media_type)
                }
            }
        }
    }
}

fn json_response(status: StatusCode, json: Vec<u8>, media_type: ResponseMediaType) -> Response {
    let mut http_response = (status, json).into_response();
    let headers = http_response.headers_mut();
    headers.insert(header::CONTENT_TYPE, media_type.content_type());
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    http_response
}

fn render_response(mut response: async_graphql::Response, media_type: ResponseMediaType) -> Response {
    let request_error = is_request_error(&response);
    if request_error {
        // The contract promises a code on every error. The gateway's
        // pipeline gives each one its code; one that still has none here
        // (from another executor) stopped the request before execution.
        for error in &mut response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", "BAD_USER_INPUT");
            }
        }
    }
    let body =
        Body { errors: &response.errors, data: (!request_error).then_some(&response.data), extensions: &response.extensions };
    let json = match serde_json::to_vec(&body) {
        Ok(json) => json,
        Err(error) => {
            tracing::error!(error = %error, "could not serialize a GraphQL response");
            return super::error::TransportError::Internal.into_response_as(media_type);
        }
    };
    let status = match media_type {
        ResponseMediaType::GraphQlResponseJson if request_error => request_error_status(&response.errors),
        // No data because a database is away: 503, so the client knows to retry.
        ResponseMediaType::GraphQlResponseJson => agora_platform::errors::unavailable_status(&response).unwrap_or(StatusCode::OK),
        _ => StatusCode::OK,
    };

    let mut http_response = json_response(status, json, media_type);
    let headers = http_response.headers_mut();
    for (name, value) in response.http_headers.iter() {
        headers.append(name, value.clone());
    }
    if response.errors.is_empty() {
        if let Some(cache_control) = response.cache_control.value().and_then(|value| HeaderValue::from_str(&value).ok()) {
            headers.insert(header::CACHE_CONTROL, cache_control);
        }
    }
    http_response
}

/// A successful answer to a GET, made revalidatable: an `ETag` from its
/// `data`, `Cache-Control: no-cache` (a cache may keep it, and asks again
/// each time: no answer is older than the read model), `Vary` on every
/// header that changes the answer, and 304 when the client's copy is
/// still the answer (`If-None-Match`).
pub async fn revalidated(response: Response, request_headers: &HeaderMap) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return TransportError::Internal.into_response();
    };
    #[derive(serde::Deserialize)]
    struct Answered<'a> {
        #[serde(borrow)]
        data: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow)]
        errors: Option<&'a serde_json::value::RawValue>,
    }
    let data = match serde_json::from_slice::<Answered>(&bytes) {
        Ok(Answered { data: Some(data), errors: None }) => data.get().as_bytes(),
        _ => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let tag: String = digest.as_ref()[..16].iter().map(|byte| format!("{byte:02x}")).collect();
    // Weak: the same data in another media type (`Accept`) has the same tag.
    let etag = HeaderValue::from_str(&format!("W/\"{tag}\"")).expect("hex is a header value");
    let personal = request_headers.contains_key(header::AUTHORIZATION);
    parts.headers.insert(header::ETAG, etag.clone());
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(if personal { "private, no-cache" } else { "no-cache" }));
    parts.headers.insert(header::VARY, HeaderValue::from_static("accept, authorization, x-consistency-token, x-query-strategy"));
    let matches = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            let ours = etag.to_str().unwrap_or_default().trim_start_matches("W/");
            candidate == "*" || candidate.trim_start_matches("W/") == ours
        });
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A request error (the document did not parse or validate, variables did
/// not coerce, or the gateway refused the request) produces no data; field
/// errors always carry the path of the field that failed.
fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty() && response.data == Value::Null && response.errors.iter().all(|error| error.path.is_empty())
}

/// The status for a request error under `application/graphql-response+json`:
/// 400 for the client's mistakes, the specific status when the gateway said why.
fn request_error_status(errors: &[ServerError]) -> StatusCode {
    let code = errors.iter().find_map(|error| match error.extensions.as_ref()?.get("code")? {
        Value::String(code) => Some(code.as_str()),
        _ => None,
    });
    match code {
        Some("UNAUTHENTICATED") => StatusCode::UNAUTHORIZED,
        Some("FORBIDDEN") => StatusCode::FORBIDDEN,
        Some("RATE_LIMITED") => StatusCode::TOO_MANY_REQUESTS,
        Some("TIMEOUT") => StatusCode::GATEWAY_TIMEOUT,
        Some("UPSTREAM_UNAVAILABLE") | Some("UNAVAILABLE") => StatusCode::SERVICE_UNAVAILABLE,
        Some("INTERNAL") => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{ErrorExtensionValues, PathSegment};

    use super::*;

    fn error(path: Vec<PathSegment>, code: Option<&str>) -> ServerError {
        let mut error = ServerError::new("boom", None).with_path(path);
        if let Some(code) = code {
            let mut extensions = ErrorExtensionValues::default();
            extensions.set("code", code);
            error.extensions = Some(extensions);
        }
        error
    }

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_request_error_has_no_data_and_a_code() {
        let response = render(
            async_graphql::Response::from_errors(vec![error(vec![], None)]).into(),
            ResponseMediaType::GraphQlResponseJson,
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_of(response).await;
        assert!(body.get("data").is_none());
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }

    #[tokio::test]
    async fn a_request_error_is_200_for_legacy_json_clients() {
        let response = render(async_graphql::Response::from_errors(vec![error(vec![], None)]).into(), ResponseMediaType::Json);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(body_of(response).await.get("data").is_none());
    }

    #[tokio::test]
    async fn a_field_error_keeps_null_data_and_status_200() {
        let field_error = error(vec![PathSegment::Field("me".into())], Some("UNAUTHENTICATED"));
        let response =
            render(async_graphql::Response::from_errors(vec![field_error]).into(), ResponseMediaType::GraphQlResponseJson);
        assert_eq!(response.status(), StatusCode::OK);
        let body = body_of(response).await;
        assert_eq!(body["data"], serde_json::Value::Null);
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }

    #[tokio::test]
    async fn a_field_error_for_a_database_that_is_away_is_503_without_data() {
        let field_error = error(vec![PathSegment::Field("createPost".into())], Some("UNAVAILABLE"));
        let response =
            render(async_graphql::Response::from_errors(vec![field_error]).into(), ResponseMediaType::GraphQlResponseJson);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_of(response).await["errors"][0]["extensions"]["code"], "UNAVAILABLE");
    }

    #[test]
    fn a_gateway_refusal_keeps_its_status() {
        assert_eq!(request_error_status(&[error(vec![], Some("UNAVAILABLE"))]), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(request_error_status(&[error(vec![], Some("RATE_LIMITED"))]), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(request_error_status(&[error(vec![], Some("QUERY_TOO_COMPLEX"))]), StatusCode::BAD_REQUEST);
    }
}
