//! Read-your-writes. A command's answer names what it wrote (topic,
//! aggregate, version); [`Consistency`] answers whether the read model has
//! applied those versions, and waits, bounded, until it has. The same wait
//! serves a later query that brings a consistency token naming those writes
//! (`pipeline::consistency_token`) and the live feed, which pushes an event
//! only once the read model shows it.
//!
//! Waiters wake on the projector's `agora_projection` notifications (one
//! listener per process), whichever replica's projector applied the event.
//! The same notifications drive the [`ProjectionClock`], which tells the
//! response cache when the read model changed.

use std::sync::Arc;
use std::time::Duration;

use agora_schema::receipts::WriteReceipt;
use agora_schema::topics;
use anyhow::Context;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::records::PROJECTION_CHANNEL;

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
    #[tracing::instrument(name = "read-your-writes wait", skip_all, fields(writes = receipts.len()))]
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
    listener.listen(PROJECTION_CHANNEL).await?;
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
