//! The session's screen model: a vt100 parser fed every frame, and the snapshot
//! (keyframe) that redraws its whole visible state on a reset terminal.
//!
//! Owned by the hub and touched only under the hub's pipeline lock.

use std::num::NonZeroU16;

use crate::config::TermSize;

/// The state a snapshot restores, beyond what vt100 renders itself: the window
/// title (vt100 reports it through a callback and keeps no copy).
#[derive(Debug, Default)]
struct Title {
    title: Vec<u8>,
}

impl vt100::Callbacks for Title {
    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.title.clear();
        self.title.extend_from_slice(title);
    }
}

/// A terminal emulator that mirrors what the player's terminal shows.
///
/// Invariant: it has seen exactly the frames the hub numbered, in order, so a
/// snapshot taken at frame K plus frames K+1.. reproduces the player's screen.
pub struct ScreenModel {
    parser: vt100::Parser<Title>,
    /// The primary screen as it was when the game switched to the alternate
    /// screen: vt100 renders only the visible grid, and a viewer that joins while
    /// the alternate screen is up must still get the right primary screen back
    /// when the game leaves it. `None` while the primary screen is shown.
    saved_primary: Option<String>,
}

impl std::fmt::Debug for ScreenModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenModel")
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

/// Sequences that switch to the alternate screen.
const ENTER_ALTERNATE: [&[u8]; 3] = [b"\x1b[?1049h", b"\x1b[?1047h", b"\x1b[?47h"];

impl ScreenModel {
    pub fn new(size: TermSize) -> Self {
        let (rows, cols) = nonzero(size);
        Self {
            parser: vt100::Parser::new_with_callbacks(rows, cols, 0, Title::default()),
            saved_primary: None,
        }
    }

    pub fn size(&self) -> TermSize {
        let (rows, cols) = self.parser.screen().size();
        TermSize::new(cols.get(), rows.get())
    }

    /// Feeds one frame of game output.
    pub fn process(&mut self, mut bytes: &[u8]) {
        // Split the frame where it enters the alternate screen, to keep a copy of
        // the primary screen as it was at that moment (the primary screen does
        // not change while the alternate one is up).
        while !self.parser.screen().alternate_screen() {
            let Some((at, len)) = find_enter_alternate(bytes) else {
                break;
            };
            self.parser.process(&bytes[..at]);
            self.saved_primary = Some(self.parser.screen().contents_formatted());
            self.parser.process(&bytes[at..at + len]);
            bytes = &bytes[at + len..];
        }
        self.parser.process(bytes);
        if !self.parser.screen().alternate_screen() {
            self.saved_primary = None;
        }
    }

    pub fn resize(&mut self, size: TermSize) {
        let (rows, cols) = nonzero(size);
        self.parser.set_size(rows, cols);
    }

    /// Bytes that, written to a freshly reset terminal of this size, reproduce
    /// the visible state: every cell with its colours and attributes, the
    /// primary screen behind an alternate one, cursor position and visibility,
    /// the current pen, input modes (application cursor and keypad, bracketed
    /// paste, mouse) and the window title.
    pub fn snapshot(&self) -> Vec<u8> {
        let screen = self.parser.screen();
        let mut out = Vec::with_capacity(4096);
        if screen.alternate_screen() {
            if let Some(primary) = &self.saved_primary {
                out.extend_from_slice(primary.as_bytes());
            }
            out.extend_from_slice(b"\x1b[?1049h");
        }
        out.extend_from_slice(screen.contents_formatted().as_bytes());
        out.extend_from_slice(screen.input_mode_formatted().as_bytes());
        let title = &self.parser.callbacks().title;
        if !title.is_empty() {
            out.extend_from_slice(b"\x1b]2;");
            out.extend_from_slice(title);
            out.extend_from_slice(b"\x07");
        }
        out
    }

    /// The vt100 screen, for tests and for renderers that draw cells.
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    pub fn title(&self) -> &[u8] {
        &self.parser.callbacks().title
    }
}

fn nonzero(size: TermSize) -> (NonZeroU16, NonZeroU16) {
    (
        NonZeroU16::new(size.rows).unwrap_or(NonZeroU16::MIN),
        NonZeroU16::new(size.cols).unwrap_or(NonZeroU16::MIN),
    )
}

/// The first alternate-screen switch in `bytes`: (offset, length).
fn find_enter_alternate(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(pos) = bytes[from..].iter().position(|&b| b == 0x1b) {
        let at = from + pos;
        if let Some(seq) = ENTER_ALTERNATE.iter().find(|s| bytes[at..].starts_with(s)) {
            return Some((at, seq.len()));
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a viewer's terminal shows after writing `bytes` to a reset terminal.
    fn replay(size: TermSize, bytes: &[u8]) -> vt100::Parser<Title> {
        let mut p = vt100::Parser::new_with_callbacks(
            NonZeroU16::new(size.rows).expect("rows"),
            NonZeroU16::new(size.cols).expect("cols"),
            0,
            Title::default(),
        );
        p.process(bytes);
        p
    }

    fn assert_same(a: &vt100::Screen, b: &vt100::Screen) {
        assert_eq!(a.contents_formatted(), b.contents_formatted());
        assert_eq!(a.cursor_position(), b.cursor_position());
        assert_eq!(a.hide_cursor(), b.hide_cursor());
        assert_eq!(a.alternate_screen(), b.alternate_screen());
        assert_eq!(a.input_mode_formatted(), b.input_mode_formatted());
    }

    #[test]
    fn snapshot_restores_cells_cursor_modes_and_title() {
        let size = TermSize::new(40, 10);
        let mut model = ScreenModel::new(size);
        model.process(b"\x1b]2;NetHack\x07\x1b[1;31mred\x1b[0m \x1b[44mblue bg\x1b[0m\r\n");
        model.process(b"\x1b[?1h\x1b=\x1b[?2004h\x1b[?1000h\x1b[?25l\x1b[5;7H\x1b[4munder");
        let viewer = replay(size, &model.snapshot());
        assert_same(model.screen(), viewer.screen());
        assert_eq!(viewer.callbacks().title, b"NetHack");
        assert!(viewer.screen().application_cursor());
        assert!(viewer.screen().application_keypad());
        assert!(viewer.screen().bracketed_paste());
        assert!(viewer.screen().hide_cursor());
        // The pen carries over: text written after the snapshot looks the same.
        let mut player = replay(size, b"");
        player.process(b"\x1b]2;NetHack\x07\x1b[1;31mred\x1b[0m \x1b[44mblue bg\x1b[0m\r\n");
        player.process(b"\x1b[?1h\x1b=\x1b[?2004h\x1b[?1000h\x1b[?25l\x1b[5;7H\x1b[4munder");
        let mut viewer = viewer;
        player.process(b" more");
        viewer.process(b" more");
        assert_same(player.screen(), viewer.screen());
    }

    #[test]
    fn snapshot_on_alternate_screen_keeps_the_primary_screen() {
        let size = TermSize::new(20, 5);
        let mut model = ScreenModel::new(size);
        let mut player = replay(size, b"");
        let before = b"shell prompt $ \x1b[?1049h\x1b[Halt screen game";
        model.process(before);
        player.process(before);
        let mut viewer = replay(size, &model.snapshot());
        assert_same(player.screen(), viewer.screen());
        // Leaving the alternate screen shows the same primary screen to both.
        player.process(b"\x1b[?1049l");
        viewer.process(b"\x1b[?1049l");
        assert_same(player.screen(), viewer.screen());
        assert!(viewer.screen().contents().contains("shell prompt"));
    }

    #[test]
    fn resize_changes_the_snapshot_size() {
        let mut model = ScreenModel::new(TermSize::new(80, 24));
        model.resize(TermSize::new(100, 30));
        assert_eq!(model.size(), TermSize::new(100, 30));
    }
}
