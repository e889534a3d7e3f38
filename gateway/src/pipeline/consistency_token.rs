//! Where a request waits for its consistency token: after the document was
//! parsed and validated (an invalid request is refused at once, without a
//! wait or a query), before any resolver runs, and no longer than the
//! deadline set when the request arrived, so the wait counts against the
//! request's time, not on top of it.
//!
//! The executor puts a [`PendingConsistency`] in the request's data; the
//! schema's [`WaitForToken`] extension does the waiting.

use std::sync::Arc;

use agora_platform::graphql::{ErrorCode, WriteReceipt};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Response, ServerError, Value};
use tokio::time::Instant;

use crate::consistency::Consistency;

/// The writes a request must see, and until when it may wait for them.
#[derive(Debug, Clone)]
pub struct PendingConsistency {
    pub receipts: Vec<WriteReceipt>,
    pub deadline: Instant,
}

/// The schema extension that waits; see the module.
pub struct WaitForToken(pub Consistency);

impl ExtensionFactory for WaitForToken {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(WaitForTokenExtension(self.0.clone()))
    }
}

struct WaitForTokenExtension(Consistency);

#[async_trait::async_trait]
impl Extension for WaitForTokenExtension {
    async fn execute(&self, ctx: &ExtensionContext<'_>, operation_name: Option<&str>, next: NextExecute<'_>) -> Response {
        let Some(pending) = ctx.data_opt::<PendingConsistency>() else {
            return next.run(ctx, operation_name).await;
        };
        let remaining = pending.deadline.saturating_duration_since(Instant::now());
        let reached = match self.0.wait(&pending.receipts, remaining).await {
            Ok(reached) => reached,
            Err(error) => {
                tracing::error!(%error, "cannot check the consistency token");
                let (code, message) = if agora_platform::db::is_unavailable(&error) {
                    (ErrorCode::Unavailable, "the read model cannot be checked for now; retry later")
                } else {
                    (ErrorCode::Internal, "internal error")
                };
                let mut refusal = ServerError::new(message, None);
                let mut extensions = async_graphql::ErrorExtensionValues::default();
                extensions.set("code", code.as_str());
                refusal.extensions = Some(extensions);
                return Response::from_errors(vec![refusal]);
            }
        };
        let mut response = next.run(ctx, operation_name).await;
        if !reached {
            // The answer may not show those writes yet; the client can retry with the token.
            response.extensions.insert("consistent".into(), Value::from(false));
        }
        response
    }
}
