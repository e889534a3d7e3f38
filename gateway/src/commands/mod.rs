//! Commands: a mutation becomes a command sent to the service that owns the
//! data (over [`crate::upstream`]), and the gateway then waits, bounded,
//! until its read model shows what the command wrote (read-your-writes,
//! [`consistency`]).
//!
//! Stage: command -> service -> outbox, and back through the read model.
//! Uses `upstream` and `records`; nothing of GraphQL or the transports.

pub mod consistency;

use std::sync::Arc;
use std::time::Duration;

pub use consistency::{Consistency, ProjectionClock};

use crate::records::RoundTrips;
use crate::upstream::{Forwarded, Service, ServiceAnswer, Upstream, UpstreamError};

/// What the mutations need, shared by every request: the services and the
/// read model's consistency.
pub struct Commands {
    pub upstream: Arc<Upstream>,
    pub consistency: Consistency,
    /// How long a command waits for the read model to apply its writes.
    pub consistency_timeout: Duration,
}

/// A command the service committed: its answer, and whether the read model
/// showed its writes within the wait.
#[derive(Debug)]
pub struct Committed {
    pub answer: ServiceAnswer,
    pub visible: bool,
}

impl Commands {
    /// Sends a command to `service` (with its own idempotency key, if it has
    /// one) and waits for the read model. Once the service answered, the
    /// command has happened: a wait that fails only leaves it not visible.
    pub async fn send(
        &self,
        service: Service,
        query: &str,
        variables: serde_json::Value,
        forwarded: &Forwarded,
        calls: &RoundTrips,
        idempotency_key: Option<&str>,
    ) -> Result<Committed, UpstreamError> {
        let answer = self.upstream.call(service, query, variables, forwarded, calls, idempotency_key).await?;
        let visible = match self.consistency.wait(&answer.writes, self.consistency_timeout).await {
            Ok(visible) => visible,
            Err(error) => {
                tracing::warn!(%error, "the command was applied but the read model cannot be checked");
                false
            }
        };
        Ok(Committed { answer, visible })
    }
}
