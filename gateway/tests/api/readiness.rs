//! `/readyz` knows the projector's lag: a gateway whose projector is held
//! while events arrive answers 503 naming the lag, and 200 again once the
//! projector has caught up; the lag is on `/metrics`.

use std::time::Duration;

use agora_testkit::{get, wait_until, Publisher, DEADLINE};
use serde_json::Value;
use sqlx::Connection;
use uuid::Uuid;

use crate::events::registered;
use crate::helpers::spawn_lone_gateway_with;

const MAX_LAG: u64 = 5;
const EVENTS: usize = 12;

async fn readiness(port: u16) -> (u16, Value) {
    let response = get(port, "/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("/readyz answers JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_naming_the_lag_while_the_projector_is_further_behind_than_allowed() {
    let system = spawn_lone_gateway_with(|config| {
        config.ready_max_projector_lag = MAX_LAG;
        config.projector_lag_interval = Duration::from_millis(100);
    })
    .await;
    let port = system.gateway.port();
    wait_until(DEADLINE, "the gateway is ready", || async { readiness(port).await.0 == 200 }).await;
    let (_, body) = readiness(port).await;
    assert_eq!(body["projector"]["status"], "ok", "{body}");
    assert_eq!(body["projector"]["max_lag_events"], MAX_LAG, "{body}");

    // Given a projector held: its batches take `read_model_serving` in share
    // mode, which an exclusive lock blocks (queries go on).
    let mut holder = sqlx::PgConnection::connect(system.read_model.url()).await.expect("connecting to the read model");
    let mut hold = holder.begin().await.expect("a transaction");
    sqlx::query("lock table read_model_serving in exclusive mode").execute(&mut *hold).await.expect("locking");

    // When more events than the limit arrive,
    let publisher = Publisher::new(&system.kafka.settings());
    let users: Vec<Uuid> = (0..EVENTS).map(|_| Uuid::now_v7()).collect();
    for (index, user) in users.iter().enumerate() {
        publisher.publish_event(&registered(*user, &format!("lagging_{index}"))).await;
    }

    // then the gateway is not ready, and says why.
    wait_until(DEADLINE, "/readyz answers 503 for the projector's lag", || async { readiness(port).await.0 == 503 }).await;
    let (_, body) = readiness(port).await;
    let projector = &body["projector"];
    assert_eq!(projector["status"], "behind", "{body}");
    assert!(projector["lag_events"].as_u64().unwrap() > MAX_LAG, "{body}");
    assert!(projector["lag_seconds"].as_f64().is_some(), "{body}");
    assert!(projector["behind"].as_object().is_some_and(|behind| !behind.is_empty()), "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    assert_eq!(body["kafka"], "ok", "{body}");
    // Nothing was applied meanwhile.
    let applied: i64 = sqlx::query_scalar("select count(*) from read_user where id = any($1)")
        .bind(&users)
        .fetch_one(&system.gateway.read_db)
        .await
        .unwrap();
    assert_eq!(applied, 0, "the lock holds the projector");

    // The oldest event not applied ages while the projector is held.
    wait_until(DEADLINE, "the lag in seconds grows", || async {
        readiness(port).await.1["projector"]["lag_seconds"].as_f64().is_some_and(|seconds| seconds >= 0.2)
    })
    .await;

    // The gauges are on /metrics, with the lag per partition.
    let metrics = get(system.gateway.metrics_port, "/metrics").await.text().await.unwrap();
    assert!(metrics.contains("agora_projector_lag_events{"), "{metrics}");
    let seconds = metrics.lines().find_map(|line| line.strip_prefix("agora_projector_lag_seconds ")).expect("the seconds gauge");
    assert!(seconds.trim().parse::<f64>().unwrap() > 0.0, "{metrics}");
    let lagging_partitions =
        metrics.lines().filter(|line| line.starts_with("agora_projector_lag_events{") && !line.ends_with(" 0")).count();
    assert!(lagging_partitions > 0, "{metrics}");

    // Released, the projector catches up and the gateway is ready again.
    hold.rollback().await.unwrap();
    wait_until(DEADLINE, "/readyz answers 200 again", || async { readiness(port).await.0 == 200 }).await;
    let (_, body) = readiness(port).await;
    assert_eq!(body["projector"]["lag_events"], 0, "{body}");
    assert_eq!(body["projector"]["lag_seconds"], 0.0, "{body}");
    let applied: i64 = sqlx::query_scalar("select count(*) from read_user where id = any($1)")
        .bind(&users)
        .fetch_one(&system.gateway.read_db)
        .await
        .unwrap();
    assert_eq!(applied, EVENTS as i64);
}
