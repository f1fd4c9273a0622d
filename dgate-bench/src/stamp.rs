//! The firehose's frame stamp: `~dg<seq>.<unix micros>~`, plain text on the
//! game's top line (or at the start of a scrolling line), so it reaches
//! every transport in the raw bytes they all carry (gRPC, SSH and the
//! browser's WebSocket). `~end~` beside it marks
//! the last frame, drawn when the player presses `s`.

use memchr::memmem;

/// One stamp: the frame's number and when the game wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub micros: u64,
}

const OPEN: &[u8] = b"~dg";
pub const END: &[u8] = b"~end~";

/// Writes the stamp's text.
pub fn write(out: &mut Vec<u8>, stamp: Stamp) {
    use std::io::Write;
    let _ = write!(out, "~dg{}.{}~", stamp.seq, stamp.micros);
}

/// Every complete stamp in `bytes`, in order.
pub fn scan(bytes: &[u8]) -> impl Iterator<Item = Stamp> + '_ {
    memmem::find_iter(bytes, OPEN).filter_map(|at| parse(&bytes[at + OPEN.len()..]))
}

/// Whether `bytes` hold the end mark.
pub fn has_end(bytes: &[u8]) -> bool {
    memmem::find(bytes, END).is_some()
}

fn parse(rest: &[u8]) -> Option<Stamp> {
    let (seq, rest) = number(rest)?;
    let rest = rest.strip_prefix(b".")?;
    let (micros, rest) = number(rest)?;
    rest.starts_with(b"~").then_some(Stamp { seq, micros })
}

fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((value, &bytes[digits..]))
}

/// Microseconds since the Unix epoch: the clock the game and the viewers share.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_among_escape_sequences() {
        let mut frame = b"\x1b[1;1H\x1b[0m".to_vec();
        write(
            &mut frame,
            Stamp {
                seq: 7,
                micros: 1_700_000_000_123_456,
            },
        );
        frame.extend_from_slice(b" You hear ~dg bubbling~ \x1b[K");
        write(&mut frame, Stamp { seq: 8, micros: 9 });
        let found: Vec<_> = scan(&frame).collect();
        assert_eq!(
            found,
            [
                Stamp {
                    seq: 7,
                    micros: 1_700_000_000_123_456
                },
                Stamp { seq: 8, micros: 9 }
            ]
        );
        assert!(!has_end(&frame));
    }

    #[test]
    fn a_cut_stamp_is_not_a_stamp() {
        let mut frame = Vec::new();
        write(
            &mut frame,
            Stamp {
                seq: 12,
                micros: 34,
            },
        );
        for cut in 0..frame.len() {
            assert_eq!(scan(&frame[..cut]).count(), 0, "cut at {cut}");
        }
        assert_eq!(scan(b"~dg99999999999999999999.1~").count(), 0, "overflow");
    }
}
