//! What a command wrote, as the owning service tells its caller in the
//! `extensions` of its GraphQL answer (`extensions.writes`): the gateway
//! waits until its read model has applied each receipt (read-your-writes),
//! and signs them into the consistency tokens it hands to clients.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What one command wrote: the topic of its event, the aggregate and the
/// version the event gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteReceipt {
    pub topic: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
}

/// The members of a service's `extensions` that report writes:
/// `{"writes": [{"topic": …, "aggregateId": …, "aggregateVersion": …}]}`,
/// left out when the request wrote nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WritesExtension {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<WriteReceipt>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_writes_travel_as_a_camel_case_list_under_writes() {
        let id = Uuid::now_v7();
        let written = WritesExtension {
            writes: vec![WriteReceipt { topic: "agora.user.v1".into(), aggregate_id: id, aggregate_version: 2 }],
        };
        let value = serde_json::to_value(&written).unwrap();
        assert_eq!(value, json!({ "writes": [{ "topic": "agora.user.v1", "aggregateId": id, "aggregateVersion": 2 }] }));
        assert_eq!(serde_json::from_value::<WritesExtension>(value).unwrap(), written);
    }

    #[test]
    fn nothing_written_is_no_member_at_all() {
        assert_eq!(serde_json::to_value(WritesExtension::default()).unwrap(), json!({}));
        assert_eq!(serde_json::from_value::<WritesExtension>(json!({ "cost": 3 })).unwrap(), WritesExtension::default());
    }
}
