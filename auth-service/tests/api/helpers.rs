//! Starts auth-service the way production does, on port 0 with a fresh
//! database, a fresh signing key and its own embedded Kafka broker, and the
//! tools the tests drive it with (GraphQL calls, topic readers, waits).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use agora_auth_service::{Application, Config};
use agora_platform::kafka::{EmbeddedKafka, KafkaSettings};
use clap::Parser;
use serde_json::{json, Value};
use sqlx::{Connection, PgPool};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a test waits for a condition before it fails.
pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub kafka: EmbeddedKafka,
    pub kafka_settings: KafkaSettings,
    /// The PEM file of the key that signs the app's tokens.
    pub signing_key_file: PathBuf,
    shutdown: CancellationToken,
    // Last: dropped after everything that uses it.
    _database: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_file(&self.signing_key_file);
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app with extra command-line flags (`["--token-ttl-seconds", "5"]`).
pub async fn spawn_app_with(flags: &[&str]) -> TestApp {
    let kafka = EmbeddedKafka::start().expect("the embedded Kafka broker starts");
    let database = TestDatabase::new("agora_auth_test");
    let signing_key_file = write_key_file();
    let mut arguments = vec!["auth-service", "--port", "0", "--database-url", &database.url];
    let key_path = signing_key_file.display().to_string();
    arguments.extend(["--signing-key-file", &key_path]);
    arguments.extend(flags);
    let config = Config::try_parse_from(arguments).expect("valid test flags");
    // The same resolution as `kafka::resolve`, onto the embedded broker.
    let mut kafka_settings = kafka.settings();
    kafka_settings.delivery_timeout = Duration::from_millis(config.kafka.delivery_timeout_ms);
    let application = Application::build(config, kafka_settings.clone()).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let pool = application.pool().clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        kafka,
        kafka_settings,
        signing_key_file,
        shutdown,
        _database: database,
    }
}

/// A database no other test uses, created on first connect and dropped
/// with this value.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub fn new(prefix: &str) -> Self {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let url = agora_platform::db::with_database(&base_database_url(), &name).expect("a valid DATABASE_URL");
        TestDatabase { url, name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!(r#"drop database if exists "{}" with (force)"#, self.name);
        // Drop cannot await, and the test's runtime cannot block on async
        // work: a thread with a runtime of its own does it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&base_database_url()).await?;
                sqlx::query(&statement).execute(&mut connection).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("cannot drop a test database: {error:#}");
        }
    }
}

fn base_database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A new Ed25519 key in a PEM file of its own.
pub fn write_key_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("agora-auth-test-key-{}.pem", Uuid::new_v4().simple()));
    std::fs::write(&path, agora_auth_service::keys::generate_pem().expect("a key")).expect("the key file is written");
    path
}

impl TestApp {
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
        let mut request =
            self.client.post(format!("{}/graphql", self.address)).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the request reaches the app");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, reqwest::StatusCode::OK, "GraphQL answers 200 even with errors: {body}");
        body
    }

    /// Registers a user and returns their token and id.
    pub async fn register(&self, username: &str, password: &str) -> (String, Uuid) {
        let response = self.graphql(REGISTER, json!({ "input": { "username": username, "password": password } }), None).await;
        assert!(response["errors"].is_null(), "register failed: {response}");
        let payload = &response["data"]["register"];
        let id = payload["user"]["id"].as_str().expect("a user id").parse().expect("a UUID");
        (payload["token"].as_str().expect("a token").to_owned(), id)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("the request reaches the app")
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

/// The code of the first error of a GraphQL response.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("expected an error: {response}"))
}

/// Waits until `condition` holds, checking again every 50 ms; fails the
/// test at the deadline.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
