//! The browser's view of a screen: rows as runs of styled text, sent whole on
//! join and resync (`snapshot`) and then as the rows each frame changed
//! (`delta`), each with its frame id. The server already holds the screen
//! model, so a browser never parses terminal escapes; it only draws rows.

use serde::Serialize;

/// Text with one style. Colours: a palette index (0-255), or
/// `0x1000000 | 0xRRGGBB` for a true colour; absent means the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub t: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fg: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bg: Option<u32>,
    /// Bits: 1 bold, 2 dim, 4 italic, 8 underline, 16 inverse.
    #[serde(skip_serializing_if = "is_zero")]
    pub a: u8,
}

fn is_zero(a: &u8) -> bool {
    *a == 0
}

pub type Row = Vec<Run>;

/// What the page is sent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The whole screen: on join, after a resync and after a resize.
    Snapshot {
        frame_id: u64,
        cols: u16,
        rows: u16,
        lines: Vec<Row>,
        cursor: Cursor,
        /// Frames this viewer skipped (a resync), 0 on join.
        skipped: u64,
    },
    /// The rows a frame changed.
    Delta {
        frame_id: u64,
        lines: Vec<(u16, Row)>,
        cursor: Cursor,
    },
    /// The session as listed, for the status line.
    Status {
        player: String,
        game: String,
        watchers: usize,
    },
    /// The game is over, or the stream ended; why.
    End { message: String },
    /// A replay begins: whose game, and how long it plays.
    Replay {
        player: String,
        game: String,
        /// RFC 3339, UTC.
        start: String,
        duration: f64,
    },
    /// Where a replay is: sent when it changes course (seek, speed, pause,
    /// the end) and a few times a second while it plays.
    ReplayState {
        position: f64,
        speed: f64,
        paused: bool,
        ended: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cursor {
    pub row: u16,
    pub col: u16,
    pub visible: bool,
}

pub fn cursor(screen: &dgate_term::vt::Terminal) -> Cursor {
    let (row, col) = screen.cursor_position();
    Cursor {
        row,
        col,
        visible: !screen.hide_cursor(),
    }
}

/// One screen row as runs; wide characters' continuation cells are skipped,
/// empty cells are spaces, so the row's text is what a terminal shows.
pub fn row(screen: &dgate_term::vt::Terminal, row: u16) -> Row {
    let (_, cols) = screen.size();
    let mut runs: Row = Vec::new();
    for col in 0..cols {
        let Some(cell) = screen.cell(row, col) else {
            continue;
        };
        if cell.is_wide_continuation() {
            continue;
        }
        let style = (
            color(cell.fgcolor()),
            color(cell.bgcolor()),
            attributes(cell),
        );
        let text = cell.ch();
        match runs.last_mut() {
            Some(last) if (last.fg, last.bg, last.a) == style => last.t.push(text),
            _ => runs.push(Run {
                t: text.to_string(),
                fg: style.0,
                bg: style.1,
                a: style.2,
            }),
        }
    }
    runs
}

pub fn rows(screen: &dgate_term::vt::Terminal) -> Vec<Row> {
    let (rows, _) = screen.size();
    (0..rows).map(|r| row(screen, r)).collect()
}

/// The rows that differ from `previous` (which is updated to the screen).
pub fn changed_rows(previous: &mut Vec<Row>, screen: &dgate_term::vt::Terminal) -> Vec<(u16, Row)> {
    let now = rows(screen);
    let changed = now
        .iter()
        .enumerate()
        .filter(|(i, r)| previous.get(*i) != Some(r))
        .map(|(i, r)| (u16::try_from(i).unwrap_or(u16::MAX), r.clone()))
        .collect();
    *previous = now;
    changed
}

fn color(c: dgate_term::vt::Color) -> Option<u32> {
    match c {
        dgate_term::vt::Color::Default => None,
        dgate_term::vt::Color::Idx(i) => Some(u32::from(i)),
        dgate_term::vt::Color::Rgb(r, g, b) => {
            Some(0x100_0000 | (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b))
        }
    }
}

fn attributes(cell: &dgate_term::vt::Cell) -> u8 {
    [
        (cell.bold(), 1),
        (cell.dim(), 2),
        (cell.italic(), 4),
        (cell.underline(), 8),
        (cell.inverse(), 16),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, bit)| bit)
    .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dgate_term::{ScreenModel, TermSize};

    #[test]
    fn rows_are_styled_runs_and_deltas_are_the_changed_rows() {
        let mut model = ScreenModel::new(TermSize::new(10, 3));
        model.process(b"ab\x1b[1;31mcd\x1b[0m\r\n\x1b[7mx\x1b[m");
        let lines = rows(model.screen());
        assert_eq!(lines[0][0].t, "ab");
        assert_eq!(
            (lines[0][1].t.as_str(), lines[0][1].fg, lines[0][1].a),
            ("cd", Some(1), 1)
        );
        assert_eq!(lines[0][2].t, "      ", "the rest of the row is spaces");
        assert_eq!(lines[1][0].a, 16);
        let json = serde_json::to_string(&lines[0][0]).expect("json");
        assert_eq!(json, r#"{"t":"ab"}"#, "defaults are left out");

        let mut previous = lines;
        model.process(b"\x1b[3;1Hz");
        let changed = changed_rows(&mut previous, model.screen());
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, 2);
        assert!(changed[0].1[0].t.starts_with('z'));
        assert!(changed_rows(&mut previous, model.screen()).is_empty());
    }

    #[test]
    fn true_colours_and_wide_characters() {
        let mut model = ScreenModel::new(TermSize::new(6, 1));
        model.process("\x1b[38;2;1;2;3m字x".as_bytes());
        let line = row(model.screen(), 0);
        assert_eq!(line[0].fg, Some(0x100_0000 | 0x010203));
        assert_eq!(line[0].t, "字x");
        let text: String = line.iter().map(|r| r.t.as_str()).collect();
        assert_eq!(text, "字x   ");
    }
}
