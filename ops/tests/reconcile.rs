//! `agora-reconcile` against the real services and a gateway (testkit): a
//! system that agrees reports nothing and exits 0 (a message delivered twice
//! is information, not a difference); a read-model row changed
//! behind the projector's back, or an outbox row whose message never reached
//! its topic, is reported and the exit status says so.

use std::process::Output;
use std::time::{Duration, Instant};

use agora_ops::reconcile::{reconcile, Report, Sources};
use agora_testkit::{graphql, RunningService, Services, TestDatabase, DEADLINE};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;

struct System {
    // Fields drop in this order: the gateway before its read model and the services.
    gateway: RunningService,
    read_db: PgPool,
    read_model: TestDatabase,
    services: Services,
}

impl System {
    async fn start() -> System {
        let services = Services::start().await;
        let read_model = TestDatabase::new("agora_read_test");
        let auth = services.auth.port;
        let config = agora_gateway::Config {
            port: 0,
            database_max_connections: 4,
            database_url: SecretString::from(read_model.url().to_owned()),
            auth_url: format!("http://127.0.0.1:{auth}/graphql"),
            post_url: format!("http://127.0.0.1:{}/graphql", services.post.port),
            jwks_url: Services::jwks_url_of(auth),
            jwks_min_refetch: Duration::ZERO,
            metrics_port: 0,
            ..agora_gateway::Config::default()
        };
        let application = agora_gateway::Application::build(config, services.kafka.settings()).await.expect("the gateway");
        let read_db = application.pool().clone();
        let gateway = RunningService::spawn(application.port(), |stop| application.run_until_stopped(stop));
        System { gateway, read_db, read_model, services }
    }

    fn sources(&self) -> Sources {
        Sources {
            auth_database_url: self.services.auth_database.url().to_owned(),
            post_database_url: self.services.post_database.url().to_owned(),
            read_database_url: self.read_model.url().to_owned(),
            kafka_brokers: Some(self.services.kafka.bootstrap_servers().to_owned()),
            topic_timeout: DEADLINE,
        }
    }

    async fn call(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let response = graphql(self.gateway.port, query, variables, token).await;
        assert!(response["errors"].is_null(), "{query}: {response}");
        response["data"].clone()
    }

    /// Two users, a rename, three posts: every kind of row the checks compare.
    async fn write_some(&self) -> Vec<String> {
        let mut post_ids = Vec::new();
        for name in ["ada", "grace"] {
            let data = self
                .call(
                    "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                    json!({ "input": { "username": name, "password": agora_testkit::PASSWORD } }),
                    None,
                )
                .await;
            let token = data["register"]["token"].as_str().unwrap().to_owned();
            for n in 0..(if name == "ada" { 2 } else { 1 }) {
                let data = self
                    .call(
                        "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }",
                        json!({ "input": { "title": format!("{name} {n}"), "body": "text" } }),
                        Some(&token),
                    )
                    .await;
                post_ids.push(data["createPost"]["id"].as_str().unwrap().to_owned());
            }
            if name == "grace" {
                self.call("mutation { renameUser(displayName: \"Grace H.\") { id } }", json!({}), Some(&token)).await;
            }
        }
        post_ids
    }

    /// Reconciles until no difference is left (points arrive after the
    /// posts); fails with the last report after the deadline.
    async fn wait_until_clean(&self) -> Report {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let report = reconcile(&self.sources()).await.expect("a reconciliation");
            if report.is_clean() {
                return report;
            }
            assert!(Instant::now() < deadline, "still differences after {DEADLINE:?}:\n{}", report.render(50));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the `agora-reconcile` binary against this system.
    async fn run_binary(&self, json: bool) -> Output {
        let sources = self.sources();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora-reconcile"));
        command
            .arg(format!("--auth-database-url={}", sources.auth_database_url))
            .arg(format!("--post-database-url={}", sources.post_database_url))
            .arg(format!("--read-database-url={}", sources.read_database_url))
            .arg(format!("--kafka-brokers={}", sources.kafka_brokers.unwrap()));
        if json {
            command.arg("--json");
        }
        tokio::time::timeout(DEADLINE, command.output()).await.expect("agora-reconcile ends").expect("agora-reconcile runs")
    }
}

fn differences(output: &Output) -> Vec<Value> {
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("JSON on stdout: {}", String::from_utf8_lossy(&output.stdout)));
    report["differences"].as_array().expect("a list of differences").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_that_agrees_reports_no_difference_and_exits_0() {
    let system = System::start().await;
    system.write_some().await;
    let report = system.wait_until_clean().await;
    assert_eq!((report.counts.users, report.counts.posts, report.counts.points_accounts), (2, 3, 2));
    // register ×2, rename, post ×3, award ×3: each published exactly once so far.
    assert_eq!(report.counts.outbox_rows, 9);
    assert_eq!(report.counts.topic_messages, 9);

    // A message delivered twice is information, not a difference.
    let kafka = system.services.kafka.settings();
    let posts = agora_testkit::read_topic(&kafka, agora_schema::topics::POST).await;
    agora_testkit::publish_event(&kafka, &posts[0].envelope).await;
    let report = system.wait_until_clean().await;
    assert_eq!((report.counts.topic_messages, report.counts.duplicated_in_topic), (10, 1));

    let output = system.run_binary(false).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {:?}: {text}{}", output.status, String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("no differences") && text.contains("1 duplicated messages"), "{text}");
    let output = system.run_binary(true).await;
    assert!(output.status.success());
    assert_eq!(differences(&output), Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_behind_the_pipelines_back_are_reported_and_exit_non_zero() {
    let system = System::start().await;
    let posts = system.write_some().await;
    system.wait_until_clean().await;

    sqlx::query("update read_post set title = 'tampered' where id = $1::uuid")
        .bind(&posts[0])
        .execute(&system.read_db)
        .await
        .unwrap();
    sqlx::query("update read_user set points = points + 5 where username = 'grace'").execute(&system.read_db).await.unwrap();
    sqlx::query("delete from read_post where id = $1::uuid").bind(&posts[1]).execute(&system.read_db).await.unwrap();
    // An outbox row marked published whose message is on no topic.
    let lost: String = sqlx::query_scalar(
        "insert into outbox (event_id, topic, event_type, aggregate_id, aggregate_version, payload, published_at)
         select gen_random_uuid(), topic, event_type, aggregate_id, aggregate_version + 100, payload, now()
         from outbox where event_type = 'UserRenamed' returning event_id::text",
    )
    .fetch_one(&PgPool::connect(system.services.auth_database.url()).await.unwrap())
    .await
    .unwrap();

    let output = system.run_binary(true).await;
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let found: Vec<(String, String, String)> = differences(&output)
        .iter()
        .map(|d| (d["check"].as_str().unwrap().into(), d["kind"].as_str().unwrap().into(), d["id"].as_str().unwrap().into()))
        .collect();
    let grace: String =
        sqlx::query_scalar("select id::text from read_user where username = 'grace'").fetch_one(&system.read_db).await.unwrap();
    for expected in [
        ("posts".to_owned(), "differing".to_owned(), posts[0].clone()),
        ("posts".into(), "missing".into(), posts[1].clone()),
        ("points".into(), "differing".into(), grace),
        ("outbox".into(), "missing".into(), lost),
    ] {
        assert!(found.contains(&expected), "{expected:?} not among {found:?}");
    }
    assert_eq!(found.len(), 4, "nothing else differs: {found:?}");

    let output = system.run_binary(false).await;
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("tampered") && text.contains("4 differences"), "{text}");
}
