//! Positions that cannot lie: the system stopped and started again on a new
//! broker (what the local run does every time), a read model fed by another
//! log than the one its positions came from, and a read model that lost its
//! state while Kafka's committed offsets stayed.

use agora_platform::kafka::EmbeddedKafka;
use agora_testkit::{
    publish_event, start_auth_service, start_post_service, wait_until, KeyFile, RunningService, TestDatabase, DEADLINE, PASSWORD,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::events::{post, registered};
use crate::helpers::{spawn_lone_gateway, start_gateway, Account, TestGateway};

/// The databases of one installation, which outlive its runs.
struct Installation {
    auth: TestDatabase,
    post: TestDatabase,
    read: TestDatabase,
    key: KeyFile,
}

/// One run of the whole system on a broker of its own, as `agora-local`
/// starts it: a new, empty embedded broker every time.
struct Run {
    // Fields drop in this order: the gateway, then the services, then the broker.
    gateway: TestGateway,
    post: RunningService,
    auth: RunningService,
    /// Lives until the services are gone.
    _kafka: EmbeddedKafka,
}

impl Installation {
    fn new() -> Self {
        Installation {
            auth: TestDatabase::new("agora_auth_test"),
            post: TestDatabase::new("agora_post_test"),
            read: TestDatabase::new("agora_read_test"),
            key: KeyFile::generate(),
        }
    }

    async fn run(&self) -> Run {
        let kafka = EmbeddedKafka::start().expect("a new embedded broker");
        let auth = start_auth_service(&kafka.settings(), 0, self.auth.url(), &self.key, &[], |config| {
            config.database_max_connections = 4;
        })
        .await
        .service;
        let post =
            start_post_service(&kafka.settings(), self.post.url(), auth.port, |config| config.database_max_connections = 4)
                .await
                .service;
        let gateway = start_gateway(&kafka.settings(), auth.port, post.port, self.read.url(), |_| {}).await;
        Run { gateway, post, auth, _kafka: kafka }
    }
}

impl Run {
    async fn stop(mut self) {
        self.gateway.service.stop().await;
        self.post.stop().await;
        self.auth.stop().await;
    }

    async fn login(&self, username: &str) -> Account {
        let response = self
            .gateway
            .query(
                "mutation($input: LoginInput!) { login(input: $input) { token user { id } } }",
                json!({ "input": { "username": username, "password": PASSWORD } }),
                &[],
            )
            .await;
        let payload = &response["data"]["login"];
        Account {
            id: payload["user"]["id"].as_str().unwrap_or_else(|| panic!("login failed: {response}")).parse().unwrap(),
            token: payload["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn posted(&self, account: &Account, title: &str) {
        let response = self.gateway.create_post(account, title).await;
        assert!(response["errors"].is_null(), "createPost failed: {response}");
        assert_ne!(response["extensions"]["consistent"], json!(false), "the read model did not catch up: {response}");
    }

    async fn user(&self, username: &str) -> Value {
        let response = self
            .gateway
            .query(
                "query($username: String!) { userByUsername(username: $username) { points postCount posts { nodes { title } } } }",
                json!({ "username": username }),
                &[],
            )
            .await;
        response["data"]["userByUsername"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_new_broker_keeps_every_user_post_and_point() {
    let installation = Installation::new();
    let first = installation.run().await;
    let ada = first.gateway.register("ada").await;
    first.posted(&ada, "Before the restart").await;
    wait_until(DEADLINE, "ada has her points", || async { first.user("ada").await["points"] == 10 }).await;
    first.stop().await;

    let second = installation.run().await;
    let ada = second.login("ada").await;
    second.posted(&ada, "After the restart").await;
    let grace = second.gateway.register("grace").await;
    second.posted(&grace, "A newcomer").await;
    let expected = json!({
        "points": 20,
        "postCount": 2,
        "posts": { "nodes": [{ "title": "After the restart" }, { "title": "Before the restart" }] }
    });
    wait_until(DEADLINE, "ada's two posts and 20 points", || async { second.user("ada").await == expected }).await;
    wait_until(DEADLINE, "grace's points", || async { second.user("grace").await["points"] == 10 }).await;
    second.stop().await;

    // And a third time, with nothing new: everything is still there.
    let third = installation.run().await;
    wait_until(DEADLINE, "ada's posts after a third start", || async { third.user("ada").await == expected }).await;
    third.stop().await;
}

async fn usernames(gateway: &TestGateway) -> Vec<String> {
    let mut names: Vec<String> = sqlx::query_scalar("select username from read_user where username is not null")
        .fetch_all(&gateway.read_db)
        .await
        .unwrap();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_from_another_log_are_never_used_to_skip() {
    let first = spawn_lone_gateway().await;
    for n in 0..8 {
        publish_event(&first.kafka.settings(), &registered(Uuid::now_v7(), &format!("old{n}"))).await;
    }
    wait_until(DEADLINE, "the first log is projected", || async { usernames(&first.gateway).await.len() == 8 }).await;
    let read_model = first.read_model;
    let mut gateway = first.gateway;
    gateway.service.stop().await;
    drop(gateway);
    drop(first.kafka);

    // Another log, longer than the first on every partition: the stored
    // offsets all lie inside it, at events the read model never saw.
    let kafka = EmbeddedKafka::start().unwrap();
    let mut expected = Vec::new();
    for n in 0..40 {
        let name = format!("new{n:02}");
        publish_event(&kafka.settings(), &registered(Uuid::now_v7(), &name)).await;
        expected.push(name);
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gateway = start_gateway(&kafka.settings(), closed, closed, read_model.url(), |_| {}).await;
    // The read model is rebuilt from what this log holds: all of it, and only it.
    wait_until(DEADLINE, "the read model shows exactly the new log", || async { usernames(&gateway).await == expected }).await;
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_that_lost_its_state_is_rebuilt_from_its_own_positions_not_kafkas() {
    let mut system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    for n in 0..5 {
        publish_event(&kafka, &post(ada, &format!("post {n}"))).await;
    }
    let posts = |gateway: &TestGateway| {
        let pool = gateway.read_db.clone();
        async move { sqlx::query_scalar::<_, i64>("select count(*) from read_post").fetch_one(&pool).await.unwrap() }
    };
    wait_until(DEADLINE, "five posts projected", || async { posts(&system.gateway).await == 5 }).await;
    // Kafka's consumer group has committed offsets at the end of every
    // partition; the read model loses what it had (restored from an empty
    // backup, say), positions included.
    system.gateway.service.stop().await;
    let read_db = sqlx::PgPool::connect(system.read_model.url()).await.unwrap();
    sqlx::query(
        "do $$ declare t record; begin
             for t in select schemaname, tablename from pg_tables
                      where (schemaname = 'public' or schemaname like 'read\\_g%')
                        and tablename not in ('_sqlx_migrations', 'read_model_serving', 'read_model_generation') loop
                 execute format('truncate %I.%I', t.schemaname, t.tablename);
             end loop;
         end $$",
    )
    .execute(&read_db)
    .await
    .unwrap();
    read_db.close().await;
    let successor = system.another(|_| {}).await;
    wait_until(DEADLINE, "the five posts are back", || async { posts(&successor).await == 5 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joining_and_leaving_the_group_loses_no_event() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    let post_count = |gateway: &TestGateway| {
        let pool = gateway.read_db.clone();
        async move {
            sqlx::query_scalar::<_, i32>("select post_count from read_user where id = $1")
                .bind(ada)
                .fetch_optional(&pool)
                .await
                .unwrap()
                .unwrap_or(0)
        }
    };
    let mut published = 0;
    let mut publish_some = |n: usize| {
        let kafka = kafka.clone();
        published += n;
        async move {
            for i in 0..n {
                publish_event(&kafka, &post(ada, &format!("post {i}"))).await;
            }
        }
    };
    publish_some(10).await;
    // A second replica joins the projector's group: the partitions are shared out anew.
    let mut second = system.another(|_| {}).await;
    publish_some(10).await;
    wait_until(DEADLINE, "twenty posts with two replicas", || async { post_count(&system.gateway).await == 20 }).await;
    // It leaves again: the first replica takes every partition back.
    second.service.stop().await;
    publish_some(10).await;
    let expected = published as i32;
    wait_until(DEADLINE, "every post once", || async { post_count(&system.gateway).await == expected }).await;
    let rows: i64 = sqlx::query_scalar("select count(*) from read_post").fetch_one(&system.gateway.read_db).await.unwrap();
    assert_eq!(rows, expected as i64);
}
