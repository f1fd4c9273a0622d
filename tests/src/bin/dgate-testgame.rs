//! dgate-testgame: a small, deterministic curses-like game for dgate's tests.
//!
//! It puts its terminal in raw mode and draws numbered, coloured frames with
//! cursor moves and a status line. Keys:
//!
//! - `f`: draw one frame
//! - `b`: a burst of `--burst` frames (`--pace-us` apart, or as fast as it can),
//!   then `BURST-DONE <n>`; `--pad L` adds L full lines of text to every frame
//! - `a` / `A`: enter / leave the alternate screen (drawing on it)
//! - `m`: turn on application cursor keys, keypad, bracketed paste and mouse
//! - `s`: print the terminal size as the game sees it (`SIZE <cols>x<rows>`)
//! - `z`: the same on the terminal's last row (`BOTTOM <cols>x<rows>`)
//! - `x`: exit with `--exit-code`
//! - `q`: exit with 0
//!
//! `--dump-env FILE` writes its environment to FILE at start.
//! With `--ignore-hup` it blocks SIGHUP, so that only SIGKILL ends it.
//!
//! Every byte it receives is appended to `--keylog` (when given) and shown on
//! line 2, so tests can tell exactly which keys reached the game.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::process::ExitCode;

use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

struct Game {
    out: std::io::Stdout,
    frame: u64,
    burst: u64,
    /// Extra full lines of text per frame (bigger frames).
    pad: u64,
    /// Pause between the frames of a burst.
    pace: std::time::Duration,
}

impl Game {
    /// Frame `n`: a coloured line at a row that moves, a status line, and the
    /// cursor left at a position that depends on `n`.
    fn draw_frame(&mut self, buf: &mut Vec<u8>) {
        self.frame += 1;
        let n = self.frame;
        let row = 4 + (n % 16);
        let color = 31 + (n % 7);
        let _ = write!(
            buf,
            "\x1b[{row};1H\x1b[2K\x1b[1;{color}mframe {n:06}\x1b[0m \x1b[4{}m##\x1b[0m \x1b[7mT:{n}\x1b[0m\
             \x1b[24;1H\x1b[2K\x1b[44;37mDlvl:1 $:{} HP:{}({}) T:{n}\x1b[0m\x1b[{};{}H",
            n % 8,
            n * 3 % 1000,
            10 + n % 7,
            16,
            3 + n % 18,
            1 + n % 70,
        );
        for line in 0..self.pad {
            let _ = write!(buf, "\x1b[{};1H\x1b[3{}m", 5 + line, line % 7 + 1);
            for col in 0..72 {
                buf.push(b'a' + ((n + line + col) % 26) as u8);
            }
            buf.extend_from_slice(b"\x1b[0m");
        }
    }

    fn flush(&mut self, buf: &mut Vec<u8>) {
        let _ = self.out.write_all(buf);
        let _ = self.out.flush();
        buf.clear();
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let frames: u64 = arg(&args, "--frames")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let burst: u64 = arg(&args, "--burst")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let exit_code: u8 = arg(&args, "--exit-code")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut keylog = arg(&args, "--keylog")
        .and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());

    if let Some(path) = arg(&args, "--dump-env") {
        let env: String = std::env::vars()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        let _ = std::fs::write(path, env);
    }
    if args.iter().any(|a| a == "--ignore-hup") {
        // A game that will not end on SIGHUP: only SIGKILL stops it.
        let mut hup = nix::sys::signal::SigSet::empty();
        hup.add(nix::sys::signal::Signal::SIGHUP);
        let _ = hup.thread_block();
    }

    let stdin = std::io::stdin();
    if let Ok(mut raw) = tcgetattr(&stdin) {
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
    }

    let mut game = Game {
        out: std::io::stdout(),
        frame: 0,
        burst,
        pad: arg(&args, "--pad")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        pace: std::time::Duration::from_micros(
            arg(&args, "--pace-us")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ),
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.extend_from_slice(
        b"\x1b]2;dgate-testgame\x07\x1b[H\x1b[2J\x1b[1;1H\x1b[1mdgate test game\x1b[0m",
    );
    for _ in 0..frames {
        game.draw_frame(&mut buf);
    }
    game.flush(&mut buf);

    let mut input = [0u8; 4096];
    let mut stdin = stdin.lock();
    loop {
        let n = match stdin.read(&mut input) {
            Ok(0) | Err(_) => return ExitCode::from(1),
            Ok(n) => n,
        };
        if let Some(log) = keylog.as_mut() {
            let _ = log.write_all(&input[..n]);
            let _ = log.flush();
        }
        let shown: String = input[..n]
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        let _ = write!(buf, "\x1b7\x1b[2;1H\x1b[2Kkeys: {shown}\x1b8");
        for &key in &input[..n] {
            match key {
                b'f' => game.draw_frame(&mut buf),
                b'b' => {
                    game.flush(&mut buf);
                    for _ in 0..game.burst {
                        game.draw_frame(&mut buf);
                        game.flush(&mut buf);
                        if !game.pace.is_zero() {
                            std::thread::sleep(game.pace);
                        }
                    }
                    let _ = write!(buf, "\x1b[3;1H\x1b[2KBURST-DONE {}", game.frame);
                }
                b'a' => buf.extend_from_slice(
                    b"\x1b[?1049h\x1b[H\x1b[2J\x1b[1;33mALTERNATE SCREEN\x1b[0m\x1b[10;10H\x1b[32m@\x1b[0m",
                ),
                b'A' => buf.extend_from_slice(b"\x1b[?1049l"),
                b'm' => buf.extend_from_slice(b"\x1b[?1h\x1b=\x1b[?2004h\x1b[?1000h\x1b[?1006h"),
                b's' | b'z' => {
                    let size = std::process::Command::new("stty")
                        .arg("size")
                        .stdin(std::process::Stdio::inherit())
                        .output()
                        .ok()
                        .and_then(|o| String::from_utf8(o.stdout).ok())
                        .unwrap_or_default();
                    let mut parts = size.split_whitespace();
                    let (rows, cols) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
                    if key == b's' {
                        let _ = write!(buf, "\x1b[3;1H\x1b[2KSIZE {cols}x{rows}");
                    } else {
                        let _ = write!(buf, "\x1b[{rows};1H\x1b[2KBOTTOM {cols}x{rows}");
                    }
                }
                b'x' => {
                    game.flush(&mut buf);
                    return ExitCode::from(exit_code);
                }
                b'q' => {
                    game.flush(&mut buf);
                    return ExitCode::SUCCESS;
                }
                _ => {}
            }
        }
        game.flush(&mut buf);
    }
}
