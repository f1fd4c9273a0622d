//! The hub: one ordered pipeline per session, from the PTY reader to every
//! subscriber (the player, spectators on every front end, the recorder).
//!
//! The invariants, which the rest of the server relies on, and the types that
//! hold them:
//!
//! 1. **One ordered pipeline.** [`Publisher`] is the only way in: it is not
//!    `Clone`, and the session's reader thread owns it. Each chunk it reads
//!    becomes one [`Frame`] with the next [`FrameId`] (strictly increasing,
//!    from 1), a timestamp, and one shared `Bytes` that every subscriber
//!    receives (an `Arc`, never a copy per subscriber). The screen model sees
//!    the same frames in the same order. The terminal's size changes only
//!    through the [`Resizer`], which the session keeps beside the PTY whose
//!    size it is; a resize takes the pipeline lock, so it falls between two
//!    frames like any event.
//! 2. **The reader never waits on a subscriber.** Each subscriber has a bounded
//!    queue (in frames, and in the bytes of the frames it holds); when it is
//!    full, the subscriber is marked *lagged* and gets nothing more. When it
//!    reads again, its backlog is thrown away and it gets a [`Snapshot`] at
//!    the current frame K (reason [`SnapshotReason::Resync`]), then frames
//!    K+1, K+2, ... It never sees a hole in its byte stream, and it never
//!    slows anyone else.
//! 3. **Join = snapshot + subscription, atomically.** Both happen under the
//!    pipeline lock, which `publish` also holds while it numbers, parses and
//!    fans out a frame: a new subscriber gets the snapshot at K and exactly
//!    the frames after K.
//! 4. **The end is the last delivery.** [`Delivery::Ended`] reaches every
//!    subscriber last (after a snapshot, if it had fallen behind); a
//!    subscriber that joins afterwards gets the final snapshot and the end.
//!    `Publisher::end` consumes the publisher: nothing can follow it.
//!
//! A **mirror** ([`mirror`], for the cluster) is a hub whose events come
//! from another node's hub instead of a PTY: its [`Feed`] takes the place of
//! both the publisher and the resizer (not `Clone` either, so a mirror too
//! has one ordered pipeline), keeps the origin's frame ids and timestamps,
//! accepts only the next id, and [`Feed::reset`] replaces the whole state
//! with a snapshot of the origin, after which every subscriber gets an
//! ordinary resync (invariant 2). Invariants 3 and 4 hold as for any hub.
//!
//! Lock scope: `pipeline` is held for one frame's parse and fan-out (a
//! non-blocking `try_send` per subscriber), for a snapshot, and for a resize.
//! Nothing under it awaits or does I/O.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, mpsc};

use crate::config::TermSize;
use dgate_term::ScreenModel;
pub use dgate_term::SnapshotReason;

/// A frame's place in its session's pipeline: 1 for the first frame, then
/// one more for each. A snapshot at `FrameId::START` shows the screen before
/// any output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FrameId(u64);

impl FrameId {
    /// Before the first frame.
    pub const START: FrameId = FrameId(0);

    pub fn get(self) -> u64 {
        self.0
    }

    fn next(self) -> FrameId {
        FrameId(self.0 + 1)
    }

    /// The id another node's hub gave a frame (mirrors keep them).
    pub fn new(id: u64) -> FrameId {
        FrameId(id)
    }

    /// Frames from `earlier` (exclusive) to `self` (inclusive).
    pub fn since(self, earlier: FrameId) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::fmt::Display for FrameId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One chunk of game output, numbered.
#[derive(Debug)]
pub struct Frame {
    pub id: FrameId,
    pub timestamp: SystemTime,
    pub data: Bytes,
}

/// How a game ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameExit {
    /// It exited by itself with this status.
    Exited { code: i32 },
    /// A signal ended it (its name: `Hangup`, `Killed`, ...).
    Killed { signal: String },
}

impl GameExit {
    /// The exit status, when the game exited by itself.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Exited { code } => Some(*code),
            Self::Killed { .. } => None,
        }
    }

    /// The signal's name, when a signal ended the game.
    pub fn signal(&self) -> Option<&str> {
        match self {
            Self::Exited { .. } => None,
            Self::Killed { signal } => Some(signal),
        }
    }
}

impl std::fmt::Display for GameExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited { code } => write!(f, "the game exited with status {code}"),
            Self::Killed { signal } => write!(f, "the game was ended by signal {signal}"),
        }
    }
}

/// The whole visible state at `frame_id`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub frame_id: FrameId,
    pub size: TermSize,
    pub timestamp: SystemTime,
    /// Redraws the state when written to a reset terminal of `size`.
    pub data: Bytes,
    pub reason: SnapshotReason,
    /// Frames this subscriber skipped (0 on join).
    pub frames_skipped: u64,
}

/// What a subscriber receives, in pipeline order.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The screen at a frame: first after joining, and after a resync.
    Snapshot(Snapshot),
    Frame(Arc<Frame>),
    /// The game's terminal changed size; effective after frame `after`.
    Resize {
        after: FrameId,
        size: TermSize,
    },
    /// The game exited; nothing follows.
    Ended {
        after: FrameId,
        exit: GameExit,
    },
}

/// What a subscriber's queue holds: one pointer per entry, so that a queue
/// (and an idle subscriber) stays small.
#[derive(Debug)]
enum Queued {
    Frame(Arc<Frame>),
    Resize { after: FrameId, size: TermSize },
    Ended { after: FrameId, exit: GameExit },
}

impl Queued {
    /// What the entry weighs in a subscriber's queue: a frame's bytes.
    fn weight(&self) -> usize {
        match self {
            Self::Frame(frame) => frame.data.len(),
            _ => 0,
        }
    }

    fn delivery(&self) -> Delivery {
        match self {
            Self::Frame(frame) => Delivery::Frame(Arc::clone(frame)),
            Self::Resize { after, size } => Delivery::Resize {
                after: *after,
                size: *size,
            },
            Self::Ended { after, exit } => Delivery::Ended {
                after: *after,
                exit: exit.clone(),
            },
        }
    }
}

/// Server-wide counters a hub adds to (the metrics' `hub_resyncs_total` and
/// `screen_model_resets_total`); unregistered ones by default.
#[derive(Debug, Clone, Default)]
pub struct HubCounters {
    pub resyncs: Counter,
    pub model_resets: Counter,
}

/// A slot's state, as the pipeline and its subscriber see it.
const KEEPING_UP: u8 = 0;
/// The queue overflowed: the next delivery is a resync snapshot.
const LAGGED: u8 = 1;
/// The subscriber asked to redraw: the next delivery is a requested snapshot.
const REQUESTED: u8 = 2;

/// The hub's side of one subscriber.
#[derive(Debug)]
struct Slot {
    id: u64,
    tx: mpsc::Sender<Arc<Queued>>,
    /// `KEEPING_UP`, `LAGGED` or `REQUESTED`; set by the pipeline (lagged) or
    /// the subscriber (requested), cleared by the snapshot that follows.
    state: AtomicU8,
    /// Bytes of frame data in the queue.
    queued_bytes: AtomicUsize,
    /// Wakes a subscriber that emptied its queue just before it was marked.
    wake: Notify,
}

struct Pipeline {
    screen: ScreenModel,
    last_frame_id: FrameId,
    ended: Option<Arc<Queued>>,
    subscribers: Vec<Arc<Slot>>,
}

/// The broadcast point of one session. See the module docs for its
/// invariants; anyone may subscribe, only the [`Publisher`] publishes.
pub struct Hub {
    pipeline: Mutex<Pipeline>,
    queue_frames: usize,
    queue_bytes: usize,
    next_slot_id: AtomicU64,
    /// The current size, readable without the lock (cols << 16 | rows).
    size: AtomicU32,
    resyncs: AtomicU64,
    model_resets: AtomicU64,
    counters: HubCounters,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("size", &self.size())
            .field("queue_frames", &self.queue_frames)
            .finish_non_exhaustive()
    }
}

/// How a new pipeline is sized and counted.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub size: TermSize,
    /// Events a subscriber may fall behind before it is resynced.
    pub queue_frames: usize,
    /// Bytes of unread frames a subscriber may hold before it is resynced
    /// (one frame is always let through).
    pub queue_bytes: usize,
    pub counters: HubCounters,
}

impl HubOptions {
    pub fn new(size: TermSize, queue_frames: usize) -> Self {
        Self {
            size,
            queue_frames,
            queue_bytes: usize::MAX,
            counters: HubCounters::default(),
        }
    }
}

/// The only way to publish into a hub and to end it. Not `Clone`: the
/// session's reader thread owns it (invariant 1).
#[derive(Debug)]
pub struct Publisher {
    hub: Arc<Hub>,
}

/// The only way to change a hub's terminal size, kept beside the PTY.
#[derive(Debug)]
pub struct Resizer {
    hub: Arc<Hub>,
}

/// A new pipeline: its publisher (for the reader) and resizer (for the PTY's
/// owner); subscribe through `publisher.hub()`.
pub fn pipeline(options: HubOptions) -> (Publisher, Resizer) {
    let hub = Arc::new(Hub {
        pipeline: Mutex::new(Pipeline {
            screen: ScreenModel::new(options.size),
            last_frame_id: FrameId::START,
            ended: None,
            subscribers: Vec::new(),
        }),
        queue_frames: options.queue_frames.max(1),
        queue_bytes: options.queue_bytes,
        next_slot_id: AtomicU64::new(1),
        size: AtomicU32::new(pack(options.size)),
        resyncs: AtomicU64::new(0),
        model_resets: AtomicU64::new(0),
        counters: options.counters,
    });
    (
        Publisher {
            hub: Arc::clone(&hub),
        },
        Resizer { hub },
    )
}

impl Publisher {
    /// The hub this publishes into.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Numbers a chunk of game output, feeds the screen model and hands it to
    /// every subscriber. Never blocks on a subscriber.
    pub fn publish(&self, data: Bytes) -> FrameId {
        let hub = &self.hub;
        let mut p = hub.lock();
        // vt100 must never take the pipeline down: should it panic on some
        // input, start a fresh model (viewers resync to it) and go on.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            #[cfg(test)]
            if data.as_ref() == tests::PANIC_FRAME {
                panic!("a screen model panic, injected by a test");
            }
            p.screen.process(&data)
        }));
        if parsed.is_err() {
            tracing::error!("the screen model panicked on game output; it was reset");
            hub.model_resets.fetch_add(1, Ordering::Relaxed);
            hub.counters.model_resets.inc();
            let size = p.screen.size();
            p.screen = ScreenModel::new(size);
        }
        p.last_frame_id = p.last_frame_id.next();
        let id = p.last_frame_id;
        let frame = Arc::new(Queued::Frame(Arc::new(Frame {
            id,
            timestamp: SystemTime::now(),
            data,
        })));
        fan_out(&p.subscribers, &frame, hub.queue_bytes);
        id
    }

    /// Ends the pipeline: every subscriber gets [`Delivery::Ended`] last.
    pub fn end(self, exit: GameExit) {
        let mut p = self.hub.lock();
        let ended = Arc::new(Queued::Ended {
            after: p.last_frame_id,
            exit,
        });
        fan_out(&p.subscribers, &ended, self.hub.queue_bytes);
        p.ended = Some(ended);
    }
}

/// A mirror's only way in: frames, resizes and the end of a hub on another
/// node, and snapshots of it. Not `Clone`, like [`Publisher`].
#[derive(Debug)]
pub struct Feed {
    hub: Arc<Hub>,
}

/// A hub fed from outside (see the module docs); subscribe through
/// `feed.hub()`. It starts at [`FrameId::START`] with a blank screen of
/// `options.size` until the first [`Feed::reset`].
pub fn mirror(options: HubOptions) -> Feed {
    let (publisher, _) = pipeline(options);
    Feed { hub: publisher.hub }
}

impl Feed {
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Publishes the origin's frame `id` if it is the next one (the last
    /// id + 1) and the hub has not ended; false, and nothing published,
    /// otherwise.
    pub fn publish_next(&self, id: FrameId, timestamp: SystemTime, data: Bytes) -> bool {
        let hub = &self.hub;
        let mut p = hub.lock();
        if p.ended.is_some() || id != p.last_frame_id.next() {
            return false;
        }
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.screen.process(&data)));
        if parsed.is_err() {
            // As in `Publisher::publish`: a fresh model, viewers resync to it.
            hub.model_resets.fetch_add(1, Ordering::Relaxed);
            hub.counters.model_resets.inc();
            let size = p.screen.size();
            p.screen = ScreenModel::new(size);
        }
        p.last_frame_id = id;
        let frame = Arc::new(Queued::Frame(Arc::new(Frame {
            id,
            timestamp,
            data,
        })));
        fan_out(&p.subscribers, &frame, hub.queue_bytes);
        true
    }

    /// The origin's terminal changed size (after the last frame).
    pub fn resize(&self, size: TermSize) {
        Resizer {
            hub: Arc::clone(&self.hub),
        }
        .resize(size);
    }

    /// Replaces the whole state with the origin's snapshot at `frame_id`
    /// (`data` redraws it on a reset terminal of `size`); every subscriber
    /// is resynced to it. Nothing happens after the end.
    pub fn reset(&self, frame_id: FrameId, size: TermSize, data: &[u8]) {
        let hub = &self.hub;
        let mut p = hub.lock();
        if p.ended.is_some() {
            return;
        }
        let mut screen = ScreenModel::new(size);
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| screen.process(data)));
        if parsed.is_err() {
            hub.model_resets.fetch_add(1, Ordering::Relaxed);
            hub.counters.model_resets.inc();
            screen = ScreenModel::new(size);
        }
        p.screen = screen;
        p.last_frame_id = frame_id;
        hub.size.store(pack(size), Ordering::Relaxed);
        for slot in &p.subscribers {
            if slot.state.load(Ordering::Acquire) == KEEPING_UP {
                slot.state.store(LAGGED, Ordering::Release);
                slot.wake.notify_one();
            }
        }
    }

    /// Ends the mirror: every subscriber gets [`Delivery::Ended`] last.
    pub fn end(self, exit: GameExit) {
        Publisher { hub: self.hub }.end(exit);
    }
}

impl Resizer {
    /// Resizes the screen model and tells every subscriber, in order with
    /// frames. Nothing happens after the end.
    pub fn resize(&self, size: TermSize) {
        let hub = &self.hub;
        let mut p = hub.lock();
        if p.ended.is_some() || p.screen.size() == size {
            return;
        }
        p.screen.resize(size);
        hub.size.store(pack(size), Ordering::Relaxed);
        let resize = Arc::new(Queued::Resize {
            after: p.last_frame_id,
            size,
        });
        fan_out(&p.subscribers, &resize, hub.queue_bytes);
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Pipeline> {
        // A panic under the lock leaves a consistent pipeline (every step is a
        // complete parse or push), so a poisoned lock is still usable.
        self.pipeline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the pipeline: the returned subscription first yields the snapshot
    /// at the current frame K, then exactly frames K+1, K+2, ...
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue_frames);
        let slot = Arc::new(Slot {
            id: self.next_slot_id.fetch_add(1, Ordering::Relaxed),
            tx,
            state: AtomicU8::new(KEEPING_UP),
            queued_bytes: AtomicUsize::new(0),
            wake: Notify::new(),
        });
        let mut p = self.lock();
        let snapshot = snapshot_of(&p, SnapshotReason::Join, 0);
        let ended = p.ended.clone();
        if ended.is_none() {
            p.subscribers.push(Arc::clone(&slot));
        }
        drop(p);
        Subscription {
            hub: Arc::clone(self),
            last_frame_id: snapshot.frame_id,
            pending: [
                Some(Delivery::Snapshot(snapshot)),
                ended.map(|e| e.delivery()),
            ],
            finished: false,
            slot,
            rx,
        }
    }

    /// Takes the slot's snapshot under the lock and clears its state; returns
    /// the snapshot and the end, when the game has already ended.
    fn resync(&self, slot: &Slot, delivered: FrameId) -> (Snapshot, Option<Delivery>) {
        let p = self.lock();
        let state = slot.state.swap(KEEPING_UP, Ordering::AcqRel);
        let skipped = p.last_frame_id.since(delivered);
        let reason = if state == REQUESTED {
            SnapshotReason::Requested
        } else {
            self.resyncs.fetch_add(1, Ordering::Relaxed);
            self.counters.resyncs.inc();
            SnapshotReason::Resync
        };
        let snapshot = snapshot_of(&p, reason, skipped);
        (snapshot, p.ended.as_ref().map(|e| e.delivery()))
    }

    /// The screen as it is now, without subscribing (reason `Requested`).
    pub fn snapshot(&self) -> Snapshot {
        snapshot_of(&self.lock(), SnapshotReason::Requested, 0)
    }

    fn unsubscribe(&self, slot_id: u64) {
        let mut p = self.lock();
        if let Some(i) = p.subscribers.iter().position(|s| s.id == slot_id) {
            p.subscribers.swap_remove(i);
        }
    }

    pub fn size(&self) -> TermSize {
        unpack(self.size.load(Ordering::Relaxed))
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// The last frame published: also how many there were.
    pub fn last_frame_id(&self) -> FrameId {
        self.lock().last_frame_id
    }

    /// Subscribers of this hub resynced because they fell behind.
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(Ordering::Relaxed)
    }

    /// Times the screen model panicked and was started afresh.
    pub fn model_resets(&self) -> u64 {
        self.model_resets.load(Ordering::Relaxed)
    }
}

fn snapshot_of(p: &Pipeline, reason: SnapshotReason, skipped: u64) -> Snapshot {
    Snapshot {
        frame_id: p.last_frame_id,
        size: p.screen.size(),
        timestamp: SystemTime::now(),
        data: Bytes::from(p.screen.snapshot()),
        reason,
        frames_skipped: skipped,
    }
}

/// Hands `event` to every subscriber that keeps up; marks the others lagged.
fn fan_out(subscribers: &[Arc<Slot>], event: &Arc<Queued>, queue_bytes: usize) {
    let size = event.weight();
    let lag = |slot: &Slot| {
        slot.state.store(LAGGED, Ordering::Release);
        slot.wake.notify_one();
    };
    for slot in subscribers {
        if slot.state.load(Ordering::Acquire) != KEEPING_UP {
            continue;
        }
        let queued = slot.queued_bytes.load(Ordering::Relaxed);
        if queued > 0 && queued.saturating_add(size) > queue_bytes {
            lag(slot);
            continue;
        }
        match slot.tx.try_send(Arc::clone(event)) {
            Ok(()) => {
                slot.queued_bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => lag(slot),
            // The subscription is being dropped; it unsubscribes itself.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

fn pack(size: TermSize) -> u32 {
    (u32::from(size.cols) << 16) | u32::from(size.rows)
}

fn unpack(v: u32) -> TermSize {
    TermSize::new((v >> 16) as u16, (v & 0xffff) as u16)
}

/// A subscriber's side: yields a snapshot, then deliveries in order; after a
/// lag, a resync snapshot instead of the frames it missed. Dropping it leaves
/// the hub.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    slot: Arc<Slot>,
    rx: mpsc::Receiver<Arc<Queued>>,
    /// Deliveries owed before the queue: the join snapshot, and the end
    /// when the game had already ended (or after a resync).
    pending: [Option<Delivery>; 2],
    /// The last frame this subscriber was given (directly or by a snapshot).
    last_frame_id: FrameId,
    finished: bool,
}

impl Subscription {
    /// The next delivery; `None` after [`Delivery::Ended`].
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(d) = self.pending.iter_mut().find_map(Option::take) {
                return Some(self.delivered(d));
            }
            if self.finished {
                return None;
            }
            let queued = tokio::select! {
                biased;
                queued = self.rx.recv() => queued,
                () = self.slot.wake.notified() => None,
            };
            if let Some(queued) = &queued {
                self.slot
                    .queued_bytes
                    .fetch_sub(queued.weight(), Ordering::Relaxed);
            }
            if self.slot.state.load(Ordering::Acquire) != KEEPING_UP {
                // The snapshot covers everything still queued (and nothing is
                // queued for a marked slot until the snapshot clears it).
                while self.rx.try_recv().is_ok() {}
                self.slot.queued_bytes.store(0, Ordering::Relaxed);
                let (snapshot, ended) = self.hub.resync(&self.slot, self.last_frame_id);
                self.pending = [ended, None];
                return Some(self.delivered(Delivery::Snapshot(snapshot)));
            }
            // `None`: a spurious wake-up (the mark was already handled).
            if let Some(queued) = queued {
                return Some(self.delivered(queued.delivery()));
            }
        }
    }

    /// Asks for the screen as it is now: the next delivery is a snapshot
    /// ([`SnapshotReason::Requested`], covering anything still queued), then
    /// frames after it. For a viewer that must redraw (its terminal changed)
    /// without a model of its own.
    pub fn request_snapshot(&self) {
        let asked = self.slot.state.compare_exchange(
            KEEPING_UP,
            REQUESTED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        // Already lagged: the resync that follows redraws as well.
        if asked.is_ok() {
            self.slot.wake.notify_one();
        }
    }

    fn delivered(&mut self, d: Delivery) -> Delivery {
        match &d {
            Delivery::Snapshot(s) => self.last_frame_id = s.frame_id,
            Delivery::Frame(f) => self.last_frame_id = f.id,
            Delivery::Resize { .. } => {}
            Delivery::Ended { .. } => self.finished = true,
        }
        d
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.slot.id);
    }
}

#[cfg(test)]
mod tests;
