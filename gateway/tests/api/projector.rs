//! The projector against events written by hand: out of order, repeated,
//! stale, poisoned, and replayed after a crash.

use agora_schema::topics;
use agora_testkit::{publish, publish_event, wait_until, DEADLINE};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::events::{points, post, registered, renamed};
use crate::helpers::{spawn_lone_gateway, TestGateway};

async fn user(gateway: &TestGateway, id: Uuid) -> Value {
    let response = gateway
        .query(
            "query($id: ID!) { user(id: $id) { username displayName points postCount } }",
            json!({ "id": id.to_string() }),
            &[],
        )
        .await;
    response["data"]["user"].clone()
}

async fn wait_for_user(gateway: &TestGateway, id: Uuid, expected: Value) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let seen = user(gateway, id).await;
        if seen == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "user {id} is still {seen}, not {expected}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_arrive_before_their_user_are_not_lost() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &post(ada, "early post")).await;
    publish_event(&kafka, &points(ada, 10, 1)).await;
    publish_event(&kafka, &renamed(ada, "Renamed early", 2)).await;
    publish_event(&kafka, &registered(ada, "ada")).await;
    let expected = json!({ "username": "ada", "displayName": "Renamed early", "points": 10, "postCount": 1 });
    wait_for_user(&system.gateway, ada, expected).await;
    let posts = system.gateway.query("{ posts { nodes { title author { username } } } }", json!({}), &[]).await;
    assert_eq!(posts["data"]["posts"]["nodes"], json!([{ "title": "early post", "author": { "username": "ada" } }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_stale_events_change_nothing() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    let first_post = post(ada, "once");
    for envelope in [
        registered(ada, "ada"),
        renamed(ada, "New", 2),
        renamed(ada, "New", 2),
        renamed(ada, "Old", 1),
        first_post.clone(),
        first_post.clone(),
        points(ada, 20, 2),
        points(ada, 10, 1),
        points(ada, 20, 2),
    ] {
        publish_event(&kafka, &envelope).await;
    }
    // A marker published last on the user topic: once it shows, the rest was applied.
    publish_event(&kafka, &registered(Uuid::now_v7(), "marker")).await;
    wait_until(DEADLINE, "the marker is projected", || async {
        let marker = system.gateway.query("{ userByUsername(username: \"marker\") { id } }", json!({}), &[]).await;
        !marker["data"]["userByUsername"].is_null()
    })
    .await;
    wait_for_user(&system.gateway, ada, json!({ "username": "ada", "displayName": "New", "points": 20, "postCount": 1 })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_goes_to_the_dead_letter_topic_and_the_partition_keeps_flowing() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    let good = post(ada, "after the poison");
    // Same key, so same partition, right before a good event.
    publish(&kafka, topics::POST, &good.aggregate_id.to_string(), b"{ this is not an event").await;
    publish_event(&kafka, &good).await;
    wait_for_user(&system.gateway, ada, json!({ "username": "ada", "displayName": "ada", "points": 0, "postCount": 1 })).await;

    let consumer: StreamConsumer =
        kafka.consumer_config("dead-letter-reader", &format!("dlq-{}", Uuid::now_v7())).create().unwrap();
    consumer.subscribe(&[topics::DEAD_LETTER]).unwrap();
    let message = tokio::time::timeout(DEADLINE, consumer.recv()).await.expect("a dead letter in time").unwrap();
    assert_eq!(message.payload(), Some(&b"{ this is not an event"[..]));
    let header = |name: &str| {
        let headers = message.headers().expect("headers");
        let header = headers.iter().find(|header| header.key == name).unwrap_or_else(|| panic!("no {name} header"));
        String::from_utf8_lossy(header.value.unwrap()).into_owned()
    };
    assert_eq!(header("original_topic"), topics::POST);
    assert!(header("dead_letter_reason").contains("not an event envelope"), "{}", header("dead_letter_reason"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_that_replays_everything_applies_nothing_twice() {
    let mut system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    for n in 0..3 {
        publish_event(&kafka, &post(ada, &format!("post {n}"))).await;
    }
    wait_for_user(&system.gateway, ada, json!({ "username": "ada", "displayName": "ada", "points": 0, "postCount": 3 })).await;

    // A crash: the projector dies without committing anything to Kafka, and
    // its successor's consumer group has no position at all, so Kafka hands
    // it every event again. Meanwhile more events arrive.
    system.gateway.service.kill().await;
    publish_event(&kafka, &post(ada, "while down")).await;
    let successor = system.another(|config| config.projector_group = "after-the-crash".into()).await;
    wait_for_user(&successor, ada, json!({ "username": "ada", "displayName": "ada", "points": 0, "postCount": 4 })).await;

    let stored: i64 = sqlx::query_scalar("select count(*) from read_post").fetch_one(&successor.read_db).await.unwrap();
    assert_eq!(stored, 4);
    // Give a double apply every chance to show before looking once more.
    publish_event(&kafka, &registered(Uuid::now_v7(), "marker")).await;
    wait_until(DEADLINE, "the marker is projected", || async {
        let marker = successor.query("{ userByUsername(username: \"marker\") { id } }", json!({}), &[]).await;
        !marker["data"]["userByUsername"].is_null()
    })
    .await;
    assert_eq!(user(&successor, ada).await["postCount"], 4);
}
