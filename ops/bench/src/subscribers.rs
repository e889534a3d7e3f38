//! Subscribers: N WebSocket clients (graphql-transport-ws) on one fresh
//! gateway process, each subscribed to
//! `postCreated { id title author { displayName } }`, while posts are
//! created at a steady rate through post-service. Latency = delivery to a
//! subscriber − post-service's answer to the createPost (the commit).
//! Clients connect from 127.0.0.2-127.0.0.201 so that ephemeral ports on
//! loopback are never short.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::dataset::BenchUser;
use crate::freshness::create_post;
use crate::procs::clock_ticks_per_second;
use crate::stats::{summarize, Summary};
use crate::system::System;

const DOCUMENT: &str = "subscription { postCreated { id title author { displayName } } }";

/// The subscribe message of subscriber `index`. The gateway executes the
/// subscribers of one document once; with `distinct`, a comment makes every
/// subscriber's document its own, the worst case (one execution each).
fn subscribe_message(index: usize, distinct: bool) -> String {
    let query = if distinct { format!("{DOCUMENT} # subscriber {index}") } else { DOCUMENT.to_owned() };
    serde_json::json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }).to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberLevel {
    pub subscribers: usize,
    /// Every subscriber sent its own document (one execution per subscriber).
    pub distinct_operations: bool,
    pub connected: usize,
    pub connect_seconds: f64,
    pub posts: usize,
    pub post_rate_per_second: f64,
    pub expected_deliveries: usize,
    pub deliveries: usize,
    /// Subscribers the server closed during the run.
    pub closed_by_server: usize,
    pub latency: Summary,
    pub rss_idle_mib: Option<f64>,
    pub rss_connected_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// (connected − idle) / subscribers.
    pub kib_per_subscriber: Option<f64>,
    /// The gateway's CPU while posts flowed, in % of one core.
    pub cpu_percent: Option<f64>,
}

struct Shared {
    received: AtomicUsize,
    closed: AtomicUsize,
    subscribed: AtomicUsize,
    failed: AtomicUsize,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(index: usize, distinct: bool, server: SocketAddr, path: &str) -> anyhow::Result<Socket> {
    let source = Ipv4Addr::new(127, 0, 0, (2 + index % 200) as u8);
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = socket.connect(server).await.context("connect")?;
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{server}{path}").into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    // Small client buffers: 10,000 clients in this process (the gateway's side is its own).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await.context("WebSocket handshake")?;
    ws.send(Message::text(r#"{"type":"connection_init","payload":{}}"#)).await?;
    let ack = tokio::time::timeout(Duration::from_secs(60), ws.next()).await.context("no connection_ack")?;
    match ack {
        Some(Ok(Message::Text(text))) if text.contains("connection_ack") => {}
        other => bail!("expected connection_ack, got {other:?}"),
    }
    ws.send(Message::text(subscribe_message(index, distinct))).await?;
    Ok(ws)
}

async fn subscriber(
    index: usize,
    distinct: bool,
    server: SocketAddr,
    path: String,
    shared: Arc<Shared>,
    connecting: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<(Uuid, Instant)>> {
    let permit = connecting.acquire().await?;
    let mut ws = match connect(index, distinct, server, &path).await {
        Ok(ws) => ws,
        Err(error) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return Err(error);
        }
    };
    shared.subscribed.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let mut received = Vec::with_capacity(256);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if index == 0 && received.is_empty() && std::env::var_os("BENCH_DEBUG_WS").is_some() {
                        eprintln!("    subscriber 0 got: {text}");
                    }
                    // The selection's only `id` inside postCreated is the post's.
                    let id_at = text.find(r#""postCreated":"#).and_then(|at| text[at..].find(r#""id":""#).map(|id| at + id + 6));
                    if let Some(start) = id_at {
                        if let Some(id) = text.get(start..start + 36).and_then(|id| id.parse::<Uuid>().ok()) {
                            received.push((id, Instant::now()));
                            shared.received.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if text.contains(r#""type":"ping""#) {
                        ws.send(Message::text(r#"{"type":"pong"}"#)).await?;
                    } else if text.contains(r#""type":"error""#) || text.contains(r#""type":"complete""#) {
                        shared.closed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("    subscriber {index}: {text}");
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = ws.close(None).await;
    Ok(received)
}

pub async fn run_level(
    system: &mut System,
    users: &[BenchUser],
    n: usize,
    distinct: bool,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<SubscriberLevel> {
    system.restart_gateway().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gateway = system.gateway();
    let rss_idle_mib = gateway.rss_mib();
    let server: SocketAddr = format!("127.0.0.1:{}", gateway.port).parse()?;
    let shared = Arc::new(Shared {
        received: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
        subscribed: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    });
    let connecting = Arc::new(Semaphore::new(200));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(subscriber(i, distinct, server, "/graphql".into(), shared.clone(), connecting.clone(), stop_rx.clone()))
        })
        .collect();
    let connect_deadline = Instant::now() + Duration::from_secs(300);
    while shared.subscribed.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < n
        && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let connected = shared.subscribed.load(Ordering::Relaxed);
    if connected < n {
        eprintln!("    {} subscribers failed to connect", shared.failed.load(Ordering::Relaxed));
    }
    println!("    {connected}/{n} subscribers connected in {connect_seconds:.1} s");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected_mib = system.gateway().rss_mib();

    // A probe post: every subscriber receives it before the timed part.
    let client = crate::gql::client();
    let post_url = system.post_graphql();
    create_post(&client, &post_url, &users[0], "Subscriber probe").await?;
    let probe_deadline = Instant::now() + Duration::from_secs(60);
    while shared.received.load(Ordering::Relaxed) < connected && Instant::now() < probe_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after_probe = shared.received.load(Ordering::Relaxed);
    if after_probe < connected {
        eprintln!("    only {after_probe} of {connected} subscribers got the probe post");
    }

    // Posts at a steady rate.
    let total = (rate * seconds).round() as usize;
    let gateway = system.gateway();
    gateway.reset_peak();
    let ticks_before = gateway.cpu_ticks();
    let cpu_started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut creations = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let (client, url, user) = (client.clone(), post_url.clone(), users[(i + 1) % users.len()].clone());
        creations.push(tokio::spawn(async move { create_post(&client, &url, &user, &format!("Live post {i}")).await }));
    }
    let mut committed: HashMap<Uuid, Instant> = HashMap::with_capacity(total);
    for creation in creations {
        let (id, _, at) = creation.await??;
        committed.insert(id, at);
    }
    let expected = after_probe + connected * total;
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_seconds = cpu_started.elapsed().as_secs_f64();
    let gateway = system.gateway();
    let cpu_percent = match (ticks_before, gateway.cpu_ticks()) {
        (Some(before), Some(after)) => Some((after - before) as f64 / clock_ticks_per_second() / cpu_seconds * 100.0),
        _ => None,
    };
    let peak_rss_mib = gateway.peak_rss_mib();
    let _ = stop_tx.send(true);
    let mut latencies = Vec::with_capacity(connected * total);
    let mut deliveries = 0;
    let mut failures = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(received)) => {
                for (id, at) in received {
                    if let Some(commit) = committed.get(&id) {
                        deliveries += 1;
                        latencies.push(at.saturating_duration_since(*commit).as_secs_f64() * 1e3);
                    }
                }
            }
            Ok(Err(error)) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("    a subscriber failed: {error:#}");
                }
            }
            Err(error) => eprintln!("    a subscriber task panicked: {error}"),
        }
    }
    let kib_per_subscriber = match (rss_idle_mib, rss_connected_mib) {
        (Some(idle), Some(connected_rss)) if connected > 0 => Some((connected_rss - idle) * 1024.0 / connected as f64),
        _ => None,
    };
    Ok(SubscriberLevel {
        subscribers: n,
        distinct_operations: distinct,
        connected,
        connect_seconds,
        posts: total,
        post_rate_per_second: rate,
        expected_deliveries: connected * total,
        deliveries,
        closed_by_server: shared.closed.load(Ordering::Relaxed),
        latency: summarize(&mut latencies),
        rss_idle_mib,
        rss_connected_mib,
        peak_rss_mib,
        kib_per_subscriber,
        cpu_percent,
    })
}
