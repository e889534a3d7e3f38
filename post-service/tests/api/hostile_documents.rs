//! The hostile corpus (`agora_testkit::hostile`) against post-service as a
//! subgraph: each document is refused with its code at once (the 2 s bound
//! is a hang guard), nothing is written, and `_entities` pays per
//! representation.

use std::time::{Duration, Instant};

use agora_testkit::graphql_with_status;
use agora_testkit::hostile::{subgraph_corpus, user_representations};
use serde_json::json;

use crate::helpers::{spawn_system, PostServiceCalls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_are_refused_at_once() {
    let system = spawn_system().await;
    // 5,000 representations fit in the body limit (10,000 do not: 413).
    for case in subgraph_corpus(true, 5_000) {
        let started = Instant::now();
        let (status, body) = graphql_with_status(system.post.port, &case.query, case.variables.clone(), &[]).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{}: took {:?}", case.name, started.elapsed());
        assert_eq!(status, 200, "{}: {body}", case.name);
        assert!(body["data"].is_null(), "{}: {body}", case.name);
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], case.code, "{}: {body}", case.name);
        if let Some(reason) = case.reason {
            assert_eq!(error["extensions"]["reason"], reason, "{}: {body}", case.name);
        }
        if case.is_measured() {
            assert!(error["extensions"]["limit"].as_u64().is_some(), "{}: {body}", case.name);
        }
    }
    assert_eq!(system.written_rows().await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_cost_what_their_representations_ask_and_report_it() {
    let system = spawn_system().await;
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id posts(first: 10) { nodes { id } } } } }";
    let response = system.post_graphql(query, json!({ "r": user_representations(100) }), None).await;
    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(response["extensions"]["cost"], 1 + 100 * (1 + 1 + 10 * 2), "{response}");
    // 1,000 representations asking 100 posts each cost far more than a subgraph allows.
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { posts(first: 100) { nodes { id } } } } }";
    let response = system.post_graphql(query, json!({ "r": user_representations(1_000) }), None).await;
    assert_eq!(response["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX", "{response}");
    assert_eq!(response["errors"][0]["extensions"]["reason"], "cost", "{response}");
}
