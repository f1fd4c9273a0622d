//! A game's screen as the client shows it: [`ScreenView`] draws a screen
//! model into whatever area it gets (cropped as [`crate::crop`] says when
//! the game is larger, centred when smaller), and [`GameView`] is one watched game: the
//! server's snapshot and then its frames (as [`GameEvent`]s), and its status
//! line.

use dgate_term::{GameEvent, ScreenModel, SnapshotReason, StreamEnd, TermSize};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use tui_term::widget::{Cursor, PseudoTerminal};

use crate::crop::{Crop, Shown};
use crate::watch_menu::SessionRow;

/// A game on screen. Everything the server sends for the session goes through
/// [`GameView::apply`], in order.
pub struct GameView {
    /// The session as last listed: player, game, watchers.
    pub row: SessionRow,
    view: ScreenView,
    /// The last frame applied (the snapshot's, right after one).
    frame_id: u64,
    /// Snapshots that replaced frames this viewer fell behind on.
    resyncs: u32,
    frames_skipped: u64,
    /// Frames that did not follow the one before (a server bug if ever seen).
    gaps: u64,
    /// Set once the stream has ended: why, for the viewer.
    pub ended: Option<String>,
}

/// What a message meant for the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The screen may have changed.
    Screen,
    /// The game or the stream is over; the text says why.
    Ended(String),
    /// Nothing to show (the connect reply).
    Nothing,
}

impl GameView {
    pub fn new(row: SessionRow) -> Self {
        let size = TermSize::new(row.cols.max(1), row.rows.max(1));
        Self {
            row,
            view: ScreenView::new(ScreenModel::new(size)),
            frame_id: 0,
            resyncs: 0,
            frames_skipped: 0,
            gaps: 0,
            ended: None,
        }
    }

    /// Applies one message of the session's stream.
    pub fn apply(&mut self, event: GameEvent<'_>) -> Update {
        match event {
            GameEvent::Snapshot {
                frame_id,
                size,
                data,
                reason,
                frames_skipped,
            } => {
                // A snapshot is drawn on a reset terminal of its size.
                self.view.model = ScreenModel::new(size);
                self.view.model.process(data);
                if reason == SnapshotReason::Resync {
                    self.resyncs += 1;
                    self.frames_skipped += frames_skipped;
                }
                self.frame_id = frame_id;
                Update::Screen
            }
            GameEvent::Output { frame_id, data } => {
                if frame_id != self.frame_id + 1 {
                    self.gaps += 1;
                    tracing::warn!(
                        session_id = %self.row.id,
                        expected = self.frame_id + 1,
                        got = frame_id,
                        "frame out of sequence"
                    );
                }
                self.frame_id = frame_id;
                self.view.model.process(data);
                Update::Screen
            }
            GameEvent::Resize { size } => {
                self.view.model.resize(size);
                Update::Screen
            }
            GameEvent::Ended(end) => self.end(match end {
                StreamEnd::GameOver => {
                    format!("{}'s {} game has ended.", self.row.username, self.row.game)
                }
                StreamEnd::ServerShutdown => "The server is shutting down.".to_owned(),
                StreamEnd::SpectatorTimeout => {
                    "Watching timed out (the server's spectator timeout).".to_owned()
                }
                StreamEnd::Disconnected(reason) if reason.is_empty() => {
                    "The server ended the stream.".to_owned()
                }
                StreamEnd::Disconnected(reason) => {
                    format!("The server ended the stream: {reason}")
                }
            }),
            GameEvent::Connected => {
                // The listing this view started from was taken before we
                // joined; count ourselves until the next one.
                self.row.watchers += 1;
                Update::Screen
            }
        }
    }

    /// Marks the view as over (idempotent: the first reason stays).
    pub fn end(&mut self, why: String) -> Update {
        let why = self.ended.get_or_insert(why).clone();
        Update::Ended(why)
    }

    pub fn size(&self) -> TermSize {
        self.view.model.size()
    }

    /// Bytes that redraw the game's screen on a reset terminal.
    pub fn snapshot(&self) -> Vec<u8> {
        self.view.model.snapshot()
    }

    #[cfg(test)]
    pub fn screen(&self) -> &dgate_term::vt::Terminal {
        self.view.model.screen()
    }

    #[cfg(test)]
    pub fn resyncs(&self) -> u32 {
        self.resyncs
    }

    /// Draws the game into `area`; returns where its cursor is, if visible there.
    pub fn draw(&mut self, area: Rect, buf: &mut Buffer) -> Option<Position> {
        self.view.draw(area, buf)
    }

    /// Draws the game into `area` and, when `show_status` and there is more
    /// than one row, its status line on the bottom row (with a `q: back`
    /// hint). Returns where the game's cursor is, if visible: the caller
    /// places the terminal's cursor there.
    pub fn render_with_status(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        show_status: bool,
    ) -> Option<Position> {
        let (game_area, status_area) = if show_status && area.height > 1 {
            let [game_area, status_area] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
            (game_area, Some(status_area))
        } else {
            (area, None)
        };
        let cursor = self.draw(game_area, frame.buffer_mut());
        if let Some(status_area) = status_area {
            let mut line = self.status_line(game_area);
            line.push_span(" · q: back".dim());
            frame.render_widget(
                Paragraph::new(line).style(Style::default().bg(Color::DarkGray).fg(Color::White)),
                status_area,
            );
        }
        cursor
    }

    /// True when `area` cannot show the whole game.
    pub fn cropped_in(&self, area: Rect) -> bool {
        self.view.cropped_in(area)
    }

    /// `alice · NH36 · 80x24 · 3 watching · resynced ×2 · cropped to 70x20`.
    pub fn status_line(&self, area: Rect) -> Line<'static> {
        let size = self.size();
        let mut spans = vec![
            Span::from(format!(" {} ", self.row.username)).bold(),
            Span::from(format!("· {} · {size} · ", self.row.game)),
            Span::from(match self.row.watchers {
                1 => "1 watching".to_owned(),
                n => format!("{n} watching"),
            }),
        ];
        if self.row.detached {
            spans.push(Span::from(" · player detached").yellow());
        }
        if self.resyncs > 0 {
            spans.push(
                Span::from(format!(
                    " · ⟳ resynced ×{} ({} frames skipped)",
                    self.resyncs, self.frames_skipped
                ))
                .fg(Color::Cyan),
            );
        }
        if self.cropped_in(area) {
            spans.push(
                Span::from(format!(
                    " · cropped to {}x{}",
                    size.cols.min(area.width),
                    size.rows.min(area.height)
                ))
                .fg(Color::Yellow),
            );
        }
        if let Some(why) = &self.ended {
            spans.push(Span::from(format!(" · {why}")).fg(Color::Red));
        }
        Line::from(spans)
    }
}

/// A screen model drawn into an area of any size.
pub struct ScreenView {
    pub model: ScreenModel,
    /// Where the visible window starts in the game, kept between draws so
    /// that it moves only when the cursor nears its edge.
    crop: Crop,
}

impl ScreenView {
    pub fn new(model: ScreenModel) -> Self {
        Self {
            model,
            crop: Crop::default(),
        }
    }

    pub fn size(&self) -> TermSize {
        self.model.size()
    }

    /// Draws the game into `area` (cropped as [`crate::crop`] says when it
    /// is larger) and returns where the game's cursor is, if it is visible
    /// there.
    pub fn draw(&mut self, area: Rect, buf: &mut Buffer) -> Option<Position> {
        let screen = self.model.screen();
        let (rows, cols) = screen.size();
        let (width, height) = (cols.min(area.width), rows.min(area.height));
        let (cursor_row, cursor_col) = screen.cursor_position();
        let shown = self.crop.place(screen, width, height);
        // Centred when the area is larger than the game.
        let target = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        };
        let window = Window::of(screen, &shown, width);
        // The real terminal cursor is placed by the caller; a drawn one would
        // cover the character under it.
        PseudoTerminal::new(&window)
            .cursor(Cursor::default().visibility(false))
            .render(target, buf);
        let row = u16::try_from(shown.rows.iter().position(|r| *r == cursor_row)?).ok()?;
        let col = cursor_col.checked_sub(shown.left)?;
        (!screen.hide_cursor() && col < width)
            .then(|| Position::new(target.x + col, target.y + row))
    }

    /// True when `area` cannot show the whole game.
    pub fn cropped_in(&self, area: Rect) -> bool {
        let size = self.size();
        size.cols > area.width || size.rows > area.height
    }
}

/// The visible window of a game's screen, in the shape tui-term draws.
struct Window {
    cells: Vec<WindowCell>,
    width: u16,
}

struct WindowCell {
    symbol: String,
    style: Style,
}

impl Window {
    fn of(screen: &dgate_term::vt::Terminal, shown: &Shown, width: u16) -> Self {
        let mut cells = Vec::with_capacity(usize::from(width) * shown.rows.len());
        for &row in &shown.rows {
            for col in shown.left..shown.left + width {
                cells.push(match screen.cell(row, col) {
                    Some(cell) => WindowCell {
                        // A wide character's second half draws nothing.
                        symbol: if cell.is_wide_continuation() {
                            String::new()
                        } else {
                            cell.ch().to_string()
                        },
                        style: style_of(cell),
                    },
                    None => WindowCell {
                        symbol: String::new(),
                        style: Style::reset(),
                    },
                });
            }
        }
        Self { cells, width }
    }
}

impl tui_term::widget::Screen for Window {
    type C = WindowCell;

    fn cell(&self, row: u16, col: u16) -> Option<&WindowCell> {
        if col >= self.width {
            return None;
        }
        self.cells
            .get(usize::from(row) * usize::from(self.width) + usize::from(col))
    }

    fn hide_cursor(&self) -> bool {
        true
    }

    fn cursor_position(&self) -> (u16, u16) {
        (0, 0)
    }
}

impl tui_term::widget::Cell for WindowCell {
    fn has_contents(&self) -> bool {
        !self.symbol.is_empty()
    }

    fn apply(&self, cell: &mut ratatui::buffer::Cell) {
        if !self.symbol.is_empty() {
            cell.set_symbol(&self.symbol);
        }
        cell.set_style(self.style);
    }
}

fn style_of(cell: &dgate_term::vt::Cell) -> Style {
    let mut modifier = Modifier::empty();
    for (on, m) in [
        (cell.bold(), Modifier::BOLD),
        (cell.dim(), Modifier::DIM),
        (cell.italic(), Modifier::ITALIC),
        (cell.underline(), Modifier::UNDERLINED),
        (cell.inverse(), Modifier::REVERSED),
    ] {
        if on {
            modifier |= m;
        }
    }
    Style::reset()
        .fg(color(cell.fgcolor()))
        .bg(color(cell.bgcolor()))
        .add_modifier(modifier)
}

fn color(c: dgate_term::vt::Color) -> Color {
    match c {
        dgate_term::vt::Color::Default => Color::Reset,
        dgate_term::vt::Color::Idx(i) => Color::Indexed(i),
        dgate_term::vt::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The reference: a model fed every frame (the model itself is judged
    /// against another terminal in `dgate_term::vt`'s tests).
    fn parser(rows: u16, cols: u16) -> ScreenModel {
        ScreenModel::new(TermSize::new(cols, rows))
    }

    fn row(cols: u16, rows: u16) -> SessionRow {
        SessionRow {
            id: "s1".into(),
            username: "alice".into(),
            game: "NH36".into(),
            cols,
            rows,
            start: None,
            idle: std::time::Duration::ZERO,
            watchers: 2,
            detached: false,
            extra_info: String::new(),
            extra_weight: 0,
            private: false,
        }
    }

    /// A NetHack-like frame: a coloured glyph somewhere, a status line, the
    /// cursor left on the glyph.
    fn frame(i: u16) -> Vec<u8> {
        let (r, c) = (2 + i * 7 % 20, 1 + i * 13 % 78);
        format!(
            "\x1b[{r};{c}H\x1b[1;3{}m{}\x1b[0m\x1b[24;1H\x1b[2K\x1b[44mDlvl:1 HP:{} T:{i}\x1b[0m\x1b[{r};{c}H",
            i % 8,
            char::from(b'a' + (i % 26) as u8),
            i % 17
        )
        .into_bytes()
    }

    fn output(frame_id: u64, data: &[u8]) -> GameEvent<'_> {
        GameEvent::Output { frame_id, data }
    }

    fn snapshot<'a>(
        model: &ScreenModel,
        data: &'a [u8],
        frame_id: u64,
        reason: SnapshotReason,
        skipped: u64,
    ) -> GameEvent<'a> {
        GameEvent::Snapshot {
            frame_id,
            size: model.size(),
            data,
            reason,
            frames_skipped: skipped,
        }
    }

    fn same_screen(view: &GameView, reference: &ScreenModel) {
        assert_eq!(view.size(), reference.size());
        assert_eq!(
            view.screen().contents_formatted(),
            reference.screen().contents_formatted(),
            "the view's screen differs from the reference parser's"
        );
        assert_eq!(
            view.screen().cursor_position(),
            reference.screen().cursor_position()
        );
    }

    #[test]
    fn snapshot_then_frames_reproduce_the_players_screen_through_resync_and_resize() {
        // The server's model and a reference model both see every frame.
        let mut server = ScreenModel::new(TermSize::new(80, 24));
        let mut reference = parser(24, 80);
        let mut view = GameView::new(row(80, 24));
        for i in 1..=30 {
            server.process(&frame(i));
            reference.process(&frame(i));
        }
        // Join at frame 30, then frames 31..=60 in order.
        view.apply(snapshot(
            &server,
            &server.snapshot(),
            30,
            SnapshotReason::Join,
            0,
        ));
        for i in 31..=60 {
            server.process(&frame(i));
            reference.process(&frame(i));
            assert_eq!(view.apply(output(u64::from(i), &frame(i))), Update::Screen);
        }
        same_screen(&view, &reference);

        // The viewer falls behind: frames 61..=90 are replaced by a resync.
        for i in 61..=90 {
            server.process(&frame(i));
            reference.process(&frame(i));
        }
        view.apply(snapshot(
            &server,
            &server.snapshot(),
            90,
            SnapshotReason::Resync,
            30,
        ));
        same_screen(&view, &reference);
        assert_eq!(view.resyncs(), 1);
        assert!(
            view.status_line(Rect::new(0, 0, 100, 30))
                .to_string()
                .contains("resynced ×1 (30 frames skipped)")
        );

        // The player's window grows; frames use the new size.
        view.apply(GameEvent::Resize {
            size: TermSize::new(100, 30),
        });
        server.resize(TermSize::new(100, 30));
        reference.resize(TermSize::new(100, 30));
        for i in 91..=120 {
            let wide = [frame(i), format!("\x1b[30;95Hz{i}").into_bytes()].concat();
            server.process(&wide);
            reference.process(&wide);
            view.apply(output(u64::from(i), &wide));
        }
        same_screen(&view, &reference);
        assert_eq!(view.gaps, 0);
    }

    fn draw(view: &mut GameView, cols: u16, rows: u16) -> (Buffer, Option<Position>) {
        let mut terminal = Terminal::new(TestBackend::new(cols, rows)).expect("test terminal");
        let mut cursor = None;
        terminal
            .draw(|f| cursor = view.draw(f.area(), f.buffer_mut()))
            .expect("draw");
        (terminal.backend().buffer().clone(), cursor)
    }

    fn text_row(buf: &Buffer, y: u16, x: u16, width: u16) -> String {
        (x..x + width)
            .map(|x| buf[(x, y)].symbol())
            .collect::<String>()
    }

    #[test]
    fn drawn_cells_are_the_reference_screens_cells_with_their_colours() {
        let mut reference = parser(24, 80);
        let mut view = GameView::new(row(80, 24));
        for i in 1..=40 {
            reference.process(&frame(i));
            view.apply(output(u64::from(i), &frame(i)));
        }
        let (buf, cursor) = draw(&mut view, 80, 24);
        for (y, line) in reference.screen().rows(0, 80).enumerate() {
            let y = y as u16;
            assert_eq!(
                text_row(&buf, y, 0, 80).trim_end(),
                line.trim_end(),
                "row {y}"
            );
        }
        let (r, c) = reference.screen().cursor_position();
        assert_eq!(cursor, Some(Position::new(c, r)));
        // The status line's blue background and a glyph's bold colour survive.
        assert_eq!(buf[(0, 23)].bg, Color::Indexed(4));
        let glyph = reference.screen().cell(r, c).expect("glyph cell");
        assert_eq!(buf[(c, r)].fg, color(glyph.fgcolor()));
        assert!(buf[(c, r)].modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn a_smaller_area_crops_around_the_cursor_and_says_so() {
        let mut view = GameView::new(row(80, 24));
        view.apply(output(1, b"\x1b[20;70HX marks\x1b[20;70H"));
        let (buf, cursor) = draw(&mut view, 40, 10);
        let cursor = cursor.expect("the cursor is in view");
        assert_eq!(buf[(cursor.x, cursor.y)].symbol(), "X");
        assert!(
            view.status_line(Rect::new(0, 0, 40, 10))
                .to_string()
                .contains("cropped to 40x10")
        );
        // The game's top-left corner is not what is shown.
        assert_ne!((cursor.x, cursor.y), (69, 19));
    }

    #[test]
    fn a_game_a_few_rows_taller_keeps_its_first_and_last_rows_in_view() {
        // NetHack on a 100x30 terminal, watched at 80x24 with the status line.
        let mut view = GameView::new(row(100, 30));
        view.apply(output(
            1,
            b"\x1b[1;1HYou see here a scroll.\x1b[23;1HAgnes St:18/07\x1b[24;1HDlvl:1 HP:16(16)\
              \x1b[12;40H@\x1b[12;40H",
        ));
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
        let mut cursor = None;
        terminal
            .draw(|f| cursor = view.render_with_status(f, f.area(), true))
            .expect("draw");
        let buf = terminal.backend().buffer().clone();
        assert!(text_row(&buf, 0, 0, 80).starts_with("You see here a scroll."));
        assert!(text_row(&buf, 21, 0, 80).starts_with("Agnes St:18/07"));
        assert!(text_row(&buf, 22, 0, 80).starts_with("Dlvl:1 HP:16(16)"));
        let status = text_row(&buf, 23, 0, 80);
        assert!(
            status.contains("100x30") && status.contains("cropped to 80x23"),
            "{status}"
        );
        let cursor = cursor.expect("the hero is in view");
        assert_eq!((cursor.x, cursor.y), (39, 11));
        assert_eq!(buf[(cursor.x, cursor.y)].symbol(), "@");
    }

    #[test]
    fn a_larger_area_centres_the_game() {
        let mut view = GameView::new(row(20, 4));
        view.apply(output(1, b"top-left\x1b[4;1Hbottom"));
        let (buf, _) = draw(&mut view, 40, 10);
        assert_eq!(text_row(&buf, 3, 10, 8), "top-left");
        assert_eq!(text_row(&buf, 6, 10, 6), "bottom");
        assert!(
            !view
                .status_line(Rect::new(0, 0, 40, 10))
                .to_string()
                .contains("cropped")
        );
    }

    #[test]
    fn the_end_of_the_game_is_told_once() {
        let mut view = GameView::new(row(80, 24));
        assert_eq!(
            view.apply(GameEvent::Ended(StreamEnd::GameOver)),
            Update::Ended("alice's NH36 game has ended.".into())
        );
        let later = view.end("The server closed the stream.".into());
        assert_eq!(later, Update::Ended("alice's NH36 game has ended.".into()));
    }

    #[test]
    fn only_a_resync_counts_as_one() {
        let model = ScreenModel::new(TermSize::new(80, 24));
        let data = model.snapshot();
        let mut view = GameView::new(row(80, 24));
        for reason in [SnapshotReason::Join, SnapshotReason::Requested] {
            view.apply(snapshot(&model, &data, 5, reason, 7));
        }
        assert_eq!(view.resyncs(), 0);
        assert!(
            !view
                .status_line(Rect::new(0, 0, 80, 24))
                .to_string()
                .contains("resynced")
        );
        view.apply(snapshot(&model, &data, 9, SnapshotReason::Resync, 4));
        assert_eq!(view.resyncs(), 1);
        assert_eq!(view.frames_skipped, 4);
        // Frames follow the snapshot's without a gap.
        view.apply(output(10, b"x"));
        assert_eq!(view.gaps, 0);
        view.apply(output(12, b"y"));
        assert_eq!(view.gaps, 1);
    }

    #[test]
    fn each_end_of_the_stream_reads_as_its_reason() {
        let cases = [
            (StreamEnd::ServerShutdown, "The server is shutting down."),
            (
                StreamEnd::SpectatorTimeout,
                "Watching timed out (the server's spectator timeout).",
            ),
            (
                StreamEnd::Disconnected(String::new()),
                "The server ended the stream.",
            ),
            (
                StreamEnd::Disconnected("maintenance".into()),
                "The server ended the stream: maintenance",
            ),
        ];
        for (end, why) in cases {
            let mut view = GameView::new(row(80, 24));
            assert_eq!(view.apply(GameEvent::Ended(end)), Update::Ended(why.into()));
            assert_eq!(view.ended.as_deref(), Some(why));
        }
    }

    #[test]
    fn connecting_counts_the_viewer_among_the_watchers() {
        let mut view = GameView::new(row(80, 24));
        assert_eq!(view.apply(GameEvent::Connected), Update::Screen);
        assert_eq!(view.row.watchers, 3);
    }

    #[test]
    fn the_status_line_takes_the_bottom_row_when_asked_for() {
        let mut view = GameView::new(row(20, 4));
        view.apply(output(1, b"top"));
        let mut terminal = Terminal::new(TestBackend::new(30, 6)).expect("test terminal");
        let mut cursor = None;
        terminal
            .draw(|f| cursor = view.render_with_status(f, f.area(), true))
            .expect("draw");
        let buf = terminal.backend().buffer().clone();
        let status = text_row(&buf, 5, 0, 30);
        assert!(status.starts_with(" alice · NH36 · 20x4"), "{status:?}");
        assert_eq!(buf[(0, 5)].bg, Color::DarkGray);
        // The game is centred in the five rows above it.
        assert_eq!(text_row(&buf, 0, 5, 3), "top");
        assert_eq!(cursor, Some(Position::new(8, 0)));

        terminal
            .draw(|f| cursor = view.render_with_status(f, f.area(), false))
            .expect("draw");
        let buf = terminal.backend().buffer().clone();
        assert_eq!(text_row(&buf, 1, 5, 3), "top");
        assert!(!text_row(&buf, 5, 0, 30).contains("alice"));
        assert_eq!(cursor, Some(Position::new(8, 1)));
    }
}
