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
//!
//! On a node of a cluster a registry also holds spectators of other nodes
//! ([`Spectator::node`]): on the game's node, each remote viewer's
//! registration, counted by the caps like any; in a mirror of another
//! node's game, shadows of the game's node's list, so that every node
//! shows the same audience. Shadows are replaced wholesale, never capped,
//! and no stream binds to one.

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
    /// The node it watches on, when that is not this one.
    pub node: Option<String>,
    /// What to tell another node when the registration ends (a remote
    /// viewer's node, or the game's node of a mirror).
    farewell: Mutex<Option<Farewell>>,
}

/// A call made once when a registration ends.
pub struct Farewell(Box<dyn FnOnce() + Send>);

impl Farewell {
    pub fn new(call: impl FnOnce() + Send + 'static) -> Self {
        Self(Box::new(call))
    }
}

impl std::fmt::Debug for Farewell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Farewell")
    }
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
            node: None,
            farewell: Mutex::new(None),
        }
    }

    /// A spectator of another node (see the module's header), registered
    /// under `id`, watching from `address` (counted by the per-address
    /// share of the game) when known.
    pub fn elsewhere(
        id: String,
        user_id: i32,
        username: &str,
        joined_at: SystemTime,
        node: String,
        address: Option<IpAddr>,
    ) -> Self {
        let mut spectator = Self::from_address(user_id, username, address, None);
        spectator.id = id;
        spectator.joined_at = joined_at;
        spectator.node = Some(node);
        spectator
    }

    /// Sets what to tell another node when the registration ends.
    pub fn on_end(&self, farewell: Farewell) {
        *self.farewell.lock().unwrap_or_else(|p| p.into_inner()) = Some(farewell);
    }

    /// Registration over: its stream ends, its address slot is free, and
    /// another node concerned is told. Called by the registry when it
    /// removes it, and for one that never made it into a registry.
    pub fn end(&self) {
        self.removed.cancel();
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        let farewell = self
            .farewell
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(Farewell(call)) = farewell {
            call();
        }
    }

    /// Claims the registration for a stream; false when one is bound already
    /// or it is another node's.
    pub fn bind(&self) -> bool {
        self.node.is_none() && !self.connected.swap(true, Ordering::AcqRel)
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

    /// Every spectator, on every node.
    pub fn len(&self) -> usize {
        self.current.load().spectators.len()
    }

    /// The spectators watching on this node.
    pub fn local_len(&self) -> usize {
        self.current
            .load()
            .spectators
            .values()
            .filter(|s| s.node.is_none())
            .count()
    }

    /// In a mirror: replaces the shadows of the game's node's list with
    /// `shadows` (this node's own spectators stay as they are). Nothing is
    /// published when nothing changed.
    pub fn replace_shadows(&self, shadows: Vec<Arc<Spectator>>) {
        let _ = self.update(|spectators| {
            let same = spectators.values().filter(|s| s.node.is_some()).count() == shadows.len()
                && shadows.iter().all(|s| {
                    spectators
                        .get(&s.id)
                        .is_some_and(|old| old.username == s.username && old.node == s.node)
                });
            if same {
                return Err(());
            }
            spectators.retain(|_, s| s.node.is_none());
            for shadow in &shadows {
                spectators.insert(shadow.id.clone(), Arc::clone(shadow));
            }
            Ok(())
        });
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
        let elsewhere =
            Spectator::elsewhere("x".into(), 1, "a", SystemTime::now(), "n2".into(), None);
        assert!(
            !elsewhere.bind(),
            "another node's spectator is never bound here"
        );
    }

    #[test]
    fn shadows_are_replaced_wholesale_and_the_local_ones_stay() {
        let registry = SpectatorRegistry::new(10, 10);
        let mine = Arc::new(Spectator::new(1, "alice"));
        registry.add(Arc::clone(&mine)).expect("add");
        let shadow = |id: &str, name: &str| {
            Arc::new(Spectator::elsewhere(
                id.into(),
                2,
                name,
                SystemTime::now(),
                "n1".into(),
                None,
            ))
        };
        registry.replace_shadows(vec![shadow("s1", "bob"), shadow("s2", "carol")]);
        assert_eq!((registry.len(), registry.local_len()), (3, 1));
        let version = registry.load().version;
        registry.replace_shadows(vec![shadow("s1", "bob"), shadow("s2", "carol")]);
        assert_eq!(
            registry.load().version,
            version,
            "nothing changed, nothing published"
        );
        registry.replace_shadows(vec![shadow("s2", "carol")]);
        assert_eq!(registry.load().audience().0, ["alice", "carol"]);
        registry.replace_shadows(Vec::new());
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn a_farewell_is_said_once_when_the_registration_ends() {
        let registry = SpectatorRegistry::new(10, 10);
        let said = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let s = Arc::new(Spectator::new(1, "a"));
        let count = Arc::clone(&said);
        s.on_end(Farewell::new(move || {
            count.fetch_add(1, Ordering::Relaxed);
        }));
        registry.add(Arc::clone(&s)).expect("add");
        assert!(registry.remove(&s.id));
        assert!(!registry.remove(&s.id));
        assert_eq!(said.load(Ordering::Relaxed), 1);
    }
}
