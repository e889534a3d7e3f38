//! The GraphQL-over-HTTP audits of the npm package `graphql-http`, run by
//! `gateway/tests/js/audit.mjs` against the router (the same script the
//! gateway's own tests run against the full gateway).

use super::support::spawn;
use crate::transport::http::HttpLimits;

#[tokio::test]
async fn passes_every_graphql_over_http_audit() {
    let server = spawn(HttpLimits::default()).await;
    let passed = agora_testkit::graphql_http_audits(&server.url("/graphql")).await.unwrap_or_else(|report| panic!("{report}"));
    assert!(passed >= 61, "graphql-http ran only {passed} audits");
}
