//! `dgate watch`: the watch menu, watching one game, and the multi-view, in one
//! event loop. Keys, stream messages and list refreshes arrive on their own
//! channels; the loop applies them to the state and redraws. Spectators only
//! ever send their registration: no key typed here can reach a game.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use dgate_proto::pb;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::connection::{Connection, describe, with_token};
use crate::convert;
use crate::replay;
use crate::spectate::{self, SpectatorStream, StreamItem, Tagged};
use crate::tokens::Saved;
use crate::tui::Tui;
use dgate_tui::chat_pane::{
    CHAT_OVERLAY_ROWS, ChatEntry, ChatPane, ChatPlace, bottom_rows, chat_place,
};
use dgate_tui::game_view::{GameView, Update};
use dgate_tui::recent_menu::{RecentAction, RecentMenu};
use dgate_tui::watch_menu::{MenuAction, SessionRow, WatchMenu};

/// The longest message to a player (the server's limit).
const MESSAGE_CHARS: usize = 80;
/// The longest chat line (the server's limit).
const CHAT_CHARS: usize = 200;

/// How often the list of games (and the watcher counts) is refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// Stream messages applied before the screen is drawn again: a fast game is
/// drawn at the terminal's pace, not once per frame.
const MESSAGES_PER_DRAW: usize = 4096;

/// `dgate watch [SESSION_ID]`. Returns the line to print once the terminal is
/// restored (why watching ended), if any.
/// The session `id` names: its whole id, or a prefix of one id alone (as
/// `dgate list` shows them in a narrow terminal).
fn by_id<'a>(sessions: &'a [SessionRow], id: &str) -> Result<&'a SessionRow> {
    if let Some(exact) = sessions.iter().find(|s| s.id == id) {
        return Ok(exact);
    }
    let mut matching = sessions
        .iter()
        .filter(|s| !id.is_empty() && s.id.starts_with(id));
    match (matching.next(), matching.next()) {
        (Some(one), None) => Ok(one),
        (Some(_), Some(_)) => anyhow::bail!(
            "session id {id:?} is the start of more than one game's id: give more of it (see `dgate list`)"
        ),
        _ => anyhow::bail!("no game in progress with session id {id:?} (see `dgate list`)"),
    }
}

pub async fn run(connection: Connection, session_id: Option<String>) -> Result<Option<String>> {
    let login = connection.login()?;
    let mut listings = spawn_refresher(connection.clone());
    // The first listing before taking the screen: a wrong server or session
    // id is an error in the shell, not a flash of an empty menu.
    let first = listings
        .recv()
        .await
        .context("the list refresher stopped")?
        .map_err(|e| anyhow::anyhow!(e))?;
    let direct = match &session_id {
        Some(id) => Some(by_id(&first, id)?.clone()),
        None => None,
    };

    let mut tui = Tui::enter()?;
    let (cols, rows) = tui.size();
    let (stream_tx, mut stream_rx) = mpsc::channel::<Tagged>(256);
    let (replies_tx, mut replies_rx) = mpsc::channel::<String>(8);
    let mut app = App {
        connection,
        login,
        menu: WatchMenu::new(cols, rows),
        watching: None,
        direct: direct.is_some(),
        next_key: 0,
        streams: stream_tx,
        quit: None,
        terminal: (cols, rows),
        recent_requested: false,
        replies: replies_tx,
    };
    app.menu.update(first);
    if let Some(row) = direct {
        app.watch(vec![row]);
    }

    let mut events = EventStream::new();
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    while app.quit.is_none() {
        tui.draw(|frame| app.render(frame))?;
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if is_suspend(&key) => tui.suspend()?,
                Some(Ok(event)) => app.on_terminal_event(event),
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => break,
            },
            Some(tagged) = stream_rx.recv() => {
                app.on_stream(tagged);
                // Apply what else is queued before drawing again.
                for _ in 0..MESSAGES_PER_DRAW {
                    match stream_rx.try_recv() {
                        Ok(tagged) => app.on_stream(tagged),
                        Err(_) => break,
                    }
                }
            }
            Some(listing) = listings.recv() => app.on_listing(listing),
            Some(reply) = replies_rx.recv() => {
                if let Some(watching) = &mut app.watching {
                    watching.note = Some(reply);
                } else {
                    app.menu.message = Some(reply);
                }
            }
            _ = terminate.recv() => app.quit = Some(None),
            _ = hangup.recv() => app.quit = Some(None),
        }
        if std::mem::take(&mut app.recent_requested) {
            app.menu.message = recent_games(&app, &mut tui, &mut events).await?;
        }
    }
    drop(tui);
    Ok(app.quit.flatten())
}

/// The recent games page, and replays from it, until `q` brings the user back
/// to the games in progress. Returns a line for the menu, if any.
async fn recent_games(
    app: &App,
    tui: &mut Tui,
    events: &mut EventStream,
) -> Result<Option<String>> {
    let request = pb::ListRecordingsRequest::default();
    let listing = tokio::time::timeout(
        REFRESH * 5,
        app.connection
            .games()
            .list_recordings(with_token(request, app.login.as_ref())),
    )
    .await;
    let recordings = match listing {
        Ok(Ok(response)) => response
            .into_inner()
            .recordings
            .iter()
            .map(convert::recording_summary)
            .collect(),
        Ok(Err(e)) => return Ok(Some(format!("Cannot list recordings: {}", describe(&e)))),
        Err(_) => {
            return Ok(Some(
                "The server did not list its recordings in time.".into(),
            ));
        }
    };
    let max_idle = crate::config::load()
        .map(|c| c.replay.max_idle)
        .unwrap_or(Duration::from_secs(5));
    let max_idle = (!max_idle.is_zero()).then_some(max_idle);
    let mut menu = RecentMenu::new(recordings, app.terminal.1);
    loop {
        tui.draw(|frame| menu.render(frame, frame.area()))?;
        let key = match events.next().await {
            Some(Ok(Event::Key(key))) if is_suspend(&key) => {
                tui.suspend()?;
                continue;
            }
            Some(Ok(Event::Key(key))) => key,
            Some(Ok(Event::Resize(_, rows))) => {
                menu.resize(rows);
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("reading the terminal"),
            None => return Ok(None),
        };
        match menu.handle_key(key) {
            RecentAction::None => {}
            RecentAction::Back => return Ok(None),
            RecentAction::Replay(id) => {
                match replay::RemoteStream::open(&app.connection, app.login.as_ref(), &id, max_idle)
                    .await
                {
                    Ok(stream) => {
                        menu.message = replay::play_remote(tui, events, stream).await?;
                    }
                    Err(e) => menu.message = Some(format!("{e:#}")),
                }
            }
        }
    }
}

/// Ctrl+Z: the raw terminal delivers it as a key, not as SIGTSTP.
fn is_suspend(key: &KeyEvent) -> bool {
    key.kind != KeyEventKind::Release
        && key.modifiers.contains(KeyModifiers::CONTROL)
        && key.code == KeyCode::Char('z')
}

/// Lists the games every [`REFRESH`], in its own task so a slow server never
/// holds up keys or frames.
fn spawn_refresher(connection: Connection) -> mpsc::Receiver<Result<Vec<SessionRow>, String>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut client = connection.games();
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let listing = tokio::time::timeout(
                REFRESH * 5,
                client.list_game_sessions(pb::ListGameSessionsRequest::default()),
            )
            .await;
            let rows = match listing {
                Ok(Ok(response)) => {
                    let now = SystemTime::now();
                    Ok(response
                        .into_inner()
                        .sessions
                        .iter()
                        .map(|s| SessionRow::from_summary(&convert::session_summary(s), now))
                        .collect())
                }
                Ok(Err(e)) => Err(describe(&e)),
                Err(_) => Err("the server did not answer within 5 s".to_owned()),
            };
            if tx.send(rows).await.is_err() {
                return;
            }
        }
    });
    rx
}

struct App {
    connection: Connection,
    login: Option<Saved>,
    menu: WatchMenu,
    watching: Option<Watching>,
    /// Started as `dgate watch SESSION_ID`: leaving the view quits.
    direct: bool,
    /// Tags each stream, so that messages of a closed view are ignored.
    next_key: u64,
    streams: mpsc::Sender<Tagged>,
    /// Set to quit; the line to print afterwards, if any.
    quit: Option<Option<String>>,
    terminal: (u16, u16),
    /// `r` was pressed: the loop opens the recent games page.
    recent_requested: bool,
    /// Answers to messages sent with `m`, as lines to show.
    replies: mpsc::Sender<String>,
}

/// One or more games on screen.
struct Watching {
    views: Vec<View>,
    /// The pane that Tab moves and Enter zooms (multi-view).
    focus: usize,
    /// A multi-view showing only its focused pane.
    zoomed: bool,
    /// `s` toggles it; by default shown when there is room for it.
    status_line: Option<bool>,
    /// `m` or `c`: the line being typed (to the player, or to the chat).
    composing: Option<(Compose, String)>,
    /// `c` shows the chat pane over the game when there is no room beside
    /// or below it.
    chat_shown: bool,
    /// One line on the bottom row (a message's fate) until the next key.
    note: Option<String>,
}

struct View {
    key: u64,
    game: GameView,
    stream: SpectatorStream,
    /// The game's chat.
    chat: ChatPane,
    /// Who watches: names and the anonymous count.
    audience: (Vec<String>, u32),
}

/// What a line being typed is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compose {
    /// `m`: a message to the player.
    Message,
    /// `c`: a line for the game's chat.
    Chat,
}

impl App {
    fn watch(&mut self, rows: Vec<SessionRow>) {
        let views = rows
            .into_iter()
            .map(|row| {
                self.next_key += 1;
                let stream = spectate::spawn(
                    self.connection.clone(),
                    self.login.clone(),
                    row.id.clone(),
                    self.terminal,
                    self.next_key,
                    self.streams.clone(),
                );
                View {
                    key: self.next_key,
                    game: GameView::new(row),
                    stream,
                    chat: ChatPane::default(),
                    audience: (Vec::new(), 0),
                }
            })
            .collect();
        self.watching = Some(Watching {
            views,
            focus: 0,
            zoomed: false,
            status_line: None,
            composing: None,
            chat_shown: false,
            note: None,
        });
    }

    /// Back to the menu with `message`, or out of the program when watching
    /// one game given on the command line.
    fn leave(&mut self, message: Option<String>) {
        self.watching = None;
        if self.direct {
            self.quit = Some(message);
        } else {
            self.menu.message = message;
        }
    }

    fn on_terminal_event(&mut self, event: Event) {
        match event {
            Event::Resize(cols, rows) => {
                self.terminal = (cols, rows);
                self.menu.resize(cols, rows);
            }
            Event::Key(key) if key.kind != KeyEventKind::Release => {
                if self.watching.is_some() {
                    self.watching_key(key);
                } else {
                    match self.menu.handle_key(key) {
                        MenuAction::None => {}
                        MenuAction::Quit => self.quit = Some(None),
                        MenuAction::Watch(id) => self.watch_ids(&[id]),
                        MenuAction::MultiView(ids) => self.watch_ids(&ids),
                        MenuAction::Recent => self.recent_requested = true,
                    }
                }
            }
            _ => {}
        }
    }

    fn watch_ids(&mut self, ids: &[String]) {
        let rows: Vec<SessionRow> = ids
            .iter()
            .filter_map(|id| self.menu.session(id).cloned())
            .collect();
        if rows.is_empty() {
            self.menu.message = Some("That game has just ended.".to_owned());
        } else {
            self.watch(rows);
        }
    }

    fn watching_key(&mut self, key: KeyEvent) {
        let Some(watching) = &mut self.watching else {
            return;
        };
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        watching.note = None;
        if watching.composing.is_some() && !ctrl_c {
            self.composing_key(key);
            return;
        }
        let multi = watching.views.len() > 1;
        match key.code {
            _ if ctrl_c => self.leave(None),
            KeyCode::Char('m') => {
                watching.composing = self
                    .login
                    .is_some()
                    .then(|| (Compose::Message, String::new()));
                if self.login.is_none() {
                    watching.note =
                        Some("Log in (dgate login) to send messages to players.".to_owned());
                }
            }
            KeyCode::Char('c') => {
                watching.chat_shown = true;
                watching.composing = self.login.is_some().then(|| (Compose::Chat, String::new()));
                if self.login.is_none() {
                    watching.note = Some(
                        "Anonymous spectators read the chat; log in (dgate login) to write."
                            .to_owned(),
                    );
                }
            }
            KeyCode::Char('q') | KeyCode::Esc if multi && watching.zoomed => {
                watching.zoomed = false;
            }
            KeyCode::Char('q') | KeyCode::Esc => self.leave(None),
            KeyCode::Char('s') => {
                let (cols, rows) = self.terminal;
                let game = watching.views[watching.focus].game.size();
                let shown = watching
                    .status_line
                    .unwrap_or_else(|| status_by_default(Rect::new(0, 0, cols, rows), game));
                watching.status_line = Some(!shown);
            }
            KeyCode::Tab if multi && !watching.zoomed => {
                watching.focus = (watching.focus + 1) % watching.views.len();
            }
            KeyCode::BackTab if multi && !watching.zoomed => {
                let n = watching.views.len();
                watching.focus = (watching.focus + n - 1) % n;
            }
            KeyCode::Enter if multi => watching.zoomed = !watching.zoomed,
            // Anything else is the watcher's own business: it is never sent.
            _ => {}
        }
    }

    /// A key while typing a message: Enter sends it (in the background; the
    /// answer comes back through `replies`), Esc cancels.
    fn composing_key(&mut self, key: KeyEvent) {
        let Some(watching) = &mut self.watching else {
            return;
        };
        let Some((kind, text)) = &mut watching.composing else {
            return;
        };
        let kind = *kind;
        match key.code {
            KeyCode::Esc => {
                watching.composing = None;
                watching.chat_shown = false;
            }
            KeyCode::Enter if kind == Compose::Chat => {
                let text = std::mem::take(text);
                watching.composing = None;
                watching.chat_shown = false;
                if !text.trim().is_empty() && !watching.views[watching.focus].stream.say(text) {
                    watching.note = Some("Not sent: too many lines at once.".to_owned());
                }
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Enter => {
                let text = std::mem::take(text);
                watching.composing = None;
                let view = &watching.views[watching.focus].game.row;
                let (session_id, player) = (view.id.clone(), view.username.clone());
                let mut client = self.connection.games();
                let login = self.login.clone();
                let replies = self.replies.clone();
                watching.note = Some(format!("Sending to {player}…"));
                tokio::spawn(async move {
                    let request = pb::SendPlayerMessageRequest { session_id, text };
                    let reply = match client
                        .send_player_message(with_token(request, login.as_ref()))
                        .await
                    {
                        Ok(_) => format!("Sent to {player}."),
                        Err(e) => format!("Not sent: {}", describe(&e)),
                    };
                    let _ = replies.send(reply).await;
                });
            }
            KeyCode::Char(c)
                if !key.modifiers.contains(KeyModifiers::CONTROL)
                    && text.chars().count()
                        < if kind == Compose::Chat {
                            CHAT_CHARS
                        } else {
                            MESSAGE_CHARS
                        } =>
            {
                text.push(c);
            }
            _ => {}
        }
    }

    fn on_stream(&mut self, (key, item): Tagged) {
        let Some(watching) = &mut self.watching else {
            return;
        };
        let Some(view) = watching.views.iter_mut().find(|v| v.key == key) else {
            return;
        };
        let update = match item {
            StreamItem::Message(pb::game_io_response::Response::Chat(line)) => {
                view.chat.push(&chat_entry(&line));
                Update::Nothing
            }
            StreamItem::Message(pb::game_io_response::Response::Audience(audience)) => {
                view.audience = (audience.names, audience.anonymous);
                Update::Nothing
            }
            StreamItem::Message(response) => match convert::game_event(&response) {
                Some(event) => view.game.apply(event),
                None => Update::Nothing,
            },
            StreamItem::Failed(why) => view.game.end(format!("Watching stopped: {why}")),
            StreamItem::Closed => view.game.end("The server closed the stream.".to_owned()),
        };
        if let Update::Ended(why) = update {
            tracing::info!(session_id = %view.game.row.id, %why, "view ended");
            if watching.views.iter().all(|v| v.game.ended.is_some()) {
                self.leave(Some(why));
            }
        }
    }

    fn on_listing(&mut self, listing: Result<Vec<SessionRow>, String>) {
        match listing {
            Ok(rows) => {
                if let Some(watching) = &mut self.watching {
                    for view in &mut watching.views {
                        if let Some(row) = rows.iter().find(|r| r.id == view.game.row.id) {
                            view.game.row = row.clone();
                        }
                    }
                }
                self.menu.update(rows);
            }
            Err(why) => self.menu.message = Some(format!("Cannot list the games: {why}")),
        }
    }

    fn render(&mut self, frame: &mut Frame) {
        let area = frame.area();
        match &mut self.watching {
            None => self.menu.render(frame, area),
            Some(watching) if watching.views.len() == 1 || watching.zoomed => {
                let at = if watching.views.len() == 1 {
                    0
                } else {
                    watching.focus
                };
                let status = watching.status_line;
                let chat_shown = watching.chat_shown;
                let view = &mut watching.views[at];
                match chat_place(area, view.game.size(), 1, chat_shown) {
                    ChatPlace::Beside { game, chat } | ChatPlace::Below { game, chat } => {
                        render_single(frame, game, &mut view.game, status);
                        render_chat(frame, chat, view);
                    }
                    ChatPlace::Over { chat } => {
                        render_single(frame, area, &mut view.game, status);
                        render_chat(frame, chat, view);
                    }
                    ChatPlace::Hidden => render_single(frame, area, &mut view.game, status),
                }
            }
            Some(watching) => {
                render_grid(frame, area, watching);
                // The focused game's chat, over the grid when asked for.
                if watching.chat_shown {
                    let chat = bottom_rows(area, CHAT_OVERLAY_ROWS);
                    render_chat(frame, chat, &watching.views[watching.focus]);
                }
            }
        }
        if let Some(watching) = &self.watching {
            render_message_line(frame, area, watching);
        }
    }
}

/// Whether a single view shows its status line before `s` says otherwise:
/// always, except when the game fills the terminal's height exactly, where
/// the line would crop a game that otherwise fits.
fn status_by_default(area: Rect, game: dgate_term::TermSize) -> bool {
    !(game.rows == area.height && game.cols <= area.width)
}

/// The message being typed, or a note about the last one, on the bottom
/// row while it lasts (over the status line when it is shown).
fn render_message_line(frame: &mut Frame, area: Rect, watching: &Watching) {
    let line = match (&watching.composing, &watching.note) {
        (Some((Compose::Message, text)), _) => {
            let player = &watching.views[watching.focus].game.row.username;
            Line::from(format!(
                "Message to {player} (Enter sends, Esc cancels): {text}"
            ))
        }
        (Some((Compose::Chat, text)), _) => {
            Line::from(format!("Chat (Enter says it, Esc closes): {text}"))
        }
        (None, Some(note)) => Line::from(note.clone()),
        (None, None) => return,
    };
    let row = Rect {
        y: area.bottom().saturating_sub(1),
        height: area.height.min(1),
        ..area
    };
    let end = u16::try_from(line.width()).unwrap_or(u16::MAX);
    frame.render_widget(ratatui::widgets::Clear, row);
    frame.render_widget(
        Paragraph::new(line).style(Style::default().fg(Color::Black).bg(Color::Yellow)),
        row,
    );
    if watching.composing.is_some() {
        let x = row.x + end.min(row.width.saturating_sub(1));
        frame.set_cursor_position(Position::new(x, row.y));
    }
}

/// A view's chat: who watches in the title, the latest lines that fit.
fn render_chat(frame: &mut Frame, area: Rect, view: &View) {
    let (names, anonymous) = &view.audience;
    let mut title = format!(" Chat · {} watching", names.len() + *anonymous as usize);
    if !names.is_empty() {
        title.push_str(&format!(": {}", names.join(", ")));
    }
    if *anonymous > 0 && !names.is_empty() {
        title.push_str(&format!(" +{anonymous} anonymous"));
    }
    title.push(' ');
    view.chat.render(
        frame,
        area,
        &title,
        "No one has said anything yet; c to talk.",
    );
}

/// A chat event as the pane takes it.
fn chat_entry(event: &pb::ChatEvent) -> ChatEntry<'_> {
    ChatEntry {
        sender: &event.sender,
        text: &event.text,
        from_player: event.from_player,
        from_admin: event.from_admin,
        answer: event.answer,
    }
}

/// One game on the whole screen, with its status line at the bottom unless
/// it would crop a game that fits (and as `s` toggles it).
fn render_single(frame: &mut Frame, area: Rect, game: &mut GameView, status: Option<bool>) {
    let show_status = status.unwrap_or_else(|| status_by_default(area, game.size()));
    let cursor = game.render_with_status(frame, area, show_status);
    place_cursor(frame, cursor);
}

/// Up to four games in a grid, each in a frame whose title is its status.
fn render_grid(frame: &mut Frame, area: Rect, watching: &mut Watching) {
    let [grid, help] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    let sizes: Vec<(u16, u16)> = watching
        .views
        .iter()
        .map(|v| (v.game.size().cols, v.game.size().rows))
        .collect();
    let panes = grid_areas(grid, &sizes);
    let mut focused_cursor = None;
    for (at, (view, pane)) in watching.views.iter_mut().zip(panes).enumerate() {
        let focused = at == watching.focus;
        let block = Block::bordered()
            .title(view.game.status_line(Block::bordered().inner(pane)))
            .border_style(if focused {
                Style::default().fg(Color::Cyan).bold()
            } else {
                Style::default().fg(Color::DarkGray)
            });
        let inner = block.inner(pane);
        frame.render_widget(block, pane);
        let cursor = view.game.draw(inner, frame.buffer_mut());
        if focused {
            focused_cursor = cursor;
        }
    }
    frame.render_widget(
        Paragraph::new(Line::from(
            " Tab: next · Enter: full screen · s: status · q: back to the menu",
        ))
        .style(Style::default().dim()),
        help,
    );
    place_cursor(frame, focused_cursor);
}

/// Panes for games of `sizes` (columns, rows): two side by side or one
/// above the other, whichever shows more of them; three or four in a 2×2 grid.
fn grid_areas(area: Rect, sizes: &[(u16, u16)]) -> Vec<Rect> {
    let halves = |r: Rect, horizontal: bool| -> Vec<Rect> {
        let split = [Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)];
        let layout = if horizontal {
            Layout::horizontal(split)
        } else {
            Layout::vertical(split)
        };
        layout.split(r).to_vec()
    };
    match sizes.len() {
        0 => Vec::new(),
        1 => vec![area],
        2 => {
            let shown = |panes: &[Rect]| -> u32 {
                panes
                    .iter()
                    .zip(sizes)
                    .map(|(pane, (cols, rows))| {
                        let inner = Block::bordered().inner(*pane);
                        u32::from((*cols).min(inner.width)) * u32::from((*rows).min(inner.height))
                    })
                    .sum()
            };
            let side_by_side = halves(area, true);
            let stacked = halves(area, false);
            if shown(&stacked) > shown(&side_by_side) {
                stacked
            } else {
                side_by_side
            }
        }
        n => {
            let mut panes: Vec<Rect> = halves(area, false)
                .into_iter()
                .flat_map(|row| halves(row, true))
                .collect();
            panes.truncate(n);
            panes
        }
    }
}

fn place_cursor(frame: &mut Frame, cursor: Option<Position>) {
    if let Some(position) = cursor {
        frame.set_cursor_position(position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn view(cols: u16, rows: u16) -> GameView {
        let mut view = GameView::new(SessionRow {
            id: "s".into(),
            username: "alice".into(),
            game: "NH36".into(),
            cols,
            rows,
            start: None,
            idle: Duration::ZERO,
            watchers: 1,
            detached: false,
            extra_info: String::new(),
            extra_weight: 0,
            private: false,
        });
        view.apply(dgate_term::GameEvent::Output {
            frame_id: 1,
            data: b"\x1b[1;1Htop\x1b[24;1Hbottom",
        });
        view
    }

    fn rendered(game: &mut GameView, cols: u16, rows: u16, status: Option<bool>) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(cols, rows)).expect("terminal");
        terminal
            .draw(|f| render_single(f, f.area(), game, status))
            .expect("draw");
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

    #[test]
    fn the_status_line_never_crops_a_game_that_fits_unless_asked_for() {
        let mut game = view(80, 24);
        let exact = rendered(&mut game, 80, 24, None);
        assert_eq!(exact[0], "top");
        assert_eq!(exact[23], "bottom");
        let asked = rendered(&mut game, 80, 24, Some(true));
        assert!(
            asked[23].contains("alice · NH36 · 80x24 · 1 watching · cropped to 80x23"),
            "{asked:#?}"
        );
        let roomy = rendered(&mut game, 100, 30, None);
        assert!(roomy[29].contains("alice · NH36 · 80x24"));
        assert!(!roomy[29].contains("cropped"));
        // Too small anyway: the status line says so.
        let small = rendered(&mut game, 60, 15, None);
        assert!(small[14].contains("cropped to 60x14"), "{small:#?}");
    }

    #[test]
    fn two_games_are_split_the_way_that_shows_more_of_them() {
        let games = [(80, 24), (80, 24)];
        let tall = grid_areas(Rect::new(0, 0, 120, 60), &games);
        assert_eq!(tall[0].x, tall[1].x, "one above the other: {tall:?}");
        let wide = grid_areas(Rect::new(0, 0, 200, 30), &games);
        assert_eq!(wide[0].y, wide[1].y, "side by side: {wide:?}");
        let four = grid_areas(Rect::new(0, 0, 200, 60), &[(80, 24); 4]);
        assert_eq!(four.len(), 4);
        assert_eq!(four[3], Rect::new(100, 30, 100, 30));
    }
}
