//! Output to one SSH terminal: raw bytes (a game's own output, a banner) and
//! ratatui screens drawn at the terminal's size. Every write waits for the
//! client's SSH window, so a client that stops reading holds up its own
//! connection only (its game subscription then resyncs it).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dgate_tui::basic_colors::BasicColors;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Frame, Terminal, TerminalOptions, Viewport};
use russh::ChannelWriteHalf;
use russh::server::Msg;

/// The client went away.
#[derive(Debug)]
pub struct Gone;

pub struct Output {
    channel: ChannelWriteHalf<Msg>,
    /// (columns, rows), from the pty request and window changes.
    pub size: (u16, u16),
    /// While a ratatui screen is shown: what the client's terminal shows, so
    /// that a redraw sends only the changes.
    screen: Option<Terminal<CrosstermBackend<BasicColors<Sink>>>>,
    /// What the screen's backend wrote, to send.
    drawn: Arc<Mutex<Vec<u8>>>,
}

/// The ratatui backend's writer: a buffer the output sends after each draw.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Output {
    pub fn new(channel: ChannelWriteHalf<Msg>, size: (u16, u16)) -> Self {
        Self {
            channel,
            size,
            screen: None,
            drawn: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub async fn write(&self, bytes: impl Into<Bytes>) -> Result<(), Gone> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Ok(());
        }
        self.channel.data_bytes(bytes).await.map_err(|_| Gone)
    }

    /// The terminal changed size: the next screen is drawn whole.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.size = (cols.max(1), rows.max(1));
        self.screen = None;
    }

    /// Raw output follows: the next ratatui screen starts from a cleared terminal.
    pub fn forget_screen(&mut self) {
        self.screen = None;
    }

    /// Draws a ratatui screen, sending only what changed since the last one.
    pub async fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> Result<(), Gone> {
        let bytes = self.paint(render)?;
        self.write(bytes).await
    }

    /// What [`Output::draw`] sends, without sending it: for a screen whose
    /// state may not be held across an await (it is not `Sync`).
    pub fn paint(&mut self, render: impl FnOnce(&mut Frame)) -> Result<Vec<u8>, Gone> {
        let (cols, rows) = self.size;
        let mut bytes = Vec::new();
        if self.screen.is_none() {
            let options = TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, cols, rows)),
            };
            let sink = Sink(Arc::clone(&self.drawn));
            let backend = CrosstermBackend::new(BasicColors::new(sink));
            let terminal = Terminal::with_options(backend, options).map_err(|_| Gone)?;
            // Leave whatever was there (a game, the banner) and start clean.
            self.take_drawn();
            bytes.extend_from_slice(b"\x1b[0m\x1b[?1049l\x1b[H\x1b[2J");
            self.screen = Some(terminal);
        }
        let Some(terminal) = self.screen.as_mut() else {
            return Err(Gone);
        };
        terminal.draw(render).map_err(|_| Gone)?;
        bytes.extend(self.take_drawn());
        Ok(bytes)
    }

    fn take_drawn(&self) -> Vec<u8> {
        std::mem::take(&mut *self.drawn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub async fn close(&self, exit_status: u32) {
        let _ = self.channel.exit_status(exit_status).await;
        let _ = self.channel.eof().await;
        let _ = self.channel.close().await;
    }
}
