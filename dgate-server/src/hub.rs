//! The hub: one ordered pipeline per session, from the PTY reader to every
//! subscriber (the player, spectators, and later the recorder).
//!
//! The invariants, which the rest of the server relies on:
//!
//! 1. **One ordered pipeline.** Only the session's reader calls [`Hub::publish`].
//!    Each chunk it read becomes one [`Frame`] with the next id (strictly
//!    increasing, from 1), a timestamp, and one shared `Bytes` that every
//!    subscriber receives (an `Arc`, never a copy per subscriber). The screen
//!    model sees the same frames in the same order.
//! 2. **The reader never waits on a subscriber.** Each subscriber has a bounded
//!    queue (in frames, and in the bytes of the frames it holds); when it is
//!    full, the subscriber is marked *lagged* and gets nothing
//!    more. When it reads again, its backlog is thrown away and it gets a
//!    [`Snapshot`] at the current frame K, then frames K+1, K+2, ... It never
//!    sees a hole in its byte stream, and it never slows anyone else.
//! 3. **Join = snapshot + subscription, atomically.** Both happen under the
//!    pipeline lock, which `publish` also holds while it numbers, parses and fans
//!    out a frame: a new subscriber gets the snapshot at K and exactly the
//!    frames after K.
//! 4. Game end is the last event every subscriber receives (after a snapshot, if
//!    it had fallen behind); a subscriber that joins afterwards gets the final
//!    snapshot and the end event.
//!
//! Lock scope: `pipeline` is held for one frame's parse and fan-out (a
//! non-blocking `try_send` per subscriber), for a snapshot, and for a resize.
//! Nothing under it awaits or does I/O.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::config::TermSize;
use dgate_term::ScreenModel;

/// One chunk of game output, numbered.
#[derive(Debug)]
pub struct Frame {
    pub id: u64,
    pub timestamp: SystemTime,
    pub data: Bytes,
}

/// How a game ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameExit {
    /// The exit code, when the game exited by itself.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<String>,
}

/// What flows through a subscriber's queue, in pipeline order.
#[derive(Debug)]
pub enum HubEvent {
    Frame(Frame),
    /// The game's terminal changed size; effective after frame `after_frame`.
    Resize {
        after_frame: u64,
        size: TermSize,
    },
    /// The game exited; nothing follows.
    Ended {
        after_frame: u64,
        exit: GameExit,
    },
}

impl HubEvent {
    /// What the event weighs in a subscriber's queue: a frame's bytes.
    fn queued_size(&self) -> usize {
        match self {
            Self::Frame(frame) => frame.data.len(),
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotReason {
    Join,
    Resync,
}

/// The whole visible state at `frame_id`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub frame_id: u64,
    pub size: TermSize,
    pub timestamp: SystemTime,
    /// Redraws the state when written to a reset terminal of `size`.
    pub data: Bytes,
    pub reason: SnapshotReason,
    /// Frames this subscriber skipped because it fell behind (0 on join).
    pub frames_skipped: u64,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    Snapshot(Snapshot),
    Event(Arc<HubEvent>),
}

/// Counters of the hub's work, for metrics and tests.
#[derive(Debug, Default)]
pub struct HubStats {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub resyncs: AtomicU64,
    pub frames_skipped: AtomicU64,
    /// Times the screen model panicked and was started afresh.
    pub model_resets: AtomicU64,
}

/// The hub's side of one subscriber.
#[derive(Debug)]
struct Slot {
    id: u64,
    tx: mpsc::Sender<Arc<HubEvent>>,
    /// Set by the pipeline when the queue overflowed; cleared by a resync.
    lagged: AtomicBool,
    /// Bytes of frame data in the queue.
    queued_bytes: AtomicUsize,
    /// Wakes a subscriber that emptied its queue just before it was marked lagged.
    wake: Notify,
}

struct Pipeline {
    screen: ScreenModel,
    last_frame_id: u64,
    ended: Option<Arc<HubEvent>>,
    subscribers: Vec<Arc<Slot>>,
}

/// The broadcast point of one session. See the module docs for its invariants.
pub struct Hub {
    pipeline: Mutex<Pipeline>,
    queue_frames: usize,
    queue_bytes: usize,
    next_slot_id: AtomicU64,
    /// The current size, readable without the lock (cols << 16 | rows).
    size: AtomicU32,
    stats: HubStats,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("size", &self.size())
            .field("queue_frames", &self.queue_frames)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for a terminal of `size`, whose subscribers may fall `queue_frames`
    /// events behind before they are resynced.
    pub fn new(size: TermSize, queue_frames: usize) -> Self {
        Self::with_queue_bytes(size, queue_frames, usize::MAX)
    }

    /// The same, and a subscriber is also resynced when the frames it has not
    /// read hold more than `queue_bytes` (one frame is always let through).
    pub fn with_queue_bytes(size: TermSize, queue_frames: usize, queue_bytes: usize) -> Self {
        Self {
            pipeline: Mutex::new(Pipeline {
                screen: ScreenModel::new(size),
                last_frame_id: 0,
                ended: None,
                subscribers: Vec::new(),
            }),
            queue_frames: queue_frames.max(1),
            queue_bytes,
            next_slot_id: AtomicU64::new(1),
            size: AtomicU32::new(pack(size)),
            stats: HubStats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pipeline> {
        // A panic under the lock leaves a consistent pipeline (every step is a
        // complete parse or push), so a poisoned lock is still usable.
        self.pipeline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers a chunk of game output, feeds the screen model and hands it to
    /// every subscriber. Called only by the session's reader. Never blocks on a
    /// subscriber. Returns the frame id.
    pub fn publish(&self, data: Bytes) -> u64 {
        let mut p = self.lock();
        if p.ended.is_some() {
            return p.last_frame_id;
        }
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
            self.stats.model_resets.fetch_add(1, Ordering::Relaxed);
            let size = p.screen.size();
            p.screen = ScreenModel::new(size);
        }
        p.last_frame_id += 1;
        let id = p.last_frame_id;
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let event = Arc::new(HubEvent::Frame(Frame {
            id,
            timestamp: SystemTime::now(),
            data,
        }));
        fan_out(&p.subscribers, &event, self.queue_bytes);
        id
    }

    /// Resizes the screen model and tells every subscriber, in order with frames.
    pub fn resize(&self, size: TermSize) {
        let mut p = self.lock();
        if p.ended.is_some() || p.screen.size() == size {
            return;
        }
        p.screen.resize(size);
        self.size.store(pack(size), Ordering::Relaxed);
        let event = Arc::new(HubEvent::Resize {
            after_frame: p.last_frame_id,
            size,
        });
        fan_out(&p.subscribers, &event, self.queue_bytes);
    }

    /// Ends the pipeline: every subscriber gets `Ended` as its last event.
    pub fn end(&self, exit: GameExit) {
        let mut p = self.lock();
        if p.ended.is_some() {
            return;
        }
        let event = Arc::new(HubEvent::Ended {
            after_frame: p.last_frame_id,
            exit,
        });
        fan_out(&p.subscribers, &event, self.queue_bytes);
        p.ended = Some(event);
    }

    /// Joins the pipeline: the returned subscription first yields the snapshot
    /// at the current frame K, then exactly frames K+1, K+2, ...
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue_frames);
        let slot = Arc::new(Slot {
            id: self.next_slot_id.fetch_add(1, Ordering::Relaxed),
            tx,
            lagged: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            wake: Notify::new(),
        });
        let mut p = self.lock();
        let snapshot = self.snapshot_locked(&p, SnapshotReason::Join, 0);
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
                ended.map(Delivery::Event),
            ],
            finished: false,
            slot,
            rx,
        }
    }

    /// The current snapshot, without subscribing.
    pub fn snapshot(&self) -> Snapshot {
        let p = self.lock();
        self.snapshot_locked(&p, SnapshotReason::Join, 0)
    }

    fn snapshot_locked(&self, p: &Pipeline, reason: SnapshotReason, skipped: u64) -> Snapshot {
        Snapshot {
            frame_id: p.last_frame_id,
            size: p.screen.size(),
            timestamp: SystemTime::now(),
            data: Bytes::from(p.screen.snapshot()),
            reason,
            frames_skipped: skipped,
        }
    }

    /// Clears a lagged slot under the lock and returns the snapshot it resumes
    /// from, with the end event when the game has already ended.
    fn resync(&self, slot: &Slot, delivered: u64) -> (Snapshot, Option<Arc<HubEvent>>) {
        let p = self.lock();
        let skipped = p.last_frame_id.saturating_sub(delivered);
        let snapshot = self.snapshot_locked(&p, SnapshotReason::Resync, skipped);
        slot.lagged.store(false, Ordering::Release);
        self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .frames_skipped
            .fetch_add(skipped, Ordering::Relaxed);
        (snapshot, p.ended.clone())
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

    pub fn last_frame_id(&self) -> u64 {
        self.lock().last_frame_id
    }

    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// Runs `f` on the screen model (for tests and server-side renderers).
    pub fn with_screen<R>(&self, f: impl FnOnce(&ScreenModel) -> R) -> R {
        f(&self.lock().screen)
    }
}

/// Hands `event` to every subscriber that keeps up; marks the others lagged.
fn fan_out(subscribers: &[Arc<Slot>], event: &Arc<HubEvent>, queue_bytes: usize) {
    let size = event.queued_size();
    let lag = |slot: &Slot| {
        slot.lagged.store(true, Ordering::Release);
        slot.wake.notify_one();
    };
    for slot in subscribers {
        if slot.lagged.load(Ordering::Acquire) {
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

/// A subscriber's side: yields a snapshot, then events in order; after a lag,
/// a resync snapshot instead of the frames it missed. Dropping it leaves the hub.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    slot: Arc<Slot>,
    rx: mpsc::Receiver<Arc<HubEvent>>,
    /// Deliveries owed before the queue: the join snapshot, and the end event
    /// when the game had already ended (or after a resync).
    pending: [Option<Delivery>; 2],
    /// The last frame id this subscriber was given (directly or by a snapshot).
    last_frame_id: u64,
    finished: bool,
}

impl Subscription {
    /// The next delivery; `None` after the game's end event.
    pub async fn next(&mut self) -> Option<Delivery> {
        if let Some(d) = self.pending.iter_mut().find_map(Option::take) {
            return Some(self.delivered(d));
        }
        if self.finished {
            return None;
        }
        let event = tokio::select! {
            biased;
            event = self.rx.recv() => event,
            () = self.slot.wake.notified() => None,
        };
        if let Some(event) = &event {
            self.slot
                .queued_bytes
                .fetch_sub(event.queued_size(), Ordering::Relaxed);
        }
        if self.slot.lagged.load(Ordering::Acquire) {
            // The snapshot covers everything still queued (and nothing is
            // queued for a lagged slot until the resync clears it).
            while self.rx.try_recv().is_ok() {}
            self.slot.queued_bytes.store(0, Ordering::Relaxed);
            let (snapshot, ended) = self.hub.resync(&self.slot, self.last_frame_id);
            self.pending = [ended.map(Delivery::Event), None];
            return Some(self.delivered(Delivery::Snapshot(snapshot)));
        }
        match event {
            Some(event) => Some(self.delivered(Delivery::Event(event))),
            // A spurious wake-up (the lag was already resynced): wait again.
            None => Box::pin(self.next()).await,
        }
    }

    /// Asks for the screen as it is now: the next delivery is a resync
    /// snapshot (covering anything still queued), then frames after it. For a
    /// viewer that must redraw (its terminal changed) without a model of its own.
    pub fn request_snapshot(&self) {
        self.slot.lagged.store(true, Ordering::Release);
        self.slot.wake.notify_one();
    }

    fn delivered(&mut self, d: Delivery) -> Delivery {
        match &d {
            Delivery::Snapshot(s) => self.last_frame_id = s.frame_id,
            Delivery::Event(e) => match e.as_ref() {
                HubEvent::Frame(f) => self.last_frame_id = f.id,
                HubEvent::Resize { .. } => {}
                HubEvent::Ended { .. } => self.finished = true,
            },
        }
        d
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.slot.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(d: &Delivery) -> Option<u64> {
        match d {
            Delivery::Event(e) => match e.as_ref() {
                HubEvent::Frame(f) => Some(f.id),
                _ => None,
            },
            Delivery::Snapshot(_) => None,
        }
    }

    #[tokio::test]
    async fn join_gets_snapshot_then_exactly_the_following_frames() {
        let hub = Arc::new(Hub::new(TermSize::new(20, 5), 16));
        hub.publish(Bytes::from_static(b"one "));
        hub.publish(Bytes::from_static(b"two "));
        let mut sub = hub.subscribe();
        hub.publish(Bytes::from_static(b"three"));
        match sub.next().await {
            Some(Delivery::Snapshot(s)) => {
                assert_eq!(s.frame_id, 2);
                assert_eq!(s.reason, SnapshotReason::Join);
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
        assert_eq!(sub.next().await.as_ref().and_then(frame), Some(3));
    }

    #[tokio::test]
    async fn a_full_queue_resyncs_with_a_snapshot_and_never_blocks_publish() {
        let hub = Arc::new(Hub::new(TermSize::new(20, 5), 4));
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        assert!(matches!(slow.next().await, Some(Delivery::Snapshot(_))));
        assert!(matches!(fast.next().await, Some(Delivery::Snapshot(_))));
        for i in 1..=10u64 {
            hub.publish(Bytes::from(format!("{i} ")));
            assert_eq!(fast.next().await.as_ref().and_then(frame), Some(i));
        }
        match slow.next().await {
            Some(Delivery::Snapshot(s)) => {
                assert_eq!(s.reason, SnapshotReason::Resync);
                assert_eq!(s.frame_id, 10);
                assert_eq!(s.frames_skipped, 10);
            }
            other => panic!("expected a resync snapshot, got {other:?}"),
        }
        hub.publish(Bytes::from_static(b"11"));
        assert_eq!(slow.next().await.as_ref().and_then(frame), Some(11));
        assert_eq!(hub.stats().resyncs.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_queue_holding_too_many_bytes_resyncs_too() {
        // Room for 1,000 frames, but only 4 KiB of them.
        let hub = Arc::new(Hub::with_queue_bytes(TermSize::new(20, 5), 1000, 4096));
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        assert!(matches!(slow.next().await, Some(Delivery::Snapshot(_))));
        assert!(matches!(fast.next().await, Some(Delivery::Snapshot(_))));
        let kilobyte = Bytes::from(vec![b'x'; 1024]);
        for i in 1..=10u64 {
            hub.publish(kilobyte.clone());
            assert_eq!(
                fast.next().await.as_ref().and_then(frame),
                Some(i),
                "never lags"
            );
        }
        match slow.next().await {
            Some(Delivery::Snapshot(s)) => {
                assert_eq!(s.reason, SnapshotReason::Resync);
                assert_eq!(s.frame_id, 10);
            }
            other => panic!("expected a resync snapshot, got {other:?}"),
        }
        // After the resync the count starts again: the next frames arrive.
        for i in 11..=13u64 {
            hub.publish(kilobyte.clone());
            assert_eq!(slow.next().await.as_ref().and_then(frame), Some(i));
        }
        // A frame larger than the whole limit still reaches an empty queue.
        hub.publish(Bytes::from(vec![b'y'; 10_000]));
        assert_eq!(slow.next().await.as_ref().and_then(frame), Some(14));
    }

    /// Game output that makes the screen model panic (tests only: no real
    /// input is known to).
    pub(super) const PANIC_FRAME: &[u8] = b"\x1b[?9999;panic-the-model";

    #[tokio::test]
    async fn a_screen_model_panic_resets_that_session_only() {
        let troubled = Arc::new(Hub::new(TermSize::new(20, 5), 16));
        let calm = Arc::new(Hub::new(TermSize::new(20, 5), 16));
        let mut viewer = troubled.subscribe();
        let mut other = calm.subscribe();
        assert!(matches!(viewer.next().await, Some(Delivery::Snapshot(_))));
        assert!(matches!(other.next().await, Some(Delivery::Snapshot(_))));
        troubled.publish(Bytes::from_static(b"before "));
        calm.publish(Bytes::from_static(b"one "));
        troubled.publish(Bytes::from_static(PANIC_FRAME));
        calm.publish(Bytes::from_static(b"two "));
        troubled.publish(Bytes::from_static(b"after"));
        calm.publish(Bytes::from_static(b"three"));
        // The troubled session goes on numbering and delivering, in order.
        for id in 1..=3 {
            assert_eq!(viewer.next().await.as_ref().and_then(frame), Some(id));
        }
        assert_eq!(troubled.stats().model_resets.load(Ordering::Relaxed), 1);
        troubled.with_screen(|s| assert_eq!(s.screen().contents(), "after"));
        // The other session never noticed.
        for id in 1..=3 {
            assert_eq!(other.next().await.as_ref().and_then(frame), Some(id));
        }
        assert_eq!(calm.stats().model_resets.load(Ordering::Relaxed), 0);
        calm.with_screen(|s| assert_eq!(s.screen().contents(), "one two three"));
    }

    #[tokio::test]
    async fn a_requested_snapshot_covers_the_queue_and_frames_follow_it() {
        let hub = Arc::new(Hub::new(TermSize::new(20, 5), 16));
        let mut sub = hub.subscribe();
        assert!(matches!(sub.next().await, Some(Delivery::Snapshot(_))));
        hub.publish(Bytes::from_static(b"one "));
        hub.publish(Bytes::from_static(b"two "));
        sub.request_snapshot();
        match sub.next().await {
            Some(Delivery::Snapshot(s)) => {
                assert_eq!(s.frame_id, 2);
                assert_eq!(s.frames_skipped, 2, "the queued frames it replaces");
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
        hub.publish(Bytes::from_static(b"three"));
        assert_eq!(sub.next().await.as_ref().and_then(frame), Some(3));
    }

    #[tokio::test]
    async fn end_reaches_a_lagged_subscriber_and_a_late_joiner() {
        let hub = Arc::new(Hub::new(TermSize::new(20, 5), 2));
        let mut slow = hub.subscribe();
        for _ in 0..5 {
            hub.publish(Bytes::from_static(b"x"));
        }
        hub.end(GameExit {
            code: Some(0),
            signal: None,
        });
        let mut kinds = Vec::new();
        while let Some(d) = slow.next().await {
            kinds.push(match d {
                Delivery::Snapshot(s) => format!("snapshot@{}", s.frame_id),
                Delivery::Event(e) => format!("{e:?}")
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        assert_eq!(kinds, ["snapshot@0", "snapshot@5", "Ended"]);
        let mut late = hub.subscribe();
        assert!(matches!(late.next().await, Some(Delivery::Snapshot(s)) if s.frame_id == 5));
        assert!(
            matches!(late.next().await, Some(Delivery::Event(e)) if matches!(*e, HubEvent::Ended { .. }))
        );
        assert!(late.next().await.is_none());
        assert_eq!(hub.subscriber_count(), 1, "the late joiner never entered");
        drop(slow);
        assert_eq!(hub.subscriber_count(), 0);
    }
}
