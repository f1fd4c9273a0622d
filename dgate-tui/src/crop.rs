//! Which part of a game larger than its view is shown (the dgate client's
//! views and the SSH front end's cropped view both draw through it).
//!
//! What a spectator needs of a roguelike, in order: the cursor (the hero,
//! a menu's choice), the bottom lines (NetHack's `Dlvl`/`HP` status lines,
//! DCSS's latest messages), the top line (NetHack's messages), then the
//! map around the cursor. So:
//!
//! 1. Rows and columns past the last one with anything on it (or the
//!    cursor) are dropped first: a game often draws in part of its terminal
//!    (NetHack on a 100x30 terminal draws in its top-left 80x24), and a blank
//!    is no loss.
//! 2. When the rows left are still a few more than the view has (at most
//!    a third of its height, a view of [`KEEP_ENDS_MIN_ROWS`] rows or more),
//!    the view keeps the first row and the last two, and shows the rows
//!    between them through a window that follows the cursor.
//! 3. Otherwise, a window that follows the cursor, moving only when the
//!    cursor nears its edge ([`follow`]); columns always so.

use dgate_term::vt::{Cell, Color, Terminal};

/// Rows kept at the top and at the bottom while rows are a few short.
const KEEP_TOP: u16 = 1;
const KEEP_BOTTOM: u16 = 2;
/// The fewest rows a view keeps the top and bottom rows in: fewer, and the
/// window between them would be too small to follow anything.
pub const KEEP_ENDS_MIN_ROWS: u16 = 8;

/// Where the visible window stood at the last draw, so that it moves only
/// when the cursor nears its edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Crop {
    /// The first row of the part that follows the cursor (the whole window,
    /// or the rows between the kept ends).
    pub top: u16,
    /// The first column shown.
    pub left: u16,
}

/// What a view shows of a game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The game rows, top to bottom.
    pub rows: Vec<u16>,
    /// The first game column; the view's width of columns from it.
    pub left: u16,
}

impl Crop {
    /// What a `width`x`height` view of `screen` shows now (at most the
    /// game's size); the window follows the cursor from where it was.
    pub fn place(&mut self, screen: &Terminal, width: u16, height: u16) -> Shown {
        let (rows, cols) = screen.size();
        if rows <= height && cols <= width {
            *self = Crop::default();
            return Shown {
                rows: (0..rows).collect(),
                left: 0,
            };
        }
        let (cursor_row, cursor_col) = screen.cursor_position();
        let (used_rows, used_cols) = used(screen);
        self.left = follow(self.left, cursor_col, used_cols, width);
        Shown {
            rows: rows_shown(&mut self.top, cursor_row, used_rows, height),
            left: self.left,
        }
    }
}

/// The rows of a game a view of `height` rows shows, top to bottom, when the
/// game's rows past `used` are blank and its cursor is on `cursor`. `top` is
/// where the part that follows the cursor started at the last draw.
pub fn rows_shown(top: &mut u16, cursor: u16, used: u16, height: u16) -> Vec<u16> {
    if used <= height {
        *top = 0;
        return (0..height).collect();
    }
    let kept = KEEP_TOP + KEEP_BOTTOM;
    if height >= KEEP_ENDS_MIN_ROWS && used - height <= height / 3 {
        // The first row, a window on the rows between, the last two.
        let (between, visible) = (used - kept, height - kept);
        // A cursor on a kept row leaves the window between where it was.
        *top = if (KEEP_TOP..used - KEEP_BOTTOM).contains(&cursor) {
            follow(*top, cursor - KEEP_TOP, between, visible)
        } else {
            (*top).min(between - visible)
        };
        let middle = KEEP_TOP + *top..KEEP_TOP + *top + visible;
        return (0..KEEP_TOP)
            .chain(middle)
            .chain(used - KEEP_BOTTOM..used)
            .collect();
    }
    *top = follow(*top, cursor, used, height);
    (*top..*top + height).collect()
}

/// The rows and columns up to the last one with anything on it (a
/// character, a background colour, inverse or underline) or the cursor.
pub fn used(screen: &Terminal) -> (u16, u16) {
    let (rows, cols) = screen.size();
    let (cursor_row, cursor_col) = screen.cursor_position();
    let (mut last_row, mut last_col) = (cursor_row, cursor_col);
    for row in 0..rows {
        let marked = (0..cols)
            .rev()
            .find(|&col| screen.cell(row, col).is_some_and(marked));
        if let Some(col) = marked {
            last_row = last_row.max(row);
            last_col = last_col.max(col);
        }
    }
    ((last_row + 1).min(rows), (last_col + 1).min(cols))
}

/// A cell that shows something.
fn marked(cell: &Cell) -> bool {
    cell.has_contents() || cell.bgcolor() != Color::Default || cell.inverse() || cell.underline()
}

/// The first game line (or column) to show so that `cursor` stays visible,
/// moving the window only when the cursor comes within a quarter of an edge.
pub fn follow(offset: u16, cursor: u16, game: u16, visible: u16) -> u16 {
    if visible == 0 || game <= visible {
        return 0;
    }
    let max = game - visible;
    let margin = visible / 4;
    let mut offset = offset.min(max);
    if cursor < offset + margin {
        offset = cursor.saturating_sub(margin);
    } else if cursor >= offset + visible - margin {
        offset = (cursor + margin + 1).saturating_sub(visible);
    }
    offset.min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(cols: u16, rows: u16, bytes: &[u8]) -> Terminal {
        let mut t = Terminal::new(cols, rows);
        t.process(bytes);
        t
    }

    /// NetHack's layout as its tty port draws it on a terminal larger than
    /// 80x24: the message line, the map (rows 1-21), the status lines
    /// (rows 22-23), nothing below or right of them; the hero at (`row`, 40).
    fn nethack(cols: u16, rows: u16, row: u16) -> Terminal {
        let mut bytes = b"\x1b[1;1HYou hear the footsteps of a guard on patrol.".to_vec();
        for map_row in 2..=22 {
            bytes.extend(format!("\x1b[{map_row};1H|.. {map_row}\x1b[{map_row};79H|").bytes());
        }
        bytes.extend(b"\x1b[23;1HAgnes the Stripling  St:18/07 Dx:12 Co:12 In:9 Wi:8 Ch:9 Neutral");
        bytes.extend(b"\x1b[24;1HDlvl:1 $:0 HP:16(16) Pw:2(2) AC:6 Xp:1");
        bytes.extend(format!("\x1b[{};41H@\x1b[{};41H", row + 1, row + 1).bytes());
        screen(cols, rows, &bytes)
    }

    #[test]
    fn the_window_moves_only_when_the_cursor_nears_an_edge() {
        // 24 game rows in 10: a margin of 2.
        assert_eq!(follow(0, 5, 24, 10), 0);
        assert_eq!(follow(0, 8, 24, 10), 1);
        assert_eq!(follow(5, 8, 24, 10), 5);
        assert_eq!(follow(5, 6, 24, 10), 4);
        assert_eq!(follow(0, 23, 24, 10), 14);
        assert_eq!(follow(9, 3, 24, 24), 0);
    }

    #[test]
    fn blank_rows_and_columns_past_the_game_are_dropped_first() {
        let game = nethack(100, 30, 10);
        assert_eq!(used(&game), (24, 79));
        // 80x24 of it, in a view of 80x24 (`dgate watch` without its status line).
        let mut crop = Crop::default();
        let shown = crop.place(&game, 80, 24);
        assert_eq!(shown.rows, (0..24).collect::<Vec<_>>());
        assert_eq!(shown.left, 0);
        // The cursor past the drawing counts: nothing it is on is dropped.
        let game = screen(100, 30, b"top\x1b[27;90H");
        assert_eq!(used(&game), (27, 90));
    }

    #[test]
    fn a_few_rows_short_the_top_and_bottom_rows_stay() {
        // NetHack at 100x30 watched in 80x23 (an 80x24 terminal and a status line).
        let mut crop = Crop::default();
        for hero in [1, 5, 10, 15, 21, 10, 2] {
            let game = nethack(100, 30, hero);
            let shown = crop.place(&game, 80, 23);
            assert_eq!(shown.rows.len(), 23);
            assert_eq!(shown.left, 0, "no column of NetHack's is dropped");
            assert_eq!(shown.rows[0], 0, "the message line");
            assert_eq!(shown.rows[21..], [22, 23], "the status lines");
            assert!(
                shown.rows.contains(&hero),
                "the hero on row {hero}: {shown:?}"
            );
            assert!(shown.rows.windows(2).all(|w| w[0] < w[1]), "{shown:?}");
        }
    }

    #[test]
    fn the_last_rows_of_a_game_that_fills_its_terminal_stay() {
        // The test game at 100x30 with a line on its last row, in 80x23.
        let mut top = 0;
        for cursor in [2, 12, 19, 25, 3] {
            let rows = rows_shown(&mut top, cursor, 30, 23);
            assert_eq!(rows.len(), 23);
            assert_eq!((rows[0], rows[21], rows[22]), (0, 28, 29));
            assert!(rows.contains(&cursor), "cursor {cursor}: {rows:?}");
        }
        // Seven rows short is a third of 23: still kept. Eight is not.
        assert_eq!(rows_shown(&mut 0, 5, 31, 23)[22], 22);
        // A cursor on a kept row leaves the window between where it was.
        let mut top = 4;
        let rows = rows_shown(&mut top, 29, 30, 23);
        assert_eq!(top, 4);
        assert_eq!(rows[1..21], (5..25).collect::<Vec<_>>());
    }

    #[test]
    fn far_too_few_rows_show_a_window_around_the_cursor() {
        let mut crop = Crop::default();
        // 24 rows in 10: a window that follows the hero, no kept ends.
        let shown = crop.place(&nethack(80, 24, 15), 80, 10);
        assert_eq!(shown.rows, (8..18).collect::<Vec<_>>());
        // A view too small to keep ends, however few rows are missing.
        assert_eq!(rows_shown(&mut 0, 0, 8, 7), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn columns_follow_the_cursor() {
        let game = screen(100, 24, b"\x1b[1;1Hleft\x1b[1;95Hright\x1b[1;96H");
        let mut crop = Crop::default();
        let shown = crop.place(&game, 80, 24);
        // Up to the last column used (99), with a quarter's margin.
        assert_eq!(shown.left, 19);
        assert_eq!(shown.rows, (0..24).collect::<Vec<_>>());
    }
}
