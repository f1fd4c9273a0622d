//! The recent games page of the watch menu (`r`): finished games the server
//! recorded, newest first, chosen with the same letters, arrows and paging as
//! the games in progress, and replayed by the server.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use dgate_term::listing::RecordingSummary;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};

use crate::format::{idle, start_time};
use crate::watch_menu::{LETTERS, render_with_prompt};

/// Lines of the page that are not recordings.
const CHROME_LINES: u16 = 13;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecentAction {
    None,
    Back,
    Replay(String),
}

#[derive(Debug)]
pub struct RecentMenu {
    recordings: Vec<RecordingSummary>,
    page: usize,
    page_size: usize,
    highlighted: Option<usize>,
    pub message: Option<String>,
}

impl RecentMenu {
    /// The page for `recordings` (newest first, as the server lists them) on
    /// a terminal of `rows`.
    pub fn new(recordings: Vec<RecordingSummary>, rows: u16) -> Self {
        let mut menu = Self {
            recordings,
            page: 0,
            page_size: 1,
            highlighted: None,
            message: None,
        };
        menu.resize(rows);
        menu
    }

    pub fn resize(&mut self, rows: u16) {
        self.page_size = usize::from(rows.saturating_sub(CHROME_LINES)).clamp(1, LETTERS.len());
        self.page = self.page.min(self.pages() - 1);
    }

    fn pages(&self) -> usize {
        self.recordings.len().div_ceil(self.page_size).max(1)
    }

    fn page_range(&self) -> std::ops::Range<usize> {
        let first = self.page * self.page_size;
        first..(first + self.page_size).min(self.recordings.len())
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> RecentAction {
        if key.kind == KeyEventKind::Release {
            return RecentAction::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return RecentAction::Back;
        }
        self.message = None;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => RecentAction::Back,
            KeyCode::Char('>') | KeyCode::PageDown => {
                self.page = (self.page + 1).min(self.pages() - 1);
                self.highlighted = Some(self.page_range().start);
                RecentAction::None
            }
            KeyCode::Char('<') | KeyCode::PageUp => {
                self.page = self.page.saturating_sub(1);
                self.highlighted = Some(self.page_range().start);
                RecentAction::None
            }
            KeyCode::Down | KeyCode::Up if !self.recordings.is_empty() => {
                let last = self.recordings.len() - 1;
                let next = match (self.highlighted, key.code == KeyCode::Down) {
                    (None, _) => self.page_range().start,
                    (Some(at), true) => (at + 1).min(last),
                    (Some(at), false) => at.saturating_sub(1),
                };
                self.highlighted = Some(next);
                self.page = next / self.page_size;
                RecentAction::None
            }
            KeyCode::Enter => match self.highlighted.and_then(|at| self.recordings.get(at)) {
                Some(r) => RecentAction::Replay(r.id.clone()),
                None => RecentAction::None,
            },
            KeyCode::Char(c) => {
                let chosen = LETTERS
                    .iter()
                    .position(|l| char::from(*l) == c)
                    .map(|at| self.page_range().start + at)
                    .filter(|at| self.page_range().contains(at));
                match chosen {
                    Some(at) => {
                        self.highlighted = Some(at);
                        RecentAction::Replay(self.recordings[at].id.clone())
                    }
                    None => {
                        self.message = Some(format!("No game '{c}' on this page; q goes back."));
                        RecentAction::None
                    }
                }
            }
            _ => RecentAction::None,
        }
    }

    pub fn render(&self, frame: &mut Frame, area: Rect) {
        let area = Rect {
            width: area.width.min(80),
            ..area
        };
        let [title, body] =
            Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);
        frame.render_widget(
            Paragraph::new(Line::from("Recent Games").bold().centered()).block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_type(BorderType::Double),
            ),
            title,
        );
        let mut lines = vec![
            Line::default(),
            Line::from(if self.recordings.is_empty() {
                " No recorded games yet."
            } else {
                " These games were recorded:"
            }),
            Line::default(),
            Line::from(format!(
                "   {:<16} {:<12} {:<8} {:<19}  {:<8} {}",
                "Username", "Game", "Size", "Start date & time", "Length", "Ended"
            )),
            Line::default(),
        ];
        let range = self.page_range();
        for (letter, at) in LETTERS.iter().zip(range.clone()) {
            let r = &self.recordings[at];
            let length = match (r.start, r.end) {
                (Some(s), Some(e)) => idle(e.duration_since(s).unwrap_or_default()),
                _ => String::new(),
            };
            let ended = r.ending_short();
            let text = format!(
                "{}) {:<16} {:<12} {:<8} {:<19}  {:<8} {}",
                char::from(*letter),
                r.username,
                r.game_id,
                r.size.to_string(),
                start_time(r.start),
                length,
                ended
            );
            let style = if self.highlighted == Some(at) {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            lines.push(Line::from(text).style(style));
        }
        lines.push(Line::default());
        lines.push(Line::from(if self.recordings.is_empty() {
            "(0 of 0)".to_owned()
        } else {
            format!(
                "({}-{} of {})",
                range.start + 1,
                range.end,
                self.recordings.len()
            )
        }));
        if let Some(message) = &self.message {
            lines.push(Line::from(message.clone()).fg(Color::Yellow));
        }
        lines.push(Line::default());
        let prompt = "Replay which game? (q goes back) => ";
        render_with_prompt(frame, body, lines, prompt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dgate_term::TermSize;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::{Duration, SystemTime};

    fn recording(n: usize) -> RecordingSummary {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_751_770_604 + n as u64 * 3600);
        RecordingSummary {
            id: format!("user{n}/nethack/{n}"),
            username: format!("user{n}"),
            game_id: "nethack".into(),
            start: Some(start),
            end: Some(start + Duration::from_secs(323)),
            size: TermSize::new(80, 24),
            frames: 100,
            // The third game neither exited nor was signalled (the server
            // went away).
            exit_code: (n != 2).then_some(0),
            signal: (n == 1).then(|| "SIGHUP".to_owned()),
            end_reason: None,
        }
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn recordings_are_listed_and_chosen_like_games() {
        let mut menu = RecentMenu::new((0..15).map(recording).collect(), 24);
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
        terminal.draw(|f| menu.render(f, f.area())).expect("draw");
        let buf = terminal.backend().buffer();
        let lines: Vec<String> = (0..24)
            .map(|y| {
                (0..80)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect();
        assert!(lines[1].contains("Recent Games"));
        assert!(
            lines.contains(
                &"a) user0            nethack      80x24    2025-07-06 02:56:44  5m 23s   exited"
                    .to_owned()
            ),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("b) user1") && l.ends_with("killed"))
        );
        assert!(
            lines.contains(
                &"c) user2            nethack      80x24    2025-07-06 04:56:44  5m 23s".to_owned()
            ),
            "{lines:#?}"
        );
        assert!(lines.contains(&"(1-11 of 15)".to_owned()), "{lines:#?}");
        assert_eq!(
            menu.handle_key(key(KeyCode::Char('b'))),
            RecentAction::Replay("user1/nethack/1".into())
        );
        assert_eq!(menu.handle_key(key(KeyCode::Char('>'))), RecentAction::None);
        assert_eq!(
            menu.handle_key(key(KeyCode::Char('a'))),
            RecentAction::Replay("user11/nethack/11".into())
        );
        assert_eq!(menu.handle_key(key(KeyCode::Char('z'))), RecentAction::None);
        menu.handle_key(key(KeyCode::Down));
        assert_eq!(
            menu.handle_key(key(KeyCode::Enter)),
            RecentAction::Replay("user12/nethack/12".into())
        );
        assert_eq!(menu.handle_key(key(KeyCode::Char('q'))), RecentAction::Back);
    }
}
