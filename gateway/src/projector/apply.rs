//! How events change the read model, a batch at a time. Every apply is
//! idempotent and tolerant of order across aggregates: a row remembers the
//! version of the last event applied to it and older or repeated events
//! change nothing; an event about a user who is not known yet creates the
//! row it needs.
//!
//! A batch is first reduced to what it leaves behind (per user: the
//! registration and the newest profile; per post: its creation; per user:
//! the newest points total), then written in at most three statements of
//! many rows each (`unnest` of arrays), whatever the batch's size. Applying
//! a batch whole or its events one by one, in any grouping, gives the same
//! read model (tested in `tests::batches_and_single_events_agree`).

use std::collections::HashMap;

use agora_schema::{Envelope, Event};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Applies decoded events, given with their envelopes, in log order.
pub async fn apply<'a>(
    connection: &mut PgConnection,
    events: impl IntoIterator<Item = (&'a Envelope, &'a Event)>,
) -> sqlx::Result<()> {
    let changes = Changes::of(events);
    changes.write_profiles(connection).await?;
    changes.write_posts(connection).await?;
    changes.write_points(connection).await
}

/// A user's registration and newest profile within a batch.
#[derive(Debug, Default)]
struct Profile {
    username: Option<String>,
    created_at: Option<DateTime<Utc>>,
    display_name: String,
    version: i64,
}

#[derive(Debug)]
struct NewPost<'a> {
    author_id: Uuid,
    title: &'a str,
    body: &'a str,
    created_at: DateTime<Utc>,
    version: i64,
}

/// What a batch leaves behind, keyed (and so written) once per row.
#[derive(Debug, Default)]
struct Changes<'a> {
    profiles: HashMap<Uuid, Profile>,
    /// In log order: the first creation of a post is the one kept.
    posts: Vec<(Uuid, NewPost<'a>)>,
    /// The newest total per user, with its version.
    points: HashMap<Uuid, (i32, i64)>,
}

impl<'a> Changes<'a> {
    fn of(events: impl IntoIterator<Item = (&'a Envelope, &'a Event)>) -> Self {
        let mut changes = Changes::default();
        let mut seen_posts = std::collections::HashSet::new();
        for (envelope, event) in events {
            let version = envelope.aggregate_version;
            match event {
                Event::UserRegistered(event) => {
                    let profile = changes.profiles.entry(event.user_id).or_default();
                    // Username and registration time never change.
                    profile.username = Some(event.username.clone());
                    profile.created_at = Some(event.registered_at);
                    profile.newest(&event.display_name, version);
                }
                Event::UserRenamed(event) => {
                    changes.profiles.entry(event.user_id).or_default().newest(&event.display_name, version);
                }
                Event::PostCreated(event) => {
                    if seen_posts.insert(event.post_id) {
                        changes.posts.push((
                            event.post_id,
                            NewPost {
                                author_id: event.author_id,
                                title: &event.title,
                                body: &event.body,
                                created_at: event.created_at,
                                version,
                            },
                        ));
                    }
                }
                Event::PointsAwarded(event) => {
                    // The event carries the new total: the newest one suffices.
                    let entry = changes.points.entry(event.user_id).or_insert((event.total, version));
                    if entry.1 < version {
                        *entry = (event.total, version);
                    }
                }
            }
        }
        changes
    }

    /// Registrations and renames: the display name of the newest version
    /// wins, whether it comes from the batch or the row.
    async fn write_profiles(&self, connection: &mut PgConnection) -> sqlx::Result<()> {
        if self.profiles.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(self.profiles.len());
        let (mut usernames, mut display_names, mut created, mut versions) = (vec![], vec![], vec![], vec![]);
        for (id, profile) in &self.profiles {
            ids.push(*id);
            usernames.push(profile.username.as_deref());
            display_names.push(profile.display_name.as_str());
            created.push(profile.created_at);
            versions.push(profile.version);
        }
        sqlx::query(
            "insert into read_user (id, username, display_name, created_at, profile_version)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[])
             on conflict (id) do update set
                 username = coalesce(excluded.username, read_user.username),
                 created_at = coalesce(excluded.created_at, read_user.created_at),
                 display_name = case when read_user.profile_version < excluded.profile_version
                                     then excluded.display_name else read_user.display_name end,
                 profile_version = greatest(read_user.profile_version, excluded.profile_version)
             where excluded.username is not null or read_user.profile_version < excluded.profile_version",
        )
        .bind(ids)
        .bind(usernames)
        .bind(display_names)
        .bind(created)
        .bind(versions)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// New posts, and one more post for each author of a post that was not
    /// there yet (a replayed creation counts nothing).
    async fn write_posts(&self, connection: &mut PgConnection) -> sqlx::Result<()> {
        if self.posts.is_empty() {
            return Ok(());
        }
        let count = self.posts.len();
        let (mut ids, mut authors, mut titles, mut bodies, mut created, mut versions) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
        );
        for (id, post) in &self.posts {
            ids.push(*id);
            authors.push(post.author_id);
            titles.push(post.title);
            bodies.push(post.body);
            created.push(post.created_at);
            versions.push(post.version);
        }
        sqlx::query(
            "with inserted as (
                 insert into read_post (id, author_id, title, body, created_at, version)
                 select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
                 on conflict (id) do nothing
                 returning author_id
             )
             insert into read_user (id, post_count)
             select author_id, count(*) from inserted group by author_id
             on conflict (id) do update set post_count = read_user.post_count + excluded.post_count",
        )
        .bind(ids)
        .bind(authors)
        .bind(titles)
        .bind(bodies)
        .bind(created)
        .bind(versions)
        .execute(connection)
        .await?;
        Ok(())
    }

    async fn write_points(&self, connection: &mut PgConnection) -> sqlx::Result<()> {
        if self.points.is_empty() {
            return Ok(());
        }
        let (mut ids, mut totals, mut versions) = (vec![], vec![], vec![]);
        for (id, (total, version)) in &self.points {
            ids.push(*id);
            totals.push(*total);
            versions.push(*version);
        }
        sqlx::query(
            "insert into read_user (id, points, points_version)
             select * from unnest($1::uuid[], $2::int[], $3::bigint[])
             on conflict (id) do update set points = excluded.points, points_version = excluded.points_version
             where read_user.points_version < excluded.points_version",
        )
        .bind(ids)
        .bind(totals)
        .bind(versions)
        .execute(connection)
        .await?;
        Ok(())
    }
}

impl Profile {
    fn newest(&mut self, display_name: &str, version: i64) {
        if self.version < version {
            self.display_name = display_name.to_owned();
            self.version = version;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real PostgreSQL: the same events applied one by one, as one
    //! batch and in random chunks, each into a generation of its own, leave
    //! the same rows.

    use agora_platform::db::{self, DatabaseSettings};
    use agora_schema::{PointsAwarded, PostCreated, UserRegistered, UserRenamed};
    use agora_testkit::TestDatabase;
    use secrecy::SecretString;
    use sqlx::PgPool;

    use super::*;
    use crate::projector::generation::{self, Generation, SHAPE_SQL, SHAPE_VERSION};

    /// A small deterministic generator (no dependency needed for shuffling).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    /// Registrations, renames, posts and points of a few users, each event
    /// repeated now and then, in a random order across and within aggregates.
    fn events(random: &mut Lcg) -> Vec<Envelope> {
        let users: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let mut events = Vec::new();
        for (n, user) in users.iter().enumerate() {
            let registered = UserRegistered {
                user_id: *user,
                username: format!("user{n}"),
                display_name: format!("User {n}"),
                registered_at: at(n as i64),
            };
            events.push(Event::UserRegistered(registered).into_envelope(1, at(0)));
            for version in 2..2 + random.below(4) as i64 {
                let renamed =
                    UserRenamed { user_id: *user, display_name: format!("User {n} v{version}"), renamed_at: at(version) };
                events.push(Event::UserRenamed(renamed).into_envelope(version, at(version)));
            }
            for version in 1..1 + random.below(5) as i64 {
                let awarded = PointsAwarded {
                    user_id: *user,
                    delta: 10,
                    total: 10 * version as i32,
                    reason: "POST_CREATED".into(),
                    cause_event_id: Uuid::now_v7(),
                    awarded_at: at(version),
                };
                events.push(Event::PointsAwarded(awarded).into_envelope(version, at(version)));
            }
        }
        for n in 0..8 {
            let author = users[random.below(users.len())];
            let created = PostCreated {
                post_id: Uuid::now_v7(),
                // Some posts by someone never registered.
                author_id: if n == 7 { Uuid::now_v7() } else { author },
                title: format!("Post {n}"),
                body: "body".into(),
                created_at: at(100 + n),
            };
            events.push(Event::PostCreated(created).into_envelope(1, at(100 + n)));
        }
        for _ in 0..6 {
            let again = events[random.below(events.len())].clone();
            events.push(again);
        }
        for i in (1..events.len()).rev() {
            events.swap(i, random.below(i + 1));
        }
        events
    }

    async fn apply_in(pool: &PgPool, generation: Generation, chunks: &[&[(Envelope, Event)]]) {
        for chunk in chunks {
            let mut tx = pool.begin().await.unwrap();
            generation.write_here(&mut tx).await.unwrap();
            apply(&mut tx, chunk.iter().map(|(envelope, event)| (envelope, event))).await.unwrap();
            tx.commit().await.unwrap();
        }
    }

    async fn rows(pool: &PgPool, generation: Generation) -> (Vec<String>, Vec<String>) {
        let schema = generation.schema();
        let users =
            sqlx::query_scalar(&format!("select t::text from {schema}.read_user t order by id")).fetch_all(pool).await.unwrap();
        let posts =
            sqlx::query_scalar(&format!("select t::text from {schema}.read_post t order by id")).fetch_all(pool).await.unwrap();
        (users, posts)
    }

    #[tokio::test]
    async fn batches_and_single_events_agree() {
        let database = TestDatabase::new("agora_read_test");
        let settings = DatabaseSettings { url: SecretString::from(database.url().to_owned()), max_connections: 2 };
        let migrations = vec![agora_platform::consumer::migrations(), sqlx::migrate!("./migrations")];
        let pool = db::connect_and_migrate(&settings, migrations).await.unwrap();
        for seed in 1..=12 {
            let mut random = Lcg(seed);
            let decoded: Vec<(Envelope, Event)> = events(&mut random)
                .into_iter()
                .map(|envelope| {
                    let event = envelope.event().unwrap();
                    (envelope, event)
                })
                .collect();
            let one_by_one: Vec<&[(Envelope, Event)]> = decoded.chunks(1).collect();
            let mut chunks = Vec::new();
            let mut rest = decoded.as_slice();
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at(1 + random.below(rest.len()).min(7));
                chunks.push(chunk);
                rest = after;
            }
            let mut seen = Vec::new();
            for grouping in [one_by_one, vec![decoded.as_slice()], chunks] {
                let generation = generation::create(&pool, SHAPE_VERSION, SHAPE_SQL).await.unwrap();
                apply_in(&pool, generation, &grouping).await;
                seen.push(rows(&pool, generation).await);
            }
            assert_eq!(seen[0], seen[1], "seed {seed}: one batch differs from one event at a time");
            assert_eq!(seen[0], seen[2], "seed {seed}: chunks differ from one event at a time");
            assert_eq!(seen[0].1.len(), 8, "seed {seed}: every post is there once");
        }
        pool.close().await;
    }
}
