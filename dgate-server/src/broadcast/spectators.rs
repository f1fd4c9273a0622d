//! The spectator registry of one session: who is watching.
//!
//! Copy-on-write behind `arc-swap`: listing and counting load the current
//! version without locking; adding and removing build a new version and
//! publish it with compare-and-swap, retrying on a concurrent change. A
//! version is a persistent hash map (`imbl`), so a new version shares all but
//! one path with the old one: an update costs O(log n), not a copy. Every
//! published version has a higher `version` number. The limits
//! (`max_spectators_per_session`, and `max_spectators_per_address` for
//! spectators with a counted address) are checked inside the swap, so
//! concurrent joins can never exceed them.
//!
//! A spectator's id is its registration's credential: it is given only to
//! whoever registered, and never listed.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::limits::AddressSlot;

/// The name shown for a viewer without an account.
pub const ANONYMOUS: &str = "Anonymous";

/// One registered spectator.
#[derive(Debug)]
pub struct Spectator {
    pub id: String,
    /// 0 for an anonymous viewer.
    pub user_id: i32,
    pub username: String,
    pub joined_at: SystemTime,
    /// True while a stream is bound to this registration (at most one is).
    pub connected: AtomicBool,
    /// Cancelled when the registration is removed: its stream ends.
    pub removed: CancellationToken,
    /// Where it watches from, as counted by the per-address limits; `None`
    /// for a trusted or unknown address (not counted).
    pub address: Option<IpAddr>,
    /// Its place in the server-wide per-address limit, given back when the
    /// registration is removed.
    slot: Mutex<Option<AddressSlot>>,
}

impl Spectator {
    pub fn new(user_id: i32, username: &str) -> Self {
        Self::from_address(user_id, username, None, None)
    }

    /// A spectator watching from `address` (already an address key), holding
    /// `slot` while registered.
    pub fn from_address(
        user_id: i32,
        username: &str,
        address: Option<IpAddr>,
        slot: Option<AddressSlot>,
    ) -> Self {
        let username = if username.is_empty() {
            ANONYMOUS
        } else {
            username
        };
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id,
            username: username.to_owned(),
            joined_at: SystemTime::now(),
            connected: AtomicBool::new(false),
            removed: CancellationToken::new(),
            address,
            slot: Mutex::new(slot),
        }
    }

    /// Registration over: its stream ends and its address slot is free.
    fn end(&self) {
        self.removed.cancel();
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Claims the registration for a stream; false when one is bound already.
    pub fn bind(&self) -> bool {
        !self.connected.swap(true, Ordering::AcqRel)
    }
}

/// One immutable version of the registry.
#[derive(Debug, Default)]
pub struct RegistryVersion {
    pub version: u64,
    /// By spectator id.
    pub spectators: imbl::HashMap<String, Arc<Spectator>>,
}

impl RegistryVersion {
    /// The spectators, earliest first.
    pub fn in_join_order(&self) -> Vec<Arc<Spectator>> {
        let mut list: Vec<_> = self.spectators.values().cloned().collect();
        list.sort_by(|a, b| a.joined_at.cmp(&b.joined_at).then_with(|| a.id.cmp(&b.id)));
        list
    }

    /// Who watches, as every front end shows it: the logged-in spectators'
    /// names in the order they came, and how many watch anonymously.
    pub fn audience(&self) -> (Vec<String>, usize) {
        let mut names = Vec::new();
        let mut anonymous = 0;
        for spectator in self.in_join_order() {
            if spectator.user_id == 0 {
                anonymous += 1;
            } else {
                names.push(spectator.username.clone());
            }
        }
        (names, anonymous)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryFull {
    #[error("this session already has its maximum of {max} spectators")]
    Session { max: usize },
    #[error("at most {max} spectators of one game may watch from one address")]
    Address { max: usize },
}

#[derive(Debug)]
pub struct SpectatorRegistry {
    current: ArcSwap<RegistryVersion>,
    max: usize,
    max_per_address: usize,
}

impl SpectatorRegistry {
    pub fn new(max: usize, max_per_address: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(RegistryVersion::default()),
            max,
            max_per_address,
        }
    }

    /// The current version; never locks.
    pub fn load(&self) -> Arc<RegistryVersion> {
        self.current.load_full()
    }

    pub fn len(&self) -> usize {
        self.current.load().spectators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: &str) -> Option<Arc<Spectator>> {
        self.current.load().spectators.get(id).cloned()
    }

    /// Adds a spectator unless the session, or its share for the
    /// spectator's address, is full; returns the new version.
    pub fn add(&self, spectator: Arc<Spectator>) -> Result<u64, RegistryFull> {
        self.update(|spectators| {
            if spectators.len() >= self.max {
                return Err(RegistryFull::Session { max: self.max });
            }
            if let Some(address) = spectator.address {
                let from_there = spectators
                    .values()
                    .filter(|s| s.address == Some(address))
                    .count();
                if from_there >= self.max_per_address {
                    return Err(RegistryFull::Address {
                        max: self.max_per_address,
                    });
                }
            }
            spectators.insert(spectator.id.clone(), Arc::clone(&spectator));
            Ok(())
        })
    }

    /// Removes the registration `id`; true when it was there.
    pub fn remove(&self, id: &str) -> bool {
        let mut removed = None;
        let result = self.update(|spectators| {
            removed = spectators.remove(id);
            if removed.is_some() { Ok(()) } else { Err(()) }
        });
        match (result, removed) {
            (Ok(_), Some(spectator)) => {
                spectator.end();
                true
            }
            _ => false,
        }
    }

    /// Removes every registration of `user_id`; returns how many.
    pub fn remove_user(&self, user_id: i32) -> usize {
        self.remove_where(|s| s.user_id == user_id)
    }

    /// Removes the matching registrations and ends their streams.
    fn remove_where(&self, doomed: impl Fn(&Spectator) -> bool) -> usize {
        let mut removed = Vec::new();
        let result = self.update(|spectators| {
            removed = spectators.values().filter(|s| doomed(s)).cloned().collect();
            if removed.is_empty() {
                return Err(());
            }
            spectators.retain(|_, s| !doomed(s));
            Ok(())
        });
        if result.is_err() {
            return 0;
        }
        for spectator in &removed {
            spectator.end();
        }
        removed.len()
    }

    /// Applies `change` to a copy of the current list and publishes it, retrying
    /// when another writer got there first. `change` returning an error publishes
    /// nothing.
    fn update<E>(
        &self,
        mut change: impl FnMut(&mut imbl::HashMap<String, Arc<Spectator>>) -> Result<(), E>,
    ) -> Result<u64, E> {
        loop {
            let current = self.current.load_full();
            let mut spectators = current.spectators.clone();
            change(&mut spectators)?;
            let next = Arc::new(RegistryVersion {
                version: current.version + 1,
                spectators,
            });
            let version = next.version;
            let previous = self.current.compare_and_swap(&current, next);
            if Arc::ptr_eq(&previous, &current) {
                return Ok(version);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_and_versions() {
        let registry = SpectatorRegistry::new(2, 2);
        let a = Arc::new(Spectator::new(1, "alice"));
        let b = Arc::new(Spectator::new(0, ""));
        assert_eq!(registry.add(Arc::clone(&a)), Ok(1));
        assert_eq!(registry.add(Arc::clone(&b)), Ok(2));
        assert_eq!(b.username, ANONYMOUS);
        assert_eq!(
            registry.add(Arc::new(Spectator::new(3, "carol"))),
            Err(RegistryFull::Session { max: 2 })
        );
        assert!(registry.remove(&a.id));
        assert!(!registry.remove(&a.id));
        assert_eq!(registry.load().version, 3);
        assert_eq!(registry.remove_user(0), 1);
        assert!(registry.is_empty());
    }

    #[test]
    fn concurrent_adds_never_exceed_the_limit() {
        let registry = Arc::new(SpectatorRegistry::new(50, 50));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let registry = Arc::clone(&registry);
                std::thread::spawn(move || {
                    (0..20)
                        .filter(|i| {
                            registry
                                .add(Arc::new(Spectator::new(t * 100 + i, "x")))
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let added: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(added, 50);
        assert_eq!(registry.len(), 50);
        assert_eq!(registry.load().version, 50);
    }

    #[test]
    fn one_address_gets_its_share_of_a_game() {
        let registry = SpectatorRegistry::new(10, 2);
        let here = Some(IpAddr::from([10, 0, 0, 2]));
        let there = Some(IpAddr::from([10, 0, 0, 3]));
        let from = |address| Arc::new(Spectator::from_address(0, "", address, None));
        assert!(registry.add(from(here)).is_ok());
        assert!(registry.add(from(here)).is_ok());
        assert_eq!(
            registry.add(from(here)),
            Err(RegistryFull::Address { max: 2 })
        );
        assert!(registry.add(from(there)).is_ok(), "another address");
        assert!(registry.add(from(None)).is_ok(), "not counted");
    }

    #[test]
    fn a_registration_binds_one_stream() {
        let s = Spectator::new(1, "a");
        assert!(s.bind());
        assert!(!s.bind());
    }
}
