//! The replay screen, shared by `dgate replay` and the SSH front end: a
//! recording's screen through the same view as live watching, a progress line
//! (state, speed, time, bar), the keys (pause, speed, seek, go to a time) as
//! intents, and how an intent moves a local [`Playback`]. When the recording
//! has a chat, its lines said up to the replay's position are in a pane as
//! `dgate watch` places it (beside or below the game when there is room,
//! else over it while `c` shows it).

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use dgate_term::ScreenModel;
use dgate_term::recording::{Clock, Playback, Recording};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};

use crate::chat_pane::{CHAT_OVERLAY_ROWS, ChatEntry, ChatPane, ChatPlace, chat_place};
use crate::game_view::ScreenView;

/// What a key asks of the replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intent {
    TogglePause,
    Faster,
    Slower,
    /// Seconds, forward or back.
    SeekBy(i64),
    SeekTo(Duration),
    Quit,
}

/// The replay screen: the view, the chat, the progress line and the
/// go-to prompt.
pub struct ReplayScreen {
    pub title: String,
    pub view: ScreenView,
    /// The lines said up to the replay's position.
    pub chat: ChatPane,
    /// The recording has a chat: the pane takes room.
    pub has_chat: bool,
    /// `c` shows the chat over the game when there is no room for it.
    chat_shown: bool,
    /// Typing a time after `g`.
    goto: Option<String>,
    pub message: Option<String>,
}

impl ReplayScreen {
    pub fn new(title: String, model: ScreenModel) -> Self {
        Self {
            title,
            view: ScreenView::new(model),
            chat: ChatPane::default(),
            has_chat: false,
            chat_shown: false,
            goto: None,
            message: None,
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Intent> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Intent::Quit);
        }
        if let Some(text) = &mut self.goto {
            match key.code {
                KeyCode::Enter => {
                    let typed = std::mem::take(text);
                    self.goto = None;
                    match parse_time(&typed) {
                        Some(t) => return Some(Intent::SeekTo(t)),
                        None => {
                            self.message =
                                Some(format!("{typed:?} is not a time like 1:30, 90 or 2m"))
                        }
                    }
                }
                KeyCode::Esc => self.goto = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if !c.is_control() && text.len() < 16 => text.push(c),
                _ => {}
            }
            return None;
        }
        self.message = None;
        match key.code {
            KeyCode::Char(' ') => Some(Intent::TogglePause),
            KeyCode::Char('+') | KeyCode::Char('=') => Some(Intent::Faster),
            KeyCode::Char('-') => Some(Intent::Slower),
            KeyCode::Right => Some(Intent::SeekBy(10)),
            KeyCode::Left => Some(Intent::SeekBy(-10)),
            KeyCode::Up => Some(Intent::SeekBy(60)),
            KeyCode::Down => Some(Intent::SeekBy(-60)),
            KeyCode::Home | KeyCode::Char('0') => Some(Intent::SeekTo(Duration::ZERO)),
            KeyCode::End => Some(Intent::SeekTo(Duration::MAX)),
            KeyCode::Char('g') => {
                self.goto = Some(String::new());
                None
            }
            KeyCode::Char('c') if self.has_chat => {
                self.chat_shown = !self.chat_shown;
                None
            }
            KeyCode::Char('q') | KeyCode::Esc => Some(Intent::Quit),
            _ => {
                let chat = if self.has_chat { " · c chat" } else { "" };
                self.message = Some(format!(
                    "Space pause · +/- speed · ←/→ 10 s · ↑/↓ 1 min · g go to{chat} · q quit"
                ));
                None
            }
        }
    }

    /// The recording's screen (and its chat), then one line: state, speed,
    /// time, bar, keys.
    pub fn render(&mut self, frame: &mut Frame, progress: &Progress) {
        let [main, status] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(frame.area());
        let place = if self.has_chat {
            chat_place(main, self.view.model.size(), 0, self.chat_shown)
        } else {
            ChatPlace::Hidden
        };
        let (game, chat) = match place {
            ChatPlace::Beside { game, chat } | ChatPlace::Below { game, chat } => {
                (game, Some(chat))
            }
            ChatPlace::Over { .. } => {
                let height = CHAT_OVERLAY_ROWS.min(main.height);
                let chat = Rect {
                    y: main.bottom() - height,
                    height,
                    ..main
                };
                (main, Some(chat))
            }
            ChatPlace::Hidden => (main, None),
        };
        if let Some(cursor) = self.view.draw(game, frame.buffer_mut()) {
            frame.set_cursor_position(cursor);
        }
        if let Some(area) = chat {
            self.chat
                .render(frame, area, " Chat ", "Nobody has said anything yet.");
        }
        let state = if progress.ended {
            "■ end"
        } else if progress.paused {
            "❚❚ paused"
        } else {
            "▶"
        };
        let left = format!(
            " {state} {}×  {} / {} ",
            speed_text(progress.speed),
            clock(progress.position),
            clock(progress.duration)
        );
        let right = match (&self.goto, &self.message) {
            (Some(text), _) => format!(" Go to (1:30, 90, 2m): {text}"),
            (None, Some(message)) => format!(" {message}"),
            (None, None) => format!(" {} · ? keys · q quit", self.title),
        };
        let left_width = left.chars().count() as u16;
        let right_width = (right.chars().count() as u16).min(status.width / 2);
        let [l, bar, r] = Layout::horizontal([
            Constraint::Length(left_width),
            Constraint::Min(4),
            Constraint::Length(right_width),
        ])
        .areas(status);
        let style = Style::default().bg(Color::DarkGray).fg(Color::White);
        frame.render_widget(Paragraph::new(Line::from(left).bold()).style(style), l);
        let ratio = if progress.duration.is_zero() {
            1.0
        } else {
            (progress.position.as_secs_f64() / progress.duration.as_secs_f64()).clamp(0.0, 1.0)
        };
        frame.render_widget(
            LineGauge::default()
                .ratio(ratio)
                .label("")
                .filled_style(Style::default().fg(Color::Cyan))
                .unfilled_style(Style::default().fg(Color::Gray))
                .style(style),
            bar,
        );
        let typed_to = r.x + right.chars().count() as u16;
        frame.render_widget(
            Paragraph::new(Line::from(Span::from(right))).style(style),
            r,
        );
        if self.goto.is_some() {
            frame.set_cursor_position((typed_to.min(r.right().saturating_sub(1)), status.y));
        }
    }
}

/// Where a replay is, for the progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub position: Duration,
    pub duration: Duration,
    pub speed: f64,
    pub paused: bool,
    pub ended: bool,
}

/// What a key asks of a replay a server plays (`dgate replay` of a
/// server's recording, SSH): the same keys as a local replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Steer {
    SeekTo(Duration),
    Speed(f64),
    Paused(bool),
}

impl Progress {
    /// Where the progress line shows the replay now: the position last told
    /// `since` ago, run on at the speed unless paused or ended.
    pub fn shown(&self, since: Duration) -> Progress {
        let mut shown = *self;
        if !self.paused && !self.ended {
            shown.position = (self.position + since.mul_f64(self.speed)).min(self.duration);
        }
        shown
    }

    /// The steering `intent` asks for, from `shown` (see [`Progress::shown`]),
    /// and a note for the screen; `None` for quit.
    pub fn steer(&self, intent: Intent, shown: &Progress) -> Option<(Vec<Steer>, Option<String>)> {
        let steps = match intent {
            Intent::Quit => return None,
            // At the end, play again from the start.
            Intent::TogglePause if self.ended => {
                vec![Steer::SeekTo(Duration::ZERO), Steer::Paused(false)]
            }
            Intent::TogglePause => vec![Steer::Paused(!self.paused)],
            Intent::Faster | Intent::Slower => {
                let mut clock = Clock::default();
                clock.set_speed(self.speed);
                clock.step_speed(intent == Intent::Faster);
                vec![Steer::Speed(clock.speed())]
            }
            Intent::SeekBy(seconds) => {
                let target = if seconds >= 0 {
                    shown.position + Duration::from_secs(seconds.unsigned_abs())
                } else {
                    shown
                        .position
                        .saturating_sub(Duration::from_secs(seconds.unsigned_abs()))
                };
                vec![Steer::SeekTo(target.min(self.duration))]
            }
            Intent::SeekTo(t) => {
                let note = (t > self.duration && t != Duration::MAX)
                    .then(|| format!("{} is past the end ({}).", clock(t), clock(self.duration)));
                return Some((vec![Steer::SeekTo(t.min(self.duration))], note));
            }
        };
        Some((steps, None))
    }
}

/// `1:30`, `90`, `2m`, `1h2m`, `1:02:03`.
pub fn parse_time(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.contains(':') {
        let mut seconds = 0u64;
        for part in text.split(':') {
            seconds = seconds.checked_mul(60)?.checked_add(part.parse().ok()?)?;
        }
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).ok()
}

/// `1:02:03`, `4:05`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn speed_text(speed: f64) -> String {
    if speed.fract() == 0.0 {
        format!("{speed:.0}")
    } else {
        format!("{speed}")
    }
}

/// A line of a recording's chat and where it plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedChat {
    /// Playback time (idle pauses capped as the recording's).
    pub at: Duration,
    pub sender: String,
    pub text: String,
    pub from_player: bool,
    pub from_admin: bool,
}

impl PlacedChat {
    pub fn entry(&self) -> ChatEntry<'_> {
        ChatEntry {
            sender: &self.sender,
            text: &self.text,
            from_player: self.from_player,
            from_admin: self.from_admin,
            answer: false,
        }
    }
}

/// A recording played here (a local file, or over SSH on the server): the
/// recording, its clock, its chat and its screen.
pub struct LocalReplay {
    pub recording: Recording,
    playback: Playback,
    pub screen: ReplayScreen,
    /// When frames were last played.
    last: Instant,
    /// The recording's chat, in the order it plays.
    chat: Vec<PlacedChat>,
    /// How many of its first lines the pane shows.
    chat_said: usize,
}

impl LocalReplay {
    pub fn new(recording: Recording, title: String) -> Self {
        let mut playback = Playback::default();
        let model = playback.seek(&recording, Duration::ZERO);
        Self {
            recording,
            playback,
            screen: ReplayScreen::new(title, model),
            last: Instant::now(),
            chat: Vec::new(),
            chat_said: 0,
        }
    }

    /// The recording's chat, each line where it plays (in that order).
    pub fn with_chat(mut self, mut chat: Vec<PlacedChat>) -> Self {
        chat.sort_by_key(|line| line.at);
        self.screen.has_chat = !chat.is_empty();
        self.chat = chat;
        self.chat_said = 0;
        self.screen.chat.clear();
        self.show_chat();
        self
    }

    /// The pane shows exactly the lines said up to the replay's position.
    fn show_chat(&mut self) {
        let said = self
            .chat
            .partition_point(|line| line.at <= self.playback.position());
        let kept_from = said.saturating_sub(crate::chat_pane::CHAT_KEPT);
        if said < self.chat_said {
            self.screen.chat.clear();
            self.chat_said = kept_from;
        }
        self.chat_said = self.chat_said.max(kept_from);
        for line in &self.chat[self.chat_said..said] {
            self.screen.chat.push(&line.entry());
        }
        self.chat_said = said;
    }

    /// Plays the frames due since the last call; returns where the replay is.
    pub fn tick(&mut self) -> Progress {
        let now = Instant::now();
        let due = self.playback.advance(&self.recording, now - self.last);
        self.last = now;
        self.recording.apply(&mut self.screen.view.model, due);
        self.show_chat();
        let (playback, recording) = (&self.playback, &self.recording);
        Progress {
            position: playback.position(),
            duration: recording.duration(),
            speed: playback.speed(),
            paused: playback.paused(),
            ended: playback.finished(recording) && playback.position() >= recording.duration(),
        }
    }

    /// How long to sleep before the next frame or chat line is due (at
    /// most `cap`).
    pub fn wait(&self, cap: Duration) -> Duration {
        let frame = self.playback.until_next(&self.recording);
        let line = self
            .chat
            .get(self.chat_said)
            .filter(|_| !self.playback.paused())
            .map(|line| {
                line.at
                    .saturating_sub(self.playback.position())
                    .div_f64(self.playback.speed())
            });
        frame.into_iter().chain(line).fold(cap, Duration::min)
    }

    /// A key; true when it quits.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        match self.screen.handle_key(key) {
            Some(Intent::Quit) => true,
            Some(intent) => {
                // Time until the key counts as played.
                self.tick();
                apply_local(
                    intent,
                    &self.recording,
                    &mut self.playback,
                    &mut self.screen,
                );
                self.show_chat();
                false
            }
            None => false,
        }
    }

    /// A clock that did not run (the process was suspended) does not jump.
    pub fn resume(&mut self) {
        self.last = Instant::now();
    }
}

/// Applies `intent` to a recording played here; the screen follows seeks.
fn apply_local(
    intent: Intent,
    recording: &Recording,
    playback: &mut Playback,
    screen: &mut ReplayScreen,
) {
    let seek = |playback: &mut Playback, screen: &mut ReplayScreen, t: Duration| {
        screen.view.model = playback.seek(recording, t);
    };
    match intent {
        Intent::TogglePause => {
            let ended = playback.finished(recording) && playback.position() >= recording.duration();
            if ended {
                // Space at the end plays it again.
                seek(playback, screen, Duration::ZERO);
                playback.set_paused(false);
            } else {
                playback.set_paused(!playback.paused());
            }
        }
        Intent::Faster => playback.step_speed(true),
        Intent::Slower => playback.step_speed(false),
        Intent::SeekBy(seconds) => {
            let step = Duration::from_secs(seconds.unsigned_abs());
            let t = if seconds >= 0 {
                playback.position() + step
            } else {
                playback.position().saturating_sub(step)
            };
            seek(playback, screen, t);
        }
        Intent::SeekTo(t) => {
            if t > recording.duration() && t != Duration::MAX {
                screen.message = Some(format!(
                    "{} is past the end ({}).",
                    clock(t),
                    clock(recording.duration())
                ));
            }
            seek(playback, screen, t);
        }
        Intent::Quit => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;
    use dgate_term::TermSize;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_become_intents() {
        let mut screen = ReplayScreen::new("t".into(), ScreenModel::new(TermSize::new(80, 24)));
        let mut press = |code| screen.handle_key(key(code));
        assert_eq!(press(KeyCode::Char(' ')), Some(Intent::TogglePause));
        assert_eq!(press(KeyCode::Char('+')), Some(Intent::Faster));
        assert_eq!(press(KeyCode::Char('-')), Some(Intent::Slower));
        assert_eq!(press(KeyCode::Right), Some(Intent::SeekBy(10)));
        assert_eq!(press(KeyCode::Left), Some(Intent::SeekBy(-10)));
        assert_eq!(press(KeyCode::Up), Some(Intent::SeekBy(60)));
        assert_eq!(press(KeyCode::Down), Some(Intent::SeekBy(-60)));
        assert_eq!(press(KeyCode::Char('q')), Some(Intent::Quit));
        assert_eq!(press(KeyCode::Char('g')), None);
        for c in "1:30".chars() {
            assert_eq!(press(KeyCode::Char(c)), None, "typing the time");
        }
        assert_eq!(
            press(KeyCode::Enter),
            Some(Intent::SeekTo(Duration::from_secs(90)))
        );
        press(KeyCode::Char('g'));
        press(KeyCode::Char('x'));
        assert_eq!(press(KeyCode::Enter), None);
        assert!(
            screen
                .message
                .as_deref()
                .is_some_and(|m| m.contains("not a time"))
        );
    }

    #[test]
    fn the_chat_pane_shows_exactly_the_lines_said_up_to_the_position() {
        let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let records = (0..20)
            .map(|i| dgate_term::ttyrec::Record {
                time: start + Duration::from_secs(i),
                data: format!("frame {i}\r\n").into_bytes(),
            })
            .collect();
        let recording = Recording::new(records, &dgate_term::recording::Options::default());
        let line = |at: f64, text: &str| PlacedChat {
            at: Duration::from_secs_f64(at),
            sender: "alice".into(),
            text: text.into(),
            from_player: false,
            from_admin: false,
        };
        let mut replay = LocalReplay::new(recording, "t".into()).with_chat(vec![
            line(0.0, "hello"),
            line(1.5, "one"),
            line(12.0, "two"),
            line(5.5, "three"),
        ]);
        let shown = |replay: &LocalReplay| -> Vec<String> {
            replay.screen.chat.lines().map(|l| l.to_string()).collect()
        };
        assert!(replay.screen.has_chat);
        assert_eq!(shown(&replay), ["alice: hello"]);
        replay.key(key(KeyCode::Char(' ')));
        replay.key(key(KeyCode::Right));
        assert_eq!(
            shown(&replay),
            ["alice: hello", "alice: one", "alice: three"]
        );
        replay.key(key(KeyCode::End));
        assert_eq!(shown(&replay).len(), 4);
        replay.key(key(KeyCode::Left));
        assert_eq!(shown(&replay).len(), 3, "9 s: before 12 s");
        replay.key(key(KeyCode::Home));
        assert_eq!(shown(&replay), ["alice: hello"]);
        replay.key(key(KeyCode::Right));
        replay.key(key(KeyCode::Right));
        assert_eq!(
            shown(&replay),
            ["alice: hello", "alice: one", "alice: three", "alice: two"],
            "each line once, in order"
        );
    }

    #[test]
    fn times_read_as_people_write_them() {
        let s = Duration::from_secs;
        assert_eq!(parse_time("90"), Some(s(90)));
        assert_eq!(parse_time("1:30"), Some(s(90)));
        assert_eq!(parse_time("1:02:03"), Some(s(3723)));
        assert_eq!(parse_time("2m"), Some(s(120)));
        assert_eq!(parse_time("1h 2m"), Some(s(3720)));
        assert_eq!(parse_time("soon"), None);
        assert_eq!(parse_time("1:x"), None);
        assert_eq!(clock(s(3723)), "1:02:03");
        assert_eq!(clock(s(65)), "1:05");
    }

    #[test]
    fn the_progress_line_shows_state_speed_and_time() {
        let mut model = ScreenModel::new(TermSize::new(80, 24));
        model.process(b"You hear the footsteps of a guard on patrol.");
        let mut screen = ReplayScreen::new("alice · nethack".into(), model);
        let mut terminal = Terminal::new(TestBackend::new(100, 25)).expect("terminal");
        let progress = Progress {
            position: Duration::from_secs(75),
            duration: Duration::from_secs(3725),
            speed: 0.25,
            paused: true,
            ended: false,
        };
        terminal
            .draw(|f| screen.render(f, &progress))
            .expect("draw");
        let buf = terminal.backend().buffer();
        let row = |y: u16| (0..100).map(|x| buf[(x, y)].symbol()).collect::<String>();
        assert!(row(0).contains("You hear the footsteps"));
        let status = row(24);
        assert!(
            status.contains("❚❚ paused 0.25×  1:15 / 1:02:05"),
            "{status}"
        );
        assert!(status.contains("alice · nethack"), "{status}");
    }
}
