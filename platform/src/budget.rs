//! Budgets: how many times per period one client (an address, a user, a
//! pair of them) may do something costly, as a GCRA rate limiter per key
//! (`governor`), and the RATE_LIMITED answer a spent budget gets: with
//! `extensions.retryAfter` (whole seconds) and, over HTTP, `Retry-After`.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use async_graphql::ErrorExtensions;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::errors::ErrorCode;

/// How long a client must wait before the budget allows it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter(pub u64);

/// A budget of `amount` per `period` for each key, spent evenly (a burst of
/// the whole amount, then one more every `period / amount`). An amount of 0
/// means no limit.
pub struct Budget<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
}

/// Keys remembered before those whose budget is whole again are forgotten.
const RETAIN_AT: usize = 10_000;

impl<K: Hash + Eq + Clone> Budget<K> {
    pub fn new(amount: u32, period: Duration) -> Self {
        let limiter = NonZeroU32::new(amount).map(|amount| {
            let quota = Quota::with_period(period / amount.get()).expect("a budget's period is not zero").allow_burst(amount);
            RateLimiter::keyed(quota)
        });
        Budget { limiter }
    }

    pub fn per_minute(amount: u32) -> Self {
        Self::new(amount, Duration::from_secs(60))
    }

    pub fn per_hour(amount: u32) -> Self {
        Self::new(amount, Duration::from_secs(3600))
    }

    /// Spends one unit of `key`'s budget, or says how long to wait.
    pub fn spend(&self, key: &K) -> Result<(), RetryAfter> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let result = limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Rounded up: a client that waits as told is let in.
            RetryAfter(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(RetryAfter(1))
        });
        if limiter.len() > RETAIN_AT {
            limiter.retain_recent();
        }
        result
    }
}

/// A RATE_LIMITED error saying when to come back.
pub fn rate_limited(message: impl Into<String>, retry_after: RetryAfter) -> async_graphql::Error {
    ErrorCode::RateLimited.error(message).extend_with(|_, extensions| extensions.set("retryAfter", retry_after.0))
}

/// The longest `retryAfter` among a response's RATE_LIMITED errors: the
/// value of its `Retry-After` header over HTTP.
pub fn retry_after_of(errors: &[async_graphql::ServerError]) -> Option<u64> {
    errors
        .iter()
        .filter_map(|error| {
            let extensions = error.extensions.as_ref()?;
            let coded = matches!(extensions.get("code"), Some(async_graphql::Value::String(code)) if code == ErrorCode::RateLimited.as_str());
            match extensions.get("retryAfter") {
                Some(async_graphql::Value::Number(seconds)) if coded => seconds.as_u64(),
                _ => None,
            }
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_may_spend_its_whole_budget_at_once_then_waits() {
        let budget = Budget::per_minute(3);
        for _ in 0..3 {
            assert!(budget.spend(&"ada").is_ok());
        }
        let RetryAfter(seconds) = budget.spend(&"ada").unwrap_err();
        assert!((1..=20).contains(&seconds), "one unit comes back every 20 s: {seconds}");
        assert!(budget.spend(&"bob").is_ok(), "each key has a budget of its own");
    }

    #[test]
    fn a_budget_of_zero_is_no_limit() {
        let budget = Budget::per_hour(0);
        for _ in 0..10_000 {
            assert!(budget.spend(&1).is_ok());
        }
    }

    #[test]
    fn the_retry_after_of_a_response_is_its_longest_rate_limited_wait() {
        let error = |code: ErrorCode, seconds: u64| {
            code.error("x")
                .extend_with(|_, extensions| extensions.set("retryAfter", seconds))
                .into_server_error(Default::default())
        };
        let errors = vec![error(ErrorCode::RateLimited, 3), error(ErrorCode::RateLimited, 9), error(ErrorCode::Conflict, 99)];
        assert_eq!(retry_after_of(&errors), Some(9));
        assert_eq!(retry_after_of(&errors[2..]), None);
    }
}
