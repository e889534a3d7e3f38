//! One WebSocket connection: the handshake, its subscriptions and their
//! results, keep-alive, and every way it can end with a proper close code.
//!
//! Bounds: at most `max_subscriptions` operations at once (a further one
//! gets an `error` with code RATE_LIMITED), messages and frames of at most
//! `max_message_bytes` (a larger one: close 1009), a `connection_init`
//! payload that is an object or absent (else 4400), and a token that is
//! honoured only while it lives (when it expires: close 4403).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::tokens::Caller;
use async_graphql::ErrorExtensions;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::BoxStream;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;

use super::protocol::{raw_type, ClientMessage, Outbound, Protocol};
use super::LiveSettings;
use crate::live::SlowSubscriber;
use crate::pipeline::{Executor, Outcome};
use crate::upstream::Forwarded;

/// What the loop does next.
enum Step {
    Send(Vec<String>),
    Close(u16, String),
    Quit,
}

struct Connection {
    protocol: Protocol,
    outbound: Outbound,
    executor: Arc<dyn Executor>,
    settings: LiveSettings,
    caller: Option<(Caller, Forwarded)>,
    /// The client's address, forwarded with its commands.
    client_address: Option<IpAddr>,
    /// When the token given at `connection_init` expires.
    expires_at: Option<tokio::time::Instant>,
    /// Each subscription's results, then `None` when it ends.
    subscriptions: StreamMap<String, BoxStream<'static, Option<Arc<Outcome>>>>,
    slow: SlowSubscriber,
}

pub async fn serve(
    socket: WebSocket,
    protocol: Protocol,
    executor: Arc<dyn Executor>,
    settings: LiveSettings,
    client_address: Option<IpAddr>,
    shutdown: CancellationToken,
) {
    metrics::gauge!("agora_live_connections").increment(1.0);
    let (mut sink, mut incoming) = socket.split();
    let mut connection = Connection {
        protocol,
        outbound: Outbound(protocol),
        executor,
        settings,
        caller: None,
        client_address,
        expires_at: None,
        subscriptions: StreamMap::new(),
        slow: SlowSubscriber::default(),
    };
    // Made once, not on every turn of the loop: each turn is one event pushed.
    let shutting_down = shutdown.cancelled();
    let slow = connection.slow.clone();
    let fell_behind = slow.fell_behind_by();
    let init_deadline = tokio::time::sleep(settings.init_timeout);
    // Set when a token is accepted; until then it never fires.
    let token_expiry = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(shutting_down, fell_behind, init_deadline, token_expiry);
    let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + settings.keep_alive, settings.keep_alive);
    loop {
        let step = tokio::select! {
            biased;
            _ = &mut shutting_down => Step::Close(1001, "the gateway is shutting down".into()),
            missed = &mut fell_behind => {
                metrics::counter!("agora_live_slow_subscribers_dropped_total").increment(1);
                Step::Close(1008, format!("subscriber too slow: fell {missed} events behind"))
            }
            _ = &mut init_deadline, if connection.caller.is_none() => Step::Close(4408, "Connection initialisation timeout".into()),
            _ = &mut token_expiry, if connection.expires_at.is_some() => Step::Close(4403, "Forbidden: the token has expired".into()),
            _ = keep_alive.tick(), if connection.caller.is_some() => Step::Send(vec![connection.outbound.keep_alive()]),
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => connection.receive(text.as_str()).await,
                Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                    Ok(text) => connection.receive(text).await,
                    Err(_) => Step::Close(4400, "messages must be UTF-8 JSON".into()),
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Step::Send(Vec::new()),
                Some(Err(error)) if too_big(&error) => Step::Close(1009, format!("messages are limited to {} bytes", settings.max_message_bytes)),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Step::Quit,
            },
            Some((id, result)) = connection.subscriptions.next(), if !connection.subscriptions.is_empty() => connection.result(id, result),
        };
        if let Some(expires_at) = connection.expires_at {
            if token_expiry.deadline() != expires_at {
                token_expiry.as_mut().reset(expires_at);
            }
        }
        match step {
            Step::Send(messages) => {
                for text in messages {
                    // A client that does not read its socket is not waited for long.
                    match tokio::time::timeout(settings.send_timeout, sink.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return connection.ended(),
                        Err(_) => {
                            metrics::counter!("agora_live_slow_subscribers_dropped_total").increment(1);
                            return connection.ended();
                        }
                    }
                }
            }
            Step::Close(code, reason) => {
                let frame = CloseFrame { code, reason: close_reason(reason).into() };
                let _ = tokio::time::timeout(settings.send_timeout, sink.send(Message::Close(Some(frame)))).await;
                return connection.ended();
            }
            Step::Quit => return connection.ended(),
        }
    }
}

impl Connection {
    async fn receive(&mut self, text: &str) -> Step {
        let Some(kind) = raw_type(text) else {
            return Step::Close(4400, "invalid message: no type".into());
        };
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => return Step::Close(4400, format!("invalid {kind} message: {error}")),
        };
        if !message.valid_in(self.protocol, &kind) {
            return Step::Close(4400, format!("{kind} is not a message of this protocol"));
        }
        match message {
            ClientMessage::ConnectionInit { payload } => self.init(payload).await,
            ClientMessage::Ping { payload } => Step::Send(vec![self.outbound.pong(payload)]),
            ClientMessage::Pong {} => Step::Send(Vec::new()),
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, *payload),
            ClientMessage::Complete { id } => {
                if self.subscriptions.remove(&id).is_some() {
                    metrics::gauge!("agora_live_subscriptions").decrement(1.0);
                }
                Step::Send(Vec::new())
            }
            ClientMessage::ConnectionTerminate {} => Step::Quit,
        }
    }

    async fn init(&mut self, payload: Option<serde_json::Value>) -> Step {
        if self.caller.is_some() {
            return Step::Close(4429, "Too many initialisation requests".into());
        }
        if !matches!(payload, None | Some(serde_json::Value::Null | serde_json::Value::Object(_))) {
            return Step::Close(4400, "the connection_init payload must be an object".into());
        }
        // {"authorization": "Bearer …"}, whatever the key's case.
        let authorization = payload
            .as_ref()
            .and_then(|payload| payload.as_object())
            .and_then(|fields| fields.iter().find(|(key, _)| key.eq_ignore_ascii_case("authorization")))
            .and_then(|(_, value)| value.as_str())
            .map(str::to_owned);
        let caller = match authorization.as_deref() {
            None => Caller::Anonymous,
            Some(value) => {
                let token = value
                    .split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim());
                let Some(token) = token else {
                    return self.refuse("the authorization must be \"Bearer <token>\"");
                };
                match self.executor.verify(token).await {
                    Ok(claims) => {
                        let lifetime = u64::try_from(claims.exp - chrono::Utc::now().timestamp()).unwrap_or(0);
                        self.expires_at = Some(tokio::time::Instant::now() + Duration::from_secs(lifetime));
                        Caller::User(claims)
                    }
                    Err(error) => return self.refuse(&error.to_string()),
                }
            }
        };
        let forwarded =
            Forwarded { authorization, client_address: self.client_address, traceparent: None, idempotency_key: None };
        self.caller = Some((caller, forwarded));
        let mut messages = vec![self.outbound.ack()];
        if self.protocol == Protocol::Legacy {
            messages.push(self.outbound.keep_alive());
        }
        Step::Send(messages)
    }

    fn refuse(&self, reason: &str) -> Step {
        match self.protocol {
            Protocol::TransportWs => Step::Close(4403, format!("Forbidden: {reason}")),
            Protocol::Legacy => Step::Send(vec![self.outbound.connection_error(reason)]),
        }
    }

    fn subscribe(&mut self, id: String, mut request: async_graphql::Request) -> Step {
        let Some((caller, forwarded)) = &self.caller else {
            return Step::Close(4401, "Unauthorized".into());
        };
        if self.subscriptions.contains_key(&id) {
            return Step::Close(4409, format!("Subscriber for {id} already exists"));
        }
        if let Err(refused) = self.executor.resolve_document(&mut request) {
            return Step::Send(vec![self.outbound.error(&id, &[refused])]);
        }
        let max = self.settings.max_subscriptions;
        if self.subscriptions.len() >= max {
            metrics::counter!("agora_live_subscriptions_refused_total").increment(1);
            let message = format!("at most {max} operations may run at once on one connection; complete one first");
            let error = agora_platform::budget::rate_limited(message, agora_platform::budget::RetryAfter(1))
                .extend_with(|_, extensions| extensions.set("limit", max as u64));
            return Step::Send(vec![self.outbound.error(&id, &[error.into_server_error(Default::default())])]);
        }
        let results = self.executor.subscribe(request, caller, forwarded, self.slow.clone());
        let mut results = results.map(Some).chain(futures::stream::once(async { None })).boxed();
        // The first poll of a subscription runs its resolver, which joins the
        // feed (or joins the running execution): done now, every event after
        // this message reaches it.
        let first = results.next().now_or_never();
        self.subscriptions.insert(id.clone(), results);
        metrics::gauge!("agora_live_subscriptions").increment(1.0);
        match first {
            Some(first) => self.result(id, first.flatten()),
            None => Step::Send(Vec::new()),
        }
    }

    /// A subscription's next result, or its end.
    fn result(&mut self, id: String, result: Option<Arc<Outcome>>) -> Step {
        match result.as_deref() {
            Some(Outcome::Failed(errors)) => {
                // The operation failed as a whole: an error ends it, no complete follows.
                self.forget(&id);
                Step::Send(vec![self.outbound.error(&id, errors)])
            }
            Some(Outcome::Next(payload)) => {
                metrics::counter!("agora_live_events_pushed_total").increment(1);
                Step::Send(vec![self.outbound.next(&id, payload)])
            }
            // Never sent to a subscriber: it is told through `SlowSubscriber`.
            Some(Outcome::FellBehind(_)) => Step::Send(Vec::new()),
            None => {
                self.forget(&id);
                Step::Send(vec![self.outbound.complete(&id)])
            }
        }
    }

    fn forget(&mut self, id: &str) {
        if self.subscriptions.remove(id).is_some() {
            metrics::gauge!("agora_live_subscriptions").decrement(1.0);
        }
    }

    fn ended(self) {
        metrics::gauge!("agora_live_subscriptions").decrement(self.subscriptions.len() as f64);
        metrics::gauge!("agora_live_connections").decrement(1.0);
    }
}

/// Whether a read failed because a message or frame was over the limit.
fn too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if matches!(error.downcast_ref::<tungstenite::Error>(), Some(tungstenite::Error::Capacity(_))) {
            return true;
        }
        source = error.source();
    }
    false
}

/// A close frame's reason may hold at most 123 bytes.
fn close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut end = MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::close_reason;

    #[test]
    fn a_close_reason_is_cut_to_what_a_close_frame_holds() {
        assert_eq!(close_reason("short".into()), "short");
        let long = "é".repeat(100);
        let cut = close_reason(long);
        assert!(cut.len() <= 123 && cut.chars().all(|c| c == 'é'));
    }
}
