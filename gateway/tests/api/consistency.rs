//! Read-your-writes: a mutation answers once the read model shows it, and
//! its consistency token lets any gateway replica wait for the same state.

use agora_testkit::error_code;
use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_gateway, spawn_system, wait_until_sharing};

fn token_of(response: &Value) -> String {
    response["extensions"]["consistencyToken"].as_str().unwrap_or_else(|| panic!("no consistency token in {response}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_post_is_readable_as_soon_as_the_mutation_answers() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    for n in 0..5 {
        let created = gateway.create_post(&ada, &format!("post {n}")).await;
        let id = created["data"]["createPost"]["id"].as_str().unwrap().to_owned();
        assert!(created["extensions"]["consistent"].is_null(), "the read model lagged: {created}");
        // No token, no wait: the mutation itself waited for the read model.
        let read = gateway.query("query($id: ID!) { post(id: $id) { title } }", json!({ "id": id }), &[]).await;
        assert_eq!(read["data"]["post"]["title"], format!("post {n}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_gateway_is_read_through_another_with_its_token() {
    let system = spawn_system().await;
    let second = spawn_gateway(&system.services, system.read_model.url(), |_| {}).await;
    wait_until_sharing(&[&system.gateway, &second]).await;
    let ada = system.gateway.register("ada").await;
    let created = system.gateway.create_post(&ada, "written on one").await;
    let id = created["data"]["createPost"]["id"].as_str().unwrap().to_owned();
    let token = token_of(&created);

    let read = second
        .query(
            "query($id: ID!) { post(id: $id) { title author { username } } }",
            json!({ "id": id }),
            &[("x-consistency-token", token)],
        )
        .await;
    assert_eq!(read["data"]["post"], json!({ "title": "written on one", "author": { "username": "ada" } }), "{read}");

    let renamed =
        second.query("mutation { renameUser(displayName: \"Ada\") { displayName } }", json!({}), &[bearer(&ada.token)]).await;
    let read = system
        .gateway
        .query("{ me { displayName } }", json!({}), &[bearer(&ada.token), ("x-consistency-token", token_of(&renamed))])
        .await;
    assert_eq!(read["data"]["me"]["displayName"], "Ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistency_token_the_gateway_did_not_issue_is_bad_input() {
    let system = spawn_system().await;
    let read = system.gateway.query("{ posts { nodes { id } } }", json!({}), &[("x-consistency-token", "garbage!".into())]).await;
    assert_eq!(error_code(&read), Some("BAD_USER_INPUT"), "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_counts_as_applied_only_once_queries_can_show_it_with_its_author() {
    use agora_schema::receipts::WriteReceipt;
    use agora_schema::topics;
    use agora_testkit::{publish_event, DEADLINE};
    use std::time::Duration;

    use crate::events::{post, registered};
    use crate::helpers::spawn_lone_gateway;

    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let consistency =
        agora_gateway::commands::Consistency::start(system.gateway.read_db.clone(), tokio_util::sync::CancellationToken::new())
            .await
            .unwrap();
    let bob = uuid::Uuid::now_v7();
    let early = post(bob, "before its author");
    publish_event(&kafka, &early).await;
    let receipt = WriteReceipt { topic: topics::POST.into(), aggregate_id: early.aggregate_id, aggregate_version: 1 };
    // The post row arrives, but bob is unknown: no query shows the post yet.
    agora_testkit::wait_until(DEADLINE, "the post row is projected", || async {
        sqlx::query_scalar::<_, i64>("select count(*) from read_post").fetch_one(&system.gateway.read_db).await.unwrap() == 1
    })
    .await;
    assert!(!consistency.wait(std::slice::from_ref(&receipt), Duration::from_millis(300)).await.unwrap());
    publish_event(&kafka, &registered(bob, "bob")).await;
    assert!(consistency.wait(std::slice::from_ref(&receipt), DEADLINE).await.unwrap());
    let shown = system.gateway.query("{ posts { nodes { title author { username } } } }", json!({}), &[]).await;
    assert_eq!(shown["data"]["posts"]["nodes"], json!([{ "title": "before its author", "author": { "username": "bob" } }]));
}
