//! Fuzzing event decoding: whatever bytes arrive on a topic, decoding an
//! envelope and its event answers Ok or Err and never panics. Run inside
//! `cargo test` (a few hundred cases per property).

use agora_schema::{Envelope, Event, PostCreated, UserRegistered};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use uuid::Uuid;

/// Envelopes of every event type, as published.
fn valid_envelopes() -> Vec<Vec<u8>> {
    let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
    let user_id = Uuid::from_u128(7);
    [
        Event::UserRegistered(UserRegistered { user_id, username: "ada".into(), display_name: "Ada".into(), registered_at: at }),
        Event::PostCreated(PostCreated {
            post_id: Uuid::from_u128(9),
            author_id: user_id,
            title: "Notes".into(),
            body: "On the engine".into(),
            created_at: at,
        }),
    ]
    .into_iter()
    .map(|event| event.into_envelope(1, at).to_bytes())
    .collect()
}

fn decode(bytes: &[u8]) {
    if let Ok(envelope) = Envelope::from_slice(bytes) {
        let _ = envelope.event();
    }
}

/// One change to a byte string: a byte replaced, inserted or removed.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match *mutation {
        Mutation::Replace(at, byte) if !bytes.is_empty() => {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        Mutation::Insert(at, byte) => {
            let at = at % (bytes.len() + 1);
            bytes.insert(at, byte);
        }
        Mutation::Remove(at) if !bytes.is_empty() => {
            let at = at % bytes.len();
            bytes.remove(at);
        }
        _ => {}
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // JSON's own characters are the interesting replacements.
    let byte = prop_oneof![any::<u8>(), prop::sample::select(b"{}[]\":,0-9.eE\\ntruefalsenull".to_vec())];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        (any::<usize>(), byte).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode(&bytes);
    }

    #[test]
    fn mutated_envelopes_never_panic(which in 0usize..2, mutations in prop::collection::vec(mutation(), 1..8)) {
        let mut bytes = valid_envelopes()[which].clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        decode(&bytes);
    }

    #[test]
    fn envelopes_with_arbitrary_fields_never_panic(
        event_type in prop::sample::select(vec!["UserRegistered", "UserRenamed", "PostCreated", "PointsAwarded", "Other"]),
        event_version in any::<u32>(),
        aggregate_version in any::<i64>(),
        data in prop::collection::vec((any::<String>(), any::<i64>()), 0..6),
    ) {
        let data: serde_json::Map<String, serde_json::Value> = data.into_iter().map(|(key, value)| (key, value.into())).collect();
        let envelope = serde_json::json!({
            "event_id": Uuid::from_u128(1), "event_type": event_type, "event_version": event_version,
            "aggregate_id": Uuid::from_u128(2), "aggregate_version": aggregate_version,
            "occurred_at": "2026-01-01T00:00:00Z", "data": data,
        });
        decode(envelope.to_string().as_bytes());
    }
}

#[test]
fn a_valid_envelope_decodes() {
    for bytes in valid_envelopes() {
        assert!(Envelope::from_slice(&bytes).unwrap().event().is_ok());
    }
}
