//! Playing over SSH: the game list, then the game at this terminal's size,
//! resizes passed on, until it ends; a vanished client leaves the game
//! waiting the detach grace period for its player.

use crossterm::event::KeyCode;
use dgate_tui::watch_menu::LETTERS;
use tracing::info;

use super::connection::{CLEAR, Connection, End, Event, RESET, Step};
use super::talk;
use crate::broadcast::Delivery;
use crate::config::TermSize;
use crate::viewing::{Play, Transport, start_or_resume};

/// The games on offer; logged in, a letter starts (or resumes) one.
pub(super) async fn games(conn: &mut Connection, can_play: bool) -> Result<(), End> {
    let games: Vec<_> = conn.front.manager.games();
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
        conn.out.write(text).await?;
        let Step::Key(key) = conn.next_key(true).await? else {
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
                    play(conn, &id).await?;
                    return Ok(());
                }
            }
            _ => {}
        }
    }
}

/// Plays `game_id` at this terminal's size (resuming the player's session
/// of it if there is one) until the game ends. The player's life (lease,
/// input, detach timer) is [`crate::viewing::Play`]'s; this only relays.
pub(super) async fn play(conn: &mut Connection, game_id: &str) -> Result<(), End> {
    let Some(user) = conn.user.clone() else {
        return Ok(());
    };
    let manager = conn.front.manager.clone();
    let (cols, rows) = conn.out.size;
    let size = manager.check_size(TermSize::new(cols, rows)).ok();
    let (session, resumed) = match start_or_resume(&manager, &user, game_id, size) {
        Ok(started) => started,
        Err(e) => {
            conn.message = Some(format!("Cannot start the game: {e}."));
            return Ok(());
        }
    };
    let mut play = match Play::attach(&manager, session, &user, Transport::Ssh) {
        Ok(play) => play,
        Err(e) => {
            conn.message = Some(format!("Cannot play the game: {e}."));
            return Ok(());
        }
    };
    if resumed && let Some(size) = size {
        let _ = play.input().resize(size);
    }
    conn.typed.clear();
    conn.out.forget_screen();
    info!(session_id = %play.session().info.id, username = %user.username, resumed, "playing over SSH");
    let taken_over = play.taken_over().clone();
    let mut notices = play.session().notices();
    let mut heard: Vec<String> = Vec::new();
    // A chat answer to show once the game is redrawn.
    let mut note: Option<String> = None;
    let outcome = loop {
        tokio::select! {
            delivery = play.next() => {
                let Some(delivery) = delivery else { break None };
                match &delivery {
                    Delivery::Snapshot(s) => {
                        conn.out.write([RESET, &s.data[..]].concat()).await?;
                        if let Some(note) = note.take() {
                            conn.out.write(talk::over_bottom_row(conn.out.size, &note)).await?;
                        }
                    }
                    Delivery::Frame(frame) => conn.out.write(frame.data.clone()).await?,
                    Delivery::Resize { .. } => {}
                    Delivery::Ended { .. } => break Some("The game has ended.".to_owned()),
                }
            }
            event = conn.events.recv() => match event {
                Some(Event::Input(bytes)) => {
                    // Ctrl+] is the player's escape to the menu (detach, chat).
                    let at = bytes.iter().position(|b| *b == talk::ESCAPE).unwrap_or(bytes.len());
                    if at > 0 && play.input().send(bytes.slice(..at)).await.is_err() {
                        break Some("The game has ended.".to_owned());
                    }
                    if at < bytes.len() {
                        conn.queue_keys(&bytes[at + 1..]);
                        match talk::player_menu(conn, play.session()).await? {
                            talk::Choice::Detach => {
                                break Some(
                                    "Detached: the game waits for you; p and its letter resume it."
                                        .to_owned(),
                                );
                            }
                            talk::Choice::Back(said) => {
                                note = (!said.is_empty()).then_some(said);
                                play.request_snapshot();
                            }
                        }
                    }
                }
                Some(Event::Resize(cols, rows)) => {
                    conn.out.resize(cols, rows);
                    // Too large for the server's limit: the game keeps its size.
                    let _ = play.input().resize(TermSize::new(cols, rows));
                }
                Some(Event::Pty { .. } | Event::Shell) => {}
                Some(Event::Closed) | None => return Err(End::Gone),
            },
            notice = notices.next() => {
                let line = notice.line();
                // At once on a row below the game, if the terminal has one;
                // in any case when the player is back in the menu.
                if conn.out.size.1 > play.session().hub.size().rows {
                    conn.out.write(talk::over_bottom_row(conn.out.size, &line)).await?;
                }
                heard.push(line);
            }
            () = taken_over.cancelled() => {
                break Some("Another connection of yours took over this game.".to_owned());
            }
        }
    };
    drop(play);
    conn.out.forget_screen();
    conn.message = match (outcome, heard.is_empty()) {
        (outcome, true) => outcome,
        (outcome, false) => Some(format!(
            "{}Messages while you played:\r\n  {}",
            outcome.map(|o| format!("{o}\r\n")).unwrap_or_default(),
            heard.join("\r\n  ")
        )),
    };
    Ok(())
}
