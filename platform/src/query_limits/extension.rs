//! The limits as an async-graphql extension, so that every request a
//! schema runs (HTTP, WebSocket, any transport) is measured before
//! async-graphql parses it again, checks its recursion depth and validates
//! it, and an accepted answer reports its cost in `extensions.cost`.
//!
//! A transport that must refuse earlier (before waiting on something, or
//! before taking a lock) checks the request itself with
//! [`QueryLimiter::check`] and attaches [`Checked`] to it: the extension
//! then trusts that measure instead of taking it again.

use std::any::TypeId;
use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest, NextSubscribe};
use async_graphql::{Request, Response, ServerResult, Value};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{Measured, QueryLimiter};

/// Request data: the request was measured and accepted with this measure.
#[derive(Debug, Clone, Copy)]
pub struct Checked(pub Measured);

/// Registers the limits on a schema: `.extension(QueryLimitsExtension::new(limiter))`.
pub struct QueryLimitsExtension(Arc<QueryLimiter>);

impl QueryLimitsExtension {
    pub fn new(limiter: QueryLimiter) -> Self {
        QueryLimitsExtension(Arc::new(limiter))
    }
}

impl ExtensionFactory for QueryLimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OneRequest { limiter: self.0.clone(), cost: Arc::default() })
    }
}

/// The extension's state for one request.
struct OneRequest {
    limiter: Arc<QueryLimiter>,
    /// Set once the request is measured (by the time its first answer comes).
    cost: Arc<OnceLock<u64>>,
}

fn with_cost(mut response: Response, cost: &OnceLock<u64>) -> Response {
    if let Some(cost) = cost.get() {
        response.extensions.insert("cost".to_owned(), Value::from(*cost));
    }
    response
}

#[async_trait::async_trait]
impl Extension for OneRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_cost(next.run(ctx).await, &self.cost)
    }

    /// Streams (subscriptions, and any operation over WebSocket): each answer.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let cost = self.cost.clone();
        next.run(ctx, stream).map(move |response| with_cost(response, &cost)).boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let checked = request.data.get(&TypeId::of::<Checked>()).and_then(|data| data.downcast_ref::<Checked>()).copied();
        let measured = match checked {
            Some(Checked(measured)) => measured,
            None => self.limiter.check(&mut request).map_err(|refusal| refusal.into_server_error())?,
        };
        let _ = self.cost.set(measured.cost);
        next.run(ctx, request).await
    }
}
