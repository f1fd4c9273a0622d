//! What one viewer saw, accounted frame by frame: every stamp's latency,
//! frames lost (frame ids neither received nor covered by a snapshot),
//! frames skipped by a resync, frames out of order, and bytes.
//!
//! Loss is counted on the server's frame ids where the transport carries them
//! (gRPC, WebSocket), and on the firehose's stamp numbers where it does not
//! (SSH passthrough); a snapshot covers everything before it either way.

use serde::Serialize;

use crate::stamp;

/// Counters, summed over viewers for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Frames (messages carrying terminal output) received.
    pub frames: u64,
    /// Stamps seen, each one a latency sample.
    pub stamps: u64,
    /// Frame ids never received and not covered by a snapshot.
    pub lost: u64,
    /// Frames the server skipped for this viewer by resyncing it.
    pub skipped: u64,
    pub resyncs: u64,
    /// Frames whose id was not above the one before.
    pub disorder: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.frames += other.frames;
        self.stamps += other.stamps;
        self.lost += other.lost;
        self.skipped += other.skipped;
        self.resyncs += other.resyncs;
        self.disorder += other.disorder;
        self.bytes += other.bytes;
    }
}

/// One viewer's chat: every line the game's chat carried must come once, in
/// order (the server numbers a game's lines from 1, without gaps).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChatCounts {
    /// Lines received.
    pub lines: u64,
    /// Lines never received.
    pub lost: u64,
    /// Lines whose id was not above the one before.
    pub disorder: u64,
}

impl std::ops::AddAssign for ChatCounts {
    fn add_assign(&mut self, other: Self) {
        self.lines += other.lines;
        self.lost += other.lost;
        self.disorder += other.disorder;
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ChatTrack {
    pub counts: ChatCounts,
    /// The newest line's id.
    pub last_id: u64,
}

impl ChatTrack {
    pub fn line(&mut self, id: u64) {
        if id <= self.last_id {
            self.counts.disorder += 1;
            return;
        }
        self.counts.lost += id - self.last_id - 1;
        self.counts.lines += 1;
        self.last_id = id;
    }

    /// The game's chat carried `said` lines in all: those after the last
    /// one received never came.
    pub fn finish(&mut self, said: u64) {
        self.counts.lost += said.saturating_sub(self.last_id);
    }
}

/// A stamp may be cut between two frames: this much of the previous frame is
/// scanned again with the next.
const CARRY: usize = 48;

#[derive(Debug)]
pub struct Tracker {
    /// Whether loss is counted on frame ids (else on stamp numbers).
    frame_ids: bool,
    last_frame: Option<u64>,
    /// The newest stamp seen: on a player's stream, the frames the game drew.
    pub last_seq: Option<u64>,
    carry: Vec<u8>,
    pub counts: Counts,
    /// Latencies in microseconds not yet handed to a histogram.
    pub latencies: Vec<u64>,
    /// The firehose's last frame has arrived.
    pub ended: bool,
}

impl Tracker {
    pub fn new(frame_ids: bool) -> Self {
        Self {
            frame_ids,
            last_frame: None,
            last_seq: None,
            carry: Vec::with_capacity(CARRY * 4),
            counts: Counts::default(),
            latencies: Vec::new(),
            ended: false,
        }
    }

    /// A whole screen (join or resync): it covers every frame up to
    /// `frame_id`, and the stamp it shows.
    pub fn snapshot(&mut self, frame_id: Option<u64>, skipped: u64, resync: bool, data: &[u8]) {
        self.counts.bytes += data.len() as u64;
        if resync {
            self.counts.resyncs += 1;
            self.counts.skipped += skipped;
        }
        if let Some(id) = frame_id {
            if self.last_frame.is_some_and(|last| id < last) {
                self.counts.disorder += 1;
            }
            self.last_frame = Some(id);
        }
        if let Some(shown) = stamp::scan(data).map(|s| s.seq).max() {
            self.last_seq = Some(self.last_seq.map_or(shown, |seq| seq.max(shown)));
        }
        self.ended |= stamp::has_end(data);
        self.carry.clear();
    }

    /// Terminal output received at `now` (Unix microseconds).
    pub fn frame(&mut self, frame_id: Option<u64>, data: &[u8], now: u64) {
        self.counts.frames += 1;
        self.counts.bytes += data.len() as u64;
        if let Some(id) = frame_id {
            match self.last_frame {
                Some(last) if id <= last => self.counts.disorder += 1,
                Some(last) if self.frame_ids => self.counts.lost += id - last - 1,
                _ => {}
            }
            self.last_frame = Some(self.last_frame.map_or(id, |last| last.max(id)));
        }
        self.carry.extend_from_slice(data);
        let mut newest = self.last_seq;
        for found in stamp::scan(&self.carry) {
            if newest.is_some_and(|seq| found.seq <= seq) {
                continue;
            }
            if !self.frame_ids
                && let Some(seq) = newest
            {
                self.counts.lost += found.seq - seq - 1;
            }
            self.counts.stamps += 1;
            self.latencies.push(now.saturating_sub(found.micros));
            newest = Some(found.seq);
        }
        self.last_seq = newest;
        self.ended |= stamp::has_end(&self.carry);
        let keep = self.carry.len().saturating_sub(CARRY);
        self.carry.drain(..keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::Stamp;

    fn frame(seq: u64, micros: u64) -> Vec<u8> {
        let mut out = b"\x1b[1;1H".to_vec();
        stamp::write(&mut out, Stamp { seq, micros });
        out.extend_from_slice(b"\x1b[K\x1b[5;7H@");
        out
    }

    #[test]
    fn every_stamp_is_one_latency_sample() {
        let mut t = Tracker::new(true);
        t.snapshot(Some(10), 0, false, &frame(4, 0));
        t.frame(Some(11), &frame(5, 1_000), 1_250);
        t.frame(Some(12), &frame(6, 2_000), 2_900);
        assert_eq!(t.latencies, [250, 900]);
        assert_eq!(t.counts.lost, 0);
        assert_eq!(t.counts.stamps, 2);
        assert_eq!(t.counts.frames, 2);
    }

    #[test]
    fn a_gap_in_frame_ids_is_loss_but_a_resync_covers_its_gap() {
        let mut t = Tracker::new(true);
        t.snapshot(Some(1), 0, false, b"");
        t.frame(Some(2), b"x", 0);
        t.frame(Some(5), b"x", 0);
        assert_eq!(t.counts.lost, 2, "frames 3 and 4 never came");
        t.snapshot(Some(40), 34, true, &frame(40, 0));
        t.frame(Some(41), b"x", 0);
        assert_eq!(t.counts.lost, 2, "the snapshot covers 6..=40");
        assert_eq!((t.counts.resyncs, t.counts.skipped), (1, 34));
    }

    #[test]
    fn frames_out_of_order_are_counted() {
        let mut t = Tracker::new(true);
        t.snapshot(Some(1), 0, false, b"");
        t.frame(Some(3), b"x", 0);
        t.frame(Some(2), b"x", 0);
        assert_eq!(t.counts.disorder, 1);
    }

    #[test]
    fn a_stamp_cut_between_two_reads_counts_once() {
        let mut t = Tracker::new(false);
        t.snapshot(None, 0, false, &frame(1, 0));
        let whole = frame(2, 500);
        let (a, b) = whole.split_at(12);
        t.frame(None, a, 600);
        t.frame(None, b, 700);
        t.frame(None, &frame(3, 800), 900);
        assert_eq!(t.latencies, [200, 100]);
        assert_eq!(t.counts.lost, 0);
    }

    #[test]
    fn without_frame_ids_a_gap_in_stamps_is_loss() {
        let mut t = Tracker::new(false);
        t.snapshot(None, 0, false, &frame(1, 0));
        t.frame(None, &frame(2, 0), 0);
        t.frame(None, &frame(5, 0), 0);
        assert_eq!(t.counts.lost, 2);
        t.snapshot(None, 20, true, &frame(30, 0));
        t.frame(None, &frame(31, 0), 0);
        assert_eq!(t.counts.lost, 2);
    }

    #[test]
    fn a_chat_line_missed_or_out_of_order_is_counted() {
        let mut t = ChatTrack::default();
        for id in [1, 2, 4, 3, 5] {
            t.line(id);
        }
        t.finish(7);
        assert_eq!(
            t.counts,
            ChatCounts {
                lines: 4,
                lost: 3,
                disorder: 1
            },
            "3 came late (out of order, after counting as lost), 6 and 7 never"
        );
    }

    #[test]
    fn the_end_mark_is_seen_in_frames_and_snapshots() {
        let mut t = Tracker::new(true);
        t.frame(Some(1), b"~en", 0);
        assert!(!t.ended);
        t.frame(Some(2), b"d~", 0);
        assert!(t.ended);
        let mut late = Tracker::new(true);
        late.snapshot(Some(9), 0, false, b"~dg9.1~ ~end~");
        assert!(late.ended);
    }
}
