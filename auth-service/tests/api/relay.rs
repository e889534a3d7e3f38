//! The outbox relay on its own (no service around it): a crash between
//! publishing and marking duplicates a batch but loses nothing, and two
//! relays on one database never both publish a row.

use std::collections::HashMap;
use std::time::Duration;

use agora_platform::db::{connect_and_migrate, outbox_migrations, DatabaseSettings};
use agora_platform::kafka::EmbeddedKafka;
use agora_platform::outbox::{self, pending, Relay, RelaySettings};
use agora_platform::trace_context::TraceParent;
use agora_schema::{topics, Event, UserRenamed};
use agora_testkit::{read_topic, wait_until, ReceivedEvent, TcpProxy, TestDatabase, DEADLINE};
use chrono::Utc;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LOCK_KEY: i64 = 42;

/// A fresh database with nothing but the outbox.
async fn outbox_database() -> (TestDatabase, PgPool) {
    let database = TestDatabase::new("agora_relay_test");
    let settings = DatabaseSettings { url: agora_platform::db::secret(database.url()).unwrap(), max_connections: 30 };
    let pool = connect_and_migrate(&settings, vec![outbox_migrations()]).await.expect("the outbox database");
    (database, pool)
}

/// Appends version `version` of `user_id` in a transaction of its own; returns its event id.
async fn append(pool: &PgPool, user_id: Uuid, version: i64) -> Uuid {
    let event = Event::UserRenamed(UserRenamed { user_id, display_name: format!("name {version}"), renamed_at: Utc::now() });
    let envelope = event.into_envelope(version, Utc::now());
    let mut tx = pool.begin().await.unwrap();
    outbox::append(&mut tx, topics::USER, &envelope, &TraceParent::default()).await.unwrap();
    tx.commit().await.unwrap();
    envelope.event_id
}

fn deliveries_per_event(received: &[ReceivedEvent]) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for message in received {
        *counts.entry(message.envelope.event_id).or_default() += 1;
    }
    counts
}

/// The versions of one aggregate in the order they were read, first
/// deliveries only.
fn first_delivery_versions(received: &[ReceivedEvent], aggregate_id: Uuid) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    received
        .iter()
        .filter(|m| m.envelope.aggregate_id == aggregate_id && seen.insert(m.envelope.event_id))
        .map(|m| m.envelope.aggregate_version)
        .collect()
}

/// The backend process id of the session holding the relay lock, if any.
async fn leader(pool: &PgPool) -> Option<i32> {
    sqlx::query_scalar(
        "select pid from pg_locks
         where locktype = 'advisory' and granted and objsubid = 1 and (classid::bigint << 32 | objid::bigint) = $1
           and database = (select oid from pg_database where datname = current_database())",
    )
    .bind(LOCK_KEY)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_relay_crash_between_publishing_and_marking_duplicates_the_batch_and_loses_nothing() {
    let kafka = EmbeddedKafka::start().unwrap();
    let (_database, pool) = outbox_database().await;
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let mut event_ids = Vec::new();
    for version in 1..=3 {
        event_ids.push(append(&pool, ada, version).await);
        event_ids.push(append(&pool, bob, version).await);
    }
    let small_batches = RelaySettings { batch_size: 4, ..RelaySettings::new(LOCK_KEY) };
    let crashing = Relay::new(pool.clone(), kafka.settings(), small_batches, "crashing-relay");
    let producer = crashing.producer().unwrap();
    let mut session = PgConnection::connect_with(&pool.connect_options()).await.unwrap();
    // Leader as a real relay would be, so no other relay starts before this session ends.
    sqlx::query("select pg_advisory_lock($1)").bind(LOCK_KEY).execute(&mut session).await.unwrap();

    let batch = crashing.claim_and_publish(&mut session, &producer).await.unwrap().expect("rows to publish");
    assert_eq!(batch.len(), 4);
    // The process dies: the batch is never marked and its session ends.
    drop(batch);
    drop(session);
    assert_eq!(pending(&pool).await.unwrap(), 6);
    let shutdown = CancellationToken::new();
    let relay =
        tokio::spawn(Relay::new(pool.clone(), kafka.settings(), RelaySettings::new(LOCK_KEY), "relay").run(shutdown.clone()));
    wait_until(DEADLINE, "every row is marked published", || async { pending(&pool).await.unwrap() == 0 }).await;

    let received = read_topic(&kafka.settings(), topics::USER).await;
    let deliveries = deliveries_per_event(&received);
    let expected: HashMap<Uuid, usize> = event_ids.iter().enumerate().map(|(i, id)| (*id, if i < 4 { 2 } else { 1 })).collect();
    assert_eq!(deliveries, expected, "the crashed batch twice, the rest once");
    assert_eq!(first_delivery_versions(&received, ada), [1, 2, 3]);
    assert_eq!(first_delivery_versions(&received, bob), [1, 2, 3]);
    shutdown.cancel();
    relay.await.unwrap().unwrap();
}

#[tokio::test]
async fn two_relays_on_one_database_never_both_publish_a_row() {
    let kafka = EmbeddedKafka::start().unwrap();
    let (_database, pool) = outbox_database().await;
    let settings = RelaySettings { batch_size: 10, standby_poll: Duration::from_millis(20), ..RelaySettings::new(LOCK_KEY) };
    let (first_stop, second_stop) = (CancellationToken::new(), CancellationToken::new());
    let first = tokio::spawn(Relay::new(pool.clone(), kafka.settings(), settings.clone(), "relay-1").run(first_stop.clone()));
    wait_until(DEADLINE, "the first relay leads", || async { leader(&pool).await.is_some() }).await;
    let first_leader = leader(&pool).await;
    let second = tokio::spawn(Relay::new(pool.clone(), kafka.settings(), settings, "relay-2").run(second_stop.clone()));

    // 20 users renamed 10 times each, the users concurrently.
    let users: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let writers: Vec<_> = users
        .iter()
        .map(|&user| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for version in 1..=10 {
                    append(&pool, user, version).await;
                }
            })
        })
        .collect();
    // Halfway, the leader stops and the standby takes over.
    wait_until(DEADLINE, "half the events are written", || async {
        sqlx::query_scalar::<_, i64>("select count(*) from outbox").fetch_one(&pool).await.unwrap() >= 100
    })
    .await;
    first_stop.cancel();
    wait_until(DEADLINE, "the second relay leads", || async { leader(&pool).await.is_some_and(|pid| Some(pid) != first_leader) })
        .await;
    for writer in writers {
        writer.await.unwrap();
    }
    wait_until(DEADLINE, "every row is marked published", || async { pending(&pool).await.unwrap() == 0 }).await;

    let received = read_topic(&kafka.settings(), topics::USER).await;
    assert_eq!(received.len(), 200);
    assert!(deliveries_per_event(&received).values().all(|&count| count == 1), "an event was published twice");
    for user in users {
        assert_eq!(first_delivery_versions(&received, user), (1..=10).collect::<Vec<_>>(), "in version order");
    }
    second_stop.cancel();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_within_seconds_when_the_leaders_session_is_cut_and_nothing_is_lost_or_reordered() {
    let kafka = EmbeddedKafka::start().unwrap();
    let (_database, pool) = outbox_database().await;
    let settings = RelaySettings { batch_size: 10, standby_poll: Duration::from_millis(100), ..RelaySettings::new(LOCK_KEY) };
    let (first_stop, second_stop) = (CancellationToken::new(), CancellationToken::new());
    let first = tokio::spawn(Relay::new(pool.clone(), kafka.settings(), settings.clone(), "relay-1").run(first_stop.clone()));
    wait_until(DEADLINE, "the first relay leads", || async { leader(&pool).await.is_some() }).await;
    let cut_leader = leader(&pool).await.unwrap();
    let name: String = sqlx::query_scalar("select application_name from pg_stat_activity where pid = $1")
        .bind(cut_leader)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "relay-1 relay", "the leadership session says whose it is");
    let second = tokio::spawn(Relay::new(pool.clone(), kafka.settings(), settings, "relay-2").run(second_stop.clone()));

    let users: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let writers: Vec<_> = users
        .iter()
        .map(|&user| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for version in 1..=10 {
                    append(&pool, user, version).await;
                }
            })
        })
        .collect();
    wait_until(DEADLINE, "half the events are written", || async {
        sqlx::query_scalar::<_, i64>("select count(*) from outbox").fetch_one(&pool).await.unwrap() >= 100
    })
    .await;
    // The leader's connection is cut: its session ends server-side, and
    // with it the lock (as when its host vanishes and keepalives give up).
    let cut_at = std::time::Instant::now();
    let terminated: bool = sqlx::query_scalar("select pg_terminate_backend($1)").bind(cut_leader).fetch_one(&pool).await.unwrap();
    assert!(terminated);
    wait_until(DEADLINE, "another session leads", || async { leader(&pool).await.is_some_and(|pid| pid != cut_leader) }).await;
    for writer in writers {
        writer.await.unwrap();
    }
    wait_until(DEADLINE, "every row is marked published", || async { pending(&pool).await.unwrap() == 0 }).await;
    assert!(cut_at.elapsed() < Duration::from_secs(10), "the outbox drained {:?} after the cut", cut_at.elapsed());

    let received = read_topic(&kafka.settings(), topics::USER).await;
    let deliveries = deliveries_per_event(&received);
    assert_eq!(deliveries.len(), 200, "every event published (the cut batch perhaps twice)");
    for user in users {
        assert_eq!(first_delivery_versions(&received, user), (1..=10).collect::<Vec<_>>(), "in version order");
    }
    first_stop.cancel();
    second_stop.cancel();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_session_stops_answering_steps_down_and_can_lead_again() {
    let kafka = EmbeddedKafka::start().unwrap();
    let (database, pool) = outbox_database().await;
    // The first relay reaches the database through a proxy that the test freezes.
    let proxy = TcpProxy::to_database(database.url()).await;
    // (Its pool fails fast on a dead connection, as every service's pool does.)
    let proxied = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(agora_platform::db::ACQUIRE_TIMEOUT)
        .connect(&proxy.url(database.url()))
        .await
        .unwrap();
    let settings = RelaySettings { batch_size: 10, standby_poll: Duration::from_millis(100), ..RelaySettings::new(LOCK_KEY) };
    let (first_stop, second_stop) = (CancellationToken::new(), CancellationToken::new());
    let first = tokio::spawn(Relay::new(proxied.clone(), kafka.settings(), settings.clone(), "relay-1").run(first_stop.clone()));
    wait_until(DEADLINE, "the first relay leads", || async { leader(&pool).await.is_some() }).await;
    let frozen_leader = leader(&pool).await.unwrap();
    let second = tokio::spawn(Relay::new(pool.clone(), kafka.settings(), settings, "relay-2").run(second_stop.clone()));

    // The leader's connections go silent (no FIN, no RST), and the server
    // ends its session: the lock is free, the leader does not know it.
    proxy.freeze();
    sqlx::query("select pg_terminate_backend($1)").bind(frozen_leader).execute(&pool).await.unwrap();
    let user = Uuid::now_v7();
    for version in 1..=5 {
        append(&pool, user, version).await;
    }
    wait_until(DEADLINE, "the standby publishes", || async { pending(&pool).await.unwrap() == 0 }).await;

    // The silent leader must have stepped down (its heartbeat timed out):
    // once the second relay stops, it leads again and publishes.
    second_stop.cancel();
    second.await.unwrap().unwrap();
    for version in 6..=10 {
        append(&pool, user, version).await;
    }
    wait_until(DEADLINE, "the first relay publishes again", || async { pending(&pool).await.unwrap() == 0 }).await;
    let leader_name: Option<String> = sqlx::query_scalar("select application_name from pg_stat_activity where pid = $1")
        .bind(leader(&pool).await)
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(leader_name.as_deref(), Some("relay-1 relay"));
    let received = read_topic(&kafka.settings(), topics::USER).await;
    assert_eq!(first_delivery_versions(&received, user), (1..=10).collect::<Vec<_>>());
    first_stop.cancel();
    first.await.unwrap().unwrap();
    proxy.cut();
}
