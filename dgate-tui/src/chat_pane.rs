//! A game's chat beside it, shared by `dgate watch` and the replay screen
//! (`dgate replay`, SSH): where the pane goes (beside the game when the
//! terminal is wide enough, else below it, else over its bottom rows only
//! while asked for: never over the game otherwise), the lines as the pane
//! shows them (without a server's control characters, the player's name
//! bold, admins marked, answers apart), and drawing the latest that fit.

use std::collections::VecDeque;

use dgate_term::TermSize;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

/// Lines a pane keeps.
pub const CHAT_KEPT: usize = 200;
/// The narrowest chat pane beside a game.
pub const CHAT_MIN_COLS: u16 = 30;
/// The fewest chat rows under a game (a border and three lines).
pub const CHAT_MIN_ROWS: u16 = 4;
/// The chat's rows over a game that leaves no room for it.
pub const CHAT_OVERLAY_ROWS: u16 = 8;

/// Where a game's chat goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatPlace {
    /// A pane right of the game.
    Beside {
        game: Rect,
        chat: Rect,
    },
    /// A pane under the game (and its status rows).
    Below {
        game: Rect,
        chat: Rect,
    },
    /// Over the bottom of the game, while asked for.
    Over {
        chat: Rect,
    },
    Hidden,
}

/// Beside a game of `game`'s size in `area` when it is wide enough, else
/// below the game and its `status_rows` when it is tall enough, else over
/// it while `shown`.
pub fn chat_place(area: Rect, game: TermSize, status_rows: u16, shown: bool) -> ChatPlace {
    if area.width >= game.cols.saturating_add(CHAT_MIN_COLS) && area.height >= game.rows {
        let [game, chat] =
            Layout::horizontal([Constraint::Length(game.cols), Constraint::Min(0)]).areas(area);
        return ChatPlace::Beside { game, chat };
    }
    let needed = game.rows.saturating_add(status_rows);
    if area.width >= game.cols && area.height >= needed.saturating_add(CHAT_MIN_ROWS) {
        let [game, chat] =
            Layout::vertical([Constraint::Length(needed), Constraint::Min(0)]).areas(area);
        return ChatPlace::Below { game, chat };
    }
    if shown {
        return ChatPlace::Over {
            chat: bottom_rows(area, CHAT_OVERLAY_ROWS),
        };
    }
    ChatPlace::Hidden
}

/// The bottom `rows` of `area` (less the last row, kept for a prompt).
pub fn bottom_rows(area: Rect, rows: u16) -> Rect {
    let height = rows.min(area.height.saturating_sub(1));
    Rect {
        y: area.bottom().saturating_sub(height + 1),
        height,
        ..area
    }
}

/// A chat line, whoever carried it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatEntry<'a> {
    pub sender: &'a str,
    pub text: &'a str,
    pub from_player: bool,
    pub from_admin: bool,
    /// The server's answer to this viewer alone.
    pub answer: bool,
}

/// `entry` as the pane shows it.
pub fn chat_line(entry: &ChatEntry) -> Line<'static> {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    if entry.answer {
        return Line::from(format!("» {}", clean(entry.text))).fg(Color::Yellow);
    }
    let mut sender = Span::from(clean(entry.sender));
    if entry.from_player {
        sender = sender.bold();
    }
    let mut spans = vec![sender];
    if entry.from_admin {
        spans.push(Span::from(" [admin]").fg(Color::Red));
    }
    spans.push(Span::from(format!(": {}", clean(entry.text))));
    Line::from(spans)
}

/// A game's chat as a pane shows it: the last [`CHAT_KEPT`] lines.
#[derive(Debug, Clone, Default)]
pub struct ChatPane {
    lines: VecDeque<Line<'static>>,
}

impl ChatPane {
    pub fn push(&mut self, entry: &ChatEntry) {
        self.lines.push_back(chat_line(entry));
        while self.lines.len() > CHAT_KEPT {
            self.lines.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.lines.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &Line<'static>> {
        self.lines.iter()
    }

    /// The pane in `area`: a border titled `title`, the latest lines that
    /// fit, or `empty` dimmed when there are none.
    pub fn render(&self, frame: &mut Frame, area: Rect, title: &str, empty: &str) {
        let block = Block::bordered().title(title.to_owned());
        let inner = block.inner(area);
        let lines: Vec<Line> = if self.lines.is_empty() {
            vec![Line::from(empty.to_owned()).dim()]
        } else {
            let skip = self.lines.len().saturating_sub(usize::from(inner.height));
            self.lines.iter().skip(skip).cloned().collect()
        };
        frame.render_widget(Clear, area);
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_goes_beside_below_or_over_only_when_asked() {
        let game = TermSize::new(80, 24);
        assert!(matches!(
            chat_place(Rect::new(0, 0, 120, 30), game, 1, false),
            ChatPlace::Beside { chat, .. } if chat.width == 40
        ));
        assert!(matches!(
            chat_place(Rect::new(0, 0, 80, 40), game, 1, false),
            ChatPlace::Below { game, chat } if game.height == 25 && chat.height == 15
        ));
        assert_eq!(
            chat_place(Rect::new(0, 0, 80, 25), game, 1, false),
            ChatPlace::Hidden
        );
        assert!(matches!(
            chat_place(Rect::new(0, 0, 80, 25), game, 1, true),
            ChatPlace::Over { chat } if chat.height == CHAT_OVERLAY_ROWS && chat.bottom() == 24
        ));
    }

    #[test]
    fn a_pane_keeps_the_latest_lines_without_control_characters() {
        let mut pane = ChatPane::default();
        for i in 0..(CHAT_KEPT + 3) {
            let text = format!("line {i}\x1b[2J");
            pane.push(&ChatEntry {
                sender: "alice",
                text: &text,
                ..ChatEntry::default()
            });
        }
        let texts: Vec<String> = pane.lines().map(|l| l.to_string()).collect();
        assert_eq!(texts.len(), CHAT_KEPT);
        assert_eq!(texts[0], "alice: line 3[2J");
        pane.push(&ChatEntry {
            sender: "vera",
            text: "hi",
            from_player: true,
            from_admin: true,
            answer: false,
        });
        assert_eq!(
            pane.lines().last().map(|l| l.to_string()),
            Some("vera [admin]: hi".to_owned())
        );
        pane.clear();
        assert!(pane.is_empty());
    }
}
