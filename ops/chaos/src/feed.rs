//! Subscribers: one graphql-transport-ws client per gateway replica,
//! subscribed to `postCreated { id }`, reconnecting whenever the connection
//! ends (a killed gateway). Each connection is a [`Session`]; what a session
//! should have received is judged afterwards ([`crate::verify`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// A post is expected on a session's feed when sent this long after it
/// subscribed and answered this long before it ended.
pub const FEED_GRACE: Duration = Duration::from_secs(2);

/// One subscription on one connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub gateway: String,
    /// When the subscribe message was sent.
    pub started: Instant,
    /// When the connection ended (`None`: still open).
    pub ended: Option<Instant>,
    /// Post ids pushed, in order, with when.
    pub received: Vec<(Uuid, Instant)>,
}

type Sessions = Arc<Mutex<Vec<Session>>>;

/// The subscribers of a run.
pub struct Feed {
    sessions: Sessions,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Feed {
    /// One subscriber per `(name, port)` gateway.
    pub fn start(gateways: &[(String, u16)]) -> Feed {
        let sessions: Sessions = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let tasks = gateways
            .iter()
            .map(|(name, port)| tokio::spawn(subscriber(name.clone(), *port, sessions.clone(), stopped.clone())))
            .collect();
        Feed { sessions, stop, tasks }
    }

    /// Waits (at most 60 s) until `gateways` sessions are open, then for
    /// the grace after which their posts are expected.
    pub async fn wait_connected(&self, gateways: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.sessions.lock().unwrap().iter().filter(|s| s.ended.is_none()).count() < gateways && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(FEED_GRACE).await;
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }

    pub async fn stop(self) -> Vec<Session> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let mut sessions = self.sessions.lock().unwrap().clone();
        let now = Instant::now();
        for session in &mut sessions {
            session.ended.get_or_insert(now);
        }
        sessions
    }
}

async fn subscriber(gateway: String, port: u16, sessions: Sessions, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        match connect(port).await {
            Ok(mut ws) => {
                let index = {
                    let mut all = sessions.lock().unwrap();
                    all.push(Session { gateway: gateway.clone(), started: Instant::now(), ended: None, received: Vec::new() });
                    all.len() - 1
                };
                let stopped = read(&mut ws, index, &sessions, &mut stop).await;
                sessions.lock().unwrap()[index].ended = Some(Instant::now());
                if stopped {
                    let _ = ws.close(None).await;
                    return;
                }
            }
            Err(_) => {
                // The gateway is away (being restarted): try again shortly.
                if tokio::time::timeout(Duration::from_millis(200), stop.changed()).await.is_ok() {
                    return;
                }
            }
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(port: u16) -> anyhow::Result<Socket> {
    let mut request = format!("ws://127.0.0.1:{port}/graphql").into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) =
        tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(request)).await.context("handshake")??;
    ws.send(Message::text(r#"{"type":"connection_init","payload":{}}"#)).await?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.context("no connection_ack")? {
        Some(Ok(Message::Text(text))) if text.contains("connection_ack") => {}
        other => bail!("expected connection_ack, got {other:?}"),
    }
    let subscribe = r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { postCreated { id } }"}}"#;
    ws.send(Message::text(subscribe)).await?;
    Ok(ws)
}

/// Reads pushes until the connection ends (false) or the feed stops (true).
async fn read(ws: &mut Socket, index: usize, sessions: &Sessions, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        let message = tokio::select! {
            _ = stop.changed() => return true,
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
        };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        match message["type"].as_str() {
            Some("next") => {
                if let Some(id) = message["payload"]["data"]["postCreated"]["id"].as_str().and_then(|id| id.parse().ok()) {
                    sessions.lock().unwrap()[index].received.push((id, Instant::now()));
                }
            }
            Some("ping") => {
                let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
            }
            Some("error" | "complete") => {
                eprintln!("subscriber: the subscription ended: {text}");
                return false;
            }
            _ => {}
        }
    }
}
