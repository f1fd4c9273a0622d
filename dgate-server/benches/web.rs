//! The browser viewer's encoding: the cost of turning one frame into the
//! JSON row delta a page gets, and its size against the raw frame (what
//! gRPC and SSH viewers get). Run with `cargo bench -p dgate-server --bench web`;
//! the figures are in docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use dgate_server::config::TermSize;
use dgate_server::web::screen_json::{changed_rows, rows};
use dgate_term::ScreenModel;

mod frames;
use frames::nethack_frames;

fn delta(c: &mut Criterion) {
    let frames = nethack_frames();
    let mut model = ScreenModel::new(TermSize::new(80, 24));
    for f in &frames {
        model.process(f);
    }
    let mut shown = rows(model.screen());

    // Sizes over 10,000 frames: raw bytes against the JSON a page is sent.
    let (mut raw, mut json) = (0usize, 0usize);
    for i in 0..10_000 {
        let frame = &frames[i % frames.len()];
        model.process(frame);
        let lines = changed_rows(&mut shown, model.screen());
        raw += frame.len();
        json += serde_json::to_string(&lines).map(|s| s.len()).unwrap_or(0) + 60;
    }
    eprintln!(
        "per frame: raw {} bytes, JSON delta {} bytes ({:.2}x)",
        raw / 10_000,
        json / 10_000,
        json as f64 / raw as f64
    );

    let mut group = c.benchmark_group("web");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("delta_per_frame", |b| {
        b.iter(|| {
            model.process(&frames[i % frames.len()]);
            i += 1;
            let lines = changed_rows(&mut shown, model.screen());
            black_box(serde_json::to_string(&lines).map(|s| s.len()).unwrap_or(0))
        })
    });
    group.finish();
}

criterion_group!(benches, delta);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
