//! Plumbing that every Agora part needs and that is better shared than
//! copied: the Kafka connection (and the embedded broker for local runs and
//! tests), the at-least-once consumer, the transactional outbox and its
//! relay, typed configuration, database setup, token verification, the
//! GraphQL side of the contract (error codes, input errors, paging, the
//! collection of write receipts), trace context, idempotent commands,
//! client budgets and addresses, health endpoints, telemetry and shutdown.

pub mod backfill;
pub mod budget;
pub mod client_address;
pub mod config;
pub mod consumer;
pub mod db;
pub mod errors;
pub mod health;
pub mod idempotency;
pub mod input;
pub mod kafka;
pub mod outbox;
pub mod pagination;
pub mod query_limits;
pub mod receipts;
pub mod shutdown;
pub mod subgraph;
pub mod telemetry;
pub mod tokens;
pub mod trace_context;
