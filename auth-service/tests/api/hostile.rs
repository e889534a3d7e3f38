//! Hostile clients of auth-service called directly: bodies that are not
//! JSON, malformed or oversized, text PostgreSQL cannot store, tokens that
//! must not verify. Each case gets its exact status and code, and nothing
//! is written; metrics are not served on the public port.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, LOGIN, ME, REGISTER};

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    token: Option<String>,
    status: StatusCode,
    /// The first error's code; `None`: no error.
    code: Option<&'static str>,
}

fn graphql(name: &'static str, query: &str, variables: Value, code: Option<&'static str>) -> Case {
    let body = json!({ "query": query, "variables": variables }).to_string().into_bytes();
    Case { name, content_type: Some("application/json"), body, token: None, status: StatusCode::OK, code }
}

fn raw(name: &'static str, content_type: Option<&'static str>, body: &[u8], status: StatusCode) -> Case {
    Case { name, content_type, body: body.to_vec(), token: None, status, code: Some("BAD_USER_INPUT") }
}

async fn send(app: &TestApp, case: &Case) -> (StatusCode, Value) {
    let mut request =
        agora_testkit::http_client().post(format!("http://127.0.0.1:{}/graphql", app.port())).body(case.body.clone());
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(token) = &case.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: not JSON: {status} {text:?}", case.name)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_status_and_code_and_write_nothing() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada", "correct horse").await;
    let register = |username: &str, password: &str, display_name: &str| json!({ "input": { "username": username, "password": password, "displayName": display_name } });
    let unsigned = {
        let claims = token.split('.').nth(1).unwrap();
        let header = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, r#"{"alg":"none","typ":"JWT"}"#);
        format!("{header}.{claims}.")
    };
    let json_register = json!({ "query": REGISTER, "variables": register("eve", "correct horse", "Eve") }).to_string();
    let cases = vec![
        raw("a form post", Some("text/plain"), json_register.as_bytes(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        raw("a url-encoded form", Some("application/x-www-form-urlencoded"), b"query=x", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        raw("no content type", None, json_register.as_bytes(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        raw(
            "JSON in another charset",
            Some("application/json; charset=latin1"),
            json_register.as_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        raw("malformed JSON", Some("application/json"), b"{\"query\": ", StatusCode::BAD_REQUEST),
        raw("an empty body", Some("application/json"), b"", StatusCode::BAD_REQUEST),
        raw("invalid UTF-8", Some("application/json"), b"{\"query\": \"\xff\"}", StatusCode::BAD_REQUEST),
        raw("an oversized body", Some("application/json"), "x".repeat(70 * 1024).as_bytes(), StatusCode::PAYLOAD_TOO_LARGE),
        graphql(
            "an unknown field",
            "mutation { register(input: { username: \"eve\", password: \"correct horse\", role: ADMIN }) { token } }",
            json!({}),
            Some("BAD_USER_INPUT"),
        ),
        graphql("an injection as username", REGISTER, register("x' or '1'='1", "correct horse", "Eve"), Some("BAD_USER_INPUT")),
        graphql("a NUL in a display name", REGISTER, register("eve", "correct horse", "Eve\u{0}"), Some("BAD_USER_INPUT")),
        graphql(
            "a display name that reads backwards",
            REGISTER,
            register("eve", "correct horse", "\u{202E}evE"),
            Some("BAD_USER_INPUT"),
        ),
        graphql("an invisible display name", REGISTER, register("eve", "correct horse", "\u{200B}"), Some("BAD_USER_INPUT")),
        graphql("a NUL in a password", REGISTER, register("eve", "correct\u{0}horse", "Eve"), Some("BAD_USER_INPUT")),
        graphql(
            "a NUL in login's username",
            LOGIN,
            json!({ "input": { "username": "ada\u{0}", "password": "correct horse" } }),
            Some("BAD_USER_INPUT"),
        ),
        graphql(
            "a NUL in userByUsername",
            "query($u: String!) { userByUsername(username: $u) { id } }",
            json!({ "u": "\u{0}" }),
            None,
        ),
        Case { token: Some(unsigned), ..graphql("an alg: none token", ME, json!({}), None) },
        Case {
            token: Some(tampered(&token)),
            ..graphql(
                "a tampered token",
                "mutation { renameUser(displayName: \"Mallory\") { id } }",
                json!({}),
                Some("UNAUTHENTICATED"),
            )
        },
    ];
    let before = (app.count_rows("app_user").await, app.count_rows("outbox").await);
    for case in &cases {
        let (status, body) = send(&app, case).await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["errors"][0]["extensions"]["code"].as_str(), case.code, "{}: {body}", case.name);
        assert_eq!((app.count_rows("app_user").await, app.count_rows("outbox").await), before, "{}: wrote", case.name);
    }
    let me = send(&app, &Case { token: Some(token), ..graphql("ada", ME, json!({}), None) }).await.1;
    assert_eq!(me["data"]["me"]["username"], "ada", "the name is unchanged: {me}");
}

/// The token with its claims changed and its signature kept.
fn tampered(token: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    claims["username"] = json!("mallory");
    format!("{}.{}.{}", parts[0], engine.encode(claims.to_string()), parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_not_the_public_port() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(|config| config.metrics_port = free).await;
    app.register("ada", "correct horse").await;

    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let metrics = agora_testkit::get(free, "/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("agora_users_registered_total"));
}
