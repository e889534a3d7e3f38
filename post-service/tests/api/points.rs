//! Points end to end: post-service publishes PostCreated, auth-service's
//! ledger (a subscriber post-service knows nothing of) awards the author.

use agora_schema::topics;
use serde_json::json;

use crate::helpers::{read_topic_until, spawn_system, wait_until, PostServiceCalls, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_post_earns_its_author_ten_points_through_kafka() {
    let system = spawn_system().await;
    let (token, user_id) = system.register("ada").await;
    let mut post_ids = Vec::new();
    for title in ["first", "second", "third"] {
        post_ids.push(system.create_post(&token, title).await);
    }

    let points = || async {
        let response = system.auth_graphql("query($id: ID!) { user(id: $id) { points } }", json!({ "id": user_id }), None).await;
        response["data"]["user"]["points"].as_i64()
    };
    wait_until(DEADLINE, "ada has 30 points", || async { points().await == Some(30) }).await;

    let awarded =
        read_topic_until(&system.kafka.settings(), topics::POINTS, "three PointsAwarded", |events| events.len() >= 3).await;
    assert_eq!(awarded.len(), 3, "{awarded:#?}");
    for (index, event) in awarded.iter().enumerate() {
        let version = index as i64 + 1;
        assert_eq!(event.envelope.event_type, "PointsAwarded");
        assert_eq!(event.key, user_id.to_string(), "keyed by the points account");
        assert_eq!(event.envelope.aggregate_version, version);
        assert_eq!(event.envelope.data["user_id"], user_id.to_string());
        assert_eq!(event.envelope.data["delta"], 10);
        assert_eq!(event.envelope.data["total"], 10 * version, "totals in order: 10, 20, 30");
        assert_eq!(event.envelope.data["reason"], "POST_CREATED");
    }

    // Each award names the PostCreated event that earned it, one per post.
    let posted = read_topic_until(&system.kafka.settings(), topics::POST, "three PostCreated", |events| events.len() >= 3).await;
    let mut causes: Vec<String> =
        awarded.iter().map(|event| event.envelope.data["cause_event_id"].as_str().unwrap().to_owned()).collect();
    let mut post_event_ids: Vec<String> = posted.iter().map(|event| event.envelope.event_id.to_string()).collect();
    causes.sort();
    post_event_ids.sort();
    assert_eq!(causes, post_event_ids);
    let mut keys: Vec<String> = posted.iter().map(|event| event.key.clone()).collect();
    keys.sort();
    post_ids.sort();
    assert_eq!(keys, post_ids);
    // Still 30 after the ledger has seen everything there is.
    assert_eq!(points().await, Some(30));
}
