//! Command-to-read-model freshness at a steady command rate.
//!
//! A fixed-rate generator sends `createPost` straight to post-service (the
//! owner of posts), spreading the posts over the data set's users. For each
//! post it notes when the request left (`sent`) and when post-service
//! answered (`committed`: the post and its outbox row committed before the
//! answer). A watcher LISTENs on the read model's `agora_projection`
//! channel (the projector notifies in the transaction that applies a batch)
//! and, on each notification and every 5 ms besides, looks up which pending
//! posts the read model now has (`visible`). Freshness = visible − committed;
//! sent → visible is reported as well.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::dataset::BenchUser;
use crate::pace;
use crate::stats::{summarize, Summary};
use crate::system::{self, System};

pub const CREATE_POST: &str = "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FreshnessReport {
    pub target_rate_per_second: f64,
    pub achieved_rate_per_second: f64,
    pub seconds: f64,
    pub sent: usize,
    pub failed: usize,
    /// Posts that the read model never showed within the drain time.
    pub not_seen: usize,
    /// createPost round trip at post-service.
    pub command: Summary,
    /// committed (post-service answered) → visible in the read model.
    pub freshness: Summary,
    /// sent → visible in the read model.
    pub sent_to_visible: Summary,
    /// The first stage alone: the outbox row's commit (`created_at`, the
    /// transaction's start) → the relay marking it published (Kafka acked).
    pub outbox_to_kafka: Summary,
    /// After every post was visible: until the read model also
    /// shows every post's points (the ledger's backlog drained).
    pub points_caught_up_seconds: Option<f64>,
}

/// Sends one post; the answer's id and the instants it was sent and committed.
pub async fn create_post(
    client: &reqwest::Client,
    url: &str,
    user: &BenchUser,
    title: &str,
) -> anyhow::Result<(Uuid, Instant, Instant)> {
    let sent = Instant::now();
    let variables = json!({ "input": { "title": title, "body": "Freshness probe: how soon does the read model show this?" } });
    let headers = [("authorization".to_owned(), format!("Bearer {}", user.token))];
    let body = crate::gql::call(client, url, CREATE_POST, variables, &headers).await?;
    let committed = Instant::now();
    let id: Uuid = body["data"]["createPost"]["id"].as_str().context("no post id")?.parse()?;
    Ok((id, sent, committed))
}

pub async fn run(system: &System, users: Arc<Vec<BenchUser>>, rate: f64, seconds: f64) -> anyhow::Result<FreshnessReport> {
    let total = (rate * seconds).round() as usize;
    let client = crate::gql::client();
    let url = system.post_graphql();
    let pool = system::pool(&system.postgres, system::READ_DB, 2).await?;
    // The data set and the throughput runs wrote a lot of WAL: a checkpoint
    // now, rather than one (and the full-page writes after it) in the middle
    // of the 20 seconds measured. PostgreSQL's next timed checkpoint is then
    // checkpoint_timeout (5 min by default) away.
    sqlx::query("checkpoint").execute(&pool).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen("agora_projection").await?;
    let (created_tx, mut created_rx) = mpsc::unbounded_channel::<anyhow::Result<(Uuid, Instant, Instant)>>();

    // The watcher: pending posts until the read model shows them.
    let watcher = tokio::spawn(async move {
        let mut pending: HashMap<Uuid, (Instant, Instant)> = HashMap::new();
        let mut all_ids: Vec<Uuid> = Vec::new();
        let mut seen: Vec<(f64, f64)> = Vec::new();
        let mut command: Vec<f64> = Vec::new();
        let mut failed = 0usize;
        let mut generator_done = false;
        let mut drain_deadline: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tokio::select! {
                created = created_rx.recv(), if !generator_done => match created {
                    Some(Ok((id, sent, committed))) => {
                        command.push((committed - sent).as_secs_f64() * 1e3);
                        pending.insert(id, (sent, committed));
                        all_ids.push(id);
                        continue;
                    }
                    Some(Err(error)) => {
                        failed += 1;
                        if failed <= 3 {
                            eprintln!("    createPost failed: {error:#}");
                        }
                        continue;
                    }
                    None => {
                        generator_done = true;
                        drain_deadline = Some(Instant::now() + Duration::from_secs(30));
                    }
                },
                notification = listener.recv() => { let _ = notification; }
                _ = tick.tick() => {}
            }
            if !pending.is_empty() {
                let ids: Vec<Uuid> = pending.keys().copied().collect();
                let found: Vec<Uuid> = sqlx::query_scalar("select id from read_post where id = any($1)")
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                let now = Instant::now();
                for id in found {
                    if let Some((sent, committed)) = pending.remove(&id) {
                        let freshness = now.saturating_duration_since(committed).as_secs_f64() * 1e3;
                        seen.push((freshness, (now - sent).as_secs_f64() * 1e3));
                    }
                }
            }
            if generator_done && (pending.is_empty() || drain_deadline.is_some_and(|d| Instant::now() > d)) {
                break;
            }
        }
        // The listener holds a pooled connection: let go of it before closing.
        drop(listener);
        pool.close().await;
        (seen, command, failed, pending.len(), all_ids)
    });

    // The generator: at most 1,000 in flight; it returns once every send
    // has its answer.
    let paced = pace::at_rate(rate, 1_000, Some(total), std::future::pending(), |i| {
        let (client, url, users, tx) = (client.clone(), url.clone(), users.clone(), created_tx.clone());
        async move {
            let user = &users[i % users.len()];
            let _ = tx.send(create_post(&client, &url, user, &format!("Fresh post {i}")).await);
        }
    })
    .await?;
    drop(created_tx);
    let (seen, mut command, failed, not_seen, ids) = watcher.await?;
    let post_pool = system::pool(&system.postgres, system::POST_DB, 1).await?;
    let mut outbox_to_kafka: Vec<f64> = sqlx::query_scalar(
        "select (extract(epoch from published_at - created_at) * 1000)::float8 from outbox
         where aggregate_id = any($1) and published_at is not null",
    )
    .bind(&ids)
    .fetch_all(&post_pool)
    .await
    .unwrap_or_default();
    post_pool.close().await;
    let mut freshness: Vec<f64> = seen.iter().map(|s| s.0).collect();
    let mut sent_to_visible: Vec<f64> = seen.iter().map(|s| s.1).collect();
    Ok(FreshnessReport {
        target_rate_per_second: rate,
        achieved_rate_per_second: paced.achieved_per_second(),
        seconds: paced.sending_seconds,
        sent: total,
        failed,
        not_seen,
        command: summarize(&mut command),
        freshness: summarize(&mut freshness),
        sent_to_visible: summarize(&mut sent_to_visible),
        outbox_to_kafka: summarize(&mut outbox_to_kafka),
        points_caught_up_seconds: None,
    })
}
