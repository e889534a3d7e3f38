//! Plumbing that every Agora part needs and that is better shared than
//! copied: the Kafka connection (and the embedded broker for local runs and
//! tests), the at-least-once consumer, the transactional outbox and its
//! relay, typed configuration, database setup, token verification, GraphQL error codes,
//! idempotent commands, client budgets and addresses, health endpoints,
//! telemetry and shutdown.

pub mod budget;
pub mod client_address;
pub mod config;
pub mod consumer;
pub mod db;
pub mod graphql;
pub mod health;
pub mod idempotency;
pub mod kafka;
pub mod outbox;
pub mod pagination;
pub mod query_limits;
pub mod shutdown;
pub mod subgraph;
pub mod telemetry;
pub mod tokens;
