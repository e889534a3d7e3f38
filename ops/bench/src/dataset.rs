//! The data set: users registered through auth-service's GraphQL API (so
//! each has a real password hash, a token, and a UserRegistered event), and
//! posts written in bulk straight into post-service's database together with
//! their outbox rows, in the same shape as post-service's own `createPost`
//! transaction. From there everything is the real pipeline: the outbox relay
//! publishes PostCreated to Kafka, the points ledger awards points (and
//! publishes PointsAwarded), the gateway's projector builds the read model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_schema::{topics, Event, PostCreated};
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::system::{self, System};

pub const PASSWORD: &str = "bench password, not secret";

#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: Uuid,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub users: usize,
    pub posts: usize,
    pub register_seconds: f64,
    pub insert_posts_seconds: f64,
    /// From the first post row inserted to the read model showing every
    /// post and every point (relay, ledger, projector all done).
    pub catch_up_seconds: f64,
    /// Events in the topics once caught up (user + post + points).
    pub events: u64,
}

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";

pub async fn register_users(system: &System, count: usize, prefix: &str) -> anyhow::Result<Vec<BenchUser>> {
    let client = crate::gql::client();
    let url = system.auth_graphql();
    // argon2id hashing is the cost: two at a time per core.
    stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let username = format!("{prefix}{i:05}");
                let display =
                    format!("{} {}", FIRST_NAMES[i % FIRST_NAMES.len()], LAST_NAMES[(i / FIRST_NAMES.len()) % LAST_NAMES.len()]);
                let variables = json!({ "input": { "username": username, "password": PASSWORD, "displayName": display } });
                let body = crate::gql::call(&client, &url, REGISTER, variables, &[]).await?;
                let payload = &body["data"]["register"];
                let id: Uuid = payload["user"]["id"].as_str().context("no user id")?.parse()?;
                let token = payload["token"].as_str().context("no token")?.to_owned();
                anyhow::Ok(BenchUser { id, token })
            }
        })
        .buffered(4)
        .try_collect()
        .await
}

/// Inserts `count` posts by `authors` (a skewed distribution: a few prolific
/// authors, a long tail), spread over the last 30 days, in transactions of
/// 2,000 posts, each post with its PostCreated outbox row.
pub async fn insert_posts(system: &System, authors: &[BenchUser], count: usize, seed: u64) -> anyhow::Result<()> {
    let pool = system::pool(&system.postgres, system::POST_DB, 2).await?;
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Utc::now().timestamp_micros();
    let span = 30 * 24 * 3600 * 1_000_000i64;
    let start = now - span;
    let step = span / count.max(1) as i64;
    const CHUNK: usize = 2_000;
    let mut index = 0;
    while index < count {
        let n = CHUNK.min(count - index);
        let mut ids = Vec::with_capacity(n);
        let mut author_ids = Vec::with_capacity(n);
        let mut titles = Vec::with_capacity(n);
        let mut bodies = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut event_ids = Vec::with_capacity(n);
        let mut payloads = Vec::with_capacity(n);
        for i in index..index + n {
            // u² skews towards the first authors.
            let u: f64 = rng.gen();
            let author = &authors[((u * u) * authors.len() as f64) as usize % authors.len()];
            let created_at = DateTime::from_timestamp_micros(start + i as i64 * step + rng.gen_range(0..step.max(1)))
                .expect("a representable time");
            let id = Uuid::now_v7();
            let title = title(&mut rng, i);
            let body = body(&mut rng);
            let envelope = Event::PostCreated(PostCreated {
                post_id: id,
                author_id: author.id,
                title: title.clone(),
                body: body.clone(),
                created_at,
            })
            .into_envelope(1, created_at);
            event_ids.push(envelope.event_id);
            payloads.push(serde_json::to_value(&envelope)?);
            ids.push(id);
            author_ids.push(author.id);
            titles.push(title);
            bodies.push(body);
            created.push(created_at);
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "insert into post (id, author_id, title, body, version, created_at)
             select id, author_id, title, body, 1, created_at
             from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) as t(id, author_id, title, body, created_at)",
        )
        .bind(&ids)
        .bind(&author_ids)
        .bind(&titles)
        .bind(&bodies)
        .bind(&created)
        .execute(&mut *tx)
        .await
        .context("inserting posts")?;
        sqlx::query(
            "insert into outbox (event_id, topic, event_type, aggregate_id, aggregate_version, payload)
             select event_id, $2, 'PostCreated', aggregate_id, 1, payload
             from unnest($1::uuid[], $3::uuid[], $4::jsonb[]) as t(event_id, aggregate_id, payload)",
        )
        .bind(&event_ids)
        .bind(topics::POST)
        .bind(&ids)
        .bind(&payloads)
        .execute(&mut *tx)
        .await
        .context("inserting outbox rows")?;
        tx.commit().await?;
        index += n;
    }
    pool.close().await;
    Ok(())
}

/// What the read model should show once everything is projected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub users: i64,
    pub posts: i64,
    pub points: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    pub users: i64,
    pub posts: i64,
    pub points: i64,
}

pub async fn observe(pool: &sqlx::PgPool) -> anyhow::Result<Observed> {
    let (users, points): (i64, i64) =
        sqlx::query_as("select count(*) filter (where username is not null), coalesce(sum(points), 0)::bigint from read_user")
            .fetch_one(pool)
            .await?;
    let posts: i64 = sqlx::query_scalar("select count(*) from read_post").fetch_one(pool).await?;
    Ok(Observed { users, posts, points })
}

/// Waits until the read model in `database` shows `expected`.
pub async fn wait_for_read_model(postgres: &str, database: &str, expected: Expected, timeout: Duration) -> anyhow::Result<()> {
    let pool = system::pool(postgres, database, 1).await?;
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let seen = observe(&pool).await.unwrap_or_default();
        if seen.users >= expected.users && seen.posts >= expected.posts && seen.points >= expected.points {
            pool.close().await;
            return Ok(());
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!(
                "    … read model: {}/{} users, {}/{} posts, {}/{} points ({:.0} s)",
                seen.users,
                expected.users,
                seen.posts,
                expected.posts,
                seen.points,
                expected.points,
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if started.elapsed() > timeout {
            bail!("the read model did not catch up within {timeout:?}: {seen:?}, expected {expected:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the read model shows every post in post-service's database
/// and their points (the ledger's backlog drained); returns the seconds waited.
pub async fn wait_quiescent(system: &System, users: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let pool = system::pool(&system.postgres, system::POST_DB, 1).await?;
    let posts: i64 = sqlx::query_scalar("select count(*) from post").fetch_one(&pool).await?;
    pool.close().await;
    let expected = Expected { users: users as i64, posts, points: 10 * posts };
    wait_for_read_model(&system.postgres, system::READ_DB, expected, Duration::from_secs(600)).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// Registers the users, inserts the posts, waits for the whole pipeline.
pub async fn load(system: &System, users: usize, posts: usize) -> anyhow::Result<(Arc<Vec<BenchUser>>, LoadReport)> {
    let started = Instant::now();
    println!("  registering {users} users through auth-service's GraphQL API…");
    let registered = register_users(system, users, "bench_").await?;
    let register_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    println!("  inserting {posts} posts with their outbox rows in bulk…");
    insert_posts(system, &registered, posts, 42).await?;
    let insert_posts_seconds = started.elapsed().as_secs_f64();
    println!("  waiting for the relay, the points ledger and the projector…");
    let expected = Expected { users: users as i64, posts: posts as i64, points: 10 * posts as i64 };
    wait_for_read_model(&system.postgres, system::READ_DB, expected, Duration::from_secs(1800)).await?;
    let catch_up_seconds = started.elapsed().as_secs_f64();
    let events = crate::kafka_log::topic_offsets(&system.kafka.settings())?.produced;
    let report = LoadReport { users, posts, register_seconds, insert_posts_seconds, catch_up_seconds, events };
    Ok((Arc::new(registered), report))
}

fn title(rng: &mut StdRng, i: usize) -> String {
    let a = TOPICS[rng.gen_range(0..TOPICS.len())];
    let b = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
    format!("{b} notes on {a} #{i}")
}

pub fn body(rng: &mut StdRng) -> String {
    let words = rng.gen_range(30..120);
    let mut text = String::with_capacity(words * 7);
    for w in 0..words {
        if w > 0 {
            text.push(if w % 17 == 0 { '\n' } else { ' ' });
        }
        text.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    text
}

const FIRST_NAMES: [&str; 20] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Dennis",
    "Frances",
    "John",
    "Radia",
    "Leslie",
    "Niklaus",
    "Sophie",
    "Tony",
    "Hedy",
    "Linus",
    "Katherine",
    "Guido",
];
const LAST_NAMES: [&str; 50] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Ritchie",
    "Allen",
    "McCarthy",
    "Perlman",
    "Lamport",
    "Wirth",
    "Wilson",
    "Hoare",
    "Lamarr",
    "Torvalds",
    "Johnson",
    "Rossum",
    "Backus",
    "Kay",
    "Cerf",
    "Kahn",
    "Berners-Lee",
    "Stroustrup",
    "Gosling",
    "Matsumoto",
    "Hejlsberg",
    "Pike",
    "Kernighan",
    "Aho",
    "Ullman",
    "Tarjan",
    "Hennessy",
    "Patterson",
    "Karp",
    "Cook",
    "Rabin",
    "Scott",
    "Milner",
    "Floyd",
    "Iverson",
    "Naur",
    "Engelbart",
    "Sutherland",
    "Codd",
    "Gray",
    "Stonebraker",
    "Bachman",
];
const TOPICS: [&str; 16] = [
    "event sourcing",
    "CQRS",
    "Kafka",
    "PostgreSQL",
    "GraphQL federation",
    "DataLoader",
    "outbox relays",
    "idempotency",
    "read models",
    "backpressure",
    "consumer groups",
    "keyset pagination",
    "WebSockets",
    "tokio",
    "observability",
    "sagas",
];
const ADJECTIVES: [&str; 10] =
    ["Quick", "Field", "Late-night", "Unfinished", "Practical", "Skeptical", "Short", "Long", "Revised", "Honest"];
const WORDS: [&str; 40] = [
    "the",
    "event",
    "log",
    "is",
    "a",
    "single",
    "source",
    "of",
    "truth",
    "and",
    "every",
    "consumer",
    "reads",
    "it",
    "at",
    "its",
    "own",
    "pace",
    "while",
    "producers",
    "append",
    "facts",
    "projection",
    "rebuilds",
    "state",
    "from",
    "history",
    "offsets",
    "commit",
    "with",
    "changes",
    "so",
    "replay",
    "never",
    "skips",
    "queries",
    "join",
    "nothing",
    "at",
    "runtime",
];
