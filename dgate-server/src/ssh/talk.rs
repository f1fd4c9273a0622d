//! Talking while watching over SSH: `m` types one line to the player (their
//! mail spool and dgate's player views), `c` opens the game's chat over the
//! bottom of the screen, its latest lines above a line to type.
//!
//! Both take the bottom rows of the terminal for as long as they are open;
//! the game is not drawn meanwhile, and the watch redraws it from a
//! snapshot when they close, so it is never left corrupted.

use crossterm::event::{KeyCode, KeyModifiers};

use super::connection::{Connection, End, Step};
use crate::broadcast::chat::{ChatItem, ChatLine, ChatReceiver};
use crate::game::Session;
use crate::game::messages;
use crate::viewing::chat::{self, Said};

/// Chat lines shown above the typing line, at most.
const CHAT_ROWS: u16 = 8;
/// Ctrl+]: the player's escape to the menu, as telnet's.
pub(super) const ESCAPE: u8 = 0x1d;

/// What the player picked in the Ctrl+] menu.
pub(super) enum Choice {
    /// Leave the game waiting for them.
    Detach,
    /// Back to the game; what to show (a chat answer), if anything.
    Back(String),
}

/// The player's Ctrl+] menu on the bottom row: `d` detaches, `c` says a
/// line in the game's chat (the player's commands included), any other key
/// goes back.
pub(super) async fn player_menu(conn: &mut Connection, session: &Session) -> Result<Choice, End> {
    let menu = "Ctrl+]  d: detach (the game waits for you) · c: chat · any other key: back";
    conn.out.write(over_bottom_row(conn.out.size, menu)).await?;
    let key = loop {
        if let Step::Key(key) = conn.next_key(false).await? {
            break key;
        }
    };
    match key.code {
        KeyCode::Char('d' | 'D') => Ok(Choice::Detach),
        KeyCode::Char('c' | 'C') => {
            let title = "Chat (Enter says it, Esc goes back): ";
            let Some(text) = read_line(conn, title, chat::MAX_CHARS, None).await? else {
                return Ok(Choice::Back(String::new()));
            };
            let manager = conn.front.manager.clone();
            Ok(Choice::Back(
                match chat::say(&manager, session, conn.user.as_ref(), &text).await {
                    Ok(Said::Posted) => String::new(),
                    Ok(Said::Answer(answer)) => format!("» {answer}"),
                    Err(e) => format!("» Not said: {e}."),
                },
            ))
        }
        _ => Ok(Choice::Back(String::new())),
    }
}

/// `line` over the terminal's bottom row (of `size`), the cursor and
/// attributes kept.
pub(super) fn over_bottom_row((cols, rows): (u16, u16), line: &str) -> String {
    let shown: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(usize::from(cols.saturating_sub(1)))
        .collect();
    format!("\x1b7\x1b[{rows};1H\x1b[0m\x1b[2K\x1b[7m{shown}\x1b[0m\x1b8")
}

/// `m`: asks for a line and sends it to `session`'s player; what to show
/// after (sent, or why not).
pub(super) async fn message(conn: &mut Connection, session: &Session) -> Result<String, End> {
    let Some(user) = conn.user.clone() else {
        return Ok("Log in (l in the main menu) to send messages to players.".to_owned());
    };
    let title = format!(
        "Message to {} (Enter sends, Esc cancels): ",
        session.info.username
    );
    let Some(text) = read_line(conn, &title, messages::MAX_CHARS, None).await? else {
        return Ok(String::new());
    };
    let manager = conn.front.manager.clone();
    Ok(
        match messages::send(&manager, &session.info.id, &user, &text).await {
            Ok(_) => format!("Sent to {}.", session.info.username),
            Err(e) => format!("Not sent: {e}."),
        },
    )
}

/// `c`: the chat over the bottom rows, until Esc or a line said; what to
/// show after.
pub(super) async fn chat(
    conn: &mut Connection,
    session: &Session,
    recent: &mut Vec<String>,
    receiver: &mut ChatReceiver,
) -> Result<String, End> {
    let title = if conn.user.is_some() {
        "Chat (Enter says it, Esc closes): "
    } else {
        "Chat (anonymous spectators read; Esc closes) "
    };
    let max = if conn.user.is_some() {
        chat::MAX_CHARS
    } else {
        0
    };
    let Some(text) = read_line(conn, title, max, Some((recent, receiver))).await? else {
        return Ok(String::new());
    };
    let manager = conn.front.manager.clone();
    Ok(
        match chat::say(&manager, session, conn.user.as_ref(), &text).await {
            Ok(Said::Posted) => String::new(),
            Ok(Said::Answer(answer)) => answer,
            Err(e) => format!("Not said: {e}."),
        },
    )
}

/// A chat line as the overlay and status line show it.
pub(super) fn line_text(line: &ChatLine) -> String {
    let admin = if line.from_admin { " [admin]" } else { "" };
    format!("{}{admin}: {}", line.sender, line.text)
}

/// Adds what `item` says to `recent` (the latest lines, at most a screenful).
pub(super) fn remember(recent: &mut Vec<String>, item: ChatItem) {
    match item {
        ChatItem::Line(line) => recent.push(line_text(&line)),
        ChatItem::Skipped(lines) => recent.extend(lines.iter().map(|l| line_text(l))),
    }
    let keep = usize::from(CHAT_ROWS) * 4;
    if recent.len() > keep {
        recent.drain(..recent.len() - keep);
    }
}

/// A line typed on the terminal's bottom row (the chat's lines above it,
/// kept up to date, when given); `None` when Esc or Ctrl+C cancels it.
async fn read_line(
    conn: &mut Connection,
    title: &str,
    max: usize,
    mut chat: Option<(&mut Vec<String>, &mut ChatReceiver)>,
) -> Result<Option<String>, End> {
    let mut text = String::new();
    loop {
        draw(
            conn,
            title,
            &text,
            chat.as_ref().map(|(recent, _)| recent.as_slice()),
        )
        .await?;
        let step = match chat.as_mut() {
            Some((recent, receiver)) => {
                tokio::select! {
                    step = conn.next_key(false) => step?,
                    item = receiver.next() => {
                        remember(recent, item);
                        continue;
                    }
                }
            }
            None => conn.next_key(false).await?,
        };
        let Step::Key(key) = step else { continue };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return Ok(None),
            KeyCode::Char('c') if ctrl => return Ok(None),
            KeyCode::Enter if !text.trim().is_empty() => return Ok(Some(text)),
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !ctrl && text.chars().count() < max => text.push(c),
            _ => {}
        }
    }
}

/// The chat lines (if any) and the typing line over the bottom rows.
async fn draw(
    conn: &Connection,
    title: &str,
    text: &str,
    recent: Option<&[String]>,
) -> Result<(), End> {
    let (cols, rows) = conn.out.size;
    let width = usize::from(cols);
    let fit = |s: &str| {
        s.chars()
            .filter(|c| !c.is_control())
            .take(width)
            .collect::<String>()
    };
    // Origin mode and the scroll region off: these rows are the terminal's.
    let mut out = String::from("\x1b[?6l\x1b[r");
    if let Some(recent) = recent {
        let shown = CHAT_ROWS.min(rows.saturating_sub(2));
        let top = rows.saturating_sub(shown + 1).max(1);
        out.push_str(&format!(
            "\x1b[{top};1H\x1b[0;7m{:<width$}\x1b[0m",
            fit(" Chat ")
        ));
        let skip = recent
            .len()
            .saturating_sub(usize::from(shown.saturating_sub(1)));
        let lines: Vec<&String> = recent.iter().skip(skip).collect();
        for row in 1..shown {
            let line = lines.get(usize::from(row - 1)).map_or("", |l| l.as_str());
            out.push_str(&format!("\x1b[{};1H\x1b[2K{}", top + row, fit(line)));
        }
    }
    let typed = fit(&format!("{title}{text}"));
    out.push_str(&format!(
        "\x1b[{rows};1H\x1b[2K\x1b[1m{typed}\x1b[0m\x1b[?25h"
    ));
    conn.out.write(out).await?;
    Ok(())
}
