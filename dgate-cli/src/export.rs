//! `dgate export FILE --format asciicast`: a recording as asciicast v2 (the
//! format of asciinema's player and web player): a JSON header with the
//! terminal size, then one `[seconds, "o", text]` line per frame and
//! `[seconds, "r", "COLSxROWS"]` where the terminal was resized.

use std::io::Write;
use std::time::UNIX_EPOCH;

use anyhow::Result;
use dgate_term::recording::Recording;

/// Writes `recording` as asciicast v2. Output is text: a UTF-8 sequence split
/// between two frames is joined, and bytes that are not UTF-8 become U+FFFD.
pub fn asciicast(recording: &Recording, title: &str, out: &mut impl Write) -> Result<()> {
    let size = recording.size();
    let mut header = serde_json::json!({
        "version": 2,
        "width": size.cols,
        "height": size.rows,
        "title": title,
        "env": { "TERM": "xterm-256color" },
    });
    if let Some(start) = recording.started()
        && let Ok(since) = start.duration_since(UNIX_EPOCH)
    {
        header["timestamp"] = since.as_secs().into();
    }
    serde_json::to_writer(&mut *out, &header)?;
    writeln!(out)?;
    let mut pending: Vec<u8> = Vec::new();
    for i in 0..recording.frame_count() {
        let Some((at, resize, data)) = recording.frame(i) else {
            break;
        };
        let seconds = at.as_secs_f64();
        if let Some(size) = resize {
            event(out, seconds, "r", &format!("{}x{}", size.cols, size.rows))?;
        }
        pending.extend_from_slice(data);
        let complete = complete_utf8_len(&pending);
        let text = String::from_utf8_lossy(&pending[..complete]).into_owned();
        pending.drain(..complete);
        if !text.is_empty() {
            event(out, seconds, "o", &text)?;
        }
    }
    if !pending.is_empty() {
        let seconds = recording.duration().as_secs_f64();
        event(out, seconds, "o", &String::from_utf8_lossy(&pending))?;
    }
    Ok(())
}

fn event(out: &mut impl Write, seconds: f64, kind: &str, data: &str) -> Result<()> {
    serde_json::to_writer(&mut *out, &(round6(seconds), kind, data))?;
    writeln!(out)?;
    Ok(())
}

/// Microsecond precision, as ttyrec has.
fn round6(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

/// How much of `bytes` can be decoded now: all of it, except an incomplete
/// UTF-8 sequence at the very end (which the next frame may complete).
fn complete_utf8_len(bytes: &[u8]) -> usize {
    // A sequence is at most 4 bytes: look for its lead byte in the last 3.
    for back in 1..=bytes.len().min(3) {
        let at = bytes.len() - back;
        let byte = bytes[at];
        if byte & 0xc0 == 0x80 {
            continue; // a continuation byte: keep looking for the lead
        }
        let needed = match byte {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return bytes.len(),
        };
        return if back < needed { at } else { bytes.len() };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dgate_term::TermSize;
    use dgate_term::recording::Options;
    use dgate_term::ttyrec::Record;
    use std::time::{Duration, SystemTime};

    #[test]
    fn frames_become_timed_text_events_with_sizes() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let records = vec![
            Record {
                time: start,
                data: b"hello \xe2\x94".to_vec(),
            },
            Record {
                time: start + Duration::from_millis(1500),
                data: b"\x80 world\xff".to_vec(),
            },
        ];
        let options = Options {
            size: TermSize::new(100, 30),
            resizes: vec![(1, TermSize::new(120, 40))],
            max_idle: None,
        };
        let recording = Recording::new(records, &options);
        let mut out = Vec::new();
        asciicast(&recording, "alice · nethack", &mut out).expect("export");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 100);
        assert_eq!(lines[0]["height"], 30);
        assert_eq!(lines[0]["timestamp"], 1_700_000_000);
        assert_eq!(lines[1], serde_json::json!([0.0, "o", "hello "]));
        assert_eq!(lines[2], serde_json::json!([1.5, "r", "120x40"]));
        // The box-drawing character split over two frames is whole; the stray byte is U+FFFD.
        assert_eq!(lines[3], serde_json::json!([1.5, "o", "─ world\u{fffd}"]));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn incomplete_sequences_wait_for_the_next_frame() {
        assert_eq!(complete_utf8_len(b"ab"), 2);
        assert_eq!(complete_utf8_len(b"a\xe2"), 1);
        assert_eq!(complete_utf8_len(b"a\xe2\x94"), 1);
        assert_eq!(complete_utf8_len(b"a\xe2\x94\x80"), 4);
        assert_eq!(complete_utf8_len(b"\xf0\x9f\x98"), 0);
        assert_eq!(complete_utf8_len(b"\x80\x80\x80\x80"), 4);
    }
}
