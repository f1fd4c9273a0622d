//! Any bytes as a ttyrec file: the reader and the replay index either give a
//! clear error or a recording that seeks without panicking.
#![no_main]

use std::time::Duration;

use dgate_term::recording::{Options, Recording};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = Options {
        max_idle: Some(Duration::from_secs(5)),
        ..Options::default()
    };
    if let Ok(recording) = Recording::read(data, &options) {
        let _ = recording.screen_at(recording.duration() / 2);
        let _ = recording.screen_at(recording.duration());
    }
});
