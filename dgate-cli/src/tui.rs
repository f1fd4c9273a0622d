//! The terminal while a full-screen view owns it: raw mode and the alternate
//! screen, given back on every way out (return, error, panic, SIGTERM) and
//! around Ctrl+Z; and the log file that takes the place of stderr meanwhile.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use dgate_tui::basic_colors::BasicColors;
use ratatui::backend::CrosstermBackend;
use ratatui::{Frame, Terminal};

/// Owns the screen; dropping it restores the terminal.
pub struct Tui {
    terminal: Terminal<CrosstermBackend<BasicColors<std::io::Stdout>>>,
}

impl Tui {
    /// Raw mode, alternate screen, and a panic hook that restores both before
    /// the panic message is printed. Colours 0-15 are written with the
    /// basic codes, as games write them.
    pub fn enter() -> Result<Self> {
        static RESTORE_ON_PANIC: std::sync::Once = std::sync::Once::new();
        RESTORE_ON_PANIC.call_once(|| {
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = ratatui::try_restore();
                hook(info);
            }));
        });
        crossterm::terminal::enable_raw_mode().context("raw mode")?;
        crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)
            .context("alternate screen")?;
        let terminal = Terminal::new(CrosstermBackend::new(BasicColors::new(std::io::stdout())))
            .context("setting up the terminal")?;
        Ok(Self { terminal })
    }

    pub fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> Result<()> {
        self.terminal.draw(render).context("drawing the screen")?;
        Ok(())
    }

    /// (columns, rows).
    pub fn size(&self) -> (u16, u16) {
        self.terminal
            .size()
            .map(|s| (s.width, s.height))
            .unwrap_or((80, 24))
    }

    /// Ctrl+Z: gives the terminal back to the shell and stops this process like
    /// any job; on `fg`, takes the screen again and redraws everything.
    pub fn suspend(&mut self) -> Result<()> {
        ratatui::try_restore().context("restoring the terminal")?;
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGTSTP).context("suspending")?;
        // Resumed.
        crossterm::terminal::enable_raw_mode().context("raw mode")?;
        crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)
            .context("alternate screen")?;
        self.terminal.clear().context("clearing the screen")?;
        Ok(())
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = ratatui::try_restore();
        let _ = std::io::stdout().flush();
    }
}

/// Sends this process's logs to `dgate.log` in the user's state directory
/// (`$XDG_STATE_HOME/dgate/`), since the screen belongs to the view. The level
/// comes from `DGATE_LOG` (default `info`). Returns the file's path.
pub fn log_to_file() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "dgate")?;
    let dir = dirs.state_dir().unwrap_or(dirs.cache_dir()).to_owned();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("dgate.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .ok()?;
    Some(path)
}
