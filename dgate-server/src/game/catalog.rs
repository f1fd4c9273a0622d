//! The games a server offers: whether each can run here, and the exact command,
//! directories, rc file and environment for one player's session (`%u` is the
//! player's name, `%d` the data directory, `%g` the game's id, `%r` the
//! player's rc file, `%%` a percent sign).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::extra_info::{ExtraInfoFile, Format};
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

/// The values of a game's placeholders for one player.
#[derive(Debug, Clone)]
pub struct Substitutions<'a> {
    /// `%u`
    pub username: &'a str,
    /// `%d`
    pub data_dir: &'a Path,
    /// `%g`
    pub game_id: &'a str,
    /// `%r` (the game's `rc_file`, itself expanded), when it has one.
    pub rc_file: Option<PathBuf>,
}

impl<'a> Substitutions<'a> {
    /// `game`'s placeholders for `username`.
    pub fn new(game: &'a GameConfig, username: &'a str, data_dir: &'a Path) -> Self {
        let mut substitutions = Self {
            username,
            data_dir,
            game_id: &game.id,
            rc_file: None,
        };
        substitutions.rc_file = game
            .rc_file
            .as_deref()
            .map(|rc| PathBuf::from(substitutions.expand(rc)));
        substitutions
    }

    /// Replaces the placeholders in a configured value (an unknown one,
    /// which the config check refuses, is kept as written).
    pub fn expand(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('u') => out.push_str(self.username),
                Some('d') => out.push_str(&self.data_dir.to_string_lossy()),
                Some('g') => out.push_str(self.game_id),
                Some('r') if self.rc_file.is_some() => {
                    out.push_str(
                        &self
                            .rc_file
                            .as_deref()
                            .unwrap_or(Path::new(""))
                            .to_string_lossy(),
                    );
                }
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
}

/// The file `game` keeps its extra info in for `username`, if it keeps one
/// (relative paths under `data_dir`).
pub fn extra_info_file(
    game: &GameConfig,
    username: &str,
    data_dir: &Path,
) -> Option<ExtraInfoFile> {
    let substitutions = Substitutions::new(game, username, data_dir);
    let (template, format) = match (&game.extra_info_file, &game.where_file) {
        (Some(file), _) => (file, Format::Dgamelaunch),
        (None, Some(file)) => (file, Format::CrawlWhere),
        (None, None) => return None,
    };
    Some(ExtraInfoFile::new(
        data_dir.join(substitutions.expand(template)),
        format,
    ))
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
    let substitutions = Substitutions::new(game, username, data_dir);
    let expand = |template: &str| substitutions.expand(template);
    let working_directory = game
        .binary
        .working_directory
        .as_deref()
        .map(|d| PathBuf::from(expand(d)));
    let environment: Vec<(String, String)> = game
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), expand(v)))
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
    if let Some(rc) = &substitutions.rc_file {
        super::rc_files::prepare(rc, game, data_dir, run_as.as_ref())?;
    }
    let sandbox = match game.sandbox {
        Sandbox::None => None,
        Sandbox::Bubblewrap => Some(SandboxMounts {
            hidden: data_dir.to_owned(),
            writable: home
                .iter()
                .chain(working_directory.iter())
                .chain(substitutions.rc_file.iter())
                .cloned()
                .chain(game.writable.iter().map(|w| PathBuf::from(expand(w))))
                .collect(),
        }),
    };
    Ok(GameCommand {
        program: game.binary.path.clone(),
        args: game.binary.args.iter().map(|a| expand(a)).collect(),
        working_directory,
        environment,
        term: term.to_owned(),
        size,
        run_as,
        rlimits: rlimits.clone(),
        sandbox,
    })
}

/// Makes `path` the game account's (`run_as`).
pub(super) fn give_to(path: &Path, run_as: &RunAs) -> std::io::Result<()> {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(run_as.uid)),
        Some(nix::unistd::Gid::from_raw(run_as.gid)),
    )?;
    Ok(())
}

/// Makes `dir` (under `data_dir`) the game account's, and every directory
/// from `data_dir` down to it passable (never readable) by others, so that
/// the account reaches it while the rest of the data directory (the
/// database, the host key) stays the server's.
pub(super) fn hand_over(dir: &Path, data_dir: &Path, run_as: &RunAs) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    give_to(dir, run_as)?;
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
        let game: GameConfig = serde_saphyr::from_str(
            "id: nh\nname: X\nshort_name: X\nbinary: { path: /bin/true }\nrc_file: \"%d/rc/%u.%g\"\n",
        )
        .expect("game");
        let s = Substitutions::new(&game, "bob", Path::new("/srv/dgate"));
        assert_eq!(s.expand("%d/users/%u"), "/srv/dgate/users/bob");
        assert_eq!(s.expand("@%r"), "@/srv/dgate/rc/bob.nh");
        assert_eq!(s.expand("100%% %x %"), "100% %x %");
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
