//! Read-your-writes: a mutation answers once the read model shows it, and
//! its consistency token lets any gateway replica wait for the same state.

use agora_testkit::error_code;
use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_gateway, spawn_system};

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
    let second = spawn_gateway(&system.services, system.read_model.url(), &[]).await;
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
