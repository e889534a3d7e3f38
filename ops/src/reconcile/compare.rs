//! The comparisons themselves, on a [`Snapshot`]: pure functions, so that
//! the same rules serve the command and the chaos suite.

use std::collections::{BTreeMap, HashMap, HashSet};

use agora_schema::Envelope;
use uuid::Uuid;

use super::load::{OutboxRow, PostRow, Snapshot};
use super::topics::TopicMessage;
use super::{Check, Counts, Difference, Kind, Report};

struct Differences(Vec<Difference>);

impl Differences {
    fn add(&mut self, check: Check, kind: Kind, id: impl ToString, detail: impl Into<String>) {
        self.0.push(Difference { check, kind, id: id.to_string(), detail: detail.into() });
    }
}

pub fn compare(snapshot: &Snapshot) -> Report {
    let mut found = Differences(Vec::new());
    users_and_points(snapshot, &mut found);
    posts(snapshot, &mut found);
    awards(snapshot, &mut found);
    let mut counts = Counts {
        users: snapshot.users.len(),
        posts: snapshot.posts.len(),
        points_accounts: snapshot.accounts.len(),
        outbox_rows: snapshot.auth_outbox.len() + snapshot.post_outbox.len(),
        dead_letters: snapshot.dead_letters,
        truncated_topics: snapshot.truncated_topics.clone(),
        topics_skipped: snapshot.topics.is_none(),
        ..Counts::default()
    };
    if let Some(messages) = &snapshot.topics {
        counts.topic_messages = messages.len();
        counts.duplicated_in_topic = outbox(snapshot, messages, &mut found);
    }
    let mut differences = found.0;
    differences.sort();
    Report { differences, counts }
}

fn users_and_points(snapshot: &Snapshot, found: &mut Differences) {
    let read: HashMap<Uuid, _> = snapshot.read_users.iter().map(|row| (row.id, row)).collect();
    let accounts: HashMap<Uuid, _> = snapshot.accounts.iter().map(|row| (row.user_id, row)).collect();
    let mut post_counts: HashMap<Uuid, i32> = HashMap::new();
    for post in &snapshot.posts {
        *post_counts.entry(post.author_id).or_default() += 1;
    }
    let known: HashSet<Uuid> = snapshot.users.iter().map(|user| user.id).collect();
    for user in &snapshot.users {
        let Some(row) = read.get(&user.id).filter(|row| row.username.is_some()) else {
            found.add(Check::Users, Kind::Missing, user.id, format!("user {} is not in the read model", user.username));
            continue;
        };
        let mut differs = Vec::new();
        if row.username.as_deref() != Some(user.username.as_str()) {
            differs.push(format!("username {:?} ≠ {:?}", row.username, user.username));
        }
        if row.display_name.as_deref() != Some(user.display_name.as_str()) {
            differs.push(format!("display name {:?} ≠ {:?}", row.display_name, user.display_name));
        }
        if row.profile_version != user.version {
            differs.push(format!("profile version {} ≠ {}", row.profile_version, user.version));
        }
        if !differs.is_empty() {
            found.add(Check::Users, Kind::Differing, user.id, format!("read model vs auth-service: {}", differs.join(", ")));
        }
        let (total, version) = accounts.get(&user.id).map_or((0, 0), |account| (account.total, account.version));
        if row.points != total || row.points_version != version {
            found.add(
                Check::Points,
                Kind::Differing,
                user.id,
                format!(
                    "read model {} points (version {}) vs ledger {total} (version {version})",
                    row.points, row.points_version
                ),
            );
        }
        let posts = post_counts.get(&user.id).copied().unwrap_or(0);
        if row.post_count != posts {
            found.add(
                Check::PostCounts,
                Kind::Differing,
                user.id,
                format!("read model {} posts vs post-service {posts}", row.post_count),
            );
        }
    }
    for row in snapshot.read_users.iter().filter(|row| !known.contains(&row.id)) {
        let what = row.username.as_deref().map_or_else(|| "a placeholder row".to_owned(), |name| format!("user {name}"));
        found.add(Check::Users, Kind::Extra, row.id, format!("{what} is in the read model, not in auth-service"));
    }
    for account in snapshot.accounts.iter().filter(|account| !known.contains(&account.user_id)) {
        found.add(Check::Points, Kind::Extra, account.user_id, format!("a points account ({}) of no user", account.total));
    }
}

fn post_fields(row: &PostRow) -> (Uuid, &str, &str, i64, i64) {
    // Microseconds: what PostgreSQL keeps.
    (row.author_id, &row.title, &row.body, row.created_at.timestamp_micros(), row.version)
}

fn posts(snapshot: &Snapshot, found: &mut Differences) {
    let read: HashMap<Uuid, &PostRow> = snapshot.read_posts.iter().map(|row| (row.id, row)).collect();
    let known: HashSet<Uuid> = snapshot.posts.iter().map(|post| post.id).collect();
    for post in &snapshot.posts {
        match read.get(&post.id) {
            None => found.add(Check::Posts, Kind::Missing, post.id, format!("post {:?} is not in the read model", post.title)),
            Some(row) if post_fields(row) != post_fields(post) => found.add(
                Check::Posts,
                Kind::Differing,
                post.id,
                format!("read model {:?} vs post-service {:?}", post_fields(row), post_fields(post)),
            ),
            Some(_) => {}
        }
    }
    for row in snapshot.read_posts.iter().filter(|row| !known.contains(&row.id)) {
        found.add(Check::Posts, Kind::Extra, row.id, format!("post {:?} is in the read model, not in post-service", row.title));
    }
}

fn awards(snapshot: &Snapshot, found: &mut Differences) {
    let mut entries: HashMap<Uuid, usize> = HashMap::new();
    for entry in &snapshot.entries {
        *entries.entry(entry.cause_event_id).or_default() += 1;
    }
    let mut causes = HashSet::new();
    for row in snapshot.post_outbox.iter().filter(|row| row.event_type == "PostCreated") {
        causes.insert(row.event_id);
        match entries.get(&row.event_id).copied().unwrap_or(0) {
            0 => found.add(Check::Awards, Kind::Missing, row.aggregate_id, format!("no points for PostCreated {}", row.event_id)),
            1 => {}
            n => found.add(Check::Awards, Kind::Twice, row.aggregate_id, format!("{n} awards for PostCreated {}", row.event_id)),
        }
    }
    for entry in snapshot.entries.iter().filter(|entry| !causes.contains(&entry.cause_event_id)) {
        found.add(Check::Awards, Kind::Extra, entry.id, format!("points for {} caused by no PostCreated", entry.user_id));
    }
}

/// Compares both outboxes with the topics; returns how many messages repeat
/// an event id seen before (information only).
fn outbox(snapshot: &Snapshot, messages: &[TopicMessage], found: &mut Differences) -> usize {
    let mut by_id: BTreeMap<Uuid, Vec<&TopicMessage>> = BTreeMap::new();
    for message in messages {
        by_id.entry(message.envelope.event_id).or_default().push(message);
    }
    let duplicated = by_id.values().map(|copies| copies.len() - 1).sum();
    let rows: Vec<&OutboxRow> = snapshot.auth_outbox.iter().chain(&snapshot.post_outbox).collect();
    let known: HashSet<Uuid> = rows.iter().map(|row| row.event_id).collect();
    for row in rows {
        let what = format!("{} v{} of {}", row.event_type, row.aggregate_version, row.aggregate_id);
        let Some(copies) = by_id.get(&row.event_id) else {
            if row.published {
                found.add(Check::Outbox, Kind::Missing, row.event_id, format!("{what}: marked published, not on {}", row.topic));
            } else {
                found.add(Check::Outbox, Kind::Unpublished, row.event_id, format!("{what}: not yet published"));
            }
            continue;
        };
        let expected: Option<Envelope> = serde_json::from_value(row.payload.0.clone()).ok();
        for copy in copies {
            let key = row.aggregate_id.to_string();
            if copy.topic != row.topic || copy.key.as_deref() != Some(key.as_str()) || expected.as_ref() != Some(&copy.envelope) {
                found.add(
                    Check::Outbox,
                    Kind::Differing,
                    row.event_id,
                    format!("{what}: the message at {}/{}@{} is not the outbox row", copy.topic, copy.partition, copy.offset),
                );
            }
        }
    }
    for (event_id, copies) in by_id.iter().filter(|(id, _)| !known.contains(id)) {
        let first = copies[0];
        found.add(
            Check::Outbox,
            Kind::Extra,
            event_id,
            format!("{} on {}/{}@{} is in no outbox", first.envelope.event_type, first.topic, first.partition, first.offset),
        );
    }
    duplicated
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::reconcile::load::{AccountRow, EntryRow, ReadUserRow, UserRow};

    fn user(id: Uuid) -> (UserRow, ReadUserRow, AccountRow) {
        (
            UserRow { id, username: "ada".into(), display_name: "Ada".into(), version: 1 },
            ReadUserRow {
                id,
                username: Some("ada".into()),
                display_name: Some("Ada".into()),
                profile_version: 1,
                points: 10,
                points_version: 1,
                post_count: 1,
            },
            AccountRow { user_id: id, total: 10, version: 1 },
        )
    }

    /// One user with one post, its award, and both outboxes on the topics.
    fn agreeing() -> Snapshot {
        let (author, post_id, created) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (user_row, read_user, account) = user(author);
        let post =
            PostRow { id: post_id, author_id: author, title: "t".into(), body: "b".into(), created_at: Utc::now(), version: 1 };
        let envelope = Envelope {
            event_id: created,
            event_type: "PostCreated".into(),
            event_version: 1,
            aggregate_id: post_id,
            aggregate_version: 1,
            occurred_at: Utc::now(),
            data: json!({ "post_id": post_id }),
        };
        let row = OutboxRow {
            event_id: created,
            topic: "agora.post.v1".into(),
            event_type: "PostCreated".into(),
            aggregate_id: post_id,
            aggregate_version: 1,
            payload: sqlx::types::Json(serde_json::to_value(&envelope).unwrap()),
            published: true,
        };
        let message =
            TopicMessage { topic: row.topic.clone(), partition: 0, offset: 0, key: Some(post_id.to_string()), envelope };
        Snapshot {
            users: vec![user_row],
            accounts: vec![account],
            entries: vec![EntryRow { id: 1, user_id: author, cause_event_id: created }],
            posts: vec![post.clone()],
            read_users: vec![read_user],
            read_posts: vec![post],
            post_outbox: vec![row],
            topics: Some(vec![message]),
            ..Snapshot::default()
        }
    }

    fn kinds(report: &Report) -> Vec<(Check, Kind)> {
        report.differences.iter().map(|d| (d.check, d.kind)).collect()
    }

    #[test]
    fn a_snapshot_that_agrees_has_no_difference() {
        let report = compare(&agreeing());
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.counts.topic_messages, 1);
    }

    #[test]
    fn a_duplicated_message_is_information_not_a_difference() {
        let mut snapshot = agreeing();
        let topics = snapshot.topics.as_mut().unwrap();
        let copy = TopicMessage { offset: 1, ..topics[0].clone() };
        topics.push(copy);
        let report = compare(&snapshot);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.counts.duplicated_in_topic, 1);
    }

    #[test]
    fn a_published_row_missing_from_its_topic_and_an_unpublished_one_are_reported() {
        let mut snapshot = agreeing();
        snapshot.topics = Some(Vec::new());
        let mut pending = snapshot.post_outbox[0].clone();
        pending.event_id = Uuid::now_v7();
        pending.published = false;
        snapshot.post_outbox.push(pending);
        let report = compare(&snapshot);
        // The second PostCreated also has no award.
        assert_eq!(
            kinds(&report),
            vec![(Check::Awards, Kind::Missing), (Check::Outbox, Kind::Missing), (Check::Outbox, Kind::Unpublished)]
        );
    }

    #[test]
    fn a_read_model_behind_the_ledger_and_the_posts_is_reported_per_check() {
        let mut snapshot = agreeing();
        snapshot.read_users[0].points = 0;
        snapshot.read_users[0].post_count = 0;
        snapshot.read_users[0].display_name = Some("Someone else".into());
        snapshot.read_posts.clear();
        let report = compare(&snapshot);
        assert_eq!(
            kinds(&report),
            vec![
                (Check::Users, Kind::Differing),
                (Check::Points, Kind::Differing),
                (Check::Posts, Kind::Missing),
                (Check::PostCounts, Kind::Differing),
            ]
        );
    }

    #[test]
    fn an_award_counted_twice_and_a_user_only_in_the_read_model_are_reported() {
        let mut snapshot = agreeing();
        let again = EntryRow { id: 2, ..snapshot.entries[0].clone() };
        snapshot.entries.push(again);
        let (_, stranger, _) = user(Uuid::now_v7());
        snapshot.read_users.push(ReadUserRow { username: Some("eve".into()), ..stranger });
        let report = compare(&snapshot);
        assert_eq!(kinds(&report), vec![(Check::Users, Kind::Extra), (Check::Awards, Kind::Twice)]);
    }
}
