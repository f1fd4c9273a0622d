//! dgate's own terminal model, over the `vte` parser: the whole state a
//! later frame can depend on, and a snapshot ([`Terminal::snapshot`]) that
//! re-creates all of it on a freshly reset terminal of the same size.
//!
//! What it keeps, beyond the cells of both screens (colours and attributes,
//! erased cells' background included): the cursor, its visibility and style,
//! the pending wrap at the right margin, the pen, scroll margins, origin
//! mode, auto-wrap, insert mode, newline mode, tab stops, the cursor saved by
//! DECSC on each screen, the character sets G0-G3 and the one in use, the
//! modes a client needs (application cursor and keypad, bracketed paste,
//! mouse modes and encoding, focus reporting), the title, and the bytes of
//! an escape sequence or UTF-8 character a frame ended in the middle of.
//!
//! It follows xterm where terminals differ (erasing uses the pen's
//! background only; a wide character that does not fit wraps first;
//! combining characters are dropped). `vt100`, which dgate used before, does
//! not keep margins, origin mode, tab stops, insert mode or auto-wrap off,
//! so no snapshot built on it could restore them: see `docs/ARCHITECTURE.md`.

use unicode_width::UnicodeWidthChar;
use vte::{Params, Parser, Perform};

/// A cell's colour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Color {
    #[default]
    Default,
    Idx(u8),
    Rgb(u8, u8, u8),
}

/// Attribute bits of a [`Pen`].
pub mod attr {
    pub const BOLD: u8 = 1;
    pub const FAINT: u8 = 2;
    pub const ITALIC: u8 = 4;
    pub const UNDERLINE: u8 = 8;
    pub const BLINK: u8 = 16;
    pub const INVERSE: u8 = 32;
    pub const HIDDEN: u8 = 64;
    pub const STRIKE: u8 = 128;
}

/// What text is drawn with: SGR state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Pen {
    pub fg: Color,
    pub bg: Color,
    pub attrs: u8,
}

impl Pen {
    /// What erasing leaves: the background alone (xterm's back-colour erase).
    fn erased(self) -> Pen {
        Pen {
            bg: self.bg,
            ..Pen::default()
        }
    }
}

/// One character cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    ch: char,
    /// 1, or 2 for the first half of a wide character, 0 for its second half.
    width: u8,
    pen: Pen,
}

impl Cell {
    const fn blank(pen: Pen) -> Self {
        Self {
            ch: ' ',
            width: 1,
            pen,
        }
    }

    pub fn ch(&self) -> char {
        self.ch
    }

    pub fn pen(&self) -> Pen {
        self.pen
    }

    pub fn is_wide(&self) -> bool {
        self.width == 2
    }

    pub fn is_wide_continuation(&self) -> bool {
        self.width == 0
    }

    pub fn fgcolor(&self) -> Color {
        self.pen.fg
    }

    pub fn bgcolor(&self) -> Color {
        self.pen.bg
    }

    pub fn bold(&self) -> bool {
        self.pen.attrs & attr::BOLD != 0
    }

    pub fn dim(&self) -> bool {
        self.pen.attrs & attr::FAINT != 0
    }

    pub fn italic(&self) -> bool {
        self.pen.attrs & attr::ITALIC != 0
    }

    pub fn underline(&self) -> bool {
        self.pen.attrs & attr::UNDERLINE != 0
    }

    pub fn inverse(&self) -> bool {
        self.pen.attrs & attr::INVERSE != 0
    }

    /// A visible character (not a blank, not a wide character's second half).
    pub fn has_contents(&self) -> bool {
        self.width != 0 && self.ch != ' '
    }
}

#[derive(Debug, Clone)]
struct Row {
    cells: Vec<Cell>,
    /// Text ran on into the next row (auto-wrap), rather than a newline.
    wrapped: bool,
}

impl Row {
    fn new(cols: usize, pen: Pen) -> Self {
        Self {
            cells: vec![Cell::blank(pen); cols],
            wrapped: false,
        }
    }

    fn clear(&mut self, pen: Pen) {
        self.cells.fill(Cell::blank(pen));
        self.wrapped = false;
    }

    /// Shifts the cells from `col` right by `n` (those past the end are
    /// lost) and blanks the `n` it opens. A wide character it splits, at
    /// `col` or pushed half off the end, is blanked whole.
    fn insert_blanks(&mut self, col: usize, n: usize, pen: Pen) {
        if self.cells[col].width == 0 && col > 0 {
            self.cells[col - 1] = Cell::blank(pen);
            self.cells[col] = Cell::blank(pen);
        }
        let n = n.min(self.cells.len() - col);
        self.cells[col..].rotate_right(n);
        self.cells[col..col + n].fill(Cell::blank(pen));
        if let Some(last) = self.cells.last_mut()
            && last.width == 2
        {
            *last = Cell::blank(pen);
        }
    }

    /// Blanks `from..to`, and the other half of a wide character cut at either end.
    fn erase(&mut self, from: usize, to: usize, pen: Pen) {
        let to = to.min(self.cells.len());
        if from >= to {
            return;
        }
        if self.cells[from].width == 0 && from > 0 {
            self.cells[from - 1] = Cell::blank(pen);
        }
        if to < self.cells.len() && self.cells[to].width == 0 {
            self.cells[to] = Cell::blank(pen);
        }
        self.cells[from..to].fill(Cell::blank(pen));
    }
}

/// The G0-G3 sets dgate tells apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Charset {
    #[default]
    Ascii,
    /// DEC special graphics (line drawing), `ESC ( 0`.
    Graphics,
}

/// The DEC special graphics set, 0x5f..=0x7e, as Unicode.
const DEC_GRAPHICS: [char; 32] = [
    ' ', '◆', '▒', '␉', '␌', '␍', '␊', '°', '±', '␤', '␋', '┘', '┐', '┌', '└', '┼', '⎺', '⎻', '─',
    '⎼', '⎽', '├', '┤', '┴', '┬', '│', '≤', '≥', 'π', '≠', '£', '·',
];

/// What DECSC keeps: the position, pen, origin mode and auto-wrap (as
/// asciinema's terminal does; xterm keeps the character sets too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Saved {
    row: usize,
    col: usize,
    pen: Pen,
    origin: bool,
    autowrap: bool,
}

/// Mouse tracking (`?9`, `?1000`, `?1002`, `?1003`) and encoding
/// (`?1005`, `?1006`, `?1015`): the mode number, 0 for none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mouse {
    pub tracking: u16,
    pub encoding: u16,
}

/// The state `vte` drives.
#[derive(Debug, Clone)]
struct State {
    cols: usize,
    rows: usize,
    /// Primary, alternate.
    grids: [Vec<Row>; 2],
    alternate: bool,
    row: usize,
    /// `cols` when a character was just written in the last column and the
    /// next one wraps (auto-wrap on): the pending wrap.
    col: usize,
    pen: Pen,
    /// DECSC's cursor, per screen.
    saved: [Option<Saved>; 2],
    top: usize,
    bottom: usize,
    origin: bool,
    autowrap: bool,
    insert: bool,
    newline: bool,
    tabs: Vec<bool>,
    charsets: [Charset; 4],
    gl: usize,
    cursor_visible: bool,
    cursor_style: u16,
    app_cursor: bool,
    app_keypad: bool,
    bracketed_paste: bool,
    focus: bool,
    mouse: Mouse,
    title: Vec<u8>,
}

/// Bytes of an unfinished escape sequence or UTF-8 character kept for the
/// snapshot, at most this many (a longer unfinished OSC is not kept).
const MAX_PENDING: usize = 4096;

/// Where the byte stream is, to know which bytes of a frame's end are an
/// unfinished sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Lexer {
    #[default]
    Ground,
    Escape,
    EscapeIntermediate,
    Csi,
    /// OSC: ends at BEL (or an ESC, which starts the ST or a new sequence).
    Osc,
    /// DCS before its final byte: just begun, in its parameters, in its
    /// intermediates, or ignored (a malformed one, which then ends only at
    /// an ESC), as vte tells them apart.
    DcsEntry,
    DcsParam,
    DcsIntermediate,
    DcsIgnore,
    /// DCS data: ends at an ESC, or at a raw 0x9c (C1 ST).
    DcsBody,
    /// SOS, PM, APC: end at an ESC.
    String,
    /// Inside a UTF-8 character (its bytes so far are `pending`).
    Utf8,
}

/// A terminal emulator that keeps every state a snapshot must restore.
pub struct Terminal {
    parser: Parser,
    state: State,
    lexer: Lexer,
    /// The bytes since `lexer` left `Ground` (when it has).
    pending: Vec<u8>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("cols", &self.state.cols)
            .field("rows", &self.state.rows)
            .finish_non_exhaustive()
    }
}

fn default_tabs(cols: usize) -> Vec<bool> {
    (0..cols).map(|c| c > 0 && c % 8 == 0).collect()
}

impl State {
    fn new(cols: usize, rows: usize) -> Self {
        let (cols, rows) = (cols.max(1), rows.max(1));
        let grid = || vec![Row::new(cols, Pen::default()); rows];
        Self {
            cols,
            rows,
            grids: [grid(), grid()],
            alternate: false,
            row: 0,
            col: 0,
            pen: Pen::default(),
            saved: [None, None],
            top: 0,
            bottom: rows - 1,
            origin: false,
            autowrap: true,
            insert: false,
            newline: false,
            tabs: default_tabs(cols),
            charsets: [Charset::Ascii; 4],
            gl: 0,
            cursor_visible: true,
            cursor_style: 0,
            app_cursor: false,
            app_keypad: false,
            bracketed_paste: false,
            focus: false,
            mouse: Mouse::default(),
            title: Vec::new(),
        }
    }

    fn grid(&self) -> &Vec<Row> {
        &self.grids[usize::from(self.alternate)]
    }

    fn grid_mut(&mut self) -> &mut Vec<Row> {
        &mut self.grids[usize::from(self.alternate)]
    }

    fn line(&mut self) -> &mut Row {
        let row = self.row;
        &mut self.grid_mut()[row]
    }

    // --- printing

    fn print(&mut self, c: char) {
        let c = match self.charsets[self.gl] {
            Charset::Graphics if ('\x5f'..='\x7e').contains(&c) => {
                DEC_GRAPHICS[(c as usize) - 0x5f]
            }
            _ => c,
        };
        let width = match c.width() {
            Some(0) | None => return,
            Some(w) => w.min(2),
        };
        if width > self.cols {
            return;
        }
        let mut wrapped = false;
        if self.col + width > self.cols {
            if self.autowrap {
                self.line().wrapped = true;
                self.col = 0;
                self.index();
                wrapped = true;
            } else {
                self.col = self.cols - width;
            }
        }
        let (row, col, pen) = (self.row, self.col, self.pen);
        let cols = self.cols;
        // A character that wrapped is written over the next row's first
        // cell, insert mode or not (as asciinema's terminal does).
        let insert = self.insert && !wrapped;
        let line = &mut self.grid_mut()[row];
        if insert {
            line.insert_blanks(col, width, pen.erased());
        }
        // Overwriting half of a wide character blanks its other half (in
        // the pen, as asciinema's terminal does).
        let blank = Cell::blank(pen);
        if line.cells[col].width == 0 && col > 0 {
            line.cells[col - 1] = blank;
        }
        let end = col + width;
        if end < cols && line.cells[end].width == 0 {
            line.cells[end] = blank;
        }
        if width == 2 && line.cells[col + 1].width == 2 && col + 2 < cols {
            line.cells[col + 2] = blank;
        }
        line.cells[col] = Cell {
            ch: c,
            width: width as u8,
            pen,
        };
        if width == 2 {
            line.cells[col + 1] = Cell {
                ch: ' ',
                width: 0,
                pen,
            };
        }
        self.col = end;
        if self.col >= self.cols && !self.autowrap {
            self.col = self.cols - 1;
        }
    }

    // --- cursor movement

    /// The column to act at: a pending wrap acts at the last column.
    fn at(&self) -> usize {
        self.col.min(self.cols - 1)
    }

    fn move_to_col(&mut self, col: usize) {
        self.col = col.min(self.cols - 1);
    }

    /// To `row` counted from the origin (the top margin in origin mode).
    fn move_to_row(&mut self, row: usize) {
        let (top, bottom) = if self.origin {
            (self.top, self.bottom)
        } else {
            (0, self.rows - 1)
        };
        self.row = (top + row).min(bottom);
        self.col = self.at();
    }

    fn up(&mut self, n: usize) {
        let floor = if self.row < self.top { 0 } else { self.top };
        self.row = self.row.saturating_sub(n).max(floor);
        self.col = self.at();
    }

    fn down(&mut self, n: usize) {
        let ceiling = if self.row > self.bottom {
            self.rows - 1
        } else {
            self.bottom
        };
        self.row = (self.row + n).min(ceiling);
        self.col = self.at();
    }

    fn relative_col(&mut self, by: isize) {
        let col = self.col as isize + by;
        self.col = col.clamp(0, self.cols as isize - 1) as usize;
    }

    fn home(&mut self) {
        self.col = 0;
        self.row = if self.origin { self.top } else { 0 };
    }

    /// LF, IND: down one, scrolling the region at its bottom.
    fn index(&mut self) {
        if self.row == self.bottom {
            self.scroll_up(1);
        } else if self.row < self.rows - 1 {
            self.row += 1;
            self.col = self.at();
        }
    }

    fn reverse_index(&mut self) {
        if self.row == self.top {
            self.scroll_down(1);
        } else if self.row > 0 {
            self.row -= 1;
            self.col = self.at();
        }
    }

    fn next_tab(&mut self, n: usize) {
        for _ in 0..n {
            let from = self.at() + 1;
            self.col = (from..self.cols)
                .find(|&c| self.tabs[c])
                .unwrap_or(self.cols - 1);
        }
    }

    fn previous_tab(&mut self, n: usize) {
        for _ in 0..n {
            let to = self.col.min(self.cols);
            self.col = (0..to).rev().find(|&c| self.tabs[c]).unwrap_or(0);
        }
    }

    // --- scrolling and editing

    fn scroll_up(&mut self, n: usize) {
        self.scroll_rows_up(self.top, self.bottom + 1, n);
    }

    fn scroll_down(&mut self, n: usize) {
        self.scroll_rows_down(self.top, self.bottom + 1, n);
    }

    fn scroll_rows_up(&mut self, from: usize, to: usize, n: usize) {
        let n = n.min(to - from);
        let pen = self.pen.erased();
        let rows = &mut self.grid_mut()[from..to];
        rows.rotate_left(n);
        let len = rows.len();
        for row in &mut rows[len - n..] {
            row.clear(pen);
        }
    }

    fn scroll_rows_down(&mut self, from: usize, to: usize, n: usize) {
        let n = n.min(to - from);
        let pen = self.pen.erased();
        let rows = &mut self.grid_mut()[from..to];
        rows.rotate_right(n);
        for row in &mut rows[..n] {
            row.clear(pen);
        }
    }

    /// The rows IL and DL act on: the cursor's row to the region's bottom
    /// (or to the screen's, below the region).
    fn line_range(&self) -> (usize, usize) {
        if self.row <= self.bottom {
            (self.row, self.bottom + 1)
        } else {
            (self.row, self.rows)
        }
    }

    fn insert_lines(&mut self, n: usize) {
        let (from, to) = self.line_range();
        self.scroll_rows_down(from, to, n);
    }

    fn delete_lines(&mut self, n: usize) {
        let (from, to) = self.line_range();
        self.scroll_rows_up(from, to, n);
    }

    fn insert_chars(&mut self, n: usize) {
        let col = self.at();
        self.col = col;
        let pen = self.pen.erased();
        let line = self.line();
        line.insert_blanks(col, n, pen);
        line.wrapped = false;
    }

    fn delete_chars(&mut self, n: usize) {
        let col = self.at();
        self.col = col;
        let pen = self.pen.erased();
        let cols = self.cols;
        let line = self.line();
        if line.cells[col].width == 0 && col > 0 {
            line.cells[col - 1] = Cell::blank(pen);
        }
        let n = n.min(cols - col);
        line.cells[col..].rotate_left(n);
        line.cells[cols - n..].fill(Cell::blank(pen));
        if line.cells[col].width == 0 {
            line.cells[col] = Cell::blank(pen);
        }
        line.wrapped = false;
    }

    /// ECH; with a wrap pending there is nothing right of the cursor (as
    /// in tmux and asciinema's terminal).
    fn erase_chars(&mut self, n: usize) {
        let col = self.col;
        let pen = self.pen.erased();
        self.line().erase(col, col + n.max(1), pen);
    }

    fn erase_in_line(&mut self, mode: u16) {
        let col = self.col;
        let (cols, pen) = (self.cols, self.pen.erased());
        let line = self.line();
        match mode {
            0 => {
                line.erase(col, cols, pen);
                line.wrapped = false;
            }
            1 => line.erase(0, col + 1, pen),
            2 => line.clear(pen),
            _ => {}
        }
    }

    fn erase_in_display(&mut self, mode: u16) {
        let pen = self.pen.erased();
        let row = self.row;
        match mode {
            0 => {
                self.erase_in_line(0);
                for line in &mut self.grid_mut()[row + 1..] {
                    line.clear(pen);
                }
            }
            1 => {
                self.erase_in_line(1);
                for line in &mut self.grid_mut()[..row] {
                    line.clear(pen);
                }
            }
            2 => {
                for line in self.grid_mut() {
                    line.clear(pen);
                }
            }
            // 3 erases the scrollback, which this model does not keep.
            _ => {}
        }
    }

    fn set_margins(&mut self, top: usize, bottom: usize) {
        let top = top.max(1) - 1;
        let bottom = if bottom == 0 {
            self.rows
        } else {
            bottom.min(self.rows)
        } - 1;
        if top < bottom {
            self.top = top;
            self.bottom = bottom;
            self.home();
        }
    }

    // --- saving, screens and resets

    fn save_cursor(&mut self) {
        let saved = Saved {
            row: self.row,
            col: self.at(),
            pen: self.pen,
            origin: self.origin,
            autowrap: self.autowrap,
        };
        self.saved[usize::from(self.alternate)] = Some(saved);
    }

    fn restore_cursor(&mut self) {
        match self.saved[usize::from(self.alternate)] {
            Some(s) => {
                self.row = s.row.min(self.rows - 1);
                self.col = s.col.min(self.cols - 1);
                self.pen = s.pen;
                self.origin = s.origin;
                self.autowrap = s.autowrap;
            }
            None => {
                self.row = 0;
                self.col = 0;
                self.pen = Pen::default();
                self.origin = false;
                self.autowrap = true;
            }
        }
    }

    /// To the alternate screen, blank in the pen's background (as tmux and
    /// asciinema's terminal do for 47, 1047 and 1049 alike).
    fn enter_alternate(&mut self) {
        if self.alternate {
            return;
        }
        self.alternate = true;
        let (cols, pen) = (self.cols, self.pen.erased());
        for line in &mut self.grids[1] {
            *line = Row::new(cols, pen);
        }
    }

    fn leave_alternate(&mut self) {
        self.alternate = false;
    }

    fn soft_reset(&mut self) {
        self.cursor_visible = true;
        self.top = 0;
        self.bottom = self.rows - 1;
        self.insert = false;
        self.origin = false;
        self.autowrap = true;
        self.pen = Pen::default();
        self.charsets = [Charset::Ascii; 4];
        self.gl = 0;
        self.app_cursor = false;
        self.app_keypad = false;
        self.saved[usize::from(self.alternate)] = None;
    }

    fn resize(&mut self, cols: usize, rows: usize) {
        let (cols, rows) = (cols.max(1), rows.max(1));
        for grid in &mut self.grids {
            grid.truncate(rows);
            for line in grid.iter_mut() {
                line.cells.resize(cols, Cell::blank(Pen::default()));
                if let Some(last) = line.cells.last_mut()
                    && last.width == 2
                {
                    *last = Cell::blank(last.pen);
                }
            }
            while grid.len() < rows {
                grid.push(Row::new(cols, Pen::default()));
            }
        }
        let old_cols = self.tabs.len();
        self.tabs.resize(cols, false);
        for c in old_cols..cols {
            self.tabs[c] = c % 8 == 0;
        }
        self.cols = cols;
        self.rows = rows;
        self.top = 0;
        self.bottom = rows - 1;
        self.row = self.row.min(rows - 1);
        self.col = self.col.min(cols - 1);
        for saved in self.saved.iter_mut().flatten() {
            saved.row = saved.row.min(rows - 1);
            saved.col = saved.col.min(cols - 1);
        }
    }

    // --- SGR and modes

    fn sgr(&mut self, params: &Params) {
        let mut iter = params.iter();
        if params.is_empty() {
            self.pen = Pen::default();
            return;
        }
        while let Some(param) = iter.next() {
            let code = param.first().copied().unwrap_or(0);
            match code {
                0 => self.pen = Pen::default(),
                // Bold and faint are one intensity: each replaces the other.
                1 => self.pen.attrs = (self.pen.attrs & !attr::FAINT) | attr::BOLD,
                2 => self.pen.attrs = (self.pen.attrs & !attr::BOLD) | attr::FAINT,
                3 => self.pen.attrs |= attr::ITALIC,
                4 => match param.get(1) {
                    Some(0) => self.pen.attrs &= !attr::UNDERLINE,
                    _ => self.pen.attrs |= attr::UNDERLINE,
                },
                5 | 6 => self.pen.attrs |= attr::BLINK,
                7 => self.pen.attrs |= attr::INVERSE,
                8 => self.pen.attrs |= attr::HIDDEN,
                9 => self.pen.attrs |= attr::STRIKE,
                21 => self.pen.attrs |= attr::UNDERLINE,
                22 => self.pen.attrs &= !(attr::BOLD | attr::FAINT),
                23 => self.pen.attrs &= !attr::ITALIC,
                24 => self.pen.attrs &= !attr::UNDERLINE,
                25 => self.pen.attrs &= !attr::BLINK,
                27 => self.pen.attrs &= !attr::INVERSE,
                28 => self.pen.attrs &= !attr::HIDDEN,
                29 => self.pen.attrs &= !attr::STRIKE,
                30..=37 => self.pen.fg = Color::Idx((code - 30) as u8),
                39 => self.pen.fg = Color::Default,
                40..=47 => self.pen.bg = Color::Idx((code - 40) as u8),
                49 => self.pen.bg = Color::Default,
                90..=97 => self.pen.fg = Color::Idx((code - 90 + 8) as u8),
                100..=107 => self.pen.bg = Color::Idx((code - 100 + 8) as u8),
                38 | 48 => {
                    let color = if param.len() > 1 {
                        // Colon form: 38:5:N, 38:2:R:G:B or 38:2:ID:R:G:B.
                        extended_color(&param[1..])
                    } else {
                        // Semicolon form: the next parameters.
                        match iter.next().and_then(|p| p.first().copied()) {
                            Some(5) => iter
                                .next()
                                .and_then(|p| p.first().copied())
                                .map(|n| Color::Idx(n.min(255) as u8)),
                            Some(2) => {
                                let mut c = || {
                                    iter.next()
                                        .and_then(|p| p.first().copied())
                                        .map(|v| v.min(255) as u8)
                                };
                                match (c(), c(), c()) {
                                    (Some(r), Some(g), Some(b)) => Some(Color::Rgb(r, g, b)),
                                    _ => None,
                                }
                            }
                            _ => None,
                        }
                    };
                    if let Some(color) = color {
                        if code == 38 {
                            self.pen.fg = color;
                        } else {
                            self.pen.bg = color;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn set_private_mode(&mut self, mode: u16, on: bool) {
        match mode {
            1 => self.app_cursor = on,
            6 => {
                self.origin = on;
                self.home();
            }
            7 => self.autowrap = on,
            25 => self.cursor_visible = on,
            9 | 1000 | 1002 | 1003 => {
                if on {
                    self.mouse.tracking = mode;
                } else if self.mouse.tracking == mode {
                    self.mouse.tracking = 0;
                }
            }
            1005 | 1006 | 1015 => {
                if on {
                    self.mouse.encoding = mode;
                } else if self.mouse.encoding == mode {
                    self.mouse.encoding = 0;
                }
            }
            1004 => self.focus = on,
            2004 => self.bracketed_paste = on,
            47 | 1047 => {
                if on {
                    self.enter_alternate();
                } else {
                    self.leave_alternate();
                }
            }
            1048 => {
                if on {
                    self.save_cursor();
                } else {
                    self.restore_cursor();
                }
            }
            1049 => {
                if on {
                    self.save_cursor();
                    self.enter_alternate();
                } else {
                    // The cursor is restored even when the alternate screen
                    // was not up (as tmux does).
                    self.leave_alternate();
                    self.restore_cursor();
                }
            }
            _ => {}
        }
    }
}

/// `5:N` or `2:R:G:B` (or `2:ID:R:G:B`) after a colon.
fn extended_color(rest: &[u16]) -> Option<Color> {
    match rest {
        [5, n, ..] => Some(Color::Idx((*n).min(255) as u8)),
        [2, r, g, b] => Some(Color::Rgb(*r as u8, *g as u8, *b as u8)),
        [2, _, r, g, b, ..] => Some(Color::Rgb(*r as u8, *g as u8, *b as u8)),
        _ => None,
    }
}

/// The first parameter, or `default` when it is absent or 0.
fn arg(params: &Params, i: usize, default: u16) -> u16 {
    match params.iter().nth(i).and_then(|p| p.first().copied()) {
        None | Some(0) => default,
        Some(n) => n,
    }
}

impl Perform for State {
    fn print(&mut self, c: char) {
        State::print(self, c);
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            0x08 => {
                if self.col >= self.cols {
                    self.col = self.cols - 1;
                }
                self.col = self.col.saturating_sub(1);
            }
            0x09 => self.next_tab(1),
            0x0a..=0x0c => {
                self.index();
                if self.newline {
                    self.col = 0;
                }
            }
            0x0d => self.col = 0,
            0x0e => self.gl = 1,
            0x0f => self.gl = 0,
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        if ignore {
            return;
        }
        let n = |i: usize| usize::from(arg(params, i, 1));
        let raw = |i: usize| {
            params
                .iter()
                .nth(i)
                .and_then(|p| p.first().copied())
                .unwrap_or(0)
        };
        match (intermediates, action) {
            ([], 'A') => self.up(n(0)),
            ([], 'B' | 'e') => self.down(n(0)),
            ([], 'C' | 'a') => self.relative_col(n(0) as isize),
            ([], 'D') => {
                let extra = usize::from(self.col >= self.cols);
                self.relative_col(-((n(0) + extra) as isize));
            }
            ([], 'E') => {
                self.down(n(0));
                self.col = 0;
            }
            ([], 'F') => {
                self.up(n(0));
                self.col = 0;
            }
            ([], 'G' | '`') => self.move_to_col(n(0) - 1),
            ([], 'H' | 'f') => {
                self.move_to_col(n(1) - 1);
                self.move_to_row(n(0) - 1);
            }
            ([], 'd') => self.move_to_row(n(0) - 1),
            ([], 'I') => self.next_tab(n(0)),
            ([], 'Z') => self.previous_tab(n(0)),
            ([], 'J') => self.erase_in_display(raw(0)),
            ([], 'K') => self.erase_in_line(raw(0)),
            ([], 'L') => self.insert_lines(n(0)),
            ([], 'M') => self.delete_lines(n(0)),
            ([], '@') => self.insert_chars(n(0)),
            ([], 'P') => self.delete_chars(n(0)),
            ([], 'X') => self.erase_chars(n(0)),
            ([], 'S') => self.scroll_up(n(0)),
            ([], 'T') => self.scroll_down(n(0)),
            // REP repeats the character before the cursor (as asciinema's
            // terminal does; xterm repeats the last one printed, which is
            // the same character when, as curses does, REP follows it).
            ([], 'b') if self.col > 0 => {
                let line = &self.grid()[self.row];
                let mut at = self.col - 1;
                while at > 0 && line.cells[at].width == 0 {
                    at -= 1;
                }
                let c = line.cells[at].ch;
                for _ in 0..n(0).min(self.cols * self.rows) {
                    State::print(self, c);
                }
            }
            ([], 'g') => match raw(0) {
                0 => {
                    if let Some(tab) = self.tabs.get_mut(self.col) {
                        *tab = false;
                    }
                }
                3 => self.tabs.fill(false),
                _ => {}
            },
            ([], 'm') => self.sgr(params),
            ([], 'r') => self.set_margins(usize::from(raw(0)), usize::from(raw(1))),
            ([], 's') => self.save_cursor(),
            ([], 'u') => self.restore_cursor(),
            ([], 'h' | 'l') => {
                let on = action == 'h';
                for p in params.iter() {
                    match p.first() {
                        Some(4) => self.insert = on,
                        Some(20) => self.newline = on,
                        _ => {}
                    }
                }
            }
            ([b'?'], 'h' | 'l') => {
                let on = action == 'h';
                for p in params.iter() {
                    if let Some(&mode) = p.first() {
                        self.set_private_mode(mode, on);
                    }
                }
            }
            ([b'!'], 'p') => self.soft_reset(),
            ([b' '], 'q') => self.cursor_style = raw(0),
            _ => {}
        }
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], ignore: bool, byte: u8) {
        if ignore {
            return;
        }
        match (intermediates, byte) {
            ([], b'7') => self.save_cursor(),
            ([], b'8') => self.restore_cursor(),
            ([], b'D') => self.index(),
            ([], b'E') => {
                self.index();
                self.col = 0;
            }
            ([], b'M') => self.reverse_index(),
            // HTS: not in the first column, nor with a wrap pending.
            ([], b'H') if self.col > 0 && self.col < self.cols => self.tabs[self.col] = true,
            ([], b'=') => self.app_keypad = true,
            ([], b'>') => self.app_keypad = false,
            ([], b'c') => {
                let title = std::mem::take(&mut self.title);
                *self = State::new(self.cols, self.rows);
                self.title = title;
            }
            ([b'#'], b'8') => {
                let pen = Pen::default();
                for line in self.grid_mut() {
                    line.cells.fill(Cell {
                        ch: 'E',
                        width: 1,
                        pen,
                    });
                    line.wrapped = false;
                }
                self.top = 0;
                self.bottom = self.rows - 1;
                self.row = 0;
                self.col = 0;
            }
            ([slot @ (b'(' | b')' | b'*' | b'+')], set) => {
                let g = usize::from(slot - b'(');
                self.charsets[g] = if set == b'0' {
                    Charset::Graphics
                } else {
                    Charset::Ascii
                };
            }
            _ => {}
        }
    }

    fn osc_dispatch(&mut self, params: &[&[u8]], _bell_terminated: bool) {
        if let [kind, title, ..] = params
            && matches!(*kind, b"0" | b"2")
        {
            self.title = title.iter().take(1024).copied().collect();
        }
    }
}

impl Terminal {
    pub fn new(cols: u16, rows: u16) -> Self {
        Self {
            parser: Parser::new(),
            state: State::new(usize::from(cols), usize::from(rows)),
            lexer: Lexer::Ground,
            pending: Vec::new(),
        }
    }

    /// Feeds a frame of output. Text that ends in an unfinished UTF-8
    /// character is held back (from the last ASCII byte on) and given to the
    /// parser with the next frame: `vte` decodes a character split between
    /// two calls differently from one that comes whole (found by fuzzing).
    pub fn process(&mut self, bytes: &[u8]) {
        if self.lexer == Lexer::Utf8 {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(bytes);
            self.lexer = Lexer::Ground;
            self.track_pending(&data);
            let end = data.len() - self.holding();
            self.parser.advance(&mut self.state, &data[..end]);
        } else {
            self.track_pending(bytes);
            let end = bytes.len() - self.holding();
            self.parser.advance(&mut self.state, &bytes[..end]);
        }
    }

    /// Bytes at the end of what `track_pending` saw that the parser has not
    /// been given.
    fn holding(&self) -> usize {
        if self.lexer == Lexer::Utf8 {
            self.pending.len()
        } else {
            0
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.state.resize(usize::from(cols), usize::from(rows));
    }

    /// (rows, columns), as `vt100` gives it.
    pub fn size(&self) -> (u16, u16) {
        (self.state.rows as u16, self.state.cols as u16)
    }

    pub fn cell(&self, row: u16, col: u16) -> Option<&Cell> {
        self.state
            .grid()
            .get(usize::from(row))?
            .cells
            .get(usize::from(col))
    }

    /// (row, column); the column is the last one while a wrap is pending.
    pub fn cursor_position(&self) -> (u16, u16) {
        (self.state.row as u16, self.state.at() as u16)
    }

    pub fn hide_cursor(&self) -> bool {
        !self.state.cursor_visible
    }

    pub fn alternate_screen(&self) -> bool {
        self.state.alternate
    }

    pub fn application_cursor(&self) -> bool {
        self.state.app_cursor
    }

    pub fn application_keypad(&self) -> bool {
        self.state.app_keypad
    }

    pub fn bracketed_paste(&self) -> bool {
        self.state.bracketed_paste
    }

    pub fn mouse(&self) -> Mouse {
        self.state.mouse
    }

    pub fn title(&self) -> &[u8] {
        &self.state.title
    }

    /// The visible text, rows joined by newlines (a wrapped row runs on),
    /// trailing blanks removed, as `vt100`'s `contents`.
    pub fn contents(&self) -> String {
        let mut out = String::new();
        let grid = self.state.grid();
        for (i, line) in grid.iter().enumerate() {
            let text = row_text(line, 0, self.state.cols);
            out.push_str(if line.wrapped { &text } else { text.trim_end() });
            if !line.wrapped && i + 1 < grid.len() {
                out.push('\n');
            }
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// Each row's text from column `start`, `width` columns wide.
    pub fn rows(&self, start: u16, width: u16) -> impl Iterator<Item = String> + '_ {
        let (start, width) = (usize::from(start), usize::from(width));
        self.state
            .grid()
            .iter()
            .map(move |line| row_text(line, start, start + width).trim_end().to_owned())
    }

    /// The visible screen drawn on a cleared terminal, then the cursor
    /// (and its visibility): equal for two terminals that look the same.
    pub fn contents_formatted(&self) -> String {
        let s = &self.state;
        let mut out = Vec::new();
        draw_grid(s.grid(), s.cols, &mut out);
        push_fmt(&mut out, format_args!("\x1b[{};{}H", s.row + 1, s.at() + 1));
        if !s.cursor_visible {
            out.extend_from_slice(b"\x1b[?25l");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The input modes a client needs, as the sequences that set them.
    pub fn input_mode_formatted(&self) -> String {
        let s = &self.state;
        let mut out = String::new();
        for (on, set) in [
            (s.app_cursor, "\x1b[?1h"),
            (s.app_keypad, "\x1b="),
            (s.bracketed_paste, "\x1b[?2004h"),
            (s.focus, "\x1b[?1004h"),
        ] {
            if on {
                out.push_str(set);
            }
        }
        if s.mouse.tracking != 0 {
            out.push_str(&format!("\x1b[?{}h", s.mouse.tracking));
        }
        if s.mouse.encoding != 0 {
            out.push_str(&format!("\x1b[?{}h", s.mouse.encoding));
        }
        out
    }

    fn track_pending(&mut self, bytes: &[u8]) {
        // Where the unfinished sequence at the end of the frame began.
        #[derive(Clone, Copy)]
        enum Begun {
            Nowhere,
            /// In an earlier frame: it is `pending` and all of this one.
            Before,
            /// At this byte of this frame.
            At(usize),
        }
        let mut begun = if self.lexer == Lexer::Ground {
            Begun::Nowhere
        } else {
            Begun::Before
        };
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if self.lexer == Lexer::Ground {
                // Text runs to the next ESC; only its last bytes can be a
                // partial UTF-8 character.
                match memchr::memchr(0x1b, &bytes[i..]) {
                    Some(at) => {
                        self.lexer = Lexer::Escape;
                        begun = Begun::At(i + at);
                        i += at + 1;
                        continue;
                    }
                    None => {
                        let tail = unfinished_text(&bytes[i..]);
                        begun = if tail > 0 {
                            self.lexer = Lexer::Utf8;
                            Begun::At(bytes.len() - tail)
                        } else {
                            Begun::Nowhere
                        };
                        break;
                    }
                }
            }
            // vte's transitions, as far as where a sequence ends goes.
            self.lexer = match (self.lexer, b) {
                (_, 0x18 | 0x1a) => Lexer::Ground,
                // An ESC ends any string and starts a sequence (ST is one).
                (_, 0x1b) => {
                    begun = Begun::At(i);
                    Lexer::Escape
                }
                (Lexer::Osc, 0x07) => Lexer::Ground,
                (Lexer::DcsBody, 0x9c) => Lexer::Ground,
                // Other C0 controls, DEL and bytes past 0x7f inside a
                // sequence are executed, ignored or kept without ending it.
                (state, 0x00..=0x1f | 0x7f..=0xff) => state,
                (Lexer::Escape, b'[') => Lexer::Csi,
                (Lexer::Escape, b']') => Lexer::Osc,
                (Lexer::Escape, b'P') => Lexer::DcsEntry,
                (Lexer::Escape, b'X' | b'^' | b'_') => Lexer::String,
                (Lexer::Escape | Lexer::EscapeIntermediate, 0x20..=0x2f) => {
                    Lexer::EscapeIntermediate
                }
                (Lexer::Escape | Lexer::EscapeIntermediate, _) => Lexer::Ground,
                (Lexer::Csi, 0x40..=0x7e) => Lexer::Ground,
                (Lexer::DcsEntry | Lexer::DcsParam | Lexer::DcsIntermediate, 0x40..=0x7e) => {
                    Lexer::DcsBody
                }
                (Lexer::DcsEntry | Lexer::DcsParam | Lexer::DcsIntermediate, 0x20..=0x2f) => {
                    Lexer::DcsIntermediate
                }
                (Lexer::DcsEntry, 0x30..=0x3f) => Lexer::DcsParam,
                (Lexer::DcsParam, 0x3c..=0x3f) | (Lexer::DcsIntermediate, 0x30..=0x3f) => {
                    Lexer::DcsIgnore
                }
                (state, _) => state,
            };
            if self.lexer == Lexer::Ground {
                begun = Begun::Nowhere;
            }
            i += 1;
        }
        // C0 controls inside a sequence were executed (or ignored) already:
        // they are not kept, or a snapshot would run them twice.
        let kept = |b: &&u8| **b >= 0x20 || **b == 0x1b;
        match begun {
            Begun::Nowhere => self.pending.clear(),
            Begun::Before => {
                if self.pending.len() + bytes.len() <= MAX_PENDING {
                    self.pending.extend(bytes.iter().filter(kept));
                } else {
                    self.pending.clear();
                }
            }
            Begun::At(from) => {
                self.pending.clear();
                if bytes.len() - from <= MAX_PENDING {
                    self.pending.extend(bytes[from..].iter().filter(kept));
                }
            }
        }
    }

    /// Bytes that, written to a freshly reset terminal of this size,
    /// re-create this state: every later frame then has the same effect
    /// there as on the terminal that saw the whole stream.
    pub fn snapshot(&self) -> Vec<u8> {
        let s = &self.state;
        let mut out = Vec::with_capacity(s.cols * s.rows * 2 + 256);
        out.extend_from_slice(b"\x1b[0m\x1b[H\x1b[2J");
        if s.alternate {
            // The primary screen as it is behind the alternate one, its
            // saved cursor where 1049 will save it, then the switch.
            draw_grid(&s.grids[0], s.cols, &mut out);
            match s.saved[0] {
                Some(saved) => {
                    restore_saved(&saved, &mut out);
                    out.extend_from_slice(b"\x1b[?1049h");
                    drawing_defaults(&mut out);
                }
                None => out.extend_from_slice(b"\x1b[0m\x1b[?47h"),
            }
            out.extend_from_slice(b"\x1b[0m\x1b[H\x1b[2J");
        }
        draw_grid(s.grid(), s.cols, &mut out);
        // Tab stops, where they differ from every 8 columns.
        if s.tabs != default_tabs(s.cols) {
            out.extend_from_slice(b"\x1b[3g");
            for (col, _) in s.tabs.iter().enumerate().filter(|(_, set)| **set) {
                push_fmt(&mut out, format_args!("\x1b[{}G\x1bH", col + 1));
            }
        }
        if let Some(saved) = &s.saved[usize::from(s.alternate)] {
            restore_saved(saved, &mut out);
            out.extend_from_slice(b"\x1b7");
            drawing_defaults(&mut out);
        }
        if s.top != 0 || s.bottom != s.rows - 1 {
            push_fmt(
                &mut out,
                format_args!("\x1b[{};{}r", s.top + 1, s.bottom + 1),
            );
        }
        // The cursor, then the pending wrap by reprinting the last cell.
        let (row, col) = (s.row, s.at());
        if s.origin && row >= s.top && row <= s.bottom {
            out.extend_from_slice(b"\x1b[?6h");
            push_fmt(
                &mut out,
                format_args!("\x1b[{};{}H", row - s.top + 1, col + 1),
            );
        } else {
            push_fmt(&mut out, format_args!("\x1b[{};{}H", row + 1, col + 1));
        }
        if s.col >= s.cols {
            let line = &s.grid()[row];
            let mut at = s.cols - 1;
            if line.cells[at].width == 0 && at > 0 {
                at -= 1;
                push_fmt(&mut out, format_args!("\x1b[{}G", at + 1));
            }
            let cell = line.cells[at];
            push_sgr(&cell.pen, &mut out);
            push_char(cell.ch, &mut out);
        }
        push_sgr(&s.pen, &mut out);
        if !s.cursor_visible {
            out.extend_from_slice(b"\x1b[?25l");
        }
        if s.cursor_style != 0 {
            push_fmt(&mut out, format_args!("\x1b[{} q", s.cursor_style));
        }
        if s.insert {
            out.extend_from_slice(b"\x1b[4h");
        }
        if s.newline {
            out.extend_from_slice(b"\x1b[20h");
        }
        if !s.autowrap {
            out.extend_from_slice(b"\x1b[?7l");
        }
        for (g, set) in s.charsets.iter().enumerate() {
            if *set == Charset::Graphics {
                out.extend_from_slice(&[0x1b, b'(' + g as u8, b'0']);
            }
        }
        if s.gl == 1 {
            out.push(0x0e);
        }
        if s.app_cursor {
            out.extend_from_slice(b"\x1b[?1h");
        }
        if s.app_keypad {
            out.extend_from_slice(b"\x1b=");
        }
        if s.bracketed_paste {
            out.extend_from_slice(b"\x1b[?2004h");
        }
        if s.focus {
            out.extend_from_slice(b"\x1b[?1004h");
        }
        if s.mouse.tracking != 0 {
            push_fmt(&mut out, format_args!("\x1b[?{}h", s.mouse.tracking));
        }
        if s.mouse.encoding != 0 {
            push_fmt(&mut out, format_args!("\x1b[?{}h", s.mouse.encoding));
        }
        if !s.title.is_empty() {
            out.extend_from_slice(b"\x1b]2;");
            out.extend_from_slice(&s.title);
            out.push(0x07);
        }
        out.extend_from_slice(&self.pending);
        out
    }
}

/// Moves to a saved cursor and takes its pen, origin mode and sets, so
/// that DECSC (or 1049) saves exactly that. The margins are still the whole
/// screen here, so in origin mode the position is the same.
fn restore_saved(saved: &Saved, out: &mut Vec<u8>) {
    if saved.origin {
        out.extend_from_slice(b"\x1b[?6h");
    }
    push_fmt(
        out,
        format_args!("\x1b[{};{}H", saved.row + 1, saved.col + 1),
    );
    push_sgr(&saved.pen, out);
    if !saved.autowrap {
        out.extend_from_slice(b"\x1b[?7l");
    }
}

/// What drawing needs after a saved cursor was set up: the default pen,
/// origin mode off, auto-wrap on.
fn drawing_defaults(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\x1b[0m\x1b[?6l\x1b[?7h");
}

fn row_text(line: &Row, from: usize, to: usize) -> String {
    let to = to.min(line.cells.len());
    line.cells
        .get(from..to)
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.width != 0)
        .map(|c| c.ch)
        .collect()
}

/// Draws every row with CUP and SGR (blanks with a background too), never
/// relying on wrapping; a wrapped row's last cell is drawn by running on.
fn draw_grid(grid: &[Row], cols: usize, out: &mut Vec<u8>) {
    let mut pen = Pen::default();
    out.extend_from_slice(b"\x1b[0m");
    for (r, line) in grid.iter().enumerate() {
        // Blanks in the default pen at the end need not be drawn.
        let end = line
            .cells
            .iter()
            .rposition(|c| !(c.ch == ' ' && c.width == 1 && c.pen == Pen::default()))
            .map_or(0, |i| i + 1);
        if end == 0 {
            continue;
        }
        push_fmt(out, format_args!("\x1b[{}H", r + 1));
        for cell in &line.cells[..end.min(cols)] {
            if cell.width == 0 {
                continue;
            }
            if cell.pen != pen {
                push_sgr(&cell.pen, out);
                pen = cell.pen;
            }
            push_char(cell.ch, out);
        }
    }
    out.extend_from_slice(b"\x1b[0m");
}

fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn push_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = out.write_fmt(args);
}

/// The SGR that sets exactly `pen` (from any state).
fn push_sgr(pen: &Pen, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\x1b[0");
    for (bit, code) in [
        (attr::BOLD, "1"),
        (attr::FAINT, "2"),
        (attr::ITALIC, "3"),
        (attr::UNDERLINE, "4"),
        (attr::BLINK, "5"),
        (attr::INVERSE, "7"),
        (attr::HIDDEN, "8"),
        (attr::STRIKE, "9"),
    ] {
        if pen.attrs & bit != 0 {
            out.push(b';');
            out.extend_from_slice(code.as_bytes());
        }
    }
    push_color(pen.fg, 30, 38, out);
    push_color(pen.bg, 40, 48, out);
    out.push(b'm');
}

fn push_color(color: Color, basic: u8, extended: u8, out: &mut Vec<u8>) {
    match color {
        Color::Default => {}
        Color::Idx(i) if i < 8 => push_fmt(out, format_args!(";{}", basic + i)),
        Color::Idx(i) if i < 16 => push_fmt(out, format_args!(";{}", basic + 60 + i - 8)),
        Color::Idx(i) => push_fmt(out, format_args!(";{extended};5;{i}")),
        Color::Rgb(r, g, b) => push_fmt(out, format_args!(";{extended};2;{r};{g};{b}")),
    }
}

/// How many bytes at the end of `text` to hold back: from where the parser,
/// given what comes before, is between characters (not inside one it would
/// keep waiting for), so that the held bytes decode as they would in one
/// call. `[e4 e4]` holds both: `vte` given the first alone would wait.
fn unfinished_text(text: &[u8]) -> usize {
    let mut from = text.len() - utf8_partial_tail(text);
    while from > 0 && text.len() - from < MAX_PENDING {
        let waiting = utf8_partial_tail(&text[..from]);
        if waiting == 0 {
            break;
        }
        from -= waiting;
    }
    text.len() - from
}

/// How many bytes at the end of `text` are an unfinished UTF-8 character:
/// the start of a valid sequence (as `str::from_utf8` and so `vte` judge
/// it), not an invalid one, which the parser has replaced already.
fn utf8_partial_tail(text: &[u8]) -> usize {
    for back in 1..=text.len().min(4) {
        let start = text.len() - back;
        if text[start] & 0xc0 != 0x80 {
            return match std::str::from_utf8(&text[start..]) {
                Err(e) if e.error_len().is_none() && e.valid_up_to() == 0 => back,
                _ => 0,
            };
        }
    }
    0
}

#[cfg(test)]
mod tests;
