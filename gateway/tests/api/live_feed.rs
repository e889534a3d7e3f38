//! The live feed against events written by hand: each event is pushed once,
//! in its aggregate's order, and one whose projection is stuck holds back
//! nothing but its own aggregate.

use std::time::{Duration, Instant};

use agora_platform::kafka::KafkaSettings;
use agora_testkit::{publish_event, DEADLINE};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::events::{points, post, registered};
use crate::helpers::spawn_lone_gateway;
use crate::node::Subscriber;

/// A subscription is registered some time after the client sent it (the
/// protocol has no acknowledgement for it): events of a warm-up user are
/// published until the subscriber receives one.
async fn until_live(subscriber: &mut Subscriber, kafka: &KafkaSettings) {
    let warm = Uuid::now_v7();
    publish_event(kafka, &registered(warm, "warm")).await;
    let started = Instant::now();
    for version in 1.. {
        publish_event(kafka, &points(warm, version as i32, version)).await;
        if subscriber
            .received_within(Duration::from_millis(500), |received| received.iter().any(|line| !line["data"].is_null()))
            .await
        {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "the subscription never went live");
    }
}

fn totals(subscriber: &Subscriber, username: &str) -> Vec<Value> {
    subscriber
        .events("points")
        .iter()
        .filter(|event| event["pointsChanged"]["user"]["username"] == username)
        .map(|event| event["pointsChanged"]["total"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_event_is_pushed_once_and_totals_never_go_back() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    let mut subscriber = Subscriber::start(
        system.gateway.port(),
        json!({ "subscriptions": [{ "id": "points", "query": "subscription { pointsChanged { total user { username } } }" }] }),
    )
    .await;
    until_live(&mut subscriber, &kafka).await;
    let first = points(ada, 10, 1);
    for event in [&first, &points(ada, 20, 2), &first, &points(ada, 30, 3)] {
        publish_event(&kafka, event).await;
    }
    subscriber
        .wait_for("the last total", |received| {
            received.iter().any(|line| {
                line["data"]["pointsChanged"]["user"]["username"] == "ada" && line["data"]["pointsChanged"]["total"] == 30
            })
        })
        .await;
    assert_eq!(totals(&subscriber, "ada"), [json!(10), json!(20), json!(30)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_waiting_for_its_projection_holds_back_only_its_own_aggregate() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    publish_event(&kafka, &registered(ada, "ada")).await;
    let mut subscriber = Subscriber::start(
        system.gateway.port(),
        json!({ "subscriptions": [
            { "id": "posts", "query": "subscription { postCreated { title author { username } } }" },
            { "id": "points", "query": "subscription { pointsChanged { total } }" },
        ]}),
    )
    .await;
    until_live(&mut subscriber, &kafka).await;
    let titles = |received: &[Value]| -> Vec<String> {
        received
            .iter()
            .filter(|line| line["id"] == "posts" && !line["data"].is_null())
            .map(|line| line["data"]["postCreated"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    // Bob is not registered yet: no query can show his post, so it waits.
    publish_event(&kafka, &post(bob, "bob's, waiting for bob")).await;
    publish_event(&kafka, &post(ada, "ada's")).await;
    subscriber.wait_for("ada's post", |received| !titles(received).is_empty()).await;
    assert_eq!(titles(&subscriber.received), ["ada's"], "bob's post was pushed before the read model could show it");
    // Once bob registers, his post arrives too: it was not dropped.
    publish_event(&kafka, &registered(bob, "bob")).await;
    subscriber.wait_for("bob's post", |received| titles(received).len() == 2).await;
    let bobs = subscriber.events("posts").into_iter().find(|event| event["postCreated"]["author"]["username"] == "bob");
    assert!(bobs.is_some(), "bob's post shows its author: {:?}", subscriber.received);
}
