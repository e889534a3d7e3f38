//! A client's W3C trace context travels with the command to the service
//! and on with the events it caused, the ledger's included.

use agora_schema::topics;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{bearer, spawn_system};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The `traceparent` header of the first message on `topic`.
async fn first_traceparent(kafka: &agora_platform::kafka::KafkaSettings, topic: &str) -> Option<String> {
    let consumer: StreamConsumer = kafka.consumer_config("trace-reader", &format!("trace-{}", Uuid::now_v7())).create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let message = tokio::time::timeout(agora_testkit::DEADLINE, consumer.recv()).await.expect("an event in time").unwrap();
    let headers = message.headers()?;
    let header = headers.iter().find(|header| header.key == "traceparent")?;
    header.value.map(|value| String::from_utf8_lossy(value).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posts_events_carry_the_trace_context_of_the_request_that_made_it() {
    let system = spawn_system().await;
    let ada = system.gateway.register("ada").await;
    let created = system
        .gateway
        .query(
            "mutation { createPost(input: { title: \"traced\", body: \"body\" }) { id } }",
            json!({}),
            &[bearer(&ada.token), ("traceparent", TRACEPARENT.to_owned())],
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let kafka = system.services.kafka.settings();
    assert_eq!(first_traceparent(&kafka, topics::POST).await.as_deref(), Some(TRACEPARENT));
    assert_eq!(first_traceparent(&kafka, topics::POINTS).await.as_deref(), Some(TRACEPARENT), "the ledger continues the trace");
    assert_eq!(first_traceparent(&kafka, topics::USER).await, None, "registration sent no trace context");
}
