//! Live events: GraphQL subscriptions over WebSocket at `/graphql`, with
//! the `graphql-transport-ws` protocol and the legacy `graphql-ws` one, fed
//! by the process's own Kafka reader ([`LiveFeed`]).

mod connection;
mod feed;
mod protocol;
mod shared;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_platform::client_address::ClientAddress;
use agora_platform::tokens::{Caller, JwksVerifier};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use feed::{LiveEvent, LiveFeed, LiveReader};
pub use protocol::Protocol;
pub use shared::{OperationKey, Outcome, SharedOperations};

use crate::executor::SourceFactory;
use crate::graphql::context::CommandLog;
use crate::graphql::source::Loaders;
use crate::graphql::{GatewaySchema, RequestContext};
use crate::upstream::{CallCounter, Forwarded};

/// Timing of a connection.
#[derive(Debug, Clone, Copy)]
pub struct LiveSettings {
    /// How long a client may take to send `connection_init` (then 4408).
    pub init_timeout: Duration,
    /// How often the server pings (transport-ws) or sends `ka` (legacy).
    pub keep_alive: Duration,
    /// How long one message may wait for a client that does not read.
    pub send_timeout: Duration,
    /// Operations one connection may run at once (a further `subscribe` is
    /// answered with an `error` whose code is RATE_LIMITED).
    pub max_subscriptions: usize,
    /// The largest message or frame read (a larger one: close 1009).
    pub max_message_bytes: usize,
}

/// What WebSocket connections share.
pub struct LiveEndpoint {
    pub schema: GatewaySchema,
    pub read_model: SourceFactory,
    pub verifier: Arc<JwksVerifier>,
    pub settings: LiveSettings,
    pub shutdown: CancellationToken,
}

impl LiveEndpoint {
    /// The feed the schema's subscriptions read.
    fn feed(&self) -> &LiveFeed {
        self.schema.data::<LiveFeed>().expect("the schema carries the live feed")
    }

    /// The state one operation over the socket resolves with.
    fn request_context(&self, caller: Caller, forwarded: Forwarded) -> RequestContext {
        RequestContext {
            caller,
            loaders: Loaders::new((self.read_model)(forwarded.clone(), Arc::new(CallCounter::default()))),
            forwarded,
            calls: Arc::new(CallCounter::default()),
            commands: Arc::new(CommandLog::default()),
        }
    }
}

/// Tells a connection that one of its subscribers fell behind the feed.
#[derive(Clone, Default)]
pub struct SlowSubscriber(Arc<(Notify, AtomicU64)>);

impl SlowSubscriber {
    pub fn fell_behind(&self, missed: u64) {
        self.0 .1.store(missed, Ordering::Relaxed);
        self.0 .0.notify_one();
    }

    async fn fell_behind_by(&self) -> u64 {
        self.0 .0.notified().await;
        self.0 .1.load(Ordering::Relaxed)
    }

    /// How many events were missed, if any.
    fn missed(&self) -> Option<u64> {
        Some(self.0 .1.load(Ordering::Relaxed)).filter(|&missed| missed > 0)
    }
}

/// The read buffer each WebSocket starts with.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Middleware: takes WebSocket upgrades of `/graphql`, passes the rest on.
pub async fn upgrade(State(endpoint): State<Arc<LiveEndpoint>>, request: Request, next: Next) -> Response {
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if request.uri().path() != "/graphql" || !wants_websocket {
        return next.run(request).await;
    }
    let (mut parts, _) = request.into_parts();
    // Commands sent over the socket are counted against this client's budgets.
    let client_address = parts.extensions.get::<ClientAddress>().map(|address| address.0);
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // tungstenite fills its whole read buffer up front (128 KiB by default):
    // a few KiB per connection suffice, a larger message grows it. Each
    // message is flushed as it is sent, so nothing waits in the write buffer.
    let upgrade = upgrade
        .protocols([Protocol::TRANSPORT_WS, Protocol::LEGACY])
        .max_message_size(endpoint.settings.max_message_bytes)
        .max_frame_size(endpoint.settings.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let protocol = Protocol::from_subprotocol(upgrade.selected_protocol().and_then(|name| name.to_str().ok()));
    let shutdown = endpoint.shutdown.clone();
    upgrade.on_upgrade(move |socket| connection::serve(socket, protocol, endpoint, client_address, shutdown))
}
