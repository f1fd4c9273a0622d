//! The frames the benchmarks feed: shaped like a NetHack turn.

use bytes::Bytes;

/// Frames as NetHack 3.6's tty port draws a turn: the hero and a monster move
/// on the map (cursor moves, colours, glyphs), a message on the top line, and
/// the changed fields of the status lines rewritten in place. Each is 200
/// bytes and different from the last.
pub fn nethack_frames() -> Vec<Bytes> {
    (0..64u32)
        .map(|i| {
            let row = 3 + i % 18;
            let col = 2 + (i * 7) % 70;
            let mut f = format!(
                "\x1b[1;1HYou hit the jackal! The jackal bites!\x1b[K\
                 \x1b[{row};{col}H\x1b[0;33m.\x1b[1;37m@\x1b[0m\x1b[{};{}H\x1b[0;31md\x1b[0m\
                 \x1b[24;1HDlvl:{} $:{:<4} HP:\x1b[1;31m{:>2}\x1b[0m(16) Pw:2(2) AC:6 Xp:1/{:<3} T:{}",
                row + 1,
                col + 1,
                1 + i % 9,
                i * 3,
                4 + i % 12,
                i,
                1000 + i,
            )
            .into_bytes();
            // Pad with map glyphs to exactly 200 bytes.
            f.extend_from_slice(format!("\x1b[{};{}H", row + 2, col).as_bytes());
            while f.len() < 200 {
                f.push(if f.len() % 5 == 0 { b'#' } else { b'.' });
            }
            f.truncate(200);
            Bytes::from(f)
        })
        .collect()
}
