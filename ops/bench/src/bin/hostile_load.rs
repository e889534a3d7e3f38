//! `agora-hostile-load`: the load check of the query limits. Against a
//! running gateway (`cargo run -p agora-ops --bin agora-local`), it measures
//! the latency of ordinary queries alone, then again while `--attackers`
//! clients send the worst documents of the hostile corpus
//! (`agora_testkit::hostile`) back to back, and checks that the p99 stays
//! within `--max-ratio` of the quiet one. It writes its result as markdown.
//!
//! A check, not a benchmark: it says whether hostile documents cost the
//! gateway so little that ordinary clients do not notice them.

#[path = "../stats.rs"]
mod stats;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

use stats::{summarize, Summary};

#[derive(Debug, Parser)]
#[command(name = "agora-hostile-load", about = "Ordinary queries' p99 while clients send hostile documents")]
struct Args {
    /// The gateway's GraphQL endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/graphql")]
    url: String,
    /// Clients sending hostile documents.
    #[arg(long, default_value_t = 50)]
    attackers: usize,
    /// Requests per second of each attacker (0: back to back, as fast as answered).
    #[arg(long, default_value_t = 4.0)]
    rate_per_attacker: f64,
    /// Clients sending ordinary queries (each as fast as it is answered).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds of each phase (quiet, under attack, control) in a round.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Rounds of the three phases.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The largest p99 under attack, as a multiple of the quiet p99.
    #[arg(long, default_value_t = 2.0)]
    max_ratio: f64,
    /// What was measured (the build, the machine), for the report.
    #[arg(long, default_value = "a debug build of agora-local")]
    target: String,
    /// Where the markdown result goes.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// An ordinary query: a page of posts with their authors, never from the cache.
const ORDINARY: &str = "{ posts(first: 20) { edges { node { id title createdAt author { id displayName points } } } } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(256).build()?;
    seed(&client, &args.url).await.context("cannot seed the gateway with a user and posts")?;
    let phase = Duration::from_secs_f64(args.seconds);
    // Warm-up; then rounds of quiet, attack and control, so that what else
    // the machine does falls on all three alike.
    ordinary_phase(&client, &args.url, args.clients, Duration::from_secs(2)).await?;
    let corpus = Arc::new(agora_testkit::hostile::gateway_corpus());
    // The control: as many clients at the same pace, sending `{ __typename }`.
    let trivial = Arc::new(vec![agora_testkit::hostile::HostileCase {
        name: "trivial",
        query: "{ __typename }".to_owned(),
        variables: json!({}),
        code: "",
        reason: None,
    }]);
    let (mut quiet_samples, mut attacked_samples, mut control_samples) = (Vec::new(), Vec::new(), Vec::new());
    let (mut refused, mut wrong, mut attack_seconds) = (0, 0, 0.0);
    for _ in 0..args.rounds {
        quiet_samples.extend(ordinary_phase(&client, &args.url, args.clients, phase).await?);
        let (samples, right, other, seconds) = attacked_phase(&client, &args, corpus.clone(), phase).await?;
        attacked_samples.extend(samples);
        (refused, wrong, attack_seconds) = (refused + right, wrong + other, attack_seconds + seconds);
        control_samples.extend(attacked_phase(&client, &args, trivial.clone(), phase).await?.0);
    }
    let (quiet, attacked, control) =
        (summarize(&mut quiet_samples), summarize(&mut attacked_samples), summarize(&mut control_samples));
    let ratio = attacked.p99_ms / quiet.p99_ms;
    let passed = ratio <= args.max_ratio && wrong == 0;
    let report = report(&args, &quiet, &attacked, &control, refused, wrong, attack_seconds, ratio, passed);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if !passed {
        bail!("the p99 under attack is {ratio:.2}x the quiet one (at most {}x allowed)", args.max_ratio);
    }
    Ok(())
}

/// The ordinary clients while `args.attackers` clients send `corpus` in
/// turn: their latencies, the documents refused with the right code (or
/// answered without errors, for a case without a code), the others, and
/// how long it took.
async fn attacked_phase(
    client: &reqwest::Client,
    args: &Args,
    corpus: Arc<Vec<agora_testkit::hostile::HostileCase>>,
    phase: Duration,
) -> anyhow::Result<(Vec<f64>, u64, u64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let rate = args.rate_per_attacker;
    let attackers: Vec<_> = (0..args.attackers)
        .map(|attacker| {
            let (client, url, stop, refused, wrong, corpus) =
                (client.clone(), args.url.clone(), stop.clone(), refused.clone(), wrong.clone(), corpus.clone());
            tokio::spawn(async move {
                let mut pace = (rate > 0.0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
                let mut next = attacker;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(pace) = pace.as_mut() {
                        pace.tick().await;
                    }
                    let case = &corpus[next % corpus.len()];
                    next += 1;
                    let answer = send(&client, &url, &case.query, &case.variables).await;
                    let right = match &answer {
                        Ok(body) if case.code.is_empty() => body["errors"].is_null(),
                        Ok(body) => body["errors"][0]["extensions"]["code"] == case.code,
                        Err(_) => false,
                    };
                    if right {
                        refused.fetch_add(1, Ordering::Relaxed)
                    } else {
                        wrong.fetch_add(1, Ordering::Relaxed)
                    };
                }
            })
        })
        .collect();
    let started = Instant::now();
    let samples = ordinary_phase(client, &args.url, args.clients, phase).await?;
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        let _ = attacker.await;
    }
    Ok((samples, refused.load(Ordering::Relaxed), wrong.load(Ordering::Relaxed), seconds))
}

async fn send(client: &reqwest::Client, url: &str, query: &str, variables: &Value) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .header("accept", "application/json")
        .header("cache-control", "no-cache")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?;
    Ok(response.json().await?)
}

/// `clients` clients sending the ordinary query for `length`; the latencies in ms.
async fn ordinary_phase(client: &reqwest::Client, url: &str, clients: usize, length: Duration) -> anyhow::Result<Vec<f64>> {
    let deadline = Instant::now() + length;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let body = send(&client, &url, ORDINARY, &json!({})).await?;
                    if !body["errors"].is_null() {
                        bail!("an ordinary query failed: {body}");
                    }
                    samples.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(samples)
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok(samples)
}

/// A user and 20 posts, so that the ordinary query has rows to read.
async fn seed(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let username = format!("load{}", std::process::id());
    let register = "mutation($u: String!) { register(input: { username: $u, password: \"correct horse\" }) { token } }";
    let body = send(client, url, register, &json!({ "u": username })).await?;
    let token = body["data"]["register"]["token"].as_str().with_context(|| format!("register failed: {body}"))?.to_owned();
    for n in 0..20 {
        let create = "mutation($t: String!) { createPost(input: { title: $t, body: \"load check\" }) { id } }";
        let response = client
            .post(url)
            .bearer_auth(&token)
            .json(&json!({ "query": create, "variables": { "t": format!("post {n}") } }))
            .send()
            .await?
            .json::<Value>()
            .await?;
        if !response["errors"].is_null() {
            bail!("createPost failed: {response}");
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    quiet: &Summary,
    attacked: &Summary,
    control: &Summary,
    refused: u64,
    wrong: u64,
    attack_seconds: f64,
    ratio: f64,
    passed: bool,
) -> String {
    let row = |name: &str, summary: &Summary| {
        format!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            summary.count, summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms
        )
    };
    let cases: Vec<String> = agora_testkit::hostile::gateway_corpus().iter().map(|case| format!("- {}", case.name)).collect();
    format!(
        "# Load check: ordinary queries while clients send hostile documents\n\n\
         Target: {target}. {clients} clients send the ordinary query `{ORDINARY}` \
         (with `Cache-Control: no-cache`) back to back, in {rounds} rounds of: {seconds} s quiet, {seconds} s while \
         {attackers} clients send the hostile corpus ({pace}), and, as a control, {seconds} s while \
         as many clients send `{{ __typename }}` at the same pace.\n\n\
         | phase | queries | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n{quiet_row}{attacked_row}{control_row}\n\
         Hostile documents refused with the right code: {refused} ({rate:.0}/s); answered otherwise: {wrong}.\n\n\
         p99 under attack / quiet p99: **{ratio:.2}** (at most {max_ratio} allowed): **{verdict}**. \
         p99 under attack / control p99: {control_ratio:.2} (what hostile documents cost beyond the requests themselves).\n\n\
         The corpus (`testkit/src/hostile.rs`), sent in turn by each attacker:\n\n{cases}\n\n\
         Reproduce: `cargo run -p agora-ops --bin agora-local` in one shell, then \
         `cargo run -p agora-bench --bin agora-hostile-load -- --out ops/bench/results/hostile-load.md`.\n",
        target = args.target,
        clients = args.clients,
        seconds = args.seconds,
        attackers = args.attackers,
        quiet_row = row("quiet", quiet),
        attacked_row = row("under attack", attacked),
        control_row = row("control: trivial queries at the same pace", control),
        pace = if args.rate_per_attacker > 0.0 {
            format!("each {}/s, {}/s in all", args.rate_per_attacker, args.rate_per_attacker * args.attackers as f64)
        } else {
            "each back to back, as fast as answered".to_owned()
        },
        rate = refused as f64 / attack_seconds,
        rounds = args.rounds,
        control_ratio = attacked.p99_ms / control.p99_ms,
        max_ratio = args.max_ratio,
        verdict = if passed { "passed" } else { "failed" },
        cases = cases.join("\n"),
    )
}
