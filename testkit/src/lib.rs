//! What Agora's integration tests share: the real services started in the
//! test's runtime on port 0, each with a fresh database, around an embedded
//! Kafka-protocol broker; a GraphQL client; a topic reader; and waiting on
//! a condition with a deadline (never a sleep as synchronisation).

mod audit;
mod client;
mod services;
mod topic_reader;

pub use audit::graphql_http_audits;
pub use client::{error_code, graphql, graphql_with_headers, http_client, wait_until};
pub use services::{fresh_database_url, init_logging, KeyFile, RunningService, Services, PASSWORD};
pub use topic_reader::{publish, publish_event, Publisher, ReceivedEvent, TopicReader};

/// How long a test waits for something asynchronous before it fails.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
