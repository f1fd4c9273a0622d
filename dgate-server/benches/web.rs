//! The browser viewer's encoding. A frame goes to every browser as the hub's
//! own `Bytes` (nothing to encode: `web::wire`); what the web does per frame
//! of a game is keep the feed's keyframe fresh, a hub snapshot every
//! `web::feed::REFRESH_FRAMES` frames, which this measures with the message
//! a joiner gets. Run with `cargo bench -p dgate-server --bench web`; the
//! figures are in docs/BENCHMARKS.md. (Until the browser got the raw bytes,
//! this measured the server's JSON row deltas: 839 bytes and 49.4 µs a
//! frame, once per game per frame.)

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
use dgate_server::config::TermSize;
use dgate_server::web::{feed, wire};
use dgate_term::ScreenModel;

mod frames;
use frames::nethack_frames;

/// 30 lines of ~230 bytes of coloured text, scrolling a 180x50 screen.
fn scrolling_lines() -> Vec<Bytes> {
    (0..200u32)
        .map(|n| {
            let mut line = format!("\x1b[1;3{}mline {n:06}\x1b[0m ", n % 8).into_bytes();
            while line.len() < 228 {
                line.extend_from_slice(
                    format!("\x1b[3{}mword{} ", (n + line.len() as u32) % 8, line.len()).as_bytes(),
                );
            }
            line.extend_from_slice(b"\x1b[0m\r\n");
            Bytes::from(line)
        })
        .collect()
}

fn keyframes(c: &mut Criterion) {
    let mut group = c.benchmark_group("web");
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("nethack_80x24", TermSize::new(80, 24), nethack_frames()),
        (
            "scrolling_180x50",
            TermSize::new(180, 50),
            scrolling_lines(),
        ),
    ];
    for (name, size, frames) in cases {
        let mut model = ScreenModel::new(size);
        for f in &frames {
            model.process(f);
        }
        let raw: usize = frames.iter().map(|f| f.len()).sum::<usize>() / frames.len();
        let screen = Bytes::from(model.snapshot());
        eprintln!(
            "{name}: a frame {raw} bytes on the wire (its own), a keyframe {} bytes; \
             the keyframe is renewed every {} frames",
            screen.len(),
            feed::REFRESH_FRAMES
        );
        group.bench_function(format!("keyframe_{name}"), |b| {
            b.iter(|| {
                let screen = Bytes::from(model.snapshot());
                black_box(wire::snapshot(1, size, 0, screen))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, keyframes);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
