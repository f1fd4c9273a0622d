//! Several dgate nodes on NATS (docs/CLUSTER.md). This module owns
//! everything a node says to and hears from the others; without a
//! `cluster` section in the config it is never started and nothing changes.
//!
//! - [`relay`]: on the game's node, one relay per game publishes its hub
//!   (frames with the hub's ids and timestamps, resizes, the end, idle
//!   heartbeats, a snapshot after the relay itself fell behind) on
//!   `dgate.game.<session>`, and the node answers snapshot requests on
//!   `dgate.snapshot.<node>`. A relay is one more hub subscriber: NATS
//!   never holds the game up.
//! - [`mirror`]: on a viewer's node, the first viewer of a remote game
//!   makes a mirror, a [`Session`] without a process whose hub is fed from
//!   the game's subject (ids kept, only the next accepted, a snapshot
//!   requested again on any doubt); every local viewer joins it like a
//!   local game, so the game's node sends each frame to each node once.
//! - [`directory`]: every node's games, from every node's heartbeats on
//!   `dgate.directory`, for the listings and to find a game's node.
//! - [`viewers`]: the game's node keeps its game's spectators and chat
//!   for every node: viewers' nodes ask it to admit each viewer and say
//!   each line; the relay publishes who watches and what is said.
//! - [`wire`]: the messages (`dungeongate.cluster.v1`, protobuf), decoded
//!   defensively: a malformed one is counted and dropped.
//!
//! Accounts are shared too, but through JetStream (`accounts::shared`).
//! Recordings stay on the game's node. Games are played on their own node.

pub mod directory;
pub mod mirror;
pub mod relay;
pub mod viewers;
pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::accounts::User;
use crate::broadcast::{HubCounters, HubOptions, Spectator, SpectatorRegistry};
use crate::config::ClusterConfig;
use crate::game::SessionError;
use crate::game::{RemoteGames, Session, SessionInfo, SessionManager};
use crate::metrics::ClusterMetrics;
use crate::viewing::audience::Audience;
use crate::viewing::chat::Said;
use dgate_term::listing::SessionSummary;

/// Every node's heartbeat with its games.
pub const DIRECTORY_SUBJECT: &str = "dgate.directory";
/// How long a viewer waits for a new mirror's first screen before it joins
/// anyway (and gets a resync when the screen comes).
const READY_WAIT: Duration = Duration::from_secs(5);

/// The subject a game's events are relayed on.
pub fn game_subject(session_id: &str) -> String {
    format!("dgate.game.{session_id}")
}

/// The subject on which node `node_id` answers snapshot requests.
pub fn snapshot_subject(node_id: &str) -> String {
    format!("dgate.snapshot.{node_id}")
}

/// What the cluster's tasks share.
pub struct Shared {
    pub client: async_nats::Client,
    pub node_id: String,
    /// New at every start: tells the other nodes this is a new run.
    pub boot_id: String,
    pub metrics: ClusterMetrics,
    pub directory: directory::Directory,
    /// Bumped each time the NATS connection comes back.
    pub reconnects: watch::Sender<u64>,
    /// `cluster.mirror_linger`.
    pub mirror_linger: Duration,
    mirrors: Mutex<HashMap<String, mirror::Handle>>,
    /// Spectators of this node's games that other nodes' viewers are, by
    /// registration.
    guests: Mutex<HashMap<String, viewers::Guest>>,
    /// This node's spectators of mirrors, by their registration on the
    /// game's node.
    visits: Mutex<HashMap<String, viewers::Visit>>,
    /// Silent viewers' nodes being asked whether they are still there.
    probing: Mutex<std::collections::HashSet<String>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn mirrors(&self) -> std::sync::MutexGuard<'_, HashMap<String, mirror::Handle>> {
        self.mirrors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes one relay message; a failure is logged (the mirrors see
    /// the gap and ask for a snapshot).
    pub async fn publish(&self, subject: &str, payload: Bytes) {
        match self.client.publish(subject.to_owned(), payload).await {
            Ok(()) => {
                self.metrics.relay_messages.inc();
            }
            Err(e) => debug!(subject, error = %e, "cannot publish a relay message"),
        }
    }

    /// Forgets mirror `id` (if it is still `session`'s).
    fn forget_mirror(&self, id: &str, session: &Arc<Session>) {
        let mut mirrors = self.mirrors();
        if mirrors
            .get(id)
            .is_some_and(|m| Arc::ptr_eq(&m.session, session))
        {
            mirrors.remove(id);
        }
    }

    /// Forgets mirror `id` if nobody watches it; true when it did. Checked
    /// under the lock that finding a mirror takes.
    fn forget_mirror_if_unwatched(&self, id: &str, session: &Arc<Session>) -> bool {
        let mut mirrors = self.mirrors();
        if session.spectators.local_len() > 0 || session.hub.subscriber_count() > 0 {
            return false;
        }
        match mirrors.get(id) {
            Some(m) if Arc::ptr_eq(&m.session, session) => {
                if m.found.elapsed() < mirror::FOUND_GUARD {
                    return false;
                }
                mirrors.remove(id);
                true
            }
            // Not (or no longer) the mirror of this game.
            _ => true,
        }
    }
}

/// A connection for a command run beside the server (`dgate-server user`,
/// `import`): the first server of `nats_urls` that answers in 5 s, or an
/// error.
pub async fn connect_once(config: &ClusterConfig) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("dgate-server command on {}", config.node_id))
        .connection_timeout(Duration::from_secs(5));
    if let Some(path) = &config.credentials {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("reading NATS credentials {}", path.display()))?;
    }
    options
        .connect(config.nats_urls.clone())
        .await
        .with_context(|| format!("connecting to NATS ({})", config.nats_urls.join(", ")))
}

/// This node's part of a cluster; the manager's [`RemoteGames`].
#[derive(Debug)]
pub struct Cluster {
    shared: Arc<Shared>,
    /// The beats, which say goodbye when the server stops.
    beats: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Cluster {
    /// Connects to NATS (retrying in the background while no server is
    /// reachable), starts answering snapshot requests and beating, and
    /// makes `manager` relay its games and see the other nodes'.
    pub async fn start(
        manager: &SessionManager,
        config: &ClusterConfig,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let metrics = manager.metrics().cluster.clone();
        let reconnects = watch::channel(0u64).0;
        let events = (
            reconnects.clone(),
            metrics.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let node_id = config.node_id.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("dgate {node_id}"))
            .retry_on_initial_connect()
            // Messages a subscription may hold unread (2,048, not 65,536):
            // a mirror that falls further behind loses messages, sees the
            // gap and asks for the screen, as any viewer that falls behind
            // is resynced; its memory stays bounded.
            .subscription_capacity(2048)
            .max_reconnects(None)
            .event_callback(move |event| {
                let (reconnects, metrics, connected) = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            if connected.swap(true, Ordering::AcqRel) {
                                info!("NATS: connected again");
                                metrics.nats_reconnects.inc();
                                reconnects.send_modify(|n| *n += 1);
                            } else {
                                info!("NATS: connected");
                            }
                        }
                        async_nats::Event::Disconnected => warn!("NATS: disconnected"),
                        async_nats::Event::SlowConsumer(_) => {
                            metrics.nats_slow_consumers.inc();
                        }
                        other => debug!(event = %other, "NATS"),
                    }
                }
            });
        if let Some(path) = &config.credentials {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading NATS credentials {}", path.display()))?;
        }
        let client = options
            .connect(config.nats_urls.clone())
            .await
            .context("connecting to NATS")?;
        let shared = Arc::new(Shared {
            client,
            node_id: node_id.clone(),
            boot_id: uuid::Uuid::new_v4().simple().to_string(),
            metrics,
            directory: directory::Directory::default(),
            reconnects,
            mirror_linger: config.mirror_linger,
            mirrors: Mutex::new(HashMap::new()),
            guests: Mutex::new(HashMap::new()),
            visits: Mutex::new(HashMap::new()),
            probing: Mutex::new(std::collections::HashSet::new()),
            stop: stop.clone(),
        });
        let requests = shared
            .client
            .subscribe(snapshot_subject(&node_id))
            .await
            .context("subscribing to snapshot requests")?;
        let beats = shared
            .client
            .subscribe(DIRECTORY_SUBJECT)
            .await
            .context("subscribing to the directory")?;
        tokio::spawn(relay::answer_snapshots(
            Arc::clone(&shared),
            manager.clone(),
            requests,
            stop.clone(),
        ));
        let viewer_requests = shared
            .client
            .subscribe(viewers::viewers_subject(&node_id))
            .await
            .context("subscribing to viewer requests")?;
        let removals = shared
            .client
            .subscribe(viewers::removed_subject(&node_id))
            .await
            .context("subscribing to removals")?;
        tokio::spawn(directory::listen(Arc::clone(&shared), beats, stop.clone()));
        tokio::spawn(viewers::answer(
            Arc::clone(&shared),
            manager.clone(),
            viewer_requests,
            stop.clone(),
        ));
        tokio::spawn(viewers::hear_removals(
            Arc::clone(&shared),
            removals,
            stop.clone(),
        ));
        let beats = tokio::spawn(directory::publish_beats(
            Arc::clone(&shared),
            manager.clone(),
            stop,
        ));
        info!(node = %node_id, nats = ?config.nats_urls, "a node of a cluster");
        let cluster = Arc::new(Self {
            shared,
            beats: Mutex::new(Some(beats)),
        });
        manager.set_remote(Arc::clone(&cluster) as Arc<dyn RemoteGames>);
        Ok(cluster)
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The node's NATS connection (the shared accounts use it too).
    pub fn client(&self) -> async_nats::Client {
        self.shared.client.clone()
    }

    /// After the server's stop token was cancelled: waits until the other
    /// nodes were told this one is gone (a second at most).
    pub async fn stopped(&self) {
        let beats = self.beats.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(beats) = beats {
            let _ = beats.await;
        }
    }
}

impl RemoteGames for Cluster {
    fn started(&self, session: &Arc<Session>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(session_id = %session.info.id, "no runtime to relay the game on");
            return;
        };
        runtime.spawn(relay::relay(
            Arc::clone(&self.shared),
            Arc::clone(session),
            self.shared.stop.clone(),
        ));
    }

    fn mirror(&self, manager: &SessionManager, id: &str) -> Option<Arc<Session>> {
        let shared = &self.shared;
        if !wire::is_session_id(id) || shared.stop.is_cancelled() {
            return None;
        }
        let mut mirrors = shared.mirrors();
        if let Some(m) = mirrors.get_mut(id) {
            m.found = std::time::Instant::now();
            return Some(Arc::clone(&m.session));
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let game = shared.directory.find(id)?;
        let summary = game.summary;
        let management = &manager.config().session_management;
        let feed = crate::broadcast::mirror(HubOptions {
            size: summary.size,
            queue_frames: management.queue_frames,
            queue_bytes: management.queue_bytes,
            counters: HubCounters {
                resyncs: manager.metrics().hub_resyncs.clone(),
                model_resets: manager.metrics().screen_model_resets.clone(),
            },
        });
        // The caps are the game's node's to apply (it admits each viewer).
        let spectators = if management.spectating.enabled {
            SpectatorRegistry::new(usize::MAX, usize::MAX)
        } else {
            SpectatorRegistry::new(0, 0)
        };
        let session = Session::remote(
            SessionInfo {
                id: summary.id.clone(),
                user_id: summary.user_id,
                username: summary.username.clone(),
                game_id: summary.game_id.clone(),
                game_short_name: summary.game_short_name.clone(),
                started_at: summary.started_at,
                node: Some(game.node_id.clone()),
            },
            Arc::clone(feed.hub()),
            spectators,
            Arc::new(Audience::remote(&summary.username, summary.private)),
            game.node_id.clone(),
        );
        let (seeded_tx, seeded) = watch::channel(false);
        mirrors.insert(
            id.to_owned(),
            mirror::Handle {
                session: Arc::clone(&session),
                seeded,
                found: std::time::Instant::now(),
            },
        );
        drop(mirrors);
        runtime.spawn(mirror::run(
            Arc::clone(shared),
            feed,
            Arc::clone(&session),
            game.node_id,
            seeded_tx,
            shared.stop.clone(),
        ));
        Some(session)
    }

    fn ready<'a>(&'a self, id: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let seeded = self.shared.mirrors().get(id).map(|m| m.seeded.clone());
            if let Some(mut seeded) = seeded {
                let _ = tokio::time::timeout(READY_WAIT, seeded.wait_for(|s| *s)).await;
            }
        })
    }

    fn summaries(&self) -> Vec<SessionSummary> {
        self.shared.directory.summaries()
    }

    fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    fn admit<'a>(
        &'a self,
        session: &'a Arc<Session>,
        spectator: &'a Arc<Spectator>,
        who: Option<&'a User>,
        address: Option<IpAddr>,
    ) -> Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send + 'a>> {
        Box::pin(viewers::admit(
            &self.shared,
            session,
            spectator,
            who,
            address,
        ))
    }

    fn say<'a>(
        &'a self,
        session: &'a Session,
        who: &'a User,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Said, SessionError>> + Send + 'a>> {
        Box::pin(viewers::say(&self.shared, session, who, text))
    }

    fn message<'a>(
        &'a self,
        session: &'a Session,
        who: &'a User,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, SessionError>> + Send + 'a>> {
        Box::pin(viewers::message(&self.shared, session, who, text))
    }
}
