//! `dgate play GAME`: starts your session of GAME (or resumes the one you
//! already have) and connects your terminal to it like ssh would: the game's
//! output straight to the terminal in raw mode, your keystrokes to the game,
//! your window size and its changes as resizes. The terminal is restored on
//! every way out: game over, detach (Ctrl+] d), server gone, SIGTERM, panic.
//!
//! Ctrl+] is the escape, as telnet's: it opens a one-line menu on the bottom
//! row (`d` detaches, `c` says a line in the game's chat, anything else goes
//! back to the game), and the game's screen is redrawn from the client's own
//! copy of it when the menu closes.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use dgate_proto::pb;
use dgate_proto::pb::game_io_request::Request;
use dgate_proto::pb::game_io_response::Response;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use dgate_term::{ScreenModel, TermSize};

use crate::connection::{Connection, describe, status, with_token};
use crate::tokens::Saved;

/// Ctrl+]: the escape to the menu (detach, chat), as telnet's.
const ESCAPE: u8 = 0x1d;
/// The longest chat line (the server's limit).
const CHAT_CHARS: usize = 200;

/// Where the keys go.
#[derive(Debug)]
enum Keys {
    /// To the game.
    Game,
    /// Ctrl+] was pressed: the next key picks.
    Menu,
    /// Typing a line for the chat.
    Chat(String),
}

/// Reset the terminal, then draw: a snapshot is the screen as seen from a reset terminal.
const RESET: &[u8] = b"\x1bc";

/// Plays `game`; returns the line to print once the terminal is restored.
pub async fn run(connection: Connection, game: &str) -> Result<String> {
    let login = connection.require_login()?;
    let mut client = connection.games();
    let game = find_game(&mut client, game).await?;
    let (cols, rows) = crossterm::terminal::size().context("this command needs a terminal")?;
    let size = pb::TerminalSize {
        width: u32::from(cols),
        height: u32::from(rows),
    };
    let start = pb::StartGameSessionRequest {
        game_id: game.id.clone(),
        terminal_size: Some(size),
        ..Default::default()
    };
    let (session_id, resumed) = match client
        .start_game_session(with_token(start, Some(&login)))
        .await
    {
        Ok(response) => (
            response
                .into_inner()
                .session
                .context("the server started no session")?
                .id,
            false,
        ),
        Err(e) if e.code() == tonic::Code::AlreadyExists => {
            (find_own_session(&mut client, &game.id, &login).await?, true)
        }
        Err(e) => return Err(status(e)),
    };

    let (requests, queue) = mpsc::channel(64);
    let connect = Request::Connect(pb::ConnectPtyRequest {
        session_id: session_id.clone(),
        terminal_size: Some(size),
        term_type: std::env::var("TERM").unwrap_or_default(),
        ..Default::default()
    });
    send(&requests, connect).await?;
    // A resumed game may have been left at another size.
    send(
        &requests,
        Request::Resize(pb::PtyResize { size: Some(size) }),
    )
    .await?;
    let mut stream = client
        .stream_game_io(with_token(ReceiverStream::new(queue), Some(&login)))
        .await
        .map_err(status)?
        .into_inner();

    eprintln!(
        "{} {} on {} (Ctrl+] then d detaches and the game waits for you; Ctrl+] then c chats).\r",
        if resumed { "Resuming" } else { "Starting" },
        game.name,
        connection.url
    );
    let mut raw = RawMode::enter()?;
    let mut keys = spawn_stdin_reader();
    let mut window = signal(SignalKind::window_change()).context("SIGWINCH handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut out = std::io::stdout();
    let mut notices: Vec<String> = Vec::new();
    let mut keys_go = Keys::Game;
    let outcome = loop {
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(message)) => match message.response {
                    Some(Response::Output(output)) => {
                        raw.screen.process(&output.data);
                        write(&mut out, &[&output.data])?;
                    }
                    Some(Response::Snapshot(snapshot)) => {
                        raw.screen = ScreenModel::new(raw.screen.size());
                        raw.screen.process(&snapshot.data);
                        write(&mut out, &[RESET, &snapshot.data])?;
                    }
                    Some(Response::Event(event)) => match event.r#type() {
                        pb::PtyEventType::ProcessExit => break game_over(&game.name, &event),
                        pb::PtyEventType::ServerShutdown => {
                            break "The server is shutting down; your game was saved if the game saves on hangup.".to_owned()
                        }
                        _ => {}
                    },
                    Some(Response::Notice(notice)) => {
                        let line = notice_line(&notice);
                        // On a row the game does not use, at once; else
                        // when the player leaves the game.
                        let (_, rows) = crossterm::terminal::size().unwrap_or((0, 0));
                        if rows > raw.screen.size().rows {
                            write(&mut out, &[spare_row(rows, &line).as_bytes()])?;
                        }
                        notices.push(line);
                    }
                    // The server's answer to the player's own line (a
                    // command's result): over the bottom row for now, and
                    // again when the player leaves.
                    Some(Response::Chat(line)) if line.answer => {
                        let text: String = line.text.chars().filter(|c| !c.is_control()).collect();
                        let (_, rows) = crossterm::terminal::size().unwrap_or((0, raw.screen.size().rows));
                        write(&mut out, &[spare_row(rows, &format!("» {text}")).as_bytes()])?;
                        notices.push(format!("» {text}"));
                    }
                    // The game's chat, live, on a row the game does not use.
                    Some(Response::Chat(line)) if !line.history => {
                        let (_, rows) = crossterm::terminal::size().unwrap_or((0, 0));
                        if rows > raw.screen.size().rows {
                            let text = notice_line(&pb::PlayerNotice {
                                sender: line.sender,
                                text: line.text,
                                ..Default::default()
                            });
                            write(&mut out, &[spare_row(rows, &text).as_bytes()])?;
                        }
                    }
                    Some(Response::Disconnected(d)) => break format!("Disconnected: {}", d.reason),
                    Some(Response::Connected(_) | Response::Chat(_) | Response::Audience(_)) | None => {}
                },
                Ok(None) => break "The server closed the connection.".to_owned(),
                Err(e) => break format!("Connection lost: {}", describe(&e)),
            },
            typed = keys.recv() => match typed {
                Some(bytes) => {
                    let mut rest: &[u8] = &bytes;
                    let mut detach = false;
                    while !rest.is_empty() && !detach {
                        match &mut keys_go {
                            Keys::Game => {
                                let at = rest.iter().position(|b| *b == ESCAPE).unwrap_or(rest.len());
                                if at > 0 {
                                    input(&requests, &session_id, rest[..at].to_vec()).await?;
                                }
                                if at < rest.len() {
                                    keys_go = Keys::Menu;
                                    write(&mut out, &[bottom_row(&raw, MENU).as_bytes()])?;
                                    rest = &rest[at + 1..];
                                } else {
                                    rest = &[];
                                }
                            }
                            Keys::Menu => {
                                match rest[0] {
                                    b'd' | b'D' => detach = true,
                                    b'c' | b'C' => {
                                        keys_go = Keys::Chat(String::new());
                                        write(&mut out, &[bottom_row(&raw, CHAT_PROMPT).as_bytes()])?;
                                    }
                                    _ => {
                                        keys_go = Keys::Game;
                                        write(&mut out, &[RESET, &raw.screen.snapshot()])?;
                                    }
                                }
                                // A key in the menu (an escape sequence whole) is the menu's.
                                rest = if rest[0] == 0x1b { &[] } else { &rest[1..] };
                            }
                            Keys::Chat(text) => {
                                let (taken, done) = chat_keys(text, rest);
                                rest = &rest[taken..];
                                if let Some(said) = done {
                                    if let Some(line) = said {
                                        send(&requests, Request::Chat(pb::ChatSend { text: line })).await?;
                                    }
                                    keys_go = Keys::Game;
                                    write(&mut out, &[RESET, &raw.screen.snapshot()])?;
                                } else {
                                    let prompt = format!("{CHAT_PROMPT}{text}");
                                    write(&mut out, &[bottom_row(&raw, &prompt).as_bytes()])?;
                                }
                            }
                        }
                    }
                    if detach {
                        let _ = send(&requests, Request::Disconnect(pb::DisconnectPtyRequest {
                            session_id: session_id.clone(),
                            reason: "detached".to_owned(),
                        })).await;
                        break format!("Detached. `dgate play {}` resumes the game.", game.id);
                    }
                }
                None => break "The terminal closed.".to_owned(),
            },
            _ = window.recv() => {
                if let Ok((cols, rows)) = crossterm::terminal::size() {
                    let size = pb::TerminalSize { width: u32::from(cols), height: u32::from(rows) };
                    send(&requests, Request::Resize(pb::PtyResize { size: Some(size) })).await?;
                }
            }
            _ = terminate.recv() => break "Terminated; the game keeps running for you to resume.".to_owned(),
            _ = hangup.recv() => break "Hung up; the game keeps running for you to resume.".to_owned(),
        }
    };
    drop(raw);
    tracing::info!(%session_id, %outcome, "play ended");
    if notices.is_empty() {
        return Ok(outcome);
    }
    Ok(format!(
        "{outcome}\nMessages while you played:\n  {}",
        notices.join("\n  ")
    ))
}

/// The escape menu's line.
const MENU: &str =
    "Ctrl+]  d: detach (the game waits for you) · c: chat · any other key: back to the game";
/// The chat's typing line.
const CHAT_PROMPT: &str = "Chat (Enter says it, Esc goes back): ";

/// `line` on the terminal's bottom row, over the game, the cursor after it.
fn bottom_row(raw: &RawMode, line: &str) -> String {
    let (cols, rows) = crossterm::terminal::size().unwrap_or((80, raw.screen.size().rows));
    let shown: String = line
        .chars()
        .take(usize::from(cols.saturating_sub(1)))
        .collect();
    format!("\x1b[{rows};1H\x1b[0m\x1b[2K\x1b[7m{shown}\x1b[0m")
}

/// Applies typed `bytes` to the chat line `text`: how many bytes it took,
/// and `Some` when the line is done (`Some(Some(line))` to say it,
/// `Some(None)` when Esc gave it up).
fn chat_keys(text: &mut String, bytes: &[u8]) -> (usize, Option<Option<String>>) {
    let typed = String::from_utf8_lossy(bytes);
    let mut taken = 0;
    for c in typed.chars() {
        taken += c.len_utf8();
        match c {
            '\r' | '\n' => {
                let line = std::mem::take(text);
                let line = (!line.trim().is_empty()).then_some(line);
                return (taken.min(bytes.len()), Some(line));
            }
            // Esc (and an escape sequence's start) gives the line up.
            '\u{1b}' => return (bytes.len(), Some(None)),
            '\u{7f}' | '\u{8}' => {
                text.pop();
            }
            c if !c.is_control() && text.chars().count() < CHAT_CHARS => text.push(c),
            _ => {}
        }
    }
    (bytes.len(), None)
}

/// A message to the player as one line of text, without a server's control
/// characters.
fn notice_line(notice: &pb::PlayerNotice) -> String {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    if notice.announcement || notice.sender.is_empty() {
        format!("Announcement: {}", clean(&notice.text))
    } else {
        format!("{}: {}", clean(&notice.sender), clean(&notice.text))
    }
}

/// Draws `line` on the terminal's last row (`rows`), below the game, and
/// puts the cursor and attributes back where the game left them.
fn spare_row(rows: u16, line: &str) -> String {
    format!("\x1b7\x1b[{rows};1H\x1b[0m\x1b[2K\x1b[7m{line}\x1b[0m\x1b8")
}

async fn find_game(
    client: &mut pb::game_service_client::GameServiceClient<tonic::transport::Channel>,
    wanted: &str,
) -> Result<pb::Game> {
    let games = client
        .list_games(pb::ListGamesRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .games;
    let Some(game) = games
        .iter()
        .find(|g| g.id.eq_ignore_ascii_case(wanted) || g.short_name.eq_ignore_ascii_case(wanted))
    else {
        let ids: Vec<&str> = games.iter().map(|g| g.id.as_str()).collect();
        bail!(
            "this server has no game {wanted:?}; it has: {}",
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        );
    };
    if !game.available {
        bail!("{} is unavailable: {}", game.name, game.unavailable_reason);
    }
    Ok(game.clone())
}

/// The session of `game_id` that `login` already has.
async fn find_own_session(
    client: &mut pb::game_service_client::GameServiceClient<tonic::transport::Channel>,
    game_id: &str,
    login: &Saved,
) -> Result<String> {
    let request = pb::ListGameSessionsRequest {
        game_id: game_id.to_owned(),
        ..Default::default()
    };
    let sessions = client
        .list_game_sessions(request)
        .await
        .map_err(status)?
        .into_inner()
        .sessions;
    sessions
        .into_iter()
        .find(|s| s.username.eq_ignore_ascii_case(&login.username))
        .map(|s| s.id)
        .context("you already have a session of this game, but it has just ended; try again")
}

fn game_over(name: &str, event: &pb::PtyEvent) -> String {
    if !event.signal.is_empty() {
        format!("{name} ended ({}).", event.signal)
    } else if event.exit_code != 0 {
        format!("{name} ended with exit code {}.", event.exit_code)
    } else {
        format!("{name} ended.")
    }
}

async fn send(requests: &mpsc::Sender<pb::GameIoRequest>, request: Request) -> Result<()> {
    requests
        .send(pb::GameIoRequest {
            request: Some(request),
        })
        .await
        .context("the connection to the server closed")
}

async fn input(
    requests: &mpsc::Sender<pb::GameIoRequest>,
    session_id: &str,
    data: Vec<u8>,
) -> Result<()> {
    let input = Request::Input(pb::PtyInput {
        session_id: session_id.to_owned(),
        data: data.into(),
    });
    send(requests, input).await
}

fn write(out: &mut std::io::Stdout, parts: &[&[u8]]) -> Result<()> {
    let mut out = out.lock();
    for part in parts {
        out.write_all(part).context("writing to the terminal")?;
    }
    out.flush().context("writing to the terminal")
}

/// Keystrokes as they are typed, read on a thread of their own (a blocking
/// read of stdin cannot be cancelled; the thread ends with the process).
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// The terminal in raw mode; dropping it (also while unwinding from a panic)
/// restores the mode and undoes what the game left on.
struct RawMode {
    /// What the game has drawn, to know which modes to undo.
    screen: ScreenModel,
}

impl RawMode {
    fn enter() -> Result<Self> {
        crossterm::terminal::enable_raw_mode().context("raw mode (is this a terminal?)")?;
        Ok(Self {
            screen: ScreenModel::new(TermSize::new(80, 24)),
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
        let screen = self.screen.screen();
        let mut undo = Vec::new();
        if screen.alternate_screen() {
            undo.extend_from_slice(b"\x1b[?1049l");
        }
        if screen.application_cursor() || screen.application_keypad() {
            undo.extend_from_slice(b"\x1b[?1l\x1b>");
        }
        if screen.bracketed_paste() {
            undo.extend_from_slice(b"\x1b[?2004l");
        }
        if screen.mouse().tracking != 0 {
            undo.extend_from_slice(b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l");
        }
        // Plain attributes, a visible cursor, a fresh line for the message.
        undo.extend_from_slice(b"\x1b[0m\x1b[?25h\r\n");
        let mut out = std::io::stdout();
        let _ = out.write_all(&undo);
        let _ = out.flush();
    }
}
