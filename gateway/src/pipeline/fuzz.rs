//! Mutated documents (the hostile corpus and ordinary queries, cut and
//! spliced) through the gateway's schema: its limits, the parser and
//! async-graphql's validation never panic and answer within bounds.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use agora_platform::query_limits::{CostModel, Limits, QueryLimiter, QueryLimitsExtension};
use proptest::prelude::*;

use crate::api::{self, GatewaySchema};

fn schema() -> &'static GatewaySchema {
    static SCHEMA: OnceLock<GatewaySchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let limits = Limits { max_depth: 12, max_cost: 5_000, max_aliases: 30, max_fields: 1_000 };
        let limiter = QueryLimiter::new(limits, CostModel::agora());
        api::builder().extension(QueryLimitsExtension::new(limiter.clone())).data(limiter).finish()
    })
}

fn seeds() -> Vec<String> {
    let mut seeds: Vec<String> = agora_testkit::hostile::gateway_corpus().into_iter().map(|case| case.query).collect();
    seeds.extend(
        [
            "{ posts(first: 20) { edges { cursor node { id title author { id displayName points } } } pageInfo { hasNextPage } } }",
            "query($n: Int) { leaderboard(first: $n) { id posts(first: 5) { nodes { id } } } }",
            "{ me { ...U } } fragment U on User { id username posts { nodes { ...P } } } fragment P on Post { id author { ...U } }",
            "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }",
            "subscription { postCreated { id title } }",
        ]
        .map(str::to_owned),
    );
    seeds
}

/// What an edit splices in.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[{}().:$,\"#\\[\\]! ]".prop_map(String::from),
        Just("...F0 ".to_owned()),
        Just(" fragment F0 on Query { ...F0 }".to_owned()),
        Just("posts(first: 100) { nodes { ".to_owned()),
        Just("a: ".to_owned()),
        Just("... on Query { ".to_owned()),
        "[a-zA-Z_]{1,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn mutated_documents_are_answered_within_bounds(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, piece()), 0..6),
    ) {
        let seeds = seeds();
        let mut document: Vec<char> = seed.get(&seeds).chars().collect();
        for (at, kind, piece) in edits {
            let position = if document.is_empty() { 0 } else { at.index(document.len()) };
            match kind {
                0 if !document.is_empty() => { document.remove(position); }
                1 => { document.splice(position..position, piece.chars()); }
                _ => {
                    // Doubles the tail: repetition is how documents amplify.
                    let tail: Vec<char> = document[position..].to_vec();
                    document.extend(tail);
                }
            }
        }
        let document: String = document.into_iter().collect();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let started = Instant::now();
        let response = runtime.block_on(schema().execute(async_graphql::Request::new(document.clone())));
        prop_assert!(started.elapsed() < Duration::from_secs(1), "{document:?} took {:?}", started.elapsed());
        // An answer with data passed the limits: its cost is reported.
        if response.errors.is_empty() {
            prop_assert!(response.extensions.contains_key("cost"), "{document:?}");
        }
    }
}
