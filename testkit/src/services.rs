//! auth-service and post-service running in the test's runtime, sharing an
//! embedded Kafka broker, each on port 0 with a database of its own.
//!
//! Everything here that runs a service stops it, and waits for it to end,
//! when it is dropped: before the databases it used are dropped and before
//! the broker goes (a Kafka consumer closed after its broker is gone waits
//! for it for 10 s and more). Waiting in `drop` needs a multi-threaded
//! runtime: tests that start services use
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use agora_platform::kafka::{EmbeddedKafka, KafkaArgs, KafkaSettings};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::graphql;
use crate::database::TestDatabase;
use crate::DEADLINE;
use crate::{AuthConfig, PostConfig};

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery staple";

/// A service running in a task of the test's runtime. Dropping it stops it
/// and waits (at most [`DEADLINE`]) until it has ended; see the module.
pub struct RunningService {
    pub port: u16,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningService {
    pub fn spawn<F>(port: u16, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(shutdown.clone()));
        RunningService { port, shutdown, handle: Some(handle) }
    }

    /// Stops the service and waits until it has ended (and let go of its
    /// port); fails the test unless it ended cleanly.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("the service panicked").expect("the service failed");
        }
    }

    /// Stops the service, waiting at most [`DEADLINE`], whatever became of
    /// it (reported on stderr, not failed: this is the cleanup path).
    pub async fn stop_quietly(&mut self) {
        self.shutdown.cancel();
        let Some(handle) = self.handle.take() else { return };
        let port = self.port;
        match tokio::time::timeout(DEADLINE, handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => eprintln!("the service on port {port} failed: {error:#}"),
            Ok(Err(error)) => eprintln!("the service on port {port} panicked: {error}"),
            Err(_) => eprintln!("the service on port {port} did not stop within {DEADLINE:?}"),
        }
    }

    /// Ends the service abruptly, as a crash would: its task is aborted
    /// wherever it is, with no graceful shutdown.
    pub async fn kill(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    fn is_running(&self) -> bool {
        self.handle.is_some()
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if self.is_running() {
            wait_in_drop(self.stop_quietly());
        }
    }
}

/// Runs `cleanup` to its end from a `drop`, on the test's runtime.
fn wait_in_drop(cleanup: impl Future<Output = ()>) {
    // Outside any runtime nothing can run the service any more.
    let Ok(runtime) = Handle::try_current() else { return };
    if runtime.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| runtime.block_on(cleanup));
    } else if !std::thread::panicking() {
        // (Panicking again while unwinding would abort the whole binary.)
        panic!(
            "a test that starts services must run with #[tokio::test(flavor = \"multi_thread\")]: \
             they are stopped and awaited when dropped, before their databases and the broker go"
        );
    }
}

/// An Ed25519 signing key in a PEM file of its own, removed on drop.
pub struct KeyFile {
    pub path: PathBuf,
    pub pem: String,
}

impl KeyFile {
    pub fn generate() -> Self {
        let pem = agora_auth_service::keys::generate_pem().expect("generating a signing key");
        let path = std::env::temp_dir().join(format!("agora-test-key-{}.pem", Uuid::now_v7().simple()));
        std::fs::write(&path, &pem).expect("writing the signing key");
        KeyFile { path, pem }
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Logs to the test's output when `TEST_LOG` is set (with `RUST_LOG` filters).
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        agora_platform::telemetry::init_logging();
    }
}

/// A service started in the test's runtime, and a handle on its database.
pub struct StartedService {
    pub service: RunningService,
    pub pool: PgPool,
}

/// Starts auth-service on `port` (0: any free one) on the broker of `kafka`,
/// with its database at `database_url`, signing with `key` and still
/// publishing `previous_keys`, and whatever else `configure` sets
/// (`|config| config.token_ttl = Duration::from_secs(5)`).
pub async fn start_auth_service(
    kafka: &KafkaSettings,
    port: u16,
    database_url: &str,
    key: &KeyFile,
    previous_keys: &[&KeyFile],
    configure: impl FnOnce(&mut AuthConfig),
) -> StartedService {
    let mut config = AuthConfig {
        port,
        database_url: SecretString::from(database_url.to_owned()),
        signing_key_file: key.path.clone(),
        previous_key_files: previous_keys.iter().map(|key| key.path.clone()).collect(),
        metrics_port: 0,
        // Tests register and log in many users from one address; a test of
        // the budgets sets its own.
        registrations_per_address: 0,
        login_attempts_per_address: 0,
        login_attempts_per_username_and_address: 0,
        login_failures_per_username: 0,
        // A busy test machine is not an attack: hashing waits its turn.
        hashing_wait: Duration::from_secs(60),
        ..AuthConfig::default()
    };
    configure(&mut config);
    let kafka = with_delivery_timeout(kafka, &config.kafka);
    let application = agora_auth_service::Application::build(config, kafka).await.expect("building auth-service");
    let pool = application.pool().clone();
    let service = RunningService::spawn(application.port(), |shutdown| application.run_until_stopped(shutdown));
    StartedService { service, pool }
}

/// Starts post-service on any free port on the broker of `kafka`, with its
/// database at `database_url`, trusting the keys of the auth-service on
/// `auth_port`, and whatever else `configure` sets.
pub async fn start_post_service(
    kafka: &KafkaSettings,
    database_url: &str,
    auth_port: u16,
    configure: impl FnOnce(&mut PostConfig),
) -> StartedService {
    let mut config = PostConfig {
        port: 0,
        database_url: SecretString::from(database_url.to_owned()),
        jwks_url: Services::jwks_url_of(auth_port),
        jwks_min_refetch: Duration::ZERO,
        metrics_port: 0,
        // Tests publish many posts as one user; a test of the budget sets its own.
        posts_per_author_per_hour: 0,
        ..PostConfig::default()
    };
    configure(&mut config);
    let kafka = with_delivery_timeout(kafka, &config.kafka);
    let application = agora_post_service::Application::build(config, kafka).await.expect("building post-service");
    let pool = application.pool().clone();
    let service = RunningService::spawn(application.port(), |shutdown| application.run_until_stopped(shutdown));
    StartedService { service, pool }
}

/// The service's `--kafka-delivery-timeout-ms` applied to the embedded
/// broker's settings, as `kafka::resolve` applies it in production.
fn with_delivery_timeout(kafka: &KafkaSettings, args: &KafkaArgs) -> KafkaSettings {
    KafkaSettings { delivery_timeout: args.delivery_timeout, ..kafka.clone() }
}

/// Keeps many tests' services within PostgreSQL's connection limit.
const SERVICE_CONNECTIONS: u32 = 4;

/// Registers a user with the auth-service on `port`: its token and id.
pub async fn register_user(port: u16, username: &str, password: &str) -> (String, Uuid) {
    let response = graphql(
        port,
        "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
        json!({ "input": { "username": username, "password": password } }),
        None,
    )
    .await;
    assert!(response["errors"].is_null(), "register failed: {response}");
    let payload = &response["data"]["register"];
    let token = payload["token"].as_str().unwrap_or_else(|| panic!("register failed: {response}"));
    (token.to_owned(), payload["user"]["id"].as_str().unwrap().parse().unwrap())
}

/// auth-service and post-service sharing one embedded Kafka broker, each
/// with a database of its own. Dropping it stops both services (awaited),
/// then drops their databases (unless the test failed), then the broker.
pub struct Services {
    // Fields drop in this order.
    pub post: RunningService,
    pub auth: RunningService,
    /// post-service's database, to check what was (not) written.
    pub post_db: PgPool,
    /// auth-service's database, likewise.
    pub auth_db: PgPool,
    /// The key auth-service signs with now.
    pub auth_key: KeyFile,
    /// Keys auth-service signed with before [`Services::rotate_auth_key`].
    retired_keys: Vec<KeyFile>,
    pub post_database: TestDatabase,
    pub auth_database: TestDatabase,
    pub kafka: EmbeddedKafka,
}

impl Services {
    pub async fn start() -> Self {
        Self::start_with(|_| {}, |_| {}).await
    }

    /// The same with more settings for auth-service and for post-service
    /// (budgets, trusted proxies).
    pub async fn start_with(configure_auth: impl FnOnce(&mut AuthConfig), configure_post: impl FnOnce(&mut PostConfig)) -> Self {
        init_logging();
        let kafka = EmbeddedKafka::start().expect("starting the embedded Kafka broker");
        let auth_key = KeyFile::generate();
        let auth_database = TestDatabase::new("agora_auth_test");
        let auth = start_auth_service(&kafka.settings(), 0, auth_database.url(), &auth_key, &[], |config| {
            config.database_max_connections = SERVICE_CONNECTIONS;
            configure_auth(config);
        })
        .await;
        let post_database = TestDatabase::new("agora_post_test");
        let post = start_post_service(&kafka.settings(), post_database.url(), auth.service.port, |config| {
            config.database_max_connections = SERVICE_CONNECTIONS;
            configure_post(config);
        })
        .await;
        Services {
            post: post.service,
            auth: auth.service,
            post_db: post.pool,
            auth_db: auth.pool,
            auth_key,
            retired_keys: Vec::new(),
            post_database,
            auth_database,
            kafka,
        }
    }

    pub fn jwks_url_of(auth_port: u16) -> String {
        format!("http://127.0.0.1:{auth_port}/.well-known/jwks.json")
    }

    /// Stops auth-service and starts a new one on the same port and database
    /// that signs with a new key and still publishes the ones before it.
    pub async fn rotate_auth_key(&mut self) {
        self.auth.stop().await;
        let old_key = std::mem::replace(&mut self.auth_key, KeyFile::generate());
        self.retired_keys.push(old_key);
        let previous: Vec<&KeyFile> = self.retired_keys.iter().rev().collect();
        let auth = start_auth_service(
            &self.kafka.settings(),
            self.auth.port,
            self.auth_database.url(),
            &self.auth_key,
            &previous,
            |config| config.database_max_connections = SERVICE_CONNECTIONS,
        )
        .await;
        self.auth = auth.service;
        self.auth_db = auth.pool;
    }

    /// Registers a user with auth-service directly: its token and id.
    pub async fn register(&self, username: &str) -> (String, Uuid) {
        register_user(self.auth.port, username, PASSWORD).await
    }

    /// Logs a registered user in: a token signed by auth-service's current key.
    pub async fn login(&self, username: &str) -> String {
        let response = graphql(
            self.auth.port,
            "mutation($input: LoginInput!) { login(input: $input) { token } }",
            json!({ "input": { "username": username, "password": PASSWORD } }),
            None,
        )
        .await;
        response["data"]["login"]["token"].as_str().unwrap_or_else(|| panic!("login failed: {response}")).to_owned()
    }
}

impl Drop for Services {
    /// Stops both services at once; the fields' own drops then find them
    /// stopped, and drop the databases and the broker in turn.
    fn drop(&mut self) {
        if self.post.is_running() || self.auth.is_running() {
            wait_in_drop(async {
                tokio::join!(self.post.stop_quietly(), self.auth.stop_quietly());
            });
        }
    }
}
