//! auth-service's integration tests: the real service on port 0, a fresh
//! PostgreSQL database per test and an embedded Kafka broker per test.

mod accounts;
mod health;
mod helpers;
mod hostile;
mod hostile_documents;
mod idempotency;
mod ledger;
mod login;
mod outbox;
mod relay;
mod republish;
mod tokens;
