//! What the composition asks auth-service, which owns users: by id, by
//! username, and by points.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::CompositionSource;
use crate::records::UserRecord;
use crate::sources::SourceResult;
use crate::upstream::Service;

const USER_FIELDS: &str = "fragment UserFields on User { id username displayName points createdAt }";

/// A user as auth-service answers it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: Uuid,
    username: String,
    display_name: String,
    points: i32,
    created_at: DateTime<Utc>,
}

impl From<User> for UserRecord {
    fn from(user: User) -> Self {
        UserRecord {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            points: user.points,
            // post-service counts posts; the resolver asks it when a query wants the count.
            post_count: None,
            created_at: user.created_at,
        }
    }
}

impl CompositionSource {
    pub(super) async fn auth_users(&self, ids: &[Uuid]) -> SourceResult<Vec<UserRecord>> {
        let query = format!("query($ids: [ID!]!) {{ users(ids: $ids) {{ ...UserFields }} }} {USER_FIELDS}");
        let users: Vec<Option<User>> = self.fetch(Service::Auth, &query, json!({ "ids": ids }), "users").await?;
        Ok(users.into_iter().flatten().map(UserRecord::from).collect())
    }

    pub(super) async fn auth_user_by_username(&self, username: &str) -> SourceResult<Option<UserRecord>> {
        let query =
            format!("query($username: String!) {{ userByUsername(username: $username) {{ ...UserFields }} }} {USER_FIELDS}");
        let user: Option<User> = self.fetch(Service::Auth, &query, json!({ "username": username }), "userByUsername").await?;
        Ok(user.map(UserRecord::from))
    }

    pub(super) async fn auth_leaderboard(&self, first: i64) -> SourceResult<Vec<UserRecord>> {
        let query = format!("query($first: Int!) {{ leaderboard(first: $first) {{ ...UserFields }} }} {USER_FIELDS}");
        let users: Vec<User> = self.fetch(Service::Auth, &query, json!({ "first": first }), "leaderboard").await?;
        Ok(users.into_iter().map(UserRecord::from).collect())
    }
}
