//! GraphQL over HTTP for the gateway, plus the GraphiQL playground and the
//! demo app. The transport knows nothing of the read model or the services:
//! it hands each parsed request to the pipeline's
//! [`Executor`](crate::pipeline::Executor).
//!
//! It follows the GraphQL-over-HTTP spec (checked by `graphql-http`'s server
//! audits, see `gateway/tests/js/audit.mjs`): POST with `application/json`,
//! GET with the parameters in the query string (queries only: a mutation gets
//! 405), responses in `application/graphql-response+json` or
//! `application/json` by `Accept`. Every error the transport itself produces
//! is a GraphQL error body with `extensions.code`.

pub mod app;
mod error;
mod handlers;
pub mod limits;
mod negotiation;
mod params;
pub mod playground;
mod response;
#[cfg(test)]
mod tests;

pub use self::handlers::{get, post};
pub use self::limits::HttpLimits;
