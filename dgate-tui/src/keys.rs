//! Keys from a raw terminal's byte stream (what an SSH client sends), as the
//! crossterm key events the screens take. Arrows, Home/End, PgUp/PgDn,
//! Delete, Shift+Tab in both the normal and application cursor modes; control
//! keys; UTF-8 text. Unknown escape sequences are skipped whole.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The longest escape sequence kept while waiting for its end.
const MAX_PENDING: usize = 32;

#[derive(Debug, Default)]
pub struct KeyDecoder {
    /// An escape sequence or UTF-8 character cut by the end of a read.
    pending: Vec<u8>,
}

impl KeyDecoder {
    /// The keys in `bytes`. An escape sequence cut at the end waits for the
    /// next read, but a lone ESC at the end of a read is the Escape key (a
    /// terminal sends a whole sequence at once).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<KeyEvent> {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut at = 0;
        while at < input.len() {
            match decode(&input[at..]) {
                Decoded::Key(key, used) => {
                    keys.extend(key);
                    at += used;
                }
                Decoded::Incomplete => {
                    if input.len() - at == 1 && input[at] == 0x1b {
                        keys.push(plain(KeyCode::Esc));
                        at += 1;
                    } else {
                        if input.len() - at <= MAX_PENDING {
                            self.pending = input[at..].to_vec();
                        }
                        break;
                    }
                }
            }
        }
        keys
    }
}

enum Decoded {
    /// A key (or nothing, for a skipped sequence) and the bytes it used.
    Key(Option<KeyEvent>, usize),
    Incomplete,
}

fn plain(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn decode(bytes: &[u8]) -> Decoded {
    let Some(&first) = bytes.first() else {
        return Decoded::Incomplete;
    };
    let key = |code: KeyCode, used: usize| Decoded::Key(Some(plain(code)), used);
    match first {
        0x1b => escape(bytes),
        b'\r' | b'\n' => key(KeyCode::Enter, 1),
        b'\t' => key(KeyCode::Tab, 1),
        0x7f | 0x08 => key(KeyCode::Backspace, 1),
        0x00 => Decoded::Key(None, 1),
        0x01..=0x1a => Decoded::Key(
            Some(KeyEvent::new(
                KeyCode::Char(char::from(b'a' + first - 1)),
                KeyModifiers::CONTROL,
            )),
            1,
        ),
        0x1c..=0x1f => Decoded::Key(None, 1),
        0x20..=0x7e => key(KeyCode::Char(char::from(first)), 1),
        _ => utf8(bytes),
    }
}

fn utf8(bytes: &[u8]) -> Decoded {
    let len = match bytes[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Decoded::Key(None, 1),
    };
    if bytes.len() < len {
        return Decoded::Incomplete;
    }
    match std::str::from_utf8(&bytes[..len])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Decoded::Key(Some(plain(KeyCode::Char(c))), len),
        None => Decoded::Key(None, 1),
    }
}

fn escape(bytes: &[u8]) -> Decoded {
    let Some(&second) = bytes.get(1) else {
        return Decoded::Incomplete;
    };
    match second {
        b'[' => csi(bytes),
        b'O' => match bytes.get(2) {
            None => Decoded::Incomplete,
            Some(&b) => Decoded::Key(cursor_key(b).map(plain), 3),
        },
        0x1b => Decoded::Key(Some(plain(KeyCode::Esc)), 1),
        // Alt+key: the key, with ALT.
        _ => match decode(&bytes[1..]) {
            Decoded::Key(Some(mut key), used) => {
                key.modifiers |= KeyModifiers::ALT;
                Decoded::Key(Some(key), used + 1)
            }
            Decoded::Key(None, used) => Decoded::Key(None, used + 1),
            Decoded::Incomplete => Decoded::Incomplete,
        },
    }
}

/// `ESC [` parameters, then a final byte in 0x40..=0x7e.
fn csi(bytes: &[u8]) -> Decoded {
    let Some(end) = bytes[2..].iter().position(|b| (0x40..=0x7e).contains(b)) else {
        return if bytes.len() > MAX_PENDING {
            Decoded::Key(None, bytes.len())
        } else {
            Decoded::Incomplete
        };
    };
    let used = 2 + end + 1;
    let params = &bytes[2..2 + end];
    let code = match bytes[2 + end] {
        b'Z' => Some(KeyCode::BackTab),
        b'~' => match params.split(|b| *b == b';').next() {
            Some(b"1") | Some(b"7") => Some(KeyCode::Home),
            Some(b"2") => Some(KeyCode::Insert),
            Some(b"3") => Some(KeyCode::Delete),
            Some(b"4") | Some(b"8") => Some(KeyCode::End),
            Some(b"5") => Some(KeyCode::PageUp),
            Some(b"6") => Some(KeyCode::PageDown),
            _ => None,
        },
        b => cursor_key(b),
    };
    let key = code.map(|code| {
        if code == KeyCode::BackTab {
            KeyEvent::new(code, KeyModifiers::SHIFT)
        } else {
            plain(code)
        }
    });
    Decoded::Key(key, used)
}

fn cursor_key(b: u8) -> Option<KeyCode> {
    match b {
        b'A' => Some(KeyCode::Up),
        b'B' => Some(KeyCode::Down),
        b'C' => Some(KeyCode::Right),
        b'D' => Some(KeyCode::Left),
        b'H' => Some(KeyCode::Home),
        b'F' => Some(KeyCode::End),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(decoder: &mut KeyDecoder, bytes: &[u8]) -> Vec<KeyCode> {
        decoder.feed(bytes).into_iter().map(|k| k.code).collect()
    }

    #[test]
    fn terminal_bytes_become_keys() {
        let mut d = KeyDecoder::default();
        assert_eq!(
            codes(
                &mut d,
                b"a\x1b[A\x1bOB\x1b[5~\x1b[6~\r\x7f\t\x1b[Z\x1b[3~\x1b[H\x1b[4~"
            ),
            [
                KeyCode::Char('a'),
                KeyCode::Up,
                KeyCode::Down,
                KeyCode::PageUp,
                KeyCode::PageDown,
                KeyCode::Enter,
                KeyCode::Backspace,
                KeyCode::Tab,
                KeyCode::BackTab,
                KeyCode::Delete,
                KeyCode::Home,
                KeyCode::End,
            ]
        );
        let ctrl_c = d.feed(b"\x03");
        assert_eq!(ctrl_c[0].code, KeyCode::Char('c'));
        assert!(ctrl_c[0].modifiers.contains(KeyModifiers::CONTROL));
        assert_eq!(
            codes(&mut d, "é→".as_bytes()),
            [KeyCode::Char('é'), KeyCode::Char('→')]
        );
    }

    #[test]
    fn sequences_cut_between_reads_are_joined_and_a_lone_escape_is_esc() {
        let mut d = KeyDecoder::default();
        assert!(codes(&mut d, b"\x1b[").is_empty());
        assert_eq!(codes(&mut d, b"B"), [KeyCode::Down]);
        assert!(codes(&mut d, &[0xe2, 0x86]).is_empty());
        assert_eq!(codes(&mut d, &[0x92]), [KeyCode::Char('→')]);
        assert_eq!(codes(&mut d, b"\x1b"), [KeyCode::Esc]);
        assert_eq!(codes(&mut d, b"q"), [KeyCode::Char('q')]);
    }

    #[test]
    fn garbage_is_skipped_without_growing() {
        let mut d = KeyDecoder::default();
        // An unknown sequence, invalid UTF-8, a mouse report: nothing, then the key.
        assert_eq!(
            codes(&mut d, b"\x1b[99x\xff\xfe\x1b[<0;3;4Mz"),
            [KeyCode::Char('z')]
        );
        // A never-ending CSI is dropped once it is absurdly long.
        let mut endless = b"\x1b[".to_vec();
        endless.extend(std::iter::repeat_n(b'1', 100));
        assert!(codes(&mut d, &endless).is_empty());
        assert!(d.pending.len() <= MAX_PENDING);
        assert_eq!(codes(&mut d, b"y"), [KeyCode::Char('y')]);
    }
}
