//! The hub's invariants, tested through its public API.

use super::*;

fn hub(size: TermSize, queue_frames: usize) -> (Publisher, Resizer) {
    pipeline(HubOptions::new(size, queue_frames))
}

fn frame(d: &Delivery) -> Option<u64> {
    match d {
        Delivery::Frame(f) => Some(f.id.get()),
        _ => None,
    }
}

#[tokio::test]
async fn join_gets_snapshot_then_exactly_the_following_frames() {
    let (publisher, _) = hub(TermSize::new(20, 5), 16);
    publisher.publish(Bytes::from_static(b"one "));
    publisher.publish(Bytes::from_static(b"two "));
    let mut sub = publisher.hub().subscribe();
    publisher.publish(Bytes::from_static(b"three"));
    match sub.next().await {
        Some(Delivery::Snapshot(s)) => {
            assert_eq!(s.frame_id.get(), 2);
            assert_eq!(s.reason, SnapshotReason::Join);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    assert_eq!(sub.next().await.as_ref().and_then(frame), Some(3));
}

#[tokio::test]
async fn a_full_queue_resyncs_with_a_snapshot_and_never_blocks_publish() {
    let (publisher, _) = hub(TermSize::new(20, 5), 4);
    let mut slow = publisher.hub().subscribe();
    let mut fast = publisher.hub().subscribe();
    assert!(matches!(slow.next().await, Some(Delivery::Snapshot(_))));
    assert!(matches!(fast.next().await, Some(Delivery::Snapshot(_))));
    for i in 1..=10u64 {
        publisher.publish(Bytes::from(format!("{i} ")));
        assert_eq!(fast.next().await.as_ref().and_then(frame), Some(i));
    }
    match slow.next().await {
        Some(Delivery::Snapshot(s)) => {
            assert_eq!(s.reason, SnapshotReason::Resync);
            assert_eq!(s.frame_id.get(), 10);
            assert_eq!(s.frames_skipped, 10);
        }
        other => panic!("expected a resync snapshot, got {other:?}"),
    }
    publisher.publish(Bytes::from_static(b"11"));
    assert_eq!(slow.next().await.as_ref().and_then(frame), Some(11));
    assert_eq!(publisher.hub().resyncs(), 1);
}

#[tokio::test]
async fn a_queue_holding_too_many_bytes_resyncs_too() {
    // Room for 1,000 frames, but only 4 KiB of them.
    let (publisher, _) = pipeline(HubOptions {
        queue_bytes: 4096,
        ..HubOptions::new(TermSize::new(20, 5), 1000)
    });
    let mut slow = publisher.hub().subscribe();
    let mut fast = publisher.hub().subscribe();
    assert!(matches!(slow.next().await, Some(Delivery::Snapshot(_))));
    assert!(matches!(fast.next().await, Some(Delivery::Snapshot(_))));
    let kilobyte = Bytes::from(vec![b'x'; 1024]);
    for i in 1..=10u64 {
        publisher.publish(kilobyte.clone());
        assert_eq!(
            fast.next().await.as_ref().and_then(frame),
            Some(i),
            "never lags"
        );
    }
    match slow.next().await {
        Some(Delivery::Snapshot(s)) => {
            assert_eq!(s.reason, SnapshotReason::Resync);
            assert_eq!(s.frame_id.get(), 10);
        }
        other => panic!("expected a resync snapshot, got {other:?}"),
    }
    // After the resync the count starts again: the next frames arrive.
    for i in 11..=13u64 {
        publisher.publish(kilobyte.clone());
        assert_eq!(slow.next().await.as_ref().and_then(frame), Some(i));
    }
    // A frame larger than the whole limit still reaches an empty queue.
    publisher.publish(Bytes::from(vec![b'y'; 10_000]));
    assert_eq!(slow.next().await.as_ref().and_then(frame), Some(14));
}

/// Game output that makes the screen model panic (tests only: no real
/// input is known to).
pub(super) const PANIC_FRAME: &[u8] = b"\x1b[?9999;panic-the-model";

fn contents(sub_hub: &Hub) -> String {
    sub_hub.lock().screen.screen().contents()
}

#[tokio::test]
async fn a_screen_model_panic_resets_that_session_only() {
    let (troubled, _) = hub(TermSize::new(20, 5), 16);
    let (calm, _) = hub(TermSize::new(20, 5), 16);
    let mut viewer = troubled.hub().subscribe();
    let mut other = calm.hub().subscribe();
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
    assert_eq!(troubled.hub().model_resets(), 1);
    assert_eq!(contents(troubled.hub()), "after");
    // The other session never noticed.
    for id in 1..=3 {
        assert_eq!(other.next().await.as_ref().and_then(frame), Some(id));
    }
    assert_eq!(calm.hub().model_resets(), 0);
    assert_eq!(contents(calm.hub()), "one two three");
}

#[tokio::test]
async fn a_requested_snapshot_covers_the_queue_and_is_not_a_resync() {
    let (publisher, _) = hub(TermSize::new(20, 5), 16);
    let mut sub = publisher.hub().subscribe();
    assert!(matches!(sub.next().await, Some(Delivery::Snapshot(_))));
    publisher.publish(Bytes::from_static(b"one "));
    publisher.publish(Bytes::from_static(b"two "));
    sub.request_snapshot();
    match sub.next().await {
        Some(Delivery::Snapshot(s)) => {
            assert_eq!(s.frame_id.get(), 2);
            assert_eq!(s.reason, SnapshotReason::Requested);
            assert_eq!(s.frames_skipped, 2, "the queued frames it replaces");
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    publisher.publish(Bytes::from_static(b"three"));
    assert_eq!(sub.next().await.as_ref().and_then(frame), Some(3));
    assert_eq!(publisher.hub().resyncs(), 0, "asked for, not fallen behind");
}

#[tokio::test]
async fn resizes_arrive_between_the_frames_they_fall_between() {
    let (publisher, resizer) = hub(TermSize::new(20, 5), 16);
    let mut sub = publisher.hub().subscribe();
    assert!(matches!(sub.next().await, Some(Delivery::Snapshot(_))));
    publisher.publish(Bytes::from_static(b"small"));
    resizer.resize(TermSize::new(30, 6));
    resizer.resize(TermSize::new(30, 6));
    publisher.publish(Bytes::from_static(b"large"));
    assert_eq!(sub.next().await.as_ref().and_then(frame), Some(1));
    match sub.next().await {
        Some(Delivery::Resize { after, size }) => {
            assert_eq!(after.get(), 1);
            assert_eq!(size, TermSize::new(30, 6));
        }
        other => panic!("expected a resize, got {other:?}"),
    }
    assert_eq!(sub.next().await.as_ref().and_then(frame), Some(2));
    assert_eq!(publisher.hub().size(), TermSize::new(30, 6));
}

#[tokio::test]
async fn end_reaches_a_lagged_subscriber_and_a_late_joiner() {
    let (publisher, resizer) = hub(TermSize::new(20, 5), 2);
    let hub = Arc::clone(publisher.hub());
    let mut slow = hub.subscribe();
    for _ in 0..5 {
        publisher.publish(Bytes::from_static(b"x"));
    }
    publisher.end(GameExit::Exited { code: 0 });
    let mut kinds = Vec::new();
    while let Some(d) = slow.next().await {
        kinds.push(match d {
            Delivery::Snapshot(s) => format!("snapshot@{}", s.frame_id),
            Delivery::Frame(f) => format!("frame@{}", f.id),
            Delivery::Resize { .. } => "resize".to_owned(),
            Delivery::Ended { exit, .. } => format!("ended: {exit}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "snapshot@0",
            "snapshot@5",
            "ended: the game exited with status 0"
        ]
    );
    // Nothing changes after the end.
    resizer.resize(TermSize::new(40, 10));
    assert_eq!(hub.size(), TermSize::new(20, 5));
    let mut late = hub.subscribe();
    assert!(matches!(late.next().await, Some(Delivery::Snapshot(s)) if s.frame_id.get() == 5));
    assert!(matches!(late.next().await, Some(Delivery::Ended { .. })));
    assert!(late.next().await.is_none());
    assert_eq!(hub.subscriber_count(), 1, "the late joiner never entered");
    drop(slow);
    assert_eq!(hub.subscriber_count(), 0);
}

#[tokio::test]
async fn a_mirror_keeps_the_origins_ids_accepts_only_the_next_and_resyncs_on_reset() {
    let (origin, _) = hub(TermSize::new(20, 5), 16);
    origin.publish(Bytes::from_static(b"one "));
    origin.publish(Bytes::from_static(b"two "));
    let seed = origin.hub().snapshot();
    let feed = mirror(HubOptions::new(TermSize::new(80, 24), 16));
    let mut early = feed.hub().subscribe();
    assert!(matches!(early.next().await, Some(Delivery::Snapshot(s)) if s.frame_id.get() == 0));
    feed.reset(seed.frame_id, seed.size, &seed.data);
    match early.next().await {
        Some(Delivery::Snapshot(s)) => {
            assert_eq!(s.frame_id.get(), 2);
            assert_eq!(s.reason, SnapshotReason::Resync);
            assert_eq!(s.size, TermSize::new(20, 5));
        }
        other => panic!("expected a resync, got {other:?}"),
    }
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7);
    // A gap is refused and changes nothing.
    assert!(!feed.publish_next(FrameId::new(4), at, Bytes::from_static(b"four")));
    assert!(feed.publish_next(FrameId::new(3), at, Bytes::from_static(b"three")));
    match early.next().await {
        Some(Delivery::Frame(f)) => {
            assert_eq!(f.id.get(), 3);
            assert_eq!(f.timestamp, at);
        }
        other => panic!("expected frame 3, got {other:?}"),
    }
    origin.publish(Bytes::from_static(b"three"));
    let (a, b) = (origin.hub().snapshot(), feed.hub().snapshot());
    assert_eq!((a.frame_id, &a.data), (b.frame_id, &b.data));
    feed.end(GameExit::Exited { code: 0 });
    assert!(matches!(early.next().await, Some(Delivery::Ended { after, .. }) if after.get() == 3));
}
