//! `o` in the SSH menu: the player's options file for a game, in the options
//! editor dgate-tui shares with `dgate options`. With several such games the
//! player first picks one by letter.

use crossterm::event::KeyCode;
use dgate_tui::options_editor::{EditorAction, OptionsEditor};
use dgate_tui::watch_menu::LETTERS;
use tracing::info;

use super::connection::{CLEAR, Connection, End, Step};
use crate::game::rc_files::{self, MAX_RC_BYTES};

pub(super) async fn edit(conn: &mut Connection) -> Result<(), End> {
    let Some(user) = conn.user.clone() else {
        return Ok(());
    };
    let config = conn.front.manager.config().clone();
    let games: Vec<_> = rc_files::editable_games(&config).collect();
    let game = match games.as_slice() {
        [] => {
            conn.message = Some("No game here has an options file to edit.".into());
            return Ok(());
        }
        [only] => *only,
        several => match pick(conn, several).await? {
            Some(game) => game,
            None => return Ok(()),
        },
    };
    let text = match rc_files::load_for(&config, &game.id, &user.username) {
        Ok(text) => text,
        Err(e) => {
            conn.message = Some(format!("Cannot open your options: {e}."));
            return Ok(());
        }
    };
    let title = format!("{} options of {}", game.name, user.username);
    let mut editor = OptionsEditor::new(title, &text, MAX_RC_BYTES);
    conn.typed.clear();
    let mut saves = 0;
    loop {
        let screen = conn.out.paint(|f| editor.render(f, f.area()))?;
        conn.out.write(screen).await?;
        let Step::Key(key) = conn.next_key(true).await? else {
            continue;
        };
        let action = match editor.handle_key(key) {
            EditorAction::Save(text) => {
                match rc_files::save_for(&config, &game.id, &user.username, &text) {
                    Ok(()) => {
                        saves += 1;
                        info!(username = %user.username, game = %game.id, bytes = text.len(),
                              "options saved over SSH");
                        editor.saved()
                    }
                    Err(e) => {
                        editor.not_saved(&e.to_string());
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
    conn.out.forget_screen();
    conn.message = Some(if saves > 0 {
        format!(
            "Your {} options are saved; your next game uses them.",
            game.name
        )
    } else {
        format!("Your {} options are unchanged.", game.name)
    });
    Ok(())
}

/// One of `games` by its letter; `None` when the player goes back.
async fn pick<'g>(
    conn: &mut Connection,
    games: &[&'g crate::config::GameConfig],
) -> Result<Option<&'g crate::config::GameConfig>, End> {
    loop {
        let mut text = format!("{CLEAR}Edit the options of which game?\r\n\r\n");
        for (letter, game) in LETTERS.iter().zip(games) {
            text.push_str(&format!(
                "  {}) {:<8} {}\r\n",
                char::from(*letter),
                game.short_name,
                game.name
            ));
        }
        text.push_str("\r\nWhich game? (q goes back) => ");
        conn.out.write(text).await?;
        let Step::Key(key) = conn.next_key(true).await? else {
            continue;
        };
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(None),
            KeyCode::Char(c) => {
                let chosen = LETTERS
                    .iter()
                    .position(|l| char::from(*l) == c)
                    .and_then(|at| games.get(at));
                if let Some(game) = chosen {
                    return Ok(Some(*game));
                }
            }
            _ => {}
        }
    }
}
