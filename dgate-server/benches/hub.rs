//! Benchmarks of the hub: frames into the hub (screen model included) for 1 to
//! 1,000 subscribers, snapshots, spectator registry updates, and the hub's
//! memory per idle subscriber. Run with `cargo bench -p dgate-server`; the
//! figures are recorded in docs/BENCHMARKS.md.

// A counting allocator measures the memory per subscriber; it needs `unsafe impl`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use dgate_server::broadcast::{HubOptions, Subscription, pipeline};
use dgate_server::broadcast::{Spectator, SpectatorRegistry};
use dgate_server::config::TermSize;

mod frames;
use frames::nethack_frames;

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Frames published between drains (below the queue size, so nobody lags).
const BATCH: usize = 256;

fn publish(c: &mut Criterion) {
    let frames = nethack_frames();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("hub_publish");
    group.throughput(Throughput::Elements(1));
    for subscribers in [0usize, 1, 10, 100, 1000] {
        let (hub, _resizer) = pipeline(HubOptions::new(TermSize::new(80, 24), 1024));
        let mut subs: Vec<Subscription> = (0..subscribers).map(|_| hub.hub().subscribe()).collect();
        rt.block_on(async {
            for s in &mut subs {
                s.next().await; // the join snapshot
            }
        });
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut done = 0u64;
                    let mut i = 0usize;
                    while done < iters {
                        let n = BATCH.min((iters - done) as usize);
                        let start = Instant::now();
                        for _ in 0..n {
                            black_box(hub.publish(frames[i % frames.len()].clone()));
                            i += 1;
                        }
                        total += start.elapsed();
                        // Subscribers read everything, outside the timing.
                        rt.block_on(async {
                            for s in &mut subs {
                                for _ in 0..n {
                                    black_box(s.next().await);
                                }
                            }
                        });
                        done += n as u64;
                    }
                    total
                });
            },
        );
    }
    group.finish();
}

/// The floor: the screen model alone, and bare vt100, on the same frames.
fn screen_model(c: &mut Criterion) {
    let frames = nethack_frames();
    let mut group = c.benchmark_group("screen_model");
    group.throughput(Throughput::Elements(1));
    let mut model = dgate_term::ScreenModel::new(TermSize::new(80, 24));
    let mut i = 0;
    group.bench_function("dgate_term_model", |b| {
        b.iter(|| {
            model.process(&frames[i % frames.len()]);
            i += 1;
        })
    });
    let mut parser = vt100::Parser::new(
        std::num::NonZeroU16::new(24).expect("rows"),
        std::num::NonZeroU16::new(80).expect("cols"),
        0,
    );
    group.bench_function("vt100_alone", |b| {
        b.iter(|| {
            parser.process(&frames[i % frames.len()]);
            i += 1;
        })
    });
    let mut terminal = dgate_term::vt::Terminal::new(80, 24);
    group.bench_function("vt_terminal", |b| {
        b.iter(|| {
            terminal.process(&frames[i % frames.len()]);
            i += 1;
        })
    });
    group.finish();
}

fn snapshot(c: &mut Criterion) {
    let (hub, _resizer) = pipeline(HubOptions::new(TermSize::new(80, 24), 16));
    for f in nethack_frames() {
        hub.publish(f);
    }
    // A full map screen.
    let mut map = Vec::new();
    for row in 2..22 {
        map.extend_from_slice(format!("\x1b[{row};1H").as_bytes());
        for col in 0..79 {
            map.extend_from_slice(if (row + col) % 11 == 0 {
                b"\x1b[34m#\x1b[0m"
            } else {
                b"."
            });
        }
    }
    hub.publish(Bytes::from(map));
    c.bench_function("snapshot_80x24", |b| {
        b.iter(|| black_box(hub.hub().snapshot()))
    });
}

fn registry(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry");
    for present in [10usize, 100, 1000] {
        let registry = SpectatorRegistry::new(present + 10, present + 10);
        for i in 0..present {
            let _ = registry.add(Arc::new(Spectator::new(i as i32, "viewer")));
        }
        let newcomer = Arc::new(Spectator::new(-1, "newcomer"));
        group.bench_with_input(BenchmarkId::new("add", present), &present, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let _ = black_box(registry.add(Arc::clone(&newcomer)));
                    total += start.elapsed();
                    registry.remove(&newcomer.id);
                }
                total
            });
        });
        group.bench_with_input(BenchmarkId::new("remove", present), &present, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let _ = registry.add(Arc::clone(&newcomer));
                    let start = Instant::now();
                    black_box(registry.remove(&newcomer.id));
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

/// Bytes the hub holds per idle subscriber (its slot, queue and bookkeeping).
fn memory_per_subscriber() {
    let (publisher, _resizer) = pipeline(HubOptions::new(TermSize::new(80, 24), 1024));
    let hub = publisher.hub();
    let keep: Vec<Subscription> = (0..10).map(|_| hub.subscribe()).collect();
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut subs = Vec::with_capacity(10_000);
    let after_vec = ALLOCATED.load(Ordering::Relaxed);
    for _ in 0..10_000 {
        subs.push(hub.subscribe());
    }
    // The join snapshots are the subscribers' own until read; read them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for s in &mut subs {
            s.next().await;
        }
    });
    let after = ALLOCATED.load(Ordering::Relaxed);
    let per = (after - after_vec) as f64 / 10_000.0;
    println!(
        "memory per idle subscriber: {per:.0} bytes (10,000 subscribers; {} bytes before)",
        before
    );
    drop((subs, keep));
}

criterion_group!(benches, publish, screen_model, snapshot, registry);

fn main() {
    memory_per_subscriber();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
