//! post-service's integration tests: one binary that drives the real
//! service (and a real auth-service beside it) over HTTP, on a fresh
//! PostgreSQL database per test and an embedded Kafka broker per test,
//! started by agora-testkit.

mod federation;
mod helpers;
mod hostile;
mod hostile_documents;
mod idempotency;
mod outage;
mod pagination;
mod points;
mod posts;
mod tokens;
