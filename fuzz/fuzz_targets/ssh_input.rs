//! What an SSH client sends a connection: terminal sizes (pty-req and
//! window-change, any u32) and channel data. Sizes are clamped to the
//! configured maximum before anything is drawn at them (a 65535x65535 pty
//! once aborted the server), the key decoder takes any bytes, and the watch
//! menu draws at every size the clamp allows.
#![no_main]

use dgate_server::ssh::clamp_size;
use dgate_term::TermSize;
use dgate_tui::keys::KeyDecoder;
use dgate_tui::watch_menu::WatchMenu;
use libfuzzer_sys::fuzz_target;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const MAX: TermSize = TermSize::new(300, 100);

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let (cols, rows) = clamp_size(word(0), word(4), MAX);
    assert!((1..=MAX.cols).contains(&cols) && (1..=MAX.rows).contains(&rows));
    let mut decoder = KeyDecoder::default();
    let mut menu = WatchMenu::new(cols, rows);
    let mut terminal = match Terminal::new(TestBackend::new(cols, rows)) {
        Ok(terminal) => terminal,
        Err(never) => match never {},
    };
    for chunk in data[8..].chunks(64) {
        for key in decoder.feed(chunk) {
            let _ = menu.handle_key(key);
        }
    }
    let _ = terminal.draw(|f| menu.render(f, f.area()));
});
