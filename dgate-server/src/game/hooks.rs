//! A game's hooks (`games[].hooks`): what dgamelaunch's `commands[register]`,
//! `commands[gamestart]` and `commands[gameend]` do, run by the server
//! itself (never a shell) when a player registers, before their game starts
//! and after it ends.
//!
//! ```yaml
//! hooks:
//!   game_start:
//!     - mkdir: "%d/dumplogs/%u"
//!     - copy_if_missing: ["/etc/nethack/nethackrc", "%d/rc/%u.nethackrc"]
//!     - setenv: ["NETHACK_DUMPLOG", "%d/dumplogs/%u/%g.txt"]
//!   game_end:
//!     - exec: ["/usr/local/bin/announce-death", "%u"]
//! ```
//!
//! Paths take the game's placeholders (`%u`, `%d`, `%g`, `%r`); relative
//! ones are under `data_dir`. What a hook makes under `data_dir` is the game
//! account's. `exec` runs the program with the game's account and limits,
//! its environment and no input, for at most [`EXEC_TIMEOUT`]. A failing
//! action is logged and the next one runs: a hook never keeps a player from
//! their game.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{info, warn};

use super::catalog::{Substitutions, give_to, hand_over};
use super::pty::{RunAs, confinement};
use crate::config::{GameConfig, Rlimits};

/// How long an `exec` action may run before it is killed.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// `games[].hooks`: lists of actions for each moment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hooks {
    /// When a player registers (once per game that has them).
    pub register: Vec<HookAction>,
    /// Before the player's game starts (after their rc file is made):
    /// `setenv` adds to the game's environment.
    pub game_start: Vec<HookAction>,
    /// After the game ended.
    pub game_end: Vec<HookAction>,
}

/// One action, written `- NAME: ARGUMENTS` as dgamelaunch's commands.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HookAction {
    /// Makes a directory and its parents.
    Mkdir(String),
    /// Copies a file over another.
    Copy(String, String),
    /// Copies a file where there is none yet (dgamelaunch's `ifnxcp`).
    CopyIfMissing(String, String),
    /// Removes a file, if it is there.
    Unlink(String),
    /// Sets a variable for what follows (and, in `game_start`, the game).
    Setenv(String, String),
    /// Sets a file's mode, in octal (`"0644"`).
    Chmod(String, String),
    /// Runs a program with arguments.
    Exec(Vec<String>),
}

impl HookAction {
    fn name(&self) -> &'static str {
        match self {
            Self::Mkdir(_) => "mkdir",
            Self::Copy(..) => "copy",
            Self::CopyIfMissing(..) => "copy_if_missing",
            Self::Unlink(_) => "unlink",
            Self::Setenv(..) => "setenv",
            Self::Chmod(..) => "chmod",
            Self::Exec(_) => "exec",
        }
    }

    /// Every value that may hold placeholders.
    pub fn templates(&self) -> Vec<&str> {
        match self {
            Self::Mkdir(p) | Self::Unlink(p) => vec![p],
            Self::Copy(a, b) | Self::CopyIfMissing(a, b) | Self::Setenv(a, b) => vec![a, b],
            Self::Chmod(_, p) => vec![p],
            Self::Exec(argv) => argv.iter().map(String::as_str).collect(),
        }
    }

    /// What the config check can say before anything runs: a mode that is
    /// not octal, an empty `exec`, a source file or program (without
    /// placeholders) that does not exist.
    pub fn check(&self, data_dir: &Path) -> Result<(), String> {
        let exists = |template: &str, what: &str| {
            if template.contains('%') || data_dir.join(template).exists() {
                Ok(())
            } else {
                Err(format!(
                    "{}: no such {what} {}",
                    self.name(),
                    data_dir.join(template).display()
                ))
            }
        };
        match self {
            Self::Chmod(mode, _) if u32::from_str_radix(mode, 8).is_err() => Err(format!(
                "chmod: {mode:?} is not an octal mode such as \"0644\""
            )),
            Self::Copy(from, _) | Self::CopyIfMissing(from, _) => exists(from, "file"),
            Self::Exec(argv) => match argv.first() {
                None => Err("exec: needs a program".to_owned()),
                Some(program) => exists(program, "program"),
            },
            Self::Setenv(name, _) if name.is_empty() || name.contains(['=', '\0']) => {
                Err(format!("setenv: {name:?} is not a variable name"))
            }
            _ => Ok(()),
        }
    }
}

/// What the actions of one moment run with.
pub struct HookRun<'a> {
    pub game: &'a GameConfig,
    pub username: &'a str,
    pub data_dir: &'a Path,
    pub run_as: Option<RunAs>,
    pub rlimits: &'a Rlimits,
    /// The game's environment as configured (expanded); `setenv` adds to it.
    pub environment: Vec<(String, String)>,
}

impl HookRun<'_> {
    /// Runs `actions` in order; returns the environment with what `setenv`
    /// set.
    pub fn run(self, moment: &str, actions: &[HookAction]) -> Vec<(String, String)> {
        // Called from async code: on a multi-threaded runtime its worker is
        // handed over while an `exec` runs, so other tasks go on.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.run_all(moment, actions))
            }
            _ => self.run_all(moment, actions),
        }
    }

    fn run_all(mut self, moment: &str, actions: &[HookAction]) -> Vec<(String, String)> {
        let substitutions = Substitutions::new(self.game, self.username, self.data_dir);
        for (at, action) in actions.iter().enumerate() {
            let expand = |t: &str| substitutions.expand(t);
            if let Err(e) = self.action(action, &expand) {
                warn!(game = %self.game.id, username = %self.username, moment, action = at,
                      kind = action.name(), error = %e, "a hook failed");
            }
        }
        self.environment
    }

    fn path(&self, expanded: String) -> PathBuf {
        self.data_dir.join(expanded)
    }

    fn action(
        &mut self,
        action: &HookAction,
        expand: &dyn Fn(&str) -> String,
    ) -> Result<(), String> {
        let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
        match action {
            HookAction::Mkdir(dir) => {
                let dir = self.path(expand(dir));
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                self.give_dir(&dir)
            }
            HookAction::Copy(from, to) | HookAction::CopyIfMissing(from, to) => {
                let (from, to) = (self.path(expand(from)), self.path(expand(to)));
                if matches!(action, HookAction::CopyIfMissing(..)) && to.exists() {
                    return Ok(());
                }
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                    self.give_dir(dir)?;
                }
                std::fs::copy(&from, &to).map_err(|e| io(&from, e))?;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| io(&to, e))?;
                self.give_file(&to)
            }
            HookAction::Unlink(file) => {
                let file = self.path(expand(file));
                match std::fs::remove_file(&file) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&file, e)),
                    _ => Ok(()),
                }
            }
            HookAction::Setenv(name, value) => {
                let value = expand(value);
                self.environment.retain(|(k, _)| k != name);
                self.environment.push((name.clone(), value));
                Ok(())
            }
            HookAction::Chmod(mode, file) => {
                let mode =
                    u32::from_str_radix(mode, 8).map_err(|e| format!("mode {mode:?}: {e}"))?;
                let file = self.path(expand(file));
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io(&file, e))
            }
            HookAction::Exec(argv) => {
                let argv: Vec<String> = argv.iter().map(|a| expand(a)).collect();
                self.exec(&argv)
            }
        }
    }

    /// `dir` (under `data_dir`) the game account's.
    fn give_dir(&self, dir: &Path) -> Result<(), String> {
        match &self.run_as {
            Some(run_as) if dir.starts_with(self.data_dir) => {
                hand_over(dir, self.data_dir, run_as).map_err(|e| format!("{}: {e}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    fn give_file(&self, file: &Path) -> Result<(), String> {
        match &self.run_as {
            Some(run_as) if file.starts_with(self.data_dir) => {
                give_to(file, run_as).map_err(|e| format!("{}: {e}", file.display()))
            }
            _ => Ok(()),
        }
    }

    /// Runs `argv` as the game would run: its account, limits and
    /// environment, no input; killed past [`EXEC_TIMEOUT`].
    fn exec(&self, argv: &[String]) -> Result<(), String> {
        let program = argv.first().ok_or("exec: needs a program")?;
        let chain = confinement(self.run_as.as_ref(), self.rlimits).map_err(|e| e.to_string())?;
        let mut line: Vec<&str> = chain.iter().map(String::as_str).collect();
        line.push(program);
        let mut command = Command::new(line[0]);
        command
            .args(&line[1..])
            .args(&argv[1..])
            .env_clear()
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .current_dir(self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // Its errors to a file, read after it exits (a pipe could fill and
        // hold it up).
        let errors = tempfile::tempfile().map_err(|e| format!("{program}: {e}"))?;
        if let Ok(copy) = errors.try_clone() {
            command.stderr(copy);
        }
        let mut child = command.spawn().map_err(|e| format!("{program}: {e}"))?;
        let deadline = Instant::now() + EXEC_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => {
                    info!(game = %self.game.id, username = %self.username, %program, "hook ran");
                    return Ok(());
                }
                Ok(Some(status)) => {
                    use std::io::{Read, Seek};
                    let mut stderr = String::new();
                    let mut errors = &errors;
                    let _ = errors.rewind();
                    let _ = errors.take(1024).read_to_string(&mut stderr);
                    return Err(format!("{program}: {status}: {}", stderr.trim()));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{program}: killed after {} s",
                        EXEC_TIMEOUT.as_secs()
                    ));
                }
                Err(e) => return Err(format!("{program}: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game(hooks: &str) -> GameConfig {
        serde_saphyr::from_str(&format!(
            "id: nh\nname: NetHack\nshort_name: NH\nbinary: {{ path: /bin/true }}\nhooks:\n{hooks}"
        ))
        .expect("game")
    }

    #[test]
    fn hooks_read_as_dgamelaunchs_commands() {
        let game = game(
            "  register:\n    - mkdir: \"%d/u/%u\"\n  game_start:\n    - copy_if_missing: [a, b]\n    \
             - setenv: [X, \"%u\"]\n    - chmod: [\"0600\", b]\n    - unlink: c\n  game_end:\n    \
             - exec: [/bin/echo, \"%u\", done]\n    - copy: [b, d]\n",
        );
        assert_eq!(game.hooks.register, [HookAction::Mkdir("%d/u/%u".into())]);
        assert_eq!(
            game.hooks.game_start,
            [
                HookAction::CopyIfMissing("a".into(), "b".into()),
                HookAction::Setenv("X".into(), "%u".into()),
                HookAction::Chmod("0600".into(), "b".into()),
                HookAction::Unlink("c".into()),
            ]
        );
        assert_eq!(
            game.hooks.game_end[0],
            HookAction::Exec(vec!["/bin/echo".into(), "%u".into(), "done".into()])
        );
    }

    #[test]
    fn actions_run_in_order_and_a_failure_does_not_stop_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("template"), "OPTIONS=color\n").expect("template");
        let game = game(
            "  game_start:\n    - mkdir: \"%d/saves/%u\"\n    - copy: [missing, x]\n    \
             - copy_if_missing: [template, \"saves/%u/rc\"]\n    \
             - setenv: [SAVES, \"%d/saves/%u\"]\n    - chmod: [\"0600\", \"saves/%u/rc\"]\n    \
             - exec: [/bin/sh, -c, \"echo $SAVES > $SAVES/ran\"]\n    - unlink: nothing-here\n",
        );
        let run = HookRun {
            game: &game,
            username: "alice",
            data_dir: dir.path(),
            run_as: None,
            rlimits: &Rlimits {
                address_space: None,
                processes: None,
                file_size: None,
                cpu_seconds: None,
                core_files: true,
            },
            environment: vec![("PATH".into(), "/usr/bin:/bin".into())],
        };
        let env = run.run("game_start", &game.hooks.game_start);
        let saves = dir.path().join("saves/alice");
        assert!(env.contains(&("SAVES".into(), saves.display().to_string())));
        assert_eq!(
            std::fs::read_to_string(saves.join("rc")).expect("copied"),
            "OPTIONS=color\n"
        );
        let mode = std::fs::metadata(saves.join("rc"))
            .expect("rc")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(saves.join("ran")).expect("exec ran"),
            format!("{}\n", saves.display())
        );
    }

    #[test]
    fn the_config_check_names_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = [
            (
                HookAction::Chmod("rw".into(), "x".into()),
                "not an octal mode",
            ),
            (
                HookAction::Copy("/nonexistent/t".into(), "x".into()),
                "no such file /nonexistent/t",
            ),
            (HookAction::Exec(vec![]), "needs a program"),
            (
                HookAction::Exec(vec!["/nonexistent/p".into()]),
                "no such program",
            ),
            (
                HookAction::Setenv("A=B".into(), "x".into()),
                "not a variable name",
            ),
        ];
        for (action, message) in bad {
            let err = action.check(dir.path()).expect_err("refused");
            assert!(err.contains(message), "{err}");
        }
        HookAction::Copy("%d/t".into(), "x".into())
            .check(dir.path())
            .expect("placeholders are checked when they run");
    }
}
