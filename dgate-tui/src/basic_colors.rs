//! Colours as games send them. crossterm writes every palette colour as a
//! 256-colour code (`ESC[38;5;3m`), even the sixteen basic ones; terminals
//! that brighten bold text only for the basic codes then show NetHack's
//! bold brown gold as brown, not yellow. [`BasicColors`] sits between a
//! ratatui backend and the terminal and writes palette colours 0-15 with
//! the basic codes (30-37, 90-97, 40-47, 100-107), as the game did.

use std::io::{self, Write};

/// The longest control sequence held back to be rewritten; longer ones
/// (which no backend writes) pass through unchanged.
const MAX_SEQUENCE: usize = 64;

/// A writer that rewrites 256-colour SGR codes for colours 0-15 into the
/// basic codes and passes everything else through unchanged.
#[derive(Debug)]
pub struct BasicColors<W> {
    inner: W,
    /// A control sequence begun (`ESC`, `ESC [`, parameters) and not yet ended.
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl<W: Write> BasicColors<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    fn push(&mut self, b: u8) {
        if self.pending.is_empty() {
            if b == 0x1b {
                self.pending.push(b);
            } else {
                self.out.push(b);
            }
            return;
        }
        self.pending.push(b);
        let done = match self.pending.len() {
            // ESC then anything but `[`: not a CSI.
            2 => b != b'[',
            _ => (0x40..=0x7e).contains(&b),
        };
        if done {
            if b == b'm' && self.pending.len() > 2 {
                rewrite_sgr(&self.pending[2..self.pending.len() - 1], &mut self.out);
            } else {
                self.out.extend_from_slice(&self.pending);
            }
            self.pending.clear();
        } else if self.pending.len() >= MAX_SEQUENCE {
            self.out.append(&mut self.pending);
        }
    }
}

/// Writes `ESC [ params m` with `38;5;N` and `48;5;N` (N < 16) as basic codes.
fn rewrite_sgr(params: &[u8], out: &mut Vec<u8>) {
    let fields: Vec<&[u8]> = params.split(|&b| b == b';').collect();
    let mut rewritten: Vec<String> = Vec::with_capacity(fields.len());
    let mut i = 0;
    while i < fields.len() {
        let basic = match (fields[i], fields.get(i + 1), fields.get(i + 2)) {
            (b"38" | b"48", Some(&b"5"), Some(n)) => std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|&n| n < 16)
                .map(|n| {
                    let base = match (fields[i] == b"38", n < 8) {
                        (true, true) => 30,
                        (true, false) => 90 - 8,
                        (false, true) => 40,
                        (false, false) => 100 - 8,
                    };
                    (base + u16::from(n)).to_string()
                }),
            _ => None,
        };
        match basic {
            Some(code) => {
                rewritten.push(code);
                i += 3;
            }
            None => {
                rewritten.push(String::from_utf8_lossy(fields[i]).into_owned());
                i += 1;
            }
        }
    }
    out.extend_from_slice(b"\x1b[");
    out.extend_from_slice(rewritten.join(";").as_bytes());
    out.push(b'm');
}

impl<W: Write> Write for BasicColors<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.push(b);
        }
        if !self.out.is_empty() {
            self.inner.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(chunks: &[&[u8]]) -> String {
        let mut writer = BasicColors::new(Vec::new());
        for chunk in chunks {
            writer.write_all(chunk).expect("write");
        }
        String::from_utf8(writer.inner).expect("UTF-8")
    }

    #[test]
    fn palette_colours_below_16_become_basic_codes() {
        assert_eq!(through(&[b"\x1b[38;5;3mgold"]), "\x1b[33mgold");
        assert_eq!(through(&[b"\x1b[38;5;11;48;5;4m"]), "\x1b[93;44m");
        assert_eq!(through(&[b"\x1b[48;5;8m"]), "\x1b[100m");
        assert_eq!(through(&[b"\x1b[1m\x1b[38;5;2m"]), "\x1b[1m\x1b[32m");
    }

    #[test]
    fn everything_else_passes_unchanged_even_split_across_writes() {
        assert_eq!(through(&[b"\x1b[38;5;208mx"]), "\x1b[38;5;208mx");
        assert_eq!(through(&[b"\x1b[38;2;1;2;3m"]), "\x1b[38;2;1;2;3m");
        assert_eq!(through(&[b"\x1b[12;40H\x1b[?25l"]), "\x1b[12;40H\x1b[?25l");
        assert_eq!(through(&[b"\x1b7\x1b8"]), "\x1b7\x1b8");
        assert_eq!(through(&[b"\x1b[38;", b"5;", b"1mred"]), "\x1b[31mred");
        assert_eq!(through(&["é─".as_bytes()]), "é─");
    }
}
