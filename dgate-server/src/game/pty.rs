//! Spawning a game in a pseudo-terminal (portable-pty), with exactly the
//! environment the configuration gives it.
//!
//! Everything here is blocking; the session runs the reader and writer on
//! threads of their own.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

use crate::config::TermSize;

/// coreutils' `env`, used to drop a variable portable-pty adds.
const ENV_PROGRAM: &str = "/usr/bin/env";

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

/// Opens a PTY of `command.size` and spawns the game as the session leader on it.
pub fn spawn(command: &GameCommand) -> anyhow::Result<GameProcess> {
    let pair = native_pty_system().openpty(pty_size(command.size))?;
    // portable-pty always sets SHELL (to the server user's login shell). Unless
    // the game's configuration sets it, `env -u SHELL` takes it out again and
    // then execs the game in place (same pid, same session).
    let configured_shell = command.environment.iter().any(|(k, _)| k == "SHELL");
    let mut cmd = if configured_shell || !Path::new(ENV_PROGRAM).exists() {
        CommandBuilder::new(&command.program)
    } else {
        let mut cmd = CommandBuilder::new(ENV_PROGRAM);
        cmd.args(["-u", "SHELL", "--"]);
        cmd.arg(&command.program);
        cmd
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
