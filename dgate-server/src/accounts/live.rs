//! Account changes take effect on live sessions: a ban ends every live
//! session of the user, on every transport; a password change ends every
//! session logged in before it (the one that made the change excepted).
//!
//! A logged-in connection (an SSH connection, a gRPC game stream) registers
//! its user with [`LiveUsers::watch`] and ends when its [`Revocation`] is
//! cancelled, saying why. Bans are also made by `dgate-server user ban`, a
//! separate process, so the server looks at the database: every
//! [`CHECK_EVERY`] it reads the standing (generation, banned) of the users
//! with live sessions. Token revocation (for gRPC calls) is the store's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::store::{AccountStore, User};

/// How often live sessions are checked against the database.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// One live session's end, when the account changes under it.
#[derive(Debug)]
pub struct Revocation {
    ended: CancellationToken,
    why: Mutex<Option<String>>,
    /// The credential generation the session is logged in under.
    generation: Mutex<i64>,
}

impl Revocation {
    /// Cancelled when the session must end.
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Why the session ended, once it has.
    pub fn why(&self) -> String {
        self.why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "your account changed".to_owned())
    }

    /// This session made a change (a new password): it lives on under
    /// `generation`.
    pub fn renew(&self, generation: i64) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = generation;
    }

    fn end(&self, why: &str) {
        *self.why.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_owned());
        self.ended.cancel();
    }
}

/// The users with live sessions, and their sessions' revocations.
#[derive(Debug, Default)]
pub struct LiveUsers {
    sessions: Mutex<HashMap<i64, Vec<Arc<Revocation>>>>,
}

impl LiveUsers {
    /// Registers a live session of `user`, which `ended` ends (cancelled)
    /// when the account is banned or its password changes.
    pub fn watch(&self, user: &User, ended: CancellationToken) -> Arc<Revocation> {
        let revocation = Arc::new(Revocation {
            ended,
            why: Mutex::new(None),
            generation: Mutex::new(user.generation),
        });
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(user.id)
            .or_default()
            .push(Arc::clone(&revocation));
        revocation
    }

    /// Checks every [`CHECK_EVERY`] until `stop`.
    pub async fn run(self: Arc<Self>, store: Arc<AccountStore>, stop: CancellationToken) {
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => return,
            }
            let ids = self.live_ids();
            if ids.is_empty() {
                continue;
            }
            let store = Arc::clone(&store);
            let standing = tokio::task::spawn_blocking(move || store.standing(&ids)).await;
            match standing {
                Ok(Ok(standing)) => self.apply(&standing),
                Ok(Err(e)) => warn!(error = %e, "cannot check live sessions' accounts"),
                Err(e) => warn!(error = %e, "the live session check failed"),
            }
        }
    }

    /// The users with sessions still running (ended ones are forgotten).
    fn live_ids(&self) -> Vec<i64> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, list| {
            list.retain(|r| Arc::strong_count(r) > 1 && !r.ended.is_cancelled());
            !list.is_empty()
        });
        sessions.keys().copied().collect()
    }

    /// Ends the sessions `standing` (user, generation, banned) says must end.
    fn apply(&self, standing: &[(i64, i64, bool)]) {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for (user, list) in sessions.iter() {
            let Some(&(_, generation, banned)) = standing.iter().find(|(id, _, _)| id == user)
            else {
                // The account is gone.
                list.iter().for_each(|r| r.end("your account was deleted"));
                continue;
            };
            for revocation in list {
                let theirs = *revocation
                    .generation
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if banned {
                    revocation.end("your account was banned");
                } else if theirs < generation {
                    revocation.end("your password was changed; log in again");
                }
            }
            if banned || list.iter().any(|r| r.ended.is_cancelled()) {
                info!(
                    user_id = user,
                    banned, "ended live sessions of a changed account"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_end_every_session_and_password_changes_the_older_ones() {
        let store = AccountStore::in_memory(Duration::from_secs(3600)).expect("store");
        let alice = store.register("alice", b"password 1", None).expect("alice");
        let bob = store.register("bob", b"password 1", None).expect("bob");
        let live = LiveUsers::default();
        let watch = |user: &User| live.watch(user, CancellationToken::new());
        let (a1, a2, b1) = (watch(&alice), watch(&alice), watch(&bob));
        // Alice changes her password in the session a2: a1 ends, a2 goes on.
        store.set_password("alice", b"password 2").expect("change");
        let generation = store.user("alice").expect("alice").generation;
        a2.renew(generation);
        live.apply(&store.standing(&live.live_ids()).expect("standing"));
        assert!(a1.ended().is_cancelled());
        assert!(a1.why().contains("password was changed"), "{}", a1.why());
        assert!(!a2.ended().is_cancelled());
        assert!(!b1.ended().is_cancelled());
        // Bob is banned: all of his sessions end.
        store.set_banned("bob", true).expect("ban");
        live.apply(&store.standing(&live.live_ids()).expect("standing"));
        assert!(b1.ended().is_cancelled());
        assert_eq!(b1.why(), "your account was banned");
        assert!(!a2.ended().is_cancelled());
        // Ended and dropped sessions are forgotten.
        drop((a1, b1));
        assert_eq!(live.live_ids(), vec![alice.id]);
    }
}
