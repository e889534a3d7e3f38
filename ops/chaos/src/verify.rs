//! Judging a scenario once the system is quiet: every acknowledged command
//! must have its effect in the write model and the read model (else it was
//! lost), no command may have its effect twice, and every subscriber
//! session must have been pushed each post created while it was open,
//! exactly once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::client::Outcome;
use crate::feed::Session;
use crate::load::{Command, Kind};

/// What the commands of one scenario came to.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub sent: usize,
    pub acknowledged: usize,
    /// Not acknowledged, by final code.
    pub failed: BTreeMap<String, usize>,
    /// Not acknowledged, yet applied (the client cannot know).
    pub failed_but_applied: usize,
    pub lost: Vec<String>,
    pub twice: Vec<String>,
    /// Commands retried at least once, by the code of their first retried attempt.
    pub retried: BTreeMap<String, usize>,
    /// Acknowledged before the read model showed them (`consistent: false`), by kind.
    pub stale: BTreeMap<String, usize>,
}

async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    PgConnection::connect(url).await.with_context(|| format!("cannot connect to {url}"))
}

/// How many times each value is found: usernames in `app_user`, display
/// names in auth's `UserRenamed` events, titles in `post`; and which of them
/// the read model shows.
pub async fn effects(commands: &[Command], auth_url: &str, post_url: &str, read_url: &str) -> anyhow::Result<Effects> {
    let values = |kind: Kind| commands.iter().filter(|c| c.kind == kind).map(|c| c.value.clone()).collect::<Vec<_>>();
    let mut auth = connect(auth_url).await?;
    let registered: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("select username, count(*) from app_user where username = any($1) group by 1")
            .bind(values(Kind::Register))
            .fetch_all(&mut auth)
            .await?
            .into_iter()
            .collect();
    let renamed: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "select payload->'data'->>'display_name', count(*) from outbox
         where event_type = 'UserRenamed' and payload->'data'->>'display_name' = any($1) group by 1",
    )
    .bind(values(Kind::Rename))
    .fetch_all(&mut auth)
    .await?
    .into_iter()
    .collect();
    let mut post = connect(post_url).await?;
    let posted: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("select title, count(*) from post where title = any($1) group by 1")
            .bind(values(Kind::Post))
            .fetch_all(&mut post)
            .await?
            .into_iter()
            .collect();
    let mut read = connect(read_url).await?;
    let read_users: HashSet<String> = sqlx::query_scalar("select username from read_user where username = any($1)")
        .bind(values(Kind::Register))
        .fetch_all(&mut read)
        .await?
        .into_iter()
        .collect();
    let read_posts: HashSet<String> = sqlx::query_scalar("select title from read_post where title = any($1)")
        .bind(values(Kind::Post))
        .fetch_all(&mut read)
        .await?
        .into_iter()
        .collect();

    let mut effects = Effects { sent: commands.len(), ..Effects::default() };
    for command in commands {
        let (found, in_read_model) = match command.kind {
            Kind::Register => (registered.get(&command.value), read_users.contains(&command.value)),
            // The read model's display names are compared by reconciliation.
            Kind::Rename => (renamed.get(&command.value), true),
            Kind::Post => (posted.get(&command.value), read_posts.contains(&command.value)),
        };
        let found = found.copied().unwrap_or(0);
        if let Some(code) = command.retried.first() {
            *effects.retried.entry(code.clone()).or_default() += 1;
        }
        let what = format!("{:?} {} (key {})", command.kind, command.value, command.key);
        if found > 1 {
            effects.twice.push(format!("{what}: applied {found} times"));
        }
        match &command.outcome {
            Outcome::Acknowledged(_) => {
                effects.acknowledged += 1;
                if command.stale {
                    *effects.stale.entry(format!("{:?}", command.kind)).or_default() += 1;
                }
                if found == 0 {
                    effects.lost.push(format!("{what}: acknowledged, not in the service's database"));
                } else if !in_read_model {
                    effects.lost.push(format!("{what}: acknowledged, not in the read model"));
                }
            }
            Outcome::Failed { code, .. } => {
                let code = code.split_whitespace().next().unwrap_or_default().to_owned();
                *effects.failed.entry(code).or_default() += 1;
                if found > 0 {
                    effects.failed_but_applied += 1;
                }
            }
        }
    }
    Ok(effects)
}

/// How a scenario's posts reached the subscribers.
#[derive(Debug, Clone, Default)]
pub struct FeedCounts {
    pub expected: usize,
    pub missing: usize,
    pub duplicated: usize,
    pub sessions: usize,
    /// A few of the posts missing or duplicated, with the session's gateway.
    pub examples: Vec<String>,
}

/// A session should have been pushed every acknowledged post whose command
/// was first sent after it had subscribed (plus `grace`) and answered before
/// it ended (less `grace`). Duplicates count when received in `window`.
pub fn feed(commands: &[Command], sessions: &[Session], window: (Instant, Instant), grace: Duration) -> FeedCounts {
    let posts: Vec<&Command> = commands.iter().filter(|c| c.kind == Kind::Post && c.acknowledged() && c.post.is_some()).collect();
    let mut counts = FeedCounts::default();
    for session in sessions {
        if session.ended.is_some_and(|ended| ended < window.0) {
            continue;
        }
        counts.sessions += 1;
        let received: HashSet<Uuid> = session.received.iter().map(|(id, _)| *id).collect();
        for post in &posts {
            let after_start = post.sent >= session.started + grace;
            let before_end = session.ended.is_none_or(|ended| post.done + grace <= ended);
            if after_start && before_end {
                counts.expected += 1;
                if !received.contains(&post.post.unwrap()) {
                    counts.missing += 1;
                    if counts.examples.len() < 6 {
                        counts.examples.push(format!("post {} missing on {}", post.post.unwrap(), session.gateway));
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        for (id, at) in &session.received {
            if !seen.insert(*id) && *at >= window.0 && *at <= window.1 {
                counts.duplicated += 1;
                if counts.examples.len() < 6 {
                    counts.examples.push(format!("post {id} pushed again on {}", session.gateway));
                }
            }
        }
    }
    counts
}

/// Whether every open session has what it should (to stop waiting early).
pub fn feed_complete(commands: &[Command], sessions: &[Session], since: Instant, grace: Duration) -> bool {
    feed(commands, sessions, (since, Instant::now()), grace).missing == 0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn post(sent: Instant, done: Instant) -> Command {
        Command {
            key: Uuid::now_v7(),
            kind: Kind::Post,
            value: "chaos".into(),
            user: None,
            post: Some(Uuid::now_v7()),
            sent,
            done,
            outcome: Outcome::Acknowledged(json!({})),
            retried: Vec::new(),
            stale: false,
        }
    }

    fn session(started: Instant, ended: Option<Instant>, received: &[(Uuid, Instant)]) -> Session {
        Session { gateway: "gateway-1".into(), started, ended, received: received.to_vec() }
    }

    #[test]
    fn a_post_pushed_once_to_an_open_session_is_neither_missing_nor_duplicated() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let early = post(s(0), s(1));
        let posted = post(s(5), s(6));
        let sessions = [session(t0, None, &[(posted.post.unwrap(), s(6))])];
        let counts = feed(&[early, posted], &sessions, (t0, s(100)), Duration::from_secs(2));
        assert_eq!((counts.expected, counts.missing, counts.duplicated), (1, 0, 0));
    }

    #[test]
    fn a_post_not_pushed_is_missing_and_one_pushed_twice_is_duplicated() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let (first, second) = (post(s(5), s(6)), post(s(7), s(8)));
        let id = first.post.unwrap();
        let sessions = [session(t0, None, &[(id, s(6)), (id, s(9))])];
        let counts = feed(&[first, second], &sessions, (t0, s(100)), Duration::from_secs(2));
        assert_eq!((counts.expected, counts.missing, counts.duplicated), (2, 1, 1));
    }

    #[test]
    fn a_post_answered_after_its_session_ended_is_not_expected_there() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let late = post(s(5), s(9));
        let sessions = [session(t0, Some(s(10)), &[])];
        let counts = feed(&[late], &sessions, (t0, s(100)), Duration::from_secs(2));
        assert_eq!((counts.expected, counts.missing), (0, 0));
    }
}
