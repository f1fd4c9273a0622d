//! One encoding of a session for every browser watching it: the hub's own
//! bytes, framed once per game ([`super::wire`]).
//!
//! The feed is a hub subscriber like any other. Each delivery becomes one
//! item for every browser: a frame's is the hub's own `Bytes` (never copied
//! or encoded, for any browser), a snapshot's its control and its bytes. Browsers
//! follow the feed through a bounded broadcast ring with the hub's rules:
//! - **snapshot on join**: a browser gets the feed's *keyframe* (a hub
//!   snapshot at frame K) and the frames the feed has passed on since K,
//!   taken with its place in the ring under the lock the feed publishes
//!   under, so it neither misses nor repeats a frame. The hub's snapshots
//!   are made so that snapshot(K) then frames K+1.. show what the player's
//!   terminal shows; the keyframe is renewed from the hub
//!   ([`crate::broadcast::Hub::snapshot`]) once [`REFRESH_FRAMES`] frames or
//!   [`REFRESH_BYTES`] bytes have followed it, so a join costs one snapshot
//!   and a short run of frames, and no browser makes a snapshot of its own;
//! - **resync, never a gap**: a browser that falls a whole ring behind gets
//!   the keyframe and the frames since (counting the frames it skipped) and
//!   goes on from there; when the feed itself falls behind the hub, every
//!   browser gets the hub's resync snapshot;
//! - **a resize** is a `resize` control, then a fresh snapshot for everyone
//!   (the page's emulator need not resize as the hub's model does);
//! - **resume**: a browser that reconnects after a short drop says which
//!   frame it last showed, and gets the messages since (kept for the last
//!   [`HISTORY`] frames) instead of the whole screen; older, it joins anew;
//! - the feed stops a minute after its last browser left (on its next
//!   frame), and a new one starts with the next browser.
//!
//! There is no screen model here: the page's terminal emulator draws the
//! bytes. The feeds of all games are kept in [`Feeds`], the web's own state
//! (not on the session: a game does not know who encodes it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use tokio::sync::broadcast;
use tracing::debug;

use super::wire::{self, Control};
use crate::broadcast::{Delivery, Snapshot, SnapshotReason};
use crate::game::Session;

/// The running feed of each watched game, by session id.
#[derive(Debug, Default)]
pub struct Feeds {
    by_session: Mutex<HashMap<String, Arc<Feed>>>,
}

/// What a message is, for the counting and for resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Frame,
    /// A whole screen; `skipped` frames were missed (a resync) when not 0.
    Snapshot {
        skipped: u64,
        reason: SnapshotReason,
    },
    Resize,
    /// The game is over: the last message.
    End,
}

/// What every browser of the session is sent for one delivery, made once.
#[derive(Debug, Clone)]
pub struct Item {
    /// The frame the page's screen is at after this item.
    pub frame_id: u64,
    /// The message, and a snapshot's body after it.
    pub message: Message,
    pub body: Option<Message>,
    pub kind: Kind,
}

impl Item {
    fn one(frame_id: u64, message: Message, kind: Kind) -> Self {
        Self {
            frame_id,
            message,
            body: None,
            kind,
        }
    }

    /// The item's bytes on the wire (without the WebSocket's framing).
    pub fn wire_bytes(&self) -> usize {
        let len = |message: &Message| match message {
            Message::Binary(bytes) => bytes.len(),
            Message::Text(text) => text.len(),
            _ => 0,
        };
        len(&self.message) + self.body.as_ref().map_or(0, len)
    }
}

/// Messages kept for browsers that resume after a short drop...
pub const HISTORY: usize = 256;
/// ... and the most bytes they may hold.
const HISTORY_BYTES: usize = 1 << 20;
/// The keyframe is renewed after this many frames...
pub const REFRESH_FRAMES: usize = 16;
/// ... or this many bytes of frames since it.
pub const REFRESH_BYTES: usize = 32 * 1024;
/// How long a feed runs on without browsers, for one to come back and resume.
const LINGER: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct State {
    /// The last frame passed on.
    frame_id: u64,
    /// A hub snapshot at or before `frame_id`, and its item (0 frames
    /// skipped), for joiners.
    keyframe: Snapshot,
    keyframe_item: Item,
    /// The messages passed on, oldest first: the first is number `log_start`.
    log: VecDeque<Item>,
    log_start: u64,
    log_bytes: usize,
    /// The messages numbered from here on come after the keyframe.
    keyframe_seq: u64,
    /// Bytes of frames since the keyframe.
    since_keyframe: usize,
    /// A hub snapshot ahead of the feed, kept until the feed reaches its
    /// frame; and whether every browser is to get it then (a resize).
    pending: Option<(Snapshot, bool)>,
    /// The end message, once the game is over.
    ended: Option<Item>,
    /// The feed's task has stopped: a browser must start a new feed.
    closed: bool,
    /// Since when no browser has followed the feed.
    lonely_since: Option<Instant>,
}

#[derive(Debug)]
pub struct Feed {
    state: Mutex<State>,
    tx: broadcast::Sender<Item>,
}

/// A browser's place in the feed.
pub struct Follower {
    feed: Arc<Feed>,
    pub rx: broadcast::Receiver<Item>,
    /// What to send first: the screen now (and the end, if the game is over).
    pub first: Vec<Item>,
}

/// What the feed's task does after a delivery.
enum Step {
    Go,
    /// Take a snapshot from the hub; `true`: every browser gets it.
    Refresh(bool),
    Stop,
}

impl Feed {
    /// A place in the session's feed, starting the feed if none runs;
    /// `resume_after` is the frame a reconnecting browser last showed.
    pub async fn follow(
        feeds: &Feeds,
        session: &Arc<Session>,
        ring: usize,
        resume_after: Option<u64>,
        end: Control,
    ) -> Follower {
        let id = &session.info.id;
        let current = lock(&feeds.by_session).get(id).cloned();
        if let Some(follower) = current.and_then(|feed| feed.resume(resume_after)) {
            return follower;
        }
        let started = Self::start(session, ring, end).await;
        let mut all = lock(&feeds.by_session);
        // Another browser may have started one meanwhile: one feed a session
        // (ours stops at its next frame).
        if let Some(follower) = all.get(id).and_then(|feed| feed.join(0)) {
            started.lock().closed = true;
            return follower;
        }
        // Feeds of games that ended or lost their browsers go as new ones come.
        all.retain(|_, feed| !feed.lock().closed);
        all.insert(id.clone(), Arc::clone(&started));
        drop(all);
        // Just started, so still running (or ended, which joins too).
        started.join(0).unwrap_or_else(|| Follower {
            rx: started.tx.subscribe(),
            first: Vec::new(),
            feed: Arc::clone(&started),
        })
    }

    /// A feed at the session's current screen, its task running; `end` is
    /// what browsers are told when the game ends.
    async fn start(session: &Arc<Session>, ring: usize, end: Control) -> Arc<Self> {
        let mut subscription = session.hub.subscribe();
        let (tx, _) = broadcast::channel(ring.max(16));
        // The join snapshot is delivered at once: the feed starts at the
        // screen as it is, not blank.
        let first = match subscription.next().await {
            Some(Delivery::Snapshot(s)) => s,
            _ => session.hub.snapshot(),
        };
        let feed = Arc::new(Self {
            state: Mutex::new(State {
                frame_id: first.frame_id.get(),
                keyframe_item: snapshot_item(&first, 0),
                keyframe: first,
                log: VecDeque::with_capacity(HISTORY),
                log_start: 0,
                log_bytes: 0,
                keyframe_seq: 0,
                since_keyframe: 0,
                pending: None,
                ended: None,
                closed: false,
                lonely_since: None,
            }),
            tx,
        });
        let end = Item::one(0, wire::text(&end), Kind::End);
        let running = Arc::clone(&feed);
        let hub = Arc::clone(&session.hub);
        tokio::spawn(async move {
            while let Some(delivery) = subscription.next().await {
                match running.apply(&delivery, &end) {
                    Step::Go => {}
                    Step::Refresh(everyone) => running.refreshed(hub.snapshot(), everyone),
                    Step::Stop => break,
                }
            }
            running.lock().closed = true;
            debug!("web feed stopped");
        });
        feed
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Takes in one delivery from the hub and passes it on.
    fn apply(&self, delivery: &Delivery, end: &Item) -> Step {
        let mut state = self.lock();
        if state.closed {
            return Step::Stop;
        }
        let mut step = Step::Go;
        match delivery {
            Delivery::Frame(frame) => {
                let id = frame.id.get();
                state.frame_id = id;
                state.since_keyframe += frame.data.len();
                let item = Item::one(id, Message::Binary(frame.data.clone()), Kind::Frame);
                self.publish(&mut state, item);
                if state
                    .pending
                    .as_ref()
                    .is_some_and(|(s, _)| s.frame_id.get() == id)
                {
                    if let Some((snapshot, everyone)) = state.pending.take() {
                        self.install(&mut state, &snapshot, everyone);
                    }
                } else if state.pending.is_none()
                    && (state.log_start + state.log.len() as u64 - state.keyframe_seq
                        >= REFRESH_FRAMES as u64
                        || state.since_keyframe >= REFRESH_BYTES)
                {
                    step = Step::Refresh(false);
                }
            }
            Delivery::Snapshot(snapshot) => {
                // The feed itself fell behind: everyone skipped what it skipped.
                state.pending = None;
                self.install(&mut state, snapshot, true);
            }
            Delivery::Resize { size, .. } => {
                let resize = Control::Resize {
                    cols: size.cols,
                    rows: size.rows,
                };
                let item = Item::one(state.frame_id, wire::text(&resize), Kind::Resize);
                self.publish(&mut state, item);
                step = Step::Refresh(true);
            }
            Delivery::Ended { .. } => {
                let item = Item {
                    frame_id: state.frame_id,
                    ..end.clone()
                };
                state.ended = Some(item.clone());
                let _ = self.tx.send(item);
                state.closed = true;
                return Step::Stop;
            }
        }
        let nobody = self.tx.receiver_count() == 0;
        state.lonely_since = match (nobody, state.lonely_since) {
            (false, _) => None,
            (true, None) => Some(Instant::now()),
            (true, since) => since,
        };
        // Nobody left for a while (long enough for a dropped page to come
        // back and resume): stop, under the lock, so that none joins a feed
        // that no longer runs.
        if state
            .lonely_since
            .is_some_and(|since| since.elapsed() > LINGER)
        {
            state.closed = true;
            return Step::Stop;
        }
        step
    }

    /// A snapshot taken from the hub after the feed's last frame: the new
    /// keyframe, now or once the feed has passed on the frame it is at.
    fn refreshed(&self, snapshot: Snapshot, everyone: bool) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        if snapshot.frame_id.get() <= state.frame_id {
            self.install(&mut state, &snapshot, everyone);
        } else {
            state.pending = Some((snapshot, everyone));
        }
    }

    /// Makes `snapshot` the keyframe; sent to every browser too when
    /// `everyone` (after a resize, or a resync of the feed).
    fn install(&self, state: &mut State, snapshot: &Snapshot, everyone: bool) {
        state.frame_id = snapshot.frame_id.get();
        state.keyframe = snapshot.clone();
        state.keyframe_item = snapshot_item(snapshot, 0);
        if everyone {
            let item = if snapshot.frames_skipped == 0 {
                state.keyframe_item.clone()
            } else {
                snapshot_item(snapshot, snapshot.frames_skipped)
            };
            self.publish(state, item);
        }
        state.keyframe_seq = state.log_start + state.log.len() as u64;
        state.since_keyframe = 0;
        trim(state);
    }

    /// Keeps `item` for joiners and resumers, and sends it to every browser.
    fn publish(&self, state: &mut State, item: Item) {
        state.log_bytes += item.wire_bytes();
        state.log.push_back(item.clone());
        trim(state);
        // Nobody following is not an error: a browser may come back.
        let _ = self.tx.send(item);
    }

    /// A place in the feed for a browser that last showed frame
    /// `resume_after`: the messages since, when they are all still kept,
    /// else the screen now. `None` when the feed has stopped.
    fn resume(self: &Arc<Self>, resume_after: Option<u64>) -> Option<Follower> {
        let Some(from) = resume_after else {
            return self.join(0);
        };
        let state = self.lock();
        if state.closed && state.ended.is_none() {
            return None;
        }
        // Where the browser's screen is in the log: after the frame it
        // showed last, or at the keyframe.
        let at = state
            .log
            .iter()
            .rposition(|item| item.kind == Kind::Frame && item.frame_id == from)
            .map(|at| at + 1)
            .or_else(|| {
                (from == state.keyframe.frame_id.get())
                    .then(|| (state.keyframe_seq - state.log_start) as usize)
            });
        let Some(at) = at else {
            drop(state);
            return self.join(0);
        };
        let mut first: Vec<Item> = state.log.iter().skip(at).cloned().collect();
        first.extend(state.ended.iter().cloned());
        Some(Follower {
            rx: self.tx.subscribe(),
            first,
            feed: Arc::clone(self),
        })
    }

    /// A place in the feed from now on, with the screen now (`skipped`
    /// frames after the browser's last); `None` when the feed has stopped.
    fn join(self: &Arc<Self>, skipped: u64) -> Option<Follower> {
        let state = self.lock();
        if state.closed && state.ended.is_none() {
            return None;
        }
        let keyframe = if skipped == 0 {
            state.keyframe_item.clone()
        } else {
            snapshot_item(&state.keyframe, skipped)
        };
        let after = (state.keyframe_seq - state.log_start) as usize;
        let mut first = Vec::with_capacity(1 + state.log.len().saturating_sub(after));
        first.push(keyframe);
        first.extend(state.log.iter().skip(after).cloned());
        first.extend(state.ended.iter().cloned());
        Some(Follower {
            rx: self.tx.subscribe(),
            first,
            feed: Arc::clone(self),
        })
    }
}

impl Follower {
    /// After falling a whole ring behind: the screen now (with the frames
    /// skipped since `last_frame`), and a new place in the feed.
    pub fn resync(&mut self, last_frame: u64) {
        let feed = Arc::clone(&self.feed);
        let skipped = feed.lock().frame_id.saturating_sub(last_frame).max(1);
        *self = feed.join(skipped).unwrap_or_else(|| Follower {
            rx: feed.tx.subscribe(),
            first: Vec::new(),
            feed: Arc::clone(&feed),
        });
    }
}

/// Drops the oldest messages past [`HISTORY`] (or [`HISTORY_BYTES`]), but
/// never one a joiner needs (after the keyframe).
fn trim(state: &mut State) {
    while (state.log.len() > HISTORY || state.log_bytes > HISTORY_BYTES)
        && state.log_start < state.keyframe_seq
    {
        let Some(oldest) = state.log.pop_front() else {
            break;
        };
        state.log_bytes -= oldest.wire_bytes();
        state.log_start += 1;
    }
}

/// A snapshot's item: its control, then the hub's bytes (not copied).
fn snapshot_item(snapshot: &Snapshot, skipped: u64) -> Item {
    let id = snapshot.frame_id.get();
    let [control, body] = wire::snapshot(id, snapshot.size, skipped, snapshot.data.clone());
    Item {
        frame_id: id,
        message: control,
        body: Some(body),
        kind: Kind::Snapshot {
            skipped,
            reason: if skipped > 0 {
                SnapshotReason::Resync
            } else {
                SnapshotReason::Join
            },
        },
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
