//! The demo app at `/app`: its page and every file it loads, served by the
//! gateway with their types, a strict Content-Security-Policy and ETags.

use std::collections::BTreeSet;

use super::support::spawn;
use crate::transport::http::HttpLimits;

/// The URLs (relative to `/`) of what the page loads with `src`/`href`.
fn referenced_by_page(page: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| page.split(attribute).skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()))
        .filter(|url| !url.starts_with('#') && url != "graphql")
        .collect()
}

/// The modules a module imports (`from './x.js'`), as names under `/app/`.
fn imported_by(module: &str) -> Vec<String> {
    module.split("from './").skip(1).map(|rest| rest.split('\'').next().unwrap().to_owned()).collect()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

fn assert_secure(response: &reqwest::Response, port: u16) {
    let policy = header(response, "content-security-policy");
    assert!(policy.starts_with("default-src 'self';"), "{policy}");
    assert!(policy.contains(&format!("connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port};")), "{policy}");
    assert!(policy.contains("object-src 'none'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_loads_only_local_files() {
    let server = spawn(HttpLimits::default()).await;
    let response = server.client.get(server.url("/app")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&response, "cache-control"), "no-cache");
    assert!(header(&response, "etag").starts_with('"'));
    assert_secure(&response, server.address.port());
    let page = response.text().await.unwrap();
    assert!(!page.contains("{{"), "a placeholder was left in the page: {page}");
    assert!(!page.contains("<script>") && !page.contains("style="), "inline code would break the policy: {page}");
    let urls = referenced_by_page(&page);
    assert!(urls.len() >= 3, "{urls:?}");
    assert!(urls.iter().all(|url| url.starts_with("app/") && !url.contains("//")), "not local: {urls:?}");
}

#[tokio::test]
async fn every_file_the_page_and_its_modules_load_is_served_with_its_type() {
    let server = spawn(HttpLimits::default()).await;
    let page = server.client.get(server.url("/app")).send().await.unwrap().text().await.unwrap();
    let mut pending: Vec<String> =
        referenced_by_page(&page).iter().map(|url| url.trim_start_matches("app/").to_owned()).collect();
    let mut served = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !served.insert(name.clone()) {
            continue;
        }
        let response = server.client.get(server.url(&format!("/app/{name}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let expected_type = if name.ends_with(".css") { "text/css; charset=utf-8" } else { "text/javascript; charset=utf-8" };
        assert_eq!(header(&response, "content-type"), expected_type, "{name}");
        let expected_cache = if name.starts_with("graphql-ws-") { "public, max-age=31536000, immutable" } else { "no-cache" };
        assert_eq!(header(&response, "cache-control"), expected_cache, "{name}");
        assert_secure(&response, server.address.port());
        assert!(response.headers().contains_key("etag"), "{name}");
        let text = response.text().await.unwrap();
        assert!(text.len() > 500, "{name} is nearly empty");
        assert!(!text.contains("https://") && !text.contains("http://"), "{name} names a remote URL");
        pending.extend(imported_by(&text));
    }
    for expected in ["main.js", "api.js", "live.js", "style.css"] {
        assert!(served.contains(expected), "{expected} was not loaded: {served:?}");
    }
    assert!(served.iter().any(|name| name.starts_with("graphql-ws-") && name.ends_with(".min.js")), "{served:?}");
}

#[tokio::test]
async fn an_unchanged_file_is_answered_304_without_a_body() {
    let server = spawn(HttpLimits::default()).await;
    for path in ["/app", "/app/main.js", "/app/style.css"] {
        let first = server.client.get(server.url(path)).send().await.unwrap();
        let etag = header(&first, "etag").to_owned();
        for if_none_match in [etag.clone(), format!("W/{etag}"), format!("\"stale\", {etag}"), "*".to_owned()] {
            let again = server.client.get(server.url(path)).header("if-none-match", &if_none_match).send().await.unwrap();
            assert_eq!(again.status(), 304, "{path} with {if_none_match}");
            assert_eq!(header(&again, "etag"), etag);
            assert_eq!(header(&again, "cache-control"), "no-cache");
            assert_secure(&again, server.address.port());
            assert!(again.bytes().await.unwrap().is_empty(), "{path}: a 304 has no body");
        }
        let changed = server.client.get(server.url(path)).header("if-none-match", "\"an-older-build\"").send().await.unwrap();
        assert_eq!(changed.status(), 200, "{path}");
        assert_eq!(header(&changed, "etag"), etag);
    }
}

#[tokio::test]
async fn an_unknown_file_is_not_found_and_the_folder_leads_to_the_page() {
    let server = spawn(HttpLimits::default()).await;
    for path in ["/app/nothing.js", "/app/index.html", "/app/..%2Fbuild.rs", "/app/main.js.map"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(header(&response, "content-type"), "text/plain; charset=utf-8");
        assert_secure(&response, server.address.port());
        assert!(response.text().await.unwrap().starts_with("NOT_FOUND"), "{path}");
    }
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let folder = client.get(server.url("/app/")).send().await.unwrap();
    assert_eq!(folder.status(), 308);
    assert_eq!(header(&folder, "location"), "/app");
}

#[tokio::test]
async fn the_policy_names_only_a_well_formed_host() {
    let server = spawn(HttpLimits::default()).await;
    let response = server.client.get(server.url("/app")).header("host", "evil.example; script-src *").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let policy = header(&response, "content-security-policy");
    assert!(policy.contains("connect-src 'self';") && !policy.contains("evil"), "{policy}");
}
