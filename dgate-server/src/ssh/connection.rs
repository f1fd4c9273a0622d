//! One SSH connection, from the shell request to goodbye: the menus (banner,
//! log in, register, password, keys), the watch menu and watching, the game
//! list and playing.
//!
//! It is one task whose screens take turns. Every screen reads input through
//! the connection's single event queue and key decoder, so a key typed ahead
//! is kept for the next screen, and window changes are applied whichever
//! screen is showing. The channel's reader never blocks russh: when a client
//! floods input faster than it is used, the excess is dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dgate_proto::pb;
use dgate_tui::game_view::{GameView, Update};
use dgate_tui::keys::KeyDecoder;
use dgate_tui::recent_menu::{RecentAction, RecentMenu};
use dgate_tui::replay_screen::LocalReplay;
use dgate_tui::watch_menu::{LETTERS, MenuAction, SessionRow, WatchMenu};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style};
use ratatui::widgets::Paragraph;
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{debug, info};

use super::SshFront;
use super::output::{Gone, Output};
use crate::accounts::{AccountError, User, check_username};
use crate::auth::LoginLimiter;
use crate::config::TermSize;
use crate::convert::delivery_message;
use crate::error::SessionError;
use crate::hub::{Delivery, HubEvent, SnapshotReason};
use crate::limits::AddressSlot;
use crate::metrics::{Metrics, SSH};
use crate::recordings::{self, Entry};
use crate::registry::Spectator;
use crate::session::{PlayerLease, Session};
use crate::sessions::{SessionManager, StartRequest};

/// Events queued between the channel's reader and the connection.
const EVENT_QUEUE: usize = 256;
/// How long a client may take to ask for a shell after opening the channel.
const SHELL_WAIT: Duration = Duration::from_secs(10);
/// Menu actions allowed per [`FLOOD_WINDOW`].
const FLOOD_ACTIONS: usize = 30;
const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// The watch menu's refresh.
const REFRESH: Duration = Duration::from_secs(1);
/// Pauses longer than this are shortened in replays.
const REPLAY_MAX_IDLE: Duration = Duration::from_secs(5);
/// A replay's progress line is redrawn at least this often.
const REPLAY_TICK: Duration = Duration::from_millis(200);
/// A reset terminal: a snapshot is drawn on one.
const RESET: &[u8] = b"\x1bc";
const CLEAR: &str = "\x1b[0m\x1b[?1049l\x1b[H\x1b[2J";

/// What the channel's reader passes on.
#[derive(Debug)]
enum Event {
    Input(Bytes),
    Resize(u16, u16),
    Pty { term: String, cols: u16, rows: u16 },
    Shell,
    Closed,
}

/// Why the connection ends.
#[derive(Debug)]
enum End {
    /// The client went away.
    Gone,
    /// Idle in a menu for `ssh.idle_timeout`.
    Idle,
    /// The server is shutting down.
    Shutdown,
}

impl From<Gone> for End {
    fn from(_: Gone) -> Self {
        End::Gone
    }
}

/// What a screen gets from [`Connection::next_key`].
enum Step {
    Key(KeyEvent),
    /// The terminal changed size: draw again.
    Redraw,
}

pub async fn run(
    front: SshFront,
    channel: Channel<Msg>,
    user: Option<User>,
    peer: Option<SocketAddr>,
    admission: Result<(OwnedSemaphorePermit, AddressSlot), String>,
) {
    let metrics = Arc::clone(front.manager.metrics());
    metrics.ssh_connections_active.inc();
    let (read, write) = channel.split();
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(forward(read, events_tx));
    let mut connection = Connection {
        out: Output::new(write, (80, 24)),
        events,
        decoder: KeyDecoder::default(),
        typed: VecDeque::new(),
        user,
        peer,
        message: None,
        actions: VecDeque::new(),
        front,
    };
    let refusal = admission.as_ref().err().cloned();
    let status = match connection.start(refusal).await {
        Ok(()) => connection.serve().await,
        Err(end) => Err(end),
    };
    let goodbye = match status {
        Ok(()) => "Goodbye.\r\n",
        Err(End::Idle) => "\r\nIdle too long in the menus; goodbye.\r\n",
        Err(End::Shutdown) => "\r\nThe server is shutting down; goodbye.\r\n",
        Err(End::Gone) => "",
    };
    let _ = connection.out.write(format!("{CLEAR}{goodbye}")).await;
    connection.out.close(0).await;
    metrics.ssh_connections_active.dec();
    drop(admission);
}

/// Reads the channel and queues what the connection needs, never blocking
/// russh's session loop on a full queue: input beyond it is dropped.
async fn forward(mut read: ChannelReadHalf, events: mpsc::Sender<Event>) {
    let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX).max(1);
    while let Some(message) = read.wait().await {
        let event = match message {
            ChannelMsg::Data { data } => Event::Input(data),
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            } => Event::Resize(side(col_width), side(row_height)),
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            } => Event::Pty {
                term,
                cols: side(col_width),
                rows: side(row_height),
            },
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

struct Connection {
    front: SshFront,
    out: Output,
    events: mpsc::Receiver<Event>,
    decoder: KeyDecoder,
    /// Keys decoded and not used yet (typed ahead).
    typed: VecDeque<KeyEvent>,
    user: Option<User>,
    peer: Option<SocketAddr>,
    /// Shown with the next menu.
    message: Option<String>,
    /// Recent menu actions, for the flood guard.
    actions: VecDeque<Instant>,
}

impl Connection {
    /// Waits for the pty and the shell; refuses politely when the server is full.
    async fn start(&mut self, refusal: Option<String>) -> Result<(), End> {
        let deadline = tokio::time::Instant::now() + SHELL_WAIT;
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
                Some(Event::Input(bytes)) => self.queue_keys(&bytes),
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

    fn queue_keys(&mut self, bytes: &[u8]) {
        self.typed.extend(self.decoder.feed(bytes));
    }

    /// The next key, or a redraw after a resize. `idle` applies the menus'
    /// idle timeout.
    async fn next_key(&mut self, idle: bool) -> Result<Step, End> {
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
                (false, 'l') => self.login().await?,
                (false, 'r') => self.register().await?,
                (_, 'w') => self.watch_menu().await?,
                (false, 'g') => self.games(false).await?,
                (true, 'p') => self.games(true).await?,
                (true, 'c') => self.change_password().await?,
                (true, 'k') => self.keys().await?,
                _ => {}
            }
        }
    }

    /// The banner and its one-key choice.
    async fn menu(&mut self) -> Result<char, End> {
        let keys: &[char] = if self.user.is_some() {
            &['p', 'w', 'c', 'k', 'q']
        } else {
            &['l', 'r', 'w', 'g', 'q']
        };
        loop {
            let banner = self.front.banners.render(
                self.user.as_ref().map(|u| u.username.as_str()),
                SystemTime::now(),
            );
            let message = self.message.take().unwrap_or_default();
            self.out.forget_screen();
            self.out
                .write(format!("{CLEAR}{banner}\r\n{message}\r\n\r\n=> "))
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
    async fn read_line(
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

    async fn login(&mut self) -> Result<(), End> {
        self.out
            .write(format!("{CLEAR}Log in (Esc cancels)\r\n\r\n"))
            .await?;
        let Some(name) = self.read_line("Username: ", false, 20).await? else {
            return Ok(());
        };
        let Some(password) = self.read_line("Password: ", true, 1024).await? else {
            return Ok(());
        };
        let keys = LoginLimiter::keys(&name, self.peer.map(|p| p.ip()));
        if let Some(wait) = self.front.limiter.blocked(&keys, Instant::now()) {
            self.message = Some(format!(
                "Too many failed logins; try again in {} s.",
                wait.as_secs().max(1)
            ));
            return Ok(());
        }
        let store = Arc::clone(&self.front.accounts);
        let checked = blocking(move || store.check_credentials(&name, password.as_bytes())).await;
        match checked {
            Ok(user) => {
                info!(username = %user.username, "logged in over SSH (menu)");
                self.message = Some(format!("Welcome back, {}.", user.username));
                self.user = Some(user);
            }
            Err(e) => {
                if matches!(e, AccountError::BadCredentials | AccountError::Banned(_)) {
                    self.front.limiter.record_failure(&keys, Instant::now());
                    self.front.manager.metrics().failed_logins.inc();
                }
                self.message = Some(format!("Cannot log in: {e}."));
            }
        }
        Ok(())
    }

    async fn register(&mut self) -> Result<(), End> {
        self.out
            .write(format!(
                "{CLEAR}Register (Esc cancels)\r\n\r\nA name of 2 to 20 letters, digits, '_' or '-'.\r\n\r\n"
            ))
            .await?;
        let Some(name) = self.read_line("Username: ", false, 20).await? else {
            return Ok(());
        };
        if let Err(why) = check_username(&name) {
            self.message = Some(format!("Not registered: {why}."));
            return Ok(());
        }
        let Some(password) = self.read_line("Password: ", true, 1024).await? else {
            return Ok(());
        };
        let Some(again) = self.read_line("Again: ", true, 1024).await? else {
            return Ok(());
        };
        if password != again {
            self.message = Some("Not registered: the passwords differ.".into());
            return Ok(());
        }
        let store = Arc::clone(&self.front.accounts);
        match blocking(move || store.register(&name, password.as_bytes(), None)).await {
            Ok(user) => {
                info!(username = %user.username, "account registered over SSH");
                self.message = Some(format!(
                    "Welcome, {}! Next time: ssh {}@this-host",
                    user.username, user.username
                ));
                self.user = Some(user);
            }
            Err(e) => self.message = Some(format!("Not registered: {e}.")),
        }
        Ok(())
    }

    async fn change_password(&mut self) -> Result<(), End> {
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        self.out
            .write(format!("{CLEAR}Change your password (Esc cancels)\r\n\r\n"))
            .await?;
        let Some(old) = self.read_line("Current password: ", true, 1024).await? else {
            return Ok(());
        };
        let Some(new) = self.read_line("New password: ", true, 1024).await? else {
            return Ok(());
        };
        let Some(again) = self.read_line("Again: ", true, 1024).await? else {
            return Ok(());
        };
        if new != again {
            self.message = Some("Unchanged: the new passwords differ.".into());
            return Ok(());
        }
        let store = Arc::clone(&self.front.accounts);
        let name = user.username.clone();
        let changed = blocking(move || {
            store.check_credentials(&name, old.as_bytes())?;
            store.set_password(&name, new.as_bytes())
        })
        .await;
        self.message = Some(match changed {
            Ok(()) => "Password changed.".into(),
            Err(e) => format!("Unchanged: {e}."),
        });
        Ok(())
    }

    /// The account's SSH keys: list, add (paste a line), delete.
    async fn keys(&mut self) -> Result<(), End> {
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        let mut note = String::new();
        loop {
            let store = Arc::clone(&self.front.accounts);
            let name = user.username.clone();
            let keys = blocking(move || store.public_keys(&name))
                .await
                .unwrap_or_default();
            let mut text = format!("{CLEAR}Your SSH keys\r\n\r\n");
            if keys.is_empty() {
                text.push_str("  (none yet)\r\n");
            }
            for (letter, key) in LETTERS.iter().zip(&keys) {
                text.push_str(&format!(
                    "  {}) {} {}\r\n",
                    char::from(*letter),
                    key.fingerprint,
                    key.comment
                ));
            }
            text.push_str(&format!(
                "\r\n{note}\r\n\r\n  a) add a key    d) delete one    q) back\r\n\r\n=> "
            ));
            self.out.write(text).await?;
            note.clear();
            let Step::Key(key) = self.next_key(true).await? else {
                continue;
            };
            match key.code {
                KeyCode::Char('a') => {
                    self.out
                        .write("\r\nPaste one line of your public key (~/.ssh/id_ed25519.pub):\r\n")
                        .await?;
                    let Some(line) = self.read_line("", false, 8192).await? else {
                        continue;
                    };
                    let store = Arc::clone(&self.front.accounts);
                    let name = user.username.clone();
                    note = match blocking(move || store.add_public_key(&name, &line)).await {
                        Ok(added) => format!(
                            "Added {}. Log in with: ssh {}@this-host",
                            added.fingerprint, user.username
                        ),
                        Err(e) => format!("Not added: {e}."),
                    };
                }
                KeyCode::Char('d') if !keys.is_empty() => {
                    self.out
                        .write("\r\nDelete which key (its letter)? ")
                        .await?;
                    let Step::Key(choice) = self.next_key(true).await? else {
                        continue;
                    };
                    let chosen = match choice.code {
                        KeyCode::Char(c) => LETTERS
                            .iter()
                            .position(|l| char::from(*l) == c)
                            .and_then(|at| keys.get(at)),
                        _ => None,
                    };
                    let Some(chosen) = chosen else {
                        note = "Nothing deleted.".into();
                        continue;
                    };
                    let store = Arc::clone(&self.front.accounts);
                    let (name, fingerprint) = (user.username.clone(), chosen.fingerprint.clone());
                    note = match blocking(move || store.remove_public_key(&name, &fingerprint))
                        .await
                    {
                        Ok(true) => format!("Deleted {}.", chosen.fingerprint),
                        Ok(false) => "That key was already gone.".into(),
                        Err(e) => format!("Not deleted: {e}."),
                    };
                }
                KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                _ => note = "Press a, d or q.".into(),
            }
        }
    }

    /// The games on offer; logged in, a letter starts (or resumes) one.
    async fn games(&mut self, can_play: bool) -> Result<(), End> {
        let games: Vec<_> = self.front.manager.games();
        loop {
            let mut text = format!("{CLEAR}Games on this server\r\n\r\n");
            for (letter, game) in LETTERS.iter().zip(&games) {
                let state = match &game.unavailable {
                    Some(why) => format!("  (unavailable: {why})"),
                    None => String::new(),
                };
                text.push_str(&format!(
                    "  {}) {:<8} {}{state}\r\n",
                    char::from(*letter),
                    game.config.short_name,
                    game.config.name
                ));
            }
            text.push_str(if can_play {
                "\r\nPlay which game? (q goes back) => "
            } else {
                "\r\nLog in (l) or register (r) in the main menu to play. Press q to go back. "
            });
            self.out.write(text).await?;
            let Step::Key(key) = self.next_key(true).await? else {
                continue;
            };
            match key.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                KeyCode::Char(c) if can_play => {
                    let chosen = LETTERS
                        .iter()
                        .position(|l| char::from(*l) == c)
                        .and_then(|at| games.get(at));
                    if let Some(game) = chosen {
                        let id = game.config.id.clone();
                        self.play(&id).await?;
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    /// Plays `game_id` at this terminal's size (resuming the player's session
    /// of it if there is one) until the game ends.
    async fn play(&mut self, game_id: &str) -> Result<(), End> {
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        let manager = self.front.manager.clone();
        let (cols, rows) = self.out.size;
        let size = manager.check_size(TermSize::new(cols, rows)).ok();
        let request = StartRequest {
            user_id: i32::try_from(user.id).unwrap_or(0),
            username: user.username.clone(),
            game_id: game_id.to_owned(),
            size,
        };
        let (session, resumed) = match manager.start(request) {
            Ok(session) => (session, false),
            Err(SessionError::AlreadyActive { session_id, .. }) => match manager.get(&session_id) {
                Ok(session) => (session, true),
                Err(e) => {
                    self.message = Some(format!("Cannot resume the game: {e}."));
                    return Ok(());
                }
            },
            Err(e) => {
                self.message = Some(format!("Cannot start the game: {e}."));
                return Ok(());
            }
        };
        let attachment = Attachment {
            lease: session.attach_player(),
            session: Arc::clone(&session),
            manager: manager.clone(),
        };
        let lease = &attachment.lease;
        let mut subscription = session.hub.subscribe();
        if resumed && let Some(size) = size {
            let _ = session.resize(size);
        }
        self.typed.clear();
        self.out.forget_screen();
        let bytes_sent = manager
            .metrics()
            .bytes_sent
            .get_or_create(&Metrics::transport(SSH))
            .clone();
        info!(session_id = %session.info.id, username = %user.username, resumed, "playing over SSH");
        let outcome = loop {
            tokio::select! {
                delivery = subscription.next() => {
                    let Some(delivery) = delivery else { break None };
                    match &delivery {
                        Delivery::Snapshot(s) => {
                            bytes_sent.inc_by(s.data.len() as u64);
                            self.out.write([RESET, &s.data[..]].concat()).await?;
                        }
                        Delivery::Event(event) => match event.as_ref() {
                            HubEvent::Frame(frame) => {
                                bytes_sent.inc_by(frame.data.len() as u64);
                                self.out.write(frame.data.clone()).await?;
                            }
                            HubEvent::Resize { .. } => {}
                            HubEvent::Ended { .. } => break Some("The game has ended.".to_owned()),
                        },
                    }
                }
                event = self.events.recv() => match event {
                    Some(Event::Input(bytes)) => {
                        if session.send_input(bytes).await.is_err() {
                            break Some("The game has ended.".to_owned());
                        }
                    }
                    Some(Event::Resize(cols, rows)) => {
                        self.out.resize(cols, rows);
                        if let Ok(size) = manager.check_size(TermSize::new(cols, rows)) {
                            let _ = session.resize(size);
                        }
                    }
                    Some(Event::Pty { .. } | Event::Shell) => {}
                    Some(Event::Closed) | None => return Err(End::Gone),
                },
                () = lease.taken_over.cancelled() => {
                    break Some("Another connection of yours took over this game.".to_owned());
                }
            }
        };
        drop(attachment);
        self.out.forget_screen();
        self.message = outcome;
        Ok(())
    }

    /// The watch menu (the same as the dgate client's), until `q`.
    async fn watch_menu(&mut self) -> Result<(), End> {
        let (cols, rows) = self.out.size;
        let mut menu = WatchMenu::new(cols, rows);
        menu.update(self.session_rows());
        menu.message = self.message.take();
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.out.draw(|f| menu.render(f, f.area())).await?;
            tokio::select! {
                step = self.next_key(true) => match step? {
                    Step::Redraw => {
                        let (cols, rows) = self.out.size;
                        menu.resize(cols, rows);
                    }
                    Step::Key(key) => match menu.handle_key(key) {
                        MenuAction::None => {}
                        MenuAction::Quit => return Ok(()),
                        MenuAction::Watch(id) => {
                            menu.message = self.watch(&id).await?;
                            self.out.forget_screen();
                            let (cols, rows) = self.out.size;
                            menu.resize(cols, rows);
                            menu.update(self.session_rows());
                        }
                        MenuAction::MultiView(_) => {
                            menu.message = Some(
                                "Several games at once: that is the dgate client's multi-view.".into(),
                            );
                        }
                        MenuAction::Recent => {
                            menu.message = self.recent().await?;
                            self.out.forget_screen();
                            let (cols, rows) = self.out.size;
                            menu.resize(cols, rows);
                        }
                    },
                },
                _ = refresh.tick() => menu.update(self.session_rows()),
            }
        }
    }

    /// The recent games page, and replays from it, until `q`.
    async fn recent(&mut self) -> Result<Option<String>, End> {
        let directory = self
            .front
            .manager
            .config()
            .session_management
            .ttyrec
            .directory
            .clone();
        let entries = tokio::task::spawn_blocking(move || recordings::list(&directory, "", "", 0))
            .await
            .unwrap_or_default();
        let mut menu = RecentMenu::new(entries.iter().map(Entry::info).collect(), self.out.size.1);
        self.out.forget_screen();
        loop {
            self.out.draw(|f| menu.render(f, f.area())).await?;
            match self.next_key(true).await? {
                Step::Redraw => menu.resize(self.out.size.1),
                Step::Key(key) => match menu.handle_key(key) {
                    RecentAction::None => {}
                    RecentAction::Back => return Ok(None),
                    RecentAction::Replay(id) => {
                        if let Some(entry) = entries.iter().find(|e| e.id == id) {
                            menu.message = self.replay(entry.clone()).await?;
                            self.out.forget_screen();
                        }
                    }
                },
            }
        }
    }

    /// Plays one recording here: the same screen and keys as `dgate replay`.
    async fn replay(&mut self, entry: Entry) -> Result<Option<String>, End> {
        let title = format!("{} · {}", entry.meta.username, entry.meta.game_id);
        let opened = tokio::task::spawn_blocking(move || entry.open(Some(REPLAY_MAX_IDLE))).await;
        let recording = match opened {
            Ok(Ok(recording)) => recording,
            Ok(Err(status)) => return Ok(Some(format!("Cannot replay: {}", status.message()))),
            Err(e) => return Ok(Some(format!("Cannot replay: {e}"))),
        };
        let mut replay = LocalReplay::new(recording, title);
        self.out.forget_screen();
        loop {
            let progress = replay.tick();
            self.out
                .draw(|f| replay.screen.render(f, &progress))
                .await?;
            tokio::select! {
                step = self.next_key(false) => {
                    if let Step::Key(key) = step?
                        && replay.key(key)
                    {
                        return Ok(None);
                    }
                }
                () = tokio::time::sleep(replay.wait(REPLAY_TICK)) => {}
            }
        }
    }

    fn session_rows(&self) -> Vec<SessionRow> {
        let now = SystemTime::now();
        self.front
            .manager
            .list()
            .iter()
            .map(|s| SessionRow::from_session(&pb::GameSession::from(s.as_ref()), now))
            .collect()
    }

    /// Watches one game until `q`, Ctrl+C or its end; returns a line for the menu.
    async fn watch(&mut self, session_id: &str) -> Result<Option<String>, End> {
        let manager = self.front.manager.clone();
        let (user_id, username) = match &self.user {
            Some(user) => (i32::try_from(user.id).unwrap_or(0), user.username.clone()),
            None => (0, String::new()),
        };
        let (session, spectator) = match manager.add_spectator(session_id, user_id, &username) {
            Ok(registered) => registered,
            Err(e) => return Ok(Some(format!("Cannot watch: {e}."))),
        };
        spectator.bind();
        let metrics = Arc::clone(manager.metrics());
        let connections = metrics
            .spectator_connections_active
            .get_or_create(&Metrics::transport(SSH))
            .clone();
        connections.inc();
        let _registration = Registration {
            session: Arc::clone(&session),
            spectator: Arc::clone(&spectator),
            connections,
        };
        let bytes_sent = metrics
            .bytes_sent
            .get_or_create(&Metrics::transport(SSH))
            .clone();
        metrics
            .spectator_sessions
            .get_or_create(&Metrics::game(&session.info.game_id))
            .inc();
        let mut subscription = session.hub.subscribe();
        let row =
            SessionRow::from_session(&pb::GameSession::from(session.as_ref()), SystemTime::now());
        let mut view = GameView::new(row);
        // Raw passthrough while the game fits this terminal; a drawn, cropped
        // view otherwise. `None` until the first snapshot decides.
        let mut passthrough: Option<bool> = None;
        let outcome = loop {
            tokio::select! {
                delivery = subscription.next() => {
                    let Some(delivery) = delivery else { break None };
                    if let Delivery::Snapshot(s) = &delivery
                        && s.reason == SnapshotReason::Resync
                    {
                        metrics.spectator_resyncs.inc();
                        metrics.spectator_frames_dropped.inc_by(s.frames_skipped);
                    }
                    let message = delivery_message(&session.info.id, &delivery);
                    let update = message.response.map(|r| view.apply(r));
                    if let Some(Update::Ended(why)) = update {
                        break Some(why);
                    }
                    let fits = fits(view.size(), self.out.size);
                    let frame = match &delivery {
                        Delivery::Event(event) => match event.as_ref() {
                            HubEvent::Frame(frame) => Some(frame),
                            _ => None,
                        },
                        Delivery::Snapshot(_) => None,
                    };
                    match (passthrough, fits, frame) {
                        (Some(true), true, Some(frame)) => {
                            metrics.spectator_frames_sent.inc();
                            bytes_sent.inc_by(frame.data.len() as u64);
                            self.out.write(frame.data.clone()).await?;
                        }
                        (_, true, _) => {
                            // (Re)start the passthrough from the screen as it is:
                            // first time, after a resync, after the game's resize
                            // (the status line moves below it).
                            let snapshot = view.snapshot();
                            bytes_sent.inc_by(snapshot.len() as u64);
                            self.out.forget_screen();
                            self.out.write([RESET, &snapshot[..]].concat()).await?;
                            self.write_status(&view).await?;
                            passthrough = Some(true);
                        }
                        (_, false, _) => {
                            self.out.draw(|f| draw_cropped(f, &mut view)).await?;
                            passthrough = Some(false);
                        }
                    }
                }
                step = self.next_key(false) => match step? {
                    Step::Redraw => passthrough = None,
                    Step::Key(key) => {
                        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                            && key.code == KeyCode::Char('c');
                        if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                            break None;
                        }
                        // Anything else is the watcher's own: it never reaches the game.
                    }
                },
                () = spectator.removed.cancelled() => {
                    break Some("You were removed from this game's spectators.".to_owned());
                }
            }
            if passthrough.is_none() {
                // A resize: redraw at once in whichever mode now applies.
                if fits(view.size(), self.out.size) {
                    let snapshot = view.snapshot();
                    self.out.forget_screen();
                    self.out.write([RESET, &snapshot[..]].concat()).await?;
                    self.write_status(&view).await?;
                    passthrough = Some(true);
                } else {
                    self.out.draw(|f| draw_cropped(f, &mut view)).await?;
                    passthrough = Some(false);
                }
            }
        };
        Ok(outcome)
    }

    /// Below a passed-through game, when the terminal has a spare row.
    async fn write_status(&self, view: &GameView) -> Result<(), End> {
        let (cols, rows) = self.out.size;
        let game = view.size();
        if rows <= game.rows {
            return Ok(());
        }
        let area = ratatui::layout::Rect::new(0, 0, cols, rows);
        let mut status = view.status_line(area).to_string();
        status.push_str(" · q: back");
        let status: String = status.chars().take(usize::from(cols)).collect();
        self.out
            .write(format!(
                "\x1b7\x1b[{};1H\x1b[0;7m{status}\x1b[K\x1b[0m\x1b8",
                game.rows + 1
            ))
            .await?;
        Ok(())
    }
}

/// The player's attachment to a game, however playing ends (the game's end,
/// a takeover, the client gone mid-write): if this connection was still the
/// player, the game waits the detach grace for them and is then hung up.
struct Attachment {
    session: Arc<Session>,
    lease: PlayerLease,
    manager: SessionManager,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if self.session.detach_player(&self.lease) && !self.session.is_ended() {
            info!(session_id = %self.session.info.id, "SSH player gone; the game waits for the detach grace period");
            self.manager.arm_detach_timer(&self.session);
        }
    }
}

/// A watcher's registration, removed however watching ends.
struct Registration {
    session: Arc<Session>,
    spectator: Arc<Spectator>,
    connections: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.session.spectators.remove(&self.spectator.id);
        self.connections.dec();
        info!(session_id = %self.session.info.id, spectator_username = %self.spectator.username,
              spectator_count = self.session.spectators.len(), "SSH spectator left");
    }
}

/// The game fits the terminal (with or without a row to spare).
fn fits(game: TermSize, (cols, rows): (u16, u16)) -> bool {
    game.cols <= cols && game.rows <= rows
}

/// A game larger than the terminal: cropped around its cursor, with a status line.
fn draw_cropped(frame: &mut ratatui::Frame, view: &mut GameView) {
    let [game, status] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(frame.area());
    if let Some(cursor) = view.draw(game, frame.buffer_mut()) {
        frame.set_cursor_position(cursor);
    }
    let mut line = view.status_line(game);
    line.push_span(" · q: back");
    frame.render_widget(
        Paragraph::new(line).style(Style::default().bg(Color::DarkGray).fg(Color::White)),
        status,
    );
}

/// Account work (SQLite, argon2) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(AccountError::Io(format!("the account task failed: {e}"))))
}
