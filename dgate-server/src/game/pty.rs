//! Spawning a game in a pseudo-terminal (portable-pty), with exactly the
//! environment the configuration gives it, under its resource limits and,
//! when the server runs as root, as an unprivileged account.
//!
//! Both are done by util-linux's own tools, each exec'ing the next in place
//! (one pid, one session): `prlimit` sets the limits, then `setpriv` drops
//! to the account (its uid, gid and groups, no capabilities, no new
//! privileges) and, for a game with `sandbox: bubblewrap`, bubblewrap
//! (unprivileged, in a user namespace) puts it in its own mount, PID,
//! network and IPC namespaces and execs the game. The server's code stays
//! free of `unsafe`.
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
/// bubblewrap: runs a program in a sandbox of its own mounts and namespaces.
pub const BWRAP_PROGRAM: &str = "/usr/bin/bwrap";

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
    /// Run in a bubblewrap sandbox (`games[].sandbox`).
    pub sandbox: Option<SandboxMounts>,
}

/// What a sandboxed game sees besides the read-only system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxMounts {
    /// Hidden behind an empty tmpfs (the data directory: other players'
    /// homes, the database, the host key).
    pub hidden: PathBuf,
    /// Bound writable, in this order (those under `hidden` show through).
    pub writable: Vec<PathBuf>,
}

impl SandboxMounts {
    /// bubblewrap's arguments, up to the game (which `env` starts with
    /// SIGHUP's default handling).
    fn bwrap_args(&self, working_directory: Option<&Path>) -> Vec<String> {
        let mut args: Vec<String> = [
            BWRAP_PROGRAM,
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/var/tmp",
            "--tmpfs",
            "/dev/shm",
            "--unshare-all",
            "--die-with-parent",
        ]
        .map(String::from)
        .to_vec();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        args.extend(["--tmpfs".into(), path(&self.hidden)]);
        for dir in &self.writable {
            args.extend(["--bind".into(), path(dir), path(dir)]);
        }
        if let Some(dir) = working_directory {
            args.extend(["--chdir".into(), path(dir)]);
        }
        // The game hangs up as it would outside (bwrap itself ignores SIGHUP).
        args.extend([
            "--".into(),
            ENV_PROGRAM.into(),
            "--default-signal=HUP".into(),
            "--".into(),
        ]);
        args
    }
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

/// The programs (and their options) that put what follows them under
/// `rlimits` and, if given, run it as `run_as`: a prefix for a command line.
pub fn confinement(run_as: Option<&RunAs>, rlimits: &Rlimits) -> anyhow::Result<Vec<String>> {
    let mut chain = Vec::new();
    let limits = prlimit_args(rlimits);
    if !limits.is_empty() {
        if !Path::new(PRLIMIT_PROGRAM).exists() {
            anyhow::bail!("{PRLIMIT_PROGRAM} (util-linux) is needed to limit games' resources");
        }
        chain.push(PRLIMIT_PROGRAM.into());
        chain.extend(limits);
        chain.push("--".into());
    }
    if let Some(run_as) = run_as {
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
    Ok(chain)
}

/// Opens a PTY of `command.size` and spawns the game as the session leader on it.
pub fn spawn(command: &GameCommand) -> anyhow::Result<GameProcess> {
    let pair = native_pty_system().openpty(pty_size(command.size))?;
    // portable-pty always sets SHELL (to the server user's login shell). Unless
    // the game's configuration sets it, `env -u SHELL` takes it out again.
    // Then the limits, the account, and the game, each exec'ing the next.
    let mut chain: Vec<String> = Vec::new();
    let mut env_args: Vec<String> = Vec::new();
    if !command.environment.iter().any(|(k, _)| k == "SHELL") {
        env_args.extend(["-u".into(), "SHELL".into()]);
    }
    // bubblewrap stays as the game's parent and dies of a SIGHUP, which
    // would kill the sandbox while the game saves: it ignores SIGHUP, and
    // the game gets the default back inside (see `SandboxMounts::bwrap_args`).
    if command.sandbox.is_some() {
        env_args.push("--ignore-signal=HUP".into());
    }
    if !env_args.is_empty() {
        if Path::new(ENV_PROGRAM).exists() {
            chain.push(ENV_PROGRAM.into());
            chain.extend(env_args);
            chain.push("--".into());
        } else if command.sandbox.is_some() {
            anyhow::bail!("{ENV_PROGRAM} (coreutils) is needed for sandbox: bubblewrap");
        }
    }
    chain.extend(confinement(command.run_as.as_ref(), &command.rlimits)?);
    if let Some(sandbox) = &command.sandbox {
        if !Path::new(BWRAP_PROGRAM).exists() {
            anyhow::bail!("{BWRAP_PROGRAM} (Debian bubblewrap) is needed for sandbox: bubblewrap");
        }
        chain.extend(sandbox.bwrap_args(command.working_directory.as_deref()));
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
