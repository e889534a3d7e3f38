//! Answers of the read-model strategy, kept until what they read changes.
//!
//! The read model changes only when the projector commits, and every commit
//! notifies `agora_projection` with the tags of what it changed (see
//! [`crate::commands::consistency`]). An answer is stored with the tags of
//! what it read ([`Tag`]: the users, posts and lists) and the generation of
//! the [`ProjectionClock`](crate::commands::ProjectionClock) read *before*
//! it was computed, and served only while no change heard since names one
//! of its tags: a rename drops the answers that showed that user, a new
//! post the lists it belongs to, and the rest is served on. An answer
//! computed while a projection committed is never served after that
//! commit's notification arrived. Until then, it is as fresh as a query run
//! a moment earlier: the eventual consistency every read-model query has.
//! A write the gateway finds applied before its notification came (a
//! mutation's read-your-writes wait) counts as heard, with the same tags.
//! A request with a consistency token never uses the cache (it must see the
//! database, not the last notification), nor does a document that reads
//! the caller (`me`) with a token, a mutation, an answer with errors, or
//! the composition strategy. Every other answer is the same for every
//! caller: logged-in readers share it with anonymous ones.
//! `Cache-Control: no-cache` from the client skips the lookup.
//!
//! Requests that miss the same key while its answer is being computed, and
//! while the read model has not changed since, wait for that answer instead
//! of computing it again ([`ResponseCache::miss`]): after each change one
//! request executes, not every reader that was waiting for the list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::{Value, Variables};
use axum::http::{header, HeaderMap};
use moka::sync::Cache;
use serde_json::value::RawValue;
use tokio::sync::watch;

use super::consistency_token::CONSISTENCY_HEADER;
use crate::commands::Consistency;
use crate::records::Tag;

/// A request's place in the cache: everything its answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    pub fn new(query: &str, operation_name: Option<&str>, variables: &Variables) -> Self {
        let variables = serde_json::to_string(variables).unwrap_or_default();
        let operation_name = operation_name.unwrap_or_default();
        CacheKey(format!("{}\n{operation_name}\n{variables}\n{query}", operation_name.len()).into())
    }
}

struct Entry {
    generation: u64,
    /// What the answer read.
    read: Box<[Tag]>,
    data: Arc<RawValue>,
}

/// Serialized `data` of anonymous read-model queries, bounded in bytes.
pub struct ResponseCache {
    entries: Cache<CacheKey, Arc<Entry>>,
    consistency: Consistency,
    flights: Flights,
}

/// The misses being computed, by key.
#[derive(Default)]
pub struct Flights(Arc<Mutex<HashMap<CacheKey, Flight>>>);

/// A miss being computed: from which generation, and where its answer comes.
struct Flight {
    generation: u64,
    answer: watch::Receiver<Option<Arc<RawValue>>>,
}

/// What a request that missed does: compute the answer (and hand it to
/// those who wait for it), or wait for the one being computed.
pub enum Miss {
    Lead(Leader),
    Follow(Follower),
}

/// The request computing a miss; dropped without an answer (an error, an
/// answer not to be shared), its followers compute their own.
pub struct Leader {
    key: CacheKey,
    answer: watch::Sender<Option<Arc<RawValue>>>,
    /// Its own flight's receiver, to tell it from a newer flight of the key.
    mine: watch::Receiver<Option<Arc<RawValue>>>,
    flights: Arc<Mutex<HashMap<CacheKey, Flight>>>,
}

impl Leader {
    /// Hands the answer to the requests waiting for it.
    pub fn finish(self, data: Arc<RawValue>) {
        self.answer.send_replace(Some(data));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if flights.get(&self.key).is_some_and(|flight| flight.answer.same_channel(&self.mine)) {
            flights.remove(&self.key);
        }
    }
}

/// A request waiting for the answer of the miss being computed.
pub struct Follower(watch::Receiver<Option<Arc<RawValue>>>);

impl Follower {
    /// The leader's answer, or `None` when it had none to share.
    pub async fn answer(mut self) -> Option<Arc<RawValue>> {
        self.0.wait_for(Option::is_some).await.ok().and_then(|answer| answer.clone())
    }
}

impl ResponseCache {
    /// A cache of at most `max_bytes` of keys and answers; `None` for 0.
    pub fn new(max_bytes: u64, consistency: Consistency) -> Option<Self> {
        (max_bytes > 0).then(|| ResponseCache {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &CacheKey, entry: &Arc<Entry>| {
                    let read = entry.read.len() * std::mem::size_of::<Tag>();
                    u32::try_from(key.0.len() + entry.data.get().len() + read).unwrap_or(u32::MAX)
                })
                .build(),
            consistency,
            flights: Flights::default(),
        })
    }

    /// Whether this miss of `key` is computed here or waited for; see [`Flights::miss`].
    pub fn miss(&self, key: &CacheKey, generation: u64) -> Miss {
        self.flights.miss(key, generation)
    }

    /// Computes `key` here (a fresh answer asked for), for those who miss it meanwhile.
    pub fn lead(&self, key: &CacheKey, generation: u64) -> Leader {
        self.flights.lead(key, generation)
    }
}

impl Flights {
    /// Whether this miss of `key`, computed from `generation`, is computed
    /// here or waited for: a request joins a miss being computed only if
    /// the read model has not changed since it began (the answer is then
    /// what the request would compute itself), so a burst of requests after
    /// a change executes once, not once each.
    pub fn miss(&self, key: &CacheKey, generation: u64) -> Miss {
        let flights = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(flight) = flights.get(key).filter(|flight| flight.generation == generation) {
            return Miss::Follow(Follower(flight.answer.clone()));
        }
        drop(flights);
        Miss::Lead(self.lead(key, generation))
    }

    /// Computes `key` here, for those who miss it meanwhile (a newer miss
    /// replaces one begun before a change).
    pub fn lead(&self, key: &CacheKey, generation: u64) -> Leader {
        let (answer, receiver) = watch::channel(None);
        let mut flights = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        flights.insert(key.clone(), Flight { generation, answer: receiver.clone() });
        Leader { key: key.clone(), answer, mine: receiver, flights: self.0.clone() }
    }
}

impl ResponseCache {
    /// The generation an answer computed from now on belongs to, or `None`
    /// while projections cannot be heard (nothing is cached then).
    pub fn generation(&self) -> Option<u64> {
        let clock = self.consistency.clock();
        clock.listening.then_some(clock.generation)
    }

    /// The stored `data` for `key`, if nothing it read has changed since.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<RawValue>> {
        self.generation()?;
        let entry = self.entries.get(key)?;
        (!self.consistency.changes().since(entry.generation, &entry.read)).then(|| entry.data.clone())
    }

    /// `data` serialized, for the cache and the answer.
    pub fn serialize(&self, data: &Value) -> Option<Arc<RawValue>> {
        serde_json::to_string(data).and_then(RawValue::from_string).ok().map(Arc::from)
    }

    /// Stores `data`, computed from the read model as of `generation` and
    /// reading `read`, unless that changed meanwhile.
    pub fn put(&self, key: CacheKey, generation: u64, read: Vec<Tag>, data: Arc<RawValue>) {
        if self.generation().is_some() && !self.consistency.changes().since(generation, &read) {
            self.entries.insert(key, Arc::new(Entry { generation, read: read.into(), data }));
        }
    }
}

/// Whether the request's answer may be shared: not when it names a caller
/// (the answer may depend on who asks) or a consistency token (it must see
/// the database itself).
pub fn cache_allowed(headers: &HeaderMap, reads_caller: bool) -> bool {
    !(reads_caller && headers.contains_key(header::AUTHORIZATION)) && !headers.contains_key(CONSISTENCY_HEADER)
}

/// `Cache-Control: no-cache` (or `no-store`): the client wants a fresh answer.
pub fn no_cache_requested(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').any(|directive| matches!(directive.trim().to_ascii_lowercase().as_str(), "no-cache" | "no-store"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Arc<RawValue> {
        Arc::from(RawValue::from_string(text.to_owned()).unwrap())
    }

    #[tokio::test]
    async fn a_miss_is_computed_once_for_those_who_come_before_a_change() {
        let flights = Flights::default();
        let key = CacheKey::new("{ a }", None, &Variables::default());
        let Miss::Lead(leader) = flights.miss(&key, 7) else { panic!("the first miss computes") };
        let Miss::Follow(follower) = flights.miss(&key, 7) else { panic!("the next one waits") };
        // After a change, a miss computes again, and the earlier leader's end leaves it be.
        let Miss::Lead(newer) = flights.miss(&key, 8) else { panic!("a miss after a change computes") };
        leader.finish(raw("1"));
        assert_eq!(follower.answer().await.map(|data| data.get().to_owned()), Some("1".to_owned()));
        let Miss::Follow(late) = flights.miss(&key, 8) else { panic!("the newer flight is still there") };
        // A leader without an answer to share: its followers compute their own.
        drop(newer);
        assert!(late.answer().await.is_none());
        assert!(matches!(flights.miss(&key, 8), Miss::Lead(_)));
        // A fresh answer asked for is computed even while another is.
        let _computing = flights.lead(&key, 9);
        let _fresh = flights.lead(&key, 9);
        assert!(matches!(flights.miss(&key, 9), Miss::Follow(_)));
    }

    #[test]
    fn keys_differ_by_operation_name_and_variables() {
        let query = "query A { a } query B { b }";
        let none = Variables::default();
        let some = Variables::from_json(serde_json::json!({ "first": 2 }));
        assert_ne!(CacheKey::new(query, Some("A"), &none), CacheKey::new(query, Some("B"), &none));
        assert_ne!(CacheKey::new(query, Some("A"), &none), CacheKey::new(query, Some("A"), &some));
        assert_eq!(CacheKey::new(query, Some("A"), &some), CacheKey::new(query, Some("A"), &some));
        // The operation name's length keeps a name from running into the variables.
        assert_ne!(CacheKey::new("{ a }", Some("x\n{}"), &none), CacheKey::new("{ a }", Some("x"), &none));
    }
}
