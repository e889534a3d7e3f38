//! Queries per second: the gateway's read-model and composition strategies,
//! three federation gateways on a supergraph composed offline from the same
//! two subgraphs, and the SQL ceiling, each checked for errors and for the
//! same data before it is timed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::load::{self, CountingProxy, Point};
use crate::procs::{free_port, Proc, Spec};
use crate::system::{self, System};

pub const POSTS_WITH_AUTHORS: &str =
    "{ posts(first: 20) { edges { node { id title createdAt author { id displayName points } } } } }";
pub const DEEP: &str = "{ posts(first: 20) { edges { node { id title author { id displayName posts(first: 5) { edges { node { id title author { id displayName points } } } } } } } } }";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Query {
    PostsWithAuthors,
    Deep,
}

impl Query {
    pub const ALL: [Query; 2] = [Query::PostsWithAuthors, Query::Deep];

    pub fn document(self) -> &'static str {
        match self {
            Query::PostsWithAuthors => POSTS_WITH_AUTHORS,
            Query::Deep => DEEP,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Query::PostsWithAuthors => "posts with authors",
            Query::Deep => "deep (posts → author → posts → author)",
        }
    }

    fn body(self) -> String {
        json!({ "query": self.document() }).to_string()
    }
}

/// One gateway (or strategy) answering one query at several concurrencies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    pub key: String,
    pub label: String,
    pub query: Query,
    pub upstream_requests_per_request: Option<f64>,
    /// `extensions.sqlStatements` (the gateway's strategies only).
    pub sql_statements_per_request: Option<f64>,
    /// The same `data` as the read-model strategy for the same document.
    pub same_data_as_read_model: Option<bool>,
    pub points: Vec<Point>,
}

impl Series {
    pub fn at(&self, concurrency: usize) -> Option<&Point> {
        self.points.iter().find(|p| p.concurrency == concurrency)
    }
}

pub struct Settings {
    pub oha: PathBuf,
    pub levels: Vec<usize>,
    pub headline: usize,
    pub seconds: f64,
    pub warmup: f64,
    pub node: PathBuf,
    pub peers_dir: PathBuf,
    pub hive_router: Option<PathBuf>,
    pub skip_node_gateways: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub series: Vec<Series>,
    pub notes: Vec<String>,
}

struct Target<'a> {
    key: &'a str,
    label: &'a str,
    url: String,
    headers: Vec<(String, String)>,
}

/// Checks that `target` answers `query` without errors: 20 posts, each with
/// an author; returns its `data` and `extensions`.
async fn validate(client: &reqwest::Client, target: &Target<'_>, query: Query) -> anyhow::Result<(Value, Value)> {
    let body = crate::gql::call(client, &target.url, query.document(), json!({}), &target.headers)
        .await
        .with_context(|| format!("{} failed {}", target.label, query.title()))?;
    let edges = body["data"]["posts"]["edges"].as_array().context("no posts.edges")?;
    if edges.len() != 20 || edges.iter().any(|edge| edge["node"]["author"]["displayName"].as_str().is_none()) {
        bail!("{} answered {} with {} posts or authors missing", target.label, query.title(), edges.len());
    }
    Ok((body["data"].clone(), body["extensions"].clone()))
}

/// Warm-up, then each concurrency level; `proc` is the process whose peak
/// memory is read.
async fn measure(
    settings: &Settings,
    target: &Target<'_>,
    query: Query,
    levels: &[usize],
    proc: Option<&Proc>,
) -> anyhow::Result<Vec<Point>> {
    let body = query.body();
    let mut points = Vec::new();
    for (i, &concurrency) in levels.iter().enumerate() {
        let warmup = if i == 0 { settings.warmup } else { (settings.warmup / 2.0).max(1.0) };
        load::oha(&settings.oha, &target.url, &target.headers, &body, concurrency, warmup).await?;
        if let Some(proc) = proc {
            proc.reset_peak();
        }
        let mut point = load::oha(&settings.oha, &target.url, &target.headers, &body, concurrency, settings.seconds).await?;
        point.peak_rss_mib = proc.and_then(Proc::peak_rss_mib);
        println!(
            "    {:<16} {:<20} c={:<4} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  failures {}",
            target.label,
            query_key(query),
            concurrency,
            point.requests_per_second,
            point.p50_ms,
            point.p99_ms,
            point.failures
        );
        if point.failures > 0 {
            eprintln!("    warning: {} had {} failed requests at c={concurrency}", target.label, point.failures);
        }
        points.push(point);
    }
    Ok(points)
}

fn query_key(query: Query) -> &'static str {
    match query {
        Query::PostsWithAuthors => "posts-with-authors",
        Query::Deep => "deep",
    }
}

fn levels_for(settings: &Settings, query: Query) -> Vec<usize> {
    match query {
        Query::PostsWithAuthors => settings.levels.clone(),
        Query::Deep => vec![settings.headline],
    }
}

pub async fn run(system: &mut System, settings: &Settings) -> anyhow::Result<Outcome> {
    let client = crate::gql::client();
    let mut outcome = Outcome::default();
    let gateway_url = system.gateway_graphql();

    // The reference data: the read model's answers.
    let read_model = Target { key: "read-model", label: "read-model", url: gateway_url.clone(), headers: vec![] };
    let mut reference = Vec::new();
    for query in Query::ALL {
        reference.push(validate(&client, &read_model, query).await?.0);
    }
    // The read model as shipped answers these anonymous queries from its
    // response cache while the read model is unchanged (the load is
    // read-only); `Cache-Control: no-cache` measures the execution itself.
    let read_model_uncached = Target {
        key: "read-model-no-cache",
        label: "read-model (no response cache)",
        url: gateway_url.clone(),
        headers: vec![("cache-control".into(), "no-cache".into())],
    };
    let composition = Target {
        key: "composition",
        label: "composition",
        url: gateway_url.clone(),
        headers: vec![("x-query-strategy".into(), "composition".into())],
    };
    for target in [&read_model, &read_model_uncached, &composition] {
        for (qi, query) in Query::ALL.into_iter().enumerate() {
            // The second answer is what the timed requests get (a cached one
            // for the read model as shipped): its extensions are reported.
            validate(&client, target, query).await?;
            let (data, extensions) = validate(&client, target, query).await?;
            let upstream = extensions["upstreamRequests"].as_f64();
            let sql_statements = extensions["sqlStatements"].as_f64();
            let points = measure(settings, target, query, &levels_for(settings, query), system.gateway.as_ref()).await?;
            outcome.series.push(Series {
                key: target.key.into(),
                label: target.label.into(),
                query,
                upstream_requests_per_request: upstream,
                sql_statements_per_request: sql_statements,
                same_data_as_read_model: Some(data == reference[qi]),
                points,
            });
        }
    }

    // The federation gateways, on a supergraph of the same two subgraphs.
    let peers = peer_list(settings, &mut outcome.notes);
    if !peers.is_empty() {
        match Supergraphs::compose(system, settings).await {
            Ok(supergraphs) => {
                for peer in peers {
                    match run_peer(system, settings, &supergraphs, peer, &reference).await {
                        Ok(mut series) => outcome.series.append(&mut series),
                        Err(error) => {
                            let note = format!("{} was not measured: {error:#}", peer.label());
                            eprintln!("  {note}");
                            outcome.notes.push(note);
                        }
                    }
                }
            }
            Err(error) => {
                let note = format!("no supergraph, so no federation gateway was measured: {error:#}");
                eprintln!("  {note}");
                outcome.notes.push(note);
            }
        }
    }

    // The ceiling: the read model's statement alone.
    let script = system.work_dir.join("posts-with-authors.sql");
    std::fs::write(&script, CEILING_SQL)?;
    let database = system::database_url(&system.postgres, system::READ_DB)?;
    let log_dir = system.work_dir.join("pgbench");
    let mut points = Vec::new();
    for (i, &concurrency) in settings.levels.iter().enumerate() {
        let warmup = if i == 0 { settings.warmup } else { (settings.warmup / 2.0).max(1.0) };
        // PostgreSQL's connection limit is shared with the services' pools.
        let free = free_connections(&system.postgres).await.unwrap_or(concurrency as i64);
        let clients = concurrency.min((free - 10).max(1) as usize);
        if clients < concurrency {
            outcome.notes.push(format!(
                "SQL ceiling at c={concurrency}: pgbench ran {clients} clients (PostgreSQL's max_connections leaves no more beside the services' pools; the gateway's own pool has 20)."
            ));
        }
        load::pgbench(&database, &script, &log_dir, clients, warmup).await?;
        let mut point = load::pgbench(&database, &script, &log_dir, clients, settings.seconds).await?;
        point.concurrency = concurrency;
        println!(
            "    {:<16} {:<20} c={:<4} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            "SQL ceiling", "posts-with-authors", concurrency, point.requests_per_second, point.p50_ms, point.p99_ms
        );
        points.push(point);
    }
    outcome.series.push(Series {
        key: "sql-ceiling".into(),
        label: "SQL ceiling (pgbench)".into(),
        query: Query::PostsWithAuthors,
        upstream_requests_per_request: Some(0.0),
        sql_statements_per_request: Some(1.0),
        same_data_as_read_model: None,
        points,
    });
    Ok(outcome)
}

async fn free_connections(postgres: &str) -> anyhow::Result<i64> {
    let pool = system::pool(postgres, "postgres", 1).await?;
    let free: i64 =
        sqlx::query_scalar("select current_setting('max_connections')::bigint - (select count(*) from pg_stat_activity)")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok(free)
}

/// gateway/src/sources/read_model/queries.rs `posts` with no author, no cursor and
/// a limit of 21 (a page of 20 and one more to tell whether there is a next
/// page), as the gateway sends it for `posts(first: 20)`.
pub const CEILING_SQL: &str = "select p.id, p.author_id, p.title, p.body, p.created_at,
        u.username as author_username, u.display_name as author_display_name, u.points as author_points,
        u.post_count as author_post_count, u.created_at as author_created_at
     from read_post p join read_user u on u.id = p.author_id and u.username is not null
     where (null::uuid is null or p.author_id = null::uuid)
       and (null::timestamptz is null or (p.created_at, p.id) < (null::timestamptz, null::uuid))
     order by p.created_at desc, p.id desc limit 21;
";

#[derive(Debug, Clone, Copy)]
enum Peer {
    HiveRouter,
    /// Hive Router with its in-flight subgraph request deduplication off:
    /// this benchmark sends one identical query concurrently, the best case
    /// for deduplication, which real traffic (different variables) rarely is.
    HiveRouterNoDedupe,
    HiveGateway,
    ApolloGateway,
}

impl Peer {
    fn key(self) -> &'static str {
        match self {
            Peer::HiveRouter => "hive-router",
            Peer::HiveRouterNoDedupe => "hive-router-no-dedupe",
            Peer::HiveGateway => "hive-gateway",
            Peer::ApolloGateway => "apollo-gateway",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Peer::HiveRouter => "Hive Router",
            Peer::HiveRouterNoDedupe => "Hive Router (dedupe off)",
            Peer::HiveGateway => "Hive Gateway",
            Peer::ApolloGateway => "Apollo Gateway",
        }
    }
}

fn peer_list(settings: &Settings, notes: &mut Vec<String>) -> Vec<Peer> {
    let mut peers = Vec::new();
    match &settings.hive_router {
        Some(_) => {
            peers.push(Peer::HiveRouter);
            peers.push(Peer::HiveRouterNoDedupe);
        }
        None => notes.push("Hive Router was skipped (not installed, or --skip-hive-router).".into()),
    }
    if settings.skip_node_gateways {
        notes.push("Hive Gateway and Apollo Gateway were skipped (--skip-node-gateways).".into());
    } else if !settings.peers_dir.join("node_modules").is_dir() {
        notes.push(format!(
            "Hive Gateway and Apollo Gateway were skipped: no {}/node_modules (npm ci).",
            settings.peers_dir.display()
        ));
    } else {
        peers.push(Peer::HiveGateway);
        peers.push(Peer::ApolloGateway);
    }
    peers
}

struct Supergraphs {
    /// Subgraph URLs are the services themselves.
    direct: PathBuf,
    /// Subgraph URLs go through counting proxies.
    counted: PathBuf,
    auth_proxy: CountingProxy,
    post_proxy: CountingProxy,
}

impl Supergraphs {
    async fn compose(system: &System, settings: &Settings) -> anyhow::Result<Supergraphs> {
        let client = crate::gql::client();
        let sdl_query = "{ _service { sdl } }";
        let auth_sdl = crate::gql::call(&client, &system.auth_graphql(), sdl_query, json!({}), &[]).await?["data"]["_service"]
            ["sdl"]
            .as_str()
            .context("auth-service has no _service.sdl")?
            .to_owned();
        let post_sdl = crate::gql::call(&client, &system.post_graphql(), sdl_query, json!({}), &[]).await?["data"]["_service"]
            ["sdl"]
            .as_str()
            .context("post-service has no _service.sdl")?
            .to_owned();
        std::fs::write(system.work_dir.join("auth-service.graphql"), &auth_sdl)?;
        std::fs::write(system.work_dir.join("post-service.graphql"), &post_sdl)?;
        let auth_proxy = CountingProxy::start(format!("http://127.0.0.1:{}", system.auth.port)).await?;
        let post_proxy = CountingProxy::start(format!("http://127.0.0.1:{}", system.post.port)).await?;
        let write = |name: &str, auth_url: String, post_url: String| -> anyhow::Result<PathBuf> {
            let input = system.work_dir.join(format!("{name}.subgraphs.json"));
            let output = system.work_dir.join(format!("{name}.graphql"));
            let subgraphs = json!([
                { "name": "auth", "url": auth_url, "sdl": auth_sdl },
                { "name": "posts", "url": post_url, "sdl": post_sdl },
            ]);
            std::fs::write(&input, serde_json::to_vec_pretty(&subgraphs)?)?;
            let status = std::process::Command::new(&settings.node)
                .current_dir(&settings.peers_dir)
                .arg("compose.mjs")
                .arg(&input)
                .arg(&output)
                .status()
                .context("cannot run node compose.mjs")?;
            if !status.success() {
                bail!("composing the supergraph failed ({status})");
            }
            Ok(output)
        };
        let direct = write("supergraph", system.auth_graphql(), system.post_graphql())?;
        let counted = write(
            "supergraph-counted",
            format!("http://127.0.0.1:{}/graphql", auth_proxy.port),
            format!("http://127.0.0.1:{}/graphql", post_proxy.port),
        )?;
        Ok(Supergraphs { direct, counted, auth_proxy, post_proxy })
    }
}

fn spawn_peer(system: &System, settings: &Settings, peer: Peer, supergraph: &Path, name: &str) -> anyhow::Result<Proc> {
    let port = free_port()?;
    let mut env = vec![
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), port.to_string()),
        ("SUPERGRAPH_FILE_PATH".to_owned(), supergraph.display().to_string()),
        ("NODE_ENV".to_owned(), "production".to_owned()),
        ("LOG_LEVEL".to_owned(), "error".to_owned()),
    ];
    let logs = system.work_dir.join("logs");
    match peer {
        Peer::HiveRouter | Peer::HiveRouterNoDedupe => {
            if matches!(peer, Peer::HiveRouterNoDedupe) {
                let config = system.work_dir.join("hive-router-no-dedupe.yaml");
                std::fs::write(&config, "traffic_shaping:\n  all:\n    dedupe_enabled: false\n")?;
                env.push(("ROUTER_CONFIG_FILE_PATH".to_owned(), config.display().to_string()));
            }
            Proc::spawn(
                Spec {
                    name,
                    program: settings.hive_router.as_deref().expect("hive router installed"),
                    args: vec![],
                    env,
                    port,
                    cwd: Some(&system.work_dir),
                },
                &logs,
            )
        }
        Peer::HiveGateway | Peer::ApolloGateway => {
            let script = if matches!(peer, Peer::HiveGateway) { "hive-gateway.mjs" } else { "apollo-gateway.mjs" };
            Proc::spawn(
                Spec { name, program: &settings.node, args: vec![script.to_owned()], env, port, cwd: Some(&settings.peers_dir) },
                &logs,
            )
        }
    }
}

async fn run_peer(
    system: &System,
    settings: &Settings,
    supergraphs: &Supergraphs,
    peer: Peer,
    reference: &[Value],
) -> anyhow::Result<Vec<Series>> {
    let client = crate::gql::client();
    // 1. Through the counting proxies: errors, the data, upstream requests.
    let mut counted = spawn_peer(system, settings, peer, &supergraphs.counted, &format!("{}-counted", peer.key()))?;
    counted.wait_ready(&client, "/graphql", true, Duration::from_secs(120)).await?;
    let target = Target { key: peer.key(), label: peer.label(), url: counted.url("/graphql"), headers: vec![] };
    let mut checks = Vec::new();
    for (qi, query) in Query::ALL.into_iter().enumerate() {
        validate(&client, &target, query).await?; // warms the query plan cache
        let before = supergraphs.auth_proxy.requests() + supergraphs.post_proxy.requests();
        const N: u64 = 5;
        let mut same = true;
        for _ in 0..N {
            let (data, _) = validate(&client, &target, query).await?;
            same &= data == reference[qi];
        }
        let after = supergraphs.auth_proxy.requests() + supergraphs.post_proxy.requests();
        checks.push(((after - before) as f64 / N as f64, same));
    }
    counted.stop(Duration::from_secs(10)).await;

    // 2. Straight to the services: timed.
    let mut proc = spawn_peer(system, settings, peer, &supergraphs.direct, peer.key())?;
    proc.wait_ready(&client, "/graphql", true, Duration::from_secs(120)).await?;
    let target = Target { key: peer.key(), label: peer.label(), url: proc.url("/graphql"), headers: vec![] };
    let mut series = Vec::new();
    for (qi, query) in Query::ALL.into_iter().enumerate() {
        validate(&client, &target, query).await?;
        let points = measure(settings, &target, query, &levels_for(settings, query), Some(&proc)).await?;
        validate(&client, &target, query).await.context("after the load")?;
        series.push(Series {
            key: peer.key().into(),
            label: peer.label().into(),
            query,
            upstream_requests_per_request: Some(checks[qi].0),
            sql_statements_per_request: None,
            same_data_as_read_model: Some(checks[qi].1),
            points,
        });
    }
    proc.stop(Duration::from_secs(10)).await;
    Ok(series)
}
