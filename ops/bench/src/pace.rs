//! Requests at a fixed rate, the way a steady stream of clients sends them:
//! one every 1/rate s, each in its own task, so that a slow answer does not
//! delay the next send (an open-loop generator). At most `in_flight`
//! requests wait for their answers at once; past that the rate drops, and
//! the achieved rate says so. Freshness and the mixed workload send their
//! commands this way.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How much was sent, and over how long (the last send, not the last answer).
pub struct Paced {
    pub sent: usize,
    pub sending_seconds: f64,
}

impl Paced {
    pub fn achieved_per_second(&self) -> f64 {
        self.sent as f64 / self.sending_seconds.max(1e-9)
    }
}

/// Calls `send(i)` for i = 0, 1, … at `rate` per second until `limit`
/// calls (if any) or until `stop` completes, then waits for every call to
/// finish.
pub async fn at_rate<F, Fut>(
    rate: f64,
    in_flight: u32,
    limit: Option<usize>,
    stop: impl Future<Output = ()>,
    mut send: F,
) -> anyhow::Result<Paced>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(in_flight as usize));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tokio::pin!(stop);
    let started = Instant::now();
    let mut sent = 0;
    while limit.is_none_or(|limit| sent < limit) {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = ticker.tick() => {}
        }
        let permit = permits.clone().acquire_owned().await?;
        let call = send(sent);
        tokio::spawn(async move {
            call.await;
            drop(permit);
        });
        sent += 1;
    }
    let sending_seconds = started.elapsed().as_secs_f64();
    let _ = permits.acquire_many(in_flight).await?;
    Ok(Paced { sent, sending_seconds })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn sends_as_many_as_the_limit_and_waits_for_every_answer() {
        let answered = Arc::new(AtomicUsize::new(0));
        let counter = answered.clone();
        let paced = at_rate(1_000.0, 4, Some(20), std::future::pending(), move |_| {
            let counter = counter.clone();
            async move {
                tokio::task::yield_now().await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .await
        .expect("the generator runs");
        assert_eq!(paced.sent, 20);
        assert_eq!(answered.load(Ordering::SeqCst), 20, "every call finished before it returned");
    }

    #[tokio::test]
    async fn stops_when_told() {
        let paced = at_rate(1_000.0, 4, None, std::future::ready(()), |_| async {}).await.expect("the generator runs");
        assert_eq!(paced.sent, 0);
    }
}
