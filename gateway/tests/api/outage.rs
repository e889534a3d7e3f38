//! The gateway while a database is away: a read or a command answers
//! UNAVAILABLE (retryable, HTTP 503 under application/graphql-response+json),
//! never INTERNAL; a command that committed is answered with its data even
//! when the read model cannot be checked; all of it works again once the
//! database is back.

use agora_testkit::{error_code, http_client, start_post_service, wait_until, TcpProxy, TestDatabase, DEADLINE};
use serde_json::{json, Value};

use crate::helpers::{spawn_gateway_at, spawn_system, TestGateway};

/// A request as a GraphQL-over-HTTP client sends it: its status and body.
async fn send(gateway: &TestGateway, query: &str, variables: Value, token: &str) -> (reqwest::StatusCode, Value) {
    let response = http_client()
        .post(format!("http://127.0.0.1:{}/graphql", gateway.port()))
        .header("accept", "application/graphql-response+json")
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("the gateway answers");
    (response.status(), response.json().await.expect("a JSON body"))
}

const CREATE_POST: &str = "mutation($input: CreatePostInput!) { createPost(input: $input) { id title body createdAt } }";

fn post_input(title: &str) -> Value {
    json!({ "input": { "title": title, "body": "A body." } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_read_model_is_away_answers_with_its_data_and_says_it_is_not_consistent_yet() {
    let system = spawn_system().await;
    let proxy = TcpProxy::to_database(system.read_model.url()).await;
    // A second replica, projecting on its own (group), whose read model is behind the proxy.
    let cut_off = spawn_gateway_at(&system, system.services.post.port, &proxy.url(system.read_model.url()), |config| {
        config.projector_group = "agora-outage-test".into();
    })
    .await;
    let ada = system.gateway.register("ada").await;

    proxy.cut();
    let with_author = "mutation($input: CreatePostInput!) { createPost(input: $input) { id title author { id username } } }";
    let (status, created) = send(&cut_off, with_author, post_input("Written in the dark"), &ada.token).await;

    assert_eq!(status, reqwest::StatusCode::OK, "{created}");
    assert!(created["errors"].is_null(), "the command happened: no error {created}");
    assert_eq!(created["data"]["createPost"]["title"], "Written in the dark");
    assert_eq!(created["data"]["createPost"]["author"], json!({ "id": ada.id, "username": "ada" }), "as auth-service has it");
    assert_eq!(created["extensions"]["consistent"], false, "{created}");
    let token = created["extensions"]["consistencyToken"].as_str().expect("a consistency token").to_owned();
    // Any replica that can reach the read model shows it with the token.
    let id = created["data"]["createPost"]["id"].clone();
    let read = system
        .gateway
        .query("query($id: ID!) { post(id: $id) { title } }", json!({ "id": id }), &[("x-consistency-token", token)])
        .await;
    assert_eq!(read["data"]["post"]["title"], "Written in the dark", "{read}");

    // A read through the replica that is cut off is retryable, not INTERNAL.
    let (status, read) = send(&cut_off, "{ me { username } }", json!({}), &ada.token).await;
    assert_eq!((status, error_code(&read)), (reqwest::StatusCode::SERVICE_UNAVAILABLE, Some("UNAVAILABLE")), "{read}");

    proxy.restore();
    wait_until(DEADLINE, "the replica reads again", || async {
        send(&cut_off, "{ me { username } }", json!({}), &ada.token).await.1["data"]["me"]["username"] == "ada"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_service_database_is_away_answers_unavailable_with_503_and_works_once_it_is_back() {
    let system = spawn_system().await;
    let database = TestDatabase::new("agora_post_test");
    let proxy = TcpProxy::to_database(database.url()).await;
    let post =
        start_post_service(&system.services.kafka.settings(), &proxy.url(database.url()), system.services.auth.port, |config| {
            config.database_max_connections = 4
        })
        .await;
    let gateway = spawn_gateway_at(&system, post.service.port, system.read_model.url(), |_| {}).await;
    let ada = system.gateway.register("ada").await;

    proxy.cut();
    let (status, answer) = send(&gateway, CREATE_POST, post_input("Not now"), &ada.token).await;
    assert_eq!(error_code(&answer), Some("UNAVAILABLE"), "the service's own code, relayed: {answer}");
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    wait_until(DEADLINE, "createPost works again", || async {
        send(&gateway, CREATE_POST, post_input("Now"), &ada.token).await.1["errors"].is_null()
    })
    .await;
    let titles: Vec<String> = sqlx::query_scalar("select title from post").fetch_all(&post.pool).await.unwrap();
    assert_eq!(titles, ["Now"]);
}
