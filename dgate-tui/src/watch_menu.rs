//! The watch menu: the games in progress in the spectating document's layout,
//! with one-key selection, paging, sorting, a name filter, help, and marks for
//! the multi-view. Pure state and drawing; the watch loop feeds it keys and
//! fresh listings. [`Features`] says what the front end showing it can do, so
//! that its help and keys offer only that.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use dgate_term::listing::SessionSummary;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};

use crate::format::{idle, start_time};

/// At most this many games are shown at once in the multi-view.
pub const MULTI_VIEW_MAX: usize = 4;

/// What the front end showing the menu can do while watching. The menu's
/// help lists only these, and the keys of a missing one say where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Several games side by side: Space marks them, `m` shows them.
    pub multi_view: bool,
    /// `s` shows or hides the status line below a watched game.
    pub status_toggle: bool,
    /// Ctrl+Z suspends the viewer (a local terminal's job control).
    pub suspend: bool,
}

impl Features {
    /// The `dgate` client: everything.
    pub const CLIENT: Self = Self {
        multi_view: true,
        status_toggle: true,
        suspend: true,
    };
    /// The server's SSH front end: one game at a time, `q` back.
    pub const SSH: Self = Self {
        multi_view: false,
        status_toggle: false,
        suspend: false,
    };
}

impl Default for Features {
    fn default() -> Self {
        Self::CLIENT
    }
}

/// One game in progress, as the menu shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub username: String,
    /// The game's short name (`NH36`), or its id when it has none.
    pub game: String,
    pub cols: u16,
    pub rows: u16,
    pub start: Option<SystemTime>,
    /// Time since the player's last input, when the list was fetched.
    pub idle: Duration,
    pub watchers: u32,
    pub detached: bool,
    /// What the game says about itself ("Dlvl:12 Val-Hum-Fem"); empty when
    /// nothing.
    pub extra_info: String,
    /// The extra info's sort weight, higher first.
    pub extra_weight: i64,
    /// The player lets nobody watch: listed, not watchable.
    pub private: bool,
}

impl SessionRow {
    /// The row of `s`, with its idle time as seen at `now`.
    pub fn from_summary(s: &SessionSummary, now: SystemTime) -> Self {
        Self {
            id: s.id.clone(),
            username: s.username.clone(),
            game: s.game_label().to_owned(),
            cols: s.size.cols,
            rows: s.size.rows,
            start: Some(s.started_at),
            idle: s.idle(now),
            watchers: u32::try_from(s.spectators.len()).unwrap_or(u32::MAX),
            detached: s.detached,
            extra_info: s
                .extra_info
                .as_ref()
                .map(|e| e.text.clone())
                .unwrap_or_default(),
            extra_weight: s.extra_info.as_ref().map_or(i64::MIN, |e| e.weight),
            private: s.private,
        }
    }
}

/// The column the list is sorted by; `.` and `,` step through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    Username,
    Game,
    Size,
    /// Oldest first.
    #[default]
    Start,
    /// Most recently active first.
    Idle,
    /// Most watched first.
    Watchers,
    /// By the game's own weight (deepest, strongest first): dgamelaunch's
    /// extra-info sort.
    ExtraInfo,
}

impl SortKey {
    const ALL: [SortKey; 7] = [
        SortKey::Username,
        SortKey::Game,
        SortKey::Size,
        SortKey::Start,
        SortKey::Idle,
        SortKey::Watchers,
        SortKey::ExtraInfo,
    ];

    fn step(self, forward: bool) -> Self {
        let at = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        let n = Self::ALL.len();
        Self::ALL[if forward {
            (at + 1) % n
        } else {
            (at + n - 1) % n
        }]
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Username => "username",
            SortKey::Game => "game",
            SortKey::Size => "size",
            SortKey::Start => "start time",
            SortKey::Idle => "idle time",
            SortKey::Watchers => "watchers",
            SortKey::ExtraInfo => "extra info",
        }
    }
}

/// What the menu asks the watch loop to do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    None,
    Quit,
    Watch(String),
    MultiView(Vec<String>),
    /// The recent games page (recordings).
    Recent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Browse,
    /// Typing a filter; the text so far.
    Filter(String),
    Help,
}

/// The selector letters: `a`–`z` then `A`–`Z`, without the command keys
/// `m` (multi-view), `q` (quit) and `r` (recent games), either case.
pub const LETTERS: &[u8] = b"abcdefghijklnopstuvwxyzABCDEFGHIJKLNOPSTUVWXYZ";

/// What Space and `m` say where there is no multi-view.
const NO_MULTI_VIEW: &str =
    "One game at a time here; the dgate client (dgate watch) shows several.";

/// The width of the menu's columns without the extra info.
const BASE_WIDTH: usize = 80;
/// The extra info's widest column.
const EXTRA_MAX: usize = 60;

/// Where [`WatchMenu`] shows the games' extra info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtraColumn {
    /// A column of this width after the watchers.
    After(usize),
    /// In the start time's column, on a terminal without room for more.
    InsteadOfStart,
}

/// Lines of the menu that are not game rows.
const CHROME_LINES: u16 = 14;

#[derive(Debug)]
pub struct WatchMenu {
    /// As the server listed them.
    sessions: Vec<SessionRow>,
    sort: SortKey,
    filter: String,
    mode: Mode,
    page: usize,
    /// The highlighted session (arrow keys, Enter, Space), kept across refreshes.
    highlighted: Option<String>,
    marked: BTreeSet<String>,
    /// One line for the user (a game that ended, an error), until the next key.
    pub message: Option<String>,
    /// The user's terminal, to mark games larger than it.
    terminal: (u16, u16),
    page_size: usize,
    features: Features,
}

impl WatchMenu {
    pub fn new(terminal_cols: u16, terminal_rows: u16) -> Self {
        let mut menu = Self {
            sessions: Vec::new(),
            sort: SortKey::default(),
            filter: String::new(),
            mode: Mode::Browse,
            page: 0,
            highlighted: None,
            marked: BTreeSet::new(),
            message: None,
            terminal: (0, 0),
            page_size: 1,
            features: Features::default(),
        };
        menu.resize(terminal_cols, terminal_rows);
        menu
    }

    /// The menu of a front end that can do only `features` (the client's,
    /// everything, when not said).
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// The user's terminal changed size: rows per page and "too large" marks follow.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.terminal = (cols, rows);
        self.page_size = usize::from(rows.saturating_sub(CHROME_LINES)).clamp(1, LETTERS.len());
        self.clamp_page();
    }

    /// A fresh listing from the server; the highlight and marks stay on the
    /// same sessions while they exist.
    pub fn update(&mut self, sessions: Vec<SessionRow>) {
        self.marked
            .retain(|id| sessions.iter().any(|s| &s.id == id));
        self.sessions = sessions;
        if let Some(id) = &self.highlighted {
            if let Some(at) = self.visible().iter().position(|s| &s.id == id) {
                self.page = at / self.page_size;
            } else {
                self.highlighted = None;
            }
        }
        self.clamp_page();
    }

    pub fn session(&self, id: &str) -> Option<&SessionRow> {
        self.sessions.iter().find(|s| s.id == id)
    }

    #[cfg(test)]
    pub fn sort_key(&self) -> SortKey {
        self.sort
    }

    /// The sessions that pass the filter, in sort order.
    pub fn visible(&self) -> Vec<&SessionRow> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&SessionRow> = self
            .sessions
            .iter()
            .filter(|s| {
                needle.is_empty()
                    || s.username.to_lowercase().contains(&needle)
                    || s.game.to_lowercase().contains(&needle)
            })
            .collect();
        rows.sort_by(|a, b| {
            let by_name = || a.username.to_lowercase().cmp(&b.username.to_lowercase());
            match self.sort {
                SortKey::Username => by_name(),
                SortKey::Game => a.game.cmp(&b.game).then_with(by_name),
                SortKey::Size => (u32::from(b.cols) * u32::from(b.rows))
                    .cmp(&(u32::from(a.cols) * u32::from(a.rows)))
                    .then_with(by_name),
                SortKey::Start => a.start.cmp(&b.start).then_with(by_name),
                SortKey::Idle => a.idle.cmp(&b.idle).then_with(by_name),
                SortKey::Watchers => b.watchers.cmp(&a.watchers).then_with(by_name),
                SortKey::ExtraInfo => b.extra_weight.cmp(&a.extra_weight).then_with(by_name),
            }
        });
        rows
    }

    /// The rows on the current page.
    fn page_rows(&self) -> Vec<&SessionRow> {
        self.visible()
            .into_iter()
            .skip(self.page * self.page_size)
            .take(self.page_size)
            .collect()
    }

    fn pages(&self) -> usize {
        self.visible().len().div_ceil(self.page_size).max(1)
    }

    fn clamp_page(&mut self) {
        self.page = self.page.min(self.pages() - 1);
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> MenuAction {
        if key.kind == KeyEventKind::Release {
            return MenuAction::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return MenuAction::Quit;
        }
        self.message = None;
        match &mut self.mode {
            Mode::Help => {
                self.mode = Mode::Browse;
                MenuAction::None
            }
            Mode::Filter(text) => {
                match key.code {
                    KeyCode::Enter => {
                        self.filter = std::mem::take(text);
                        self.mode = Mode::Browse;
                        self.page = 0;
                    }
                    KeyCode::Esc => self.mode = Mode::Browse,
                    KeyCode::Backspace => {
                        text.pop();
                    }
                    KeyCode::Char(c) if !c.is_control() && text.chars().count() < 32 => {
                        text.push(c)
                    }
                    _ => {}
                }
                MenuAction::None
            }
            Mode::Browse => self.browse_key(key),
        }
    }

    fn browse_key(&mut self, key: KeyEvent) -> MenuAction {
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => MenuAction::Quit,
            KeyCode::Char('?') => {
                self.mode = Mode::Help;
                MenuAction::None
            }
            KeyCode::Char('/') => {
                self.mode = Mode::Filter(self.filter.clone());
                MenuAction::None
            }
            KeyCode::Char('>') | KeyCode::PageDown => {
                self.turn_page(true);
                MenuAction::None
            }
            KeyCode::Char('<') | KeyCode::PageUp => {
                self.turn_page(false);
                MenuAction::None
            }
            KeyCode::Char('.') | KeyCode::Char(',') => {
                self.sort = self.sort.step(key.code == KeyCode::Char('.'));
                self.message = Some(format!("Sorted by {}.", self.sort.name()));
                self.page = 0;
                self.highlighted = None;
                MenuAction::None
            }
            KeyCode::Down | KeyCode::Up => {
                self.move_highlight(key.code == KeyCode::Down);
                MenuAction::None
            }
            KeyCode::Enter => match self.highlighted_row() {
                Some(id) => MenuAction::Watch(id),
                None => {
                    self.message = Some("Choose a game with its letter or the arrow keys.".into());
                    MenuAction::None
                }
            },
            KeyCode::Char(' ' | 'm') if !self.features.multi_view => {
                self.message = Some(NO_MULTI_VIEW.into());
                MenuAction::None
            }
            KeyCode::Char(' ') => {
                self.toggle_mark();
                MenuAction::None
            }
            KeyCode::Char('r') => MenuAction::Recent,
            KeyCode::Char('m') if self.marked.is_empty() => {
                self.message = Some("Mark games with Space first, then 'm' shows them.".into());
                MenuAction::None
            }
            KeyCode::Char('m') => {
                let ids: Vec<String> = self
                    .visible()
                    .iter()
                    .filter(|s| self.marked.contains(&s.id))
                    .map(|s| s.id.clone())
                    .collect();
                MenuAction::MultiView(ids)
            }
            KeyCode::Char(c) => match self.letter_row(c) {
                Some(id) => {
                    self.highlighted = Some(id.clone());
                    MenuAction::Watch(id)
                }
                None => {
                    self.message = Some(format!("No game '{c}' on this page; '?' for help."));
                    MenuAction::None
                }
            },
            _ => MenuAction::None,
        }
    }

    fn letter_row(&self, c: char) -> Option<String> {
        let at = LETTERS.iter().position(|l| char::from(*l) == c)?;
        self.page_rows().get(at).map(|s| s.id.clone())
    }

    fn highlighted_row(&self) -> Option<String> {
        let id = self.highlighted.as_ref()?;
        self.visible()
            .iter()
            .any(|s| &s.id == id)
            .then(|| id.clone())
    }

    fn turn_page(&mut self, forward: bool) {
        let pages = self.pages();
        self.page = if forward {
            (self.page + 1).min(pages - 1)
        } else {
            self.page.saturating_sub(1)
        };
        self.highlighted = self.page_rows().first().map(|s| s.id.clone());
    }

    fn move_highlight(&mut self, down: bool) {
        let visible = self.visible();
        if visible.is_empty() {
            return;
        }
        let current = self
            .highlighted
            .as_ref()
            .and_then(|id| visible.iter().position(|s| &s.id == id));
        let next = match (current, down) {
            (None, true) => self.page * self.page_size,
            (None, false) => ((self.page + 1) * self.page_size).min(visible.len()) - 1,
            (Some(at), true) => (at + 1).min(visible.len() - 1),
            (Some(at), false) => at.saturating_sub(1),
        };
        let next = next.min(visible.len() - 1);
        self.highlighted = Some(visible[next].id.clone());
        self.page = next / self.page_size;
    }

    fn toggle_mark(&mut self) {
        let Some(id) = self.highlighted_row() else {
            self.message = Some("Move to a game with the arrow keys, then Space marks it.".into());
            return;
        };
        if !self.marked.remove(&id) {
            if self.marked.len() >= MULTI_VIEW_MAX {
                self.message = Some(format!(
                    "At most {MULTI_VIEW_MAX} games fit in the multi-view."
                ));
                return;
            }
            self.marked.insert(id);
        }
        self.message = Some(match self.marked.len() {
            0 => "No games marked.".to_owned(),
            n => format!("{n} marked: 'm' shows them side by side."),
        });
    }

    /// Where the extra info goes: after the other columns when the terminal
    /// has room for it, else in the start time's place (the column a
    /// spectator needs least); `None` when no game has any.
    fn extra_column(&self) -> Option<ExtraColumn> {
        if self.sessions.iter().all(|s| s.extra_info.is_empty()) {
            return None;
        }
        let room = usize::from(self.terminal.0).saturating_sub(BASE_WIDTH + 2);
        Some(if room >= 12 {
            ExtraColumn::After(room.min(EXTRA_MAX))
        } else {
            ExtraColumn::InsteadOfStart
        })
    }

    pub fn render(&self, frame: &mut Frame, area: Rect) {
        let extra = self.extra_column();
        let full = match extra {
            Some(ExtraColumn::After(width)) => BASE_WIDTH + 2 + width,
            _ => BASE_WIDTH,
        };
        let width = area.width.min(u16::try_from(full).unwrap_or(u16::MAX));
        let area = Rect { width, ..area };
        let [title, body] =
            Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);

        frame.render_widget(
            Paragraph::new(Line::from("Watch Games").bold().centered()).block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_type(BorderType::Double),
            ),
            title,
        );

        let visible = self.visible();
        let rows = self.page_rows();
        let mut lines = vec![
            Line::default(),
            Line::from(if self.sessions.is_empty() {
                " No games are in progress."
            } else {
                " The following games are in progress:"
            }),
            Line::default(),
            self.header(extra),
            Line::default(),
        ];
        let too_large = |s: &SessionRow| s.cols > self.terminal.0 || s.rows > self.terminal.1;
        for (letter, s) in LETTERS.iter().zip(&rows) {
            lines.push(self.row_line(char::from(*letter), s, too_large(s), extra));
        }
        if rows.is_empty() && !self.sessions.is_empty() {
            lines.push(Line::from(format!(" No game matches \"{}\".", self.filter)).italic());
        }
        lines.push(Line::default());
        let first = self.page * self.page_size;
        let mut footer = if visible.is_empty() {
            "(0 of 0)".to_owned()
        } else {
            format!(
                "({}-{} of {})",
                first + 1,
                first + rows.len(),
                visible.len()
            )
        };
        if !self.filter.is_empty() {
            footer.push_str(&format!("  filter: \"{}\"", self.filter));
        }
        if self.sort != SortKey::default() {
            footer.push_str(&format!("  sorted by {}", self.sort.name()));
        }
        lines.push(Line::from(footer));
        if rows.iter().any(|s| too_large(s)) {
            lines
                .push(Line::from("* larger than your terminal: the view follows the cursor").dim());
        }
        if let Some(message) = &self.message {
            lines.push(Line::from(message.clone()).fg(Color::Yellow));
        }
        lines.push(Line::default());
        let prompt = match &self.mode {
            Mode::Filter(text) => {
                format!("Filter by name (Enter applies, Esc cancels): {text}")
            }
            _ => "Watch which game? ('?' for help) => ".to_owned(),
        };
        render_with_prompt(frame, body, lines, &prompt);

        if self.mode == Mode::Help {
            self.render_help(frame, area);
        }
    }

    fn header(&self, extra: Option<ExtraColumn>) -> Line<'static> {
        let column = |key: SortKey, text: String| {
            let span = Span::from(text);
            if key == self.sort {
                span.add_modifier(Modifier::UNDERLINED | Modifier::BOLD)
            } else {
                span
            }
        };
        let mut spans = vec![
            Span::from("     "),
            column(SortKey::Username, format!("{:<16}", "Username")),
            Span::from(" "),
            column(SortKey::Game, format!("{:<7}", "Game")),
            Span::from(" "),
            column(SortKey::Size, format!("{:<8}", "Size")),
            Span::from(" "),
            if extra == Some(ExtraColumn::InsteadOfStart) {
                column(SortKey::ExtraInfo, format!("{:<19}", "Extra info"))
            } else {
                column(SortKey::Start, format!("{:<19}", "Start date & time"))
            },
            Span::from("  "),
            column(SortKey::Idle, format!("{:<9}", "Idle time")),
            Span::from(" "),
            column(SortKey::Watchers, "Watchers".to_owned()),
        ];
        if let Some(ExtraColumn::After(_)) = extra {
            spans.push(Span::from("  "));
            spans.push(column(SortKey::ExtraInfo, "Extra info".to_owned()));
        }
        Line::from(spans)
    }

    fn row_line(
        &self,
        letter: char,
        s: &SessionRow,
        too_large: bool,
        extra: Option<ExtraColumn>,
    ) -> Line<'static> {
        let mark = if self.marked.contains(&s.id) {
            "+"
        } else {
            " "
        };
        let size = format!("{}x{}{}", s.cols, s.rows, if too_large { "*" } else { "" });
        let idle_text = if s.detached {
            "detached".to_owned()
        } else {
            idle(s.idle)
        };
        let fourth = match extra {
            Some(ExtraColumn::InsteadOfStart) => truncate(&s.extra_info, 19),
            _ => start_time(s.start),
        };
        let mut text = format!(
            "{letter}) {mark} {:<16} {:<7} {:<8} {:<19}  {:<9} {:>8}",
            truncate(&s.username, 16),
            truncate(&s.game, 7),
            size,
            fourth,
            idle_text,
            if s.private {
                "private".to_owned()
            } else {
                s.watchers.to_string()
            },
        );
        if let Some(ExtraColumn::After(width)) = extra {
            text.push_str("  ");
            text.push_str(&truncate(&s.extra_info, width));
        }
        let mut style = Style::default();
        if self.highlighted.as_deref() == Some(s.id.as_str()) {
            style = style.add_modifier(Modifier::REVERSED);
        }
        if s.detached || s.private {
            style = style.add_modifier(Modifier::DIM);
        }
        Line::from(text).style(style)
    }

    fn render_help(&self, frame: &mut Frame, area: Rect) {
        let features = self.features;
        let mut text = vec![
            Line::from("a-z, A-Z   watch that game (except m, q and r)"),
            Line::from("↑ ↓ Enter  move, then watch the highlighted game"),
        ];
        if features.multi_view {
            text.push(Line::from("Space      mark a game for the multi-view"));
            text.push(Line::from(
                "m          show the marked games side by side (up to 4)",
            ));
        }
        text.extend([
            Line::from("< > PgUp PgDn   previous and next page"),
            Line::from(". ,        sort by the next (previous) column"),
            Line::from("/          filter by player or game name"),
            Line::from("r          recent games: replay a finished one"),
            Line::from("?          this help"),
            Line::from("q Esc      quit"),
            Line::default(),
        ]);
        text.extend(watching_help(features).into_iter().map(Line::from));
        text.extend([Line::default(), Line::from("Press any key.").italic()]);
        let height = (text.len() as u16 + 2).min(area.height);
        let width = 66.min(area.width);
        let popup = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        };
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(" Help ")),
            popup,
        );
    }
}

/// What the help says about the keys while watching, a line each.
fn watching_help(features: Features) -> Vec<String> {
    if features == Features::CLIENT {
        return [
            "While watching: q or Ctrl+C returns here, s toggles the",
            "status line, Ctrl+Z suspends. In the multi-view: Tab moves",
            "the focus, Enter shows one game full-screen, q goes back.",
            "c opens the game's chat, m sends the player a message.",
        ]
        .map(String::from)
        .to_vec();
    }
    let mut keys = vec!["q or Ctrl+C returns here"];
    if features.status_toggle {
        keys.push("s toggles the status line");
    }
    if features.suspend {
        keys.push("Ctrl+Z suspends");
    }
    let mut lines = vec![
        format!("While watching: {}.", keys.join(", ")),
        "c opens the game's chat, m sends the player a message.".to_owned(),
    ];
    if features.multi_view {
        lines.push("In the multi-view: Tab moves the focus, Enter shows one".into());
        lines.push("game full-screen, q goes back.".into());
    }
    lines
}

/// `lines`, then `prompt` on the line after them (as in dgamelaunch; on a
/// short terminal, on the last row) with the cursor at its end.
pub(crate) fn render_with_prompt(frame: &mut Frame, body: Rect, lines: Vec<Line>, prompt: &str) {
    let prompt_y = (body.y + lines.len() as u16).min(body.bottom().saturating_sub(1));
    let cursor_x = body.x + u16::try_from(prompt.chars().count()).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines), body);
    let prompt_area = Rect {
        y: prompt_y,
        height: 1,
        ..body
    };
    frame.render_widget(Clear, prompt_area);
    frame.render_widget(Paragraph::new(prompt.to_owned()), prompt_area);
    frame.set_cursor_position((cursor_x.min(body.right().saturating_sub(1)), prompt_y));
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    const START: u64 = 1_751_770_604; // 2025-07-06 02:56:44 UTC

    fn session(
        n: usize,
        name: &str,
        game: &str,
        size: (u16, u16),
        idle: u64,
        watchers: u32,
    ) -> SessionRow {
        SessionRow {
            id: format!("session-{n}"),
            username: name.into(),
            game: game.into(),
            cols: size.0,
            rows: size.1,
            start: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(START + n as u64)),
            idle: Duration::from_secs(idle),
            watchers,
            detached: false,
            extra_info: String::new(),
            extra_weight: i64::MIN,
            private: false,
        }
    }

    fn two() -> Vec<SessionRow> {
        vec![
            session(0, "player1", "NH370", (80, 24), 323, 0),
            session(1, "player2", "DCSS", (120, 40), 6, 1),
        ]
    }

    fn many(n: usize) -> Vec<SessionRow> {
        (0..n)
            .map(|i| session(i, &format!("user{i:02}"), "NH36", (80, 24), i as u64, 0))
            .collect()
    }

    fn screen(menu: &WatchMenu, cols: u16, rows: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(cols, rows)).expect("test terminal");
        terminal.draw(|f| menu.render(f, f.area())).expect("draw");
        let buf = terminal.backend().buffer();
        (0..rows)
            .map(|y| {
                (0..cols)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn press(menu: &mut WatchMenu, c: char) -> MenuAction {
        menu.handle_key(key(KeyCode::Char(c)))
    }

    fn menu_with(rows: Vec<SessionRow>, cols: u16, lines: u16) -> WatchMenu {
        let mut menu = WatchMenu::new(cols, lines);
        menu.update(rows);
        menu
    }

    #[test]
    fn a_summary_becomes_the_row_the_menu_shows() {
        use dgate_term::TermSize;
        use dgate_term::listing::SpectatorSummary;

        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(START);
        let spectator = || SpectatorSummary {
            user_id: 0,
            username: "Anonymous".into(),
            joined_at: started,
            connected: true,
        };
        let mut summary = SessionSummary {
            id: "s1".into(),
            user_id: 7,
            username: "olga".into(),
            game_id: "nethack".into(),
            game_short_name: "NH36".into(),
            size: TermSize::new(100, 30),
            started_at: started,
            ended_at: None,
            last_activity: started + Duration::from_secs(60),
            spectators: vec![spectator(), spectator()],
            detached: true,
            frames: 12,
            extra_info: Some(dgate_term::listing::ExtraInfo {
                weight: 12,
                text: "Dlvl:12".into(),
            }),
            private: false,
            node: None,
        };
        let now = started + Duration::from_secs(383);
        assert_eq!(
            SessionRow::from_summary(&summary, now),
            SessionRow {
                id: "s1".into(),
                username: "olga".into(),
                game: "NH36".into(),
                cols: 100,
                rows: 30,
                start: Some(started),
                idle: Duration::from_secs(323),
                watchers: 2,
                detached: true,
                extra_info: "Dlvl:12".into(),
                extra_weight: 12,
                private: false,
            }
        );
        // Without a short name the game's id is shown; a clock behind the
        // last input is no idle time.
        summary.game_short_name.clear();
        let row = SessionRow::from_summary(&summary, started);
        assert_eq!((row.game.as_str(), row.idle), ("nethack", Duration::ZERO));
    }

    #[test]
    fn the_menu_has_the_documents_layout() {
        let menu = menu_with(two(), 120, 50);
        let lines = screen(&menu, 100, 24);
        assert_eq!(
            lines[1].trim(),
            "║                                  Watch Games                                 ║"
        );
        assert_eq!(lines[4], " The following games are in progress:");
        assert_eq!(
            lines[6],
            "     Username         Game    Size     Start date & time    Idle time Watchers"
        );
        assert_eq!(
            lines[8],
            "a)   player1          NH370   80x24    2025-07-06 02:56:44  5m 23s           0"
        );
        assert_eq!(
            lines[9],
            "b)   player2          DCSS    120x40   2025-07-06 02:56:45  6s               1"
        );
        assert_eq!(lines[11], "(1-2 of 2)");
        assert_eq!(lines[13], "Watch which game? ('?' for help) =>");
    }

    #[test]
    fn letters_skip_q_and_start_watching_at_once() {
        let mut menu = menu_with(many(30), 80, 60);
        let visible: Vec<String> = menu.visible().iter().map(|s| s.id.clone()).collect();
        assert_eq!(press(&mut menu, 'a'), MenuAction::Watch(visible[0].clone()));
        // `m`, `q` and `r` are commands, not rows: `n` is the 12th, `s` the 15th.
        assert_eq!(
            press(&mut menu, 'n'),
            MenuAction::Watch(visible[12].clone())
        );
        assert_eq!(
            press(&mut menu, 's'),
            MenuAction::Watch(visible[15].clone())
        );
        assert_eq!(
            press(&mut menu, 'A'),
            MenuAction::Watch(visible[23].clone())
        );
        assert_eq!(press(&mut menu, 'r'), MenuAction::Recent);
        assert_eq!(press(&mut menu, 'q'), MenuAction::Quit);
        assert_eq!(menu.handle_key(key(KeyCode::Esc)), MenuAction::Quit);
        let lines = screen(&menu, 80, 60);
        assert!(lines.iter().any(|l| l.starts_with("p)   user14")));
        assert!(lines.iter().any(|l| l.starts_with("s)   user15")));
        for command in ["m)", "q)", "r)"] {
            assert!(!lines.iter().any(|l| l.starts_with(command)));
        }
    }

    #[test]
    fn pages_turn_and_letters_start_again_on_each() {
        // 24 rows leave 10 for games.
        let mut menu = menu_with(many(25), 80, 24);
        let visible: Vec<String> = menu.visible().iter().map(|s| s.id.clone()).collect();
        assert!(screen(&menu, 80, 24).contains(&"(1-10 of 25)".to_owned()));
        press(&mut menu, '>');
        assert!(screen(&menu, 80, 24).contains(&"(11-20 of 25)".to_owned()));
        assert_eq!(
            press(&mut menu, 'a'),
            MenuAction::Watch(visible[10].clone())
        );
        menu.handle_key(key(KeyCode::PageDown));
        menu.handle_key(key(KeyCode::PageDown));
        let lines = screen(&menu, 80, 24);
        assert!(lines.contains(&"(21-25 of 25)".to_owned()), "{lines:#?}");
        // A letter past the last row of the page is not a game.
        assert_eq!(press(&mut menu, 'g'), MenuAction::None);
        assert!(
            menu.message
                .as_deref()
                .is_some_and(|m| m.contains("No game 'g'"))
        );
        press(&mut menu, '<');
        menu.handle_key(key(KeyCode::PageUp));
        assert!(screen(&menu, 80, 24).contains(&"(1-10 of 25)".to_owned()));
    }

    #[test]
    fn sorting_cycles_through_the_columns() {
        let rows = vec![
            session(0, "carol", "NH36", (80, 24), 50, 1),
            session(1, "alice", "DCSS", (132, 50), 600, 7),
            session(2, "bob", "NH36", (100, 30), 2, 0),
        ];
        let mut menu = menu_with(rows, 200, 60);
        let order = |m: &WatchMenu| -> Vec<String> {
            m.visible().iter().map(|s| s.username.clone()).collect()
        };
        assert_eq!(menu.sort_key(), SortKey::Start);
        assert_eq!(order(&menu), ["carol", "alice", "bob"]);
        press(&mut menu, '.');
        assert_eq!(menu.sort_key(), SortKey::Idle);
        assert_eq!(order(&menu), ["bob", "carol", "alice"]);
        press(&mut menu, '.');
        assert_eq!(
            order(&menu),
            ["alice", "carol", "bob"],
            "most watched first"
        );
        let mut rows = menu.visible().into_iter().cloned().collect::<Vec<_>>();
        for (row, (weight, text)) in
            rows.iter_mut()
                .zip([(4, "Dlvl:4"), (12, "Dlvl:12"), (1, "Dlvl:1")])
        {
            row.extra_weight = weight;
            row.extra_info = text.into();
        }
        menu.update(rows);
        press(&mut menu, '.');
        assert_eq!(menu.sort_key(), SortKey::ExtraInfo);
        assert_eq!(
            order(&menu),
            ["carol", "alice", "bob"],
            "the game's weight, highest first"
        );
        press(&mut menu, '.');
        assert_eq!(order(&menu), ["alice", "bob", "carol"], "by username");
        press(&mut menu, '.');
        assert_eq!(
            order(&menu),
            ["alice", "bob", "carol"],
            "by game, then name"
        );
        press(&mut menu, '.');
        assert_eq!(order(&menu), ["alice", "bob", "carol"], "largest first");
        press(&mut menu, ',');
        press(&mut menu, ',');
        assert_eq!(menu.sort_key(), SortKey::Username);
        assert!(
            screen(&menu, 80, 60)
                .iter()
                .any(|l| l.contains("sorted by username"))
        );
    }

    #[test]
    fn extra_info_takes_a_column_of_its_own_or_the_start_times_place() {
        let mut rows = two();
        rows[0].extra_info = "Dlvl:12 Val-Hum-Fem".into();
        rows[0].extra_weight = 12;
        let wide = menu_with(rows.clone(), 120, 24);
        let lines = screen(&wide, 120, 24);
        let header = lines
            .iter()
            .find(|l| l.contains("Username"))
            .expect("header");
        assert!(
            header.contains("Start date & time") && header.ends_with("Extra info"),
            "{header}"
        );
        let row = lines.iter().find(|l| l.contains("player1")).expect("row");
        assert!(
            row.contains("2025-07-06") && row.ends_with("Dlvl:12 Val-Hum-Fem"),
            "{row}"
        );

        let narrow = menu_with(rows.clone(), 80, 24);
        let lines = screen(&narrow, 80, 24);
        let header = lines
            .iter()
            .find(|l| l.contains("Username"))
            .expect("header");
        assert!(
            header.contains("Extra info") && !header.contains("Start"),
            "{header}"
        );
        let row = lines.iter().find(|l| l.contains("player1")).expect("row");
        assert!(row.contains("Dlvl:12 Val-Hum-Fem"), "{row}");
        assert!(lines.iter().all(|l| l.chars().count() <= 80));

        // Without extra info anywhere, the menu is as it always was.
        let plain = screen(&menu_with(two(), 120, 24), 120, 24);
        assert!(plain.iter().all(|l| !l.contains("Extra info")));
    }

    #[test]
    fn slash_filters_by_name_and_escape_cancels_typing() {
        let mut menu = menu_with(two(), 80, 24);
        press(&mut menu, '/');
        for c in "AYER2".chars() {
            press(&mut menu, c);
        }
        assert!(
            screen(&menu, 80, 24)
                .iter()
                .any(|l| l.contains("Filter by name") && l.ends_with("AYER2"))
        );
        menu.handle_key(key(KeyCode::Enter));
        let names: Vec<String> = menu.visible().iter().map(|s| s.username.clone()).collect();
        assert_eq!(names, ["player2"]);
        let lines = screen(&menu, 80, 24);
        assert!(
            lines.contains(&"(1-1 of 1)  filter: \"AYER2\"".to_owned()),
            "{lines:#?}"
        );
        // Letters select again once the filter is applied.
        assert_eq!(press(&mut menu, 'a'), MenuAction::Watch("session-1".into()));
        // Typing a new filter and pressing Esc keeps the old one.
        press(&mut menu, '/');
        menu.handle_key(key(KeyCode::Backspace));
        menu.handle_key(key(KeyCode::Esc));
        assert_eq!(menu.visible().len(), 1);
        // An empty filter shows everything.
        press(&mut menu, '/');
        for _ in 0..5 {
            menu.handle_key(key(KeyCode::Backspace));
        }
        menu.handle_key(key(KeyCode::Enter));
        assert_eq!(menu.visible().len(), 2);
    }

    #[test]
    fn question_mark_shows_help_and_any_key_closes_it() {
        let mut menu = menu_with(two(), 80, 24);
        press(&mut menu, '?');
        let lines = screen(&menu, 80, 24).join("\n");
        assert!(lines.contains("Help"));
        assert!(lines.contains("sort by the next"));
        assert!(lines.contains("filter by player or game name"));
        // The key that closes help does nothing else.
        assert_eq!(press(&mut menu, 'a'), MenuAction::None);
        assert!(!screen(&menu, 80, 24).join("\n").contains("Help"));
        assert_eq!(press(&mut menu, 'a'), MenuAction::Watch("session-0".into()));
    }

    #[test]
    fn the_ssh_menus_help_lists_only_what_works_over_ssh() {
        let help = |features: Features| {
            let mut menu = menu_with(two(), 80, 30).with_features(features);
            press(&mut menu, '?');
            screen(&menu, 80, 30).join("\n")
        };
        let client = help(Features::CLIENT);
        for line in [
            "Space      mark a game for the multi-view",
            "m          show the marked games side by side (up to 4)",
            "While watching: q or Ctrl+C returns here, s toggles the",
            "status line, Ctrl+Z suspends. In the multi-view: Tab moves",
            "the focus, Enter shows one game full-screen, q goes back.",
        ] {
            assert!(
                client.contains(line),
                "{line:?} in the client's help:\n{client}"
            );
        }
        let ssh = help(Features::SSH);
        assert!(
            ssh.contains("While watching: q or Ctrl+C returns here."),
            "{ssh}"
        );
        for gone in [
            "Space",
            "multi-view",
            "side by side",
            "s toggles",
            "Ctrl+Z",
            "Tab",
        ] {
            assert!(!ssh.contains(gone), "{gone:?} in the SSH help:\n{ssh}");
        }
        for kept in [
            "watch that game",
            "sort by the next",
            "filter by player",
            "recent games",
        ] {
            assert!(ssh.contains(kept), "{kept:?} in the SSH help:\n{ssh}");
        }
    }

    #[test]
    fn without_a_multi_view_space_and_m_say_where_it_is() {
        let mut menu = menu_with(many(3), 80, 24).with_features(Features::SSH);
        menu.handle_key(key(KeyCode::Down));
        for c in [' ', 'm'] {
            assert_eq!(press(&mut menu, c), MenuAction::None);
            assert_eq!(menu.message.as_deref(), Some(NO_MULTI_VIEW));
        }
        // Nothing was marked.
        assert!(screen(&menu, 80, 24).iter().all(|l| !l.starts_with("a) +")));
        assert_eq!(
            menu.handle_key(key(KeyCode::Enter)),
            MenuAction::Watch("session-0".into())
        );
    }

    #[test]
    fn arrows_and_enter_select_and_the_highlight_survives_a_refresh() {
        let mut menu = menu_with(many(5), 80, 24);
        menu.handle_key(key(KeyCode::Down));
        menu.handle_key(key(KeyCode::Down));
        menu.handle_key(key(KeyCode::Down));
        menu.handle_key(key(KeyCode::Up));
        let chosen = menu.visible()[1].id.clone();
        // A refresh brings a new game that sorts first, and loses another.
        let mut fresh = many(5);
        fresh.remove(4);
        let mut newcomer = session(9, "zed", "NH36", (80, 24), 0, 0);
        newcomer.start = Some(SystemTime::UNIX_EPOCH);
        fresh.push(newcomer);
        menu.update(fresh);
        assert_eq!(
            menu.handle_key(key(KeyCode::Enter)),
            MenuAction::Watch(chosen)
        );
    }

    #[test]
    fn games_larger_than_the_terminal_are_marked() {
        let menu = menu_with(two(), 100, 30);
        let lines = screen(&menu, 100, 30);
        assert!(lines.iter().any(|l| l.contains("120x40*")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("80x24 ")));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("* larger than your terminal"))
        );
    }

    #[test]
    fn space_marks_games_and_m_opens_them_in_the_multi_view() {
        let mut menu = menu_with(many(6), 80, 24);
        // Without marks, `m` says what to do.
        assert_eq!(press(&mut menu, 'm'), MenuAction::None);
        assert!(
            menu.message
                .as_deref()
                .is_some_and(|m| m.contains("Mark games with Space"))
        );
        for _ in 0..2 {
            menu.handle_key(key(KeyCode::Down));
            press(&mut menu, ' ');
        }
        menu.handle_key(key(KeyCode::Down));
        menu.handle_key(key(KeyCode::Down));
        press(&mut menu, ' ');
        let lines = screen(&menu, 80, 24);
        assert!(
            lines.iter().any(|l| l.starts_with("a) + user00")),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("c)   user02")));
        assert_eq!(
            press(&mut menu, 'm'),
            MenuAction::MultiView(vec![
                "session-0".into(),
                "session-1".into(),
                "session-3".into()
            ])
        );
        // Two more reach the limit of four.
        menu.handle_key(key(KeyCode::Down));
        press(&mut menu, ' ');
        menu.handle_key(key(KeyCode::Down));
        press(&mut menu, ' ');
        assert!(
            menu.message
                .as_deref()
                .is_some_and(|m| m.contains("At most 4"))
        );
    }

    #[test]
    fn ctrl_c_quits_from_anywhere() {
        let mut menu = menu_with(two(), 80, 24);
        press(&mut menu, '/');
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(menu.handle_key(ctrl_c), MenuAction::Quit);
    }
}
