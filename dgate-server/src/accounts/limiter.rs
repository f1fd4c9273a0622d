//! The failed-login limit, shared by gRPC and SSH logins: failures counted in
//! a sliding one-minute window per name and per address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts failed logins in a sliding one-minute window per key (a username or
/// an address). Lookups and updates are O(failures in the window).
#[derive(Debug)]
pub struct LoginLimiter {
    per_minute: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute as usize,
            window: Duration::from_secs(60),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The keys a login attempt counts against: its name and its address.
    pub fn keys(username: &str, address: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("user:{}", username.to_ascii_lowercase())];
        if let Some(ip) = address {
            keys.push(format!("addr:{ip}"));
        }
        keys
    }

    /// When any key is over its limit: how long until it may try again.
    pub fn blocked(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|key| {
                let times = failures.get_mut(key)?;
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                (times.len() >= self.per_minute)
                    .then(|| {
                        times
                            .front()
                            .map(|t| self.window.saturating_sub(now.duration_since(*t)))
                    })
                    .flatten()
            })
            .max()
    }

    pub fn record_failure(&self, keys: &[String], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Forget keys whose window has passed, so the map cannot grow without bound.
        failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < self.window)
        });
        for key in keys {
            failures.entry(key.clone()).or_default().push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_trips_after_the_limit_and_recovers_after_a_minute() {
        let limiter = LoginLimiter::new(3);
        let keys = vec!["user:a".to_owned(), "addr:127.0.0.1".to_owned()];
        let start = Instant::now();
        for i in 0..3 {
            assert!(limiter.blocked(&keys, start).is_none(), "attempt {i}");
            limiter.record_failure(&keys, start);
        }
        let wait = limiter
            .blocked(&keys, start + Duration::from_secs(10))
            .expect("blocked");
        assert_eq!(wait, Duration::from_secs(50));
        // Another name from the same address is blocked too.
        let other = vec!["user:b".to_owned(), "addr:127.0.0.1".to_owned()];
        assert!(
            limiter
                .blocked(&other, start + Duration::from_secs(10))
                .is_some()
        );
        assert!(
            limiter
                .blocked(&keys, start + Duration::from_secs(61))
                .is_none()
        );
    }
}
