//! A spectator's life, the same on every transport: admission (spectating
//! enabled, the anonymous policy, the game's spectator limit, the caps per
//! address on one game and on all of them), the registry
//! entry, the hub subscription, the counting of what it was sent, and the
//! cleanup when it goes, however it goes (client gone, task cancelled,
//! server shutdown): it is all in [`Drop`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Transport, may_watch};
use crate::accounts::User;
use crate::broadcast::{Delivery, RegistryFull, SnapshotReason, Spectator, Subscription};
use crate::game::{Session, SessionError, SessionManager};
use crate::limits::address_key;
use crate::metrics::{Metrics, Refusal};

/// How long a registration made without a stream (gRPC's `AddSpectator`)
/// waits for its stream before it is let go.
pub const UNCLAIMED_SPECTATOR_GRACE: Duration = Duration::from_secs(60);

/// Admits `who` (anonymous when `None`), watching from `peer`, as a
/// spectator of `session_id` and registers them, without a stream yet:
/// [`Watch::claim`] binds one. A registration no stream claims within
/// [`UNCLAIMED_SPECTATOR_GRACE`] expires. A spectator of a mirror (a game
/// of another node) is admitted by the game's node first, which keeps its
/// registration too.
pub async fn register(
    manager: &SessionManager,
    session_id: &str,
    who: Option<&User>,
    peer: Option<IpAddr>,
) -> Result<(Arc<Session>, Arc<Spectator>), SessionError> {
    if !manager.config().session_management.spectating.enabled {
        return Err(SessionError::SpectatingDisabled);
    }
    may_watch(manager.config(), who.is_some())?;
    let session = manager.get(session_id)?;
    if let Some(why) = session.audience().refuses(who) {
        return Err(SessionError::NotAllowed(why));
    }
    let (user_id, username) = match who {
        // Account ids beyond i32 do not occur; such a viewer counts as anonymous.
        Some(user) => (i32::try_from(user.id).unwrap_or(0), user.username.as_str()),
        None => (0, ""),
    };
    let addresses = manager.spectator_addresses();
    let (address, slot) = match peer {
        Some(ip) if !addresses.trusted().contains(ip) => {
            let Some(slot) = addresses.admit(ip) else {
                manager.metrics().refused(Refusal::SpectatorsPerAddress);
                return Err(SessionError::Limit(format!(
                    "at most {} spectators may watch from one address",
                    addresses.max()
                )));
            };
            (Some(address_key(ip)), Some(slot))
        }
        _ => (None, None),
    };
    let spectator = Arc::new(Spectator::from_address(user_id, username, address, slot));
    if let (Some(_), Some(remote)) = (session.origin(), manager.remote()) {
        remote.admit(&session, &spectator, who, address).await?;
    }
    let started = Instant::now();
    let version = session
        .spectators
        .add(Arc::clone(&spectator))
        .inspect_err(|full| {
            // Never registered here: the game's node lets it go too.
            spectator.end();
            if matches!(full, RegistryFull::Address { .. }) {
                manager.metrics().refused(Refusal::SpectatorsPerAddress);
            }
        })?;
    Metrics::observe(
        &manager.metrics().spectator_registry_update_duration_seconds,
        started.elapsed(),
    );
    let (unclaimed, watched) = (Arc::clone(&spectator), Arc::clone(&session));
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(UNCLAIMED_SPECTATOR_GRACE) => {
                if !unclaimed.connected.load(Ordering::Acquire)
                    && watched.spectators.remove(&unclaimed.id)
                {
                    info!(session_id = %watched.info.id, spectator_username = %unclaimed.username,
                          "unclaimed spectator registration expired");
                }
            }
            () = watched.done() => {}
        }
    });
    info!(session_id, spectator_username = %spectator.username,
          spectator_count = session.spectators.len(), registry_version = version,
          "spectator added");
    Ok((session, spectator))
}

/// A spectator in place: registered, bound to one connection, counted, and
/// removed when dropped. The part of [`Watch`] that does not read the hub
/// (the browser reads its game's shared feed instead).
#[derive(Debug)]
pub struct Spectating {
    session: Arc<Session>,
    spectator: Arc<Spectator>,
    metrics: Arc<Metrics>,
    transport: Transport,
    connections: Gauge,
    bytes_sent: Counter,
}

impl Spectating {
    /// Binds a connection of `transport` to a registration of `session`.
    pub fn bind(
        manager: &SessionManager,
        session: Arc<Session>,
        spectator_id: &str,
        transport: Transport,
    ) -> Result<Self, SessionError> {
        let spectator = session
            .spectators
            .get(spectator_id)
            .ok_or(SessionError::NotRegistered)?;
        if !spectator.bind() {
            return Err(SessionError::AlreadyBound);
        }
        let metrics = Arc::clone(manager.metrics());
        let label = Metrics::transport(transport.label());
        let connections = metrics
            .spectator_connections_active
            .get_or_create(&label)
            .clone();
        let bytes_sent = metrics.bytes_sent.get_or_create(&label).clone();
        metrics
            .spectator_sessions
            .get_or_create(&Metrics::game(&session.info.game_id))
            .inc();
        connections.inc();
        Ok(Self {
            session,
            spectator,
            metrics,
            transport,
            connections,
            bytes_sent,
        })
    }

    /// Admits, registers and binds in one step (SSH and the browser).
    pub async fn open(
        manager: &SessionManager,
        session_id: &str,
        who: Option<&User>,
        peer: Option<IpAddr>,
        transport: Transport,
    ) -> Result<Self, SessionError> {
        let (session, spectator) = register(manager, session_id, who, peer).await?;
        Self::bind(manager, session, &spectator.id, transport)
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Cancelled when the registration is removed (`RemoveSpectator`, an
    /// operator): the connection should end.
    pub fn removed(&self) -> &CancellationToken {
        &self.spectator.removed
    }

    /// Counts one frame sent, of `bytes` on the wire.
    pub fn sent_frame(&self, bytes: usize) {
        self.metrics.spectator_frames_sent.inc();
        self.bytes_sent.inc_by(bytes as u64);
    }

    /// Counts one whole screen sent; a resync counts the frames it skipped.
    pub fn sent_snapshot(&self, bytes: usize, reason: SnapshotReason, frames_skipped: u64) {
        self.bytes_sent.inc_by(bytes as u64);
        if reason == SnapshotReason::Resync {
            self.metrics.spectator_resyncs.inc();
            self.metrics.spectator_frames_dropped.inc_by(frames_skipped);
        }
    }
}

impl Drop for Spectating {
    fn drop(&mut self) {
        let started = Instant::now();
        self.session.spectators.remove(&self.spectator.id);
        Metrics::observe(
            &self.metrics.spectator_registry_update_duration_seconds,
            started.elapsed(),
        );
        self.connections.dec();
        info!(session_id = %self.session.info.id, spectator_username = %self.spectator.username,
              transport = self.transport.label(),
              spectator_count = self.session.spectators.len(), "spectator left");
    }
}

/// A spectator watching: [`Spectating`] plus its subscription to the game's
/// hub. Front ends only encode what [`Watch::next`] yields.
#[derive(Debug)]
pub struct Watch {
    // Declared first: leaves the hub before the registration goes.
    subscription: Subscription,
    spectating: Spectating,
}

impl Watch {
    /// Watches through a registration made before (gRPC's `AddSpectator`).
    pub fn claim(
        manager: &SessionManager,
        session_id: &str,
        spectator_id: &str,
        who: Option<&User>,
        transport: Transport,
    ) -> Result<Self, SessionError> {
        may_watch(manager.config(), who.is_some())?;
        let session = manager.get(session_id)?;
        let spectating = Spectating::bind(manager, session, spectator_id, transport)?;
        Ok(Self::subscribe(spectating))
    }

    /// Admits, registers and watches in one step.
    pub async fn open(
        manager: &SessionManager,
        session_id: &str,
        who: Option<&User>,
        peer: Option<IpAddr>,
        transport: Transport,
    ) -> Result<Self, SessionError> {
        Spectating::open(manager, session_id, who, peer, transport)
            .await
            .map(Self::subscribe)
    }

    fn subscribe(spectating: Spectating) -> Self {
        Self {
            subscription: spectating.session.hub.subscribe(),
            spectating,
        }
    }

    /// The next delivery (a snapshot first), counted as sent; `None` after
    /// the game's end.
    pub async fn next(&mut self) -> Option<Delivery> {
        let delivery = self.subscription.next().await?;
        match &delivery {
            Delivery::Snapshot(s) => {
                self.spectating
                    .sent_snapshot(s.data.len(), s.reason, s.frames_skipped);
            }
            Delivery::Frame(f) => self.spectating.sent_frame(f.data.len()),
            Delivery::Resize { .. } | Delivery::Ended { .. } => {}
        }
        Some(delivery)
    }

    /// The next delivery is the screen as it is now (the viewer's own
    /// terminal changed and it must redraw).
    pub fn request_snapshot(&self) {
        self.subscription.request_snapshot();
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.spectating.session
    }

    pub fn removed(&self) -> &CancellationToken {
        self.spectating.removed()
    }
}
