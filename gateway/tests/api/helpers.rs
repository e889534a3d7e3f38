//! The whole system for the gateway's tests: the real services (from the
//! testkit) and one or more gateways on port 0 sharing a read model.
//!
//! Dropped, a system stops its gateways and services (awaited), then drops
//! its databases (unless the test failed), then the broker: tests run with
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.

use std::collections::HashSet;
use std::time::Duration;

use agora_platform::consumer::Partition;
use agora_platform::kafka::{EmbeddedKafka, KafkaSettings};

use agora_gateway::Config;
use agora_testkit::{graphql_with_headers, wait_until, RunningService, Services, TestDatabase, DEADLINE, PASSWORD};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

pub struct TestGateway {
    pub service: RunningService,
    pub read_db: PgPool,
    /// The port of its `/metrics` listener.
    pub metrics_port: u16,
    /// The partitions its projector consumes.
    pub projecting: watch::Receiver<Vec<Partition>>,
}

pub struct TestSystem {
    // Fields drop in this order: the gateway stops before its read model and the services go.
    pub gateway: TestGateway,
    pub read_model: TestDatabase,
    pub services: Services,
}

// Each `configure` sets what a test needs on a gateway's configuration
// beyond the tests' defaults (`|config| config.ws_init_timeout = …`).

pub async fn spawn_gateway(services: &Services, read_model_url: &str, configure: impl FnOnce(&mut Config)) -> TestGateway {
    start_gateway(&services.kafka.settings(), services.auth.port, services.post.port, read_model_url, configure).await
}

pub async fn start_gateway(
    kafka: &KafkaSettings,
    auth_port: u16,
    post_port: u16,
    read_model_url: &str,
    configure: impl FnOnce(&mut Config),
) -> TestGateway {
    let mut config = Config {
        port: 0,
        database_max_connections: 5,
        database_url: SecretString::from(read_model_url.to_owned()),
        auth_url: format!("http://127.0.0.1:{auth_port}/graphql"),
        post_url: format!("http://127.0.0.1:{post_port}/graphql"),
        jwks_url: Services::jwks_url_of(auth_port),
        jwks_min_refetch: Duration::ZERO,
        metrics_port: 0,
        ..Config::default()
    };
    configure(&mut config);
    let application = agora_gateway::Application::build(config, kafka.clone()).await.expect("building the gateway");
    let read_db = application.pool().clone();
    let metrics_port = application.metrics_port();
    let projecting = application.projecting();
    let service = RunningService::spawn(application.port(), |shutdown| application.run_until_stopped(shutdown));
    TestGateway { service, read_db, metrics_port, projecting }
}

pub async fn spawn_system() -> TestSystem {
    spawn_system_with(|_| {}).await
}

pub async fn spawn_system_with(configure: impl FnOnce(&mut Config)) -> TestSystem {
    let services = Services::start().await;
    let read_model = TestDatabase::new("agora_read_test");
    let gateway = spawn_gateway(&services, read_model.url(), configure).await;
    TestSystem { gateway, read_model, services }
}

/// A gateway with a broker but no services: its read model is fed by
/// events the test writes by hand, and every command finds its service down.
pub struct LoneGateway {
    // Fields drop in this order: the gateway stops before its read model and the broker go.
    pub gateway: TestGateway,
    pub read_model: TestDatabase,
    pub kafka: EmbeddedKafka,
}

pub async fn spawn_lone_gateway() -> LoneGateway {
    spawn_lone_gateway_with(|_| {}).await
}

pub async fn spawn_lone_gateway_with(configure: impl FnOnce(&mut Config)) -> LoneGateway {
    agora_testkit::init_logging();
    let kafka = EmbeddedKafka::start().expect("starting the embedded Kafka broker");
    let read_model = TestDatabase::new("agora_read_test");
    let closed = closed_port();
    let gateway = start_gateway(&kafka.settings(), closed, closed, read_model.url(), configure).await;
    LoneGateway { gateway, read_model, kafka }
}

impl LoneGateway {
    /// Another gateway on the same broker and read model.
    pub async fn another(&self, configure: impl FnOnce(&mut Config)) -> TestGateway {
        let closed = closed_port();
        start_gateway(&self.kafka.settings(), closed, closed, self.read_model.url(), configure).await
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// A registered user as the tests know it.
pub struct Account {
    pub id: Uuid,
    pub token: String,
}

impl TestGateway {
    pub fn port(&self) -> u16 {
        self.service.port
    }

    /// A handle that only talks to the gateway, for tasks of the test.
    pub fn client(&self) -> GatewayClient {
        GatewayClient { port: self.port() }
    }

    pub async fn query(&self, query: &str, variables: Value, headers: &[(&str, String)]) -> Value {
        self.client().query(query, variables, headers).await
    }

    /// Registers through the gateway's mutation.
    pub async fn register(&self, username: &str) -> Account {
        self.client().register(username).await
    }

    /// Publishes a post through the gateway; the whole response.
    pub async fn create_post(&self, account: &Account, title: &str) -> Value {
        self.client().create_post(account, title).await
    }
}

/// A gateway's address and the requests the tests send it.
#[derive(Debug, Clone, Copy)]
pub struct GatewayClient {
    pub port: u16,
}

impl GatewayClient {
    pub async fn query(&self, query: &str, variables: Value, headers: &[(&str, String)]) -> Value {
        graphql_with_headers(self.port, query, variables, headers).await
    }

    /// Registers through the gateway's mutation.
    pub async fn register(&self, username: &str) -> Account {
        let response = self
            .query(
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id username } } }",
                json!({ "input": { "username": username, "password": PASSWORD } }),
                &[],
            )
            .await;
        let payload = &response["data"]["register"];
        let token = payload["token"].as_str().unwrap_or_else(|| panic!("register failed: {response}"));
        Account { id: payload["user"]["id"].as_str().unwrap().parse().unwrap(), token: token.to_owned() }
    }

    /// Publishes a post through the gateway; the whole response.
    pub async fn create_post(&self, account: &Account, title: &str) -> Value {
        self.query(
            "mutation($input: CreatePostInput!) { createPost(input: $input) { id title author { id displayName } } }",
            json!({ "input": { "title": title, "body": format!("The body of {title}.") } }),
            &[bearer(&account.token)],
        )
        .await
    }
}

/// Waits until the projectors of `replicas`, one consumer group, share
/// every partition of the read model's topics between them: the group has
/// settled after a replica joined (while it rebalances, no replica
/// projects, and writes wait for their read-your-writes meanwhile).
pub async fn wait_until_sharing(replicas: &[&TestGateway]) {
    let every_partition = agora_gateway::records::READ_MODEL_TOPICS.len() * agora_schema::topics::DEFAULT_PARTITIONS as usize;
    wait_until(DEADLINE, "the replicas share the partitions", || async {
        let held: Vec<Partition> = replicas.iter().flat_map(|replica| replica.projecting.borrow().clone()).collect();
        let distinct: HashSet<&Partition> = held.iter().collect();
        replicas.iter().all(|replica| !replica.projecting.borrow().is_empty())
            && held.len() == every_partition
            && distinct.len() == every_partition
    })
    .await;
}

pub fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

pub fn strategy(name: &str) -> (&'static str, String) {
    ("x-query-strategy", name.to_owned())
}

/// Another gateway on the system's broker and read model whose calls to
/// auth-service go to `auth_port` instead (a port that never answers, say).
pub async fn spawn_gateway_with_auth_at(system: &TestSystem, auth_port: u16, configure: impl FnOnce(&mut Config)) -> TestGateway {
    let services = &system.services;
    start_gateway(&services.kafka.settings(), auth_port, services.post.port, system.read_model.url(), configure).await
}

/// Another gateway on the system's broker whose calls to post-service go
/// to `post_port` and whose read model is at `read_model_url` (a service or
/// a database behind a proxy the test cuts, say).
pub async fn spawn_gateway_at(
    system: &TestSystem,
    post_port: u16,
    read_model_url: &str,
    configure: impl FnOnce(&mut Config),
) -> TestGateway {
    let services = &system.services;
    start_gateway(&services.kafka.settings(), services.auth.port, post_port, read_model_url, configure).await
}

/// The request headers that pick the composition strategy.
pub fn composition() -> (&'static str, String) {
    strategy("composition")
}
