//! The event envelope and the event types.
//!
//! On the wire an event is one JSON object: the envelope's fields plus
//! `event_type`, `event_version` and `data`. [`Event`] is the typed view of
//! `event_type` + `data`; the envelope keeps `data` as raw JSON so that a
//! consumer can route, log or dead-letter an event it cannot decode.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::topics;

/// What every event carries, whatever its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Unique per event (UUID v7); consumers dedupe on it.
    pub event_id: Uuid,
    /// The type name, e.g. `PostCreated`.
    pub event_type: String,
    /// The version of that type's `data` shape.
    pub event_version: u32,
    /// The aggregate the event belongs to; also the Kafka message key.
    pub aggregate_id: Uuid,
    /// 1, 2, 3 … per aggregate, in commit order.
    pub aggregate_version: i64,
    pub occurred_at: DateTime<Utc>,
    /// The event's payload; its shape is given by `event_type` and `event_version`.
    pub data: serde_json::Value,
}

/// A user account was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub registered_at: DateTime<Utc>,
}

/// A user changed their display name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserRenamed {
    pub user_id: Uuid,
    pub display_name: String,
    pub renamed_at: DateTime<Utc>,
}

/// A post was published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PostCreated {
    pub post_id: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// Points were added to a user's account. The aggregate is the user's points
/// account (aggregate id = user id, versions of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointsAwarded {
    pub user_id: Uuid,
    pub delta: i32,
    /// The account's total after this award.
    pub total: i32,
    /// Why, e.g. `POST_CREATED`.
    pub reason: String,
    /// The event that earned the points (dedupe key of the ledger).
    pub cause_event_id: Uuid,
    pub awarded_at: DateTime<Utc>,
}

/// Every event type Agora publishes, with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum Event {
    UserRegistered(UserRegistered),
    UserRenamed(UserRenamed),
    PostCreated(PostCreated),
    PointsAwarded(PointsAwarded),
}

/// Why an envelope could not be turned into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("the message is not an event envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    #[error("unknown event type {event_type} version {event_version}")]
    UnknownType { event_type: String, event_version: u32 },
    #[error("the data of {event_type} does not match its schema: {source}")]
    Data {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Event {
    /// The type name as written in `event_type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::UserRegistered(_) => "UserRegistered",
            Event::UserRenamed(_) => "UserRenamed",
            Event::PostCreated(_) => "PostCreated",
            Event::PointsAwarded(_) => "PointsAwarded",
        }
    }

    /// The version of the payload shape; bump it (and keep decoding the old
    /// one) when a payload changes incompatibly.
    pub fn version(&self) -> u32 {
        1
    }

    /// The topic this event is published on.
    pub fn topic(&self) -> &'static str {
        match self {
            Event::UserRegistered(_) | Event::UserRenamed(_) => topics::USER,
            Event::PostCreated(_) => topics::POST,
            Event::PointsAwarded(_) => topics::POINTS,
        }
    }

    /// The aggregate this event belongs to.
    pub fn aggregate_id(&self) -> Uuid {
        match self {
            Event::UserRegistered(e) => e.user_id,
            Event::UserRenamed(e) => e.user_id,
            Event::PostCreated(e) => e.post_id,
            Event::PointsAwarded(e) => e.user_id,
        }
    }

    /// Wraps the event in an envelope with a fresh event id.
    pub fn into_envelope(self, aggregate_version: i64, occurred_at: DateTime<Utc>) -> Envelope {
        let aggregate_id = self.aggregate_id();
        let event_version = self.version();
        let (event_type, data) = match serde_json::to_value(&self) {
            Ok(serde_json::Value::Object(mut tagged)) => {
                (tagged.remove("event_type").and_then(|t| t.as_str().map(str::to_owned)), tagged.remove("data"))
            }
            _ => (None, None),
        };
        Envelope {
            event_id: Uuid::now_v7(),
            event_type: event_type.unwrap_or_else(|| self.type_name().to_owned()),
            event_version,
            aggregate_id,
            aggregate_version,
            occurred_at,
            data: data.unwrap_or(serde_json::Value::Null),
        }
    }
}

impl Envelope {
    /// Parses an envelope from a Kafka message payload.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        serde_json::from_slice(bytes).map_err(EventDecodeError::Envelope)
    }

    /// The JSON bytes published on Kafka.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// The typed event, if this part knows the type and version.
    pub fn event(&self) -> Result<Event, EventDecodeError> {
        fn data<T: serde::de::DeserializeOwned>(envelope: &Envelope) -> Result<T, EventDecodeError> {
            T::deserialize(&envelope.data)
                .map_err(|source| EventDecodeError::Data { event_type: envelope.event_type.clone(), source })
        }
        match (self.event_type.as_str(), self.event_version) {
            ("UserRegistered", 1) => data(self).map(Event::UserRegistered),
            ("UserRenamed", 1) => data(self).map(Event::UserRenamed),
            ("PostCreated", 1) => data(self).map(Event::PostCreated),
            ("PointsAwarded", 1) => data(self).map(Event::PointsAwarded),
            (event_type, event_version) => {
                Err(EventDecodeError::UnknownType { event_type: event_type.to_owned(), event_version })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 123_456_000).unwrap()
    }

    fn one_of_each() -> Vec<Event> {
        let user_id = Uuid::now_v7();
        vec![
            Event::UserRegistered(UserRegistered {
                user_id,
                username: "ada".into(),
                display_name: "Ada L.".into(),
                registered_at: at(1),
            }),
            Event::UserRenamed(UserRenamed { user_id, display_name: "Countess".into(), renamed_at: at(2) }),
            Event::PostCreated(PostCreated {
                post_id: Uuid::now_v7(),
                author_id: user_id,
                title: "Notes".into(),
                body: "On the engine ✓".into(),
                created_at: at(3),
            }),
            Event::PointsAwarded(PointsAwarded {
                user_id,
                delta: 10,
                total: 20,
                reason: "POST_CREATED".into(),
                cause_event_id: Uuid::now_v7(),
                awarded_at: at(4),
            }),
        ]
    }

    #[test]
    fn every_event_survives_a_round_trip_through_the_wire_format() {
        for event in one_of_each() {
            let envelope = event.clone().into_envelope(7, at(9));
            let decoded = Envelope::from_slice(&envelope.to_bytes()).unwrap();
            assert_eq!(decoded, envelope);
            assert_eq!(decoded.event().unwrap(), event);
            assert_eq!(decoded.event_type, event.type_name());
            assert_eq!(decoded.aggregate_version, 7);
        }
    }

    #[test]
    fn the_wire_format_is_a_flat_envelope_with_data() {
        let envelope = one_of_each().remove(1).into_envelope(2, at(9));
        let json: serde_json::Value = serde_json::from_slice(&envelope.to_bytes()).unwrap();
        assert_eq!(json["event_type"], "UserRenamed");
        assert_eq!(json["event_version"], 1);
        assert_eq!(json["aggregate_version"], 2);
        assert_eq!(json["data"]["display_name"], "Countess");
        assert!(json["event_id"].as_str().unwrap().len() == 36);
    }

    #[test]
    fn events_are_routed_to_their_aggregate_topic() {
        let topics: Vec<_> = one_of_each().iter().map(Event::topic).collect();
        assert_eq!(topics, [topics::USER, topics::USER, topics::POST, topics::POINTS]);
    }

    #[test]
    fn an_unknown_event_type_is_reported_not_guessed() {
        let mut envelope = one_of_each().remove(0).into_envelope(1, at(9));
        envelope.event_type = "UserDeleted".into();
        assert!(matches!(envelope.event(), Err(EventDecodeError::UnknownType { .. })));
    }

    #[test]
    fn data_of_the_wrong_shape_is_a_decode_error() {
        let mut envelope = one_of_each().remove(2).into_envelope(1, at(9));
        envelope.data = serde_json::json!({"post_id": "not a uuid"});
        assert!(matches!(envelope.event(), Err(EventDecodeError::Data { .. })));
    }

    #[test]
    fn garbage_is_not_an_envelope() {
        assert!(matches!(Envelope::from_slice(b"{nope"), Err(EventDecodeError::Envelope(_))));
    }
}
