//! The spectator registry of one session: who is watching.
//!
//! Copy-on-write behind `arc-swap`: listing and counting load the current
//! version without locking; adding and removing build a new version and
//! publish it with compare-and-swap, retrying on a concurrent change. A
//! version is a persistent hash map (`imbl`), so a new version shares all but
//! one path with the old one: an update costs O(log n), not a copy. Every
//! published version has a higher `version` number. The limit
//! (`max_spectators_per_session`) is checked inside the swap, so concurrent
//! joins can never exceed it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

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
}

impl Spectator {
    pub fn new(user_id: i32, username: &str) -> Self {
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
        }
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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this session already has its maximum of {max} spectators")]
pub struct RegistryFull {
    pub max: usize,
}

#[derive(Debug)]
pub struct SpectatorRegistry {
    current: ArcSwap<RegistryVersion>,
    max: usize,
}

impl SpectatorRegistry {
    pub fn new(max: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(RegistryVersion::default()),
            max,
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

    /// Adds a spectator unless the session is full; returns the new version.
    pub fn add(&self, spectator: Arc<Spectator>) -> Result<u64, RegistryFull> {
        self.update(|spectators| {
            if spectators.len() >= self.max {
                return Err(RegistryFull { max: self.max });
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
                spectator.removed.cancel();
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
            spectator.removed.cancel();
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
        let registry = SpectatorRegistry::new(2);
        let a = Arc::new(Spectator::new(1, "alice"));
        let b = Arc::new(Spectator::new(0, ""));
        assert_eq!(registry.add(Arc::clone(&a)), Ok(1));
        assert_eq!(registry.add(Arc::clone(&b)), Ok(2));
        assert_eq!(b.username, ANONYMOUS);
        assert_eq!(
            registry.add(Arc::new(Spectator::new(3, "carol"))),
            Err(RegistryFull { max: 2 })
        );
        assert!(registry.remove(&a.id));
        assert!(!registry.remove(&a.id));
        assert_eq!(registry.load().version, 3);
        assert_eq!(registry.remove_user(0), 1);
        assert!(registry.is_empty());
    }

    #[test]
    fn concurrent_adds_never_exceed_the_limit() {
        let registry = Arc::new(SpectatorRegistry::new(50));
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
    fn a_registration_binds_one_stream() {
        let s = Spectator::new(1, "a");
        assert!(s.bind());
        assert!(!s.bind());
    }
}
