//! The gateway's integration tests: real PostgreSQL, the real services,
//! an embedded Kafka-protocol broker, real HTTP.

mod backfill;
mod browser;
mod compiled;
mod composition;
mod consistency;
mod dead_letters;
mod equivalence;
mod events;
mod helpers;
mod hostile_clients;
mod hostile_documents;
mod http;
mod idempotency;
mod limits;
mod live_feed;
mod node;
mod outage;
mod persisted;
mod projector;
mod readiness;
mod rebuild;
mod response_cache;
mod restart;
mod resume;
mod schema_export;
mod story;
mod subscriptions;
mod trace_context;
mod websocket;
