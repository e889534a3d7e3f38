//! A test server: the transports' router in front of a small async-graphql schema.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicI32, Ordering},
        Arc,
    },
    time::Duration,
};

use agora_platform::tokens::{Caller as TokenCaller, Claims, TokenError};
use async_graphql::{Context, EmptySubscription, ErrorExtensions, Object, Schema};
use axum::http::HeaderMap;
use futures::stream::{BoxStream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::live::SlowSubscriber;
use crate::pipeline::{Answer, Executor, Outcome};
use crate::transport::http::HttpLimits;
use crate::transport::websocket::LiveSettings;
use crate::transport::{router, AppState};
use crate::upstream::Forwarded;

/// What the transport handed the executor along with the request.
struct Caller {
    headers: HeaderMap,
    peer: SocketAddr,
}

pub struct Query;

#[Object]
impl Query {
    async fn hello(&self, name: Option<String>) -> String {
        format!("Hello, {}!", name.as_deref().unwrap_or("world"))
    }

    /// A header of the HTTP request, as the executor saw it.
    async fn header(&self, context: &Context<'_>, name: String) -> Option<String> {
        let caller = context.data_unchecked::<Caller>();
        caller.headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
    }

    /// The client's IP address, as the executor saw it.
    async fn peer_ip(&self, context: &Context<'_>) -> String {
        context.data_unchecked::<Caller>().peer.ip().to_string()
    }

    /// Never resolves: for the request timeout.
    async fn stall(&self) -> bool {
        std::future::pending().await
    }

    /// Always fails, as a resolver refusing a caller would.
    async fn secret(&self) -> async_graphql::Result<String> {
        Err(async_graphql::Error::new("not for you").extend_with(|_, extensions| extensions.set("code", "FORBIDDEN")))
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    async fn bump(&self, context: &Context<'_>) -> i32 {
        context.data_unchecked::<AtomicI32>().fetch_add(1, Ordering::SeqCst) + 1
    }
}

struct TestExecutor {
    schema: Schema<Query, Mutation, EmptySubscription>,
}

#[async_trait::async_trait]
impl Executor for TestExecutor {
    async fn execute(&self, request: async_graphql::Request, headers: &HeaderMap, peer: SocketAddr) -> Answer {
        self.schema.execute(request.data(Caller { headers: headers.clone(), peer })).await.into()
    }

    async fn verify(&self, _token: &str) -> Result<Claims, TokenError> {
        Err(TokenError::Invalid)
    }

    fn subscribe(
        &self,
        request: async_graphql::Request,
        _caller: &TokenCaller,
        _forwarded: &Forwarded,
        _slow: SlowSubscriber,
    ) -> BoxStream<'static, Arc<Outcome>> {
        self.schema.execute_stream(request).map(|response| Arc::new(Outcome::of(&response))).boxed()
    }
}

pub struct TestServer {
    pub address: SocketAddr,
    pub client: reqwest::Client,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// Starts the router on a free port, served as the gateway serves it.
pub async fn spawn(limits: HttpLimits) -> TestServer {
    let schema = Schema::build(Query, Mutation, EmptySubscription).data(AtomicI32::new(0)).finish();
    let websocket = LiveSettings {
        init_timeout: Duration::from_secs(10),
        keep_alive: Duration::from_secs(15),
        send_timeout: Duration::from_secs(5),
        max_subscriptions: 100,
        max_message_bytes: 64 * 1024,
    };
    let state = AppState { executor: Arc::new(TestExecutor { schema }), limits, websocket, closing: CancellationToken::new() };
    let app = router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serve the router");
    });
    TestServer { address, client: reqwest::Client::new() }
}

/// The media types of GraphQL responses, as `Content-Type` values.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";
pub const JSON: &str = "application/json; charset=utf-8";

/// Status, content type and JSON body of a response.
pub async fn read(response: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = response.text().await.expect("read the body");
    let body = serde_json::from_str(&text).unwrap_or_else(|error| panic!("body is not JSON ({error}): {text}"));
    (status, content_type, body)
}
