//! The terminal side of dgate that the server and the client share: the
//! screen model (its own terminal emulator, [`vt`], and the snapshots that
//! re-create its whole state), the ttyrec format, recordings opened for replay (a keyframe
//! index for seeking, and a playback clock; in memory, or streamed from the
//! file), and the domain types of
//! listings and game streams that both sides' screens read.

pub mod listing;
pub mod recording;
pub mod screen;
pub mod stream;
pub mod streamed;
pub mod ttyrec;
pub mod vt;

pub use screen::{ScreenModel, TermSize};
pub use stream::{GameEvent, SnapshotReason, StreamEnd};
