//! Connections that have not logged in yet, limited as OpenSSH's
//! `MaxStartups` does: in all (past `start`, a new one is dropped with a
//! probability rising from `rate`% to 100% at `full`) and per address
//! (`ssh.max_startups_per_address`). Trusted addresses are not counted.
//!
//! A [`Startup`] is held from the accept until the client logs in (or the
//! connection ends), so a crowd of handshakes that never finish cannot take
//! the server's room for people who do log in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::MaxStartups;
use crate::limits::{Trusted, address_key};

#[derive(Debug, Clone)]
pub struct Startups {
    limits: MaxStartups,
    per_address: usize,
    trusted: Trusted,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One connection not logged in yet; dropping it frees its place.
#[derive(Debug)]
pub struct Startup {
    counts: Arc<Mutex<Counts>>,
    /// `None` for a trusted address (not counted).
    key: Option<IpAddr>,
}

impl Startups {
    pub fn new(limits: MaxStartups, per_address: usize, trusted: Trusted) -> Self {
        Self {
            limits,
            per_address,
            trusted,
            counts: Arc::default(),
        }
    }

    /// A place for a new connection from `ip`, or `None` when it is dropped.
    /// `chance` is a random number in `0..100` (the early-drop draw).
    pub fn admit(&self, ip: IpAddr, chance: u8) -> Option<Startup> {
        if self.trusted.contains(ip) {
            return Some(Startup {
                counts: Arc::clone(&self.counts),
                key: None,
            });
        }
        let key = address_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.by_address.get(&key).copied().unwrap_or(0) >= self.per_address {
            return None;
        }
        if self.drops(counts.total, chance) {
            return None;
        }
        counts.total += 1;
        *counts.by_address.entry(key).or_insert(0) += 1;
        Some(Startup {
            counts: Arc::clone(&self.counts),
            key: Some(key),
        })
    }

    /// OpenSSH's random early drop for `total` connections already starting.
    fn drops(&self, total: usize, chance: u8) -> bool {
        let MaxStartups { start, rate, full } = self.limits;
        if total >= full {
            return true;
        }
        if total < start {
            return false;
        }
        // From `rate`% at `start` to 100% at `full`.
        let span = (full - start).max(1);
        let percent = usize::from(rate) + (100 - usize::from(rate)) * (total - start) / span;
        usize::from(chance) < percent
    }

    /// Connections not logged in yet, from untrusted addresses.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.by_address.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                counts.by_address.remove(&key);
            }
        }
    }
}

/// A random number in `0..100` for the early-drop draw.
pub fn chance() -> u8 {
    let mut byte = [0u8; 1];
    match getrandom::fill(&mut byte) {
        Ok(()) => byte[0] % 100,
        // No randomness: drop as if the draw was the worst.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startups(start: usize, rate: u8, full: usize, per_address: usize) -> Startups {
        Startups::new(
            MaxStartups { start, rate, full },
            per_address,
            Trusted::new(&[IpAddr::from([127, 0, 0, 1])]),
        )
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let startups = startups(100, 30, 200, 3);
        let ip = IpAddr::from([10, 0, 0, 2]);
        let held: Vec<_> = (0..3).map(|_| startups.admit(ip, 99)).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(startups.admit(ip, 99).is_none());
        assert!(startups.admit(IpAddr::from([10, 0, 0, 3]), 99).is_some());
        drop(held);
        assert!(startups.admit(ip, 99).is_some(), "places come back");
    }

    #[test]
    fn past_start_drops_are_random_and_past_full_certain() {
        let startups = startups(2, 30, 4, 100);
        let a = IpAddr::from([10, 0, 0, 2]);
        let _first = startups.admit(a, 0).expect("below start: always");
        let _second = startups.admit(a, 0).expect("below start: always");
        // At start: 30% drop. A draw of 29 drops, 30 passes.
        assert!(startups.admit(a, 29).is_none());
        let _third = startups.admit(a, 30).expect("the draw passed");
        // Halfway to full: 65%.
        assert!(startups.admit(a, 64).is_none());
        let _fourth = startups.admit(a, 65).expect("the draw passed");
        // Full: always dropped.
        assert!(startups.admit(a, 99).is_none());
        assert_eq!(startups.total(), 4);
    }

    #[test]
    fn trusted_addresses_are_not_counted() {
        let startups = startups(1, 100, 1, 1);
        let local = IpAddr::from([127, 0, 0, 1]);
        let held: Vec<_> = (0..50).map(|_| startups.admit(local, 0)).collect();
        assert!(held.iter().all(Option::is_some));
        assert_eq!(startups.total(), 0);
    }
}
