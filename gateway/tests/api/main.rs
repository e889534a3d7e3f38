//! The gateway's integration tests: real PostgreSQL, the real services,
//! an embedded Kafka-protocol broker, real HTTP.

mod consistency;
mod helpers;
mod limits;
mod projector;
mod schema_export;
mod story;
