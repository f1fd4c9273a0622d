//! One JSON encoding of a session for every browser watching it.
//!
//! The feed is a hub subscriber like any other: it keeps the session's screen
//! model, and turns each frame into one `delta` message (the rows that frame
//! changed), encoded once and shared by every browser. Browsers follow the
//! feed through a bounded broadcast ring with the hub's own rules:
//! - **snapshot on join**: a browser takes the current screen and its place in
//!   the ring under the lock the feed publishes under, so it neither misses
//!   nor repeats a frame;
//! - **resync, never a gap**: a browser that falls a whole ring behind gets a
//!   fresh snapshot (with the frames it skipped) and goes on from there;
//! - **resume**: a browser that reconnects after a short drop says which frame
//!   it last showed, and gets the messages since (kept for the last
//!   `HISTORY` frames) instead of the whole screen; older, it gets a snapshot;
//! - the feed stops a minute after its last browser left (on its next
//!   frame), and a new one starts with the next browser.
//!
//! The feeds of all games are kept in [`Feeds`], the web's own state (not on
//! the session: a game does not know who encodes it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use dgate_term::ScreenModel;
use tokio::sync::broadcast;
use tracing::debug;

use super::screen_json::{self, Message as Out, Row};
use crate::broadcast::Delivery;
use crate::game::Session;

/// The running feed of each watched game, by session id.
#[derive(Debug, Default)]
pub struct Feeds {
    by_session: Mutex<HashMap<String, Arc<Feed>>>,
}

/// A message for every browser of the session, encoded once.
#[derive(Debug, Clone)]
pub struct Item {
    /// The frame the screen is at after this message.
    pub frame_id: u64,
    pub json: Utf8Bytes,
    /// The game has ended: this is the last message.
    pub end: bool,
    /// Counts as a frame sent (a delta), rather than a whole screen.
    pub frame: bool,
    /// A resync: the frames this screen skips.
    pub skipped: u64,
}

/// Messages kept for browsers that resume after a short drop.
const HISTORY: usize = 256;
/// How long a feed runs on without browsers, for one to come back and resume.
const LINGER: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug)]
struct Screen {
    frame_id: u64,
    model: ScreenModel,
    shown: Vec<Row>,
    /// The snapshot message of `frame_id`, made at most once per frame.
    snapshot: Option<Utf8Bytes>,
    /// The end message, once the game is over.
    ended: Option<Utf8Bytes>,
    /// The feed's task has stopped: a browser must start a new feed.
    closed: bool,
    /// The last messages sent, oldest first...
    history: VecDeque<Item>,
    /// ... starting after this frame.
    history_after: u64,
    /// Since when no browser has followed the feed.
    lonely_since: Option<std::time::Instant>,
}

#[derive(Debug)]
pub struct Feed {
    screen: Mutex<Screen>,
    tx: broadcast::Sender<Item>,
}

/// A browser's place in the feed.
pub struct Follower {
    feed: Arc<Feed>,
    pub rx: broadcast::Receiver<Item>,
    /// What to send first: the screen now (and the end, if the game is over).
    pub first: Vec<Item>,
}

impl Feed {
    /// A place in the session's feed, starting the feed if none runs;
    /// `resume_after` is the frame a reconnecting browser last showed.
    pub async fn follow(
        feeds: &Feeds,
        session: &Arc<Session>,
        ring: usize,
        resume_after: Option<u64>,
    ) -> Follower {
        let id = &session.info.id;
        let current = lock(&feeds.by_session).get(id).cloned();
        if let Some(follower) = current.and_then(|feed| feed.resume(resume_after)) {
            return follower;
        }
        let started = Self::start(session, ring).await;
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

    /// A feed at the session's current screen, its task running.
    async fn start(session: &Arc<Session>, ring: usize) -> Arc<Self> {
        let mut subscription = session.hub.subscribe();
        let (tx, _) = broadcast::channel(ring.max(16));
        let feed = Arc::new(Self {
            screen: Mutex::new(Screen {
                frame_id: 0,
                model: ScreenModel::new(session.hub.size()),
                shown: Vec::new(),
                snapshot: None,
                ended: None,
                closed: false,
                history: VecDeque::with_capacity(HISTORY),
                history_after: 0,
                lonely_since: None,
            }),
            tx,
        });
        let username = session.info.username.clone();
        // The join snapshot is delivered at once: the feed starts at the
        // screen as it is, not blank.
        if let Some(first) = subscription.next().await {
            let mut screen = feed.lock();
            let _ = update(&mut screen, &first, &username);
            screen.history_after = screen.frame_id;
        }
        let running = Arc::clone(&feed);
        tokio::spawn(async move {
            while let Some(delivery) = subscription.next().await {
                if !running.apply(&delivery, &username) {
                    break;
                }
            }
            running.lock().closed = true;
            debug!("web feed stopped");
        });
        feed
    }

    fn lock(&self) -> MutexGuard<'_, Screen> {
        lock(&self.screen)
    }

    /// Takes in one delivery from the hub and sends what it changed; false
    /// when the feed should stop (game over, or nobody left to watch).
    fn apply(&self, delivery: &Delivery, username: &str) -> bool {
        let mut screen = self.lock();
        if screen.closed {
            return false;
        }
        let item = update(&mut screen, delivery, username);
        if screen.history.len() == HISTORY
            && let Some(oldest) = screen.history.pop_front()
        {
            screen.history_after = oldest.frame_id;
        }
        screen.history.push_back(item.clone());
        let end = item.end;
        let nobody = self.tx.send(item).is_err();
        let lonely_since = match (nobody, screen.lonely_since) {
            (false, _) => None,
            (true, None) => Some(std::time::Instant::now()),
            (true, since) => since,
        };
        screen.lonely_since = lonely_since;
        // Nobody left for a while (long enough for a dropped page to come
        // back and resume): stop, under the lock, so that none joins a feed
        // that no longer runs.
        if end || lonely_since.is_some_and(|since| since.elapsed() > LINGER) {
            screen.closed = true;
            return false;
        }
        true
    }

    /// A place in the feed for a browser that last showed frame
    /// `resume_after`: the messages since, when they are all still kept,
    /// else the screen now. `None` when the feed has stopped.
    fn resume(self: &Arc<Self>, resume_after: Option<u64>) -> Option<Follower> {
        let Some(from) = resume_after else {
            return self.join(0);
        };
        let screen = self.lock();
        // Where the browser's screen is in the history: after the frame it
        // showed last, or at its start.
        let kept = match screen
            .history
            .iter()
            .rposition(|item| item.frame && item.frame_id == from)
        {
            Some(at) => Some(at + 1),
            None => (from == screen.history_after).then_some(0),
        };
        match kept {
            Some(next) if !(screen.closed && screen.ended.is_none()) => Some(Follower {
                rx: self.tx.subscribe(),
                first: screen.history.iter().skip(next).cloned().collect(),
                feed: Arc::clone(self),
            }),
            _ => {
                drop(screen);
                self.join(0)
            }
        }
    }

    /// A place in the feed from now on, with the screen now; `None` when the
    /// feed has stopped.
    fn join(self: &Arc<Self>, skipped: u64) -> Option<Follower> {
        let mut screen = self.lock();
        if screen.closed && screen.ended.is_none() {
            return None;
        }
        let mut first = vec![whole_screen(&mut screen, skipped, true)];
        if let Some(end) = &screen.ended {
            first.push(Item {
                frame_id: screen.frame_id,
                json: end.clone(),
                end: true,
                frame: false,
                skipped: 0,
            });
        }
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
        let skipped = feed.lock().frame_id.saturating_sub(last_frame);
        *self = feed.join(skipped).unwrap_or_else(|| Follower {
            rx: feed.tx.subscribe(),
            first: Vec::new(),
            feed: Arc::clone(&feed),
        });
    }
}

/// The screen after `delivery`, and the message that tells it.
fn update(screen: &mut Screen, delivery: &Delivery, username: &str) -> Item {
    match delivery {
        Delivery::Snapshot(s) => {
            // On start, or when the feed itself fell behind: everyone gets
            // the new screen, and skipped what the feed skipped.
            screen.model = ScreenModel::new(s.size);
            screen.model.process(&s.data);
            screen.frame_id = s.frame_id.get();
            screen.shown = screen_json::rows(screen.model.screen());
            screen.snapshot = None;
            whole_screen(screen, s.frames_skipped, false)
        }
        Delivery::Frame(frame) => {
            let id = frame.id.get();
            screen.model.process(&frame.data);
            screen.frame_id = id;
            screen.snapshot = None;
            let delta = Out::Delta {
                frame_id: id,
                lines: screen_json::changed_rows(&mut screen.shown, screen.model.screen()),
                cursor: screen_json::cursor(screen.model.screen()),
            };
            Item {
                frame_id: id,
                json: encode(&delta),
                end: false,
                frame: true,
                skipped: 0,
            }
        }
        Delivery::Resize { size, .. } => {
            screen.model.resize(*size);
            screen.shown = screen_json::rows(screen.model.screen());
            screen.snapshot = None;
            whole_screen(screen, 0, false)
        }
        Delivery::Ended { .. } => {
            let message = format!("{username}'s game has ended.");
            let end = encode(&Out::End { message });
            screen.ended = Some(end.clone());
            Item {
                frame_id: screen.frame_id,
                json: end,
                end: true,
                frame: false,
                skipped: 0,
            }
        }
    }
}

/// The whole screen as a snapshot message; `skipped` frames were missed.
fn whole_screen(screen: &mut Screen, skipped: u64, cache: bool) -> Item {
    let json = match (&screen.snapshot, skipped, cache) {
        (Some(cached), 0, true) => cached.clone(),
        _ => {
            let size = screen.model.size();
            let json = encode(&Out::Snapshot {
                frame_id: screen.frame_id,
                cols: size.cols,
                rows: size.rows,
                lines: screen.shown.clone(),
                cursor: screen_json::cursor(screen.model.screen()),
                skipped,
            });
            if skipped == 0 {
                screen.snapshot = Some(json.clone());
            }
            json
        }
    };
    Item {
        frame_id: screen.frame_id,
        json,
        end: false,
        frame: false,
        skipped,
    }
}

fn encode(message: &Out) -> Utf8Bytes {
    serde_json::to_string(message)
        .unwrap_or_else(|e| format!(r#"{{"type":"end","message":"encoding failed: {e}"}}"#))
        .into()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
