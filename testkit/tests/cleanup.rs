//! What the testkit promises about ending a test: services are stopped and
//! awaited when dropped, databases are dropped after them unless the test
//! failed, and topic readers see a topic whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use agora_platform::kafka::EmbeddedKafka;
use agora_schema::topics;
use agora_testkit::{base_database_url, read_topic, read_topic_until, Publisher, RunningService, Services, TestDatabase};
use sqlx::migrate::MigrateDatabase;
use sqlx::{Connection, Postgres};

async fn database_exists(name: &str) -> bool {
    let mut connection = sqlx::PgConnection::connect(&base_database_url()).await.unwrap();
    let exists = sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
        .bind(name)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    exists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_services_stops_them_then_drops_their_databases() {
    let services = Services::start().await;
    services.register("ada").await;
    let names = [services.auth_database.name().to_owned(), services.post_database.name().to_owned()];
    for name in &names {
        assert!(database_exists(name).await, "{name} was created");
    }

    drop(services);

    for name in &names {
        assert!(!database_exists(name).await, "{name} was dropped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_test_keeps_its_database() {
    let (name_tx, name_rx) = mpsc::channel();
    let failed = std::thread::spawn(move || {
        let database = TestDatabase::new("agora_testkit_test");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(Postgres::create_database(database.url())).unwrap();
        name_tx.send(database.name().to_owned()).unwrap();
        panic!("a failing test (on purpose)");
    })
    .join();
    assert!(failed.is_err());
    let name = name_rx.recv().unwrap();

    assert!(database_exists(&name).await, "{name} is kept for a look");
    let mut connection = sqlx::PgConnection::connect(&base_database_url()).await.unwrap();
    sqlx::query(&format!(r#"drop database "{name}" with (force)"#)).execute(&mut connection).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_service_has_ended_once_drop_returns() {
    let ended = Arc::new(AtomicBool::new(false));
    let service = RunningService::spawn(0, |shutdown| {
        let ended = ended.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            ended.store(true, Ordering::SeqCst);
            Ok(())
        }
    });

    drop(service);

    assert!(ended.load(Ordering::SeqCst), "drop waited for the service's graceful shutdown");
}

#[test]
fn dropping_a_running_service_on_a_current_thread_runtime_says_which_runtime_to_use() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let service = RunningService::spawn(0, |shutdown| async move {
                shutdown.cancelled().await;
                Ok(())
            });
            drop(service);
        })
    }));
    let payload = dropped.expect_err("drop refuses");
    let message = payload.downcast_ref::<&str>().copied().or(payload.downcast_ref::<String>().map(String::as_str)).unwrap();
    assert!(message.contains("flavor = \"multi_thread\""), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_reader_reads_every_partition_from_the_beginning_and_to_the_end() {
    let kafka = EmbeddedKafka::start().unwrap();
    let publisher = Publisher::new(&kafka.settings());
    let keys: Vec<String> = (0..20).map(|n| format!("key-{n}")).collect();
    let envelope = |key: &str| {
        let event = agora_schema::Event::UserRegistered(agora_schema::UserRegistered {
            user_id: uuid::Uuid::now_v7(),
            username: key.to_owned(),
            display_name: key.to_owned(),
            registered_at: chrono::Utc::now(),
        });
        event.into_envelope(1, chrono::Utc::now())
    };
    for key in &keys {
        publisher.publish(topics::USER, key, &envelope(key).to_bytes()).await;
    }

    let all = read_topic(&kafka.settings(), topics::USER).await;
    let mut read: Vec<&str> = all.iter().map(|message| message.key.as_str()).collect();
    read.sort();
    let mut expected: Vec<&str> = keys.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(read, expected, "each message exactly once");
    let partitions: std::collections::HashSet<i32> = all.iter().map(|message| message.partition).collect();
    assert!(partitions.len() > 1, "the keys spread over several partitions: {partitions:?}");

    let last = keys.last().unwrap().clone();
    let until =
        read_topic_until(&kafka.settings(), topics::USER, "the last key", |read| read.iter().any(|m| m.key == last)).await;
    assert!(until.iter().any(|message| message.key == last));
}
