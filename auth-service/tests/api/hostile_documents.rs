//! The hostile corpus (`agora_testkit::hostile`) against auth-service as a
//! subgraph: each document is refused with its code at once (the 2 s bound
//! is a hang guard) and nothing is written.

use std::time::{Duration, Instant};

use agora_testkit::graphql_with_status;
use agora_testkit::hostile::{aliases, subgraph_corpus};

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_are_refused_at_once() {
    let app = spawn_app().await;
    // 1,500 representations fit in auth-service's 64 KiB body limit.
    let mut corpus = subgraph_corpus(false, 1_500);
    let register = r#"register(input: { username: "mallory", password: "correct horse" }) { token }"#;
    let mut many_registers = aliases(register, 31);
    many_registers.insert_str(0, "mutation ");
    corpus.push(agora_testkit::hostile::HostileCase {
        name: "31 aliased registers",
        query: many_registers,
        variables: serde_json::json!({}),
        code: "QUERY_TOO_COMPLEX",
        reason: Some("aliases"),
    });
    for case in corpus {
        let started = Instant::now();
        let (status, body) = graphql_with_status(app.port(), &case.query, case.variables.clone(), &[]).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{}: took {:?}", case.name, started.elapsed());
        assert_eq!(status, 200, "{}: {body}", case.name);
        assert!(body["data"].is_null(), "{}: {body}", case.name);
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], case.code, "{}: {body}", case.name);
        if let Some(reason) = case.reason {
            assert_eq!(error["extensions"]["reason"], reason, "{}: {body}", case.name);
        }
        if case.is_measured() {
            assert!(error["extensions"]["cost"].as_u64().is_some(), "{}: {body}", case.name);
        }
    }
    assert_eq!(app.count_rows("app_user").await, 0, "nothing was registered");
}
