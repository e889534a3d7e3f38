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

use std::sync::Arc;

use async_graphql::{Value, Variables};
use axum::http::{header, HeaderMap};
use moka::sync::Cache;
use serde_json::value::RawValue;

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
        })
    }

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

    /// Stores `data`, computed from the read model as of `generation` and
    /// reading `read`, unless that changed meanwhile; `data` serialized,
    /// for the answer.
    pub fn put(&self, key: CacheKey, generation: u64, read: Vec<Tag>, data: &Value) -> Option<Arc<RawValue>> {
        let json = serde_json::to_string(data).and_then(RawValue::from_string).ok()?;
        let data: Arc<RawValue> = Arc::from(json);
        self.put_serialized(key, generation, read, data.clone());
        Some(data)
    }

    /// Stores `data`, serialized already, on the terms of [`Self::put`].
    pub fn put_serialized(&self, key: CacheKey, generation: u64, read: Vec<Tag>, data: Arc<RawValue>) {
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
