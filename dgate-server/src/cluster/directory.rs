//! Which node runs which game: every node publishes its games on
//! [`super::DIRECTORY_SUBJECT`] every [`BEAT`], and keeps the last beat of
//! every other node. A node's games vanish [`EXPIRY`] after its last beat,
//! at once when it says goodbye (an empty beat as it stops), and a
//! restarted node's first beat replaces its previous run's list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dgate_proto::cluster as pb;
use dgate_term::listing::{ExtraInfo, SessionSummary, SpectatorSummary};
use futures_util::StreamExt;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{DIRECTORY_SUBJECT, Shared, wire};
use crate::config::TermSize;
use crate::game::SessionManager;
use crate::metrics::ClusterMetrics;

/// How often a node lists its games.
pub const BEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is taken for gone.
pub const EXPIRY: Duration = Duration::from_secs(5);
/// Games one beat may list (more are dropped as malformed).
const MAX_GAMES: usize = 10_000;

/// One game another node runs, as its last beat listed it.
#[derive(Debug, Clone)]
pub struct RemoteGame {
    pub node_id: String,
    pub summary: SessionSummary,
}

#[derive(Debug)]
struct Node {
    boot_id: String,
    heard: Instant,
    games: Vec<SessionSummary>,
}

/// The other nodes' games.
#[derive(Debug, Default)]
pub struct Directory {
    nodes: Mutex<HashMap<String, Node>>,
}

impl Directory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every game the live nodes list.
    pub fn summaries(&self) -> Vec<SessionSummary> {
        self.lock()
            .values()
            .filter(|n| n.heard.elapsed() < EXPIRY)
            .flat_map(|n| n.games.iter().cloned())
            .collect()
    }

    /// The game `id`, if a live node lists it.
    pub fn find(&self, id: &str) -> Option<RemoteGame> {
        self.lock().iter().find_map(|(node_id, n)| {
            if n.heard.elapsed() >= EXPIRY {
                return None;
            }
            n.games.iter().find(|g| g.id == id).map(|g| RemoteGame {
                node_id: node_id.clone(),
                summary: g.clone(),
            })
        })
    }

    /// The run (boot id) of node `node`, if it is alive.
    pub fn boot_of(&self, node: &str) -> Option<String> {
        self.lock()
            .get(node)
            .filter(|n| n.heard.elapsed() < EXPIRY)
            .map(|n| n.boot_id.clone())
    }

    /// Takes a beat in (checked: a malformed one is counted and dropped).
    pub fn heard(&self, own_node: &str, payload: Bytes, metrics: &ClusterMetrics) {
        let beat = match pb::DirectoryBeat::decode(payload) {
            Ok(beat) if valid_node(&beat.node_id) && beat.games.len() <= MAX_GAMES => beat,
            _ => {
                metrics.malformed_messages.inc();
                return;
            }
        };
        if beat.node_id == own_node {
            return;
        }
        let games: Vec<SessionSummary> = beat
            .games
            .into_iter()
            .filter_map(|g| {
                let summary = summary_of(g, &beat.node_id);
                if summary.is_none() {
                    metrics.malformed_messages.inc();
                }
                summary
            })
            .collect();
        let mut nodes = self.lock();
        match nodes.get(&beat.node_id) {
            Some(old) if old.boot_id != beat.boot_id => {
                info!(node = %beat.node_id, "a node restarted: its old games are gone");
            }
            None => info!(node = %beat.node_id, games = games.len(), "a node joined"),
            Some(_) => {}
        }
        nodes.insert(
            beat.node_id,
            Node {
                boot_id: beat.boot_id,
                heard: Instant::now(),
                games,
            },
        );
    }
}

fn valid_node(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// Text fields from another node are cut to this many characters.
fn short(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        text
    } else {
        text.chars().take(max).collect()
    }
}

fn summary_of(g: pb::DirectoryGame, node: &str) -> Option<SessionSummary> {
    if !wire::is_session_id(&g.session_id)
        || !(1..=1000).contains(&g.cols)
        || !(1..=1000).contains(&g.rows)
    {
        return None;
    }
    let started_at = from_ms(g.started_at_ms);
    Some(SessionSummary {
        id: g.session_id,
        user_id: g.user_id,
        username: short(g.username, 64),
        game_id: short(g.game_id, 64),
        game_short_name: short(g.game_short_name, 64),
        size: TermSize::new(g.cols as u16, g.rows as u16),
        started_at,
        ended_at: None,
        last_activity: from_ms(g.last_activity_ms),
        spectators: g
            .spectators
            .into_iter()
            .take(10_000)
            .map(|name| SpectatorSummary {
                user_id: 0,
                username: short(name, 64),
                joined_at: started_at,
                connected: true,
            })
            .collect(),
        detached: g.detached,
        frames: g.frames,
        node: Some(node.to_owned()),
        extra_info: (!g.extra_info.is_empty()).then(|| ExtraInfo {
            weight: g.extra_info_weight,
            text: short(g.extra_info, 256),
        }),
        private: g.private,
    })
}

/// This node's games, as a beat.
fn beat(shared: &Shared, manager: &SessionManager, goodbye: bool) -> Bytes {
    let games = if goodbye {
        Vec::new()
    } else {
        manager
            .list()
            .iter()
            .filter(|s| !s.is_ended())
            .map(|s| {
                let s = s.summary();
                let extra = s.extra_info.unwrap_or(ExtraInfo {
                    weight: 0,
                    text: String::new(),
                });
                pb::DirectoryGame {
                    session_id: s.id,
                    user_id: s.user_id,
                    username: s.username,
                    game_id: s.game_id,
                    game_short_name: s.game_short_name,
                    cols: u32::from(s.size.cols),
                    rows: u32::from(s.size.rows),
                    started_at_ms: ms(s.started_at),
                    last_activity_ms: ms(s.last_activity),
                    spectators: s.spectators.into_iter().map(|v| v.username).collect(),
                    detached: s.detached,
                    frames: s.frames,
                    private: s.private,
                    extra_info: extra.text,
                    extra_info_weight: extra.weight,
                }
            })
            .collect()
    };
    Bytes::from(
        pb::DirectoryBeat {
            node_id: shared.node_id.clone(),
            boot_id: shared.boot_id.clone(),
            games,
        }
        .encode_to_vec(),
    )
}

/// Publishes this node's games every [`BEAT`]; says goodbye when the
/// server stops.
pub async fn publish_beats(shared: Arc<Shared>, manager: SessionManager, stop: CancellationToken) {
    let mut every = tokio::time::interval(BEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => break,
        }
        let payload = beat(&shared, &manager, false);
        if let Err(e) = shared.client.publish(DIRECTORY_SUBJECT, payload).await {
            debug!(error = %e, "cannot publish the directory beat");
        }
    }
    let goodbye = beat(&shared, &manager, true);
    let said = async {
        shared
            .client
            .publish(DIRECTORY_SUBJECT, goodbye)
            .await
            .ok()?;
        shared.client.flush().await.ok()
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), said).await;
}

/// Takes the other nodes' beats in until the server stops.
pub async fn listen(
    shared: Arc<Shared>,
    mut beats: async_nats::Subscriber,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = beats.next() => message,
            () = stop.cancelled() => break,
        };
        let Some(message) = message else { break };
        shared
            .directory
            .heard(&shared.node_id, message.payload, &shared.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat_of(node: &str, boot: &str, ids: &[&str]) -> Bytes {
        Bytes::from(
            pb::DirectoryBeat {
                node_id: node.into(),
                boot_id: boot.into(),
                games: ids
                    .iter()
                    .map(|id| pb::DirectoryGame {
                        session_id: (*id).into(),
                        cols: 80,
                        rows: 24,
                        ..Default::default()
                    })
                    .collect(),
            }
            .encode_to_vec(),
        )
    }

    #[test]
    fn a_restart_or_a_goodbye_replaces_a_nodes_games_at_once() {
        let d = Directory::default();
        let m = ClusterMetrics::default();
        d.heard("me", beat_of("n2", "a", &["g1", "g2"]), &m);
        d.heard("me", beat_of("me", "x", &["mine"]), &m);
        assert_eq!(d.summaries().len(), 2);
        assert_eq!(d.find("g2").map(|g| g.node_id).as_deref(), Some("n2"));
        assert!(d.find("mine").is_none());
        d.heard("me", beat_of("n2", "b", &["g3"]), &m);
        assert!(d.find("g1").is_none());
        assert!(d.find("g3").is_some());
        d.heard("me", beat_of("n2", "b", &[]), &m);
        assert!(d.summaries().is_empty());
        assert_eq!(m.malformed_messages.get(), 0);
    }

    #[test]
    fn malformed_beats_and_games_are_dropped_and_counted() {
        let d = Directory::default();
        let m = ClusterMetrics::default();
        d.heard("me", Bytes::from_static(b"\xff\xff"), &m);
        d.heard("me", beat_of("bad.node", "a", &["g1"]), &m);
        d.heard("me", beat_of("n2", "a", &["ok", "no.t>", ""]), &m);
        assert_eq!(m.malformed_messages.get(), 4);
        assert_eq!(d.summaries().len(), 1);
    }
}
