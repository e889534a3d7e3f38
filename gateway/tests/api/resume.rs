//! Resumable subscriptions, with the npm `graphql-ws` client: every pushed
//! result carries `extensions.resumeCursor`; a client that comes back (here
//! after the gateway restarted) and subscribes with it in
//! `extensions.resumeFrom` first gets what it missed, in order, then live
//! results, with no gap and no repeat. A cursor this API did not issue, or
//! another subscription's, is BAD_CURSOR; one whose missed events are more than a resume replays is
//! CURSOR_EXPIRED.

use agora_testkit::{publish_event, wait_until, DEADLINE};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::events::{post, registered, renamed};
use crate::helpers::{spawn_lone_gateway, spawn_lone_gateway_with, LoneGateway, TestGateway};
use crate::node::Subscriber;

const RENAMES: &str = "subscription($id: ID) { userRenamed(userId: $id) { displayName } }";
const POSTS: &str = "subscription { postCreated { title } }";

async fn user_version(gateway: &TestGateway, id: Uuid) -> i64 {
    sqlx::query_scalar::<_, i64>("select coalesce(max(profile_version), 0) from read_user where id = $1")
        .bind(id)
        .fetch_one(&gateway.read_db)
        .await
        .unwrap()
}

/// Ada, registered and in the read model.
async fn ada_registered(system: &LoneGateway) -> Uuid {
    let ada = Uuid::now_v7();
    publish_event(&system.kafka.settings(), &registered(ada, "ada")).await;
    wait_until(DEADLINE, "ada in the read model", || async { user_version(&system.gateway, ada).await == 1 }).await;
    ada
}

/// The client's subscriptions, each resuming from its cursor if it has one.
fn subscriptions(ada: Uuid, cursors: Option<(&str, &str)>) -> Value {
    let resume = |cursor: Option<&str>| cursor.map_or(json!({}), |cursor| json!({ "resumeFrom": cursor }));
    json!({
        "protocol": "graphql-transport-ws",
        "subscriptions": [
            { "id": "renames", "query": RENAMES, "variables": { "id": ada }, "extensions": resume(cursors.map(|c| c.0)) },
            { "id": "posts", "query": POSTS, "extensions": resume(cursors.map(|c| c.1)) },
        ]
    })
}

/// The values at `field` of subscription `id`'s results, in the order received.
fn results(received: &[Value], id: &str, field: &str, value: &str) -> Vec<String> {
    received
        .iter()
        .filter(|line| line["id"] == id && !line["data"].is_null())
        .map(|line| line["data"][field][value].as_str().unwrap().to_owned())
        .collect()
}

fn names(received: &[Value]) -> Vec<String> {
    results(received, "renames", "userRenamed", "displayName")
}

fn titles(received: &[Value]) -> Vec<String> {
    results(received, "posts", "postCreated", "title")
}

/// The cursor of the last result of subscription `id`.
fn last_cursor(subscriber: &Subscriber, id: &str) -> String {
    let last = subscriber.received.iter().rev().find(|line| line["id"] == id && !line["data"].is_null()).expect("a result");
    last["extensions"]["resumeCursor"].as_str().unwrap_or_else(|| panic!("a result without a cursor: {last}")).to_owned()
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_back_after_a_restart_gets_what_it_missed_in_order_then_live_results_once_each() {
    let mut system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = ada_registered(&system).await;

    // Given a client that got a rename and a post, each with a cursor.
    let mut client = Subscriber::start(system.gateway.service.port, subscriptions(ada, None)).await;
    publish_event(&kafka, &renamed(ada, "ada 2", 2)).await;
    publish_event(&kafka, &post(ada, "one")).await;
    client.wait_for("a rename and a post", |received| names(received).len() == 1 && titles(received).len() == 1).await;
    assert_eq!((names(&client.received), titles(&client.received)), (vec!["ada 2".to_owned()], vec!["one".to_owned()]));
    let cursors = (last_cursor(&client, "renames"), last_cursor(&client, "posts"));
    drop(client);

    // When the gateway stops, events come while none runs and while its
    // successor runs with nobody subscribed.
    system.gateway.service.stop().await;
    publish_event(&kafka, &renamed(ada, "ada 3", 3)).await;
    publish_event(&kafka, &renamed(ada, "ada 4", 4)).await;
    publish_event(&kafka, &post(ada, "two")).await;
    let successor = system.another(|_| {}).await;
    publish_event(&kafka, &renamed(ada, "ada 5", 5)).await;
    publish_event(&kafka, &post(ada, "three")).await;
    wait_until(DEADLINE, "the successor projected them", || async { user_version(&successor, ada).await == 5 }).await;

    // Then the client, back with its cursors, gets what it missed, renames
    // in their order, before what happens next.
    let mut client =
        Subscriber::start(successor.service.port, subscriptions(ada, Some((cursors.0.as_str(), cursors.1.as_str())))).await;
    client.wait_for("the missed results", |received| names(received).len() >= 3 && titles(received).len() >= 2).await;
    publish_event(&kafka, &renamed(ada, "ada 6", 6)).await;
    publish_event(&kafka, &post(ada, "four")).await;
    client.wait_for("the live results", |received| names(received).len() >= 4 && titles(received).len() >= 3).await;
    assert_eq!(names(&client.received), ["ada 3", "ada 4", "ada 5", "ada 6"]);
    let posts = titles(&client.received);
    assert_eq!(sorted(posts[..2].to_vec()), ["three", "two"], "{posts:?}");
    assert_eq!(posts[2], "four");
    // Nothing comes twice: the next rename follows at once.
    publish_event(&kafka, &renamed(ada, "ada 7", 7)).await;
    client.wait_for("the next rename", |received| names(received).len() >= 5).await;
    assert_eq!(names(&client.received), ["ada 3", "ada 4", "ada 5", "ada 6", "ada 7"]);
    assert_eq!(titles(&client.received).len(), 3);
    for line in client.received.iter().filter(|line| !line["data"].is_null()) {
        assert!(line["extensions"]["resumeCursor"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_this_api_did_not_issue_or_too_far_behind_is_refused_with_its_code() {
    let mut system = spawn_lone_gateway_with(|config| config.resume_max_events = 2).await;
    let kafka = system.kafka.settings();
    let ada = ada_registered(&system).await;
    let mut client = Subscriber::start(system.gateway.service.port, subscriptions(ada, None)).await;
    publish_event(&kafka, &renamed(ada, "ada 2", 2)).await;
    client.wait_for("a rename", |received| names(received).len() == 1).await;
    let cursor = last_cursor(&client, "renames");
    drop(client);

    // A made-up cursor, and a real one of another subscription's results.
    let forged = format!("{}x", cursor);
    let mut client = Subscriber::start(system.gateway.service.port, subscriptions(ada, Some((&forged, &cursor)))).await;
    client.wait_for("both refused", |received| received.iter().filter(|line| line["errors"].is_array()).count() == 2).await;
    for line in client.received.iter().filter(|line| line["errors"].is_array()) {
        assert_eq!(line["errors"][0]["extensions"]["code"], "BAD_CURSOR", "{line}");
    }
    drop(client);

    // Three events missed, where a resume replays two at most.
    system.gateway.service.stop().await;
    for version in 3..=5 {
        publish_event(&kafka, &renamed(ada, &format!("ada {version}"), version)).await;
    }
    let successor = system.another(|config| config.resume_max_events = 2).await;
    let config = json!({
        "protocol": "graphql-transport-ws",
        "subscriptions": [{ "id": "renames", "query": RENAMES, "variables": { "id": ada }, "extensions": { "resumeFrom": cursor } }]
    });
    let mut client = Subscriber::start(successor.service.port, config).await;
    client.wait_for("refused", |received| received.iter().any(|line| line["errors"].is_array())).await;
    let refused = client.received.iter().find(|line| line["errors"].is_array()).unwrap();
    assert_eq!(refused["errors"][0]["extensions"]["code"], "CURSOR_EXPIRED", "{refused}");
    assert!(names(&client.received).is_empty());
}
