//! Read-your-writes. A command's answer names what it wrote (topic,
//! aggregate, version); the gateway waits, bounded, until the read model has
//! applied those versions, and hands the client a consistency token that
//! names them, so that a later query on any replica can wait the same way.
//!
//! Waiters wake on the projector's `agora_projection` notifications (one
//! listener per process), whichever replica's projector applied the event.

use std::time::Duration;

use agora_platform::graphql::WriteReceipt;
use agora_schema::topics;
use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
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

impl ConsistencyToken {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.0).expect("receipts serialize"))
    }

    pub fn decode(token: &str) -> Result<Self, InvalidToken> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| InvalidToken)?;
        let receipts: Vec<WriteReceipt> = serde_json::from_slice(&bytes).map_err(|_| InvalidToken)?;
        if receipts.len() > 64 {
            return Err(InvalidToken);
        }
        Ok(ConsistencyToken(receipts))
    }
}

/// Answers whether the read model reflects given writes, and waits for it.
#[derive(Clone)]
pub struct Consistency {
    pool: PgPool,
    projected: watch::Receiver<u64>,
}

impl Consistency {
    /// Starts listening for projection notifications until `shutdown`.
    pub async fn start(pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let mut listener = PgListener::connect_with(&pool).await.context("cannot listen for projections")?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let (notify, projected) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    received = listener.recv() => match received {
                        Ok(_) => notify.send_modify(|count| *count += 1),
                        Err(error) => {
                            // The listener reconnects by itself on the next recv.
                            tracing::warn!(%error, "projection notifications interrupted");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                }
            }
        });
        Ok(Consistency { pool, projected })
    }

    /// True when the read model has applied every write of `receipts`.
    pub async fn reached(&self, receipts: &[WriteReceipt]) -> sqlx::Result<bool> {
        for receipt in receipts {
            let sql = match receipt.topic.as_str() {
                topics::USER => "select exists (select 1 from read_user where id = $1 and profile_version >= $2)",
                topics::POINTS => "select exists (select 1 from read_user where id = $1 and points_version >= $2)",
                topics::POST => "select exists (select 1 from read_post where id = $1 and version >= $2)",
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
        let mut projected = self.projected.clone();
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_token_decodes_to_the_writes_it_names() {
        let token = ConsistencyToken(vec![WriteReceipt {
            topic: topics::POST.into(),
            aggregate_id: Uuid::now_v7(),
            aggregate_version: 1,
        }]);
        assert_eq!(ConsistencyToken::decode(&token.encode()).unwrap(), token);
    }

    #[test]
    fn rejects_a_token_it_did_not_issue() {
        for bad in ["", "%%%", "e30", &URL_SAFE_NO_PAD.encode("[{\"topic\":1}]")] {
            assert!(ConsistencyToken::decode(bad).is_err(), "{bad}");
        }
    }
}
