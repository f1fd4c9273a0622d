//! Any game output split anywhere: a fresh terminal fed the snapshot of the
//! prefix and then the rest ends in exactly the state of one fed the whole
//! output (compared by their own snapshots, which re-create every state a
//! later frame can depend on). This is what makes every late joiner exact.
#![no_main]

use dgate_term::vt::Terminal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [size, split, output @ ..] = data else {
        return;
    };
    let (cols, rows) = (1 + u16::from(size % 40), 1 + u16::from(size / 40 % 12));
    let at = usize::from(*split) * output.len() / 255;
    let mut whole = Terminal::new(cols, rows);
    whole.process(output);
    let mut prefix = Terminal::new(cols, rows);
    prefix.process(&output[..at]);
    let mut joined = Terminal::new(cols, rows);
    joined.process(&prefix.snapshot());
    joined.process(&output[at..]);
    assert_eq!(joined.snapshot(), whole.snapshot());
});
