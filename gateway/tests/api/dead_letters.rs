//! The projector's dead letters as an operator handles them: listed with
//! their reason and place in the log, replayed through the projector once
//! their cause is fixed (once, however often the replay is asked), skipped,
//! all with the `gateway dead-letters` command, and counted on `/metrics`.

use std::process::Output;

use agora_schema::topics;
use agora_testkit::{publish, publish_event, wait_until, DEADLINE};
use serde_json::json;
use uuid::Uuid;

use crate::events::{post, registered};
use crate::helpers::spawn_lone_gateway;

/// Runs `gateway dead-letters <arguments>` on the read model at `database_url`.
fn dead_letters(database_url: &str, arguments: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("dead-letters")
        .args(arguments)
        .env("DATABASE_URL", database_url)
        .env("USER", "the-test")
        .output()
        .expect("running gateway dead-letters")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn statuses(pool: &sqlx::PgPool) -> Vec<(i64, String, String)> {
    sqlx::query_as("select id, kind, status from consumer_dead_letter order by id").fetch_all(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_replayed_once_after_its_cause_is_fixed_and_another_skipped() {
    let system = spawn_lone_gateway().await;
    let (kafka, pool, url) = (system.kafka.settings(), &system.gateway.read_db, system.read_model.url());
    // Given ada, and a second user registered under ada's username: the read
    // model's unique username refuses it, for good.
    let (ada, impostor) = (Uuid::now_v7(), Uuid::now_v7());
    publish_event(&kafka, &registered(ada, "ada")).await;
    // The two keys may land on different partitions, which the projector
    // reads in no set order: the impostor comes once ada is in.
    wait_until(DEADLINE, "ada in the read model", || async {
        sqlx::query_scalar::<_, i64>("select count(*) from read_user where id = $1")
            .bind(ada)
            .fetch_one(pool)
            .await
            .unwrap()
            == 1
    })
    .await;
    publish_event(&kafka, &registered(impostor, "ada")).await;
    publish(&kafka, topics::POST, &Uuid::now_v7().to_string(), b"{ not an event").await;
    let after = post(ada, "after the poison");
    publish_event(&kafka, &after).await;
    wait_until(DEADLINE, "two dead letters recorded", || async { statuses(pool).await.len() == 2 }).await;
    let letters = statuses(pool).await;
    let rejected = letters.iter().find(|(_, kind, _)| kind == "rejected").expect("the impostor is rejected").0;
    let undecodable = letters.iter().find(|(_, kind, _)| kind == "undecodable").expect("the garbage is undecodable").0;

    // The list shows each with its reason, source and event.
    let listed = dead_letters(url, &["list", "--status", "pending"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed = stdout(&listed);
    let line = listed.lines().find(|line| line.starts_with(&format!("{rejected}\t"))).unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains(&format!("{}/", topics::USER)) && line.contains("pending\trejected"), "{line}");
    assert!(line.contains("duplicate key") && line.contains(&impostor.to_string()), "{line}");
    let metrics = agora_testkit::http_client()
        .get(format!("http://127.0.0.1:{}/metrics", system.gateway.metrics_port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|line| line.starts_with("agora_consumer_dead_letters_total")
            && line.contains(r#"kind="rejected""#)
            && line.contains(&format!(r#"topic="{}""#, topics::USER))),
        "{metrics}"
    );

    // A replay before the fix fails, says so, and leaves it pending.
    let early = dead_letters(url, &["replay", "--id", &rejected.to_string()]);
    assert!(!early.status.success(), "a replay that still fails must say so: {early:?}");
    assert_eq!(statuses(pool).await.iter().find(|row| row.0 == rejected).unwrap().2, "pending");

    // When the operator fixes the cause (ada's row gets its real username) and replays.
    sqlx::query("update read_user set username = 'ada_lovelace' where id = $1").bind(ada).execute(pool).await.unwrap();
    let replayed = dead_letters(url, &["replay", "--all"]);
    assert!(!replayed.status.success(), "the undecodable one still fails: {replayed:?}");
    assert!(stdout(&replayed).contains(&format!("replayed [{rejected}]")), "{}", stdout(&replayed));

    // Then the impostor is in the read model, and a second replay applies nothing.
    let impostor_view = system
        .gateway
        .query(
            "query($id: ID!) { user(id: $id) { username } }",
            json!({ "id": impostor }),
            &[("cache-control", "no-cache".into())],
        )
        .await;
    assert_eq!(impostor_view["data"]["user"]["username"], "ada", "{impostor_view}");
    let again = dead_letters(url, &["replay", "--id", &rejected.to_string()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("no pending dead letter"), "{again:?}");

    // And the garbage is skipped with a note.
    let skipped = dead_letters(url, &["skip", "--id", &undecodable.to_string(), "--note", "not ours"]);
    assert!(skipped.status.success(), "{skipped:?}");
    let mut expected = vec![
        (rejected, "rejected".to_owned(), "replayed".to_owned()),
        (undecodable, "undecodable".to_owned(), "skipped".to_owned()),
    ];
    expected.sort();
    assert_eq!(statuses(pool).await, expected);
    let note: String = sqlx::query_scalar("select note from consumer_dead_letter where id = $1")
        .bind(undecodable)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(note, "skipped by the-test: not ours");
    let unknown = dead_letters(url, &["skip", "--id", "999999", "--note", "x"]);
    assert!(!unknown.status.success(), "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_hands_its_dead_letters_to_the_serving_projector_and_supersedes_the_old_ones() {
    let system = spawn_lone_gateway().await;
    let (kafka, pool) = (system.kafka.settings(), &system.gateway.read_db);
    publish(&kafka, topics::POST, &Uuid::now_v7().to_string(), b"{ not an event").await;
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    wait_until(DEADLINE, "the dead letter recorded", || async { statuses(pool).await.len() == 1 }).await;

    let settings = agora_gateway::projector::rebuild::RebuildSettings {
        batch_size: 50,
        progress_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    agora_gateway::projector::rebuild::run(
        pool.clone(),
        kafka,
        "agora-test",
        settings,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("the rebuild");

    // The old generation's dead letter is superseded; the rebuild met the
    // same message again, and its dead letter now belongs to the projector.
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("select consumer, status, \"offset\" from consumer_dead_letter order by id")
            .fetch_all(pool)
            .await
            .unwrap();
    let projector = agora_gateway::projector::CONSUMER_NAME.to_owned();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), (projector.as_str(), "skipped"), "{rows:?}");
    assert_eq!((rows[1].0.as_str(), rows[1].1.as_str()), (projector.as_str(), "pending"), "{rows:?}");
    assert_eq!(rows[0].2, rows[1].2, "the same message");
}
