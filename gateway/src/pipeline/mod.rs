//! The request pipeline: what a GraphQL request goes through between its
//! transport and the schema, in this order:
//!
//! 1. the limits: the document is parsed (once per text, [`documents`]) and
//!    what it asks is measured and checked before anything else (waiting,
//!    caching, executing);
//! 2. the [`strategy`] the request names: the read model or composition;
//! 3. the [`response_cache`], for anonymous read-model queries;
//! 4. the [`consistency_token`]: checked now, waited for once the document
//!    validated;
//! 5. the caller's token, verified; then execution: a read-model query by
//!    its compiled plan ([`crate::plan`]) when it has one, anything else by
//!    the schema's resolvers over the strategy's data source;
//! 6. the extensions the answer carries ([`annotate`]), and after a
//!    mutation the consistency token naming its writes;
//! 7. the request's log line and latency ([`report`]).
//!
//! Subscriptions are checked and executed here too; the subscribers of one
//! operation share its execution ([`subscriptions`]).
//!
//! Stage: the pipeline. Uses `api`, `plan`, `sources`, `commands`, `live`,
//! `upstream` and `records`; the transports use it through [`Executor`].

pub mod annotate;
mod compiled;
pub mod consistency_token;
pub mod documents;
#[cfg(test)]
mod fuzz;
pub mod persisted;
pub mod report;
pub mod response_cache;
pub mod resume;
pub mod strategy;
pub mod subscriptions;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_platform::errors::ErrorCode;
use agora_platform::query_limits::{Checked, QueryLimiter, QueryLimitsExtension};
use agora_platform::tokens::{self, Caller, Claims, JwksVerifier, TokenError};
use agora_platform::trace_context::TraceParent;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Response, ServerError};
use axum::http::{header, HeaderMap};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::value::RawValue;

pub use consistency_token::{ConsistencyToken, TokenKey, CONSISTENCY_HEADER};
pub use documents::ParsedDocuments;
pub use persisted::TrustedDocuments;
pub use response_cache::ResponseCache;
pub use strategy::{EXECUTOR_HEADER, STRATEGY_HEADER};
pub use subscriptions::{Outcome, SharedOperations};

use self::compiled::Compiling;
use self::consistency_token::WaitForToken;
use self::report::RequestFacts;
use self::response_cache::{cache_allowed, no_cache_requested, CacheKey, Leader, Miss};
use self::strategy::{Execution, Strategy};
use self::subscriptions::{execute_with_cursors, OperationKey};
use crate::api::document::{operation_type, reads_caller, selected_operation};
use crate::api::subscription::ResumeFrom;
use crate::api::{self, GatewaySchema, RequestContext};
use crate::commands::{Commands, Consistency};
use crate::live::{LiveFeed, SlowSubscriber};
use crate::plan::{self, CompiledReads, FirstSight};
use crate::records::{ReadTags, RoundTrips, Tag};
use crate::sources::{DataSource, SourceFactory};
use crate::upstream::Forwarded;

/// What the pipeline answers a transport: a response to render, or a
/// successful one whose `data` was serialized before (a cached answer).
pub enum Answer {
    Response(async_graphql::Response),
    Serialized { data: Arc<RawValue>, extensions: BTreeMap<String, async_graphql::Value> },
}

impl From<async_graphql::Response> for Answer {
    fn from(response: async_graphql::Response) -> Self {
        Answer::Response(response)
    }
}

/// What the transports hand their requests to: the gateway's [`Pipeline`]
/// (a small schema in the transports' own tests).
#[async_trait::async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Executes one request. `headers` are the HTTP request's (bearer token,
    /// `x-query-strategy`, `x-consistency-token`); `peer` is the client: the
    /// socket's peer, or the client a trusted proxy names for it.
    async fn execute(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Answer;

    /// The claims of a bearer token (a WebSocket's, given at `connection_init`).
    async fn verify(&self, token: &str) -> Result<Claims, TokenError>;

    /// Puts the document a request names by hash (a persisted query) into
    /// its query, or says why it cannot run; called before anything else
    /// reads the document.
    fn resolve_document(&self, _request: &mut async_graphql::Request) -> Result<(), ServerError> {
        Ok(())
    }

    /// A subscription's results for one subscriber, who is told through
    /// `slow` when it falls behind.
    fn subscribe(
        &self,
        request: async_graphql::Request,
        caller: &Caller,
        forwarded: &Forwarded,
        slow: SlowSubscriber,
    ) -> BoxStream<'static, Arc<Outcome>>;
}

/// The schema with what every request needs: its limits (checked on every
/// transport), the wait for a consistency token, the commands and the live
/// feed the resolvers use.
pub fn schema(commands: Commands, live: LiveFeed, limiter: QueryLimiter) -> GatewaySchema {
    api::builder()
        .data(live)
        .extension(QueryLimitsExtension::new(limiter))
        .extension(WaitForToken(commands.consistency.clone()))
        // Last: it starts where the resolvers would.
        .extension(FirstSight)
        .data(commands)
        .finish()
}

pub struct Pipeline {
    pub schema: GatewaySchema,
    pub read_model: SourceFactory,
    pub composition: Option<SourceFactory>,
    pub verifier: Arc<JwksVerifier>,
    /// Anonymous read-model answers until the read model changes; `None` when off.
    pub cache: Option<ResponseCache>,
    /// How long a request with a consistency token may wait for the read model.
    pub consistency_timeout: Duration,
    /// Signs and checks consistency tokens (shared by every replica).
    pub token_key: TokenKey,
    pub limiter: QueryLimiter,
    /// The subscriptions running in this process, by operation.
    pub subscriptions: SharedOperations,
    /// Persisted queries, or the only documents that run.
    pub trusted: TrustedDocuments,
    /// Documents parsed before, by their text.
    pub documents: ParsedDocuments,
    /// The compiled executor of read-model queries; `None`: the resolvers answer every one.
    pub compiled: Option<CompiledReads>,
    /// Waits for the writes a consistency token names (when the compiled executor answers).
    pub consistency: Consistency,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Answer {
    Response::from_errors(vec![annotate::request_error(code, message)]).into()
}

/// Where a cacheable request stands: its key, and the read model's
/// generation its answer is computed from.
pub(super) struct Cacheable {
    key: CacheKey,
    generation: u64,
    /// Hands the answer to the requests that missed it meanwhile.
    leader: Leader,
}

impl Cacheable {
    /// Keeps `data` and hands it to the requests waiting for it.
    pub(super) fn put(self, cache: &ResponseCache, read: Vec<Tag>, data: Arc<RawValue>) {
        cache.put(self.key, self.generation, read, data.clone());
        self.leader.finish(data);
    }
}

impl Pipeline {
    /// Runs a request, noting in `facts` what the report needs to know.
    async fn run(
        &self,
        mut request: async_graphql::Request,
        headers: &HeaderMap,
        peer: SocketAddr,
        facts: &mut RequestFacts,
    ) -> Answer {
        let strategy = Strategy::of(headers);
        facts.strategy = strategy.label();
        let execution = Execution::of(headers);
        if let Execution::Unknown(other) = &execution {
            return refuse(ErrorCode::BadUserInput, format!("unknown {EXECUTOR_HEADER} {other:?}: use compiled or resolvers"));
        }
        // Parsed once per text, measured once per request, in time bounded by
        // the document's size; the schema's extension trusts this measure.
        let measured = self.documents.parse(&self.limiter, &request.query).and_then(|document| {
            Ok((self.limiter.measure(&document, request.operation_name.as_deref(), &request.variables)?, document))
        });
        let (cost, document) = match measured {
            Ok((measured, document)) => {
                request = request.data(Checked(measured));
                (measured.cost, document)
            }
            Err(refusal) => return Response::from_errors(vec![refusal.into_server_error()]).into(),
        };
        let operation_name = request.operation_name.clone();
        facts.operation =
            selected_operation(&document, operation_name.as_deref()).map(|(name, ty)| (name.map(str::to_owned), ty));
        let mut cacheable = None;
        // Only queries are cached.
        let query = operation_type(&document, operation_name.as_deref()) == Some(OperationType::Query);
        let reads_caller = reads_caller(&document);
        // The resolvers asked for by name answer themselves, not from the cache.
        if let Some(cache) = self.cache.as_ref().filter(|_| {
            query && strategy == Strategy::ReadModel && execution == Execution::Compiled && cache_allowed(headers, reads_caller)
        }) {
            let key = CacheKey::new(&request.query, request.operation_name.as_deref(), &request.variables);
            let fresh = no_cache_requested(headers);
            if !fresh {
                if let Some(data) = cache.get(&key) {
                    metrics::counter!("agora_gateway_response_cache_hits_total").increment(1);
                    return Answer::Serialized { data, extensions: annotate::extensions(cost, "read-model", 0, 0, Some("hit")) };
                }
            }
            if let Some(generation) = cache.generation() {
                // A fresh answer asked for is computed, not waited for.
                let miss = if fresh { Miss::Lead(cache.lead(&key, generation)) } else { cache.miss(&key, generation) };
                match miss {
                    Miss::Follow(follower) => {
                        if let Some(data) = follower.answer().await {
                            metrics::counter!("agora_gateway_response_cache_hits_total").increment(1);
                            let extensions = annotate::extensions(cost, "read-model", 0, 0, Some("hit"));
                            return Answer::Serialized { data, extensions };
                        }
                        // The answer was not to be shared: computed here.
                    }
                    Miss::Lead(leader) => cacheable = Some(Cacheable { key, generation, leader }),
                }
            }
            // Not answered from the cache: not there, or a fresh answer asked for.
            metrics::counter!("agora_gateway_response_cache_misses_total").increment(1);
        }
        let forwarded = Forwarded {
            authorization: headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).map(str::to_owned),
            client_address: Some(peer.ip()),
            traceparent: TraceParent::from_headers(headers).as_deref().map(str::to_owned),
            idempotency_key: headers
                .get(agora_platform::idempotency::HEADER)
                .map(|value| value.to_str().unwrap_or_default().to_owned()),
        };
        let calls = Arc::new(RoundTrips::default());
        let statements = Arc::new(RoundTrips::default());
        let read = Arc::new(ReadTags::default());
        let read_model_query = query && strategy == Strategy::ReadModel;
        let source = match self.source(strategy, &forwarded, &calls, &statements, &read) {
            Ok(source) => source,
            Err(refusal) => return refuse(ErrorCode::BadUserInput, refusal),
        };
        let pending = match consistency_token::pending(headers, &self.token_key, self.consistency_timeout) {
            Ok(pending) => pending,
            Err(_) => return refuse(ErrorCode::BadUserInput, format!("{CONSISTENCY_HEADER} is not a token this API issued")),
        };
        let verification = match tokens::bearer(headers) {
            Some(token) => Some(self.verifier.verify(token).await),
            None => None,
        };
        let caller = Caller::from_verification(verification);
        let compiled = self.compiled.as_ref().filter(|_| read_model_query && execution == Execution::Compiled);
        let mut first_sight = None;
        if let Some(reads) = compiled {
            let caller_id = caller.claims().map(|claims| claims.sub);
            match self.compiled(reads, &request, caller_id, pending.as_ref(), &statements, &read).await {
                Compiling::Answered(Ok((data, extensions))) => {
                    return self.compiled_answer(data, extensions, cost, cacheable, &statements, &read)
                }
                Compiling::Answered(Err(refusal)) => return Response::from_errors(vec![refusal]).into(),
                Compiling::FirstSight(seen) => {
                    request = request.data(seen.clone());
                    first_sight = Some(seen);
                }
                Compiling::Resolvers => {}
            }
        }
        let strategy_name = source.strategy();
        let context = RequestContext::new(caller, forwarded, source, calls.clone());
        let commands = context.commands.clone();
        let mut request = match pending {
            Some(pending) => request.data(pending),
            None => request,
        };
        request.set_parsed_query(ExecutableDocument::clone(&document));
        let mut response = self.schema.execute(request.data(context)).await;
        if let Some(data) = first_sight.and_then(|seen| seen.take_answer()) {
            let extensions = std::mem::take(&mut response.extensions);
            return self.compiled_answer(data, extensions, cost, cacheable, &statements, &read);
        }
        annotate::add_missing_codes(&mut response);
        let executor = query.then_some("resolvers");
        if let (Some(cache), Some(cacheable)) = (&self.cache, cacheable) {
            if response.errors.is_empty() {
                // Serialized once, for the cache and for this answer.
                if let Some(data) = cache.serialize(&response.data) {
                    cacheable.put(cache, read.take(), data.clone());
                    let mut extensions = annotate::extensions(cost, strategy_name, calls.get(), statements.get(), Some("miss"));
                    annotate::executor(&mut extensions, executor);
                    return Answer::Serialized { data, extensions };
                }
            }
        }
        let mut extensions = annotate::extensions(cost, strategy_name, calls.get(), statements.get(), None);
        annotate::executor(&mut extensions, executor);
        response.extensions.extend(extensions);
        consistency_token::annotate(&mut response, &commands, &self.token_key);
        response.into()
    }

    /// Compiles the plans of `documents` (the trusted documents listed)
    /// ahead of their first requests.
    pub async fn prepare(&self, documents: &[Arc<str>]) {
        if let Some(reads) = &self.compiled {
            plan::prepare(&self.schema, reads, documents).await;
        }
    }

    /// The request's data source for `strategy`; the read model counts its
    /// statements, composition its calls. An error says why there is none.
    fn source(
        &self,
        strategy: Strategy,
        forwarded: &Forwarded,
        calls: &Arc<RoundTrips>,
        statements: &Arc<RoundTrips>,
        read: &Arc<ReadTags>,
    ) -> Result<Arc<dyn DataSource>, String> {
        match strategy {
            Strategy::ReadModel => Ok((self.read_model)(forwarded.clone(), statements.clone(), read.clone())),
            Strategy::Composition => match &self.composition {
                Some(factory) => Ok(factory(forwarded.clone(), calls.clone(), read.clone())),
                None => Err("the composition strategy is not available".into()),
            },
            Strategy::Unknown(other) => Err(format!("unknown {STRATEGY_HEADER} {other:?}: use read-model or composition")),
        }
    }

    /// The state a subscription resolves with: over the read model (the
    /// strategies are for queries); its round trips are not reported.
    fn subscription_context(&self, caller: Caller, forwarded: Forwarded) -> RequestContext {
        let source = (self.read_model)(forwarded.clone(), Arc::default(), Arc::default());
        RequestContext::new(caller, forwarded, source, Arc::default())
    }
}

#[async_trait::async_trait]
impl Executor for Pipeline {
    async fn execute(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Answer {
        let started = Instant::now();
        let mut facts = RequestFacts::default();
        let answer = self.run(request, headers, peer, &mut facts).await;
        let trace = TraceParent::current().or(&TraceParent::from_headers(headers));
        report::report(&facts, &answer, started.elapsed(), &trace);
        answer
    }

    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verifier.verify(token).await
    }

    fn resolve_document(&self, request: &mut async_graphql::Request) -> Result<(), ServerError> {
        self.trusted.resolve(request)
    }

    fn subscribe(
        &self,
        request: async_graphql::Request,
        caller: &Caller,
        forwarded: &Forwarded,
        slow: SlowSubscriber,
    ) -> BoxStream<'static, Arc<Outcome>> {
        let context = || self.subscription_context(caller.clone(), forwarded.clone());
        match resume::requested(&request, &self.token_key) {
            Some(Err(refused)) => return futures::stream::iter([Arc::new(Outcome::Failed(vec![refused]))]).boxed(),
            // A resumed subscription has a past of its own: it is not shared.
            Some(Ok(from)) => {
                let request = request.data(context()).data(slow).data(ResumeFrom(from));
                return execute_with_cursors(&self.schema, request, self.token_key.clone())
                    .map(|response| Arc::new(Outcome::of(&response)))
                    .boxed();
            }
            None => {}
        }
        match OperationKey::of_subscription(&request) {
            // Shared with the operation's other subscribers, as an anonymous caller.
            Some(key) => self.subscriptions.join(
                &self.schema,
                &self.limiter,
                key,
                || self.subscription_context(Caller::Anonymous, Forwarded::default()),
                slow,
            ),
            None => execute_with_cursors(&self.schema, request.data(context()).data(slow), self.token_key.clone())
                .map(|response| Arc::new(Outcome::of(&response)))
                .boxed(),
        }
    }
}
