//! What Agora's integration tests share: the real services started in the
//! test's runtime on port 0, each with a fresh database, around an embedded
//! Kafka-protocol broker; a GraphQL client; a topic reader; and waiting on
//! a condition with a deadline (never a sleep as synchronisation).
//!
//! Whatever a test starts it also ends when dropped, in a safe order:
//! services stop (awaited) before the databases they used are dropped (a
//! failed test keeps them for a look) and before the broker goes. Tests
//! that start services therefore run on a multi-threaded runtime:
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.

mod audit;
mod client;
mod database;
pub mod hostile;
mod proxy;
mod services;
mod topic_reader;

/// The services' configurations, which a test adjusts through the closure
/// it gives [`start_auth_service`], [`start_post_service`] or
/// [`Services::start_with`].
pub use agora_auth_service::Config as AuthConfig;
pub use agora_post_service::Config as PostConfig;
pub use audit::graphql_http_audits;
pub use client::{error_code, get, graphql, graphql_with_headers, graphql_with_status, http_client, wait_until};
pub use database::{base_database_url, TestDatabase};
pub use proxy::TcpProxy;
pub use services::{
    init_logging, register_user, start_auth_service, start_post_service, KeyFile, RunningService, Services, StartedService,
    PASSWORD,
};
pub use topic_reader::{about, publish, publish_event, read_topic, read_topic_until, Publisher, ReceivedEvent, TopicReader};

/// How long a test waits for something asynchronous before it fails.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
