//! One SSH connection, from the shell request to goodbye: the menus (banner,
//! log in, register, password, keys), the watch menu and watching, the game
//! list and playing.
//!
//! It is one task whose screens take turns. Every screen reads input through
//! the connection's single event queue and key decoder, so a key typed ahead
//! is kept for the next screen, and window changes are applied whichever
//! screen is showing. The channel's reader never blocks russh: when a client
//! floods input faster than it is used, the excess is dropped.
//!
//! This file has the connection's loop, its input and the main menu; the
//! other screens (`accounts`, `play`, `watch`) are functions of their own
//! that read keys and draw through the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dgate_term::TermSize;
use dgate_tui::keys::KeyDecoder;
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{debug, info};

use super::output::{Gone, Output};
use super::{SshFront, accounts, options, play, watch};
use crate::accounts::{Revocation, User};
use tokio_util::sync::CancellationToken;

/// Events queued between the channel's reader and the connection.
const EVENT_QUEUE: usize = 256;
/// How long a client may take to ask for a shell after opening the channel.
const SHELL_WAIT: Duration = Duration::from_secs(10);
/// Bytes typed before the shell starts that are kept (as keys typed ahead);
/// the rest is dropped, so a client cannot make the server hold its input.
const EARLY_INPUT: usize = 4096;
/// Keys typed ahead that are kept for the next screens.
const TYPED_AHEAD: usize = 256;
/// Menu actions allowed per [`FLOOD_WINDOW`].
const FLOOD_ACTIONS: usize = 30;
const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// The watch menu's refresh.
pub(super) const REFRESH: Duration = Duration::from_secs(1);
/// A reset terminal: a snapshot is drawn on one.
pub(super) const RESET: &[u8] = b"\x1bc";
/// Leaves whatever was drawn and clears the screen.
pub(super) const CLEAR: &str = "\x1b[0m\x1b[?1049l\x1b[H\x1b[2J";

/// What the channel's reader passes on.
#[derive(Debug)]
pub(super) enum Event {
    Input(Bytes),
    Resize(u16, u16),
    Pty { term: String, cols: u16, rows: u16 },
    Shell,
    Closed,
}

/// Why the connection ends.
#[derive(Debug)]
pub(super) enum End {
    /// The client went away.
    Gone,
    /// Idle in a menu for `ssh.idle_timeout`.
    Idle,
    /// The server is shutting down.
    Shutdown,
    /// The account was banned or its password changed elsewhere.
    Revoked(String),
}

impl From<Gone> for End {
    fn from(_: Gone) -> Self {
        End::Gone
    }
}

/// What a screen gets from [`Connection::next_key`].
pub(super) enum Step {
    Key(KeyEvent),
    /// The terminal changed size: draw again.
    Redraw,
}

pub async fn run(
    front: SshFront,
    channel: Channel<Msg>,
    user: Option<User>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    admission: Result<OwnedSemaphorePermit, String>,
) {
    let metrics = Arc::clone(front.manager.metrics());
    metrics.ssh_connections_active.inc();
    let (read, write) = channel.split();
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let max_size = front.manager.config().session_management.terminal.max_size;
    tokio::spawn(forward(read, events_tx, max_size));
    let mut connection = Connection {
        out: Output::new(write, (80, 24)),
        events,
        decoder: KeyDecoder::default(),
        typed: VecDeque::new(),
        user: None,
        revocation: None,
        ended: CancellationToken::new(),
        peer,
        local,
        message: None,
        actions: VecDeque::new(),
        front,
    };
    if let Some(user) = user {
        connection.logged_in(user);
    }
    let refusal = admission.as_ref().err().cloned();
    let ended = connection.ended.clone();
    let status = match connection.start(refusal).await {
        // Whatever screen is showing, a revoked account ends the connection.
        Ok(()) => tokio::select! {
            status = connection.serve() => status,
            () = ended.cancelled() => Err(End::Revoked(
                connection.revocation.as_ref().map(|r| r.why()).unwrap_or_default(),
            )),
        },
        Err(end) => Err(end),
    };
    let goodbye = match status {
        Ok(()) => "Goodbye.\r\n".to_owned(),
        Err(End::Idle) => "\r\nIdle too long in the menus; goodbye.\r\n".to_owned(),
        Err(End::Shutdown) => "\r\nThe server is shutting down; goodbye.\r\n".to_owned(),
        Err(End::Revoked(why)) => format!("\r\nYour session has ended: {why}.\r\n"),
        Err(End::Gone) => String::new(),
    };
    let _ = connection.out.write(format!("{CLEAR}{goodbye}")).await;
    connection.out.close(0).await;
    metrics.ssh_connections_active.dec();
    drop(admission);
}

/// Reads the channel and queues what the connection needs, never blocking
/// russh's session loop on a full queue: input beyond it is dropped.
/// Terminal sizes are clamped to `max_size` here, before anything is drawn
/// at them.
async fn forward(mut read: ChannelReadHalf, events: mpsc::Sender<Event>, max_size: TermSize) {
    let side = |cols: u32, rows: u32| clamp_size(cols, rows, max_size);
    while let Some(message) = read.wait().await {
        let event = match message {
            ChannelMsg::Data { data } => Event::Input(data),
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            } => {
                let (cols, rows) = side(col_width, row_height);
                Event::Resize(cols, rows)
            }
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            } => {
                let (cols, rows) = side(col_width, row_height);
                Event::Pty { term, cols, rows }
            }
            ChannelMsg::RequestShell { .. } => Event::Shell,
            ChannelMsg::Eof | ChannelMsg::Close => break,
            _ => continue,
        };
        match events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                if !matches!(event, Event::Input(_)) {
                    // Sizes and requests matter; wait for room for them.
                    if events.send(event).await.is_err() {
                        return;
                    }
                } else {
                    debug!("SSH input dropped: the connection is behind");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
    let _ = events.send(Event::Closed).await;
}

/// A terminal size a client claims (pty-req, window-change), within 1x1
/// and `max`: what every screen of the connection is drawn at.
pub fn clamp_size(cols: u32, rows: u32, max: TermSize) -> (u16, u16) {
    let side = |v: u32, max: u16| u16::try_from(v).unwrap_or(u16::MAX).clamp(1, max.max(1));
    (side(cols, max.cols), side(rows, max.rows))
}

/// One SSH terminal and who is at it; every screen reads and draws through it.
pub(super) struct Connection {
    pub(super) front: SshFront,
    pub(super) out: Output,
    pub(super) events: mpsc::Receiver<Event>,
    decoder: KeyDecoder,
    /// Keys decoded and not used yet (typed ahead).
    pub(super) typed: VecDeque<KeyEvent>,
    pub(super) user: Option<User>,
    /// Set with `user`: ends the connection when the account changes.
    pub(super) revocation: Option<Arc<Revocation>>,
    /// Cancelled when the account is banned or its password changes elsewhere.
    ended: CancellationToken,
    pub(super) peer: Option<SocketAddr>,
    /// The address the client connected to.
    pub(super) local: Option<SocketAddr>,
    /// Shown with the next menu.
    pub(super) message: Option<String>,
    /// Recent menu actions, for the flood guard.
    actions: VecDeque<Instant>,
}

impl Connection {
    /// `user` is logged in on this connection from now on, for as long as
    /// the account is not banned or its password changed elsewhere.
    pub(super) fn logged_in(&mut self, user: User) {
        self.revocation = Some(self.front.live.watch(&user, self.ended.clone()));
        self.user = Some(user);
    }

    /// Waits for the pty and the shell; refuses politely when the server is full.
    async fn start(&mut self, refusal: Option<String>) -> Result<(), End> {
        let deadline = tokio::time::Instant::now() + SHELL_WAIT;
        let mut early_input = 0;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| End::Gone)?;
            match event {
                Some(Event::Pty { term, cols, rows }) => {
                    debug!(%term, cols, rows, "SSH pty");
                    self.out.resize(cols, rows);
                }
                Some(Event::Resize(cols, rows)) => self.out.resize(cols, rows),
                Some(Event::Shell) => break,
                Some(Event::Input(bytes)) => {
                    let room = EARLY_INPUT.saturating_sub(early_input);
                    let kept = &bytes[..bytes.len().min(room)];
                    early_input += kept.len();
                    self.queue_keys(kept);
                }
                Some(Event::Closed) | None => return Err(End::Gone),
            }
        }
        if let Some(refusal) = refusal {
            self.out.write(format!("{refusal}\r\n")).await?;
            return Err(End::Gone);
        }
        info!(peer = ?self.peer, username = ?self.user.as_ref().map(|u| &u.username), "SSH session started");
        Ok(())
    }

    /// Decodes `bytes` into keys typed ahead, keeping at most [`TYPED_AHEAD`].
    pub(super) fn queue_keys(&mut self, bytes: &[u8]) {
        let room = TYPED_AHEAD.saturating_sub(self.typed.len());
        self.typed
            .extend(self.decoder.feed(bytes).into_iter().take(room));
    }

    /// The next key, or a redraw after a resize. `idle` applies the menus'
    /// idle timeout.
    pub(super) async fn next_key(&mut self, idle: bool) -> Result<Step, End> {
        loop {
            if let Some(key) = self.typed.pop_front() {
                return Ok(Step::Key(key));
            }
            let event = self.next_event(idle).await?;
            match event {
                Event::Input(bytes) => self.queue_keys(&bytes),
                Event::Resize(..) | Event::Pty { .. } => return Ok(Step::Redraw),
                Event::Shell => {}
                Event::Closed => return Err(End::Gone),
            }
        }
    }

    /// The next event, with resizes already applied to the output.
    async fn next_event(&mut self, idle: bool) -> Result<Event, End> {
        let shutdown = self.front.manager.shutting_down();
        let timeout = if idle {
            self.front.manager.config().ssh.idle_timeout
        } else {
            Duration::MAX
        };
        let event = tokio::select! {
            event = tokio::time::timeout(timeout, self.events.recv()) => match event {
                Ok(Some(event)) => event,
                Ok(None) => Event::Closed,
                Err(_) => return Err(End::Idle),
            },
            () = shutdown.cancelled(), if idle => return Err(End::Shutdown),
        };
        match &event {
            Event::Resize(cols, rows) | Event::Pty { cols, rows, .. } => {
                self.out.resize(*cols, *rows);
            }
            _ => {}
        }
        Ok(event)
    }

    /// The menus, until `q`.
    async fn serve(&mut self) -> Result<(), End> {
        loop {
            let logged_in = self.user.is_some();
            match (logged_in, self.menu().await?) {
                (_, 'q') => return Ok(()),
                (false, 'l') => accounts::login(self).await?,
                (false, 'r') => accounts::register(self).await?,
                (_, 'w') => watch::watch_menu(self).await?,
                (false, 'g') => play::games(self, false).await?,
                (true, 'p') => play::games(self, true).await?,
                (true, 'c') => accounts::change_password(self).await?,
                (true, 'k') => accounts::keys(self).await?,
                (true, 'o') => options::edit(self).await?,
                _ => {}
            }
        }
    }

    /// The banner and its one-key choice.
    async fn menu(&mut self) -> Result<char, End> {
        let keys: &[char] = if self.user.is_some() {
            &['p', 'w', 'o', 'c', 'k', 'q']
        } else {
            &['l', 'r', 'w', 'g', 'q']
        };
        loop {
            let banner = self.front.banners.render(
                self.user.as_ref().map(|u| u.username.as_str()),
                SystemTime::now(),
            );
            let message = self.message.take().unwrap_or_default();
            let in_progress = self.games_in_progress() + &self.announcements();
            self.out.forget_screen();
            self.out
                .write(format!(
                    "{CLEAR}{banner}\r\n{in_progress}{message}\r\n\r\n=> "
                ))
                .await?;
            let Step::Key(key) = self.next_key(true).await? else {
                continue;
            };
            match key.code {
                KeyCode::Char(c) if keys.contains(&c) => {
                    if self.flooding() {
                        // Whatever else was typed ahead goes too.
                        self.typed.clear();
                        self.message = Some("Too many actions at once; slow down a little.".into());
                        continue;
                    }
                    return Ok(c);
                }
                KeyCode::Char('d') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Ok('q');
                }
                KeyCode::Char(c) if !c.is_control() => {
                    let list: Vec<String> = keys.iter().map(char::to_string).collect();
                    self.message = Some(format!(
                        "There is no '{c}' here: press one of {}.",
                        list.join(" ")
                    ));
                }
                _ => {}
            }
        }
    }

    /// The logged-in player's games in progress, one line each, as
    /// dgamelaunch's menu shows them ("p" resumes one).
    fn games_in_progress(&self) -> String {
        let Some(user) = &self.user else {
            return String::new();
        };
        let mut lines = String::new();
        for session in self.front.manager.list() {
            if !session.is_owned_by(user) || session.is_ended() {
                continue;
            }
            let summary = session.summary();
            let state = if summary.detached {
                "waiting for you"
            } else {
                "playing elsewhere"
            };
            let extra = summary
                .extra_info
                .as_ref()
                .map(|e| format!(", {}", e.text))
                .unwrap_or_default();
            lines.push_str(&format!(
                "  You have a game of {} in progress ({state}{extra}): p resumes it.\r\n",
                summary.game_label()
            ));
        }
        lines
    }

    /// The server's announcements of the last hour, one line each.
    fn announcements(&self) -> String {
        self.front
            .manager
            .messenger()
            .announcements()
            .iter()
            .map(|notice| {
                let at = humantime::format_rfc3339_seconds(notice.sent_at).to_string();
                // 2026-11-26T12:00:00Z -> 12:00
                let time = at.get(11..16).unwrap_or("");
                format!("  Announcement ({time} UTC): {}\r\n", notice.text)
            })
            .collect()
    }

    /// True when menu actions come faster than a person types.
    fn flooding(&mut self) -> bool {
        let now = Instant::now();
        while self
            .actions
            .front()
            .is_some_and(|t| now.duration_since(*t) > FLOOD_WINDOW)
        {
            self.actions.pop_front();
        }
        self.actions.push_back(now);
        self.actions.len() > FLOOD_ACTIONS
    }

    /// A line typed at `prompt`; `None` when Esc or Ctrl+C cancels it.
    pub(super) async fn read_line(
        &mut self,
        prompt: &str,
        secret: bool,
        max: usize,
    ) -> Result<Option<String>, End> {
        self.out.write(prompt.to_owned()).await?;
        let mut text = String::new();
        loop {
            let Step::Key(key) = self.next_key(true).await? else {
                continue;
            };
            match key.code {
                KeyCode::Enter => {
                    self.out.write("\r\n").await?;
                    return Ok(Some(text));
                }
                KeyCode::Esc => return Ok(None),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Ok(None);
                }
                KeyCode::Backspace if text.pop().is_some() => {
                    self.out.write("\x08 \x08").await?;
                }
                KeyCode::Char(c)
                    if !key.modifiers.contains(KeyModifiers::CONTROL) && text.len() < max =>
                {
                    text.push(c);
                    let echo = if secret {
                        "*".to_owned()
                    } else {
                        c.to_string()
                    };
                    self.out.write(echo).await?;
                }
                _ => {}
            }
        }
    }
}
