//! The outbox is the service's durable history, the topics a copy of it: a
//! relay that finds a topic not holding what it published there (a new
//! cluster, as the embedded broker of every local run is) publishes the
//! whole outbox again, in order.

use std::collections::HashSet;

use agora_platform::db::{connect_and_migrate, outbox_migrations, DatabaseSettings};
use agora_platform::kafka::EmbeddedKafka;
use agora_platform::outbox::{self, pending, Relay, RelaySettings};
use agora_platform::trace_context::TraceParent;
use agora_schema::{topics, Event, UserRenamed};
use agora_testkit::{read_topic_until, wait_until, TestDatabase, DEADLINE};
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_on_a_new_cluster_publishes_the_whole_outbox_again() {
    let database = TestDatabase::new("agora_relay_test");
    let settings = DatabaseSettings { url: agora_platform::db::secret(database.url()).unwrap(), max_connections: 10 };
    let pool = connect_and_migrate(&settings, vec![outbox_migrations()]).await.unwrap();
    let user = Uuid::now_v7();
    let mut events = Vec::new();
    for version in 1..=5 {
        let event =
            Event::UserRenamed(UserRenamed { user_id: user, display_name: format!("name {version}"), renamed_at: Utc::now() });
        let envelope = event.into_envelope(version, Utc::now());
        let mut tx = pool.begin().await.unwrap();
        outbox::append(&mut tx, topics::USER, &envelope, &TraceParent::default()).await.unwrap();
        tx.commit().await.unwrap();
        events.push(envelope.event_id);
    }
    let relay = |kafka: &EmbeddedKafka| Relay::new(pool.clone(), kafka.settings(), RelaySettings::new(7), "test-relay");

    let first = EmbeddedKafka::start().unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(relay(&first).run(stop.clone()));
    wait_until(DEADLINE, "the outbox is published", || async { pending(&pool).await.unwrap() == 0 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();
    drop(first);

    let second = EmbeddedKafka::start().unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(relay(&second).run(stop.clone()));
    let received = read_topic_until(&second.settings(), topics::USER, "the five events again", |read| {
        read.iter().map(|m| m.envelope.event_id).collect::<HashSet<_>>().len() == 5
    })
    .await;
    let versions: Vec<i64> = received.iter().map(|m| m.envelope.aggregate_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5], "republished once each, in order");
    wait_until(DEADLINE, "marked published again", || async { pending(&pool).await.unwrap() == 0 }).await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // The same relay restarted on the same cluster publishes nothing again.
    let stop = CancellationToken::new();
    let running = tokio::spawn(relay(&second).run(stop.clone()));
    let marker = Event::UserRenamed(UserRenamed { user_id: user, display_name: "marker".into(), renamed_at: Utc::now() })
        .into_envelope(6, Utc::now());
    let mut tx = pool.begin().await.unwrap();
    outbox::append(&mut tx, topics::USER, &marker, &TraceParent::default()).await.unwrap();
    tx.commit().await.unwrap();
    let received = read_topic_until(&second.settings(), topics::USER, "the marker", |read| {
        read.iter().any(|m| m.envelope.event_id == marker.event_id)
    })
    .await;
    assert_eq!(received.len(), 6, "nothing but the marker was published again");
    stop.cancel();
    running.await.unwrap().unwrap();
}
