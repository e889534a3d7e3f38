//! The `/graphql` endpoint over HTTP: GET (queries, or the playground for a
//! browser) and POST, each checked, handed to the [`Executor`] and rendered.

use std::{net::SocketAddr, sync::Arc};

use agora_platform::client_address::ClientAddress;
use async_graphql::parser::types::OperationType;
use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, ConnectInfo, Request, State},
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
};

use super::{
    error::TransportError,
    limits::HttpLimits,
    negotiation::{accepts_html, negotiate, ResponseMediaType},
    params::{check_content_type, GraphQlParams},
    playground, response,
};
use crate::api::document::selected_operation_type;
use crate::pipeline::{Answer, Executor};

/// `GET /graphql` without a WebSocket upgrade: a query in the URL, or
/// GraphiQL for a browser that asks for HTML without one.
#[tracing::instrument(name = "graphql_get", skip_all, fields(operation = tracing::field::Empty))]
pub async fn get(executor: &Arc<dyn Executor>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let params = GraphQlParams::from_query_string(parts.uri.query());
    if matches!(params, Ok(None)) && accepts_html(&parts.headers) {
        return playground::page();
    }
    let media_type = match negotiate(&parts.headers) {
        Ok(media_type) => media_type,
        Err(_) => return TransportError::NotAcceptable.into_response(),
    };
    let params = match params.and_then(|params| params.ok_or(TransportError::MissingQuery)) {
        Ok(params) => params,
        Err(error) => return error.into_response_as(media_type),
    };
    let request = match document(executor, params) {
        Ok(request) => request,
        Err(refused) => return response::render(refused, media_type),
    };
    if selected_operation_type(&request.query, request.operation_name.as_deref()) == Some(OperationType::Mutation) {
        return TransportError::MutationOverGet.into_response_as(media_type);
    }
    let rendered = execute(executor, request, &parts, media_type).await;
    response::revalidated(rendered, &parts.headers).await
}

/// The request of `params`, with the document it names by hash (a persisted
/// query), or the answer refusing it.
fn document(executor: &Arc<dyn Executor>, params: GraphQlParams) -> Result<async_graphql::Request, Answer> {
    let mut request = params.into_request();
    match executor.resolve_document(&mut request) {
        Ok(()) => Ok(request),
        Err(refused) => Err(async_graphql::Response::from_errors(vec![refused]).into()),
    }
}

/// `POST /graphql` with an `application/json` body.
#[tracing::instrument(name = "graphql_post", skip_all, fields(operation = tracing::field::Empty))]
pub async fn post(
    State(executor): State<Arc<dyn Executor>>,
    State(limits): State<HttpLimits>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let media_type = match negotiate(&parts.headers) {
        Ok(media_type) => media_type,
        Err(_) => return TransportError::NotAcceptable.into_response(),
    };
    let params = check_content_type(&parts.headers)
        .and_then(|()| match body {
            Ok(body) => Ok(body),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(TransportError::PayloadTooLarge { limit: limits.body_limit_bytes })
            }
            Err(rejection) => {
                tracing::debug!(error = %rejection.body_text(), "could not read a request body");
                Err(TransportError::UnreadableBody)
            }
        })
        .and_then(|body| GraphQlParams::from_json_body(&body));
    match params.map(|params| document(&executor, params)) {
        Ok(Ok(request)) => execute(&executor, request, &parts, media_type).await,
        Ok(Err(refused)) => response::render(refused, media_type),
        Err(error) => error.into_response_as(media_type),
    }
}

async fn execute(
    executor: &Arc<dyn Executor>,
    request: async_graphql::Request,
    parts: &Parts,
    media_type: ResponseMediaType,
) -> Response {
    let Some(ConnectInfo(mut peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
        tracing::error!("the router must be served with into_make_service_with_connect_info::<SocketAddr>()");
        return TransportError::Internal.into_response_as(media_type);
    };
    // The client behind a trusted proxy, when one relayed the request.
    if let Some(ClientAddress(client)) = parts.extensions.get::<ClientAddress>().copied() {
        peer.set_ip(client);
    }
    tracing::Span::current().record("operation", request.operation_name.as_deref());
    let graphql_response = executor.execute(request, &parts.headers, peer).await;
    let retry_after = match &graphql_response {
        Answer::Response(response) => agora_platform::budget::retry_after_of(&response.errors),
        Answer::Serialized { .. } => None,
    };
    let mut rendered = response::render(graphql_response, media_type);
    if let Some(seconds) = retry_after {
        rendered.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
    }
    rendered
}
