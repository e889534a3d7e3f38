//! The public API's GraphQL schema, the contract of `../shared/api.graphql`:
//! queries resolved from the request's data source, mutations sent as
//! commands, subscriptions fed by the live feed, and helpers about GraphQL
//! documents ([`document`]).
//!
//! Stage: the API schema. Uses `records`, `sources`, `upstream`, `commands`
//! and `live`; the pipeline assembles the schema with its extensions and
//! runs it, the transports never see it.

pub mod context;
pub mod document;
pub mod mutation;
pub mod query;
pub mod response_order;
pub mod subscription;
pub mod types;

use async_graphql::{Schema, SchemaBuilder};

pub use context::{CommandLog, RequestContext};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type GatewaySchema = Schema<Query, Mutation, Subscription>;

/// The schema's types, with the order of their answers' fields
/// ([`response_order`]), before the pipeline's extensions and data.
pub fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query, Mutation, Subscription).extension(response_order::ResponseOrder)
}

/// The schema the gateway serves, as SDL (exported to `schema/gateway.graphql`).
pub fn sdl() -> String {
    builder().finish().sdl()
}
