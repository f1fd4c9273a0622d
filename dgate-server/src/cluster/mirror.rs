//! A viewer's node: one mirror per remote game watched here, a local hub
//! fed from the game's subject, so that every local viewer (gRPC, SSH, the
//! browser) joins it exactly as it would join a local game, and the game's
//! node sends each frame to this node once.
//!
//! The mirror keeps the origin's frame ids and takes only the next one; a
//! gap, a heartbeat ahead of it, silence, or a NATS reconnect makes it ask
//! the game's node for a snapshot (one request at a time, with backoff),
//! and its viewers get an ordinary resync. It goes away `cluster.mirror_linger`
//! after its last local viewer. When the game's node is silent for
//! [`LOST`] and NATS says nobody takes its snapshot requests (it died, or
//! a cut route hides it), the game is given up: its viewers here are told
//! it ended, and the mirror is forgotten at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::wire::{self, Event, Reply, Watcher};
use super::{Shared, game_subject, snapshot_subject, viewers};
use crate::broadcast::chat::ChatLine;
use crate::broadcast::{Feed, GameExit};
use crate::game::Session;
use crate::metrics::{CauseLabel, ClusterMetrics};

/// How long an ended mirror keeps answering late joiners with the final
/// screen and the end.
pub const ENDED_LINGER: Duration = Duration::from_secs(10);
/// Nothing at all from the game's node for this long (its relay beats every
/// [`super::relay::HEARTBEAT`]): the mirror asks for the screen again.
pub const SILENCE: Duration = Duration::from_secs(3);
/// Nothing from the game's node for this long, and NATS answers that
/// nobody takes its snapshot requests (no responders: its connection is
/// gone, or it is cut off from this side of the cluster): the game is
/// given up and its viewers here are told it ended. A node cannot tell a
/// dead node from one it is cut off from; a stalled NATS (no answer at
/// all) is waited out.
pub const LOST: Duration = Duration::from_millis(3500);
/// Between snapshot requests that found no responder.
const NO_RESPONDER_PAUSE: Duration = Duration::from_millis(250);
/// How long one snapshot request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Answers of "no such game", or seconds in which no node listed it,
/// before the mirror gives the game up (its node died or lost it).
const GONE_AFTER: u32 = 3;

/// A mirror as the cluster keeps it.
#[derive(Debug, Clone)]
pub struct Handle {
    pub session: Arc<Session>,
    /// True once the mirror shows its node's screen.
    pub seeded: watch::Receiver<bool>,
    /// When a viewer last found it: it is not let go for [`FOUND_GUARD`]
    /// after, so that a viewer who found it registers on a live mirror.
    pub found: Instant,
}

/// See [`Handle::found`].
pub const FOUND_GUARD: Duration = Duration::from_secs(10);

/// What the mirror's loop does next.
enum Next {
    Go,
    Resync(&'static str),
    Ended(GameExit),
    /// Show who watches now.
    Audience(Vec<Watcher>),
    /// Repeat a line of the game's chat.
    Chat(ChatLine),
}

/// Feeds `feed` (the hub of `session`, a mirror of a game `origin` runs)
/// from the game's subject until the game ends, the mirror has had no
/// viewer for `cluster.mirror_linger`, or the server stops.
pub async fn run(
    shared: Arc<Shared>,
    feed: Feed,
    session: Arc<Session>,
    origin: String,
    seeded: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let id = session.info.id.clone();
    shared.metrics.mirrors_active.inc();
    info!(session_id = %id, node = %origin, "mirroring a remote game");
    match feed_until_end(&shared, &feed, &session, &origin, &seeded, &stop).await {
        Outcome::Ended(exit) => {
            info!(session_id = %id, node = %origin, %exit, "a mirrored game ended");
            feed.end(exit.clone());
            session.remote_ended(exit);
            // Late joiners still get the final screen and the end.
            tokio::select! {
                () = tokio::time::sleep(ENDED_LINGER) => {}
                () = stop.cancelled() => {}
            }
            shared.forget_mirror(&id, &session);
        }
        // Its node is gone, cut off or lost the game: forgotten at once,
        // so that should the game be listed again (a cut route restored),
        // the next viewer makes a new mirror, not finds this ended one.
        Outcome::GivenUp(exit) => {
            info!(session_id = %id, node = %origin, %exit, "a mirrored game was given up");
            shared.forget_mirror(&id, &session);
            feed.end(exit.clone());
            session.remote_ended(exit);
        }
        // Let go (nobody watched it for a while) or the server stops: the
        // streams still reading it end, as a local game's do at shutdown.
        Outcome::LetGo => {
            let exit = GameExit::Killed {
                signal: "Hangup".into(),
            };
            feed.end(exit.clone());
            session.remote_ended(exit);
        }
    }
    shared.metrics.mirrors_active.dec();
}

/// How a mirror's loop ended.
enum Outcome {
    /// The game's node said the game ended.
    Ended(GameExit),
    /// The game is given up: its node no longer runs it, no node lists it,
    /// or its node is silent and unreachable.
    GivenUp(GameExit),
    /// Nobody watched it for a while, or the server stops.
    LetGo,
}

/// The loop.
async fn feed_until_end(
    shared: &Arc<Shared>,
    feed: &Feed,
    session: &Arc<Session>,
    origin: &str,
    seeded: &watch::Sender<bool>,
    stop: &CancellationToken,
) -> Outcome {
    let id = &session.info.id;
    let subject = game_subject(id);
    let mut reconnects = shared.reconnects.subscribe();
    let mut backoff = MIN_BACKOFF;
    // Subscribe first: frames after the snapshot are then on their way.
    let mut events = loop {
        match shared.client.subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                warn!(session_id = %id, error = %e, "cannot subscribe to a remote game");
                if !pause(&mut backoff, stop).await {
                    return Outcome::LetGo;
                }
            }
        }
    };
    let mut pending = Some("join");
    let mut gone = 0;
    let mut unlisted = 0;
    let mut heard = tokio::time::Instant::now();
    let mut idle_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Asked for the screen once since `heard`: silence asks once, then
    // retries go by their own backoff.
    let mut asked_in_silence = false;
    let mut last_heard = heard;
    loop {
        if heard != last_heard {
            last_heard = heard;
            asked_in_silence = false;
        }
        let silent_at = heard + SILENCE;
        if let Some(cause) = pending.take() {
            shared
                .metrics
                .snapshot_requests_sent
                .get_or_create(&CauseLabel { cause })
                .inc();
            match request(shared, origin, id).await {
                Ok(Some(Reply {
                    screen,
                    audience,
                    chat,
                })) => {
                    gone = 0;
                    backoff = MIN_BACKOFF;
                    heard = tokio::time::Instant::now();
                    debug!(session_id = %id, frame = %screen.frame_id, cause, "mirror seeded");
                    feed.reset(screen.frame_id, screen.size, &screen.data);
                    viewers::show(&shared.node_id, session, audience);
                    for line in chat {
                        session.chat.relay(line);
                    }
                    seeded.send_replace(true);
                    if let Some((_, exit)) = screen.ended {
                        return Outcome::Ended(exit);
                    }
                }
                Ok(None) => {
                    shared.metrics.snapshot_request_failures.inc();
                    gone += 1;
                    if gone >= GONE_AFTER {
                        return Outcome::GivenUp(GameExit::Killed {
                            signal: "unknown (its node no longer runs it)".into(),
                        });
                    }
                    pending = Some("retry");
                    if !pause(&mut backoff, stop).await {
                        return Outcome::LetGo;
                    }
                    continue;
                }
                Err(Failed::NoResponders) => {
                    shared.metrics.snapshot_request_failures.inc();
                    if heard.elapsed() >= LOST {
                        warn!(session_id = %id, node = %origin,
                              "the game's node is silent and unreachable: its game is given up");
                        return Outcome::GivenUp(GameExit::Killed {
                            signal: "unknown (its node is unreachable)".into(),
                        });
                    }
                    debug!(session_id = %id, node = %origin, "no responder for a snapshot request");
                    pending = Some("retry");
                    tokio::select! {
                        () = tokio::time::sleep(NO_RESPONDER_PAUSE) => {}
                        () = stop.cancelled() => return Outcome::LetGo,
                    }
                    continue;
                }
                Err(Failed::Other(why)) => {
                    shared.metrics.snapshot_request_failures.inc();
                    debug!(session_id = %id, node = %origin, %why, "a snapshot request failed");
                    pending = Some("retry");
                    if !pause(&mut backoff, stop).await {
                        return Outcome::LetGo;
                    }
                    continue;
                }
            }
        }
        let next = tokio::select! {
            message = events.next() => match message {
                Some(message) => {
                    heard = tokio::time::Instant::now();
                    apply(&shared.metrics, feed, message.payload)
                }
                // The subscription is gone (the client closed): subscribe again.
                None => {
                    match shared.client.subscribe(subject.clone()).await {
                        Ok(s) => events = s,
                        Err(e) => {
                            warn!(session_id = %id, error = %e, "cannot subscribe to a remote game");
                            if !pause(&mut backoff, stop).await {
                                return Outcome::LetGo;
                            }
                        }
                    }
                    Next::Resync("reconnect")
                }
            },
            changed = reconnects.changed() => {
                if changed.is_err() {
                    return Outcome::LetGo;
                }
                Next::Resync("reconnect")
            }
            _ = tick.tick() => {
                let unwatched = session.spectators.local_len() == 0 && feed.hub().subscriber_count() == 0;
                if !unwatched {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= shared.mirror_linger
                    && shared.forget_mirror_if_unwatched(id, session)
                {
                    info!(session_id = %id, "a mirror without viewers was let go");
                    return Outcome::LetGo;
                }
                if shared.directory.find(id).is_none() {
                    unlisted += 1;
                    if unlisted >= GONE_AFTER {
                        return Outcome::GivenUp(GameExit::Killed {
                            signal: "unknown (its node no longer lists it)".into(),
                        });
                    }
                } else {
                    unlisted = 0;
                }
                Next::Go
            }
            // Nothing from the game's node for a while: ask it for the
            // screen (`heard` stays, so that a node that does not come
            // back is given up after LOST).
            () = tokio::time::sleep_until(silent_at), if !asked_in_silence => {
                asked_in_silence = true;
                Next::Resync("silence")
            }
            () = stop.cancelled() => return Outcome::LetGo,
        };
        match next {
            Next::Go => {}
            Next::Resync(cause) => pending = Some(cause),
            Next::Ended(exit) => return Outcome::Ended(exit),
            Next::Audience(watchers) => viewers::show(&shared.node_id, session, watchers),
            Next::Chat(line) => session.chat.relay(line),
        }
    }
}

/// Applies one relay message to the mirror.
fn apply(metrics: &ClusterMetrics, feed: &Feed, payload: bytes::Bytes) -> Next {
    let event = match wire::decode(payload) {
        Ok(event) => event,
        Err(e) => {
            metrics.malformed_messages.inc();
            debug!(error = %e, "a malformed relay message, dropped");
            return Next::Go;
        }
    };
    let last = feed.hub().last_frame_id();
    match event {
        Event::Frame {
            id,
            timestamp,
            data,
        } => {
            if feed.publish_next(id, timestamp, data) {
                if let Ok(lag) = std::time::SystemTime::now().duration_since(timestamp) {
                    metrics.mirror_lag.observe(lag.as_secs_f64());
                }
                Next::Go
            } else if id <= last {
                // One the last snapshot already holds.
                Next::Go
            } else {
                Next::Resync("gap")
            }
        }
        Event::Resize { after, size } if after == last => {
            feed.resize(size);
            Next::Go
        }
        Event::Resize { after, .. } if after < last => Next::Go,
        Event::Resize { .. } => Next::Resync("gap"),
        Event::End { after, exit } if after == last => Next::Ended(exit),
        // Frames before the end were missed: the snapshot holds them, and
        // the end with them.
        Event::End { after, .. } if after > last => Next::Resync("gap"),
        Event::End { exit, .. } => Next::Ended(exit),
        Event::Heartbeat { last: theirs } if theirs > last => Next::Resync("heartbeat"),
        Event::Heartbeat { .. } => Next::Go,
        Event::Snapshot(screen) => {
            if screen.frame_id >= last {
                feed.reset(screen.frame_id, screen.size, &screen.data);
            }
            Next::Go
        }
        Event::Audience(watchers) => Next::Audience(watchers),
        Event::Chat(line) => Next::Chat(line),
    }
}

/// Why a snapshot request got no usable answer.
enum Failed {
    /// NATS says nobody subscribes to the node's snapshot subject.
    NoResponders,
    /// No answer in time, a malformed one, or NATS failed.
    Other(String),
}

/// Asks `origin` for the screen of game `id`.
async fn request(shared: &Shared, origin: &str, id: &str) -> Result<Option<Reply>, Failed> {
    let asked = shared
        .client
        .request(snapshot_subject(origin), wire::request(id, &shared.node_id));
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, asked)
        .await
        .map_err(|_| Failed::Other("no answer in time".to_owned()))?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => Failed::NoResponders,
            _ => Failed::Other(e.to_string()),
        })?;
    wire::decode_reply(answer.payload).map_err(|e| {
        shared.metrics.malformed_messages.inc();
        Failed::Other(e.to_string())
    })
}

/// Waits `backoff` (then doubles it, up to [`MAX_BACKOFF`]); false when the
/// server stops meanwhile.
async fn pause(backoff: &mut Duration, stop: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}

#[cfg(test)]
fn next_is(n: &Next) -> &'static str {
    match n {
        Next::Go => "go",
        Next::Resync(cause) => cause,
        Next::Ended(_) => "ended",
        Next::Audience(_) => "audience",
        Next::Chat(_) => "chat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::{FrameId, HubOptions, mirror};
    use crate::config::TermSize;
    use bytes::Bytes;
    use std::time::SystemTime;

    #[test]
    fn only_the_next_frame_is_taken_and_any_gap_asks_for_a_snapshot() {
        let metrics = ClusterMetrics::default();
        let feed = mirror(HubOptions::new(TermSize::new(80, 24), 16));
        let at = SystemTime::UNIX_EPOCH;
        let f = |id| wire::frame(FrameId::new(id), at, Bytes::from_static(b"x"));
        assert_eq!(next_is(&apply(&metrics, &feed, f(1))), "go");
        assert_eq!(next_is(&apply(&metrics, &feed, f(1))), "go");
        assert_eq!(feed.hub().last_frame_id().get(), 1);
        assert_eq!(next_is(&apply(&metrics, &feed, f(3))), "gap");
        assert_eq!(feed.hub().last_frame_id().get(), 1);
        let beat = |id| wire::heartbeat(FrameId::new(id));
        assert_eq!(next_is(&apply(&metrics, &feed, beat(1))), "go");
        assert_eq!(next_is(&apply(&metrics, &feed, beat(2))), "heartbeat");
        let resize = |after| wire::resize(FrameId::new(after), TermSize::new(100, 30));
        assert_eq!(next_is(&apply(&metrics, &feed, resize(2))), "gap");
        assert_eq!(next_is(&apply(&metrics, &feed, resize(1))), "go");
        assert_eq!(feed.hub().size(), TermSize::new(100, 30));
        let exit = GameExit::Exited { code: 0 };
        assert_eq!(
            next_is(&apply(&metrics, &feed, wire::end(FrameId::new(5), &exit))),
            "gap"
        );
        assert_eq!(
            next_is(&apply(&metrics, &feed, wire::end(FrameId::new(1), &exit))),
            "ended"
        );
        assert_eq!(
            next_is(&apply(&metrics, &feed, Bytes::from_static(b"\xff\x01"))),
            "go"
        );
        assert_eq!(metrics.malformed_messages.get(), 1);
    }
}
