//! auth-service and post-service running in the test's runtime, sharing an
//! embedded Kafka broker, each on port 0 with a database of its own.

use std::future::Future;
use std::path::PathBuf;

use agora_platform::kafka::EmbeddedKafka;
use clap::Parser;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::graphql;

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery staple";

/// A service running in a task of the test's runtime; told to stop on drop.
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

    /// Stops the service and waits until it has ended (and let go of its port).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("the service panicked").expect("the service failed");
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
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.shutdown.cancel();
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

/// A URL of a database of its own, e.g. `agora_post_test_<uuid>`.
pub fn fresh_database_url(prefix: &str) -> String {
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    agora_platform::db::with_database(&base, &format!("{prefix}_{}", Uuid::now_v7().simple())).expect("a database URL")
}

/// Logs to the test's output when `TEST_LOG` is set (with `RUST_LOG` filters).
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        agora_platform::telemetry::init_logging();
    }
}

/// auth-service and post-service sharing one embedded Kafka broker.
pub struct Services {
    // Fields drop in this order: the services stop before the broker goes.
    pub post: RunningService,
    pub auth: RunningService,
    pub auth_key: KeyFile,
    pub kafka: EmbeddedKafka,
}

impl Services {
    pub async fn start() -> Self {
        init_logging();
        let kafka = EmbeddedKafka::start().expect("starting the embedded Kafka broker");
        let auth_key = KeyFile::generate();
        let config = agora_auth_service::Config::parse_from([
            "auth-service".to_owned(),
            "--port=0".to_owned(),
            "--database-max-connections=4".to_owned(),
            format!("--database-url={}", fresh_database_url("agora_auth_test")),
            format!("--signing-key-file={}", auth_key.path.display()),
        ]);
        let application = agora_auth_service::Application::build(config, kafka.settings()).await.expect("building auth-service");
        let auth = RunningService::spawn(application.port(), |shutdown| application.run_until_stopped(shutdown));

        let config = agora_post_service::Config::parse_from([
            "post-service".to_owned(),
            "--port=0".to_owned(),
            "--database-max-connections=4".to_owned(),
            format!("--database-url={}", fresh_database_url("agora_post_test")),
            format!("--jwks-url={}", Services::jwks_url_of(auth.port)),
            "--jwks-min-refetch-ms=0".to_owned(),
        ]);
        let application = agora_post_service::Application::build(config, kafka.settings()).await.expect("building post-service");
        let post = RunningService::spawn(application.port(), |shutdown| application.run_until_stopped(shutdown));
        Services { post, auth, auth_key, kafka }
    }

    pub fn jwks_url_of(auth_port: u16) -> String {
        format!("http://127.0.0.1:{auth_port}/.well-known/jwks.json")
    }

    /// Registers a user with auth-service directly: its token and id.
    pub async fn register(&self, username: &str) -> (String, Uuid) {
        let response = graphql(
            self.auth.port,
            "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
            json!({ "input": { "username": username, "password": PASSWORD } }),
            None,
        )
        .await;
        let payload = &response["data"]["register"];
        let token = payload["token"].as_str().unwrap_or_else(|| panic!("register failed: {response}"));
        (token.to_owned(), payload["user"]["id"].as_str().unwrap().parse().unwrap())
    }
}
