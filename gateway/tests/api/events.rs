//! Events written by hand, as the services would publish them.

use agora_platform::kafka::KafkaSettings;
use agora_schema::{Envelope, Event, PointsAwarded, PostCreated, UserRegistered, UserRenamed};
use agora_testkit::Publisher;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

pub fn registered(user_id: Uuid, username: &str) -> Envelope {
    Event::UserRegistered(UserRegistered {
        user_id,
        username: username.into(),
        display_name: username.into(),
        registered_at: now(),
    })
    .into_envelope(1, now())
}

pub fn renamed(user_id: Uuid, display_name: &str, version: i64) -> Envelope {
    Event::UserRenamed(UserRenamed { user_id, display_name: display_name.into(), renamed_at: now() })
        .into_envelope(version, now())
}

pub fn post(author_id: Uuid, title: &str) -> Envelope {
    Event::PostCreated(PostCreated {
        post_id: Uuid::now_v7(),
        author_id,
        title: title.into(),
        body: "body".into(),
        created_at: now(),
    })
    .into_envelope(1, now())
}

pub fn points(user_id: Uuid, total: i32, version: i64) -> Envelope {
    Event::PointsAwarded(PointsAwarded {
        user_id,
        delta: 10,
        total,
        reason: "POST_CREATED".into(),
        cause_event_id: Uuid::now_v7(),
        awarded_at: now(),
    })
    .into_envelope(version, now())
}

/// A new user and `count` posts of theirs with bodies of `body_length`
/// characters, published as fast as the broker takes them; the count.
pub async fn flood_of_posts(kafka: &KafkaSettings, count: usize, body_length: usize) -> usize {
    let author = Uuid::now_v7();
    let publisher = Publisher::new(kafka);
    publisher.publish_event(&registered(author, "prolific")).await;
    let body = "x".repeat(body_length);
    for n in 0..count {
        let event = Event::PostCreated(PostCreated {
            post_id: Uuid::now_v7(),
            author_id: author,
            title: format!("post {n}"),
            body: body.clone(),
            created_at: now(),
        });
        publisher.publish_event(&event.into_envelope(1, now())).await;
    }
    count
}
