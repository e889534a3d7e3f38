//! The outbox through the running service: a command succeeds while Kafka
//! is down, and its event is published once Kafka is back.

use std::time::Duration;

use agora_platform::outbox::pending;
use agora_schema::topics;

use crate::helpers::{about, read_topic_until, spawn_app_with, wait_until, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_while_kafka_is_down_succeeds_and_its_event_is_published_when_kafka_is_back() {
    // A short delivery timeout, so that the relay starts over soon after the broker returns.
    let app = spawn_app_with(|config| config.kafka.delivery_timeout = Duration::from_millis(3000)).await;
    let (_, before) = app.register("ada", "correct horse").await;
    read_topic_until(&app.kafka_settings, topics::USER, "ada's registration", |read| !about(read, before).is_empty()).await;
    app.kafka.broker_down().await.unwrap();

    let (_, during) = app.register("bob", "correct horse").await;

    assert_eq!(pending(&app.pool).await.unwrap(), 1, "the event waits in the outbox");
    // Readiness reports Kafka away (a check that takes its full timeout), and
    // all the while the event stays unpublished.
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(pending(&app.pool).await.unwrap(), 1);

    app.kafka.broker_up().await.unwrap();

    let received =
        read_topic_until(&app.kafka_settings, topics::USER, "bob's registration", |read| !about(read, during).is_empty()).await;
    let event = &about(&received, during)[0].envelope;
    assert_eq!((event.event_type.as_str(), event.aggregate_version), ("UserRegistered", 1));
    wait_until(DEADLINE, "the relay marked the event published", || async { pending(&app.pool).await.unwrap() == 0 }).await;
}
