//! The firehose game: `dgate-bench firehose`, run by the server in a PTY.
//! It draws NetHack-like frames at a fixed rate: a message line that starts
//! with the frame's stamp, coloured map cells at moving places, two status
//! lines, and the cursor left on the hero; or, with `--scroll`, a line of
//! coloured text a frame that scrolls the whole screen (a log, a shell).
//! Keys (raw mode): `s` draws the
//! last frame, marked `~end~`, and stops drawing; `q` quits. It quits by
//! itself after `--max-seconds`, so no run outlives its bound.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

use crate::stamp::{self, Stamp};

#[derive(Debug, Clone, clap::Args)]
pub struct FirehoseArgs {
    /// Frames per second.
    #[arg(long, default_value_t = 30.0)]
    pub rate: f64,
    /// Bytes per frame (at least the stamp and a status line).
    #[arg(long, default_value_t = 200)]
    pub bytes: usize,
    #[arg(long, default_value_t = 80)]
    pub cols: u16,
    #[arg(long, default_value_t = 24)]
    pub rows: u16,
    /// Quits after this long whatever happens.
    #[arg(long, default_value_t = 3600)]
    pub max_seconds: u64,
    /// Each frame is one line of coloured text ending in a newline, so the
    /// screen scrolls (every row changes at every frame).
    #[arg(long)]
    pub scroll: bool,
}

const RUNNING: u8 = 0;
const STOP: u8 = 1;
const QUIT: u8 = 2;

pub fn run(args: &FirehoseArgs) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if let Ok(mut mode) = tcgetattr(&stdin) {
        cfmakeraw(&mut mode);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &mode);
    }
    let state = Arc::new(AtomicU8::new(RUNNING));
    let keys = Arc::clone(&state);
    std::thread::spawn(move || {
        let mut key = [0u8; 1];
        let mut input = std::io::stdin().lock();
        while let Ok(1) = input.read(&mut key) {
            match key[0] {
                b's' => keys.store(STOP, Ordering::SeqCst),
                b'q' => keys.store(QUIT, Ordering::SeqCst),
                _ => {}
            }
        }
        keys.store(QUIT, Ordering::SeqCst);
    });

    let mut out = std::io::stdout().lock();
    let mut painter = Painter::new(args.cols.max(40), args.rows.max(10), args.bytes);
    painter.scroll = args.scroll;
    let mut buf = Vec::with_capacity(args.bytes * 2);
    buf.extend_from_slice(b"\x1b[H\x1b[2J");
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let mut next = Instant::now();
    let mut ended = false;
    while Instant::now() < deadline {
        match state.load(Ordering::SeqCst) {
            QUIT => break,
            STOP if !ended => {
                painter.frame(&mut buf, true);
                out.write_all(&buf)?;
                out.flush()?;
                buf.clear();
                ended = true;
            }
            STOP => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > Duration::from_secs(1) {
                    // Far behind (the PTY was full): start the schedule again
                    // rather than fire a second of frames at once.
                    next = now;
                }
                painter.frame(&mut buf, false);
                out.write_all(&buf)?;
                out.flush()?;
                buf.clear();
                next += interval;
            }
        }
    }
    Ok(())
}

/// Draws the frames; deterministic but for the stamp's clock.
struct Painter {
    cols: u16,
    rows: u16,
    bytes: usize,
    seq: u64,
    random: u64,
    hero: (u16, u16),
    scroll: bool,
}

const MAP: &[u8] = b".#@d$+|-<>%!?)[=*";
const COLOURS: &[u8] = b"0123456712";

impl Painter {
    fn new(cols: u16, rows: u16, bytes: usize) -> Self {
        Self {
            cols,
            rows,
            bytes,
            seq: 0,
            random: 0x9e37_79b9_7f4a_7c15,
            hero: (10, 40),
            scroll: false,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: cheap, and the same frames every run.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }

    fn frame(&mut self, buf: &mut Vec<u8>, last: bool) {
        if self.scroll {
            return self.line(buf, last);
        }
        self.seq += 1;
        let seq = self.seq;
        let start = buf.len();
        buf.extend_from_slice(b"\x1b[1;1H\x1b[0m");
        stamp::write(
            buf,
            Stamp {
                seq,
                micros: stamp::now_micros(),
            },
        );
        if last {
            buf.extend_from_slice(b" ");
            buf.extend_from_slice(stamp::END);
        }
        buf.extend_from_slice(b" You hear the footsteps of a guard on patrol.\x1b[K");
        let rows = self.rows;
        let _ = write!(
            buf,
            "\x1b[{rows};1H\x1b[0;1mDlvl:{} $:{} HP:{}({}) Pw:{}(7) AC:4 Xp:3/{} T:{seq}\x1b[0m\x1b[K",
            1 + seq / 500 % 40,
            seq * 7 % 10_000,
            5 + seq % 20,
            24,
            seq % 8,
            20 + seq % 80,
        );
        let (cols, map_rows) = (u64::from(self.cols), u64::from(rows - 3));
        while buf.len() - start + 12 < self.bytes {
            let r = self.next_random();
            let row = 2 + r % map_rows;
            let col = 1 + (r >> 8) % cols;
            let glyph = MAP[((r >> 16) % MAP.len() as u64) as usize] as char;
            let colour = COLOURS[((r >> 24) % COLOURS.len() as u64) as usize] as char;
            let bold = (r >> 32).is_multiple_of(3);
            let _ = write!(
                buf,
                "\x1b[{row};{col}H\x1b[{};3{colour}m{glyph}",
                if bold { 1 } else { 0 }
            );
        }
        let r = self.next_random();
        let (row, col) = &mut self.hero;
        *row = (2 + (u64::from(*row) + r % 3) % map_rows) as u16;
        *col = (1 + (u64::from(*col) + (r >> 4) % 3) % cols) as u16;
        let _ = write!(buf, "\x1b[0m\x1b[{};{}H", self.hero.0, self.hero.1);
    }
}

impl Painter {
    /// A scrolling frame: the stamp, then coloured words up to the frame's
    /// size (within the screen's width, so it never wraps), then a newline.
    fn line(&mut self, buf: &mut Vec<u8>, last: bool) {
        self.seq += 1;
        let start = buf.len();
        let mut shown = 0;
        buf.extend_from_slice(b"\x1b[0m");
        let before = buf.len();
        stamp::write(
            buf,
            Stamp {
                seq: self.seq,
                micros: stamp::now_micros(),
            },
        );
        if last {
            buf.extend_from_slice(b" ");
            buf.extend_from_slice(stamp::END);
        }
        shown += buf.len() - before;
        const WORDS: &[&str] = &[
            "hunger", "potion", "dagger", "scroll", "newt", "altar", "fountain",
        ];
        let width = usize::from(self.cols) - 1;
        while buf.len() - start + 16 < self.bytes {
            let r = self.next_random();
            let word = WORDS[(r % WORDS.len() as u64) as usize];
            if shown + 1 + word.len() > width {
                break;
            }
            let colour = COLOURS[((r >> 8) % COLOURS.len() as u64) as usize] as char;
            let bold = u8::from((r >> 16).is_multiple_of(3));
            let _ = write!(buf, "\x1b[{bold};3{colour}m {word}");
            shown += 1 + word.len();
        }
        buf.extend_from_slice(b"\x1b[0m\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrolling_lines_have_about_the_asked_size_and_never_wrap() {
        let mut painter = Painter::new(180, 50, 230);
        painter.scroll = true;
        let mut screen = dgate_term::ScreenModel::new(dgate_term::TermSize::new(180, 50));
        for n in 1..=60u64 {
            let mut buf = Vec::new();
            painter.frame(&mut buf, n == 60);
            assert!(
                (200..260).contains(&buf.len()),
                "line {n}: {} bytes",
                buf.len()
            );
            screen.process(&buf);
            let rows: Vec<String> = screen.screen().rows(0, 180).collect();
            // The newest line sits above the cursor's (empty) row.
            let at = (n as usize).min(49) - 1;
            assert!(rows[at].starts_with(&format!("~dg{n}.")), "{:?}", rows[at]);
        }
    }

    #[test]
    fn frames_have_the_asked_size_a_stamp_and_fit_the_screen() {
        let mut painter = Painter::new(80, 24, 200);
        let mut screen = dgate_term::ScreenModel::new(dgate_term::TermSize::new(80, 24));
        for n in 1..=100u64 {
            let mut buf = Vec::new();
            painter.frame(&mut buf, n == 100);
            assert!(
                (200..260).contains(&buf.len()),
                "frame {n}: {} bytes",
                buf.len()
            );
            let stamps: Vec<_> = stamp::scan(&buf).collect();
            assert_eq!(stamps.len(), 1);
            assert_eq!(stamps[0].seq, n);
            screen.process(&buf);
            let top = screen.screen().rows(0, 80).next().unwrap_or_default();
            assert!(top.starts_with(&format!("~dg{n}.")), "{top:?}");
            assert_eq!(stamp::has_end(top.as_bytes()), n == 100);
        }
    }
}
