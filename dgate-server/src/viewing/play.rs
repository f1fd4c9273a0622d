//! The player's side, the same on every transport: starting or resuming the
//! player's game, the lease (a newer connection of the owner takes over), the
//! input path (keystrokes and resizes, the only ones that reach the game),
//! counting what was sent, and on drop the detach timer (the game waits
//! `detach_grace` for its player, then is hung up).

use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Transport;
use crate::accounts::User;
use crate::broadcast::{Delivery, Subscription};
use crate::config::TermSize;
use crate::game::{PlayerLease, Session, SessionError, SessionManager, StartRequest};
use crate::metrics::Metrics;

/// Starts `user`'s game of `game_id`, or finds the one they have running;
/// true when it was running already.
pub fn start_or_resume(
    manager: &SessionManager,
    user: &User,
    game_id: &str,
    size: Option<TermSize>,
) -> Result<(Arc<Session>, bool), SessionError> {
    let request = StartRequest {
        user_id: i32::try_from(user.id)
            .map_err(|_| SessionError::invalid("user id", "out of range"))?,
        username: user.username.clone(),
        game_id: game_id.to_owned(),
        size,
    };
    match manager.start(request) {
        Ok(session) => Ok((session, false)),
        Err(SessionError::AlreadyActive { session_id, .. }) => {
            Ok((manager.get(&session_id)?, true))
        }
        Err(e) => Err(e),
    }
}

/// The owner playing their game: the hub's deliveries out, their input in.
#[derive(Debug)]
pub struct Play {
    subscription: Subscription,
    lease: PlayerLease,
    input: PlayerInput,
    bytes_sent: Counter,
}

/// The player's input path, which a connection may hand to a task of its own.
#[derive(Debug, Clone)]
pub struct PlayerInput {
    session: Arc<Session>,
    manager: SessionManager,
}

impl Play {
    /// Attaches `user` as the player of `session`, taking over from any
    /// connection of theirs that plays it now.
    pub fn attach(
        manager: &SessionManager,
        session: Arc<Session>,
        user: &User,
        transport: Transport,
    ) -> Result<Self, SessionError> {
        if let Some(node) = session.origin() {
            return Err(SessionError::Elsewhere {
                node: node.to_owned(),
            });
        }
        if !session.is_owned_by(user) {
            return Err(SessionError::NotYours {
                owner: session.info.username.clone(),
            });
        }
        let lease = session.attach_player();
        let subscription = session.hub.subscribe();
        let bytes_sent = manager
            .metrics()
            .bytes_sent
            .get_or_create(&Metrics::transport(transport.label()))
            .clone();
        Ok(Self {
            subscription,
            lease,
            input: PlayerInput {
                session,
                manager: manager.clone(),
            },
            bytes_sent,
        })
    }

    /// The next delivery (a snapshot first), counted as sent; `None` after
    /// the game's end.
    pub async fn next(&mut self) -> Option<Delivery> {
        let delivery = self.subscription.next().await?;
        match &delivery {
            Delivery::Snapshot(s) => {
                self.bytes_sent.inc_by(s.data.len() as u64);
            }
            Delivery::Frame(f) => {
                self.bytes_sent.inc_by(f.data.len() as u64);
            }
            Delivery::Resize { .. } | Delivery::Ended { .. } => {}
        }
        Some(delivery)
    }

    /// Asks for the whole screen again (after the player's view drew over it).
    pub fn request_snapshot(&self) {
        self.subscription.request_snapshot();
    }

    /// Cancelled when a newer connection of the owner takes over.
    pub fn taken_over(&self) -> &CancellationToken {
        &self.lease.taken_over
    }

    pub fn input(&self) -> &PlayerInput {
        &self.input
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.input.session
    }
}

impl Drop for Play {
    fn drop(&mut self) {
        let session = &self.input.session;
        if session.detach_player(&self.lease) && !session.is_ended() {
            info!(session_id = %session.info.id,
                  "player detached; the game waits for them for the detach grace period");
            self.input.manager.arm_detach_timer(session);
        }
    }
}

impl PlayerInput {
    /// Types the player's keystrokes into the game, in order; waits while the
    /// game does not read.
    pub async fn send(&self, data: Bytes) -> Result<(), SessionError> {
        self.session.send_input(data).await
    }

    /// The largest terminal the server gives a game.
    pub fn max_size(&self) -> TermSize {
        self.manager.config().session_management.terminal.max_size
    }

    /// Resizes the game to the player's terminal, within the configured limits.
    pub fn resize(&self, size: TermSize) -> Result<(), SessionError> {
        let size = self.manager.check_size(size)?;
        self.session.resize(size)
    }
}
