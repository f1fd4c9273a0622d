//! The screen model shared by the server and the client: a vt100 parser fed
//! every frame of a game, and the snapshot (keyframe) that redraws its whole
//! visible state on a reset terminal.
//!
//! On the server each session's hub owns one and touches it only under the
//! hub's pipeline lock; the client keeps one per watched game, fed the server's
//! snapshot and then its frames, and draws it.

use std::num::NonZeroU16;

use serde::Deserialize;

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
    /// Character sets (DEC line drawing), which vt100 does not implement.
    charsets: Charsets,
    /// Reused buffer for frames whose line-drawing characters are translated.
    translated: Vec<u8>,
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
            charsets: Charsets::default(),
            translated: Vec::new(),
            saved_primary: None,
        }
    }

    pub fn size(&self) -> TermSize {
        let (rows, cols) = self.parser.screen().size();
        TermSize::new(cols.get(), rows.get())
    }

    /// Feeds one frame of game output.
    ///
    /// Text drawn in the DEC special graphics set (`ESC ( 0`, or SO with
    /// `ESC ) 0`: NetHack's DECgraphics) reaches the screen as the Unicode
    /// line-drawing characters a viewer's terminal would show.
    pub fn process(&mut self, bytes: &[u8]) {
        if self.charsets.may_translate(bytes) {
            let mut translated = std::mem::take(&mut self.translated);
            translated.clear();
            self.charsets.translate(bytes, &mut translated);
            self.process_translated(&translated);
            self.translated = translated;
        } else {
            self.process_translated(bytes);
        }
    }

    fn process_translated(&mut self, mut bytes: &[u8]) {
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
        // Last, so that the text above is drawn in the default set.
        self.charsets.restore(&mut out);
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
    memchr::memchr_iter(0x1b, bytes).find_map(|at| {
        let rest = &bytes[at..];
        // Cheap first test: every candidate starts `ESC [ ?`.
        if rest.get(2) != Some(&b'?') {
            return None;
        }
        ENTER_ALTERNATE
            .iter()
            .find(|seq| rest.starts_with(seq))
            .map(|seq| (at, seq.len()))
    })
}

/// The DEC special graphics set, 0x5f..=0x7e, as Unicode.
const DEC_GRAPHICS: [char; 32] = [
    ' ', '◆', '▒', '␉', '␌', '␍', '␊', '°', '±', '␤', '␋', '┘', '┐', '┌', '└', '┼', '⎺', '⎻', '─',
    '⎼', '⎽', '├', '┤', '┴', '┬', '│', '≤', '≥', 'π', '≠', '£', '·',
];

/// Where the byte stream is, as far as telling text from control sequences needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Lexer {
    #[default]
    Text,
    Escape,
    /// `ESC (` or `ESC )`: the next byte designates G0 or G1.
    Designate(u8),
    /// Other `ESC` intermediates (`ESC #`, `ESC %`, ...).
    EscapeIntermediate,
    Csi,
    /// OSC, ended by BEL or ST.
    Osc,
    /// DCS, SOS, PM, APC: ended by ST.
    String,
    /// `ESC` inside an OSC or string: ST if `\` follows.
    StringEscape,
}

/// The G0/G1 character sets and the shift state, tracked with just enough of a
/// lexer to know which bytes are text.
///
/// Frames that cannot involve line drawing skip the lexer; it assumes such a
/// frame leaves the stream between sequences.
#[derive(Debug, Default)]
struct Charsets {
    g0_graphics: bool,
    g1_graphics: bool,
    /// SO is in effect: G1 is the active set.
    shifted: bool,
    lexer: Lexer,
}

impl Charsets {
    fn graphics_active(&self) -> bool {
        if self.shifted {
            self.g1_graphics
        } else {
            self.g0_graphics
        }
    }

    /// False when `bytes` certainly draws nothing in the graphics set and
    /// designates no set: the common case, which needs no translation.
    fn may_translate(&self, bytes: &[u8]) -> bool {
        if self.graphics_active() || self.lexer != Lexer::Text {
            return true;
        }
        if self.g1_graphics && bytes.contains(&0x0e) {
            return true;
        }
        // An `ESC (` or `ESC )`, or an `ESC` at the end that might start one.
        memchr::memchr_iter(0x1b, bytes)
            .any(|i| matches!(bytes.get(i + 1), None | Some(b'(' | b')')))
    }

    /// Copies `input` to `out`, replacing text in the graphics set by the
    /// UTF-8 of its Unicode characters.
    fn translate(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 16);
        for &b in input {
            let mut text = false;
            self.lexer = match (self.lexer, b) {
                // CAN and SUB abort any sequence.
                (_, 0x18 | 0x1a) => Lexer::Text,
                (Lexer::Text, 0x1b) => Lexer::Escape,
                (Lexer::Text, 0x0e) => {
                    self.shifted = true;
                    Lexer::Text
                }
                (Lexer::Text, 0x0f) => {
                    self.shifted = false;
                    Lexer::Text
                }
                (Lexer::Text, _) => {
                    text = true;
                    Lexer::Text
                }
                (Lexer::Escape, b'[') => Lexer::Csi,
                (Lexer::Escape, b']') => Lexer::Osc,
                (Lexer::Escape, b'P' | b'X' | b'^' | b'_') => Lexer::String,
                (Lexer::Escape, b'(' | b')') => Lexer::Designate(b),
                (Lexer::Escape, 0x20..=0x2f) => Lexer::EscapeIntermediate,
                (Lexer::Escape, 0x1b) => Lexer::Escape,
                (Lexer::Escape, _) => Lexer::Text,
                (Lexer::Designate(which), set) => {
                    let graphics = set == b'0';
                    if which == b'(' {
                        self.g0_graphics = graphics;
                    } else {
                        self.g1_graphics = graphics;
                    }
                    Lexer::Text
                }
                (Lexer::EscapeIntermediate, 0x20..=0x2f) => Lexer::EscapeIntermediate,
                (Lexer::EscapeIntermediate, _) => Lexer::Text,
                (Lexer::Csi, 0x1b) => Lexer::Escape,
                (Lexer::Csi, 0x40..=0x7e) => Lexer::Text,
                (Lexer::Csi, _) => Lexer::Csi,
                (Lexer::Osc, 0x07) => Lexer::Text,
                (Lexer::Osc | Lexer::String, 0x1b) => Lexer::StringEscape,
                (Lexer::Osc, _) => Lexer::Osc,
                (Lexer::String, _) => Lexer::String,
                (Lexer::StringEscape, _) => Lexer::Text,
            };
            match b {
                0x5f..=0x7e if text && self.graphics_active() => {
                    let c = DEC_GRAPHICS[usize::from(b - 0x5f)];
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }

    /// Sequences that put a reset terminal in the same character-set state.
    fn restore(&self, out: &mut Vec<u8>) {
        if self.g0_graphics {
            out.extend_from_slice(b"\x1b(0");
        }
        if self.g1_graphics {
            out.extend_from_slice(b"\x1b)0");
        }
        if self.shifted {
            out.push(0x0e);
        }
    }
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
    fn dec_line_drawing_becomes_unicode_and_survives_a_snapshot() {
        let size = TermSize::new(20, 5);
        let mut model = ScreenModel::new(size);
        // NetHack's DECgraphics: `ESC ( 0` around wall runs, colours in between.
        model.process(b"\x1b(0lqq\x1b[1;34mk\x1b[0m\x1b(B ok\r\n\x1b(0x\x1b(B @ \x1b(0x");
        assert_eq!(model.screen().contents(), "┌──┐ ok\n│ @ │");
        // The player is still in the graphics set: later text keeps drawing lines.
        let mut viewer = ScreenModel::new(size);
        viewer.process(&model.snapshot());
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
                .is_some_and(|c| c.fgcolor() == vt100::Color::Idx(1))
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
