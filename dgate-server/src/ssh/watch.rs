//! Watching over SSH: the watch menu (the dgate client's, offering what works
//! here), one game (its own bytes passed through when it fits, fenced in
//! when the terminal is larger, a cropped view drawn when it does not), and
//! the recent games with their replays. The watcher's life is
//! [`crate::viewing::Watch`]'s; this only draws.

use std::time::{Instant, SystemTime};

use dgate_term::ScreenModel;
use tokio::sync::mpsc;

use crossterm::event::{KeyCode, KeyModifiers};
use dgate_term::{GameEvent, StreamEnd};
use dgate_tui::chat_pane::ChatEntry;
use dgate_tui::game_view::{GameView, Update};
use dgate_tui::recent_menu::{RecentAction, RecentMenu};
use dgate_tui::replay_screen::{Progress, ReplayScreen, Steer};
use dgate_tui::watch_menu::{Features, MenuAction, SessionRow, WatchMenu};

use super::connection::{Connection, End, REFRESH, RESET, Step};
use super::fence::{Breach, Fence};
use super::talk;
use crate::broadcast::Delivery;
use crate::config::TermSize;
use crate::game::recordings::{self, Entry, ReplayControl, ReplayEvent};
use crate::viewing::{Transport, Watch};

/// Pauses longer than this are shortened in replays.
const REPLAY_MAX_IDLE: std::time::Duration = dgate_term::recording::MAX_IDLE;
/// A replay's progress line is redrawn at least this often.
const REPLAY_TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// The watch menu (the dgate client's, offering what works here), until `q`.
pub(super) async fn watch_menu(conn: &mut Connection) -> Result<(), End> {
    let (cols, rows) = conn.out.size;
    let mut menu = WatchMenu::new(cols, rows).with_features(Features::SSH);
    menu.update(session_rows(conn));
    menu.message = conn.message.take();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        conn.out.draw(|f| menu.render(f, f.area())).await?;
        tokio::select! {
            step = conn.next_key(true) => match step? {
                Step::Redraw => {
                    let (cols, rows) = conn.out.size;
                    menu.resize(cols, rows);
                }
                Step::Key(key) => match menu.handle_key(key) {
                    // Without the multi-view, the menu never asks for it.
                    MenuAction::None | MenuAction::MultiView(_) => {}
                    MenuAction::Quit => return Ok(()),
                    MenuAction::Watch(id) => {
                        menu.message = watch(conn, &id).await?;
                        conn.out.forget_screen();
                        let (cols, rows) = conn.out.size;
                        menu.resize(cols, rows);
                        menu.update(session_rows(conn));
                    }
                    MenuAction::Recent => {
                        menu.message = recent(conn).await?;
                        conn.out.forget_screen();
                        let (cols, rows) = conn.out.size;
                        menu.resize(cols, rows);
                    }
                },
            },
            _ = refresh.tick() => menu.update(session_rows(conn)),
        }
    }
}

/// The recent games page, and replays from it, until `q`.
pub(super) async fn recent(conn: &mut Connection) -> Result<Option<String>, End> {
    let entries = conn.front.manager.library().list("", "", 0).await;
    let mut menu = RecentMenu::new(
        entries.iter().map(Entry::summary).collect(),
        conn.out.size.1,
    );
    conn.out.forget_screen();
    loop {
        conn.out.draw(|f| menu.render(f, f.area())).await?;
        match conn.next_key(true).await? {
            Step::Redraw => menu.resize(conn.out.size.1),
            Step::Key(key) => match menu.handle_key(key) {
                RecentAction::None => {}
                RecentAction::Back => return Ok(None),
                RecentAction::Replay(id) => {
                    if let Some(entry) = entries.iter().find(|e| e.id == id) {
                        menu.message = replay(conn, entry.clone()).await?;
                        conn.out.forget_screen();
                    }
                }
            },
        }
    }
}

/// Plays one recording here: the same screen and keys as `dgate replay`,
/// drawn from the server's replay player (the file is streamed, never
/// loaded whole, and counts against the replay caps).
pub(super) async fn replay(conn: &mut Connection, entry: Entry) -> Result<Option<String>, End> {
    let manager = conn.front.manager.clone();
    let library = manager.library();
    let title = format!("{} · {}", entry.meta.username, entry.meta.game_id);
    let opened = match library.admit(conn.peer.map(|p| p.ip())) {
        Ok(permit) => library.open(entry, Some(REPLAY_MAX_IDLE), permit).await,
        Err(e) => Err(e),
    };
    let replay = match opened {
        Ok(replay) => replay,
        Err(e) => return Ok(Some(format!("Cannot replay: {e}"))),
    };
    let (events_tx, mut events) = mpsc::channel(64);
    let (steer, steering) = mpsc::channel(8);
    tokio::spawn(recordings::play(
        replay,
        steering,
        events_tx,
        manager.shutting_down(),
    ));
    let mut screen = ReplayScreen::new(title, ScreenModel::new(TermSize::new(80, 24)));
    let mut progress = Progress {
        speed: 1.0,
        ..Progress::default()
    };
    // When the player last said where it is: the progress line runs on from it.
    let mut told = Instant::now();
    conn.out.forget_screen();
    loop {
        let shown = progress.shown(told.elapsed());
        conn.out.draw(|f| screen.render(f, &shown)).await?;
        tokio::select! {
            step = conn.next_key(false) => {
                let Step::Key(key) = step? else { continue };
                let Some(intent) = screen.handle_key(key) else { continue };
                let Some((steps, note)) = progress.steer(intent, &shown) else {
                    return Ok(None);
                };
                if note.is_some() {
                    screen.message = note;
                }
                for step in steps {
                    let control = match step {
                        Steer::SeekTo(t) => ReplayControl::Seek(t.as_secs_f64()),
                        Steer::Speed(speed) => ReplayControl::Speed(speed),
                        Steer::Paused(paused) => ReplayControl::Paused(paused),
                    };
                    // Never waits (the player may be waiting for this loop);
                    // keys beyond a few queued ones are dropped.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = steer.try_send(control) {
                        return Ok(Some("The replay ended.".into()));
                    }
                }
            }
            event = events.recv() => {
                told = Instant::now();
                match event {
                    Some(Ok(ReplayEvent::Opened { duration, chat_lines, .. })) => {
                        progress.duration = duration;
                        screen.has_chat = chat_lines > 0;
                    }
                    Some(Ok(ReplayEvent::Screen { position, size, data })) => {
                        // The lines said before it follow.
                        screen.chat.clear();
                        screen.view.model = ScreenModel::new(size);
                        screen.view.model.process(&data);
                        progress.position = position;
                        progress.ended = false;
                    }
                    Some(Ok(ReplayEvent::Frame { position, resize, data })) => {
                        if let Some(size) = resize {
                            screen.view.model.resize(size);
                        }
                        screen.view.model.process(&data);
                        progress.position = position;
                    }
                    Some(Ok(ReplayEvent::State { position, speed, paused, ended })) => {
                        progress = Progress { position, speed, paused, ended, ..progress };
                    }
                    Some(Ok(ReplayEvent::Chat { line, .. })) => screen.chat.push(&ChatEntry {
                        sender: &line.sender,
                        text: &line.text,
                        from_player: line.from_player,
                        from_admin: line.from_admin,
                        answer: false,
                    }),
                    Some(Err(e)) => return Ok(Some(format!("Replay stopped: {e}"))),
                    None => return Ok(Some("The replay ended.".into())),
                }
            }
            () = tokio::time::sleep(REPLAY_TICK) => {}
        }
    }
}

fn session_rows(conn: &Connection) -> Vec<SessionRow> {
    let now = SystemTime::now();
    // In a cluster, every node's games.
    conn.front
        .manager
        .summaries()
        .iter()
        .map(|s| SessionRow::from_summary(s, now))
        .collect()
}

/// How the watched game is drawn on this terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drawing {
    /// Until the next snapshot decides.
    Undecided,
    /// The game fits: its own bytes pass through (the hub's snapshots and
    /// frames, and no screen model parsed here per watcher), fenced in
    /// when the terminal is larger ([`Fence`]).
    Passthrough,
    /// The game is larger than this terminal: a cropped view drawn from the
    /// view's model (as `dgate_tui::crop` places it), with a status line.
    Cropped,
}

/// Watches one game until `q`, Ctrl+C or its end; returns a line for the menu.
pub(super) async fn watch(conn: &mut Connection, session_id: &str) -> Result<Option<String>, End> {
    let manager = conn.front.manager.clone();
    // Another node's game: this node's mirror of it shows its screen first.
    manager.ready(session_id).await;
    let mut watch = match Watch::open(
        &manager,
        session_id,
        conn.user.as_ref(),
        conn.peer.map(|p| p.ip()),
        Transport::Ssh,
    )
    .await
    {
        Ok(watch) => watch,
        Err(e) => return Ok(Some(format!("Cannot watch: {e}."))),
    };
    let summary = watch.session().summary();
    let mut view = GameView::new(SessionRow::from_summary(&summary, SystemTime::now()));
    let mut drawing = Drawing::Undecided;
    // While a game smaller than this terminal passes through.
    let mut fence: Option<Fence> = None;
    let removed = watch.removed().clone();
    let session = std::sync::Arc::clone(watch.session());
    // The game's chat: its latest lines for `c`, the last one on the status line.
    let reads_chat = conn.user.is_some()
        || manager
            .config()
            .session_management
            .spectating
            .chat
            .anonymous_read;
    let (history, mut chat) = session.chat.join();
    let mut recent: Vec<String> = if reads_chat {
        history.iter().map(|l| talk::line_text(l)).collect()
    } else {
        Vec::new()
    };
    // What `m` or `c` came to, on the status line until the next key.
    let mut note = String::new();
    let outcome = loop {
        tokio::select! {
            delivery = watch.next() => {
                let Some(delivery) = delivery else { break None };
                if let (Drawing::Passthrough, Delivery::Frame(frame)) = (drawing, &delivery) {
                    conn.out.write(frame.data.clone()).await?;
                    match fence.as_mut().map_or(Breach::None, |f| f.check(&frame.data)) {
                        Breach::None => {}
                        Breach::StatusErased => write_status(conn, &view, &note, &recent).await?,
                        Breach::Escaped => {
                            // Redraw from the screen as it is, which the
                            // player's terminal kept within its edges.
                            watch.request_snapshot();
                            drawing = Drawing::Undecided;
                        }
                    }
                    continue;
                }
                if let Update::Ended(why) = view.apply(game_event(&delivery)) {
                    break Some(why);
                }
                match &delivery {
                    Delivery::Resize { .. } => {
                        // Redraw at the new size from a snapshot (the status
                        // line moves, and a passed-through model is stale).
                        watch.request_snapshot();
                        drawing = Drawing::Undecided;
                    }
                    Delivery::Snapshot(s) if fits(view.size(), conn.out.size) => {
                        // (Re)start the passthrough from the screen as it
                        // is, within the game's edges.
                        conn.out.forget_screen();
                        fence = Fence::around(view.size(), conn.out.size);
                        let setup = fence.as_ref().map(Fence::setup).unwrap_or_default();
                        conn.out.write([RESET, &setup, &s.data[..]].concat()).await?;
                        write_status(conn, &view, &note, &recent).await?;
                        drawing = Drawing::Passthrough;
                    }
                    Delivery::Snapshot(_) => drawing = Drawing::Cropped,
                    _ => {}
                }
                if drawing == Drawing::Cropped {
                    conn.out.draw(|f| draw_cropped(f, &mut view)).await?;
                }
            }
            item = chat.next(), if reads_chat => {
                talk::remember(&mut recent, item);
                if drawing == Drawing::Passthrough {
                    write_status(conn, &view, &note, &recent).await?;
                }
            }
            step = conn.next_key(false) => match step? {
                Step::Redraw => {
                    // This terminal changed: redraw from the screen as it is.
                    watch.request_snapshot();
                    drawing = Drawing::Undecided;
                }
                Step::Key(key) => {
                    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                        && key.code == KeyCode::Char('c');
                    if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                        break None;
                    }
                    note = match key.code {
                        KeyCode::Char('m') => talk::message(conn, &session).await?,
                        KeyCode::Char('c') if !reads_chat => {
                            "This server's chat is for logged-in spectators.".to_owned()
                        }
                        KeyCode::Char('c') => {
                            talk::chat(conn, &session, &mut recent, &mut chat).await?
                        }
                        // Anything else is the watcher's own: it never reaches the game.
                        _ => continue,
                    };
                    // Redraw what the line typed over (a cropped view whole).
                    conn.out.forget_screen();
                    watch.request_snapshot();
                    drawing = Drawing::Undecided;
                }
            },
            () = removed.cancelled() => {
                break Some("You were removed from this game's spectators.".to_owned());
            }
        }
    };
    // The game's scroll region and modes stay with the game.
    conn.out.write(RESET).await?;
    Ok(outcome)
}

/// A hub delivery as the game view reads it.
fn game_event(delivery: &Delivery) -> GameEvent<'_> {
    match delivery {
        Delivery::Snapshot(s) => GameEvent::Snapshot {
            frame_id: s.frame_id.get(),
            size: s.size,
            data: &s.data,
            reason: s.reason,
            frames_skipped: s.frames_skipped,
        },
        Delivery::Frame(f) => GameEvent::Output {
            frame_id: f.id.get(),
            data: &f.data,
        },
        Delivery::Resize { size, .. } => GameEvent::Resize { size: *size },
        Delivery::Ended { .. } => GameEvent::Ended(StreamEnd::GameOver),
    }
}

/// Below a passed-through game, when the terminal has a spare row: the
/// game's status, then `note` or the chat's last line.
async fn write_status(
    conn: &Connection,
    view: &GameView,
    note: &str,
    chat: &[String],
) -> Result<(), End> {
    let (cols, rows) = conn.out.size;
    let game = view.size();
    if rows <= game.rows {
        return Ok(());
    }
    let area = ratatui::layout::Rect::new(0, 0, cols, rows);
    let mut status = view.status_line(area).to_string();
    // What `m` or `c` came to, else the chat's last line, else the keys.
    let said = if note.is_empty() {
        chat.last().map_or("", String::as_str)
    } else {
        note
    };
    if said.is_empty() {
        status.push_str(" · q: back · m: message · c: chat");
    } else {
        status.push_str(" · ");
        status.push_str(said);
    }
    let status: String = status.chars().take(usize::from(cols)).collect();
    // Origin mode off, so that the row is the terminal's, not the game's
    // scroll region's; the cursor save restores it.
    conn.out
        .write(format!(
            "\x1b7\x1b[?6l\x1b[{};1H\x1b[0;7m{status}\x1b[K\x1b[0m\x1b8",
            game.rows + 1
        ))
        .await?;
    Ok(())
}

/// The game fits the terminal (with or without a row to spare).
fn fits(game: TermSize, (cols, rows): (u16, u16)) -> bool {
    game.cols <= cols && game.rows <= rows
}

/// A game larger than the terminal: cropped around its cursor, with a status line.
fn draw_cropped(frame: &mut ratatui::Frame, view: &mut GameView) {
    let area = frame.area();
    if let Some(cursor) = view.render_with_status(frame, area, true) {
        frame.set_cursor_position(cursor);
    }
}
