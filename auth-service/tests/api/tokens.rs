//! Access tokens: who `me` is, which tokens a mutation refuses, and the JWKS
//! that lets other parts verify tokens (including during a key rotation).

use std::path::Path;

use agora_platform::tokens::{AUDIENCE, ISSUER};
use agora_testkit::KeyFile;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp, ME, RENAME};

/// A token as auth-service would sign it, by the key in `key_file`, that
/// expires `expires_in` seconds from now (negative: in the past).
fn sign(key_file: &Path, kid: &str, user_id: Uuid, expires_in: i64) -> String {
    let key = EncodingKey::from_ed_pem(&std::fs::read(key_file).unwrap()).expect("a PKCS#8 Ed25519 PEM");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({ "sub": user_id, "username": "ada", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + expires_in });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// The same token claiming to be another user, with the original signature.
fn with_subject(token: &str, user_id: Uuid) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(user_id);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

async fn jwks(app: &TestApp) -> Value {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().unwrap().iter().map(|key| key["kid"].as_str().unwrap().to_owned()).collect()
}

async fn me(app: &TestApp, token: Option<&str>) -> Value {
    let response = app.graphql(ME, json!({}), token).await;
    assert!(response["errors"].is_null(), "`me` answers null rather than an error: {response}");
    response["data"]["me"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_is_null_without_a_token_or_with_a_tampered_one() {
    let app = spawn_app().await;
    let (token, ada) = app.register("ada", "correct horse").await;
    let (_, eve) = app.register("eve", "correct horse").await;

    assert_eq!(me(&app, Some(&token)).await["id"], ada.to_string(), "the control: a valid token");
    assert!(me(&app, None).await.is_null());
    assert!(me(&app, Some("not-a-token")).await.is_null());
    assert!(me(&app, Some(&with_subject(&token, eve))).await.is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_without_a_valid_token_is_unauthenticated_and_changes_nothing() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada", "correct horse").await;
    let (_, eve) = app.register("eve", "correct horse").await;

    for token in [None, Some(with_subject(&token, eve))] {
        let response = app.graphql(RENAME, json!({ "name": "Mallory" }), token.as_deref()).await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    }
    let names: Vec<String> =
        sqlx::query_scalar("select display_name from app_user order by username").fetch_all(&app.pool).await.unwrap();
    assert_eq!(names, ["ada", "eve"]);
    assert_eq!(app.count_rows("outbox").await, 2, "only the registrations' events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_with_an_expired_token_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, id) = app.register("ada", "correct horse").await;
    let kid = kids(&jwks(&app).await).remove(0);

    let expired = sign(&app.signing_key.path, &kid, id, -60);
    let response = app.graphql(RENAME, json!({ "name": "Late" }), Some(&expired)).await;

    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("expired"), "{response}");
    // The control: the same token, alive, is accepted.
    let alive = sign(&app.signing_key.path, &kid, id, 60);
    let response = app.graphql(RENAME, json!({ "name": "On time" }), Some(&alive)).await;
    assert_eq!(response["data"]["renameUser"]["displayName"], "On time", "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_publishes_the_key_that_signs_tokens() {
    let app = spawn_app().await;
    let (token, id) = app.register("ada", "correct horse").await;

    let jwks = jwks(&app).await;

    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"), &json!("sig"))
    );
    assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), key["kid"].as_str());
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let claims = agora_platform::tokens::verify_with(&token, &decoding).expect("the published key verifies the token");
    assert_eq!(claims.sub, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_a_previous_key_is_still_accepted_after_a_rotation() {
    let previous_key = KeyFile::generate();
    let app = spawn_app_with(|config| config.previous_key_files = vec![previous_key.path.clone()]).await;
    let (token, id) = app.register("ada", "correct horse").await;

    let kids = kids(&jwks(&app).await);

    assert_eq!(kids.len(), 2, "the current and the previous key: {kids:?}");
    let current = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert_eq!(kids[0], current, "the current key signs new tokens");
    let previous = &kids[1];
    let old_token = sign(&previous_key.path, previous, id, 60);
    assert_eq!(me(&app, Some(&old_token)).await["id"], id.to_string());
    // A key that was never configured is refused, whatever kid it claims.
    let stranger = KeyFile::generate();
    assert!(me(&app, Some(&sign(&stranger.path, previous, id, 60))).await.is_null());
    assert!(me(&app, Some(&sign(&stranger.path, "unknown-kid", id, 60))).await.is_null());
}
