//! The screen model shared by the server and the client: dgate's terminal
//! ([`crate::vt`]) fed every frame of a game, and the snapshot (keyframe)
//! that re-creates its whole state on a reset terminal.
//!
//! On the server each session's hub owns one and touches it only under the
//! hub's pipeline lock; the client keeps one per watched game, fed the server's
//! snapshot and then its frames, and draws it.

use serde::Deserialize;

use crate::vt::Terminal;

/// A terminal size, written `COLSxROWS` (`80x24`). Both are at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct TermSize {
    pub cols: u16,
    pub rows: u16,
}

impl TermSize {
    pub const fn new(cols: u16, rows: u16) -> Self {
        Self { cols, rows }
    }

    /// True when both sides are within `max` (and neither is zero).
    pub fn fits_within(self, max: TermSize) -> bool {
        self.cols >= 1 && self.rows >= 1 && self.cols <= max.cols && self.rows <= max.rows
    }
}

impl std::fmt::Display for TermSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.cols, self.rows)
    }
}

impl std::str::FromStr for TermSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a terminal size like \"80x24\"");
        let (cols, rows) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let cols: u16 = cols.trim().parse().map_err(|_| bad())?;
        let rows: u16 = rows.trim().parse().map_err(|_| bad())?;
        if cols == 0 || rows == 0 {
            return Err(format!("{s:?}: columns and rows must be at least 1"));
        }
        Ok(Self { cols, rows })
    }
}

impl TryFrom<String> for TermSize {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A terminal emulator that mirrors what the player's terminal shows
/// ([`crate::vt::Terminal`]).
///
/// Invariant: it has seen exactly the frames the hub numbered, in order, so a
/// snapshot taken at frame K plus frames K+1.. reproduces the player's screen.
pub struct ScreenModel {
    terminal: Terminal,
}

impl std::fmt::Debug for ScreenModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenModel")
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl ScreenModel {
    pub fn new(size: TermSize) -> Self {
        Self {
            terminal: Terminal::new(size.cols.max(1), size.rows.max(1)),
        }
    }

    pub fn size(&self) -> TermSize {
        let (rows, cols) = self.terminal.size();
        TermSize::new(cols, rows)
    }

    /// Feeds one frame of game output. Text drawn in the DEC special
    /// graphics set (NetHack's DECgraphics) is kept as the Unicode
    /// line-drawing characters a viewer's terminal would show.
    pub fn process(&mut self, bytes: &[u8]) {
        self.terminal.process(bytes);
    }

    pub fn resize(&mut self, size: TermSize) {
        self.terminal.resize(size.cols.max(1), size.rows.max(1));
    }

    /// Bytes that, written to a freshly reset terminal of this size, re-create
    /// the whole state a later frame can depend on (see [`Terminal::snapshot`]).
    pub fn snapshot(&self) -> Vec<u8> {
        self.terminal.snapshot()
    }

    /// The terminal, for renderers that draw cells and for tests.
    pub fn screen(&self) -> &Terminal {
        &self.terminal
    }

    pub fn title(&self) -> &[u8] {
        self.terminal.title()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A viewer: a fresh model fed `bytes`.
    fn replay(size: TermSize, bytes: &[u8]) -> ScreenModel {
        let mut model = ScreenModel::new(size);
        model.process(bytes);
        model
    }

    fn assert_same(a: &ScreenModel, b: &ScreenModel) {
        assert_eq!(
            a.screen().contents_formatted(),
            b.screen().contents_formatted()
        );
        assert_eq!(a.screen().cursor_position(), b.screen().cursor_position());
        assert_eq!(a.screen().hide_cursor(), b.screen().hide_cursor());
        assert_eq!(a.screen().alternate_screen(), b.screen().alternate_screen());
        assert_eq!(
            a.screen().input_mode_formatted(),
            b.screen().input_mode_formatted()
        );
    }

    #[test]
    fn snapshot_restores_cells_cursor_modes_and_title() {
        let size = TermSize::new(40, 10);
        let frames: [&[u8]; 2] = [
            b"\x1b]2;NetHack\x07\x1b[1;31mred\x1b[0m \x1b[44mblue bg\x1b[0m\r\n",
            b"\x1b[?1h\x1b=\x1b[?2004h\x1b[?1000h\x1b[?25l\x1b[5;7H\x1b[4munder",
        ];
        let mut player = ScreenModel::new(size);
        for f in frames {
            player.process(f);
        }
        let mut viewer = replay(size, &player.snapshot());
        assert_same(&player, &viewer);
        assert_eq!(viewer.title(), b"NetHack");
        assert!(viewer.screen().application_cursor());
        assert!(viewer.screen().application_keypad());
        assert!(viewer.screen().bracketed_paste());
        assert!(viewer.screen().hide_cursor());
        // The pen carries over: text written after the snapshot looks the same.
        player.process(b" more");
        viewer.process(b" more");
        assert_same(&player, &viewer);
    }

    #[test]
    fn snapshot_on_alternate_screen_keeps_the_primary_screen() {
        let size = TermSize::new(20, 5);
        let mut player = ScreenModel::new(size);
        player.process(b"shell prompt $ \x1b[?1049h\x1b[Halt screen game");
        let mut viewer = replay(size, &player.snapshot());
        assert_same(&player, &viewer);
        // Leaving the alternate screen shows the same primary screen to both.
        player.process(b"\x1b[?1049l");
        viewer.process(b"\x1b[?1049l");
        assert_same(&player, &viewer);
        assert!(viewer.screen().contents().contains("shell prompt"));
    }

    #[test]
    fn dec_line_drawing_becomes_unicode_and_survives_a_snapshot() {
        let size = TermSize::new(20, 5);
        let mut model = ScreenModel::new(size);
        // NetHack's DECgraphics: `ESC ( 0` around wall runs, colours in between.
        model.process(b"\x1b(0lqq\x1b[1;34mk\x1b[0m\x1b(B ok\r\n\x1b(0x\x1b(B @ \x1b(0x");
        assert_eq!(model.screen().contents(), "┌──┐ ok\n│ @ │");
        // The player is still in the graphics set: later text keeps drawing lines.
        let mut viewer = replay(size, &model.snapshot());
        assert_eq!(viewer.screen().contents(), model.screen().contents());
        model.process(b"q");
        viewer.process(b"q");
        assert_eq!(viewer.screen().contents(), "┌──┐ ok\n│ @ │─");
        assert_eq!(viewer.screen().contents(), model.screen().contents());
    }

    #[test]
    fn sequences_are_never_translated_and_so_si_switch_sets() {
        let mut model = ScreenModel::new(TermSize::new(20, 3));
        // In the graphics set, the `m` ending SGR and the OSC text stay what they are.
        model.process(b"\x1b(0\x1b[31mq\x1b]2;title q\x07\x1b(B");
        // G1 = graphics; SO shifts to it, SI back.
        model.process(b"\x1b)0a\x0eq\x0fq");
        assert_eq!(model.screen().contents(), "─a─q");
        assert_eq!(model.title(), b"title q");
        assert!(
            model
                .screen()
                .cell(0, 0)
                .is_some_and(|c| c.fgcolor() == crate::vt::Color::Idx(1))
        );
        // A designation split across two frames is still seen.
        model.process(b"\x1b");
        model.process(b"(0q\x1b(B");
        assert_eq!(model.screen().contents(), "─a─q─");
    }

    #[test]
    fn resize_changes_the_snapshot_size() {
        let mut model = ScreenModel::new(TermSize::new(80, 24));
        model.resize(TermSize::new(100, 30));
        assert_eq!(model.size(), TermSize::new(100, 30));
    }
}
