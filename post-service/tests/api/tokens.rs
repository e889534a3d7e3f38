//! Who may publish: post-service checks tokens against auth-service's JWKS,
//! refuses missing, tampered, expired and foreign ones, and picks up a
//! rotated signing key without a restart.

use agora_platform::tokens::{Claims, AUDIENCE, ISSUER};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{error_code, get, spawn_system, PostServiceCalls, TestSystem};

/// A token signed with `pem` under key id `kid`, for `user_id`, expiring
/// `expires_in` seconds from now (negative: already expired).
fn craft_token(pem: &str, kid: &str, user_id: Uuid, expires_in: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: user_id,
        username: "ada".to_owned(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: now.min(now + expires_in) - 60,
        nbf: None,
        exp: now + expires_in,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("an Ed25519 PEM key");
    jsonwebtoken::encode(&header, &claims, &key).expect("signing a token")
}

/// The key id auth-service publishes for its current key.
async fn current_kid(system: &TestSystem) -> String {
    let jwks: Value = get(system.auth.port, "/.well-known/jwks.json").await.json().await.unwrap();
    jwks["keys"][0]["kid"].as_str().expect("a key id").to_owned()
}

/// The same token with another user's id in its claims, signature unchanged.
fn tamper(token: &str, other_user: Uuid) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = Value::String(other_user.to_string());
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{forged}.{}", parts[0], parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_post_without_a_valid_token_is_unauthenticated_and_writes_nothing() {
    let system = spawn_system().await;
    let (token, user_id) = system.register("ada").await;
    let kid = current_kid(&system).await;
    let foreign_pem = agora_auth_service::keys::generate_pem().unwrap();
    let cases = [
        ("no token", String::new()),
        ("a token that is not a JWT", "not-a-token".to_owned()),
        ("a tampered token", tamper(&token, Uuid::now_v7())),
        ("an expired token", craft_token(&system.auth_key.pem, &kid, user_id, -3600)),
        ("a token of a key auth-service does not publish", craft_token(&foreign_pem, "unknown-key", user_id, 600)),
        ("a token of another key under auth-service's key id", craft_token(&foreign_pem, &kid, user_id, 600)),
    ];

    for (case, token) in &cases {
        let response = system.create_post_response(token, "Title", "Body").await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{case}: {response}");
        assert!(response["data"].is_null(), "{case}: {response}");
    }
    assert_eq!(system.written_rows().await, (0, 0), "neither a post nor an event was written");

    // The crafting is sound: the same token, unexpired, is accepted.
    let fresh = craft_token(&system.auth_key.pem, &kid, user_id, 600);
    let response = system.create_post_response(&fresh, "Title", "Body").await;
    assert_eq!(response["data"]["createPost"]["author"]["id"], user_id.to_string(), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_is_picked_up_and_tokens_of_the_previous_key_stay_valid() {
    let mut system = spawn_system().await;
    let (token_a, user_id) = system.register("ada").await;
    system.create_post(&token_a, "Signed with key A").await;
    let kid_a = jsonwebtoken::decode_header(&token_a).unwrap().kid.unwrap();

    // auth-service restarts on the same port with key B, still publishing A.
    system.rotate_auth_key().await;
    let token_b = system.login("ada").await;
    let kid_b = jsonwebtoken::decode_header(&token_b).unwrap().kid.unwrap();
    assert_ne!(kid_a, kid_b, "the new auth-service signs with the new key");
    let jwks: Value = get(system.auth.port, "/.well-known/jwks.json").await.json().await.unwrap();
    let published: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|key| key["kid"].as_str().unwrap()).collect();
    assert_eq!(published, [kid_b.as_str(), kid_a.as_str()]);

    // post-service has only key A cached; the unknown kid makes it refetch.
    let response = system.create_post_response(&token_b, "Signed with key B", "Body").await;
    assert_eq!(response["data"]["createPost"]["author"]["id"], user_id.to_string(), "{response}");
    let response = system.create_post_response(&token_a, "Signed with key A again", "Body").await;
    assert_eq!(response["data"]["createPost"]["author"]["id"], user_id.to_string(), "{response}");
    assert_eq!(system.written_rows().await, (3, 3));
}
