//! Spawning a game in a pseudo-terminal (portable-pty), with exactly the
//! environment the configuration gives it, under its resource limits and,
//! when the server runs as root, as an unprivileged account.
//!
//! Both are done by util-linux's own tools, each exec'ing the next in place
//! (one pid, one session): `prlimit` sets the limits, then `setpriv` drops
//! to the account (its uid, gid and groups, no capabilities, no new
//! privileges) and execs the game. The server's code stays free of `unsafe`.
//!
//! Everything here is blocking; the session runs the reader and writer on
//! threads of their own.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

use crate::config::{GameConfig, Rlimits, TermSize};

/// coreutils' `env`, used to drop a variable portable-pty adds.
const ENV_PROGRAM: &str = "/usr/bin/env";
/// util-linux: runs a program under resource limits.
const PRLIMIT_PROGRAM: &str = "/usr/bin/prlimit";
/// util-linux: runs a program as another user.
const SETPRIV_PROGRAM: &str = "/usr/bin/setpriv";

/// The account a game runs as when the server runs as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `spec`, "user" (with its primary group) or "user:group", looked up
    /// in the system's accounts. Root is refused.
    pub fn resolve(spec: &str) -> Result<Self, String> {
        let (user, group) = match spec.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (spec, None),
        };
        let account = nix::unistd::User::from_name(user)
            .map_err(|e| format!("run_as {spec:?}: {e}"))?
            .ok_or_else(|| format!("run_as {spec:?}: there is no user {user:?} on this system"))?;
        let gid = match group {
            None => account.gid,
            Some(group) => {
                nix::unistd::Group::from_name(group)
                    .map_err(|e| format!("run_as {spec:?}: {e}"))?
                    .ok_or_else(|| {
                        format!("run_as {spec:?}: there is no group {group:?} on this system")
                    })?
                    .gid
            }
        };
        if account.uid.is_root() || gid.as_raw() == 0 {
            return Err(format!("run_as {spec:?}: games must not run as root"));
        }
        Ok(Self {
            name: account.name,
            uid: account.uid.as_raw(),
            gid: gid.as_raw(),
        })
    }

    /// Who `game` runs as under this server: `None` when the server is not
    /// root (games run as the server's own user); an error when it is root
    /// and no account is configured.
    pub fn for_game(game: &GameConfig, default: Option<&str>) -> Result<Option<Self>, String> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let spec = game.run_as.as_deref().or(default).ok_or_else(|| {
            format!(
                "the server runs as root, so game {:?} needs an account to run as \
                 (session_management.run_as or games[].run_as)",
                game.id
            )
        })?;
        Self::resolve(spec).map(Some)
    }
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct GameCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub working_directory: Option<PathBuf>,
    /// The child's whole environment besides TERM, LINES and COLUMNS.
    pub environment: Vec<(String, String)>,
    pub term: String,
    pub size: TermSize,
    /// The account to run as (only when the server is root).
    pub run_as: Option<RunAs>,
    pub rlimits: Rlimits,
}

/// A running game and the master side of its PTY.
pub struct GameProcess {
    pub pid: Option<u32>,
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    pub master: Box<dyn MasterPty + Send>,
    pub child: Box<dyn Child + Send + Sync>,
}

pub fn pty_size(size: TermSize) -> PtySize {
    PtySize {
        rows: size.rows,
        cols: size.cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// `prlimit`'s options for `limits` (soft and hard alike).
fn prlimit_args(limits: &Rlimits) -> Vec<String> {
    let mut args = Vec::new();
    let mut set = |name: &str, value: Option<u64>| {
        if let Some(value) = value {
            args.push(format!("--{name}={value}:{value}"));
        }
    };
    set("as", limits.address_space);
    set("nproc", limits.processes);
    set("fsize", limits.file_size);
    set("cpu", limits.cpu_seconds);
    if !limits.core_files {
        set("core", Some(0));
    }
    args
}

/// Opens a PTY of `command.size` and spawns the game as the session leader on it.
pub fn spawn(command: &GameCommand) -> anyhow::Result<GameProcess> {
    let pair = native_pty_system().openpty(pty_size(command.size))?;
    // portable-pty always sets SHELL (to the server user's login shell). Unless
    // the game's configuration sets it, `env -u SHELL` takes it out again.
    // Then the limits, the account, and the game, each exec'ing the next.
    let mut chain: Vec<String> = Vec::new();
    let configured_shell = command.environment.iter().any(|(k, _)| k == "SHELL");
    if !configured_shell && Path::new(ENV_PROGRAM).exists() {
        chain.extend([ENV_PROGRAM.into(), "-u".into(), "SHELL".into(), "--".into()]);
    }
    let limits = prlimit_args(&command.rlimits);
    if !limits.is_empty() {
        if !Path::new(PRLIMIT_PROGRAM).exists() {
            anyhow::bail!("{PRLIMIT_PROGRAM} (util-linux) is needed to limit games' resources");
        }
        chain.push(PRLIMIT_PROGRAM.into());
        chain.extend(limits);
        chain.push("--".into());
    }
    if let Some(run_as) = &command.run_as {
        if !Path::new(SETPRIV_PROGRAM).exists() {
            anyhow::bail!(
                "{SETPRIV_PROGRAM} (util-linux) is needed to run games as {}",
                run_as.name
            );
        }
        chain.extend([
            SETPRIV_PROGRAM.into(),
            format!("--reuid={}", run_as.uid),
            format!("--regid={}", run_as.gid),
            "--init-groups".into(),
            "--inh-caps=-all".into(),
            "--bounding-set=-all".into(),
            "--no-new-privs".into(),
            "--".into(),
        ]);
    }
    let mut cmd = match chain.first() {
        Some(first) => {
            let mut cmd = CommandBuilder::new(first);
            cmd.args(&chain[1..]);
            cmd.arg(&command.program);
            cmd
        }
        None => CommandBuilder::new(&command.program),
    };
    cmd.args(&command.args);
    cmd.env_clear();
    for (key, value) in &command.environment {
        cmd.env(key, value);
    }
    cmd.env("TERM", &command.term);
    cmd.env("LINES", command.size.rows.to_string());
    cmd.env("COLUMNS", command.size.cols.to_string());
    if let Some(dir) = &command.working_directory {
        cmd.cwd(dir);
    }
    let child = pair.slave.spawn_command(cmd)?;
    // Only the child may hold the slave side, so that its exit ends our reads.
    drop(pair.slave);
    let reader = pair.master.try_clone_reader()?;
    let writer = pair.master.take_writer()?;
    Ok(GameProcess {
        pid: child.process_id(),
        reader,
        writer,
        master: pair.master,
        child,
    })
}
