//! The games a server offers: whether each can run here, and the exact command,
//! directories and environment for one player's session (`%u` is the player's
//! name, `%d` the data directory, `%%` a percent sign).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::pty::GameCommand;
use crate::config::{GameConfig, TermSize};

/// Why `game` cannot be started here, if it cannot.
pub fn unavailable_reason(game: &GameConfig) -> Option<String> {
    let path = &game.binary.path;
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("{} is not installed", path.display()))
        }
        Err(e) => Some(format!("{}: {e}", path.display())),
        Ok(m) if !m.is_file() => Some(format!("{} is not a file", path.display())),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            Some(format!("{} is not executable", path.display()))
        }
        Ok(_) => None,
    }
}

/// Replaces `%u`, `%d` and `%%` in a configured value.
pub fn expand(template: &str, username: &str, data_dir: &Path) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(username),
            Some('d') => out.push_str(&data_dir.to_string_lossy()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The command that runs `game` for `username` (already checked), creating its
/// working directory and a HOME directory under the data directory if needed.
pub fn command_for(
    game: &GameConfig,
    username: &str,
    data_dir: &Path,
    size: TermSize,
    term: &str,
) -> std::io::Result<GameCommand> {
    let working_directory = game
        .binary
        .working_directory
        .as_deref()
        .map(|d| PathBuf::from(expand(d, username, data_dir)));
    let environment: Vec<(String, String)> = game
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), expand(v, username, data_dir)))
        .collect();
    let home = environment
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| PathBuf::from(v));
    for dir in working_directory.iter().chain(home.iter()) {
        if dir.starts_with(data_dir) {
            std::fs::create_dir_all(dir)?;
        }
    }
    Ok(GameCommand {
        program: game.binary.path.clone(),
        args: game
            .binary
            .args
            .iter()
            .map(|a| expand(a, username, data_dir))
            .collect(),
        working_directory,
        environment,
        term: term.to_owned(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_placeholders() {
        let d = Path::new("/srv/dgate");
        assert_eq!(expand("%d/users/%u", "bob", d), "/srv/dgate/users/bob");
        assert_eq!(expand("100%% %x %", "bob", d), "100% %x %");
    }

    #[test]
    fn missing_binary_is_unavailable_with_a_reason() {
        let game: GameConfig = serde_saphyr::from_str(
            "id: x\nname: X\nshort_name: X\nbinary: { path: /nonexistent/game }\n",
        )
        .expect("valid");
        let reason = unavailable_reason(&game).expect("unavailable");
        assert!(reason.contains("/nonexistent/game"), "{reason}");
    }
}
