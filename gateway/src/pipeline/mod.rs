//! Runs one GraphQL request for the transport: picks the query strategy,
//! checks what the query asks against the limits (before anything else:
//! waiting, caching, executing), verifies the caller, honours a consistency
//! token, answers from the response cache or executes, and reports
//! `extensions.cost`, `extensions.strategy`,
//! `extensions.upstreamRequests`, `extensions.sqlStatements`,
//! `extensions.cache` and, after a mutation, `extensions.consistencyToken`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::graphql::{ErrorCode, TraceParent};
use agora_platform::query_limits::{Checked, QueryLimiter};
use agora_platform::tokens::{self, Caller, JwksVerifier};
use async_graphql::parser::types::OperationType;
use async_graphql::{Response, ServerError, Value};
use axum::http::{header, HeaderMap};

use crate::consistency::{Consistency, ConsistencyToken, TokenKey};
use crate::consistency_wait::PendingConsistency;
use crate::graphql::context::CommandLog;
use crate::graphql::source::{DataSource, Loaders};
use crate::graphql::{GatewaySchema, RequestContext};
use crate::http::{operation_type, Answer};
use crate::response_cache::{CacheKey, ResponseCache};
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
    /// Anonymous read-model answers until the read model changes; `None` when off.
    pub cache: Option<ResponseCache>,
    pub consistency: Consistency,
    pub consistency_timeout: Duration,
    /// Signs and checks consistency tokens (shared by every replica).
    pub token_key: TokenKey,
    pub limiter: QueryLimiter,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code.as_str());
    error.extensions = Some(extensions);
    error
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Answer {
    Response::from_errors(vec![error(code, message)]).into()
}

/// Where a cacheable request stands: its key, and the read model's
/// generation its answer is computed from.
struct Cacheable {
    key: CacheKey,
    generation: u64,
}

impl Gateway {
    async fn run(&self, mut request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Answer {
        // Measured once, in time bounded by the document's size; the schema's
        // extension trusts this measure (and the parsed document is kept).
        let cost = match self.limiter.check(&mut request) {
            Ok(measured) => {
                request = request.data(Checked(measured));
                measured.cost
            }
            Err(refusal) => return Response::from_errors(vec![refusal.into_server_error()]).into(),
        };
        let strategy = headers.get(STRATEGY_HEADER).map(|value| value.to_str().unwrap_or_default().trim().to_ascii_lowercase());
        let read_model = matches!(strategy.as_deref(), None | Some("") | Some("read-model"));
        let mut cacheable = None;
        if let Some(cache) = self.cache.as_ref().filter(|_| read_model && cache_allowed(headers)) {
            let key = CacheKey::new(&request.query, request.operation_name.as_deref(), &request.variables);
            if !no_cache_requested(headers) {
                if let Some(data) = cache.get(&key) {
                    return Answer::Serialized { data, extensions: extensions(cost, "read-model", 0, 0, Some("hit")) };
                }
            }
            cacheable = cache.generation().map(|generation| Cacheable { key, generation });
        }
        let forwarded = Forwarded {
            authorization: headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).map(str::to_owned),
            client_address: Some(peer.ip()),
            traceparent: TraceParent::from_headers(headers).as_deref().map(str::to_owned),
            idempotency_key: headers
                .get(agora_platform::idempotency::HEADER)
                .map(|value| value.to_str().unwrap_or_default().to_owned()),
        };
        let calls = Arc::new(CallCounter::default());
        let statements = Arc::new(CallCounter::default());
        let source = match strategy.as_deref() {
            _ if read_model => (self.read_model)(forwarded.clone(), statements.clone()),
            Some("composition") => match &self.composition {
                Some(factory) => factory(forwarded.clone(), calls.clone()),
                None => return refuse(ErrorCode::BadUserInput, "the composition strategy is not available"),
            },
            other => {
                return refuse(
                    ErrorCode::BadUserInput,
                    format!("unknown {STRATEGY_HEADER} {:?}: use read-model or composition", other.unwrap_or_default()),
                )
            }
        };
        // Parsed once, by the check; execution takes the parsed document.
        let operation_name = request.operation_name.clone();
        if let Ok(document) = request.parsed_query() {
            if operation_type(document, operation_name.as_deref()) != Some(OperationType::Query) {
                cacheable = None;
            }
        }
        // A token is checked now (a forged one is refused at once); its wait
        // comes after parsing and validation (`consistency_wait`), within a
        // deadline that starts now.
        let mut pending = None;
        if let Some(token) = headers.get(CONSISTENCY_HEADER) {
            let Ok(token) = ConsistencyToken::decode(token.to_str().unwrap_or_default(), &self.token_key) else {
                return refuse(ErrorCode::BadUserInput, format!("{CONSISTENCY_HEADER} is not a token this API issued"));
            };
            let deadline = tokio::time::Instant::now() + self.consistency_timeout;
            pending = Some(PendingConsistency { receipts: token.0, deadline });
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
        let request = match pending {
            Some(pending) => request.data(pending),
            None => request,
        };
        let mut response = self.schema.execute(request.data(context)).await;
        add_missing_codes(&mut response);
        if let (Some(cache), Some(Cacheable { key, generation })) = (&self.cache, cacheable) {
            if response.errors.is_empty() {
                // Serialized once, for the cache and for this answer.
                if let Some(data) = cache.put(key, generation, &response.data) {
                    let extensions = extensions(cost, strategy_name, calls.get(), statements.get(), Some("miss"));
                    return Answer::Serialized { data, extensions };
                }
            }
        }
        response.extensions.extend(extensions(cost, strategy_name, calls.get(), statements.get(), None));
        if let Some(writes) = commands.writes() {
            response.extensions.insert("consistencyToken".into(), Value::from(ConsistencyToken(writes).encode(&self.token_key)));
        }
        if commands.lagging() {
            // The answer may not show the latest writes yet; the client can retry with the token.
            response.extensions.insert("consistent".into(), Value::from(false));
        }
        response.into()
    }
}

/// The extensions every answer carries.
fn extensions(
    cost: u64,
    strategy: &'static str,
    upstream_requests: usize,
    sql_statements: usize,
    cache: Option<&'static str>,
) -> BTreeMap<String, Value> {
    let mut extensions = BTreeMap::new();
    extensions.insert("cost".into(), Value::from(cost));
    extensions.insert("strategy".into(), Value::from(strategy));
    extensions.insert("upstreamRequests".into(), Value::from(upstream_requests as u64));
    extensions.insert("sqlStatements".into(), Value::from(sql_statements as u64));
    if let Some(cache) = cache {
        extensions.insert("cache".into(), Value::from(cache));
    }
    extensions
}

/// Whether the request's answer may be shared: not when it names a caller
/// (the answer may depend on who asks) or a consistency token (it must see
/// the database itself, see [`crate::response_cache`]).
fn cache_allowed(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::AUTHORIZATION) && !headers.contains_key(CONSISTENCY_HEADER)
}

/// `Cache-Control: no-cache` (or `no-store`): the client wants a fresh answer.
fn no_cache_requested(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').any(|directive| matches!(directive.trim().to_ascii_lowercase().as_str(), "no-cache" | "no-store"))
    })
}

/// Gives every error a code: the validator's come without one (the limits'
/// refusals carry theirs).
fn add_missing_codes(response: &mut Response) {
    for error in &mut response.errors {
        let has_code = error.extensions.as_ref().is_some_and(|extensions| extensions.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if error.path.is_empty() { ErrorCode::BadUserInput } else { ErrorCode::Internal };
        error.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    }
}

#[async_trait::async_trait]
impl crate::http::Executor for Gateway {
    async fn execute(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Answer {
        self.run(request, headers, peer).await
    }
}

#[cfg(test)]
mod fuzz {
    //! Mutated documents (the hostile corpus and ordinary queries, cut and
    //! spliced) through the gateway's schema: its limits, the parser and
    //! async-graphql's validation never panic and answer within bounds.

    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use agora_platform::query_limits::{CostModel, Limits, QueryLimiter, QueryLimitsExtension};
    use proptest::prelude::*;

    use crate::graphql::{GatewaySchema, Mutation, Query, Subscription};

    fn schema() -> &'static GatewaySchema {
        static SCHEMA: OnceLock<GatewaySchema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let limits = Limits { max_depth: 12, max_cost: 5_000, max_aliases: 30, max_fields: 1_000 };
            let limiter = QueryLimiter::new(limits, CostModel::agora());
            async_graphql::Schema::build(Query, Mutation, Subscription)
                .extension(QueryLimitsExtension::new(limiter.clone()))
                .data(limiter)
                .finish()
        })
    }

    fn seeds() -> Vec<String> {
        let mut seeds: Vec<String> = agora_testkit::hostile::gateway_corpus().into_iter().map(|case| case.query).collect();
        seeds.extend(
            [
                "{ posts(first: 20) { edges { cursor node { id title author { id displayName points } } } pageInfo { hasNextPage } } }",
                "query($n: Int) { leaderboard(first: $n) { id posts(first: 5) { nodes { id } } } }",
                "{ me { ...U } } fragment U on User { id username posts { nodes { ...P } } } fragment P on Post { id author { ...U } }",
                "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }",
                "subscription { postCreated { id title } }",
            ]
            .map(str::to_owned),
        );
        seeds
    }

    /// What an edit splices in.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[{}().:$,\"#\\[\\]! ]".prop_map(String::from),
            Just("...F0 ".to_owned()),
            Just(" fragment F0 on Query { ...F0 }".to_owned()),
            Just("posts(first: 100) { nodes { ".to_owned()),
            Just("a: ".to_owned()),
            Just("... on Query { ".to_owned()),
            "[a-zA-Z_]{1,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn mutated_documents_are_answered_within_bounds(
            seed in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, piece()), 0..6),
        ) {
            let seeds = seeds();
            let mut document: Vec<char> = seed.get(&seeds).chars().collect();
            for (at, kind, piece) in edits {
                let position = if document.is_empty() { 0 } else { at.index(document.len()) };
                match kind {
                    0 if !document.is_empty() => { document.remove(position); }
                    1 => { document.splice(position..position, piece.chars()); }
                    _ => {
                        // Doubles the tail: repetition is how documents amplify.
                        let tail: Vec<char> = document[position..].to_vec();
                        document.extend(tail);
                    }
                }
            }
            let document: String = document.into_iter().collect();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let started = Instant::now();
            let response = runtime.block_on(schema().execute(async_graphql::Request::new(document.clone())));
            prop_assert!(started.elapsed() < Duration::from_secs(1), "{document:?} took {:?}", started.elapsed());
            // An answer with data passed the limits: its cost is reported.
            if response.errors.is_empty() {
                prop_assert!(response.extensions.contains_key("cost"), "{document:?}");
            }
        }
    }
}
