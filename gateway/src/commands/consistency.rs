//! Read-your-writes. A command's answer names what it wrote (topic,
//! aggregate, version); the gateway waits, bounded, until the read model has
//! applied those versions, and hands the client a consistency token that
//! names them, so that a later query on any replica can wait the same way.
//!
//! A token is signed (HMAC-SHA256 with a key every replica shares, see
//! [`TokenKey`]): a client cannot make one up, so it cannot make a request
//! wait for writes that never come, nor name topics the read model does not
//! follow.
//!
//! Waiters wake on the projector's `agora_projection` notifications (one
//! listener per process), whichever replica's projector applied the event.
//! The same notifications drive the [`ProjectionClock`], which tells the
//! response cache when the read model changed.

use std::sync::Arc;
use std::time::Duration;

use agora_platform::graphql::WriteReceipt;
use agora_schema::topics;
use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::projector::NOTIFY_CHANNEL;

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

/// What this process knows of the read model's changes: `generation` grows
/// with every projection notification, and whenever notifications may have
/// been missed (the listening connection was lost); `listening` is false
/// while no notification can arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionClock {
    pub generation: u64,
    pub listening: bool,
}

/// Answers whether the read model reflects given writes, and waits for it.
#[derive(Clone)]
pub struct Consistency {
    pool: PgPool,
    clock: Arc<watch::Sender<ProjectionClock>>,
}

impl Consistency {
    /// Starts listening for projection notifications until `shutdown`.
    pub async fn start(pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let listener = listen(&pool).await.context("cannot listen for projections")?;
        let clock = Arc::new(watch::Sender::new(ProjectionClock { generation: 0, listening: true }));
        tokio::spawn(follow_projections(pool.clone(), listener, clock.clone(), shutdown));
        Ok(Consistency { pool, clock })
    }

    /// The read model's change clock, as this process last heard it.
    pub fn clock(&self) -> ProjectionClock {
        *self.clock.borrow()
    }

    /// True when the read model has applied every write of `receipts`. The
    /// database may be ahead of the notifications heard so far, so finding
    /// the writes applied advances the clock too: whoever relies on them
    /// next (the client that wrote, a subscriber) must not get an answer
    /// cached before them.
    async fn reached(&self, receipts: &[WriteReceipt]) -> sqlx::Result<bool> {
        let reached = self.applied(receipts).await?;
        if reached {
            // Read by the response cache; waiters are not woken for it (each
            // would query the database again, for nothing new).
            self.clock.send_if_modified(|clock| {
                clock.generation += 1;
                false
            });
        }
        Ok(reached)
    }

    async fn applied(&self, receipts: &[WriteReceipt]) -> sqlx::Result<bool> {
        for receipt in receipts {
            let sql = match receipt.topic.as_str() {
                topics::USER => "select exists (select 1 from read_user where id = $1 and profile_version >= $2)",
                topics::POINTS => "select exists (select 1 from read_user where id = $1 and points_version >= $2)",
                // Queries show a post only with its author: both must be there.
                topics::POST => {
                    "select exists (select 1 from read_post p join read_user u on u.id = p.author_id
                                    where p.id = $1 and p.version >= $2 and u.username is not null)"
                }
                // A topic the read model does not follow cannot be waited for.
                _ => continue,
            };
            let applied: bool =
                sqlx::query_scalar(sql).bind(receipt.aggregate_id).bind(receipt.aggregate_version).fetch_one(&self.pool).await?;
            if !applied {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits until the writes are applied or `timeout` passes; true if they were.
    pub async fn wait(&self, receipts: &[WriteReceipt], timeout: Duration) -> sqlx::Result<bool> {
        if receipts.is_empty() {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut projected = self.clock.subscribe();
        loop {
            projected.mark_unchanged();
            if self.reached(receipts).await? {
                return Ok(true);
            }
            // Woken by a projection, or re-checked now and then in case a
            // notification was lost while the listener reconnected.
            let recheck = (tokio::time::Instant::now() + Duration::from_millis(250)).min(deadline);
            tokio::select! {
                _ = projected.changed() => {}
                _ = tokio::time::sleep_until(recheck) => {
                    if recheck >= deadline {
                        return self.reached(receipts).await;
                    }
                }
            }
        }
    }
}

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

/// Advances the clock on every notification. A lost connection may have
/// lost notifications too, so it advances the clock as well: sqlx has
/// reconnected (and listens again) when it reports the loss; after an error,
/// the clock says "not listening" until a new listener is up.
async fn follow_projections(
    pool: PgPool,
    mut listener: PgListener,
    clock: Arc<watch::Sender<ProjectionClock>>,
    shutdown: CancellationToken,
) {
    let advance = |listening: bool| {
        clock.send_modify(|clock| {
            clock.generation += 1;
            clock.listening = listening;
        })
    };
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(_)) => advance(true),
            Ok(None) => {
                tracing::warn!("projection notifications interrupted; listening again");
                advance(true);
            }
            Err(error) => {
                tracing::warn!(%error, "projection notifications lost");
                advance(false);
                listener = loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    match listen(&pool).await {
                        Ok(listener) => break listener,
                        Err(error) => tracing::warn!(%error, "cannot listen for projections yet"),
                    }
                };
                advance(true);
            }
        }
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
