//! Live events through real npm clients: what each subscriber receives, in
//! order, with filters, on two gateway processes, in both protocols.

use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_gateway, spawn_system, wait_until_sharing};
use crate::node::Subscriber;

fn field(events: &[Value], root: &str, path: &str) -> Vec<Value> {
    events.iter().map(|event| event[root].pointer(path).cloned().unwrap_or(Value::Null)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_receive_exactly_the_matching_events_in_order() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    let bob = gateway.register("bob").await;
    let mut subscriber = Subscriber::start(
        gateway.port(),
        json!({ "subscriptions": [
            { "id": "all", "query": "subscription { postCreated { id title author { username displayName } } }" },
            { "id": "bob", "query": "subscription($id: ID) { postCreated(authorId: $id) { title } }", "variables": { "id": bob.id.to_string() } },
            { "id": "renames", "query": "subscription($id: ID) { userRenamed(userId: $id) { displayName } }", "variables": { "id": ada.id.to_string() } },
            { "id": "points", "query": "subscription($id: ID) { pointsChanged(userId: $id) { delta total reason user { username points } } }", "variables": { "id": ada.id.to_string() } },
        ]}),
    )
    .await;

    gateway.create_post(&ada, "ada 1").await;
    gateway.create_post(&bob, "bob 1").await;
    gateway.create_post(&ada, "ada 2").await;
    for name in ["Ada", "Countess"] {
        gateway
            .query("mutation($n: String!) { renameUser(displayName: $n) { id } }", json!({ "n": name }), &[bearer(&ada.token)])
            .await;
    }
    let complete = |subscriber: &Subscriber| {
        subscriber.events("all").len() == 3 && subscriber.events("renames").len() == 2 && subscriber.events("points").len() == 2
    };
    while !complete(&subscriber) {
        let seen = subscriber.received.len();
        subscriber.wait_for("more events", |received| received.len() > seen).await;
    }

    let all = subscriber.events("all");
    let titles: Vec<Value> = field(&all, "postCreated", "/title");
    let ada_titles: Vec<&Value> = titles.iter().filter(|title| title.as_str().unwrap().starts_with("ada")).collect();
    assert_eq!(ada_titles, [&json!("ada 1"), &json!("ada 2")], "one author's posts arrive in order");
    assert!(titles.contains(&json!("bob 1")));
    assert_eq!(field(&subscriber.events("bob"), "postCreated", "/title"), [json!("bob 1")]);
    assert_eq!(field(&subscriber.events("renames"), "userRenamed", "/displayName"), [json!("Ada"), json!("Countess")]);
    let points = subscriber.events("points");
    assert_eq!(field(&points, "pointsChanged", "/total"), [json!(10), json!(20)]);
    assert_eq!(field(&points, "pointsChanged", "/reason"), [json!("POST_CREATED"), json!("POST_CREATED")]);

    // Pushed only once the read model shows it: a query right after sees it.
    for id in field(&all, "postCreated", "/id") {
        let read = gateway.query("query($id: ID!) { post(id: $id) { id } }", json!({ "id": id }), &[]).await;
        assert_eq!(read["data"]["post"]["id"], id);
    }
    let extra = subscriber.received.iter().filter(|line| line["id"] == "bob" && !line["data"].is_null()).count();
    assert_eq!(extra, 1, "the filter let another author's post through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gateway_process_delivers_every_event() {
    let system = spawn_system().await;
    let second = spawn_gateway(&system.services, system.read_model.url(), |_| {}).await;
    wait_until_sharing(&[&system.gateway, &second]).await;
    let ada = system.gateway.register("ada").await;
    let query =
        json!({ "subscriptions": [{ "id": "posts", "query": "subscription { postCreated { title author { username } } }" }] });
    let mut on_first = Subscriber::start(system.gateway.port(), query.clone()).await;
    let mut on_second = Subscriber::start(second.port(), query).await;
    system.gateway.create_post(&ada, "one").await;
    second.create_post(&ada, "two").await;
    for subscriber in [&mut on_first, &mut on_second] {
        subscriber.wait_for("both posts", |received| received.iter().filter(|line| !line["data"].is_null()).count() == 2).await;
        assert_eq!(field(&subscriber.events("posts"), "postCreated", "/title"), [json!("one"), json!("two")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_protocol_delivers_events_too() {
    let system = spawn_system().await;
    let ada = system.gateway.register("ada").await;
    let mut subscriber = Subscriber::start(
        system.gateway.port(),
        json!({ "protocol": "graphql-ws", "authorization": format!("Bearer {}", ada.token),
                "subscriptions": [{ "id": "posts", "query": "subscription { postCreated { title author { displayName } } }" }] }),
    )
    .await;
    system.gateway.create_post(&ada, "legacy").await;
    subscriber.wait_for("the post", |received| received.iter().any(|line| !line["data"].is_null())).await;
    assert_eq!(subscriber.events("posts"), [json!({ "postCreated": { "title": "legacy", "author": { "displayName": "ada" } } })]);
}
