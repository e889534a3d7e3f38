//! auth-service's backfill: a `UserRegistered` for every user with none in
//! the outbox, and a `PointsAwarded` with the account's total for every
//! points account with no award in the outbox (users and points imported by
//! SQL, or written before the outbox existed). The loop is the platform's
//! (`agora_platform::backfill`).
//!
//! A backfilled event carries the row's current state at its current
//! version: a user renamed by SQL before the backfill is registered with
//! today's name, and a later rename (the next version) wins over it in every
//! consumer, as any newer event does.

use agora_platform::backfill::{self, Report, Source};
use agora_platform::outbox;
use agora_platform::trace_context::TraceParent;
use agora_schema::{topics, Event, PointsAwarded, UserRegistered};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Why a backfilled points event exists (`PointsAwarded.reason`).
pub const REASON_BACKFILL: &str = "BACKFILL";

/// Emits the missing events of users, then of points accounts.
pub async fn run(pool: &PgPool, batch_size: i64) -> anyhow::Result<Report> {
    backfill::run(pool, &[&Users, &PointsAccounts], batch_size).await
}

struct Users;

#[async_trait::async_trait]
impl Source for Users {
    fn name(&self) -> &'static str {
        "users"
    }

    async fn emit(&self, tx: &mut Transaction<'_, Postgres>, limit: i64) -> sqlx::Result<u64> {
        let rows: Vec<(Uuid, String, String, i64, DateTime<Utc>)> = sqlx::query_as(
            "select u.id, u.username, u.display_name, u.version, u.created_at from app_user u
             where not exists (select 1 from outbox o where o.aggregate_id = u.id and o.event_type = 'UserRegistered')
             order by u.created_at, u.id limit $1 for update of u",
        )
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        for (user_id, username, display_name, version, registered_at) in &rows {
            let event = Event::UserRegistered(UserRegistered {
                user_id: *user_id,
                username: username.clone(),
                display_name: display_name.clone(),
                registered_at: *registered_at,
            });
            outbox::append(tx, topics::USER, &event.into_envelope(*version, *registered_at), &TraceParent::default()).await?;
        }
        Ok(rows.len() as u64)
    }
}

struct PointsAccounts;

#[async_trait::async_trait]
impl Source for PointsAccounts {
    fn name(&self) -> &'static str {
        "points accounts"
    }

    async fn emit(&self, tx: &mut Transaction<'_, Postgres>, limit: i64) -> sqlx::Result<u64> {
        let rows: Vec<(Uuid, i32, i64, DateTime<Utc>)> = sqlx::query_as(
            "select p.user_id, p.total, p.version, p.updated_at from points_account p
             where not exists (select 1 from outbox o where o.aggregate_id = p.user_id and o.event_type = 'PointsAwarded')
             order by p.user_id limit $1 for update of p",
        )
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        for (user_id, total, version, updated_at) in &rows {
            let event = Event::PointsAwarded(PointsAwarded {
                user_id: *user_id,
                delta: *total,
                total: *total,
                reason: REASON_BACKFILL.to_owned(),
                cause_event_id: Uuid::now_v7(),
                awarded_at: *updated_at,
            });
            outbox::append(tx, topics::POINTS, &event.into_envelope(*version, *updated_at), &TraceParent::default()).await?;
        }
        Ok(rows.len() as u64)
    }
}
