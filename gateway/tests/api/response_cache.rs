//! The response cache: read-model answers are served again only while
//! nothing they read has changed, whoever changed it, and on through the
//! writes that changed something else.

use std::time::Duration;

use agora_testkit::{graphql, wait_until};
use serde_json::{json, Value};

use crate::helpers::{bearer, composition, spawn_system, Account, TestSystem};

const POSTS: &str = "{ posts(first: 5) { nodes { title author { displayName } } } }";

fn cache_of(response: &Value) -> Option<&str> {
    response["extensions"]["cache"].as_str()
}

/// Waits for the points of ada's posts: the read model is quiet after that.
async fn points_settled(system: &TestSystem, user: &Account, points: i64) {
    wait_until(Duration::from_secs(10), "the points of the posts in the read model", || async {
        let read = system.gateway.query("query($id: ID!) { user(id: $id) { points } }", json!({ "id": user.id }), &[]).await;
        read["data"]["user"]["points"] == points
    })
    .await;
}

/// Ada with one post (its points settled) and bob, registered.
async fn ada_with_a_post_and_bob() -> (TestSystem, Account, Account) {
    let system = spawn_system().await;
    let ada = system.gateway.register("ada").await;
    let bob = system.gateway.register("bob").await;
    system.gateway.create_post(&ada, "first").await;
    points_settled(&system, &ada, 10).await;
    (system, ada, bob)
}

fn titles(response: &Value) -> Vec<&str> {
    let nodes = response["data"]["posts"]["nodes"].as_array().unwrap_or_else(|| panic!("no posts in {response}"));
    nodes.iter().map(|node| node["title"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_served_again_until_the_read_model_changes() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    gateway.create_post(&ada, "first").await;
    points_settled(&system, &ada, 10).await;

    let computed = gateway.query(POSTS, json!({}), &[]).await;
    let served = gateway.query(POSTS, json!({}), &[]).await;
    assert_eq!(cache_of(&computed), Some("miss"), "{computed}");
    assert_eq!(cache_of(&served), Some("hit"), "{served}");
    assert_eq!(served["data"], computed["data"]);
    assert_eq!(served["extensions"]["sqlStatements"], 0);
    assert_eq!(served["extensions"]["strategy"], "read-model");

    // A write through this gateway: the mutation waited for the read model,
    // so the next answer already shows it.
    gateway.query("mutation { renameUser(displayName: \"Ada L.\") { id } }", json!({}), &[bearer(&ada.token)]).await;
    let renamed = gateway.query(POSTS, json!({}), &[]).await;
    assert_eq!(renamed["data"]["posts"]["nodes"][0]["author"]["displayName"], "Ada L.", "{renamed}");
    assert_eq!(cache_of(&renamed), Some("miss"));

    // A write this gateway knows nothing of (straight to post-service): the
    // projector's notification drops the cached answer.
    let created = graphql(
        system.services.post.port,
        "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }",
        json!({ "input": { "title": "second", "body": "Written past the gateway." } }),
        Some(&ada.token),
    )
    .await;
    assert!(created["errors"].is_null(), "{created}");
    wait_until(Duration::from_secs(10), "the new post in the cached query's answer", || async {
        titles(&gateway.query(POSTS, json!({}), &[]).await) == ["second", "first"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_fresh_requests_errors_and_composition_are_not_served_from_the_cache() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    gateway.create_post(&ada, "first").await;
    points_settled(&system, &ada, 10).await;

    let me = "{ me { username } }";
    for _ in 0..2 {
        let with_caller = gateway.query(me, json!({}), &[bearer(&ada.token)]).await;
        assert_eq!(cache_of(&with_caller), None, "{with_caller}");
        assert_eq!(with_caller["data"]["me"]["username"], "ada", "{with_caller}");
        let anonymous = gateway.query(me, json!({}), &[]).await;
        assert!(anonymous["data"]["me"].is_null(), "{anonymous}");

        let fresh = gateway.query(POSTS, json!({}), &[("cache-control", "no-cache".into())]).await;
        assert_eq!(cache_of(&fresh), Some("miss"), "{fresh}");

        let composed = gateway.query(POSTS, json!({}), &[composition()]).await;
        assert_eq!(cache_of(&composed), None, "{composed}");
        assert_eq!(titles(&composed), ["first"]);

        let failed = gateway.query("{ posts(first: -1) { nodes { id } } }", json!({}), &[]).await;
        assert!(failed["errors"].is_array(), "{failed}");
        assert_eq!(cache_of(&failed), None, "{failed}");
    }
    // The answer computed for `no-cache` is kept for the next plain request.
    assert_eq!(cache_of(&gateway.query(POSTS, json!({}), &[]).await), Some("hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_readers_share_the_answers_that_do_not_depend_on_who_asks() {
    let (system, ada, bob) = ada_with_a_post_and_bob().await;
    let gateway = &system.gateway;

    let computed = gateway.query(POSTS, json!({}), &[bearer(&ada.token)]).await;
    assert_eq!(cache_of(&computed), Some("miss"), "{computed}");
    let for_bob = gateway.query(POSTS, json!({}), &[bearer(&bob.token)]).await;
    assert_eq!(cache_of(&for_bob), Some("hit"), "{for_bob}");
    let for_anyone = gateway.query(POSTS, json!({}), &[]).await;
    assert_eq!(cache_of(&for_anyone), Some("hit"));
    assert_eq!(for_bob["data"], computed["data"]);
    assert_eq!(for_anyone["data"], computed["data"]);
    // A token that does not verify changes nothing for such an answer.
    let forged = gateway.query(POSTS, json!({}), &[bearer("not.a.token")]).await;
    assert_eq!((cache_of(&forged), &forged["data"]), (Some("hit"), &computed["data"]));

    // What reads the caller is the caller's own, however it is asked.
    let mine = "query { ...Mine } fragment Mine on Query { me { username } }";
    let ada_sees = gateway.query(mine, json!({}), &[bearer(&ada.token)]).await;
    let bob_sees = gateway.query(mine, json!({}), &[bearer(&bob.token)]).await;
    assert_eq!((cache_of(&ada_sees), cache_of(&bob_sees)), (None, None));
    assert_eq!((&ada_sees["data"]["me"]["username"], &bob_sees["data"]["me"]["username"]), (&json!("ada"), &json!("bob")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_drops_the_answers_that_read_what_it_changed_and_no_other() {
    let (system, ada, bob) = ada_with_a_post_and_bob().await;
    let gateway = &system.gateway;
    let user = "query($id: ID!) { user(id: $id) { displayName points postCount } }";
    let of = |account: &Account| json!({ "id": account.id });
    let ada_before = gateway.query(user, of(&ada), &[]).await;
    let bob_before = gateway.query(user, of(&bob), &[]).await;
    gateway.query(POSTS, json!({}), &[]).await;
    for (query, variables) in [(user, of(&ada)), (user, of(&bob)), (POSTS, json!({}))] {
        assert_eq!(cache_of(&gateway.query(query, variables, &[]).await), Some("hit"));
    }

    // Ada's rename, past this gateway: once this gateway has heard of it
    // (ada's cached answer shows the new name), bob's answer is still served.
    let renamed = graphql(
        system.services.auth.port,
        "mutation { renameUser(displayName: \"Ada L.\") { id } }",
        json!({}),
        Some(&ada.token),
    )
    .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    wait_until(Duration::from_secs(10), "ada's new name", || async {
        gateway.query(user, of(&ada), &[]).await["data"]["user"]["displayName"] == "Ada L."
    })
    .await;
    let bob_now = gateway.query(user, of(&bob), &[]).await;
    assert_eq!((cache_of(&bob_now), &bob_now["data"]), (Some("hit"), &bob_before["data"]));
    // The page showing ada as an author was dropped too.
    let page = gateway.query(POSTS, json!({}), &[]).await;
    assert_eq!(page["data"]["posts"]["nodes"][0]["author"]["displayName"], "Ada L.", "{page}");

    // Ada's second post (through the gateway, whose wait finds it applied):
    // her record and every post list change, bob's record does not.
    gateway.create_post(&ada, "second").await;
    assert_eq!(titles(&gateway.query(POSTS, json!({}), &[]).await), ["second", "first"]);
    let ada_now = gateway.query(user, of(&ada), &[]).await;
    assert_eq!(ada_now["data"]["user"]["postCount"], 2, "{ada_now} (before: {ada_before})");
    let bob_now = gateway.query(user, of(&bob), &[]).await;
    assert_eq!((cache_of(&bob_now), &bob_now["data"]), (Some("hit"), &bob_before["data"]));
}
