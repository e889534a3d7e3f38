//! The compiled executor's part in the pipeline: a read-model query with a
//! plan is answered by it, after the wait for a consistency token (as the
//! schema would wait); a document not seen before goes to the schema with a
//! [`FirstSightRequest`], which compiles it once validated; anything else
//! goes to the resolvers.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::ServerError;
use serde_json::value::RawValue;

use super::consistency_token::{self, PendingConsistency};
use super::{annotate, Answer, Cacheable, Pipeline};
use crate::plan::{CompiledReads, FirstSightRequest, Planned};
use crate::records::{ReadTags, RoundTrips};

/// What the compiled executor made of a read-model query.
pub(super) enum Compiling {
    /// Its `data` and extensions, or the error of its consistency wait.
    Answered(Result<(Arc<RawValue>, BTreeMap<String, async_graphql::Value>), ServerError>),
    /// Not seen before: the schema validates and compiles it.
    FirstSight(Arc<FirstSightRequest>),
    Resolvers,
}

impl Pipeline {
    /// The compiled executor's part in a read-model query: it answers when
    /// the document has a plan and the plan takes the request (after the
    /// wait for a consistency token, as the schema would wait); a document
    /// not seen before goes to the schema with a [`FirstSightRequest`],
    /// which compiles it once validated; anything else goes to the resolvers.
    pub(super) async fn compiled(
        &self,
        reads: &CompiledReads,
        request: &async_graphql::Request,
        caller: Option<uuid::Uuid>,
        pending: Option<&PendingConsistency>,
        statements: &Arc<RoundTrips>,
        read: &Arc<ReadTags>,
    ) -> Compiling {
        let operation_name = request.operation_name.as_deref();
        let Some(planned) = reads.lookup(&request.query, operation_name) else {
            return Compiling::FirstSight(Arc::new(FirstSightRequest {
                reads: reads.clone(),
                query: request.query.clone(),
                operation_name: operation_name.map(str::to_owned),
                caller,
                statements: statements.clone(),
                tags: read.clone(),
                run: true,
                answer: Default::default(),
            }));
        };
        let Planned::Ready(template) = &*planned else { return Compiling::Resolvers };
        // Bound first: a request the resolvers must answer waits only once, in the schema.
        let Some(ready) = reads.bind(template, &request.variables, caller) else { return Compiling::Resolvers };
        let mut extensions = BTreeMap::new();
        if let Some(pending) = pending {
            match consistency_token::wait(&self.consistency, pending).await {
                Ok(true) => {}
                Ok(false) => {
                    // The answer may not show those writes yet; the client can retry with the token.
                    extensions.insert("consistent".to_owned(), async_graphql::Value::from(false));
                }
                Err(refusal) => return Compiling::Answered(Err(refusal)),
            }
        }
        match reads.run(ready, statements, read).await {
            Some(data) => Compiling::Answered(Ok((data, extensions))),
            None => Compiling::Resolvers,
        }
    }

    /// The answer of the compiled executor: `data`, kept in the response
    /// cache when the request may be, and the extensions every answer carries.
    pub(super) fn compiled_answer(
        &self,
        data: Arc<RawValue>,
        mut extensions: BTreeMap<String, async_graphql::Value>,
        cost: u64,
        cacheable: Option<Cacheable>,
        statements: &RoundTrips,
        read: &ReadTags,
    ) -> Answer {
        let mut cache = None;
        if let (Some(response_cache), Some(cacheable)) = (&self.cache, cacheable) {
            cacheable.put(response_cache, read.take(), data.clone());
            cache = Some("miss");
        }
        extensions.extend(annotate::extensions(cost, "read-model", 0, statements.get(), cache));
        annotate::executor(&mut extensions, Some("compiled"));
        Answer::Serialized { data, extensions }
    }
}
