//! Any text as a config file: a config or a clear error, never a panic.
#![no_main]

use dgate_server::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_yaml(text, "fuzz");
    }
});
