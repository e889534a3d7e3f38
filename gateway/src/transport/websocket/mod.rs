//! GraphQL over WebSocket at `/graphql`: subscriptions (and any other
//! operation) with the `graphql-transport-ws` protocol and the legacy
//! `graphql-ws` one ([`protocol`]), one task per connection
//! ([`connection`]).

mod connection;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use agora_platform::client_address::ClientAddress;
use axum::extract::{FromRequestParts, Request, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

pub use protocol::Protocol;

use crate::pipeline::Executor;

/// Timing and bounds of a connection.
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

/// The read buffer each WebSocket starts with.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Whether the request asks to become a WebSocket.
pub fn asks_to_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// Accepts the upgrade and serves the connection until it ends or `closing`.
pub async fn upgrade(
    request: Request,
    executor: Arc<dyn Executor>,
    settings: LiveSettings,
    closing: CancellationToken,
) -> Response {
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
        .max_message_size(settings.max_message_bytes)
        .max_frame_size(settings.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let protocol = Protocol::from_subprotocol(upgrade.selected_protocol().and_then(|name| name.to_str().ok()));
    upgrade.on_upgrade(move |socket| connection::serve(socket, protocol, executor, settings, client_address, closing))
}
