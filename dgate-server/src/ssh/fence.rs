//! A game passed through to a terminal larger than the game. Its bytes are
//! written as they are, so what they do past the game's edges (where the
//! player's terminal ends, and this one goes on) must be kept out or caught.
//!
//! [`Fence`] keeps out what a terminal can: the game's rows are the scroll
//! region, so a line feed on the last row, an inserted or deleted line scroll
//! the game as on the player's terminal, not the status line below it. It
//! reads every frame (a `vte` parser, nothing drawn) for what a terminal
//! cannot keep out:
//! - an erase of the display or a switch of screens: the status line below
//!   the game is gone (its watcher writes it again);
//! - the cursor sent past the game's last row or column (the player's
//!   terminal stops it at its edge, a larger one does not), the scroll region
//!   or the whole terminal reset, an inserted character pushing the row past
//!   a narrower game's edge: the screen is no longer the player's (its
//!   watcher redraws from a snapshot, which the fence then guards again).
//!
//! Text that runs on past the right edge of a narrower game (where the
//! player's terminal wraps it) is not caught: that needs the cursor, and so a
//! screen model per watcher, which passing the game through exists to avoid.

use dgate_term::TermSize;
use vte::{Params, Parser, Perform};

/// What a frame did past the game's edges, worst last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Breach {
    #[default]
    None,
    /// The status line below the game was erased or is on the other screen.
    StatusErased,
    /// The terminal no longer shows what the player's does.
    Escaped,
}

/// The edges of a game passed through to a terminal larger than it.
pub(super) struct Fence {
    parser: Parser,
    edges: Edges,
}

/// The game's size, and the sides on which the terminal has more.
#[derive(Debug, Clone, Copy)]
struct Edges {
    size: TermSize,
    taller: bool,
    wider: bool,
}

impl Fence {
    /// The fence for `game` on a terminal of `terminal` (columns, rows) that
    /// it fits in; `None` when they are the same size (nothing to guard).
    pub(super) fn around(game: TermSize, (cols, rows): (u16, u16)) -> Option<Self> {
        let (taller, wider) = (rows > game.rows, cols > game.cols);
        (taller || wider).then(|| Self {
            parser: Parser::new(),
            edges: Edges {
                size: game,
                taller,
                wider,
            },
        })
    }

    /// Written before the game's snapshot (after a reset): the game's rows
    /// as the scroll region. The snapshot sets the game's own region over
    /// it, if the game has one.
    pub(super) fn setup(&self) -> Vec<u8> {
        if self.edges.taller {
            format!("\x1b[1;{}r", self.edges.size.rows).into_bytes()
        } else {
            Vec::new()
        }
    }

    /// What `frame`, written to the terminal, did past the game's edges.
    /// Sequences split between frames are read whole.
    pub(super) fn check(&mut self, frame: &[u8]) -> Breach {
        let mut reader = Reader {
            edges: self.edges,
            breach: Breach::None,
        };
        self.parser.advance(&mut reader, frame);
        reader.breach
    }
}

/// One frame's read.
struct Reader {
    edges: Edges,
    breach: Breach,
}

impl Reader {
    fn found(&mut self, breach: Breach) {
        self.breach = self.breach.max(breach);
    }

    /// A row the cursor is sent to, 1-based.
    fn row(&mut self, row: u16) {
        if self.edges.taller && row > self.edges.size.rows {
            self.found(Breach::Escaped);
        }
    }

    /// A column the cursor is sent to, 1-based.
    fn column(&mut self, col: u16) {
        if self.edges.wider && col > self.edges.size.cols {
            self.found(Breach::Escaped);
        }
    }
}

/// The `n`th parameter (0-based), 0 when absent.
fn param(params: &Params, n: usize) -> u16 {
    params.iter().nth(n).map_or(0, |p| p[0])
}

impl Perform for Reader {
    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], _ignore: bool, action: char) {
        let (rows, cols) = (self.edges.size.rows, self.edges.size.cols);
        let private = intermediates.first() == Some(&b'?');
        match (action, private) {
            // ED, DECSED: the status line is erased with the rest.
            ('J', _) if self.edges.taller => self.found(Breach::StatusErased),
            // CUP, HVP: absolute moves.
            ('H' | 'f', false) => {
                self.row(param(params, 0).max(1));
                self.column(param(params, 1).max(1));
            }
            // VPA; CHA, HPA.
            ('d', false) => self.row(param(params, 0).max(1)),
            ('G' | '`', false) => self.column(param(params, 0).max(1)),
            // Moves by as much as the game is large go past its edge from anywhere.
            ('B' | 'E' | 'e', false) if param(params, 0) >= rows => self.row(u16::MAX),
            ('C' | 'a', false) if param(params, 0) >= cols => self.column(u16::MAX),
            // DECSTBM: the whole terminal (no bottom), or past the game's rows.
            ('r', false) if self.edges.taller => {
                let bottom = param(params, 1);
                if bottom == 0 || bottom > rows {
                    self.found(Breach::Escaped);
                }
            }
            // ICH pushes the row's end past a narrower game's edge.
            ('@', false) if self.edges.wider => self.found(Breach::Escaped),
            // The alternate screen, on or off: the status line is on the other.
            ('h' | 'l', true)
                if self.edges.taller && params.iter().any(|p| matches!(p[0], 47 | 1047 | 1049)) =>
            {
                self.found(Breach::StatusErased)
            }
            _ => {}
        }
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], _ignore: bool, byte: u8) {
        match (intermediates, byte) {
            // RIS; DECALN fills the whole terminal.
            ([], b'c') | ([b'#'], b'8') => self.found(Breach::Escaped),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(game: (u16, u16), terminal: (u16, u16)) -> Fence {
        Fence::around(TermSize::new(game.0, game.1), terminal).expect("a larger terminal")
    }

    #[test]
    fn a_terminal_of_the_games_size_needs_no_fence() {
        assert!(Fence::around(TermSize::new(80, 24), (80, 24)).is_none());
        assert_eq!(fence((80, 20), (80, 24)).setup(), b"\x1b[1;20r");
        // Wider only: no rows to keep.
        assert!(fence((70, 24), (80, 24)).setup().is_empty());
    }

    #[test]
    fn what_stays_inside_the_game_passes() {
        let mut f = fence((70, 20), (100, 30));
        for frame in [
            &b"\x1b[20;70Hx\r\n\x1b[1;1Hhello\x1b[K\x1b[2K"[..],
            b"\x1b[5;10r\x1b[1;20r\x1b[L\x1b[M\x1b[S\x1b[3B\x1b[10C\x1b[20d\x1b[70G",
            b"\x1b7\x1b[2;1Hkeys\x1b8\x1b[?25l\x1b[?1h\x1b=\x1b[1;31mred\x1b[0m",
            b"\x1b]2;a title with [99;99H in it\x07\x1b(0qqq\x1b(B",
        ] {
            assert_eq!(
                f.check(frame),
                Breach::None,
                "{:?}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn an_erase_or_a_screen_switch_takes_the_status_line() {
        let mut f = fence((80, 20), (80, 24));
        for frame in [
            &b"\x1b[2J"[..],
            b"\x1b[J",
            b"\x1b[1J",
            b"\x1b[?1049h",
            b"\x1b[?25;1049l",
            b"\x1b[?47h",
        ] {
            assert_eq!(f.check(frame), Breach::StatusErased, "{frame:?}");
        }
        // A game as tall as the terminal has no status line below it.
        let mut wider = fence((70, 24), (80, 24));
        assert_eq!(wider.check(b"\x1b[2J\x1b[?1049h"), Breach::None);
    }

    #[test]
    fn the_cursor_past_the_games_edges_escapes() {
        let mut f = fence((70, 20), (100, 30));
        for frame in [
            &b"\x1b[24;1H"[..],
            b"\x1b[21f",
            b"\x1b[5;71H",
            b"\x1b[21d",
            b"\x1b[71G",
            b"\x1b[999B",
            b"\x1b[999C",
            b"\x1b[r",
            b"\x1b[1;25r",
            b"\x1bc",
            b"\x1b#8",
            b"\x1b[3@",
            // The worst of a frame counts.
            b"\x1b[2J\x1b[24;1Hx",
        ] {
            assert_eq!(f.check(frame), Breach::Escaped, "{frame:?}");
        }
        // Only the sides where the terminal is larger: same width, any column.
        let mut taller = fence((100, 20), (100, 30));
        assert_eq!(taller.check(b"\x1b[5;100H\x1b[3@"), Breach::None);
    }

    #[test]
    fn a_sequence_split_between_frames_is_read_whole() {
        let mut f = fence((80, 20), (80, 24));
        assert_eq!(f.check(b"text\x1b[2"), Breach::None);
        assert_eq!(f.check(b"4;1Hmore"), Breach::Escaped);
        assert_eq!(f.check(b"\x1b[?10"), Breach::None);
        assert_eq!(f.check(b"49h"), Breach::StatusErased);
    }
}
