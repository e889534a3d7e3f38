//! Starts auth-service the way production does, on port 0 with a fresh
//! database, a fresh signing key and its own embedded Kafka broker (all
//! from agora-testkit), and the calls the tests drive it with.
//!
//! Dropping the app stops the service and waits for it, then drops its
//! database and the broker, which needs
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.

use agora_platform::kafka::{EmbeddedKafka, KafkaSettings};
use agora_testkit::{
    graphql_with_status, init_logging, register_user, start_auth_service, KeyFile, RunningService, TestDatabase,
};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub use agora_testkit::{about, error_code, read_topic_until, wait_until, DEADLINE};

pub struct TestApp {
    // Fields drop in this order: the service stops before its database and
    // the broker go.
    pub service: RunningService,
    pub pool: PgPool,
    /// The key that signs the app's tokens.
    pub signing_key: KeyFile,
    _database: TestDatabase,
    pub kafka_settings: KafkaSettings,
    pub kafka: EmbeddedKafka,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with more settings than the tests' defaults
/// (`|config| config.token_ttl = Duration::from_secs(5)`).
pub async fn spawn_app_with(configure: impl FnOnce(&mut agora_auth_service::Config)) -> TestApp {
    init_logging();
    let kafka = EmbeddedKafka::start().expect("the embedded Kafka broker starts");
    let database = TestDatabase::new("agora_auth_test");
    let signing_key = KeyFile::generate();
    let kafka_settings = kafka.settings();
    let app = start_auth_service(&kafka_settings, 0, database.url(), &signing_key, &[], configure).await;
    TestApp { service: app.service, pool: app.pool, signing_key, _database: database, kafka_settings, kafka }
}

impl TestApp {
    pub fn port(&self) -> u16 {
        self.service.port
    }

    /// Posts a GraphQL request; the transport answers 200 even for errors.
    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        self.graphql_with_headers(query, variables, token, &[]).await
    }

    pub async fn graphql_with_headers(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Value {
        let mut all: Vec<(&str, String)> = headers.iter().map(|(name, value)| (*name, value.to_string())).collect();
        all.extend(token.map(|token| ("authorization", format!("Bearer {token}"))));
        let (status, body) = graphql_with_status(self.port(), query, variables, &all).await;
        assert_eq!(status, reqwest::StatusCode::OK, "GraphQL answers 200 even with errors: {body}");
        body
    }

    /// Registers a user and returns their token and id.
    pub async fn register(&self, username: &str, password: &str) -> (String, Uuid) {
        register_user(self.port(), username, password).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        agora_testkit::get(self.port(), path).await
    }

    /// Counts the rows of a table (a name the test chose, never user input).
    pub async fn count_rows(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&self.pool).await.expect("counting rows")
    }
}

pub const REGISTER: &str = "mutation($input: RegisterInput!) {
    register(input: $input) { token user { id username displayName points } } }";
pub const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token user { id username } } }";
pub const RENAME: &str = "mutation($name: String!) { renameUser(displayName: $name) { id displayName } }";
pub const ME: &str = "{ me { id username displayName } }";
