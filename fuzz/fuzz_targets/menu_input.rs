//! Any bytes typed at an SSH menu: the key decoder, the watch menu, the recent
//! games page and the replay screen take them without panicking, and draw.
#![no_main]

use std::time::{Duration, SystemTime};

use dgate_term::{ScreenModel, TermSize};
use dgate_tui::keys::KeyDecoder;
use dgate_tui::recent_menu::RecentMenu;
use dgate_tui::replay_screen::{Progress, ReplayScreen};
use dgate_tui::watch_menu::{SessionRow, WatchMenu};
use libfuzzer_sys::fuzz_target;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fuzz_target!(|data: &[u8]| {
    let mut decoder = KeyDecoder::default();
    let mut menu = WatchMenu::new(80, 24);
    menu.update(
        (0..30)
            .map(|i| SessionRow {
                id: format!("s{i}"),
                username: format!("user{i}"),
                game: "NH36".into(),
                cols: 80 + i,
                rows: 24,
                start: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(i))),
                idle: Duration::from_secs(u64::from(i) * 7),
                watchers: u32::from(i % 3),
                detached: i % 5 == 0,
            })
            .collect(),
    );
    let mut recent = RecentMenu::new(Vec::new(), 24);
    let mut replay = ReplayScreen::new("fuzz".into(), ScreenModel::new(TermSize::new(80, 24)));
    let mut terminal = match Terminal::new(TestBackend::new(80, 24)) {
        Ok(t) => t,
        Err(_) => return,
    };
    for chunk in data.chunks(7) {
        for key in decoder.feed(chunk) {
            let _ = menu.handle_key(key);
            let _ = recent.handle_key(key);
            let _ = replay.handle_key(key);
        }
        let _ = terminal.draw(|f| menu.render(f, f.area()));
        let _ = terminal.draw(|f| replay.render(f, &Progress::default()));
    }
});
