//! Registering and renaming: what the API answers, what is stored, and what
//! reaches the user topic.

use agora_schema::topics;
use serde_json::json;

use crate::helpers::{about, error_code, read_topic_until, spawn_app, REGISTER, RENAME};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_returns_a_token_and_publishes_user_registered_on_kafka() {
    let app = spawn_app().await;

    let response = app.graphql(REGISTER, json!({ "input": { "username": "ada", "password": "correct horse" } }), None).await;

    assert!(response["errors"].is_null(), "{response}");
    let user = &response["data"]["register"]["user"];
    assert_eq!(
        (user["username"].as_str(), user["displayName"].as_str(), user["points"].as_i64()),
        (Some("ada"), Some("ada"), Some(0))
    );
    assert!(response["data"]["register"]["token"].as_str().is_some_and(|token| token.split('.').count() == 3));
    let id = user["id"].as_str().unwrap();
    assert_eq!(response["extensions"]["writes"], json!([{ "topic": topics::USER, "aggregateId": id, "aggregateVersion": 1 }]));
    let received =
        read_topic_until(&app.kafka_settings, topics::USER, "UserRegistered", |read| read.iter().any(|m| m.key == id)).await;
    let event = &about(&received, id.parse().unwrap())[0];
    assert_eq!(event.key, id, "the Kafka key is the user id");
    assert_eq!((event.envelope.event_type.as_str(), event.envelope.aggregate_version), ("UserRegistered", 1));
    assert_eq!(event.envelope.data["username"], "ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_publishes_user_renamed_with_the_next_version_and_an_unchanged_name_publishes_nothing() {
    let app = spawn_app().await;
    let (token, id) = app.register("ada", "correct horse").await;

    let renamed = app.graphql(RENAME, json!({ "name": "  Ada L. " }), Some(&token)).await;
    assert_eq!(renamed["data"]["renameUser"]["displayName"], "Ada L.", "{renamed}");
    assert_eq!(renamed["extensions"]["writes"], json!([{ "topic": topics::USER, "aggregateId": id, "aggregateVersion": 2 }]));

    // The same name again (after trimming) changes nothing and reports no write.
    let unchanged = app.graphql(RENAME, json!({ "name": "Ada L." }), Some(&token)).await;
    assert!(unchanged["errors"].is_null(), "{unchanged}");
    assert_eq!(unchanged["data"]["renameUser"]["displayName"], "Ada L.");
    assert!(unchanged["extensions"]["writes"].is_null(), "{unchanged}");
    assert_eq!(app.count_rows("outbox").await, 2);

    // A real rename after it: had the no-op published anything, it would
    // sit between versions 2 and 3 of this user's partition.
    let again = app.graphql(RENAME, json!({ "name": "Countess" }), Some(&token)).await;
    assert_eq!(again["extensions"]["writes"][0]["aggregateVersion"], 3, "{again}");
    let received =
        read_topic_until(&app.kafka_settings, topics::USER, "three events of ada", |read| about(read, id).len() >= 3).await;
    let events: Vec<_> = about(&received, id)
        .iter()
        .map(|m| (m.envelope.event_type.clone(), m.envelope.aggregate_version, m.envelope.data["display_name"].clone()))
        .collect();
    assert_eq!(
        events,
        [
            ("UserRegistered".to_owned(), 1, json!("ada")),
            ("UserRenamed".to_owned(), 2, json!("Ada L.")),
            ("UserRenamed".to_owned(), 3, json!("Countess")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_bad_user_input_and_writes_nothing() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "username": "Ada", "password": "correct horse" }), "username"),
        (json!({ "username": "ab", "password": "correct horse" }), "username"),
        (json!({ "username": "ada lovelace", "password": "correct horse" }), "username"),
        (json!({ "username": "ada", "password": "short" }), "password"),
        (json!({ "username": "ada", "password": "correct horse", "displayName": "   " }), "displayName"),
        (json!({ "username": "ada", "password": "correct horse", "displayName": "Ada\u{7}" }), "displayName"),
    ];
    for (input, field) in cases {
        let response = app.graphql(REGISTER, json!({ "input": input }), None).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{input}: {response}");
        assert_eq!(response["errors"][0]["extensions"]["field"], field, "{input}: {response}");
        assert!(response["data"].is_null(), "{response}");
    }
    assert_eq!(app.count_rows("app_user").await, 0);
    assert_eq!(app.count_rows("outbox").await, 0);

    let (token, _) = app.register("ada", "correct horse").await;
    let response = app.graphql(RENAME, json!({ "name": "x".repeat(65) }), Some(&token)).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert_eq!(app.count_rows("outbox").await, 1, "only the registration's event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_username_is_a_conflict_not_a_server_error() {
    let app = spawn_app().await;
    app.register("ada", "correct horse").await;

    // `graphql` asserts HTTP 200: the failure is a GraphQL error, not a 500.
    let response = app.graphql(REGISTER, json!({ "input": { "username": "ada", "password": "another one" } }), None).await;

    assert_eq!(error_code(&response), Some("CONFLICT"), "{response}");
    assert_eq!(app.count_rows("app_user").await, 1);
    assert_eq!(app.count_rows("outbox").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_simultaneous_registrations_of_one_username_exactly_one_wins() {
    let app = spawn_app().await;
    let input = json!({ "input": { "username": "bob", "password": "correct horse" } });

    let (first, second) = tokio::join!(app.graphql(REGISTER, input.clone(), None), app.graphql(REGISTER, input.clone(), None));

    let mut codes: Vec<_> =
        [&first, &second].iter().map(|r| r["errors"][0]["extensions"]["code"].as_str().unwrap_or("OK")).collect();
    codes.sort();
    assert_eq!(codes, ["CONFLICT", "OK"], "{first} {second}");
    assert_eq!(app.count_rows("outbox").await, 1);
}
