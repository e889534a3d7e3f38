//! post-service: owns posts. It serves a Federation v2 subgraph that owns
//! `Post` and contributes `User.posts` / `User.postCount`, accepts posts
//! from callers whose token auth-service signed (checked against its JWKS),
//! and publishes every post to Kafka through its outbox.

pub mod backfill;
pub mod config;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod posts;
pub mod rate_limit;
pub mod startup;

pub use config::Config;
pub use startup::Application;
