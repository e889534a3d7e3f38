//! `/healthz` and `/readyz`.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_200_when_the_database_and_kafka_are_up() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({ "database": "ok", "kafka": "ok" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_naming_kafka_while_the_broker_is_down() {
    let app = spawn_app().await;
    app.kafka.broker_down().await.unwrap();

    let ready = app.get("/readyz").await;

    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({ "database": "ok", "kafka": "unavailable" }));
}
