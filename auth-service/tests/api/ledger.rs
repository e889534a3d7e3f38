//! The points ledger: every PostCreated on the post topic earns its author
//! 10 points, once per event however often it is delivered.

use agora_auth_service::ledger::{self, ApplyError, Outcome};
use agora_schema::{topics, Envelope, Event, PostCreated, UserRegistered};
use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{about, read_topic_until, spawn_app, wait_until, TestApp, DEADLINE};

fn post_created(author_id: Uuid) -> Envelope {
    let post = PostCreated {
        post_id: Uuid::now_v7(),
        author_id,
        title: "Notes".into(),
        body: "On the engine".into(),
        created_at: Utc::now(),
    };
    Event::PostCreated(post).into_envelope(1, Utc::now())
}

/// Publishes on the post topic as post-service would (key = post id), or
/// onto a chosen partition; returns the partition it landed on.
async fn publish(producer: &FutureProducer, envelope: &Envelope, partition: Option<i32>) -> i32 {
    let key = envelope.aggregate_id.to_string();
    let payload = envelope.to_bytes();
    let mut record = FutureRecord::to(topics::POST).key(&key).payload(&payload);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    producer.send(record, Timeout::Never).await.map_err(|(error, _)| error).expect("the broker acknowledges").partition
}

fn producer(app: &TestApp) -> FutureProducer {
    app.kafka_settings.producer_config("test-post-service").create().expect("a producer")
}

async fn points(app: &TestApp, user_id: Uuid) -> i64 {
    let response = app.graphql("query($id: ID!) { user(id: $id) { points } }", json!({ "id": user_id }), None).await;
    response["data"]["user"]["points"].as_i64().unwrap_or_else(|| panic!("no points in {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_post_created_earns_its_author_ten_points_and_publishes_the_new_total() {
    let app = spawn_app().await;
    let (_, author) = app.register("ada", "correct horse").await;
    let producer = producer(&app);
    let mut causes = Vec::new();
    for _ in 0..3 {
        let event = post_created(author);
        publish(&producer, &event, None).await;
        causes.push(event.event_id.to_string());
    }

    wait_until(DEADLINE, "the author has 30 points", || async { points(&app, author).await == 30 }).await;

    let received =
        read_topic_until(&app.kafka_settings, topics::POINTS, "three PointsAwarded", |read| about(read, author).len() >= 3).await;
    let awards = about(&received, author);
    assert!(awards.iter().all(|m| m.key == author.to_string() && m.envelope.event_type == "PointsAwarded"));
    let totals: Vec<_> = awards.iter().map(|m| (m.envelope.aggregate_version, m.envelope.data["total"].clone())).collect();
    assert_eq!(totals, [(1, json!(10)), (2, json!(20)), (3, json!(30))]);
    let mut awarded_for: Vec<String> =
        awards.iter().map(|m| m.envelope.data["cause_event_id"].as_str().unwrap().to_owned()).collect();
    awarded_for.sort();
    causes.sort();
    assert_eq!(awarded_for, causes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_created_delivered_twice_is_awarded_once() {
    let app = spawn_app().await;
    let (_, author) = app.register("ada", "correct horse").await;
    let producer = producer(&app);
    let event = post_created(author);
    let partition = publish(&producer, &event, None).await;
    publish(&producer, &event, Some(partition)).await;
    // Behind both copies on their partition: once it is applied, so are they.
    let marker = post_created(author);
    publish(&producer, &marker, Some(partition)).await;

    wait_until(DEADLINE, "the ledger applied the marker", || async {
        let applied: i64 = sqlx::query_scalar("select count(*) from points_entry where cause_event_id = $1")
            .bind(marker.event_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        applied == 1
    })
    .await;

    assert_eq!(points(&app, author).await, 20);
    assert_eq!(app.count_rows("points_entry").await, 2);
    let awards: i64 =
        sqlx::query_scalar("select count(*) from outbox where event_type = 'PointsAwarded'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(awards, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_same_event_twice_awards_it_once() {
    let app = spawn_app().await;
    let author = Uuid::now_v7();
    let first = post_created(author).to_bytes();

    assert_eq!(ledger::apply(&app.pool, &first).await.unwrap(), Outcome::Awarded { total: 10 });
    assert_eq!(ledger::apply(&app.pool, &first).await.unwrap(), Outcome::AlreadyApplied);
    assert_eq!(ledger::apply(&app.pool, &post_created(author).to_bytes()).await.unwrap(), Outcome::Awarded { total: 20 });

    let other = Event::UserRegistered(UserRegistered {
        user_id: author,
        username: "ada".into(),
        display_name: "ada".into(),
        registered_at: Utc::now(),
    });
    assert_eq!(ledger::apply(&app.pool, &other.into_envelope(1, Utc::now()).to_bytes()).await.unwrap(), Outcome::NotForUs);
    assert!(matches!(ledger::apply(&app.pool, b"{not json").await, Err(ApplyError::Poison(_))));
    let versions: Vec<i64> = sqlx::query_scalar("select aggregate_version from outbox where aggregate_id = $1 order by id")
        .bind(author)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(versions, [1, 2], "one PointsAwarded per award, versions of the points account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_ledger_cannot_read_goes_to_the_dead_letters_and_the_next_is_awarded() {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};

    let app = spawn_app().await;
    let (_, author) = app.register("ada", "correct horse").await;
    let producer = producer(&app);
    let good = post_created(author);
    let key = good.aggregate_id.to_string();
    // Same key, so the same partition, right before a good event.
    let poison = FutureRecord::to(topics::POST).key(&key).payload(&b"{not an event"[..]);
    producer.send(poison, Timeout::Never).await.map_err(|(error, _)| error).unwrap();
    publish(&producer, &good, None).await;
    wait_until(DEADLINE, "the good event is awarded", || async { points(&app, author).await == 10 }).await;

    let reader: StreamConsumer =
        app.kafka_settings.consumer_config("dead-letter-reader", &format!("dlq-{}", Uuid::now_v7())).create().unwrap();
    reader.subscribe(&[topics::DEAD_LETTER]).unwrap();
    let message = tokio::time::timeout(DEADLINE, reader.recv()).await.expect("a dead letter in time").unwrap();
    assert_eq!(message.payload(), Some(&b"{not an event"[..]));
    let header = |name: &str| {
        let headers = message.headers().expect("headers");
        let header = headers.iter().find(|header| header.key == name).unwrap_or_else(|| panic!("no {name} header"));
        String::from_utf8_lossy(header.value.unwrap()).into_owned()
    };
    assert_eq!(header("dead_letter_consumer"), "points-ledger");
    assert_eq!(header("original_topic"), topics::POST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_award_that_cannot_be_applied_is_a_dead_letter_that_a_replay_awards_once_after_the_fix() {
    use agora_platform::consumer::dead_letters::{Command, Target};

    let app = spawn_app().await;
    let (_, author) = app.register("ada", "correct horse").await;
    // Given an account so full that ten more points overflow its integer.
    sqlx::query("insert into points_account (user_id, total, version, updated_at) values ($1, 2147483640, 1, now())")
        .bind(author)
        .execute(&app.pool)
        .await
        .unwrap();
    publish(&producer(&app), &post_created(author), None).await;
    let pending = || async {
        sqlx::query_as::<_, (i64, String)>("select id, reason from consumer_dead_letter where status = 'pending'")
            .fetch_all(&app.pool)
            .await
            .unwrap()
    };
    wait_until(DEADLINE, "the award is a dead letter", || async { pending().await.len() == 1 }).await;
    let (id, reason) = pending().await.remove(0);
    assert!(reason.contains("out of range"), "{reason}");
    let replay = || Command::Replay(Target { id: Some(id), from: None, to: None, all: false });

    // When the cause is fixed and the dead letter replayed.
    sqlx::query("update points_account set total = 0 where user_id = $1").bind(author).execute(&app.pool).await.unwrap();
    ledger::dead_letters(&app.pool, replay()).await.expect("the replay");

    // Then the author has the award, once, however often the replay is asked.
    assert_eq!(points(&app, author).await, 10);
    let again = ledger::dead_letters(&app.pool, replay()).await.unwrap_err();
    assert!(format!("{again:#}").contains("no pending dead letter"), "{again:#}");
    assert_eq!(points(&app, author).await, 10);
    assert!(pending().await.is_empty());
}
