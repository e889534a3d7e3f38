//! The full gateway over HTTP: the GraphQL-over-HTTP audits, the
//! playground, the demo app, and the strategy and cost it reports.

use agora_testkit::{graphql_http_audits, http_client};

use crate::helpers::spawn_system;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_every_graphql_over_http_audit() {
    let system = spawn_system().await;
    let url = format!("http://127.0.0.1:{}/graphql", system.gateway.port());
    let passed = graphql_http_audits(&url).await.unwrap_or_else(|report| panic!("{report}"));
    assert!(passed >= 61, "graphql-http ran only {passed} audits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_graphiql_served_by_the_gateway_itself() {
    let system = spawn_system().await;
    let page = http_client()
        .get(format!("http://127.0.0.1:{}/graphql", system.gateway.port()))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql"), "{html}");
    assert!(!html.contains("https://"), "the playground must not load anything from the internet:\n{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_itself_serves_the_demo_app_under_its_policy() {
    let system = spawn_system().await;
    let port = system.gateway.port();
    let page = http_client().get(format!("http://127.0.0.1:{port}/app")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains(&format!("connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port};")), "{policy}");
    let etag = page.headers()["etag"].clone();
    let html = page.text().await.unwrap();
    assert!(html.contains("app/main.js") && !html.contains("https://"), "{html}");
    let again = http_client().get(format!("http://127.0.0.1:{port}/app")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let missing = http_client().get(format!("http://127.0.0.1:{port}/app/missing.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
