//! The gateway: Agora's public GraphQL API.

pub mod http;
