//! Players' rc files (`games[].rc_file`): made the first time from the
//! game's `rc_template` or `rc_default`, handed to the account the game runs
//! as, read and saved by the options editor (`o` over SSH, `dgate options`),
//! and shown read-only on the web when the game says `rc_public`.
//!
//! A save is atomic: the new text goes to a temporary file beside the old
//! one, which a rename then replaces, so a game starting meanwhile reads
//! either the old file or the new one, never half of one.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::catalog::{Substitutions, give_to, hand_over};
use super::pty::RunAs;
use crate::config::{Config, GameConfig};

/// The largest rc file the editor saves (dgamelaunch's players keep far
/// smaller ones).
pub const MAX_RC_BYTES: usize = 64 * 1024;
/// The largest file the editor opens (an operator's template may be larger
/// than a player may save; past this it is not an rc file).
const MAX_LOAD_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RcError {
    #[error("there is no game {0:?} here")]
    NoSuchGame(String),
    #[error("{0}")]
    RunAs(String),
    #[error("{0} has no options file to edit")]
    NoRcFile(String),
    #[error("the options are {size} bytes; at most {MAX_RC_BYTES} bytes are saved")]
    TooLarge { size: usize },
    #[error("the options file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// The games whose players have an options file to edit, in config order.
pub fn editable_games(config: &Config) -> impl Iterator<Item = &GameConfig> {
    config.games.iter().filter(|g| g.rc_file.is_some())
}

/// [`load`] of `username`'s options for the game `game_id` of `config`.
pub fn load_for(config: &Config, game_id: &str, username: &str) -> Result<String, RcError> {
    let (game, run_as) = game_and_account(config, game_id)?;
    load(game, username, &config.data_dir, run_as.as_ref())
}

/// [`save`] of `username`'s options for the game `game_id` of `config`.
pub fn save_for(config: &Config, game_id: &str, username: &str, text: &str) -> Result<(), RcError> {
    let (game, run_as) = game_and_account(config, game_id)?;
    save(game, username, &config.data_dir, run_as.as_ref(), text)
}

fn game_and_account<'c>(
    config: &'c Config,
    game_id: &str,
) -> Result<(&'c GameConfig, Option<RunAs>), RcError> {
    let game = config
        .game(game_id)
        .ok_or_else(|| RcError::NoSuchGame(game_id.to_owned()))?;
    let run_as = RunAs::for_game(game, config.session_management.run_as.as_deref())
        .map_err(RcError::RunAs)?;
    Ok((game, run_as))
}

/// The path of `username`'s rc file for `game`, if the game has one.
pub fn path_for(game: &GameConfig, username: &str, data_dir: &Path) -> Option<PathBuf> {
    Substitutions::new(game, username, data_dir).rc_file
}

/// The player's rc file at `rc`, created the first time from the game's
/// template or default text (or empty): its directory made if it is under
/// `data_dir`, both the game account's.
pub fn prepare(
    rc: &Path,
    game: &GameConfig,
    data_dir: &Path,
    run_as: Option<&RunAs>,
) -> std::io::Result<()> {
    if rc.exists() {
        return Ok(());
    }
    if let Some(dir) = rc.parent().filter(|d| d.starts_with(data_dir)) {
        std::fs::create_dir_all(dir)?;
        if let Some(run_as) = run_as {
            hand_over(dir, data_dir, run_as)?;
        }
    }
    match (&game.rc_template, &game.rc_default) {
        (Some(template), _) => {
            std::fs::copy(data_dir.join(template), rc)?;
        }
        (None, Some(text)) => std::fs::write(rc, text)?,
        (None, None) => {
            std::fs::File::create(rc)?;
        }
    }
    give_to_game(rc, run_as)
}

/// The text of `username`'s rc file for `game`, made from the template
/// first if they have none yet.
pub fn load(
    game: &GameConfig,
    username: &str,
    data_dir: &Path,
    run_as: Option<&RunAs>,
) -> Result<String, RcError> {
    let rc =
        path_for(game, username, data_dir).ok_or_else(|| RcError::NoRcFile(game.name.clone()))?;
    let io = |e: std::io::Error| RcError::Io {
        path: rc.clone(),
        reason: e.to_string(),
    };
    prepare(&rc, game, data_dir, run_as).map_err(io)?;
    let size = std::fs::metadata(&rc).map_err(io)?.len();
    if size > MAX_LOAD_BYTES {
        return Err(RcError::TooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
        });
    }
    let bytes = std::fs::read(&rc).map_err(io)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Replaces `username`'s rc file for `game` with `text`, atomically.
pub fn save(
    game: &GameConfig,
    username: &str,
    data_dir: &Path,
    run_as: Option<&RunAs>,
    text: &str,
) -> Result<(), RcError> {
    if text.len() > MAX_RC_BYTES {
        return Err(RcError::TooLarge { size: text.len() });
    }
    let rc =
        path_for(game, username, data_dir).ok_or_else(|| RcError::NoRcFile(game.name.clone()))?;
    let io = |e: std::io::Error| RcError::Io {
        path: rc.clone(),
        reason: e.to_string(),
    };
    // The directory, made as the first start makes it.
    prepare(&rc, game, data_dir, run_as).map_err(io)?;
    let dir = rc.parent().unwrap_or(Path::new("/"));
    let mut temporary = tempfile::Builder::new()
        .prefix(".rc-")
        .tempfile_in(dir)
        .map_err(io)?;
    temporary.write_all(text.as_bytes()).map_err(io)?;
    temporary.as_file().sync_all().map_err(io)?;
    give_to_game(temporary.path(), run_as).map_err(io)?;
    temporary.persist(&rc).map_err(|e| io(e.error))?;
    Ok(())
}

/// Readable by the game (and the web page that shows it), the game
/// account's.
fn give_to_game(path: &Path, run_as: Option<&RunAs>) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    match run_as {
        Some(run_as) => give_to(path, run_as),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game(extra: &str) -> GameConfig {
        serde_saphyr::from_str(&format!(
            "id: nh\nname: NetHack\nshort_name: NH\nbinary: {{ path: /bin/true }}\n\
             rc_file: \"%d/rc/%g/%u.rc\"\n{extra}"
        ))
        .expect("game")
    }

    #[test]
    fn a_new_player_gets_the_default_text_then_their_saves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let game = game("rc_default: \"OPTIONS=color\\n\"\n");
        assert_eq!(
            load(&game, "alice", dir.path(), None).expect("load"),
            "OPTIONS=color\n"
        );
        save(&game, "alice", dir.path(), None, "OPTIONS=!autopickup\n").expect("save");
        assert_eq!(
            load(&game, "alice", dir.path(), None).expect("load"),
            "OPTIONS=!autopickup\n"
        );
        let path = dir.path().join("rc/nh/alice.rc");
        let mode = std::fs::metadata(&path).expect("rc").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("dir")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn an_oversize_save_is_refused_and_the_file_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let game = game("");
        save(&game, "bob", dir.path(), None, "keep me").expect("save");
        let err = save(
            &game,
            "bob",
            dir.path(),
            None,
            &"x".repeat(MAX_RC_BYTES + 1),
        )
        .expect_err("too large");
        assert!(err.to_string().contains("at most 65536 bytes"), "{err}");
        assert_eq!(
            load(&game, "bob", dir.path(), None).expect("load"),
            "keep me"
        );
    }

    #[test]
    fn a_game_without_rc_file_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let game: GameConfig = serde_saphyr::from_str(
            "id: x\nname: Plain\nshort_name: X\nbinary: { path: /bin/true }\n",
        )
        .expect("game");
        let err = load(&game, "bob", dir.path(), None).expect_err("no rc");
        assert_eq!(err.to_string(), "Plain has no options file to edit");
    }
}
