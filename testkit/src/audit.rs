//! The GraphQL-over-HTTP audits of the npm package `graphql-http`, run by
//! `gateway/tests/js/audit.mjs` against a server.

use std::path::Path;

/// Runs every audit against `url`; the number passed, or the report when
/// any failed or none ran.
pub async fn graphql_http_audits(url: &str) -> Result<usize, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let output = tokio::process::Command::new("node")
        .arg(root.join("gateway/tests/js/audit.mjs"))
        .arg(url)
        .current_dir(root)
        .output()
        .await
        .expect("run node (Node.js 20+ must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(format!("the audits did not all pass:\n{report}"));
    }
    let summary =
        stdout.lines().find_map(|line| line.strip_prefix("audits: ")).ok_or_else(|| format!("no summary:\n{report}"))?;
    let passed: usize = summary.split(' ').next().and_then(|count| count.parse().ok()).ok_or_else(|| report.clone())?;
    let ok_lines = stdout.lines().filter(|line| line.starts_with("ok ")).count();
    if summary != format!("{passed} passed, 0 failed") || ok_lines != passed {
        return Err(format!("unexpected summary {summary:?}:\n{report}"));
    }
    Ok(passed)
}
