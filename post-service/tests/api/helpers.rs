//! Starts the system under test: an embedded Kafka broker, a real
//! auth-service (which signs tokens and runs the points ledger) and
//! post-service, each on port 0 with a fresh database; and the small
//! clients the tests talk to them with.

use std::future::Future;
use std::time::{Duration, Instant};

use agora_platform::kafka::EmbeddedKafka;
use clap::Parser;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::resources::{drop_databases, fresh_database, KeyFile, RunningService};

/// How long a test waits for something asynchronous (an event on Kafka, a
/// ledger award) before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery staple";

/// auth-service and post-service sharing one embedded Kafka broker.
pub struct TestSystem {
    pub post: RunningService,
    pub auth: RunningService,
    /// post-service's own database, to check what was (not) written.
    pub post_db: PgPool,
    /// The key auth-service signs with now.
    pub auth_key: KeyFile,
    retired_keys: Vec<KeyFile>,
    auth_database_url: String,
    /// The databases this system created, dropped when a test passes (a
    /// failed test leaves them for a look).
    databases: Vec<String>,
    pub kafka: EmbeddedKafka,
}

impl Drop for TestSystem {
    /// Stops both services before the broker goes away: a Kafka consumer
    /// dropped after its broker waits for it until its timeouts expire.
    fn drop(&mut self) {
        let runtime = tokio::runtime::Handle::current();
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            // Panicking again while unwinding would abort the whole binary.
            assert!(
                std::thread::panicking(),
                "run tests with #[tokio::test(flavor = \"multi_thread\")]: stopping the services needs it"
            );
            return;
        }
        tokio::task::block_in_place(|| {
            runtime.block_on(async {
                tokio::join!(self.post.stop_quietly(), self.auth.stop_quietly());
                if !std::thread::panicking() {
                    drop_databases(&self.databases).await;
                }
            })
        });
    }
}

pub async fn spawn_system() -> TestSystem {
    if std::env::var_os("TEST_LOG").is_some() {
        agora_platform::telemetry::init_logging();
    }
    let kafka = EmbeddedKafka::start().expect("starting the embedded Kafka broker");
    let auth_key = KeyFile::generate();
    let (auth_database, auth_database_url) = fresh_database("agora_auth_test");
    let auth = start_auth(&kafka, &auth_database_url, &auth_key, &[], 0).await;

    let jwks_url = format!("http://127.0.0.1:{}/.well-known/jwks.json", auth.port);
    let (post_database, post_database_url) = fresh_database("agora_post_test");
    let config = agora_post_service::Config::parse_from([
        "post-service",
        "--port=0",
        "--database-max-connections=4",
        &format!("--database-url={post_database_url}"),
        &format!("--jwks-url={jwks_url}"),
        "--jwks-min-refetch-ms=0",
    ]);
    let application = agora_post_service::Application::build(config, kafka.settings()).await.expect("building post-service");
    let post_db = application.pool().clone();
    let post = RunningService::spawn(application.port(), |shutdown| application.run_until_stopped(shutdown));

    let databases = vec![auth_database, post_database];
    TestSystem { post, auth, post_db, auth_key, retired_keys: Vec::new(), auth_database_url, databases, kafka }
}

async fn start_auth(
    kafka: &EmbeddedKafka,
    database_url: &str,
    key: &KeyFile,
    previous: &[&KeyFile],
    port: u16,
) -> RunningService {
    let mut args = vec![
        "auth-service".to_owned(),
        format!("--port={port}"),
        "--database-max-connections=4".to_owned(),
        format!("--database-url={database_url}"),
        format!("--signing-key-file={}", key.path.display()),
    ];
    if !previous.is_empty() {
        let files: Vec<String> = previous.iter().map(|key| key.path.display().to_string()).collect();
        args.push(format!("--previous-key-files={}", files.join(",")));
    }
    let config = agora_auth_service::config::Config::parse_from(args);
    let application = agora_auth_service::Application::build(config, kafka.settings()).await.expect("building auth-service");
    RunningService::spawn(application.port(), |shutdown| application.run_until_stopped(shutdown))
}

impl TestSystem {
    /// Stops auth-service and starts a new one on the same port and database
    /// that signs with a new key and still publishes the old one.
    pub async fn rotate_auth_key(&mut self) {
        self.auth.stop().await;
        let new_key = KeyFile::generate();
        let old_key = std::mem::replace(&mut self.auth_key, new_key);
        self.auth = start_auth(&self.kafka, &self.auth_database_url, &self.auth_key, &[&old_key], self.auth.port).await;
        self.retired_keys.push(old_key);
    }

    pub async fn post_graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        graphql(self.post.port, query, variables, token).await
    }

    pub async fn auth_graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        graphql(self.auth.port, query, variables, token).await
    }

    /// Registers a user with auth-service: its token and id.
    pub async fn register(&self, username: &str) -> (String, Uuid) {
        let response = self
            .auth_graphql(
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": { "username": username, "password": PASSWORD } }),
                None,
            )
            .await;
        let payload = &response["data"]["register"];
        let token = payload["token"].as_str().unwrap_or_else(|| panic!("register failed: {response}"));
        (token.to_owned(), payload["user"]["id"].as_str().unwrap().parse().unwrap())
    }

    /// Logs a registered user in: a token signed by auth-service's current key.
    pub async fn login(&self, username: &str) -> String {
        let response = self
            .auth_graphql(
                "mutation($input: LoginInput!) { login(input: $input) { token } }",
                json!({ "input": { "username": username, "password": PASSWORD } }),
                None,
            )
            .await;
        response["data"]["login"]["token"].as_str().unwrap_or_else(|| panic!("login failed: {response}")).to_owned()
    }

    /// Publishes a post; panics unless it was created. Returns its id.
    pub async fn create_post(&self, token: &str, title: &str) -> String {
        let response = self.create_post_response(token, title, "Some body text.").await;
        response["data"]["createPost"]["id"].as_str().unwrap_or_else(|| panic!("createPost failed: {response}")).to_owned()
    }

    pub async fn create_post_response(&self, token: &str, title: &str, body: &str) -> Value {
        self.post_graphql(
            "mutation($input: CreatePostInput!) { createPost(input: $input) { id title body author { id } createdAt } }",
            json!({ "input": { "title": title, "body": body } }),
            Some(token).filter(|token| !token.is_empty()),
        )
        .await
    }

    /// Rows in post-service's `post` and `outbox` tables.
    pub async fn written_rows(&self) -> (i64, i64) {
        let posts = sqlx::query_scalar("select count(*) from post").fetch_one(&self.post_db).await.unwrap();
        let events = sqlx::query_scalar("select count(*) from outbox").fetch_one(&self.post_db).await.unwrap();
        (posts, events)
    }

    pub async fn get(&self, port: u16, path: &str) -> reqwest::Response {
        client().get(format!("http://127.0.0.1:{port}{path}")).send().await.expect("the service answers")
    }
}

fn client() -> reqwest::Client {
    // One per call: a client's pooled connections belong to the runtime that
    // opened them, and every test has a runtime of its own.
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Sends a GraphQL request to the service on `port` and returns the whole
/// response (`data`, `errors`, `extensions`).
pub async fn graphql(port: u16, query: &str, variables: Value, token: Option<&str>) -> Value {
    let mut request =
        client().post(format!("http://127.0.0.1:{port}/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the service answers");
    response.json().await.expect("a JSON response")
}

/// The code of the response's first error, if it has one.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// Polls `condition` until it holds; fails the test, saying `what` it was
/// waiting for, once `timeout` has passed.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: still not true after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
