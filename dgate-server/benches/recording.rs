//! Benchmarks of recording and replay: what the recorder costs the hub (frames
//! published per second with and without a recorder attached), and what a
//! one-hour recording costs to open (the keyframe index) and to seek in. Run
//! with `cargo bench -p dgate-server --bench recording`; the figures are in
//! docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group};
use dgate_server::broadcast::{GameExit, HubOptions, pipeline};
use dgate_server::config::TermSize;
use dgate_server::game::recorder::write_deliveries;
use dgate_term::recording::{Options, Recording, RecordingMeta};
use dgate_term::ttyrec::Record;

mod frames;
use frames::nethack_frames;

/// Publishing with a recorder attached: the recorder runs on its own thread
/// (as in the server) and writes a real file; the hub never waits for it.
fn recorder_overhead(c: &mut Criterion) {
    let frames = nethack_frames();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("recording");
    group.throughput(Throughput::Elements(1));

    let (hub, _resizer) = pipeline(HubOptions::new(TermSize::new(80, 24), 1024));
    let mut i = 0usize;
    group.bench_function("publish_without_recorder", |b| {
        b.iter(|| {
            black_box(hub.publish(frames[i % frames.len()].clone()));
            i += 1;
        })
    });

    let (hub, _resizer) = pipeline(HubOptions::new(TermSize::new(80, 24), 1024));
    let mut subscription = hub.hub().subscribe();
    let dir = tempfile::tempdir().expect("temporary dir");
    let path = dir.path().join("bench.ttyrec");
    let handle = runtime.handle().clone();
    let recorder = std::thread::spawn(move || {
        let mut file = std::fs::File::create(&path).expect("recording file");
        let mut meta = RecordingMeta::new(
            "bench",
            "bench",
            "bench",
            TermSize::new(80, 24),
            String::new(),
        );
        write_deliveries(
            &mut subscription,
            &handle,
            Some(&mut file),
            &mut meta,
            u64::MAX,
            |_| {},
        );
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        (meta, bytes)
    });
    let mut published = 0u64;
    group.bench_function("publish_with_recorder", |b| {
        b.iter(|| {
            black_box(hub.publish(frames[i % frames.len()].clone()));
            i += 1;
            published += 1;
        })
    });
    group.finish();
    hub.end(GameExit::Exited { code: 0 });
    let (meta, bytes) = recorder.join().expect("recorder thread");
    eprintln!(
        "recorder: {published} frames published, {} written as frames, {} resyncs, {} MiB on disk",
        meta.frames,
        meta.resyncs,
        bytes >> 20
    );
}

/// One hour of play at 30 frames a second: 108,000 NetHack-shaped frames.
fn one_hour() -> Vec<Record> {
    let frames = nethack_frames();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    (0..108_000u32)
        .map(|i| Record {
            time: start + Duration::from_micros(u64::from(i) * 33_333),
            data: frames[i as usize % frames.len()].to_vec(),
        })
        .collect()
}

fn replay(c: &mut Criterion) {
    let records = one_hour();
    let mut group = c.benchmark_group("replay_one_hour");
    group.sample_size(10);
    group.bench_function("open_and_index", |b| {
        b.iter(|| black_box(Recording::new(records.clone(), &Options::default())))
    });
    let recording = Recording::new(records, &Options::default());
    eprintln!(
        "one hour: {} frames, {} keyframes, {:?} long",
        recording.frame_count(),
        recording.keyframe_count(),
        recording.duration()
    );
    group.sample_size(100);
    // Seek to points spread over the hour, in no useful order.
    let mut at = 0u64;
    group.bench_function("seek", |b| {
        b.iter(|| {
            at = (at + 1_234_567) % 3_600_000;
            black_box(recording.screen_at(Duration::from_millis(at)))
        })
    });
    group.finish();
}

criterion_group!(benches, recorder_overhead, replay);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
