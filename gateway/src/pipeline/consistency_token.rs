//! Consistency tokens: after a mutation the client gets a token naming
//! what its commands wrote, so that a later query, on any replica, can ask
//! (`x-consistency-token`) to see those writes.
//!
//! A token is signed (HMAC-SHA256 with a key every replica shares, see
//! [`TokenKey`]): a client cannot make one up, so it cannot make a request
//! wait for writes that never come, nor name topics the read model does not
//! follow. A token is checked when the request arrives (a forged one is
//! refused at once); the wait comes after the document was parsed and
//! validated (an invalid request is refused without a wait or a query),
//! before any resolver runs, and no longer than the deadline set when the
//! request arrived, so the wait counts against the request's time, not on
//! top of it.
//!
//! The pipeline puts a [`PendingConsistency`] in the request's data; the
//! schema's [`WaitForToken`] extension does the waiting.

use std::sync::Arc;
use std::time::Duration;

use agora_platform::errors::ErrorCode;
use agora_schema::receipts::WriteReceipt;
use agora_schema::topics;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Response, ServerError, Value};
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::annotate::request_error;
use crate::api::CommandLog;
use crate::commands::Consistency;

pub const CONSISTENCY_HEADER: &str = "x-consistency-token";

/// What a client must be able to read: the writes named by a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsistencyToken(pub Vec<WriteReceipt>);

#[derive(Debug, thiserror::Error)]
#[error("the consistency token is not one this API issued")]
pub struct InvalidToken;

/// The key consistency tokens are signed with. Every gateway replica must
/// have the same one (`CONSISTENCY_TOKEN_SECRET`): a token is redeemed on
/// whichever replica the client reaches next.
#[derive(Clone)]
pub struct TokenKey(Arc<hmac::Key>);

impl TokenKey {
    /// The key of a local run when no secret is configured: fixed, so that
    /// replicas started without configuration still agree, and public, so
    /// that it protects nothing (the gateway warns at startup).
    pub const LOCAL_DEVELOPMENT_SECRET: &'static str = "agora-local-development-consistency-token-secret";

    pub fn new(secret: &SecretString) -> Self {
        TokenKey(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes())))
    }

    /// The configured secret's key, or the local-development one (with a
    /// warning) when none is configured.
    pub fn from_config(secret: Option<&SecretString>) -> Self {
        match secret {
            Some(secret) => TokenKey::new(secret),
            None => {
                tracing::warn!(
                    "CONSISTENCY_TOKEN_SECRET is not set: consistency tokens are signed with the public \
                     local-development key, so anyone can forge them; set a shared secret in production"
                );
                TokenKey::new(&SecretString::from(Self::LOCAL_DEVELOPMENT_SECRET))
            }
        }
    }
}

impl TokenKey {
    /// The tag of `message` under this key, for `purpose` (each purpose's
    /// tags differ, so a tag made for one is no good for another).
    pub(super) fn tag(&self, purpose: &str, message: &[u8]) -> hmac::Tag {
        hmac::sign(&self.0, &Self::for_purpose(purpose, message))
    }

    /// Whether `tag` is the tag of `message` for `purpose` (compared in
    /// constant time).
    pub(super) fn verify(&self, purpose: &str, message: &[u8], tag: &[u8]) -> Result<(), ring::error::Unspecified> {
        hmac::verify(&self.0, &Self::for_purpose(purpose, message), tag)
    }

    fn for_purpose(purpose: &str, message: &[u8]) -> Vec<u8> {
        [purpose.as_bytes(), b"\0", message].concat()
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

impl ConsistencyToken {
    /// The most writes one token names (a request's commands).
    const MAX_WRITES: usize = 64;
    /// The longest token text read (64 receipts, base64, and the tag).
    const MAX_LENGTH: usize = 16 * 1024;

    /// `base64url(JSON receipts) "." base64url(HMAC-SHA256 of the first part)`.
    pub fn encode(&self, key: &TokenKey) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.0).expect("receipts serialize"));
        let tag = hmac::sign(&key.0, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// A token this API signed, naming writes to topics the read model follows.
    pub fn decode(token: &str, key: &TokenKey) -> Result<Self, InvalidToken> {
        let token = token.trim();
        if token.len() > Self::MAX_LENGTH {
            return Err(InvalidToken);
        }
        let (payload, tag) = token.split_once('.').ok_or(InvalidToken)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| InvalidToken)?;
        hmac::verify(&key.0, payload.as_bytes(), &tag).map_err(|_| InvalidToken)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| InvalidToken)?;
        let receipts: Vec<WriteReceipt> = serde_json::from_slice(&bytes).map_err(|_| InvalidToken)?;
        let known = |receipt: &WriteReceipt| {
            [topics::USER, topics::POST, topics::POINTS].contains(&receipt.topic.as_str()) && receipt.aggregate_version >= 1
        };
        if receipts.len() > Self::MAX_WRITES || !receipts.iter().all(known) {
            return Err(InvalidToken);
        }
        Ok(ConsistencyToken(receipts))
    }
}

/// After commands: the consistency token naming what they wrote
/// (`extensions.consistencyToken`), and `consistent: false` if the read
/// model did not show it yet.
pub fn annotate(response: &mut Response, commands: &CommandLog, key: &TokenKey) {
    if let Some(writes) = commands.writes() {
        response.extensions.insert("consistencyToken".into(), Value::from(ConsistencyToken(writes).encode(key)));
    }
    if commands.lagging() {
        // The answer may not show the latest writes yet; the client can retry with the token.
        response.extensions.insert("consistent".into(), Value::from(false));
    }
}

/// The writes the request's token names, to be seen within `timeout` from
/// now; `None` without a token, an error for a token this API did not issue.
pub fn pending(headers: &HeaderMap, key: &TokenKey, timeout: Duration) -> Result<Option<PendingConsistency>, InvalidToken> {
    let Some(token) = headers.get(CONSISTENCY_HEADER) else { return Ok(None) };
    let token = ConsistencyToken::decode(token.to_str().unwrap_or_default(), key)?;
    Ok(Some(PendingConsistency { receipts: token.0, deadline: Instant::now() + timeout }))
}

/// The writes a request must see, and until when it may wait for them.
#[derive(Debug, Clone)]
pub struct PendingConsistency {
    pub receipts: Vec<WriteReceipt>,
    pub deadline: Instant,
}

/// Waits until the read model shows the writes `pending` names, until its
/// deadline: whether it did, or the error to answer when it cannot be told.
pub async fn wait(consistency: &Consistency, pending: &PendingConsistency) -> Result<bool, ServerError> {
    let remaining = pending.deadline.saturating_duration_since(Instant::now());
    consistency.wait(&pending.receipts, remaining).await.map_err(|error| {
        tracing::error!(%error, "cannot check the consistency token");
        let (code, message) = if agora_platform::db::is_unavailable(&error) {
            (ErrorCode::Unavailable, "the read model cannot be checked for now; retry later")
        } else {
            (ErrorCode::Internal, "internal error")
        };
        request_error(code, message)
    })
}

/// The schema extension that waits; see the module.
pub struct WaitForToken(pub Consistency);

impl ExtensionFactory for WaitForToken {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(WaitForTokenExtension(self.0.clone()))
    }
}

struct WaitForTokenExtension(Consistency);

#[async_trait::async_trait]
impl Extension for WaitForTokenExtension {
    async fn execute(&self, ctx: &ExtensionContext<'_>, operation_name: Option<&str>, next: NextExecute<'_>) -> Response {
        let Some(pending) = ctx.data_opt::<PendingConsistency>() else {
            return next.run(ctx, operation_name).await;
        };
        let reached = match wait(&self.0, pending).await {
            Ok(reached) => reached,
            Err(error) => return Response::from_errors(vec![error]),
        };
        let mut response = next.run(ctx, operation_name).await;
        if !reached {
            // The answer may not show those writes yet; the client can retry with the token.
            response.extensions.insert("consistent".into(), Value::from(false));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn key(secret: &str) -> TokenKey {
        TokenKey::new(&SecretString::from(secret))
    }

    fn receipt(topic: &str, version: i64) -> WriteReceipt {
        WriteReceipt { topic: topic.into(), aggregate_id: Uuid::now_v7(), aggregate_version: version }
    }

    #[test]
    fn a_token_decodes_to_the_writes_it_names() {
        let token = ConsistencyToken(vec![receipt(topics::POST, 1), receipt(topics::POINTS, 3)]);
        assert_eq!(ConsistencyToken::decode(&token.encode(&key("k")), &key("k")).unwrap(), token);
    }

    #[test]
    fn rejects_a_token_it_did_not_issue() {
        for bad in ["", "%%%", "e30", "e30.", &URL_SAFE_NO_PAD.encode("[{\"topic\":1}]")] {
            assert!(ConsistencyToken::decode(bad, &key("k")).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_a_token_signed_with_another_key_or_changed_after_signing() {
        let token = ConsistencyToken(vec![receipt(topics::USER, 1)]);
        assert!(ConsistencyToken::decode(&token.encode(&key("other")), &key("k")).is_err());
        let signed = token.encode(&key("k"));
        let (_, tag) = signed.split_once('.').unwrap();
        let forged = ConsistencyToken(vec![receipt(topics::USER, 1_000_000)]).encode(&key("attacker"));
        let (forged_payload, _) = forged.split_once('.').unwrap();
        assert!(ConsistencyToken::decode(&format!("{forged_payload}.{tag}"), &key("k")).is_err());
    }

    #[test]
    fn rejects_a_signed_token_naming_a_topic_the_read_model_does_not_follow() {
        for token in [ConsistencyToken(vec![receipt("agora.unknown.v1", 1)]), ConsistencyToken(vec![receipt(topics::POST, 0)])] {
            assert!(ConsistencyToken::decode(&token.encode(&key("k")), &key("k")).is_err(), "{token:?}");
        }
    }

    #[test]
    fn a_key_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", key("hunter2")), "TokenKey(…)");
    }
}
