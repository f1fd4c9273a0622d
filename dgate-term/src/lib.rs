//! The terminal side of dgate that the server and the client share: the
//! screen model (vt100 with DEC line drawing, alternate-screen memory and
//! snapshots), the ttyrec format, and recordings opened for replay (a keyframe
//! index for seeking, and a playback clock).

pub mod recording;
pub mod screen;
pub mod ttyrec;

pub use screen::{ScreenModel, TermSize};
