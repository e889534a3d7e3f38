//! Read-your-writes. A command's answer names what it wrote (topic,
//! aggregate, version); [`Consistency`] answers whether the read model has
//! applied those versions, and waits, bounded, until it has. The same wait
//! serves a later query that brings a consistency token naming those writes
//! (`pipeline::consistency_token`) and the live feed, which pushes an event
//! only once the read model shows it.
//!
//! Waiters wake on the projector's `agora_projection` notifications (one
//! listener per process), whichever replica's projector applied the event.
//! The same notifications drive the [`ProjectionClock`], and say what each
//! commit changed (its [`Tag`]s, in the payload), which tells the response
//! cache which answers a commit made stale ([`Changes`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agora_schema::receipts::WriteReceipt;
use agora_schema::topics;
use anyhow::Context;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::records::{Tag, PROJECTION_CHANNEL};

/// What this process knows of the read model's changes: `generation` grows
/// with every projection notification, and whenever notifications may have
/// been missed (the listening connection was lost); `listening` is false
/// while no notification can arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionClock {
    pub generation: u64,
    pub listening: bool,
}

/// When each part of the read model last changed, as this process heard
/// it: the clock's generation at which a notification (or a write found
/// applied) named its tag. Bounded: when it holds too many tags, it forgets
/// them all and counts everything as changed then (its floor), under the
/// same lock, so no reader sees a tag forgotten and the floor not raised.
#[derive(Default)]
pub struct Changes(RwLock<Changed>);

#[derive(Default)]
struct Changed {
    by_tag: HashMap<Tag, u64>,
    /// Everything changed at this generation or before.
    floor: u64,
}

/// How many tags' changes are remembered.
const REMEMBERED_TAGS: usize = 1 << 20;

impl Changes {
    /// `tags` changed at `generation`; `None`: everything may have.
    fn record(&self, generation: u64, tags: Option<&[Tag]>) {
        let mut changed = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match tags {
            Some(tags) if changed.by_tag.len() + tags.len() <= REMEMBERED_TAGS => {
                for tag in tags {
                    changed.by_tag.insert(tag.clone(), generation);
                }
            }
            // Generations are recorded in order (under the clock's lock):
            // the floor covers every tag remembered so far.
            _ => {
                changed.floor = generation;
                changed.by_tag.clear();
            }
        }
    }

    /// Whether anything of `tags` changed after `generation`.
    pub fn since(&self, generation: u64, tags: &[Tag]) -> bool {
        let changed = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        changed.floor > generation || tags.iter().any(|tag| changed.by_tag.get(tag).is_some_and(|&at| at > generation))
    }
}

/// Answers whether the read model reflects given writes, and waits for it.
#[derive(Clone)]
pub struct Consistency {
    pool: PgPool,
    clock: Arc<watch::Sender<ProjectionClock>>,
    changes: Arc<Changes>,
}

impl Consistency {
    /// Starts listening for projection notifications until `shutdown`.
    pub async fn start(pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let listener = listen(&pool).await.context("cannot listen for projections")?;
        let clock = Arc::new(watch::Sender::new(ProjectionClock { generation: 0, listening: true }));
        let changes = Arc::new(Changes::default());
        tokio::spawn(follow_projections(pool.clone(), listener, clock.clone(), changes.clone(), shutdown));
        Ok(Consistency { pool, clock, changes })
    }

    /// The read model's change clock, as this process last heard it.
    pub fn clock(&self) -> ProjectionClock {
        *self.clock.borrow()
    }

    /// What changed in the read model when, as this process heard it.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// True when the read model has applied every write of `receipts`. The
    /// database may be ahead of the notifications heard so far, so finding
    /// the writes applied advances the clock too: whoever relies on them
    /// next (the client that wrote, a subscriber) must not get an answer
    /// cached before them.
    async fn reached(&self, receipts: &[WriteReceipt]) -> sqlx::Result<bool> {
        let Some(changed) = self.applied(receipts).await? else { return Ok(false) };
        // Read by the response cache; waiters are not woken for it (each
        // would query the database again, for nothing new).
        self.clock.send_if_modified(|clock| {
            clock.generation += 1;
            self.changes.record(clock.generation, Some(&changed));
            false
        });
        Ok(true)
    }

    /// The tags of what the writes changed, if the read model applied them
    /// all (the same tags as the projector's notification of them).
    async fn applied(&self, receipts: &[WriteReceipt]) -> sqlx::Result<Option<Vec<Tag>>> {
        let mut changed = Vec::new();
        for receipt in receipts {
            let (id, version) = (receipt.aggregate_id, receipt.aggregate_version);
            match receipt.topic.as_str() {
                topics::USER => {
                    let username: Option<String> = sqlx::query_scalar(
                        "select username from read_user where id = $1 and profile_version >= $2 and username is not null",
                    )
                    .bind(id)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(username) = username else { return Ok(None) };
                    changed.push(Tag::User(id));
                    if version == 1 {
                        changed.extend(Tag::of_registration(id, username));
                    }
                }
                topics::POINTS => {
                    let applied: bool =
                        sqlx::query_scalar("select exists (select 1 from read_user where id = $1 and points_version >= $2)")
                            .bind(id)
                            .bind(version)
                            .fetch_one(&self.pool)
                            .await?;
                    if !applied {
                        return Ok(None);
                    }
                    changed.extend([Tag::User(id), Tag::Leaderboard]);
                }
                // Queries show a post only with its author: both must be there.
                topics::POST => {
                    let author: Option<uuid::Uuid> = sqlx::query_scalar(
                        "select p.author_id from read_post p join read_user u on u.id = p.author_id
                         where p.id = $1 and p.version >= $2 and u.username is not null",
                    )
                    .bind(id)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(author) = author else { return Ok(None) };
                    changed.extend(Tag::of_post(id, author));
                }
                // A topic the read model does not follow cannot be waited for.
                _ => continue,
            }
        }
        Ok(Some(changed))
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
    changes: Arc<Changes>,
    shutdown: CancellationToken,
) {
    // `None` changed: everything may have (a notification that does not
    // say what, or notifications lost).
    let advance = |listening: bool, changed: Option<&[Tag]>| {
        clock.send_modify(|clock| {
            clock.generation += 1;
            clock.listening = listening;
            changes.record(clock.generation, changed);
        })
    };
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => {
                let tags: Option<Vec<Tag>> = Some(notification.payload())
                    .filter(|payload| !payload.is_empty())
                    .and_then(|payload| payload.split(' ').map(Tag::from_text).collect());
                advance(true, tags.as_deref());
            }
            Ok(None) => {
                tracing::warn!("projection notifications interrupted; listening again");
                advance(true, None);
            }
            Err(error) => {
                tracing::warn!(%error, "projection notifications lost");
                advance(false, None);
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
                advance(true, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_change_counts_for_its_tags_after_the_generation_it_came_at() {
        let changes = Changes::default();
        let (ada, bob) = (Tag::User(Uuid::now_v7()), Tag::User(Uuid::now_v7()));
        changes.record(3, Some(std::slice::from_ref(&ada)));
        assert!(changes.since(2, std::slice::from_ref(&ada)), "computed before the change");
        assert!(!changes.since(3, std::slice::from_ref(&ada)), "computed once it was heard");
        assert!(!changes.since(0, std::slice::from_ref(&bob)), "another tag");
        // Everything, at 5: what was computed before counts as changed.
        changes.record(5, None);
        assert!(changes.since(4, std::slice::from_ref(&bob)) && !changes.since(5, &[ada, bob]));
    }
}
