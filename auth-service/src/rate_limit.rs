//! Login throttling per username and per client address, so that guessing
//! passwords is slow whether one account or many are tried.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct LoginLimiter {
    per_username: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

/// How long to wait before the next attempt may succeed.
#[derive(Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl LoginLimiter {
    /// Attempts allowed per minute, for each username and each address.
    pub fn new(per_username: u32, per_address: u32) -> Self {
        let quota = |per_minute: u32| Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("at least one"));
        LoginLimiter {
            per_username: RateLimiter::keyed(quota(per_username)),
            per_address: RateLimiter::keyed(quota(per_address)),
        }
    }

    /// Counts an attempt; refuses it when either budget is spent.
    pub fn check(&self, username: &str, address: IpAddr) -> Result<(), RetryAfter> {
        let now = DefaultClock::default().now();
        let retry_after = |not_until: governor::NotUntil<_>| RetryAfter(not_until.wait_time_from(now).as_secs().max(1));
        self.per_address.check_key(&address).map_err(retry_after)?;
        self.per_username.check_key(&username.to_owned()).map_err(retry_after)?;
        // Forget keys whose budget is whole again, so memory stays bounded.
        if self.per_username.len() > 10_000 || self.per_address.len() > 10_000 {
            self.per_username.retain_recent();
            self.per_address.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn refuses_attempts_on_one_username_past_its_budget() {
        let limiter = LoginLimiter::new(3, 100);
        for _ in 0..3 {
            assert!(limiter.check("ada", HOME).is_ok());
        }
        assert!(limiter.check("ada", HOME).unwrap_err().0 >= 1);
        assert!(limiter.check("bob", HOME).is_ok(), "another username has its own budget");
    }

    #[test]
    fn refuses_attempts_from_one_address_across_usernames() {
        let limiter = LoginLimiter::new(100, 2);
        assert!(limiter.check("a1", HOME).is_ok());
        assert!(limiter.check("a2", HOME).is_ok());
        assert!(limiter.check("a3", HOME).is_err());
        assert!(limiter.check("a3", "10.0.0.9".parse().unwrap()).is_ok());
    }
}
