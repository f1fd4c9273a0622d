//! The game's node: one relay per game, publishing its hub on the game's
//! subject (and beside it, out of the hub's order, who watches and what is
//! said in its chat), and the answers to other nodes' snapshot requests.
//!
//! A relay is one more subscriber of the hub, so the hub's promises hold
//! for it: the PTY reader never waits on it (nor on NATS), and when it
//! falls behind (NATS stalled, the publish buffer full) it gets a resync
//! snapshot, which it publishes in place of the frames it skipped; the
//! mirrors reset to it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Shared, game_subject, viewers, wire};
use crate::broadcast::chat::ChatItem;
use crate::broadcast::{Delivery, FrameId, SnapshotReason};
use crate::game::{Session, SessionManager};

/// A relay with nothing to publish says which frame it is at this often.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a relay looks whether the game's audience changed.
const AUDIENCE_CHECK: Duration = Duration::from_millis(250);

/// Relays `session`'s hub to its subject until the game ends (and the end
/// was published) or the server stops.
pub async fn relay(shared: Arc<Shared>, session: Arc<Session>, stop: CancellationToken) {
    let subject = game_subject(&session.info.id);
    let metrics = &shared.metrics;
    metrics.relays_active.inc();
    let mut subscription = session.hub.subscribe();
    let mut last = FrameId::START;
    let mut idle = tokio::time::interval(HEARTBEAT);
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Mirrors are given the chat's history and the audience with their
    // snapshot; after that, what changes.
    let (_, mut chat) = session.chat.join();
    let mut audience = session.spectators.load().version;
    let mut audience_check = tokio::time::interval(AUDIENCE_CHECK);
    audience_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let delivery = tokio::select! {
            delivery = subscription.next() => delivery,
            _ = idle.tick() => {
                shared.publish(&subject, wire::heartbeat(last)).await;
                continue;
            }
            item = chat.next() => {
                let lines = match item {
                    ChatItem::Line(line) => vec![line],
                    ChatItem::Skipped(lines) => lines,
                };
                for line in lines {
                    shared.publish(&subject, wire::chat(&line)).await;
                }
                continue;
            }
            _ = audience_check.tick() => {
                let registry = session.spectators.load();
                if registry.version != audience {
                    audience = registry.version;
                    let watchers = viewers::watchers(&shared.node_id, &registry);
                    shared.publish(&subject, wire::audience(&watchers)).await;
                }
                continue;
            }
            () = stop.cancelled() => break,
        };
        let (payload, done) = match delivery {
            None => break,
            // The join snapshot: mirrors ask for their own.
            Some(Delivery::Snapshot(s)) if s.reason == SnapshotReason::Join => {
                last = s.frame_id;
                continue;
            }
            Some(Delivery::Snapshot(s)) => {
                metrics.relay_resyncs.inc();
                debug!(session_id = %session.info.id, frame = %s.frame_id,
                       skipped = s.frames_skipped, "the relay fell behind: publishing a snapshot");
                last = s.frame_id;
                (wire::snapshot(&s), false)
            }
            Some(Delivery::Frame(f)) => {
                last = f.id;
                (wire::frame(f.id, f.timestamp, f.data.clone()), false)
            }
            Some(Delivery::Resize { after, size }) => (wire::resize(after, size), false),
            Some(Delivery::Ended { after, exit }) => (wire::end(after, &exit), true),
        };
        shared.publish(&subject, payload).await;
        idle.reset();
        if done {
            // The end must leave this node before the session is forgotten.
            if let Err(e) = shared.client.flush().await {
                warn!(session_id = %session.info.id, error = %e, "cannot flush the game's end to NATS");
            }
            break;
        }
    }
    metrics.relays_active.dec();
}

/// Answers snapshot requests for this node's games until the server stops.
pub async fn answer_snapshots(
    shared: Arc<Shared>,
    manager: SessionManager,
    mut requests: async_nats::Subscriber,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = requests.next() => message,
            () = stop.cancelled() => break,
        };
        let Some(message) = message else { break };
        let Some(reply_to) = message.reply else {
            shared.metrics.malformed_messages.inc();
            continue;
        };
        let id = match wire::decode_request(message.payload) {
            Ok(id) => id,
            Err(e) => {
                shared.metrics.malformed_messages.inc();
                debug!(error = %e, "a malformed snapshot request, dropped");
                continue;
            }
        };
        let answer = match manager.get_local(&id) {
            Ok(session) => {
                shared.metrics.snapshot_requests_served.inc();
                let snapshot = session.hub.snapshot();
                let watchers = viewers::watchers(&shared.node_id, &session.spectators.load());
                wire::reply(
                    Some((&snapshot, session.exit())),
                    &watchers,
                    &session.chat.recent(),
                )
            }
            Err(_) => wire::reply(None, &[], &[]),
        };
        if let Err(e) = shared.client.publish(reply_to, answer).await {
            warn!(error = %e, "cannot answer a snapshot request");
        }
    }
}
