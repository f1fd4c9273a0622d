//! The limits on password guessing and on registrations, shared by gRPC and
//! SSH, counted in sliding windows.
//!
//! A login attempt takes its place **before** the password is hashed
//! ([`LoginLimiter::begin`]), so a burst of concurrent guesses cannot get
//! more checks than the limit; a correct password gives the place back.
//! What is limited, per minute:
//! - failures per (name, address): `accounts.failed_logins_per_minute`;
//! - failures per address, whatever the names: `failed_logins_per_address_per_minute`;
//! - failures per name from every address are never refused (that would let
//!   a stranger lock the owner out) but slow each further attempt at that
//!   name down by [`THROTTLE_DELAY`].
//!
//! Registrations are limited per address per hour
//! (`accounts.registrations_per_address_per_hour`), again counted before
//! the password is hashed. Addresses are counted by [`address_key`] (IPv6
//! by /64); these limits apply to trusted addresses too.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::AccountsConfig;
use crate::limits::address_key;

/// How much an attempt at a name under attack waits before it is checked.
pub const THROTTLE_DELAY: Duration = Duration::from_secs(2);
/// Failures of one name (from anywhere) in a minute past which its attempts
/// are slowed down, as a multiple of the per-(name, address) limit.
const THROTTLE_AFTER_MULTIPLE: usize = 2;

/// Events counted per key in a sliding window.
#[derive(Debug)]
struct Windows {
    window: Duration,
    events: HashMap<Key, VecDeque<Instant>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    NameAddress(String, IpAddr),
    Address(IpAddr),
    Name(String),
    Registration(IpAddr),
}

impl Windows {
    fn new(window: Duration) -> Self {
        Self {
            window,
            events: HashMap::new(),
        }
    }

    /// Events of `key` in the window ending `now`, after forgetting older ones.
    fn count(&mut self, key: &Key, now: Instant) -> usize {
        let window = self.window;
        let Some(times) = self.events.get_mut(key) else {
            return 0;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            times.pop_front();
        }
        times.len()
    }

    /// How long until `key` has fewer than `limit` events, if it has `limit` now.
    fn over(&mut self, key: &Key, limit: usize, now: Instant) -> Option<Duration> {
        if limit == 0 {
            return Some(self.window);
        }
        if self.count(key, now) < limit {
            return None;
        }
        let times = self.events.get(key)?;
        // The oldest event that must expire for the count to drop below `limit`.
        let oldest = times.get(times.len() - limit)?;
        Some(self.window.saturating_sub(now.duration_since(*oldest)))
    }

    fn add(&mut self, key: Key, now: Instant) {
        if self.events.len() > 10_000 {
            // Forget keys whose window has passed, so the map cannot grow without bound.
            let window = self.window;
            self.events.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        self.events.entry(key).or_default().push_back(now);
    }

    /// Takes back the event `add(key, at)` recorded.
    fn remove(&mut self, key: &Key, at: Instant) {
        if let Some(times) = self.events.get_mut(key)
            && let Some(i) = times.iter().rposition(|t| *t == at)
        {
            times.remove(i);
        }
    }
}

/// Why an attempt is refused before any password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When the caller may try again.
    pub retry_after: Duration,
}

#[derive(Debug)]
pub struct LoginLimiter {
    per_name_address: usize,
    per_address: usize,
    registrations_per_hour: usize,
    logins: Mutex<Windows>,
    registrations: Mutex<Windows>,
}

/// A login attempt's reserved place: counted as a failure unless
/// [`LoginAttempt::succeeded`] gives it back.
#[derive(Debug)]
pub struct LoginAttempt {
    limiter: Arc<LoginLimiter>,
    keys: Vec<Key>,
    at: Instant,
    /// How long to wait before checking the password (a name under attack).
    pub delay: Duration,
}

impl LoginLimiter {
    pub fn new(config: &AccountsConfig) -> Self {
        Self {
            per_name_address: config.failed_logins_per_minute.max(1) as usize,
            per_address: config.failed_logins_per_address_per_minute.max(1) as usize,
            registrations_per_hour: config.registrations_per_address_per_hour as usize,
            logins: Mutex::new(Windows::new(Duration::from_secs(60))),
            registrations: Mutex::new(Windows::new(Duration::from_secs(3600))),
        }
    }

    /// Takes a place for one password check of `username` from `address`,
    /// or says how long to wait. The place counts as a failure until the
    /// attempt [`succeeded`](LoginAttempt::succeeded).
    pub fn begin(
        self: &Arc<Self>,
        username: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<LoginAttempt, Refused> {
        let name = username.to_ascii_lowercase();
        let mut keys = vec![Key::Name(name.clone())];
        let limits = self.limits(&name, address);
        let mut windows = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(refused) = refusal(&mut windows, &limits, now) {
            return Err(refused);
        }
        let under_attack =
            windows.count(&Key::Name(name), now) >= self.per_name_address * THROTTLE_AFTER_MULTIPLE;
        keys.extend(limits.into_iter().map(|(key, _)| key));
        for key in &keys {
            windows.add(key.clone(), now);
        }
        Ok(LoginAttempt {
            limiter: Arc::clone(self),
            keys,
            at: now,
            delay: if under_attack {
                THROTTLE_DELAY
            } else {
                Duration::ZERO
            },
        })
    }

    /// What [`LoginLimiter::begin`] would refuse now, without taking a place
    /// (so that a front end can say why before asking for a password).
    pub fn refusal(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Option<Refused> {
        let limits = self.limits(&username.to_ascii_lowercase(), address);
        let mut windows = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        refusal(&mut windows, &limits, now)
    }

    /// The limited keys of an attempt at `name` (lowercase) from `address`.
    fn limits(&self, name: &str, address: Option<IpAddr>) -> Vec<(Key, usize)> {
        match address.map(address_key) {
            Some(ip) => vec![
                (Key::NameAddress(name.to_owned(), ip), self.per_name_address),
                (Key::Address(ip), self.per_address),
            ],
            // No address (not over TCP): the name alone.
            None => vec![(
                Key::NameAddress(name.to_owned(), IpAddr::from([0u8; 4])),
                self.per_name_address,
            )],
        }
    }

    /// Takes a place for one registration from `address`, or says how long
    /// to wait. A registration that fails (a taken name) keeps its place.
    pub fn begin_registration(&self, address: Option<IpAddr>, now: Instant) -> Result<(), Refused> {
        let Some(ip) = address.map(address_key) else {
            return Ok(());
        };
        let key = Key::Registration(ip);
        let mut windows = self.registrations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(retry_after) = windows.over(&key, self.registrations_per_hour, now) {
            return Err(Refused { retry_after });
        }
        windows.add(key, now);
        Ok(())
    }
}

/// The longest wait among `limits` that are reached at `now`.
fn refusal(windows: &mut Windows, limits: &[(Key, usize)], now: Instant) -> Option<Refused> {
    limits
        .iter()
        .filter_map(|(key, limit)| windows.over(key, *limit, now))
        .max()
        .map(|retry_after| Refused { retry_after })
}

impl LoginAttempt {
    /// The password was right: the reserved place is given back.
    pub fn succeeded(self) {
        let mut windows = self
            .limiter
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            windows.remove(key, self.at);
        }
    }

    /// The password was wrong: the place stays counted.
    pub fn failed(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, per_address: u32) -> Arc<LoginLimiter> {
        Arc::new(LoginLimiter::new(&AccountsConfig {
            failed_logins_per_minute: per_minute,
            failed_logins_per_address_per_minute: per_address,
            registrations_per_address_per_hour: 2,
            ..AccountsConfig::default()
        }))
    }

    #[test]
    fn concurrent_attempts_cannot_exceed_the_limit() {
        let limiter = limiter(3, 100);
        let ip = Some(IpAddr::from([10, 0, 0, 2]));
        let now = Instant::now();
        // Places are taken before any answer is known.
        let attempts: Vec<_> = (0..10).map(|_| limiter.begin("alice", ip, now)).collect();
        assert_eq!(attempts.iter().filter(|a| a.is_ok()).count(), 3);
        let refused = attempts
            .iter()
            .find_map(|a| a.as_ref().err())
            .expect("refused");
        assert_eq!(refused.retry_after, Duration::from_secs(60));
    }

    #[test]
    fn a_right_password_gives_its_place_back() {
        let limiter = limiter(2, 100);
        let ip = Some(IpAddr::from([10, 0, 0, 2]));
        let now = Instant::now();
        for _ in 0..5 {
            limiter.begin("alice", ip, now).expect("place").succeeded();
        }
        limiter.begin("alice", ip, now).expect("place").failed();
        limiter.begin("alice", ip, now).expect("place").failed();
        assert!(limiter.begin("alice", ip, now).is_err());
        assert!(
            limiter
                .begin("alice", ip, now + Duration::from_secs(61))
                .is_ok(),
            "the window slides"
        );
    }

    #[test]
    fn asking_whether_a_login_would_be_refused_takes_no_place() {
        let limiter = limiter(2, 100);
        let ip = Some(IpAddr::from([10, 0, 0, 2]));
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.refusal("Alice", ip, now), None);
        }
        limiter.begin("alice", ip, now).expect("place").failed();
        let later = now + Duration::from_secs(20);
        limiter.begin("alice", ip, later).expect("place").failed();
        // Refused until the first failure leaves the window, as `begin` says.
        let refused = limiter.refusal("ALICE", ip, later).expect("refused");
        assert_eq!(refused.retry_after, Duration::from_secs(40));
        assert_eq!(limiter.begin("alice", ip, later).err(), Some(refused));
        assert_eq!(limiter.refusal("bob", ip, later), None);
        assert_eq!(
            limiter.refusal("alice", ip, now + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn guessing_from_one_address_never_locks_the_owner_out_of_another() {
        let limiter = limiter(5, 100);
        let stranger = Some(IpAddr::from([10, 0, 0, 2]));
        let owner = Some(IpAddr::from([10, 0, 0, 3]));
        let now = Instant::now();
        for _ in 0..5 {
            limiter
                .begin("alice", stranger, now)
                .expect("place")
                .failed();
        }
        assert!(limiter.begin("alice", stranger, now).is_err());
        let attempt = limiter
            .begin("alice", owner, now)
            .expect("the owner may try");
        assert_eq!(attempt.delay, Duration::ZERO);
        // Many strangers: the name is slowed down, never refused.
        for n in 4..=10u8 {
            for _ in 0..5 {
                let _ = limiter.begin("alice", Some(IpAddr::from([10, 0, 0, n])), now);
            }
        }
        let attempt = limiter
            .begin("alice", owner, now)
            .expect("still not refused");
        assert_eq!(attempt.delay, THROTTLE_DELAY);
    }

    #[test]
    fn one_address_guessing_many_names_is_limited() {
        let limiter = limiter(5, 8);
        let ip = Some(IpAddr::from([10, 0, 0, 2]));
        let now = Instant::now();
        let allowed = (0..20)
            .filter_map(|i| limiter.begin(&format!("user{i}"), ip, now).ok())
            .count();
        assert_eq!(allowed, 8);
    }

    #[test]
    fn registrations_are_limited_per_address_per_hour() {
        let limiter = limiter(5, 8);
        let ip = Some(IpAddr::from([10, 0, 0, 2]));
        let now = Instant::now();
        assert!(limiter.begin_registration(ip, now).is_ok());
        assert!(limiter.begin_registration(ip, now).is_ok());
        let refused = limiter.begin_registration(ip, now).expect_err("third");
        assert_eq!(refused.retry_after, Duration::from_secs(3600));
        assert!(
            limiter
                .begin_registration(Some(IpAddr::from([10, 0, 0, 3])), now)
                .is_ok()
        );
        assert!(
            limiter
                .begin_registration(ip, now + Duration::from_secs(3601))
                .is_ok()
        );
    }
}
