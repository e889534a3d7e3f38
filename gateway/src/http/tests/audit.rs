//! The GraphQL-over-HTTP audits of the npm package `graphql-http`, run by
//! `gateway/tests/js/audit.mjs` against the router (the same script the
//! gateway's own tests run against the full gateway).

use std::path::Path;

use super::support::spawn;
use crate::http::HttpLimits;

#[tokio::test]
async fn passes_every_graphql_over_http_audit() {
    let server = spawn(HttpLimits::default()).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let output = tokio::process::Command::new("node")
        .arg(root.join("gateway/tests/js/audit.mjs"))
        .arg(server.url("/graphql"))
        .current_dir(root)
        .output()
        .await
        .expect("run node (Node.js 20+ must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "the audits did not all pass:\n{report}");

    let summary =
        stdout.lines().find_map(|line| line.strip_prefix("audits: ")).unwrap_or_else(|| panic!("no summary:\n{report}"));
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(summary, format!("{passed} passed, 0 failed"));
    assert!(passed >= 61, "graphql-http ran only {passed} audits:\n{report}");
    assert_eq!(stdout.lines().filter(|line| line.starts_with("ok ")).count(), passed);
}
