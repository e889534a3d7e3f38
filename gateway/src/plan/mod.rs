//! Compiled execution of read-model queries: a validated query document is
//! read once into a [`template`] (cached by document and operation name),
//! bound per request to its variables and caller ([`bind`]), run as one SQL
//! statement that gathers the whole answer ([`sql`]), and written straight
//! into the response's bytes ([`write`]). No resolver, no future per field,
//! no `Value` tree: the page of posts with their authors and the deep query
//! are one statement each.
//!
//! Why not async-graphql's executor: it resolves every field as a boxed
//! future and inserts it into a map (about 180 per page of posts), which
//! made the uncached read model a fifth of its SQL's speed (see
//! ops/bench/ANALYSIS.md). The library has no compiled mode, so this one is
//! the gateway's own, kept to the read model's types.
//!
//! The schema still validates every document the first time it is seen
//! ([`FirstSight`] compiles it from inside the schema's execution, after
//! validation and the consistency wait); afterwards its template answers at
//! once. Whatever the compiler does not cover (introspection, mutations)
//! and whatever a request's values make the resolvers refuse (errors, with
//! their codes and paths) falls back to the resolvers, which give the same
//! bytes for everything the plan answers (tests/api/equivalence.rs).
//!
//! Stage: between the API schema and the pipeline. Uses `records` and
//! `api::document`; the pipeline uses it.

pub mod bind;
pub mod sql;
pub mod template;
pub mod write;

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerResult, Variables};
use moka::sync::Cache;
use serde_json::value::RawValue;
use sqlx::PgPool;
use uuid::Uuid;

use self::sql::Param;
use self::template::Template;
use crate::api::document::operation_type;
use crate::records::{ReadTags, RoundTrips, Tag};
use async_graphql::parser::types::OperationType;

/// What a document's operation compiles to.
#[derive(Debug)]
pub enum Planned {
    Ready(Template),
    /// The resolvers answer it (introspection, a mutation, …).
    Unsupported,
}

/// A document and the operation a request names in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PlanKey(Arc<str>);

impl PlanKey {
    fn new(query: &str, operation_name: Option<&str>) -> Self {
        let operation_name = operation_name.unwrap_or_default();
        PlanKey(format!("{}\n{operation_name}\n{query}", operation_name.len()).into())
    }
}

/// The compiled executor of the read model: the pool and the templates of
/// the documents seen (bounded in bytes).
#[derive(Clone)]
pub struct CompiledReads {
    pool: PgPool,
    plans: Cache<PlanKey, Arc<Planned>>,
}

impl CompiledReads {
    pub fn new(pool: PgPool, max_bytes: u64) -> Self {
        let plans = Cache::builder()
            .max_capacity(max_bytes)
            // The document's text, and its template by the fields it holds.
            .weigher(|key: &PlanKey, planned: &Arc<Planned>| {
                let occurrences = match &**planned {
                    Planned::Ready(template) => template.occurrences,
                    Planned::Unsupported => 0,
                };
                u32::try_from(key.0.len() + 128 * occurrences + 256).unwrap_or(u32::MAX)
            })
            .build();
        CompiledReads { pool, plans }
    }

    /// The plan of a document seen (and validated) before.
    pub fn lookup(&self, query: &str, operation_name: Option<&str>) -> Option<Arc<Planned>> {
        self.plans.get(&PlanKey::new(query, operation_name))
    }

    /// Compiles a document the schema validated, and keeps its plan.
    pub fn prepare(&self, query: &str, operation_name: Option<&str>, document: &ExecutableDocument) -> Arc<Planned> {
        let planned = Arc::new(match template::compile(document, operation_name) {
            Ok(template) => Planned::Ready(template),
            Err(template::Unsupported) => Planned::Unsupported,
        });
        self.plans.insert(PlanKey::new(query, operation_name), planned.clone());
        metrics::counter!("agora_gateway_compiled_plans_total", "outcome" => match *planned {
            Planned::Ready(_) => "compiled",
            Planned::Unsupported => "unsupported",
        })
        .increment(1);
        planned
    }

    /// `template` bound to a request's `variables` and `caller` (the user id
    /// of its valid token), with its statement; `None` when the resolvers
    /// must answer it (a value they refuse).
    pub fn bind(&self, template: &Template, variables: &Variables, caller: Option<Uuid>) -> Option<Ready> {
        let bound = bind::bind(template, variables, caller).ok()?;
        let statement = sql::statement(&bound).ok()?;
        Some(Ready { bound, statement })
    }

    /// The `data` of a bound request, its statement counted in `statements`
    /// and what it read recorded in `tags`; `None` when the resolvers must
    /// answer it (the statement failed: they meet the failure too, and
    /// report it with its code and path).
    pub async fn run(&self, ready: Ready, statements: &RoundTrips, tags: &ReadTags) -> Option<Arc<RawValue>> {
        let Ready { bound, statement } = ready;
        let roots: Vec<serde_json::Value> = match statement {
            None => vec![serde_json::Value::Null; bound.slots],
            Some(statement) => {
                statements.increment();
                let mut query = sqlx::query_scalar::<_, String>(&statement.text);
                for param in statement.params {
                    query = match param {
                        Param::Uuid(id) => query.bind(id),
                        Param::Text(text) => query.bind(text),
                        Param::Time(at) => query.bind(at),
                    };
                }
                let text = match query.fetch_one(&self.pool).await {
                    Ok(text) => text,
                    Err(error) => {
                        tracing::warn!(%error, "the compiled statement failed; the resolvers answer");
                        return None;
                    }
                };
                serde_json::from_str(&text).ok()?
            }
        };
        let mut read: Vec<Tag> = Vec::new();
        let data = match write::data(&bound, &roots, &mut read) {
            Ok(data) => data,
            Err(error) => {
                tracing::error!(%error, "the resolvers answer");
                return None;
            }
        };
        tags.record(read);
        RawValue::from_string(data).ok().map(Arc::from)
    }
}

/// A request bound to its plan, ready to run.
pub struct Ready {
    bound: bind::Bound,
    /// `None` when nothing is read from the read model.
    statement: Option<sql::Statement>,
}

/// Put in the data of a read-model query whose document has no plan yet:
/// [`FirstSight`] compiles it once the schema validated it, and answers
/// with the plan, leaving the `data` here.
pub struct FirstSightRequest {
    pub reads: CompiledReads,
    /// The document and operation name as the request gave them (the plan's key).
    pub query: String,
    pub operation_name: Option<String>,
    pub caller: Option<Uuid>,
    pub statements: Arc<RoundTrips>,
    pub tags: Arc<ReadTags>,
    /// `false`: only compile (a trusted document prepared ahead), answer nothing.
    pub run: bool,
    pub answer: Mutex<Option<Arc<RawValue>>>,
}

impl FirstSightRequest {
    /// The `data` the plan answered with, if it did.
    pub fn take_answer(&self) -> Option<Arc<RawValue>> {
        self.answer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

/// Compiles the plans of the query operations of `documents` that have
/// none yet, each validated by `schema` first (which must carry
/// [`FirstSight`]): a trusted document's first request is not its first sight.
pub async fn prepare(schema: &impl async_graphql::Executor, reads: &CompiledReads, documents: &[Arc<str>]) {
    for document in documents {
        let Ok(parsed) = async_graphql::parser::parse_query(document) else { continue };
        let named: Vec<Option<String>> = parsed.operations.iter().map(|(name, _)| name.map(|name| name.to_string())).collect();
        // A lone operation is also run without its name.
        let unnamed = (named.len() == 1).then_some(None);
        for name in named.iter().cloned().chain(unnamed) {
            if operation_type(&parsed, name.as_deref()) != Some(OperationType::Query)
                || reads.lookup(document, name.as_deref()).is_some()
            {
                continue;
            }
            let seen = Arc::new(FirstSightRequest {
                reads: reads.clone(),
                query: document.to_string(),
                operation_name: name.clone(),
                caller: None,
                statements: Arc::default(),
                tags: Arc::default(),
                run: false,
                answer: Default::default(),
            });
            let mut request = async_graphql::Request::new(document.to_string()).data(seen);
            if let Some(name) = name {
                request = request.operation_name(name);
            }
            schema.execute(request).await;
        }
    }
}

/// The schema extension that compiles a document the first time it runs:
/// last of the extensions, so it runs after validation and the wait for a
/// consistency token, where the resolvers would start.
pub struct FirstSight;

impl ExtensionFactory for FirstSight {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FirstSightExtension::default())
    }
}

#[derive(Default)]
struct FirstSightExtension {
    document: Mutex<Option<(ExecutableDocument, Variables)>>,
}

#[async_trait::async_trait]
impl Extension for FirstSightExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if ctx.data_opt::<Arc<FirstSightRequest>>().is_some() {
            *self.document.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((document.clone(), variables.clone()));
        }
        Ok(document)
    }

    async fn execute(&self, ctx: &ExtensionContext<'_>, operation_name: Option<&str>, next: NextExecute<'_>) -> Response {
        let seen = self.document.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let (Some(request), Some((document, variables))) = (ctx.data_opt::<Arc<FirstSightRequest>>(), seen) else {
            return next.run(ctx, operation_name).await;
        };
        let planned = request.reads.prepare(&request.query, request.operation_name.as_deref(), &document);
        if !request.run {
            return Response::default();
        }
        if let Some(ready) = match &*planned {
            Planned::Ready(template) => request.reads.bind(template, &variables, request.caller),
            Planned::Unsupported => None,
        } {
            if let Some(data) = request.reads.run(ready, &request.statements, &request.tags).await {
                *request.answer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(data);
                return Response::default();
            }
        }
        next.run(ctx, operation_name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn documents_prepared_ahead_are_compiled_once_validated_and_only_their_queries() {
        let schema = crate::api::builder().extension(FirstSight).finish();
        // Compiling never reaches the database.
        let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://127.0.0.1:1/none").expect("a lazy pool");
        let reads = CompiledReads::new(pool, 1024 * 1024);
        let feed = "query Feed { posts { nodes { title } } } query Top { leaderboard { id } }";
        let lone = "query Lone($id: ID!) { user(id: $id) { username } }";
        let write = "mutation { renameUser(displayName: \"x\") { id } }";
        let invalid = "{ posts { nodes { nope } } }";
        let introspection = "{ __schema { queryType { name } } }";
        let documents: Vec<Arc<str>> = [feed, lone, write, invalid, introspection].into_iter().map(Arc::from).collect();
        prepare(&schema, &reads, &documents).await;
        let ready = |query: &str, name: Option<&str>| matches!(reads.lookup(query, name).as_deref(), Some(Planned::Ready(_)));
        assert!(ready(feed, Some("Feed")) && ready(feed, Some("Top")));
        assert!(reads.lookup(feed, None).is_none(), "two operations need a name");
        assert!(ready(lone, Some("Lone")) && ready(lone, None));
        assert!(reads.lookup(write, None).is_none());
        assert!(reads.lookup(invalid, None).is_none(), "a document that does not validate is not compiled");
        assert!(matches!(reads.lookup(introspection, None).as_deref(), Some(Planned::Unsupported)));
    }
}
