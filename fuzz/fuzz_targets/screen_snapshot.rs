//! Any game output: the screen model never panics, and a snapshot taken
//! mid-stream redraws the same text on a fresh terminal (what every late
//! joiner relies on).
#![no_main]

use dgate_term::{ScreenModel, TermSize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (size, output) = match data.split_first() {
        Some((&b, rest)) => (
            TermSize::new(20 + u16::from(b % 64), 5 + u16::from(b % 20)),
            rest,
        ),
        None => return,
    };
    let mut model = ScreenModel::new(size);
    let half = output.len() / 2;
    model.process(&output[..half]);
    let mut viewer = ScreenModel::new(model.size());
    viewer.process(&model.snapshot());
    assert_eq!(viewer.screen().contents(), model.screen().contents());
    model.process(&output[half..]);
    let _ = model.snapshot();
});
