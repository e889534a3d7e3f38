//! Hostile clients of post-service called directly: bodies that are not
//! JSON, text its rules refuse, cursors PostgreSQL cannot compare, and an
//! author past the posting budget. Exact status and code, nothing written.

use agora_testkit::{http_client, Services};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{error_code, spawn_system, PostServiceCalls};

const CREATE: &str = "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }";
const PAGE: &str = "query($after: String) { posts(after: $after) { nodes { id } } }";

async fn post(
    system: &Services,
    content_type: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = http_client()
        .post(format!("http://127.0.0.1:{}/graphql", system.post.port))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.expect("a JSON answer"))
}

/// A case: its name, content type, body, and the status and code it must get.
type Case = (&'static str, &'static str, Vec<u8>, StatusCode, Option<&'static str>);

fn body(query: &str, variables: Value) -> Vec<u8> {
    json!({ "query": query, "variables": variables }).to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_status_and_code_and_write_nothing() {
    let system = spawn_system().await;
    let (token, _) = system.register("ada").await;
    let input = |title: &str, text: &str| json!({ "input": { "title": title, "body": text } });
    let cursor = |micros: &str| URL_SAFE_NO_PAD.encode(format!("post:{micros}:{}", Uuid::nil()));
    let cases: Vec<Case> = vec![
        ("a form post", "text/plain", body(CREATE, input("t", "b")), StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("BAD_USER_INPUT")),
        ("malformed JSON", "application/json", b"{".to_vec(), StatusCode::BAD_REQUEST, Some("BAD_USER_INPUT")),
        ("an oversized body", "application/json", vec![b' '; 300 * 1024], StatusCode::PAYLOAD_TOO_LARGE, Some("BAD_USER_INPUT")),
        (
            "a title that reads backwards",
            "application/json",
            body(CREATE, input("gnp.\u{202E}exe", "b")),
            StatusCode::OK,
            Some("BAD_USER_INPUT"),
        ),
        (
            "an invisible title",
            "application/json",
            body(CREATE, input("\u{200B}\u{2060}", "b")),
            StatusCode::OK,
            Some("BAD_USER_INPUT"),
        ),
        ("a NUL in a body", "application/json", body(CREATE, input("t", "\u{0}")), StatusCode::OK, Some("BAD_USER_INPUT")),
        (
            "a cursor before 1970",
            "application/json",
            body(PAGE, json!({ "after": cursor("-8210298412800000000") })),
            StatusCode::OK,
            Some("BAD_USER_INPUT"),
        ),
        (
            "a cursor after 9999",
            "application/json",
            body(PAGE, json!({ "after": cursor("253402300800000000") })),
            StatusCode::OK,
            Some("BAD_USER_INPUT"),
        ),
    ];
    let before = system.written_rows().await;
    for (name, content_type, request, status, code) in cases {
        let (answered, _, response) = post(&system, content_type, request, Some(&token)).await;
        assert_eq!(answered, status, "{name}: {response}");
        assert_eq!(error_code(&response), code, "{name}: {response}");
        assert_eq!(system.written_rows().await, before, "{name}: wrote");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_author_past_the_posting_budget_is_rate_limited() {
    let system = Services::start_with(|_| {}, |config| config.posts_per_author_per_hour = 1).await;
    let (ada, _) = system.register("ada").await;
    let (bob, _) = system.register("bob").await;
    system.create_post(&ada, "the one").await;

    let (status, headers, limited) =
        post(&system, "application/json", body(CREATE, json!({ "input": { "title": "t", "body": "b" } })), Some(&ada)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    let retry_after = limited["errors"][0]["extensions"]["retryAfter"].as_u64().expect("retryAfter");
    assert_eq!(headers["retry-after"].to_str().unwrap(), retry_after.to_string());
    assert_eq!(system.written_rows().await, (1, 1));
    system.create_post(&bob, "another author's").await;
}
