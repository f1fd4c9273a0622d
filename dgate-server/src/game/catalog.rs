//! The games a server offers: whether each can run here, and the exact command,
//! directories and environment for one player's session (`%u` is the player's
//! name, `%d` the data directory, `%%` a percent sign).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::pty::{BWRAP_PROGRAM, GameCommand, RunAs, SandboxMounts};
use crate::config::{GameConfig, Rlimits, Sandbox, TermSize};

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
        Ok(_) if game.sandbox == Sandbox::Bubblewrap && !Path::new(BWRAP_PROGRAM).exists() => {
            Some(format!(
                "its sandbox needs {BWRAP_PROGRAM} (Debian bubblewrap), which is not installed"
            ))
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
/// working directory and a HOME directory under the data directory if needed
/// (owned by the account the game runs as, when that is not the server's).
pub fn command_for(
    game: &GameConfig,
    username: &str,
    data_dir: &Path,
    size: TermSize,
    term: &str,
    run_as: Option<RunAs>,
    rlimits: &Rlimits,
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
            if let Some(run_as) = &run_as {
                hand_over(dir, data_dir, run_as)?;
            }
        }
    }
    let sandbox = match game.sandbox {
        Sandbox::None => None,
        Sandbox::Bubblewrap => Some(SandboxMounts {
            hidden: data_dir.to_owned(),
            writable: home
                .iter()
                .chain(working_directory.iter())
                .cloned()
                .chain(
                    game.writable
                        .iter()
                        .map(|w| PathBuf::from(expand(w, username, data_dir))),
                )
                .collect(),
        }),
    };
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
        run_as,
        rlimits: rlimits.clone(),
        sandbox,
    })
}

/// Makes `dir` (under `data_dir`) the game account's, and every directory
/// from `data_dir` down to it passable (never readable) by others, so that
/// the account reaches it while the rest of the data directory (the
/// database, the host key) stays the server's.
fn hand_over(dir: &Path, data_dir: &Path, run_as: &RunAs) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let owner = (
        Some(nix::unistd::Uid::from_raw(run_as.uid)),
        Some(nix::unistd::Gid::from_raw(run_as.gid)),
    );
    nix::unistd::chown(dir, owner.0, owner.1)?;
    let mut parent = dir.parent();
    while let Some(p) = parent {
        if !p.starts_with(data_dir) {
            break;
        }
        let mode = std::fs::metadata(p)?.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o001))?;
        }
        parent = p.parent();
    }
    Ok(())
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
