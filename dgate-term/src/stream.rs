//! What a watched game's stream says, in domain terms: the server's SSH front
//! end makes these from hub deliveries, the `dgate` client from gRPC messages
//! at its own edge, and the game view (`dgate-tui`) applies them in order.

use crate::TermSize;

/// Why a snapshot was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotReason {
    /// The viewer joined.
    Join,
    /// The viewer fell behind; the snapshot replaces the frames it skipped.
    Resync,
    /// The viewer asked to redraw (its own terminal changed): not a fault.
    Requested,
}

/// One message of a watched game's stream, borrowing its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameEvent<'a> {
    /// The stream was accepted.
    Connected,
    /// The whole screen at `frame_id`, drawn on a reset terminal of `size`.
    Snapshot {
        frame_id: u64,
        size: TermSize,
        data: &'a [u8],
        reason: SnapshotReason,
        /// Frames this snapshot replaces (0 on join).
        frames_skipped: u64,
    },
    /// The game's output, numbered.
    Output { frame_id: u64, data: &'a [u8] },
    /// The game's terminal changed size.
    Resize { size: TermSize },
    /// Nothing follows.
    Ended(StreamEnd),
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The game exited.
    GameOver,
    ServerShutdown,
    /// No game output for the server's spectator timeout.
    SpectatorTimeout,
    /// The server ended the stream, saying why (may be empty).
    Disconnected(String),
}
