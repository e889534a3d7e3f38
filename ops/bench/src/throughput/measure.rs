//! What every throughput row is made of: the queries, a target (where and
//! with which headers), the check a target's answer must pass before it is
//! timed, and the timing itself (oha at each concurrency after a warm-up,
//! with the peak memory of the process behind the target).

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::load::{self, Point, Request};
use crate::procs::Proc;

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

    pub fn key(self) -> &'static str {
        match self {
            Query::PostsWithAuthors => "posts-with-authors",
            Query::Deep => "deep",
        }
    }

    /// Its place in [`Query::ALL`] (and in the read model's reference answers).
    pub fn index(self) -> usize {
        Query::ALL.iter().position(|&q| q == self).expect("every query is in ALL")
    }

    pub fn body(self) -> String {
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
    /// `extensions.executor` of the read model's answers: "compiled" or
    /// "resolvers" (absent from gateways that do not report it).
    #[serde(default)]
    pub executor: Option<String>,
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
    /// Commands per second (createPost and renameUser, half each) of the
    /// mixed workload, one measurement per rate.
    pub mixed_write_rates: Vec<f64>,
}

impl Settings {
    /// The concurrencies `query` is measured at: every level for posts with
    /// authors, the headline for the rest.
    pub fn levels_for(&self, query: Query) -> Vec<usize> {
        match query {
            Query::PostsWithAuthors => self.levels.clone(),
            Query::Deep => vec![self.headline],
        }
    }
}

/// Where requests go and with which headers.
pub struct Target<'a> {
    pub key: &'a str,
    pub label: &'a str,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// Checks that a GraphQL answer `body` holds 20 posts, each with an author.
pub fn check_page(body: &Value, label: &str, query: Query) -> anyhow::Result<()> {
    let edges = body["data"]["posts"]["edges"].as_array().context("no posts.edges")?;
    if edges.len() != 20 || edges.iter().any(|edge| edge["node"]["author"]["displayName"].as_str().is_none()) {
        bail!("{label} answered {} with {} posts or authors missing", query.title(), edges.len());
    }
    Ok(())
}

/// Checks that `target` answers `query` without errors: 20 posts, each with
/// an author; returns its `data` and `extensions`.
pub async fn validate(client: &reqwest::Client, target: &Target<'_>, query: Query) -> anyhow::Result<(Value, Value)> {
    let body = crate::gql::call(client, &target.url, query.document(), json!({}), &target.headers)
        .await
        .with_context(|| format!("{} failed {}", target.label, query.title()))?;
    check_page(&body, target.label, query)?;
    Ok((body["data"].clone(), body["extensions"].clone()))
}

/// Times `target` POSTing `query` at each of `levels`; `proc` is the
/// process whose peak memory is read.
pub async fn measure(
    settings: &Settings,
    target: &Target<'_>,
    query: Query,
    levels: &[usize],
    proc: Option<&Proc>,
) -> anyhow::Result<Vec<Point>> {
    let body = query.body();
    measure_request(settings, target, query, &Request::Post { body: &body }, levels, proc).await
}

/// Warm-up, then each concurrency level, sending `request`.
pub async fn measure_request(
    settings: &Settings,
    target: &Target<'_>,
    query: Query,
    request: &Request<'_>,
    levels: &[usize],
    proc: Option<&Proc>,
) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for (i, &concurrency) in levels.iter().enumerate() {
        let warmup = if i == 0 { settings.warmup } else { (settings.warmup / 2.0).max(1.0) };
        load::oha(&settings.oha, &target.url, &target.headers, request, concurrency, warmup).await?;
        if let Some(proc) = proc {
            proc.reset_peak();
        }
        let mut point = load::oha(&settings.oha, &target.url, &target.headers, request, concurrency, settings.seconds).await?;
        point.peak_rss_mib = proc.and_then(Proc::peak_rss_mib);
        print_point(target.label, query.key(), &point);
        points.push(point);
    }
    Ok(points)
}

/// One line on the console per measured point.
pub fn print_point(label: &str, what: &str, point: &Point) {
    println!(
        "    {:<50} {:<20} c={:<4} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  failures {}",
        label, what, point.concurrency, point.requests_per_second, point.p50_ms, point.p99_ms, point.failures
    );
    if point.failures > 0 {
        eprintln!("    warning: {label} had {} failed requests at c={}", point.failures, point.concurrency);
    }
}
