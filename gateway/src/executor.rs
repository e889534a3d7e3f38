//! Runs one GraphQL request for the transport: picks the query strategy,
//! verifies the caller, honours a consistency token, executes, and reports
//! `extensions.strategy`, `extensions.upstreamRequests` and, after a
//! mutation, `extensions.consistencyToken`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::graphql::{ErrorCode, TraceParent};
use agora_platform::tokens::{self, Caller, JwksVerifier};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, Value};
use axum::http::HeaderMap;

use crate::consistency::{Consistency, ConsistencyToken};
use crate::graphql::context::CommandLog;
use crate::graphql::source::{DataSource, Loaders};
use crate::graphql::{GatewaySchema, QueryLimits, RequestContext};
use crate::upstream::{CallCounter, Forwarded};

pub const STRATEGY_HEADER: &str = "x-query-strategy";
pub const CONSISTENCY_HEADER: &str = "x-consistency-token";

/// Makes a request's data source; the counter counts its round trips.
pub type SourceFactory = Arc<dyn Fn(Forwarded, Arc<CallCounter>) -> Arc<dyn DataSource> + Send + Sync>;

pub struct Gateway {
    pub schema: GatewaySchema,
    pub read_model: SourceFactory,
    pub composition: Option<SourceFactory>,
    pub verifier: Arc<JwksVerifier>,
    pub consistency: Consistency,
    pub consistency_timeout: Duration,
    pub limits: QueryLimits,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code.as_str());
    error.extensions = Some(extensions);
    error
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::from_errors(vec![error(code, message)])
}

impl Gateway {
    async fn run(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Response {
        let strategy = headers.get(STRATEGY_HEADER).map(|value| value.to_str().unwrap_or_default().trim().to_ascii_lowercase());
        let forwarded = Forwarded {
            authorization: headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            client_address: Some(peer.ip()),
            traceparent: TraceParent::from_headers(headers).as_deref().map(str::to_owned),
        };
        let calls = Arc::new(CallCounter::default());
        let statements = Arc::new(CallCounter::default());
        let source = match strategy.as_deref() {
            None | Some("") | Some("read-model") => (self.read_model)(forwarded.clone(), statements.clone()),
            Some("composition") => match &self.composition {
                Some(factory) => factory(forwarded.clone(), calls.clone()),
                None => return refuse(ErrorCode::BadUserInput, "the composition strategy is not available"),
            },
            Some(other) => {
                return refuse(
                    ErrorCode::BadUserInput,
                    format!("unknown {STRATEGY_HEADER} {other:?}: use read-model or composition"),
                )
            }
        };
        if let Err(response) = self.check_aliases(&request) {
            return response;
        }
        let mut lagging = false;
        if let Some(token) = headers.get(CONSISTENCY_HEADER) {
            let Ok(token) = ConsistencyToken::decode(token.to_str().unwrap_or_default()) else {
                return refuse(ErrorCode::BadUserInput, format!("{CONSISTENCY_HEADER} is not a token this API issued"));
            };
            match self.consistency.wait(&token.0, self.consistency_timeout).await {
                Ok(reached) => lagging = !reached,
                Err(error) => {
                    tracing::error!(%error, "cannot check the consistency token");
                    return refuse(ErrorCode::Internal, "internal error");
                }
            }
        }
        let verification = match tokens::bearer(headers) {
            Some(token) => Some(self.verifier.verify(token).await),
            None => None,
        };
        let strategy_name = source.strategy();
        let commands = Arc::new(CommandLog::default());
        let context = RequestContext {
            caller: Caller::from_verification(verification),
            forwarded,
            loaders: Loaders::new(source),
            calls: calls.clone(),
            commands: commands.clone(),
        };
        let mut response = self.schema.execute(request.data(context)).await;
        add_missing_codes(&mut response);
        let extensions = &mut response.extensions;
        extensions.insert("strategy".into(), Value::from(strategy_name));
        extensions.insert("upstreamRequests".into(), Value::from(calls.get() as u64));
        extensions.insert("sqlStatements".into(), Value::from(statements.get() as u64));
        if let Some(writes) = commands.writes() {
            extensions.insert("consistencyToken".into(), Value::from(ConsistencyToken(writes).encode()));
        }
        if lagging || commands.lagging() {
            // The answer may not show the latest writes yet; the client can retry with the token.
            extensions.insert("consistent".into(), Value::from(false));
        }
        response
    }

    /// Refuses documents with more aliases than allowed (alias amplification).
    fn check_aliases(&self, request: &async_graphql::Request) -> Result<(), Response> {
        let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
            return Ok(());
        };
        let aliases = count_aliases(&document);
        if aliases > self.limits.max_aliases {
            return Err(refuse(
                ErrorCode::QueryTooComplex,
                format!("the query has {aliases} aliases; at most {} are allowed", self.limits.max_aliases),
            ));
        }
        Ok(())
    }
}

fn count_aliases(document: &ExecutableDocument) -> usize {
    fn in_set(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => usize::from(field.node.alias.is_some()) + in_set(&field.node.selection_set.node),
                Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let operations: usize = document.operations.iter().map(|(_, operation)| in_set(&operation.node.selection_set.node)).sum();
    let fragments: usize = document.fragments.values().map(|fragment| in_set(&fragment.node.selection_set.node)).sum();
    operations + fragments
}

/// Gives every error a code: the validator's and parser's come without one.
fn add_missing_codes(response: &mut Response) {
    for error in &mut response.errors {
        let has_code = error.extensions.as_ref().is_some_and(|extensions| extensions.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if error.message.starts_with("Query is too complex") || error.message.starts_with("Query is nested too deep") {
            ErrorCode::QueryTooComplex
        } else if error.path.is_empty() {
            ErrorCode::BadUserInput
        } else {
            ErrorCode::Internal
        };
        error.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    }
}

#[async_trait::async_trait]
impl crate::http::Executor for Gateway {
    async fn execute(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Response {
        self.run(request, headers, peer).await
    }
}
