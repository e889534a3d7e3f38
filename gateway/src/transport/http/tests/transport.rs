//! GraphQL over HTTP: negotiation, methods, malformed requests and limits.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{read, spawn, TestServer, GRAPHQL_RESPONSE_JSON, JSON};
use crate::transport::http::HttpLimits;

async fn post(server: &TestServer, accept: Option<&str>, body: serde_json::Value) -> (u16, String, serde_json::Value) {
    let mut request = server.client.post(server.url("/graphql")).json(&body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    read(request.send().await.unwrap()).await
}

fn code_of(body: &serde_json::Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn answers_in_the_media_type_the_client_names() {
    let server = spawn(HttpLimits::default()).await;
    let query = json!({"query": "{ hello }"});

    let (status, content_type, body) = post(&server, Some("application/graphql-response+json"), query.clone()).await;
    assert_eq!((status, content_type.as_str()), (200, GRAPHQL_RESPONSE_JSON));
    assert_eq!(body, json!({"data": {"hello": "Hello, world!"}}));

    for accept in [Some("application/json"), Some("*/*"), None] {
        let (status, content_type, _) = post(&server, accept, query.clone()).await;
        assert_eq!((status, content_type.as_str()), (200, JSON), "accept {accept:?}");
    }
}

#[tokio::test]
async fn refuses_unacceptable_media_types_and_content_types() {
    let server = spawn(HttpLimits::default()).await;
    let (status, content_type, body) = post(&server, Some("application/xml"), json!({"query": "{ hello }"})).await;
    assert_eq!((status, content_type.as_str(), code_of(&body)), (406, JSON, "BAD_USER_INPUT"));

    let response = server.client.post(server.url("/graphql")).header("content-type", "text/plain").body("{ hello }");
    let (status, _, body) = read(response.send().await.unwrap()).await;
    assert_eq!((status, code_of(&body)), (415, "BAD_USER_INPUT"));
}

#[tokio::test]
async fn a_request_error_is_400_for_graphql_response_json_and_200_for_json() {
    let server = spawn(HttpLimits::default()).await;
    for query in ["{", "{ noSuchField }"] {
        let (status, _, body) = post(&server, Some("application/graphql-response+json"), json!({"query": query})).await;
        assert_eq!((status, code_of(&body)), (400, "BAD_USER_INPUT"), "{query}");
        assert!(body.get("data").is_none(), "{body}");

        let (status, _, body) = post(&server, Some("application/json"), json!({"query": query})).await;
        assert_eq!((status, code_of(&body)), (200, "BAD_USER_INPUT"), "{query}");
    }
}

#[tokio::test]
async fn a_field_error_keeps_its_data_and_code() {
    let server = spawn(HttpLimits::default()).await;
    let (status, _, body) = post(&server, Some("application/graphql-response+json"), json!({"query": "{ hello secret }"})).await;
    assert_eq!((status, code_of(&body)), (200, "FORBIDDEN"));
    assert_eq!(body["errors"][0]["path"], json!(["secret"]));
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_graphql_error() {
    let server = spawn(HttpLimits::default()).await;
    for body in [
        json!({"qeury": "{ hello }"}),
        json!({"query": 1}),
        json!({"query": "{ hello }", "variables": "{}"}),
        json!({"query": "{ hello }", "extensions": [1]}),
        json!({"query": "{ hello }", "operationName": false}),
    ] {
        let (status, _, response) = post(&server, Some("application/graphql-response+json"), body.clone()).await;
        assert_eq!((status, code_of(&response)), (400, "BAD_USER_INPUT"), "{body}");
    }
    let response = server.client.post(server.url("/graphql")).header("content-type", "application/json").body("{ \"not a JSON");
    let (status, _, body) = read(response.send().await.unwrap()).await;
    assert_eq!((status, code_of(&body)), (400, "BAD_USER_INPUT"));
}

#[tokio::test]
async fn get_runs_queries_with_json_variables() {
    let server = spawn(HttpLimits::default()).await;
    let response = server
        .client
        .get(server.url("/graphql"))
        .query(&[("query", "query Greet($name: String) { hello(name: $name) }"), ("variables", r#"{"name":"Ada"}"#)])
        .header("accept", "application/graphql-response+json")
        .send()
        .await
        .unwrap();
    let (status, content_type, body) = read(response).await;
    assert_eq!((status, content_type.as_str()), (200, GRAPHQL_RESPONSE_JSON));
    assert_eq!(body["data"]["hello"], "Hello, Ada!");
}

#[tokio::test]
async fn get_refuses_mutations_with_405_allow_post() {
    let server = spawn(HttpLimits::default()).await;
    let document = "query Read { hello } mutation Write { bump }";
    for params in [vec![("query", "mutation { bump }")], vec![("query", document), ("operationName", "Write")]] {
        let response = server.client.get(server.url("/graphql")).query(&params).send().await.unwrap();
        assert_eq!(response.headers()["allow"], "POST");
        let (status, _, body) = read(response).await;
        assert_eq!((status, code_of(&body)), (405, "BAD_USER_INPUT"), "{params:?}");
    }
    let response = server.client.get(server.url("/graphql")).query(&[("query", document), ("operationName", "Read")]);
    let (status, _, body) = read(response.send().await.unwrap()).await;
    assert_eq!((status, &body["data"]["hello"]), (200, &json!("Hello, world!")));
}

#[tokio::test]
async fn post_runs_mutations() {
    let server = spawn(HttpLimits::default()).await;
    let (status, _, body) = post(&server, None, json!({"query": "mutation { bump }"})).await;
    assert_eq!((status, body), (200, json!({"data": {"bump": 1}})));
}

#[tokio::test]
async fn the_executor_gets_the_headers_and_the_peer_address() {
    let server = spawn(HttpLimits::default()).await;
    let response = server
        .client
        .post(server.url("/graphql"))
        .header("x-query-strategy", "composition")
        .json(&json!({"query": r#"{ header(name: "x-query-strategy") peerIp }"#}))
        .send()
        .await
        .unwrap();
    let (_, _, body) = read(response).await;
    assert_eq!(body["data"], json!({"header": "composition", "peerIp": "127.0.0.1"}));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_or_not_its_length_is_announced() {
    let limit = 1024;
    let server = spawn(HttpLimits { body_limit_bytes: limit, ..HttpLimits::default() }).await;
    let oversized = json!({"query": format!("{{ hello }} # {}", "x".repeat(2 * limit))});
    let (status, content_type, body) = post(&server, Some("application/graphql-response+json"), oversized.clone()).await;
    assert_eq!((status, content_type.as_str(), code_of(&body)), (413, GRAPHQL_RESPONSE_JSON, "BAD_USER_INPUT"));

    // Chunked, so that only reading the body can tell.
    let mut stream = tokio::net::TcpStream::connect(server.address).await.unwrap();
    let payload = oversized.to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n{:x}\r\n{payload}\r\n0\r\n\r\n",
        payload.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains(r#""code":"BAD_USER_INPUT""#), "{response}");
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_timeout_error() {
    let server = spawn(HttpLimits { request_timeout: Duration::from_millis(200), ..HttpLimits::default() }).await;
    let (status, content_type, body) =
        post(&server, Some("application/graphql-response+json"), json!({"query": "{ stall }"})).await;
    assert_eq!((status, content_type.as_str(), code_of(&body)), (504, GRAPHQL_RESPONSE_JSON, "TIMEOUT"));
}
