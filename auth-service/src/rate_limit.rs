//! auth-service's budgets: what one client may cost it. Logins and
//! registrations each run argon2 (about 19 MiB and a core for a moment), so
//! they are counted per client address before any hashing, and hashing
//! itself runs at most a few at a time.
//!
//! Logins are throttled so that nobody can lock a named user out:
//! - attempts per (username, address) pair: one client guessing one
//!   account is slowed, and only that client;
//! - attempts per address, across usernames: one client guessing many
//!   accounts is slowed;
//! - failures per username, from anywhere, over a longer period: once
//!   spent, wrong passwords for that username are answered RATE_LIMITED, but
//!   a correct password still logs in (the owner is never locked out by
//!   what others sent). A guesser with many addresses is held to the
//!   per-pair pace on each.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::budget::{Budget, RetryAfter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many of each a client may spend; see the module.
#[derive(Debug, Clone, Copy)]
pub struct BudgetSettings {
    pub login_attempts_per_username_and_address: u32,
    pub login_attempts_per_address: u32,
    pub login_failures_per_username: u32,
    pub registrations_per_address: u32,
    pub hashing_concurrency: usize,
    pub hashing_wait: Duration,
}

pub struct Budgets {
    login_pairs: Budget<(String, IpAddr)>,
    login_addresses: Budget<IpAddr>,
    login_failures: Budget<String>,
    registrations: Budget<IpAddr>,
    hashing: Arc<Semaphore>,
    hashing_wait: Duration,
}

/// Which budget refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    LoginAttempts(RetryAfter),
    LoginFailures(RetryAfter),
    Registrations(RetryAfter),
    /// Every hashing slot stayed busy for the whole wait.
    Busy,
}

impl Refusal {
    pub fn retry_after(self) -> RetryAfter {
        match self {
            Refusal::LoginAttempts(retry) | Refusal::LoginFailures(retry) | Refusal::Registrations(retry) => retry,
            Refusal::Busy => RetryAfter(1),
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::LoginAttempts(_) => "too many login attempts",
            Refusal::LoginFailures(_) => "too many failed logins for this username",
            Refusal::Registrations(_) => "too many registrations from this address",
            Refusal::Busy => "the service is busy",
        }
    }
}

impl Budgets {
    pub fn new(settings: BudgetSettings) -> Self {
        Budgets {
            login_pairs: Budget::per_minute(settings.login_attempts_per_username_and_address),
            login_addresses: Budget::per_minute(settings.login_attempts_per_address),
            login_failures: Budget::per_hour(settings.login_failures_per_username),
            registrations: Budget::per_hour(settings.registrations_per_address),
            hashing: Arc::new(Semaphore::new(settings.hashing_concurrency.max(1))),
            hashing_wait: settings.hashing_wait,
        }
    }

    /// Counts a login attempt before its password is checked.
    pub fn login_attempt(&self, username: &str, address: IpAddr) -> Result<(), Refusal> {
        self.login_addresses.spend(&address).map_err(Refusal::LoginAttempts)?;
        self.login_pairs.spend(&(username.to_owned(), address)).map_err(Refusal::LoginAttempts)
    }

    /// Counts a wrong password for `username`; refused once the username's
    /// failures are spent (the answer is then RATE_LIMITED, not a hint).
    pub fn login_failed(&self, username: &str) -> Result<(), Refusal> {
        self.login_failures.spend(&username.to_owned()).map_err(Refusal::LoginFailures)
    }

    /// Counts a registration from `address`.
    pub fn registration(&self, address: IpAddr) -> Result<(), Refusal> {
        self.registrations.spend(&address).map_err(Refusal::Registrations)
    }

    /// A slot for one argon2 hash or verification, held while it runs.
    pub async fn hashing_slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        match tokio::time::timeout(self.hashing_wait, self.hashing.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("agora_auth_hashing_refused_total").increment(1);
                Err(Refusal::Busy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    fn budgets(pairs: u32, addresses: u32, failures: u32) -> Budgets {
        Budgets::new(BudgetSettings {
            login_attempts_per_username_and_address: pairs,
            login_attempts_per_address: addresses,
            login_failures_per_username: failures,
            registrations_per_address: 2,
            hashing_concurrency: 1,
            hashing_wait: Duration::from_millis(10),
        })
    }

    #[test]
    fn a_client_guessing_one_username_does_not_spend_another_clients_attempts() {
        let budgets = budgets(3, 100, 100);
        for _ in 0..3 {
            assert!(budgets.login_attempt("ada", ELSEWHERE).is_ok());
        }
        assert!(matches!(budgets.login_attempt("ada", ELSEWHERE), Err(Refusal::LoginAttempts(RetryAfter(1..)))));
        assert!(budgets.login_attempt("ada", HOME).is_ok(), "ada at home is not locked out");
        assert!(budgets.login_attempt("bob", ELSEWHERE).is_ok(), "another username is another pair");
    }

    #[test]
    fn a_client_guessing_many_usernames_spends_its_address_budget() {
        let budgets = budgets(100, 2, 100);
        assert!(budgets.login_attempt("a1", ELSEWHERE).is_ok());
        assert!(budgets.login_attempt("a2", ELSEWHERE).is_ok());
        assert!(budgets.login_attempt("a3", ELSEWHERE).is_err());
        assert!(budgets.login_attempt("a3", HOME).is_ok());
    }

    #[test]
    fn failures_per_username_are_counted_wherever_they_come_from() {
        let budgets = budgets(100, 100, 2);
        assert!(budgets.login_failed("ada").is_ok());
        assert!(budgets.login_failed("ada").is_ok());
        assert!(matches!(budgets.login_failed("ada"), Err(Refusal::LoginFailures(_))));
        assert!(budgets.login_failed("bob").is_ok());
    }

    #[test]
    fn registrations_are_counted_per_address() {
        let budgets = budgets(1, 1, 1);
        assert!(budgets.registration(ELSEWHERE).is_ok());
        assert!(budgets.registration(ELSEWHERE).is_ok());
        assert!(matches!(budgets.registration(ELSEWHERE), Err(Refusal::Registrations(_))));
        assert!(budgets.registration(HOME).is_ok());
    }

    #[tokio::test]
    async fn hashing_waits_only_so_long_for_a_free_slot() {
        let budgets = budgets(1, 1, 1);
        let held = budgets.hashing_slot().await.unwrap();
        assert_eq!(budgets.hashing_slot().await.unwrap_err(), Refusal::Busy);
        drop(held);
        assert!(budgets.hashing_slot().await.is_ok());
    }
}
