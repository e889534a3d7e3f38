//! The gateway's GraphQL schema: the public contract of
//! `../shared/api.graphql`, resolved from a per-request data source.

pub mod composition;
pub mod context;
pub mod mutation;
pub mod query;
pub mod read_model_source;
pub mod source;
pub mod subscription;
pub mod types;

use agora_platform::query_limits::{QueryLimiter, QueryLimitsExtension};
use async_graphql::Schema;

pub use context::{RequestContext, Shared};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type GatewaySchema = Schema<Query, Mutation, Subscription>;

/// The schema, with what one query may ask checked on every transport
/// (the limiter is also the schema's data, for transports that check first).
pub fn schema(shared: Shared, live: crate::live::LiveFeed, limiter: QueryLimiter) -> GatewaySchema {
    Schema::build(Query, Mutation, Subscription)
        .data(live)
        .extension(QueryLimitsExtension::new(limiter.clone()))
        .data(limiter)
        .extension(crate::consistency_wait::WaitForToken(shared.consistency.clone()))
        .data(shared)
        .finish()
}

/// The schema the gateway serves, as SDL (exported to `schema/gateway.graphql`).
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}
