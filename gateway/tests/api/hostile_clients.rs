//! Hostile clients: a corpus of malformed, oversized, forged and abusive
//! requests against the real gateway and both services. Each case states
//! the exact HTTP status and error code it must get, quickly (within a
//! second), and that it wrote nothing; no case may get a 5xx.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use agora_gateway::pipeline::{ConsistencyToken, TokenKey};
use agora_platform::tokens::{Claims, AUDIENCE, ISSUER};
use agora_schema::receipts::WriteReceipt;
use agora_schema::topics;
use agora_testkit::{http_client, AuthConfig, PostConfig, Services, TestDatabase, PASSWORD};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_gateway, Account, TestSystem};

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token } }";
const CREATE_POST: &str = "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }";
const RENAME: &str = "mutation($name: String!) { renameUser(displayName: $name) { id } }";

/// What one case sends.
struct Case {
    name: &'static str,
    /// `/graphql` of the gateway, auth-service or post-service.
    target: Target,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: StatusCode,
    code: Option<&'static str>,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Gateway,
    Auth,
    Post,
}

fn graphql_body(query: &str, variables: Value) -> Vec<u8> {
    json!({ "query": query, "variables": variables }).to_string().into_bytes()
}

/// A GraphQL request to the gateway (JSON, answered as application/json).
fn request(name: &'static str, query: &str, variables: Value, code: Option<&'static str>) -> Case {
    Case {
        name,
        target: Target::Gateway,
        content_type: Some("application/json"),
        body: graphql_body(query, variables),
        headers: Vec::new(),
        status: StatusCode::OK,
        code,
    }
}

fn raw(name: &'static str, target: Target, content_type: Option<&'static str>, body: Vec<u8>, status: StatusCode) -> Case {
    Case { name, target, content_type, body, headers: Vec::new(), status, code: Some("BAD_USER_INPUT") }
}

impl Case {
    fn with(mut self, header: &'static str, value: String) -> Self {
        self.headers.push((header, value));
        self
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    took: Duration,
}

async fn send(system: &TestSystem, case: &Case) -> Answer {
    let port = match case.target {
        Target::Gateway => system.gateway.port(),
        Target::Auth => system.services.auth.port,
        Target::Post => system.services.post.port,
    };
    let mut request = http_client().post(format!("http://127.0.0.1:{port}/graphql")).body(case.body.clone());
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    let started = Instant::now();
    let response = request.send().await.unwrap_or_else(|error| panic!("{}: no answer: {error}", case.name));
    let took = started.elapsed();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: the answer is not JSON: {status} {text:?}", case.name));
    Answer { status, headers, body, took }
}

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// What the services and the read model hold, to show nothing was written.
async fn written(system: &TestSystem) -> (i64, i64, i64, i64) {
    let count = |pool: &sqlx::PgPool, table: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(&format!("select count(*) from {table}")).fetch_one(&pool).await.unwrap() }
    };
    (
        count(&system.services.auth_db, "app_user").await,
        count(&system.services.auth_db, "outbox").await,
        count(&system.services.post_db, "post").await,
        count(&system.services.post_db, "outbox").await,
    )
}

/// Runs every case: its status, its code, in time, and nothing written.
async fn run(system: &TestSystem, cases: Vec<Case>) {
    let before = written(system).await;
    for case in &cases {
        let answer = send(system, case).await;
        assert!(!answer.status.is_server_error(), "{}: a server error: {} {}", case.name, answer.status, answer.body);
        assert_eq!(answer.status, case.status, "{}: {}", case.name, answer.body);
        assert_eq!(code(&answer.body), case.code, "{}: {}", case.name, answer.body);
        assert!(answer.took < Duration::from_secs(1), "{}: took {:?}", case.name, answer.took);
        assert_eq!(written(system).await, before, "{}: something was written", case.name);
    }
}

/// A token for `user_id` signed with `pem` under `kid`, with `claims` changed by `edit`.
fn craft_token(pem: &str, kid: &str, user_id: Uuid, edit: impl FnOnce(&mut Claims)) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = Claims {
        sub: user_id,
        username: "ada".into(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        iat: now,
        nbf: Some(now),
        exp: now + 600,
    };
    edit(&mut claims);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()).unwrap()
}

async fn current_kid(services: &Services) -> String {
    let jwks: Value = agora_testkit::get(services.auth.port, "/.well-known/jwks.json").await.json().await.unwrap();
    jwks["keys"][0]["kid"].as_str().unwrap().to_owned()
}

/// The gateway's address as auth-service sees it, and the client's as the gateway sees it.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A system whose gateway and services are configured beyond the tests' defaults.
async fn system_with(
    gateway: impl FnOnce(&mut agora_gateway::Config),
    auth: impl FnOnce(&mut AuthConfig),
    post: impl FnOnce(&mut PostConfig),
) -> TestSystem {
    let services = Services::start_with(auth, post).await;
    let read_model = TestDatabase::new("agora_read_test");
    let gateway = spawn_gateway(&services, read_model.url(), gateway).await;
    TestSystem { gateway, read_model, services }
}

async fn register(system: &TestSystem, username: &str, client: &str) -> (StatusCode, HeaderMap, Value) {
    let case = request("register", REGISTER, json!({ "input": { "username": username, "password": PASSWORD } }), None)
        .with("x-forwarded-for", client.to_owned());
    let answer = send(system, &case).await;
    (answer.status, answer.headers, answer.body)
}

fn account(body: &Value) -> Account {
    let payload = &body["data"]["register"];
    Account { id: payload["user"]["id"].as_str().unwrap().parse().unwrap(), token: payload["token"].as_str().unwrap().to_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_with_their_status_and_code_and_write_nothing() {
    let system = system_with(|_| {}, |_| {}, |_| {}).await;
    let register = |username: &str, password: &str, display_name: Option<&str>| json!({ "input": { "username": username, "password": password, "displayName": display_name } });
    let big = "x".repeat(70 * 1024);
    let post = |title: &str, body: &str| json!({ "input": { "title": title, "body": body } });
    use Target::{Auth, Gateway, Post};
    let cases = vec![
        raw("malformed JSON", Gateway, Some("application/json"), b"{\"query\": ".to_vec(), StatusCode::BAD_REQUEST),
        raw("an empty body", Gateway, Some("application/json"), Vec::new(), StatusCode::BAD_REQUEST),
        raw("invalid UTF-8", Gateway, Some("application/json"), b"{\"query\": \"\xff\xfe\"}".to_vec(), StatusCode::BAD_REQUEST),
        raw("a form post", Gateway, Some("text/plain"), graphql_body(REGISTER, json!({})), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        raw("no content type", Gateway, None, graphql_body("{ __typename }", json!({})), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        raw(
            "an oversized body",
            Gateway,
            Some("application/json"),
            graphql_body("{ __typename }", json!({ "pad": "x".repeat(300 * 1024) })),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        // The services, called directly, refuse the same.
        raw(
            "a form post to auth-service",
            Auth,
            Some("text/plain"),
            graphql_body(REGISTER, register("eve", PASSWORD, None)),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        raw(
            "a form post to post-service",
            Post,
            Some("text/plain;charset=UTF-8"),
            graphql_body("{ posts { nodes { id } } }", json!({})),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        raw("malformed JSON to auth-service", Auth, Some("application/json"), b"{\"query\"".to_vec(), StatusCode::BAD_REQUEST),
        raw("an empty body to post-service", Post, Some("application/json"), Vec::new(), StatusCode::BAD_REQUEST),
        raw(
            "an oversized body to auth-service",
            Auth,
            Some("application/json"),
            graphql_body(REGISTER, register("eve", &big, None)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        // GraphQL requests whose input breaks the contract's rules.
        request(
            "an unknown input field",
            "mutation { register(input: { username: \"eve\", password: \"correct horse\", admin: true }) { token } }",
            json!({}),
            Some("BAD_USER_INPUT"),
        ),
        request(
            "an injection as username",
            REGISTER,
            register("eve'; drop table app_user; --", PASSWORD, None),
            Some("BAD_USER_INPUT"),
        ),
        request("a NUL in a username", REGISTER, register("eve\u{0}", PASSWORD, None), Some("BAD_USER_INPUT")),
        request(
            "a NUL in login's username",
            LOGIN,
            json!({ "input": { "username": "ada\u{0}", "password": PASSWORD } }),
            Some("BAD_USER_INPUT"),
        ),
        request(
            "an injection in login's username",
            LOGIN,
            json!({ "input": { "username": "' or '1'='1", "password": PASSWORD } }),
            Some("BAD_USER_INPUT"),
        ),
        request("a password over auth-service's body limit", REGISTER, register("eve", &big, None), Some("BAD_USER_INPUT")),
        request(
            "a login password over auth-service's body limit",
            LOGIN,
            json!({ "input": { "username": "eve", "password": big } }),
            Some("BAD_USER_INPUT"),
        ),
        request(
            "a display name over auth-service's body limit",
            REGISTER,
            register("eve", PASSWORD, Some(&big)),
            Some("BAD_USER_INPUT"),
        ),
        request("a NUL in a display name", REGISTER, register("eve", PASSWORD, Some("Eve\u{0}")), Some("BAD_USER_INPUT")),
        request(
            "a display name that reads backwards",
            REGISTER,
            register("eve", PASSWORD, Some("eve\u{202E}nimda")),
            Some("BAD_USER_INPUT"),
        ),
        request(
            "an invisible display name",
            REGISTER,
            register("eve", PASSWORD, Some("\u{200B}\u{200D}")),
            Some("BAD_USER_INPUT"),
        ),
        request(
            "an anonymous post with an injection",
            CREATE_POST,
            post("'); delete from post; --", "x"),
            Some("UNAUTHENTICATED"),
        ),
        request("a post title over the limit", CREATE_POST, post(&"t".repeat(201), "body"), Some("BAD_USER_INPUT")),
        request("a post body over the limit", CREATE_POST, post("title", &"b".repeat(20_001)), Some("BAD_USER_INPUT")),
        request("a NUL in a post body", CREATE_POST, post("title", "body\u{0}"), Some("BAD_USER_INPUT")),
        request("a title with a bidirectional override", CREATE_POST, post("gnp.\u{202E}exe", "body"), Some("BAD_USER_INPUT")),
        request("an invisible title", CREATE_POST, post("\u{FEFF}", "body"), Some("BAD_USER_INPUT")),
        request("a NUL in a new display name", RENAME, json!({ "name": "\u{0}" }), Some("BAD_USER_INPUT")),
        request(
            "a cursor in a year PostgreSQL cannot store",
            "query($after: String) { posts(after: $after) { nodes { id } } }",
            json!({ "after": URL_SAFE_NO_PAD.encode(format!("post:-8210298412800000000:{}", Uuid::nil())) }),
            Some("BAD_USER_INPUT"),
        ),
        request(
            "an injection as a cursor",
            "query($after: String) { posts(after: $after) { nodes { id } } }",
            json!({ "after": "' or 1=1 --" }),
            Some("BAD_USER_INPUT"),
        ),
        request("a forged consistency token", "{ __typename }", json!({}), Some("BAD_USER_INPUT")).with(
            "x-consistency-token",
            URL_SAFE_NO_PAD.encode(format!(
                "[{{\"topic\":\"agora.post.v1\",\"aggregateId\":\"{}\",\"aggregateVersion\":99}}]",
                Uuid::now_v7()
            )),
        ),
    ];
    run(&system, cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_with_text_postgresql_cannot_hold_find_nothing_and_cursors_agree_in_both_strategies() {
    let system = system_with(|_| {}, |_| {}, |_| {}).await;
    let far = URL_SAFE_NO_PAD.encode(format!("post:253402300800000000:{}", Uuid::nil()));
    for strategy in ["read-model", "composition"] {
        let cases = vec![
            request(
                "a NUL in userByUsername",
                "query($u: String!) { userByUsername(username: $u) { id } }",
                json!({ "u": "ada\u{0}" }),
                None,
            ),
            request(
                "an injection in userByUsername",
                "query($u: String!) { userByUsername(username: $u) { id } }",
                json!({ "u": "' or 1=1 --" }),
                None,
            ),
            request(
                "an injection as an id",
                "query($id: ID!) { user(id: $id) { id } post(id: $id) { id } }",
                json!({ "id": "1' or '1'='1" }),
                None,
            ),
            request(
                "a cursor past the year 9999",
                "query($after: String) { posts(after: $after) { nodes { id } } }",
                json!({ "after": far }),
                Some("BAD_USER_INPUT"),
            ),
        ];
        let cases = cases.into_iter().map(|case| case.with("x-query-strategy", strategy.to_owned())).collect::<Vec<_>>();
        for case in &cases {
            let answer = send(&system, case).await;
            assert_eq!(answer.status, StatusCode::OK, "{strategy} {}: {}", case.name, answer.body);
            assert_eq!(code(&answer.body), case.code, "{strategy} {}: {}", case.name, answer.body);
        }
    }
    let direct = agora_testkit::graphql(
        system.services.auth.port,
        "query($u: String!) { userByUsername(username: $u) { id } }",
        json!({ "u": "ada\u{0}" }),
        None,
    )
    .await;
    assert_eq!(direct["data"], json!({ "userByUsername": null }), "auth-service itself: {direct}");
    assert!(direct["errors"].is_null(), "auth-service itself: {direct}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_looks_like_sql_is_stored_as_written() {
    let system = system_with(|_| {}, |_| {}, |_| {}).await;
    let ada = system.gateway.register("ada").await;
    let title = "Robert'); DROP TABLE post; --";
    let created = system.gateway.create_post(&ada, title).await;
    assert_eq!(created["data"]["createPost"]["title"], title, "{created}");
    let renamed = system
        .gateway
        .query(RENAME, json!({ "name": "\"; select pg_sleep(10); --" }), &[crate::helpers::bearer(&ada.token)])
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    assert_eq!(written(&system).await.2, 1, "the post table is there, with the post");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_are_expired_tampered_foreign_unsigned_or_of_nobody_cannot_write() {
    let system = system_with(|_| {}, |_| {}, |_| {}).await;
    let ada = system.gateway.register("ada").await;
    let kid = current_kid(&system.services).await;
    let pem = &system.services.auth_key.pem;
    let foreign = agora_auth_service::keys::generate_pem().unwrap();
    let header_of = |token: &str| token.split('.').next().unwrap().to_owned();
    let tampered = {
        let parts: Vec<&str> = ada.token.split('.').collect();
        let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2])
    };
    let unsigned = {
        let claims = ada.token.split('.').nth(1).unwrap().to_owned();
        format!("{}.{claims}.", URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT", "kid": kid }).to_string()))
    };
    let tokens = [
        ("an expired token", craft_token(pem, &kid, ada.id, |claims| claims.exp -= 3_600)),
        ("a token not valid yet", craft_token(pem, &kid, ada.id, |claims| claims.nbf = Some(claims.iat + 3_600))),
        ("a tampered token", tampered),
        ("a token signed by another key under auth-service's key id", craft_token(&foreign, &kid, ada.id, |_| {})),
        ("an alg: none token", unsigned),
        ("a token of another audience", craft_token(pem, &kid, ada.id, |claims| claims.aud = "elsewhere".into())),
        ("a validly signed token of a user that does not exist", craft_token(pem, &kid, Uuid::now_v7(), |_| {})),
        ("garbage", format!("{}.garbage", header_of(&ada.token))),
    ];
    let mut cases = Vec::new();
    for (name, token) in tokens {
        for (query, variables) in
            [(CREATE_POST, json!({ "input": { "title": "Points", "body": "for free" } })), (RENAME, json!({ "name": "Mallory" }))]
        {
            cases.push(request(name, query, variables, Some("UNAUTHENTICATED")).with("authorization", format!("Bearer {token}")));
        }
    }
    run(&system, cases).await;
    let points: i64 =
        sqlx::query_scalar("select count(*) from points_account").fetch_one(&system.services.auth_db).await.unwrap();
    assert_eq!(points, 0, "nobody earned points");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistency_token_is_checked_at_once_and_waits_only_after_validation_within_its_deadline() {
    let system = system_with(|config| config.consistency_timeout = Duration::from_millis(400), |_| {}, |_| {}).await;
    let key = TokenKey::new(&SecretString::from(TokenKey::LOCAL_DEVELOPMENT_SECRET));
    let never = |topic: &str| {
        ConsistencyToken(vec![WriteReceipt { topic: topic.into(), aggregate_id: Uuid::now_v7(), aggregate_version: 7 }])
            .encode(&key)
    };
    let signed = never(topics::POST);
    let (_, tag) = signed.split_once('.').unwrap();
    let other_key = TokenKey::new(&SecretString::from("another secret"));
    let forged =
        ConsistencyToken(vec![WriteReceipt { topic: topics::USER.into(), aggregate_id: Uuid::now_v7(), aggregate_version: 1 }])
            .encode(&other_key);
    let cases = vec![
        request("a payload under another token's tag", "{ __typename }", json!({}), Some("BAD_USER_INPUT"))
            .with("x-consistency-token", format!("{}.{tag}", forged.split_once('.').unwrap().0)),
        request("a token signed with another secret", "{ __typename }", json!({}), Some("BAD_USER_INPUT")).with(
            "x-consistency-token",
            ConsistencyToken(vec![WriteReceipt {
                topic: topics::POST.into(),
                aggregate_id: Uuid::now_v7(),
                aggregate_version: 7,
            }])
            .encode(&other_key),
        ),
        request(
            "a signed token naming a topic the read model does not follow",
            "{ __typename }",
            json!({}),
            Some("BAD_USER_INPUT"),
        )
        .with("x-consistency-token", never("agora.unknown.v1")),
        request("a document that does not parse, with a token that never comes", "{ posts {", json!({}), Some("BAD_USER_INPUT"))
            .with("x-consistency-token", signed.clone()),
        request(
            "a document that does not validate, with a token that never comes",
            "{ nothingHere }",
            json!({}),
            Some("BAD_USER_INPUT"),
        )
        .with("x-consistency-token", signed.clone()),
    ];
    run(&system, cases).await;

    // A valid request waits, but only until its deadline, then answers as it can.
    let started = Instant::now();
    let answer =
        send(&system, &request("a valid query", "{ __typename }", json!({}), None).with("x-consistency-token", signed)).await;
    let took = started.elapsed();
    assert_eq!(answer.body["extensions"]["consistent"], false, "{}", answer.body);
    assert!(took >= Duration::from_millis(350) && took < Duration::from_secs(2), "waited {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_budgeted_per_client_behind_the_gateway_on_both_transports() {
    let system = system_with(
        |config| config.trusted_proxies = vec![LOOPBACK],
        |config| {
            config.trusted_proxies = vec![LOOPBACK];
            config.registrations_per_address = 1;
        },
        |_| {},
    )
    .await;

    let (status, _, first) = register(&system, "ada", "203.0.113.1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(first["errors"].is_null(), "{first}");
    let (status, headers, limited) = register(&system, "bob", "203.0.113.1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&limited), Some("RATE_LIMITED"), "{limited}");
    let retry_after = limited["errors"][0]["extensions"]["retryAfter"].as_u64().expect("retryAfter");
    assert_eq!(headers["retry-after"].to_str().unwrap(), retry_after.to_string());
    let (_, _, elsewhere) = register(&system, "bob", "203.0.113.2").await;
    assert!(elsewhere["errors"].is_null(), "another client has a budget of its own: {elsewhere}");

    // Over WebSocket the same client is the same client.
    let mut socket = ws::connect_as(system.gateway.port(), "203.0.113.1").await;
    ws::send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(ws::receive(&mut socket).await["type"], "connection_ack");
    let mutation = json!({ "query": REGISTER, "variables": { "input": { "username": "carol", "password": PASSWORD } } });
    ws::send(&mut socket, json!({ "type": "subscribe", "id": "1", "payload": mutation })).await;
    let answer = ws::receive(&mut socket).await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{answer}");
    assert_eq!(written(&system).await.0, 2, "only ada and bob were registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_are_budgeted_per_author() {
    let system = system_with(|_| {}, |_| {}, |config| config.posts_per_author_per_hour = 2).await;
    let (_, _, body) = register(&system, "ada", "203.0.113.1").await;
    let ada = account(&body);
    for n in 0..2 {
        let created = system.gateway.create_post(&ada, &format!("post {n}")).await;
        assert!(created["errors"].is_null(), "{created}");
    }
    let case =
        request("a third post", CREATE_POST, json!({ "input": { "title": "farm", "body": "points" } }), Some("RATE_LIMITED"))
            .with("authorization", format!("Bearer {}", ada.token));
    let answer = send(&system, &case).await;
    assert_eq!(code(&answer.body), Some("RATE_LIMITED"), "{}", answer.body);
    assert!(answer.headers.contains_key("retry-after"), "{:?}", answer.headers);
    assert_eq!(written(&system).await.2, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_connection_is_bounded() {
    let system = system_with(
        |config| {
            config.ws_max_subscriptions = 2;
            config.ws_max_message_bytes = 2048;
        },
        |_| {},
        |_| {},
    )
    .await;
    let port = system.gateway.port();
    let subscription =
        |id: &str| json!({ "type": "subscribe", "id": id, "payload": { "query": "subscription { postCreated { title } }" } });

    let mut busy = ws::connect(port, "graphql-transport-ws").await;
    ws::send(&mut busy, json!({ "type": "connection_init" })).await;
    assert_eq!(ws::receive(&mut busy).await["type"], "connection_ack");
    ws::send(&mut busy, subscription("1")).await;
    ws::send(&mut busy, subscription("2")).await;
    ws::send(&mut busy, subscription("3")).await;
    let refused = ws::receive(&mut busy).await;
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some("3")), "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["limit"], 2, "{refused}");
    ws::send(&mut busy, json!({ "type": "complete", "id": "1" })).await;
    ws::send(&mut busy, subscription("3")).await;
    ws::send(&mut busy, json!({ "type": "ping" })).await;
    assert_eq!(ws::receive(&mut busy).await["type"], "pong", "the connection goes on, and 3 now runs");

    let mut big = ws::connect(port, "graphql-transport-ws").await;
    ws::send(&mut big, json!({ "type": "connection_init", "payload": { "pad": "x".repeat(4096) } })).await;
    assert_eq!(ws::close_code(&mut big).await, Some(1009), "an oversized message");

    for payload in [json!("Bearer x"), json!([1]), json!(42), json!(true)] {
        let mut odd = ws::connect(port, "graphql-transport-ws").await;
        ws::send(&mut odd, json!({ "type": "connection_init", "payload": payload })).await;
        assert_eq!(ws::close_code(&mut odd).await, Some(4400), "a connection_init payload of {payload}");
    }

    // A token is honoured while it lives.
    let (_, _, body) = register(&system, "ada", "203.0.113.1").await;
    let ada = account(&body);
    let kid = current_kid(&system.services).await;
    let short = craft_token(&system.services.auth_key.pem, &kid, ada.id, |claims| claims.exp = claims.iat + 2);
    let mut expiring = ws::connect(port, "graphql-transport-ws").await;
    let started = Instant::now();
    ws::send(&mut expiring, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {short}") } }))
        .await;
    assert_eq!(ws::receive(&mut expiring).await["type"], "connection_ack");
    assert_eq!(ws::close_code(&mut expiring).await, Some(4403), "the token expired");
    assert!(started.elapsed() >= Duration::from_secs(1), "closed only once the token expired");
}

/// A raw WebSocket client.
mod ws {
    use agora_testkit::DEADLINE;
    use futures::{SinkExt, StreamExt};
    use serde_json::Value;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

    pub async fn connect(port: u16, protocol: &str) -> Socket {
        connect_with(port, protocol, None).await
    }

    /// Connects as if relayed for `client` by a proxy on loopback.
    pub async fn connect_as(port: u16, client: &str) -> Socket {
        connect_with(port, "graphql-transport-ws", Some(client)).await
    }

    async fn connect_with(port: u16, protocol: &str, client: Option<&str>) -> Socket {
        let mut request = format!("ws://127.0.0.1:{port}/graphql").into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
        if let Some(client) = client {
            request.headers_mut().insert("x-forwarded-for", client.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds").0
    }

    pub async fn send(socket: &mut Socket, message: Value) {
        socket.send(Message::text(message.to_string())).await.unwrap();
    }

    pub async fn receive(socket: &mut Socket) -> Value {
        loop {
            match tokio::time::timeout(DEADLINE, socket.next()).await.expect("a message in time") {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    pub async fn close_code(socket: &mut Socket) -> Option<u16> {
        loop {
            match tokio::time::timeout(DEADLINE, socket.next()).await.expect("the server closes in time") {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.code.into()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}
