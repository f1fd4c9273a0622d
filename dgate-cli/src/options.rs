//! `dgate options [GAME]`: your options file (rc file) for a game on the
//! server, in the options editor the SSH menu's `o` uses too. The server
//! keeps the file; the editor gets it over gRPC and saves it back.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use crossterm::event::{Event, EventStream, KeyEventKind};
use dgate_proto::pb;
use dgate_tui::options_editor::{EditorAction, OptionsEditor};
use tokio_stream::StreamExt;

use crate::connection::{Connection, describe, status, with_token};
use crate::tui::Tui;

/// Edits the options of `game` (or the one game that has them; with several,
/// asks which); returns the line to print once the terminal is restored.
pub async fn run(connection: Connection, game: Option<&str>) -> Result<String> {
    let login = connection.require_login()?;
    let mut client = connection.games();
    let games: Vec<pb::Game> = client
        .list_games(pb::ListGamesRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .games
        .into_iter()
        .filter(|g| g.has_options)
        .collect();
    let game = match game {
        Some(wanted) => games
            .iter()
            .find(|g| {
                g.id.eq_ignore_ascii_case(wanted) || g.short_name.eq_ignore_ascii_case(wanted)
            })
            .cloned()
            .with_context(|| {
                format!(
                    "this server keeps no options for a game {wanted:?}; it does for: {}",
                    names(&games)
                )
            })?,
        None => match games.as_slice() {
            [] => bail!("no game on this server has an options file"),
            [only] => only.clone(),
            several => ask(several)?,
        },
    };
    let loaded = client
        .get_game_options(with_token(
            pb::GetGameOptionsRequest {
                game_id: game.id.clone(),
            },
            Some(&login),
        ))
        .await
        .map_err(status)?
        .into_inner();
    let max_bytes = usize::try_from(loaded.max_bytes).unwrap_or(usize::MAX);
    let title = format!("{} options of {}", loaded.game_name, login.username);
    let mut editor = OptionsEditor::new(title, &loaded.text, max_bytes);
    let mut saves = 0;
    let mut tui = Tui::enter()?;
    let mut events = EventStream::new();
    loop {
        tui.draw(|frame| editor.render(frame, frame.area()))?;
        let key = match events.next().await {
            Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => key,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("reading the terminal"),
            None => break,
        };
        let action = match editor.handle_key(key) {
            EditorAction::Save(text) => {
                let saved = client
                    .save_game_options(with_token(
                        pb::SaveGameOptionsRequest {
                            game_id: game.id.clone(),
                            text,
                        },
                        Some(&login),
                    ))
                    .await;
                match saved {
                    Ok(_) => {
                        saves += 1;
                        editor.saved()
                    }
                    Err(e) => {
                        editor.not_saved(&describe(&e));
                        EditorAction::None
                    }
                }
            }
            other => other,
        };
        if action == EditorAction::Leave {
            break;
        }
    }
    drop(tui);
    Ok(if saves > 0 {
        format!(
            "Your {} options are saved; your next game uses them.",
            game.name
        )
    } else {
        format!("Your {} options are unchanged.", game.name)
    })
}

fn names(games: &[pb::Game]) -> String {
    if games.is_empty() {
        return "none".to_owned();
    }
    games
        .iter()
        .map(|g| g.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One of `games`, by the letter typed on stdin.
fn ask(games: &[pb::Game]) -> Result<pb::Game> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "Edit the options of which game?")?;
    for (letter, game) in ('a'..='z').zip(games) {
        writeln!(out, "  {letter}) {:<8} {}", game.short_name, game.name)?;
    }
    write!(out, "Which game? ")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let wanted = line.trim();
    ('a'..='z')
        .zip(games)
        .find(|(letter, game)| {
            wanted == letter.to_string()
                || game.id.eq_ignore_ascii_case(wanted)
                || game.short_name.eq_ignore_ascii_case(wanted)
        })
        .map(|(_, game)| game.clone())
        .with_context(|| format!("no game {wanted:?}; choose one of {}", names(games)))
}
