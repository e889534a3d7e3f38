//! auth-service: owns users, credentials, access tokens and the points
//! ledger. It serves a Federation v2 subgraph that owns `User`, signs
//! Ed25519 tokens (public keys at `/.well-known/jwks.json`), and publishes
//! every change to Kafka through its outbox.

pub mod backfill;
pub mod config;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod keys;
pub mod ledger;
pub mod rate_limit;
pub mod startup;
pub mod users;

pub use config::Config;
pub use startup::Application;
