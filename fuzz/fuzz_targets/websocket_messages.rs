//! Any text a browser page sends on its replay socket: it becomes a steering
//! control or a clear error, never a panic, and whatever control it becomes
//! is applied within bounds (a seek is clamped, a speed within 0.25x..16x).
#![no_main]

use dgate_server::game::recordings::{ReplayControl, seconds_to_duration};
use dgate_server::web::page_control;
use dgate_term::recording::Clock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut clock = Clock::default();
    match page_control(text) {
        Ok(ReplayControl::Seek(seconds)) => {
            let _ = seconds_to_duration(seconds);
        }
        Ok(ReplayControl::Speed(speed)) => {
            clock.set_speed(speed);
            assert!((0.25..=16.0).contains(&clock.speed()), "{}", clock.speed());
        }
        Ok(ReplayControl::Paused(paused)) => clock.set_paused(paused),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
