//! The outbox's backlog as metrics, measured in the database every
//! [`REFRESH`]: how many rows wait for the relay
//! (`agora_outbox_backlog_events`) and how long the oldest of them has
//! waited (`agora_outbox_oldest_unpublished_age_seconds`, 0 when none),
//! labelled with the relay's client id. Measured apart from the relay's
//! loop, so a relay that is stuck (the broker away, no leader) still shows
//! its backlog grow.

use std::convert::Infallible;
use std::time::Duration;

use sqlx::PgPool;

/// How often the backlog gauges are refreshed.
const REFRESH: Duration = Duration::from_secs(2);

/// Measures the backlog of the outbox in `pool` for ever.
pub(super) async fn watch(pool: &PgPool, relay: &str) -> Infallible {
    let labels = [("relay", relay.to_owned())];
    loop {
        let sampled: sqlx::Result<(i64, f64)> = sqlx::query_as(
            "select count(*), coalesce(extract(epoch from now() - min(created_at))::float8, 0)
             from outbox where published_at is null",
        )
        .fetch_one(pool)
        .await;
        match sampled {
            Ok((backlog, age)) => {
                metrics::gauge!("agora_outbox_backlog_events", &labels).set(backlog as f64);
                metrics::gauge!("agora_outbox_oldest_unpublished_age_seconds", &labels).set(age.max(0.0));
            }
            Err(error) => tracing::warn!(%relay, %error, "cannot measure the outbox backlog"),
        }
        tokio::time::sleep(REFRESH).await;
    }
}
