//! Access tokens: the claims auth-service signs (Ed25519 JWTs) and the
//! verifier every other part uses, which reads auth-service's public keys
//! from its JWKS endpoint, caches them and refetches on an unknown key id
//! (so a key rotation is picked up without a restart).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

pub const ISSUER: &str = "agora-auth";
pub const AUDIENCE: &str = "agora";

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub username: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    /// Not valid before (seconds since the epoch); tokens issued before
    /// the claim existed carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the signing keys cannot be fetched right now")]
    KeysUnavailable,
}

/// The validation rules every verifier applies.
pub fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 5;
    validation.validate_nbf = true;
    validation
}

/// Verifies a token with a known key.
pub fn verify_with(token: &str, key: &DecodingKey) -> Result<Claims, TokenError> {
    jsonwebtoken::decode::<Claims>(token, key, &validation()).map(|data| data.claims).map_err(|error| match error.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
        jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        _ => TokenError::Invalid,
    })
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

/// Verifies tokens against the keys auth-service publishes as JWKS.
pub struct JwksVerifier {
    url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: Mutex<Option<Instant>>,
    min_refetch_interval: Duration,
}

impl JwksVerifier {
    /// `min_refetch_interval` bounds how often an unknown key id may trigger
    /// a fetch, so garbage tokens cannot hammer auth-service.
    pub fn new(url: impl Into<String>, http: reqwest::Client, min_refetch_interval: Duration) -> Self {
        JwksVerifier { url: url.into(), http, keys: RwLock::default(), last_fetch: Mutex::default(), min_refetch_interval }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        if let Some(key) = self.keys.read().await.get(&kid) {
            return verify_with(token, key);
        }
        self.refetch().await?;
        match self.keys.read().await.get(&kid) {
            Some(key) => verify_with(token, key),
            None => Err(TokenError::UnknownKey),
        }
    }

    async fn refetch(&self) -> Result<(), TokenError> {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
            return Ok(());
        }
        // Counted as a fetch even if it fails: a service that is down is not
        // asked again by every request.
        *last_fetch = Some(Instant::now());
        let set: JwkSet = async {
            let response = self.http.get(&self.url).timeout(Duration::from_secs(5)).send().await?;
            response.error_for_status()?.json().await
        }
        .await
        .map_err(|error| {
            tracing::warn!(%error, url = %self.url, "cannot fetch the JWKS");
            TokenError::KeysUnavailable
        })?;
        let keys: HashMap<String, DecodingKey> =
            set.keys.iter().filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?))).collect();
        tracing::info!(keys = keys.len(), "fetched the JWKS");
        *self.keys.write().await = keys;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn reads_the_token_of_a_bearer_header() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc.def"));
        assert_eq!(bearer(&headers), Some("abc.def"));
        headers.insert("authorization", HeaderValue::from_static("bearer  xyz "));
        assert_eq!(bearer(&headers), Some("xyz"));
    }

    #[test]
    fn ignores_other_schemes_and_empty_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}

/// Who sent a request, as far as its token says.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    User(Claims),
    Rejected(TokenError),
}

impl Caller {
    pub fn from_verification(result: Option<Result<Claims, TokenError>>) -> Self {
        match result {
            None => Caller::Anonymous,
            Some(Ok(claims)) => Caller::User(claims),
            Some(Err(error)) => Caller::Rejected(error),
        }
    }

    /// The caller's claims, for fields that answer null without a valid token.
    pub fn claims(&self) -> Option<&Claims> {
        match self {
            Caller::User(claims) => Some(claims),
            _ => None,
        }
    }

    /// The caller's claims, or UNAUTHENTICATED saying why there are none.
    pub fn require(&self) -> Result<&Claims, async_graphql::Error> {
        use crate::errors::ErrorCode::{Internal, Unauthenticated};
        match self {
            Caller::User(claims) => Ok(claims),
            Caller::Anonymous => Err(Unauthenticated.error("a bearer token is required")),
            Caller::Rejected(TokenError::KeysUnavailable) => Err(Internal.error("tokens cannot be verified right now")),
            Caller::Rejected(error) => Err(Unauthenticated.error(error.to_string())),
        }
    }
}
