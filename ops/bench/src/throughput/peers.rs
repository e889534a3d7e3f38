//! The federation gateways (Hive Router, Hive Gateway, Apollo Gateway) on a
//! supergraph composed offline from the same two subgraphs the gateway's
//! composition strategy calls: each checked through counting proxies (its
//! errors, its data, its upstream requests per request), then timed
//! talking to the services directly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::measure::{measure, validate, Query, Series, Settings, Target};
use crate::load::CountingProxy;
use crate::procs::{free_port, Proc, Spec};
use crate::system::System;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    HiveRouter,
    /// Hive Router with its in-flight subgraph request deduplication off:
    /// this benchmark sends one identical query concurrently, the best case
    /// for deduplication, which real traffic (different variables) rarely is.
    HiveRouterNoDedupe,
    /// Hive Router as shipped, every request with a user's bearer token,
    /// which it forwards to the subgraphs (`headers.all.request.propagate`).
    HiveRouterLoggedIn,
    HiveGateway,
    ApolloGateway,
}

impl Peer {
    pub fn key(self) -> &'static str {
        match self {
            Peer::HiveRouter => "hive-router",
            Peer::HiveRouterNoDedupe => "hive-router-no-dedupe",
            Peer::HiveRouterLoggedIn => "hive-router-logged-in",
            Peer::HiveGateway => "hive-gateway",
            Peer::ApolloGateway => "apollo-gateway",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Peer::HiveRouter => "Hive Router",
            Peer::HiveRouterNoDedupe => "Hive Router (dedupe off)",
            Peer::HiveRouterLoggedIn => "Hive Router, logged in (token forwarded)",
            Peer::HiveGateway => "Hive Gateway",
            Peer::ApolloGateway => "Apollo Gateway",
        }
    }

    /// The queries this peer answers: the logged-in row is posts with
    /// authors alone.
    fn queries(self) -> &'static [Query] {
        match self {
            Peer::HiveRouterLoggedIn => &[Query::PostsWithAuthors],
            _ => &Query::ALL,
        }
    }

    /// The concurrencies it is timed at: the logged-in row at the headline
    /// alone (it is compared there).
    fn levels(self, settings: &Settings, query: Query) -> Vec<usize> {
        match self {
            Peer::HiveRouterLoggedIn => vec![settings.headline],
            _ => settings.levels_for(query),
        }
    }

    /// Its configuration file, if it needs one.
    fn config(self) -> Option<(&'static str, &'static str)> {
        match self {
            Peer::HiveRouterNoDedupe => {
                Some(("hive-router-no-dedupe.yaml", "traffic_shaping:\n  all:\n    dedupe_enabled: false\n"))
            }
            Peer::HiveRouterLoggedIn => Some((
                "hive-router-logged-in.yaml",
                "headers:\n  all:\n    request:\n      - propagate:\n          named: Authorization\n",
            )),
            _ => None,
        }
    }
}

/// The peers this run measures, with a note for each one left out.
pub fn peer_list(settings: &Settings, notes: &mut Vec<String>) -> Vec<Peer> {
    let mut peers = Vec::new();
    match &settings.hive_router {
        Some(_) => {
            peers.push(Peer::HiveRouter);
            peers.push(Peer::HiveRouterNoDedupe);
            peers.push(Peer::HiveRouterLoggedIn);
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

pub struct Supergraphs {
    /// Subgraph URLs are the services themselves.
    pub direct: PathBuf,
    /// Subgraph URLs go through counting proxies.
    counted: PathBuf,
    auth_proxy: CountingProxy,
    post_proxy: CountingProxy,
}

impl Supergraphs {
    pub async fn compose(system: &System, settings: &Settings) -> anyhow::Result<Supergraphs> {
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

/// Starts `peer` as the process `name` on `supergraph`.
pub fn spawn_peer(system: &System, settings: &Settings, peer: Peer, supergraph: &Path, name: &str) -> anyhow::Result<Proc> {
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
        Peer::HiveRouter | Peer::HiveRouterNoDedupe | Peer::HiveRouterLoggedIn => {
            if let Some((file, yaml)) = peer.config() {
                let config = system.work_dir.join(file);
                std::fs::write(&config, yaml)?;
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

/// Checks `peer` through the counting proxies, then times it. `headers`
/// go with every request (the logged-in row's token); the logged-in row
/// fails unless every upstream request carried the token on.
pub async fn run_peer(
    system: &System,
    settings: &Settings,
    supergraphs: &Supergraphs,
    peer: Peer,
    headers: Vec<(String, String)>,
    reference: &[Value],
) -> anyhow::Result<Vec<Series>> {
    let client = crate::gql::client();
    let upstream = || {
        let (auth, post) = (&supergraphs.auth_proxy, &supergraphs.post_proxy);
        (auth.requests() + post.requests(), auth.authorized_requests() + post.authorized_requests())
    };
    // 1. Through the counting proxies: errors, the data, upstream requests.
    let mut counted = spawn_peer(system, settings, peer, &supergraphs.counted, &format!("{}-counted", peer.key()))?;
    counted.wait_ready(&client, "/graphql", true, Duration::from_secs(120)).await?;
    let target = Target { key: peer.key(), label: peer.label(), url: counted.url("/graphql"), headers: headers.clone() };
    let mut checks = Vec::new();
    for &query in peer.queries() {
        validate(&client, &target, query).await?; // warms the query plan cache
        let before = upstream();
        const N: u64 = 5;
        let mut same = true;
        for _ in 0..N {
            let (data, _) = validate(&client, &target, query).await?;
            same &= data == reference[query.index()];
        }
        let after = upstream();
        let (requests, authorized) = (after.0 - before.0, after.1 - before.1);
        if !headers.is_empty() && authorized != requests {
            bail!("{} forwarded the token on {authorized} of {requests} upstream requests", peer.label());
        }
        checks.push((requests as f64 / N as f64, same));
    }
    counted.stop(Duration::from_secs(10)).await;

    // 2. Straight to the services: timed.
    let mut proc = spawn_peer(system, settings, peer, &supergraphs.direct, peer.key())?;
    proc.wait_ready(&client, "/graphql", true, Duration::from_secs(120)).await?;
    let target = Target { key: peer.key(), label: peer.label(), url: proc.url("/graphql"), headers };
    let mut series = Vec::new();
    for (qi, &query) in peer.queries().iter().enumerate() {
        validate(&client, &target, query).await?;
        let points = measure(settings, &target, query, &peer.levels(settings, query), Some(&proc)).await?;
        validate(&client, &target, query).await.context("after the load")?;
        series.push(Series {
            key: peer.key().into(),
            label: peer.label().into(),
            query,
            upstream_requests_per_request: Some(checks[qi].0),
            sql_statements_per_request: None,
            same_data_as_read_model: Some(checks[qi].1),
            executor: None,
            points,
        });
    }
    proc.stop(Duration::from_secs(10)).await;
    Ok(series)
}
