//! The GraphiQL playground: a page that loads only what the gateway serves.

use super::support::spawn;
use crate::transport::http::HttpLimits;

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The `src`/stylesheet `href` URLs the page loads.
fn referenced_urls(page: &str) -> Vec<String> {
    ["src=\"", "rel=\"stylesheet\" href=\""]
        .iter()
        .flat_map(|attribute| page.split(attribute).skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_browser_gets_graphiql_at_the_root_and_at_the_endpoint() {
    let server = spawn(HttpLimits::default()).await;
    for path in ["/", "/graphql"] {
        let response = server.client.get(server.url(path)).header("accept", BROWSER_ACCEPT).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
        let page = response.text().await.unwrap();
        assert!(page.contains("GraphiQL.createFetcher"), "{page}");
        assert!(page.contains("<a href=\"app\">"), "the playground links to the demo app: {page}");
        assert!(!page.contains("{{"), "a placeholder was left in the page: {page}");
    }
}

#[tokio::test]
async fn the_page_loads_only_local_assets_which_are_served_for_good() {
    let server = spawn(HttpLimits::default()).await;
    let page = server.client.get(server.url("/")).send().await.unwrap().text().await.unwrap();
    let urls = referenced_urls(&page);
    assert_eq!(urls.len(), 4, "{urls:?}");
    for url in urls {
        assert!(url.starts_with("playground/") && !url.contains("//"), "not a local asset: {url}");
        let response = server.client.get(server.url(&format!("/{url}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let expected_type = if url.ends_with(".css") { "text/css; charset=utf-8" } else { "text/javascript; charset=utf-8" };
        assert_eq!(response.headers()["content-type"], expected_type, "{url}");
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert!(response.bytes().await.unwrap().len() > 1000, "{url} is nearly empty");
    }
    let missing = server.client.get(server.url("/playground/nothing.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_query_in_the_url_is_executed_even_for_a_browser() {
    let server = spawn(HttpLimits::default()).await;
    let response = server
        .client
        .get(server.url("/graphql"))
        .query(&[("query", "{ hello }")])
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["data"]["hello"], "Hello, world!");
}
