//! Rebuilding the read model into a new generation and switching to it
//! while it serves: under load through two replicas, with a new shape, and
//! abandoned half way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_gateway::projector::generation::{self, SHAPE_SQL};
use agora_gateway::projector::rebuild::{self, RebuildSettings, Shape};
use agora_testkit::{publish_event, wait_until, DEADLINE};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::{post, registered, renamed};
use crate::helpers::{bearer, spawn_gateway, spawn_lone_gateway, spawn_system, wait_until_sharing, Account, GatewayClient};

fn quick() -> RebuildSettings {
    RebuildSettings { batch_size: 50, progress_interval: Duration::from_millis(100), ..RebuildSettings::default() }
}

fn consistency(response: &Value) -> (&'static str, String) {
    let token =
        response["extensions"]["consistencyToken"].as_str().unwrap_or_else(|| panic!("no consistency token in {response}"));
    ("x-consistency-token", token.to_owned())
}

async fn states(pool: &sqlx::PgPool) -> Vec<(i64, i32, String)> {
    generation::list(pool).await.unwrap().into_iter().map(|row| (row.generation, row.shape_version, row.state)).collect()
}

async fn schema_exists(pool: &sqlx::PgPool, schema: &str) -> bool {
    sqlx::query_scalar("select exists (select 1 from pg_namespace where nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What a writer saw go wrong, and how many of its writes were confirmed.
#[derive(Default)]
struct Tally {
    failures: Vec<String>,
    posts: usize,
}

/// Writes a post through `writer`, then reads it at once through `reader`
/// with the mutation's consistency token; then reads its author's
/// postCount, which must never go down and must count every confirmed post.
async fn write_and_read_back(writer: &GatewayClient, reader: &GatewayClient, account: &Account, n: usize, tally: &mut Tally) {
    let created = writer.create_post(account, &format!("post {n} of {}", account.id)).await;
    let Some(id) = created["data"]["createPost"]["id"].as_str() else {
        tally.failures.push(format!("createPost failed: {created}"));
        return;
    };
    tally.posts += 1;
    let read = reader
        .query(
            "query($id: ID!, $author: ID!) { post(id: $id) { id } user(id: $author) { postCount } }",
            json!({ "id": id, "author": account.id.to_string() }),
            &[consistency(&created)],
        )
        .await;
    if read.get("errors").is_some() || read["data"]["post"]["id"] != id {
        tally.failures.push(format!("read-your-writes: post {id} not seen at once: {read}"));
    }
    let count = read["data"]["user"]["postCount"].as_u64().unwrap_or(0) as usize;
    if count < tally.posts {
        tally.failures.push(format!("partial read: postCount {count} after {} confirmed posts", tally.posts));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_load_switches_both_replicas_without_a_failed_or_partial_read() {
    let system = spawn_system().await;
    let second = spawn_gateway(&system.services, system.read_model.url(), |_| {}).await;
    wait_until_sharing(&[&system.gateway, &second]).await;
    let replicas = [system.gateway.client(), second.client()];
    let mut accounts = Vec::new();
    for n in 0..3 {
        accounts.push(system.gateway.register(&format!("writer{n}")).await);
    }
    for (n, account) in accounts.iter().enumerate() {
        let mut seed = Tally::default();
        for i in 0..5 {
            write_and_read_back(&replicas[0], &replicas[1], account, n * 10 + i, &mut seed).await;
        }
        assert!(seed.failures.is_empty(), "{:?}", seed.failures);
    }

    // Writers (each through one replica, read back through the other) and
    // readers (whole pages) run before, during and after the rebuild.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (n, account) in accounts.into_iter().enumerate() {
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut tally = Tally { posts: 5, ..Tally::default() };
            let mut i = 100;
            while !stop.load(Ordering::Relaxed) && i < 140 {
                let (writer, reader) = if i % 2 == 0 { (&replicas[0], &replicas[1]) } else { (&replicas[1], &replicas[0]) };
                write_and_read_back(writer, reader, &account, i, &mut tally).await;
                if i % 10 == 0 {
                    let renamed = writer
                        .query(
                            "mutation($name: String!) { renameUser(displayName: $name) { displayName } }",
                            json!({ "name": format!("Writer {n} ({i})") }),
                            &[bearer(&account.token)],
                        )
                        .await;
                    let seen = reader
                        .query(
                            "query($id: ID!) { user(id: $id) { displayName } }",
                            json!({ "id": account.id.to_string() }),
                            &[consistency(&renamed)],
                        )
                        .await;
                    if seen["data"]["user"]["displayName"] != format!("Writer {n} ({i})") {
                        tally.failures.push(format!("read-your-writes: rename not seen at once: {seen}"));
                    }
                }
                i += 1;
            }
            tally
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2 {
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let (mut failures, mut reads, mut most) = (Vec::new(), 0, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let page = replicas[r]
                    .query(
                        "{ posts(first: 100) { edges { node { id author { username postCount } } } } }",
                        json!({}),
                        &[("cache-control", "no-cache".to_owned())],
                    )
                    .await;
                reads += 1;
                let Some(edges) = page["data"]["posts"]["edges"].as_array() else {
                    failures.push(format!("a page failed: {page}"));
                    continue;
                };
                if edges.len() < most || edges.iter().any(|edge| edge["node"]["author"]["username"].is_null()) {
                    failures.push(format!("a partial page: {} posts after {most}", edges.len()));
                }
                most = most.max(edges.len());
            }
            (failures, reads)
        }));
    }

    let pool = system.gateway.read_db.clone();
    let report = rebuild::run(pool.clone(), system.services.kafka.settings(), "agora-test", quick(), CancellationToken::new())
        .await
        .expect("the rebuild");
    assert_eq!((report.from, report.to), (1, 2));
    assert!(report.events > 0, "{report:?}");

    // After the switch both replicas' projectors write to the new generation.
    let mut after = Vec::new();
    for writer in writers {
        after.push(writer.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        let (failures, count) = reader.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        reads += count;
    }
    assert!(reads > 0);
    for tally in &after {
        assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    }
    assert_eq!(states(&pool).await, vec![(1, 1, "dropped".to_owned()), (2, 1, "serving".to_owned())]);
    assert!(!schema_exists(&pool, "read_g1").await);

    let written: i64 = sqlx::query_scalar("select count(*) from post").fetch_one(&system.services.post_db).await.unwrap();
    assert_eq!(written as usize, 15 + after.iter().map(|tally| tally.posts - 5).sum::<usize>());
    wait_until(DEADLINE, "the read model shows every post", || async {
        let shown: i64 = sqlx::query_scalar("select count(*) from read_post").fetch_one(&pool).await.unwrap();
        shown == written
    })
    .await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_shape_of_the_read_model_ships_by_rebuild_and_switch() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    publish_event(&kafka, &post(ada, "Before the new shape")).await;
    publish_event(&kafka, &renamed(ada, "Ada", 2)).await;
    let page = "{ posts { nodes { title author { displayName postCount } } } }";
    wait_until(DEADLINE, "the events are projected", || async {
        system.gateway.query(page, json!({}), &[]).await["data"]["posts"]["nodes"][0]["author"]["displayName"] == "Ada"
    })
    .await;
    let before = system.gateway.query(page, json!({}), &[]).await;

    // Shape 2: read_post also keeps the title's length.
    let shape = Shape {
        version: 2,
        sql: format!(
            "{SHAPE_SQL}\nalter table read_post add column title_length integer generated always as (char_length(title)) stored;"
        ),
    };
    let pool = system.gateway.read_db.clone();
    let settings = RebuildSettings { shape, keep_old: true, ..quick() };
    let report = rebuild::run(pool.clone(), kafka.clone(), "agora-test", settings, CancellationToken::new()).await.unwrap();
    assert_eq!((report.from, report.to, report.events), (1, 2, 3));
    assert_eq!(states(&pool).await, vec![(1, 1, "retired".to_owned()), (2, 2, "serving".to_owned())]);
    assert!(schema_exists(&pool, "read_g1").await, "the old generation was kept for a rollback");

    let after = system.gateway.query(page, json!({}), &[]).await;
    assert_eq!(after["data"], before["data"], "the same answer from the new generation");
    assert_eq!(after["extensions"]["cache"], "miss", "the switch dropped the cached answers: {after}");
    let lengths: Vec<i32> = sqlx::query_scalar("select title_length from read_post").fetch_all(&pool).await.unwrap();
    assert_eq!(lengths, vec!["Before the new shape".len() as i32]);

    // The serving projector now writes to the new generation.
    publish_event(&kafka, &post(ada, "After")).await;
    wait_until(DEADLINE, "the new post is projected into the new shape", || async {
        let lengths: Vec<i32> =
            sqlx::query_scalar("select title_length from read_post order by title_length").fetch_all(&pool).await.unwrap();
        lengths == vec![5, 20]
    })
    .await;
    let old: i64 = sqlx::query_scalar("select count(*) from read_g1.read_post").fetch_one(&pool).await.unwrap();
    assert_eq!(old, 1, "the retired generation is not written to");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_stopped_before_its_switch_leaves_the_serving_generation_alone() {
    let system = spawn_lone_gateway().await;
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, "ada")).await;
    let pool = system.gateway.read_db.clone();
    let stopped = CancellationToken::new();
    stopped.cancel();
    let error = rebuild::run(pool.clone(), kafka, "agora-test", quick(), stopped).await.unwrap_err();
    assert!(format!("{error:#}").contains("before the switch"), "{error:#}");
    assert_eq!(states(&pool).await, vec![(1, 1, "serving".to_owned()), (2, 1, "abandoned".to_owned())]);
    assert!(!schema_exists(&pool, "read_g2").await);
    wait_until(DEADLINE, "the serving generation still projects", || async {
        let user = system.gateway.query("{ userByUsername(username: \"ada\") { id } }", json!({}), &[]).await;
        !user["data"]["userByUsername"].is_null()
    })
    .await;
}
