//! The options editor: a player's rc file for one game in a text area, the
//! same over SSH (`o` in the menu) and in `dgate options`. It never runs an
//! external editor or a shell; saving and loading are the caller's (the
//! server's rc files, or gRPC), the editor only says when to save.
//!
//! Keys: arrows, Home/End, PgUp/PgDn and the usual emacs keys move; Ctrl+S
//! saves; Esc leaves, asking first when there are unsaved changes.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui_textarea::TextArea;

/// What the caller does after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditorAction {
    None,
    /// Save this text, then tell the editor with [`OptionsEditor::saved`] or
    /// [`OptionsEditor::not_saved`].
    Save(String),
    /// The player is done (any changes were saved or abandoned).
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Editing,
    /// Esc with unsaved changes: Esc again leaves, Ctrl+S saves and leaves.
    ConfirmLeave,
    /// Saving before leaving; leave once it is saved.
    SavingToLeave,
}

pub struct OptionsEditor {
    area: TextArea<'static>,
    /// The game's name and the file's, for the title.
    title: String,
    max_bytes: usize,
    /// The text as last saved (or loaded).
    saved_text: String,
    mode: Mode,
    message: Option<(String, bool)>,
}

impl OptionsEditor {
    /// `text` of the file `title` names; at most `max_bytes` are saved.
    pub fn new(title: impl Into<String>, text: &str, max_bytes: usize) -> Self {
        // A final newline leaves an empty last line to type on, as editors do.
        let lines: Vec<String> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
            .collect();
        let mut area = TextArea::new(lines);
        area.set_cursor_line_style(Style::default());
        area.set_line_number_style(Style::default().fg(Color::DarkGray));
        let mut editor = Self {
            area,
            title: title.into(),
            max_bytes,
            saved_text: String::new(),
            mode: Mode::Editing,
            message: None,
        };
        editor.saved_text = editor.text();
        editor
    }

    /// The text as the file would hold it: lines ending in newlines.
    pub fn text(&self) -> String {
        let mut text = self.area.lines().join("\n");
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }

    /// Whether there are changes not saved yet.
    pub fn is_modified(&self) -> bool {
        self.text() != self.saved_text
    }

    /// The save the editor asked for was made.
    pub fn saved(&mut self) -> EditorAction {
        self.saved_text = self.text();
        if self.mode == Mode::SavingToLeave {
            return EditorAction::Leave;
        }
        self.mode = Mode::Editing;
        self.message = Some(("Saved.".to_owned(), false));
        EditorAction::None
    }

    /// The save failed, for `why`; the text stays as it is, unsaved.
    pub fn not_saved(&mut self, why: &str) {
        self.mode = Mode::Editing;
        self.message = Some((format!("Not saved: {why}"), true));
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> EditorAction {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let save = ctrl && matches!(key.code, KeyCode::Char('s' | 'S'));
        match self.mode {
            Mode::SavingToLeave => return EditorAction::None,
            Mode::ConfirmLeave => {
                return match key.code {
                    KeyCode::Esc => EditorAction::Leave,
                    _ if save => {
                        self.mode = Mode::SavingToLeave;
                        self.save()
                    }
                    _ => {
                        self.mode = Mode::Editing;
                        self.message = None;
                        EditorAction::None
                    }
                };
            }
            Mode::Editing => {}
        }
        self.message = None;
        if save {
            return self.save();
        }
        if key.code == KeyCode::Esc {
            if !self.is_modified() {
                return EditorAction::Leave;
            }
            self.mode = Mode::ConfirmLeave;
            return EditorAction::None;
        }
        if self.area.input(key) && self.bytes() > self.max_bytes {
            // Past the limit nothing more goes in, however fast it comes.
            self.area.undo();
            self.message = Some((
                format!("The file is full: at most {} bytes.", self.max_bytes),
                true,
            ));
        }
        EditorAction::None
    }

    fn bytes(&self) -> usize {
        self.area.lines().iter().map(|l| l.len() + 1).sum()
    }

    fn save(&mut self) -> EditorAction {
        let text = self.text();
        if text.len() > self.max_bytes {
            self.mode = Mode::Editing;
            self.message = Some((
                format!(
                    "Not saved: {} bytes, at most {} are kept.",
                    text.len(),
                    self.max_bytes
                ),
                true,
            ));
            return EditorAction::None;
        }
        EditorAction::Save(text)
    }

    pub fn render(&self, frame: &mut Frame, area: Rect) {
        let [body, status] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
        let modified = if self.is_modified() {
            " [modified]"
        } else {
            ""
        };
        let mut text_area = self.area.clone();
        text_area.set_block(
            Block::default()
                .borders(Borders::TOP)
                .title(Line::from(format!(" {}{modified} ", self.title)).bold()),
        );
        frame.render_widget(&text_area, body);
        let line = match (&self.message, self.mode) {
            (_, Mode::ConfirmLeave) => Line::from(
                "Unsaved changes: Esc leaves without saving, Ctrl+S saves and leaves, \
                 any other key goes back",
            )
            .fg(Color::Yellow),
            (_, Mode::SavingToLeave) => Line::from("Saving…"),
            (Some((message, true)), _) => Line::from(message.clone()).fg(Color::Red),
            (Some((message, false)), _) => Line::from(message.clone()).fg(Color::Green),
            (None, _) => Line::from(
                "Ctrl+S save · Esc leave · arrows, PgUp/PgDn move · Ctrl+K cut line · \
                 Ctrl+Y paste · Ctrl+U undo",
            )
            .add_modifier(Modifier::DIM),
        };
        frame.render_widget(Paragraph::new(line), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn type_text(editor: &mut OptionsEditor, text: &str) {
        for c in text.chars() {
            let code = if c == '\n' {
                KeyCode::Enter
            } else {
                KeyCode::Char(c)
            };
            assert_eq!(editor.handle_key(key(code)), EditorAction::None);
        }
    }

    fn screen(editor: &OptionsEditor) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 8)).expect("terminal");
        terminal.draw(|f| editor.render(f, f.area())).expect("draw");
        let buffer = terminal.backend().buffer();
        (0..8)
            .map(|y| {
                (0..100)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn typing_then_ctrl_s_saves_the_file_as_typed() {
        let mut editor = OptionsEditor::new("NetHack: alice.nethackrc", "OPTIONS=color\n", 100);
        assert!(screen(&editor).contains("Ctrl+S save"));
        editor.handle_key(key(KeyCode::Down));
        type_text(&mut editor, "OPTIONS=!autopickup");
        assert!(editor.is_modified());
        assert!(screen(&editor).contains("[modified]"));
        assert_eq!(
            editor.handle_key(ctrl('s')),
            EditorAction::Save("OPTIONS=color\nOPTIONS=!autopickup\n".into())
        );
        assert_eq!(editor.saved(), EditorAction::None);
        assert!(!editor.is_modified());
        assert!(screen(&editor).contains("Saved."));
        assert_eq!(editor.handle_key(key(KeyCode::Esc)), EditorAction::Leave);
    }

    #[test]
    fn esc_with_changes_asks_first() {
        let mut editor = OptionsEditor::new("rc", "", 100);
        type_text(&mut editor, "x");
        assert_eq!(editor.handle_key(key(KeyCode::Esc)), EditorAction::None);
        assert!(screen(&editor).contains("Unsaved changes"));
        // Any other key goes back to editing, the text kept.
        assert_eq!(editor.handle_key(key(KeyCode::Left)), EditorAction::None);
        assert_eq!(editor.text(), "x\n");
        // Esc twice leaves without saving.
        editor.handle_key(key(KeyCode::Esc));
        assert_eq!(editor.handle_key(key(KeyCode::Esc)), EditorAction::Leave);
        // Ctrl+S from the question saves, then leaves once saved.
        let mut editor = OptionsEditor::new("rc", "", 100);
        type_text(&mut editor, "y");
        editor.handle_key(key(KeyCode::Esc));
        assert_eq!(
            editor.handle_key(ctrl('s')),
            EditorAction::Save("y\n".into())
        );
        assert_eq!(editor.saved(), EditorAction::Leave);
    }

    #[test]
    fn nothing_past_the_limit_goes_in_and_a_failed_save_says_why() {
        let mut editor = OptionsEditor::new("rc", "", 10);
        type_text(&mut editor, "0123456789abc");
        assert!(editor.text().len() <= 10, "{:?}", editor.text());
        assert!(screen(&editor).contains("The file is full: at most 10 bytes."));
        let text = editor.text();
        assert_eq!(editor.handle_key(ctrl('s')), EditorAction::Save(text));
        editor.not_saved("the disk is full");
        assert!(screen(&editor).contains("Not saved: the disk is full"));
        assert!(editor.is_modified());
    }
}
