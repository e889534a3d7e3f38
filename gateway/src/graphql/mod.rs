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

use async_graphql::Schema;

pub use context::{RequestContext, Shared};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type GatewaySchema = Schema<Query, Mutation, Subscription>;

/// Limits on what one query may ask.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
}

pub fn schema(shared: Shared, live: crate::live::LiveFeed, limits: QueryLimits) -> GatewaySchema {
    Schema::build(Query, Mutation, Subscription)
        .data(live)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .extension(crate::consistency_wait::WaitForToken(shared.consistency.clone()))
        .data(shared)
        .finish()
}

/// The schema the gateway serves, as SDL (exported to `schema/gateway.graphql`).
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}
