//! The two GraphQL-over-WebSocket protocols: `graphql-transport-ws` (the
//! current one, of the npm `graphql-ws` library) and the legacy `graphql-ws`
//! of `subscriptions-transport-ws`, chosen by `Sec-WebSocket-Protocol`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    TransportWs,
    Legacy,
}

impl Protocol {
    pub const TRANSPORT_WS: &'static str = "graphql-transport-ws";
    pub const LEGACY: &'static str = "graphql-ws";

    pub fn from_subprotocol(name: Option<&str>) -> Self {
        match name {
            Some(Self::LEGACY) => Protocol::Legacy,
            _ => Protocol::TransportWs,
        }
    }
}

/// A message from the client, in either protocol.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {},
    /// `subscribe` (transport-ws) or `start` (legacy).
    #[serde(alias = "start")]
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    /// `complete` (transport-ws) or `stop` (legacy).
    #[serde(alias = "stop")]
    Complete {
        id: String,
    },
    /// Legacy only: the client is leaving.
    ConnectionTerminate {},
}

impl ClientMessage {
    /// Whether the message belongs to `protocol`.
    pub fn valid_in(&self, protocol: Protocol, raw_type: &str) -> bool {
        match protocol {
            Protocol::TransportWs => !matches!(raw_type, "start" | "stop" | "connection_terminate"),
            Protocol::Legacy => !matches!(raw_type, "ping" | "pong" | "subscribe" | "complete"),
        }
    }
}

/// Server messages, as JSON text for `protocol`.
pub struct Outbound(pub Protocol);

impl Outbound {
    pub fn ack(&self) -> String {
        json!({ "type": "connection_ack" }).to_string()
    }

    /// A keep-alive: a ping (transport-ws) or `ka` (legacy).
    pub fn keep_alive(&self) -> String {
        match self.0 {
            Protocol::TransportWs => json!({ "type": "ping" }),
            Protocol::Legacy => json!({ "type": "ka" }),
        }
        .to_string()
    }

    pub fn pong(&self, payload: Option<Value>) -> String {
        match payload {
            Some(payload) => json!({ "type": "pong", "payload": payload }),
            None => json!({ "type": "pong" }),
        }
        .to_string()
    }

    /// A result, from its payload serialized once for every subscriber.
    pub fn next(&self, id: &str, payload: &RawValue) -> String {
        #[derive(Serialize)]
        struct Next<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            id: &'a str,
            payload: &'a RawValue,
        }
        let kind = match self.0 {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        };
        serde_json::to_string(&Next { kind, id, payload }).expect("a message serializes")
    }

    pub fn error(&self, id: &str, errors: &[async_graphql::ServerError]) -> String {
        match self.0 {
            Protocol::TransportWs => json!({ "type": "error", "id": id, "payload": errors }),
            Protocol::Legacy => json!({ "type": "error", "id": id, "payload": errors.first() }),
        }
        .to_string()
    }

    pub fn complete(&self, id: &str) -> String {
        json!({ "type": "complete", "id": id }).to_string()
    }

    /// Legacy only: the connection cannot go on.
    pub fn connection_error(&self, message: &str) -> String {
        json!({ "type": "connection_error", "payload": { "message": message } }).to_string()
    }
}

/// The message's `type`, read before decoding the rest.
pub fn raw_type(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<Typed>(text).ok().map(|typed| typed.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_transport_ws_subscribe_with_its_query() {
        let text = r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { postCreated { id } }"}}"#;
        let message: ClientMessage = serde_json::from_str(text).unwrap();
        assert!(matches!(message, ClientMessage::Subscribe { ref id, .. } if id == "1"));
        assert!(message.valid_in(Protocol::TransportWs, "subscribe"));
        assert!(!message.valid_in(Protocol::Legacy, "subscribe"));
    }

    #[test]
    fn reads_a_legacy_start_as_a_subscribe() {
        let text = r#"{"type":"start","id":"7","payload":{"query":"subscription { userRenamed { id } }"}}"#;
        let message: ClientMessage = serde_json::from_str(text).unwrap();
        assert!(matches!(message, ClientMessage::Subscribe { .. }));
        assert!(message.valid_in(Protocol::Legacy, "start"));
    }

    #[test]
    fn the_legacy_protocol_answers_data_where_transport_ws_answers_next() {
        let payload = RawValue::from_string(r#"{"data":{"a":1}}"#.into()).unwrap();
        assert_eq!(Outbound(Protocol::Legacy).next("1", &payload), r#"{"type":"data","id":"1","payload":{"data":{"a":1}}}"#);
        assert_eq!(
            Outbound(Protocol::TransportWs).next("\"", &payload),
            r#"{"type":"next","id":"\"","payload":{"data":{"a":1}}}"#
        );
    }

    #[test]
    fn picks_the_protocol_by_subprotocol_name() {
        assert_eq!(Protocol::from_subprotocol(Some("graphql-ws")), Protocol::Legacy);
        assert_eq!(Protocol::from_subprotocol(Some("graphql-transport-ws")), Protocol::TransportWs);
        assert_eq!(Protocol::from_subprotocol(None), Protocol::TransportWs);
    }
}
