//! `dgate-bench alis`: the same viewers, latency and cost figures against
//! asciinema's live stream (`asciinema stream --local`), to set dgate's
//! browser socket beside it in one sitting (docs/BENCHMARKS.md). The stream
//! runs the firehose (`--scroll` for scrolling lines); each viewer speaks
//! ALiS (`v1.alis`, binary messages: an init with the terminal's state, then
//! output events) and finds the firehose's stamps in the bytes, as dgate's
//! viewers do. asciinema has no player to press `s`, so no final screen is
//! compared; loss is counted on the stamps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::report::{JoinFigures, Latency, join_figures};
use crate::tracker::Tracker;

#[derive(Debug, Clone, clap::Args)]
pub struct AlisArgs {
    /// The stream's WebSocket, e.g. ws://127.0.0.1:8999/ws.
    #[arg(long)]
    url: String,
    /// Viewers, all joining at once (at most 20,000).
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Seconds measured after every viewer has joined (at most 3,600).
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// The streaming process (asciinema), for its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
pub struct AlisReport {
    viewers: usize,
    joined: usize,
    duration_s: f64,
    latency: Latency,
    join_ms: JoinFigures,
    /// Stamps that never arrived (counted on the stamps' numbers).
    lost: u64,
    viewer_frames_per_second: f64,
    bytes_per_viewer_per_second: f64,
    cpu_per_second: Option<f64>,
    server_cpu_us_per_viewer_frame: Option<f64>,
    rss_kib_per_viewer: Option<f64>,
    rss_mib_baseline: Option<f64>,
    rss_mib_peak: Option<f64>,
}

struct Shared {
    measuring: AtomicBool,
    latencies: Mutex<Histogram<u64>>,
    joins: Mutex<Vec<Duration>>,
    window_bytes: AtomicU64,
    lost: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn run(args: &AlisArgs) -> anyhow::Result<bool> {
    if args.viewers == 0 || args.viewers > 20_000 || !(1.0..=3600.0).contains(&args.seconds) {
        anyhow::bail!("a run is bounded: 1 to 20,000 viewers, 1 to 3,600 seconds");
    }
    let url: url_host::Loopback = args.url.parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(measure(args, url.0))?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let l = &report.latency;
        println!(
            "{} ALiS viewers ({} joined), {:.0} s: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms \
             ({} samples), lost {}; join p50 {:.1} ms, max {:.1} ms; {:.0} B/s per viewer; \
             server {} µs per viewer-frame ({}% of a core), {} KiB RSS per viewer",
            report.viewers,
            report.joined,
            report.duration_s,
            l.p50_ms,
            l.p99_ms,
            l.p999_ms,
            l.samples,
            report.lost,
            report.join_ms.p50_ms,
            report.join_ms.max_ms,
            report.bytes_per_viewer_per_second,
            report
                .server_cpu_us_per_viewer_frame
                .map_or("-".into(), |us| format!("{us:.2}")),
            report
                .cpu_per_second
                .map_or("-".into(), |c| format!("{:.1}", c * 100.0)),
            report
                .rss_kib_per_viewer
                .map_or("-".into(), |k| format!("{k:.1}")),
        );
    }
    Ok(true)
}

async fn measure(args: &AlisArgs, url: String) -> anyhow::Result<AlisReport> {
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        latencies: Mutex::new(
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid"),
        ),
        joins: Mutex::new(Vec::new()),
        window_bytes: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    });
    let sample = || {
        args.server_pid
            .and_then(|pid| crate::proc_stats::sample(pid).ok())
    };
    let baseline = sample();
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let mut viewers = Vec::with_capacity(args.viewers);
    for _ in 0..args.viewers {
        let (url, shared, stop) = (url.clone(), Arc::clone(&shared), stop.clone());
        viewers.push(tokio::spawn(async move {
            tokio::select! {
                result = watch(&url, &shared, started) => result,
                () = stop.cancelled() => Ok(()),
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while lock(&shared.joins).len() < args.viewers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = sample();
    let mut peak = loaded.as_ref().map_or(0, |s| s.rss_kib);
    shared.measuring.store(true, Ordering::SeqCst);
    let window = Duration::from_secs_f64(args.seconds);
    let measuring = Instant::now();
    while measuring.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(s) = sample() {
            peak = peak.max(s.rss_kib);
        }
    }
    shared.measuring.store(false, Ordering::SeqCst);
    let finished = sample();
    let seconds = measuring.elapsed().as_secs_f64();
    stop.cancel();
    let mut failures = Vec::new();
    for viewer in viewers {
        if let Ok(Err(e)) = viewer.await {
            failures.push(format!("{e:#}"));
        }
    }
    if let Some(first) = failures.first() {
        eprintln!("{} viewers failed; the first: {first}", failures.len());
    }
    let latency = Latency::of(&lock(&shared.latencies));
    let joins = lock(&shared.joins).clone();
    let viewer_frames_per_second = latency.samples as f64 / seconds;
    let cpu_per_second = match (&loaded, &finished) {
        (Some(a), Some(b)) => Some(crate::proc_stats::cpu_rate(a, b)),
        _ => None,
    };
    Ok(AlisReport {
        viewers: args.viewers,
        joined: joins.len(),
        duration_s: seconds,
        latency,
        join_ms: join_figures(&joins),
        lost: shared.lost.load(Ordering::Relaxed),
        viewer_frames_per_second,
        bytes_per_viewer_per_second: shared.window_bytes.load(Ordering::Relaxed) as f64
            / args.viewers as f64
            / seconds,
        cpu_per_second,
        server_cpu_us_per_viewer_frame: cpu_per_second
            .filter(|_| viewer_frames_per_second > 0.0)
            .map(|c| c * 1e6 / viewer_frames_per_second),
        rss_kib_per_viewer: baseline
            .as_ref()
            .map(|b| peak.saturating_sub(b.rss_kib) as f64 / args.viewers as f64),
        rss_mib_baseline: baseline.as_ref().map(|b| b.rss_kib as f64 / 1024.0),
        rss_mib_peak: args.server_pid.map(|_| peak as f64 / 1024.0),
    })
}

/// One viewer: the init (its first screen), then output events, each
/// scanned for stamps.
async fn watch(url: &str, shared: &Shared, started: Instant) -> anyhow::Result<()> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "v1.alis".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("WebSocket {url}"))?;
    let mut tracker = Tracker::new(false);
    let mut joined = false;
    let mut counted = (0u64, 0u64);
    while let Some(message) = socket.next().await {
        let data = match message? {
            Message::Binary(data) => data,
            Message::Close(_) => break,
            _ => continue,
        };
        let now = crate::stamp::now_micros();
        match data.first() {
            // The magic string, then the init: the terminal's state.
            Some(b'A') => continue,
            Some(0x01) => {
                tracker.snapshot(None, 0, joined, &data);
                if !joined {
                    joined = true;
                    lock(&shared.joins).push(started.elapsed());
                }
            }
            _ => tracker.frame(None, &data, now),
        }
        let measuring = shared.measuring.load(Ordering::Relaxed);
        if measuring {
            let mut histogram = lock(&shared.latencies);
            for &micros in &tracker.latencies {
                histogram.saturating_record(micros.max(1));
            }
            shared
                .window_bytes
                .fetch_add(tracker.counts.bytes - counted.0, Ordering::Relaxed);
            shared
                .lost
                .fetch_add(tracker.counts.lost - counted.1, Ordering::Relaxed);
        }
        tracker.latencies.clear();
        counted = (tracker.counts.bytes, tracker.counts.lost);
    }
    Ok(())
}

/// Only loopback streams are measured (this is a load tool).
mod url_host {
    pub struct Loopback(pub String);

    impl std::str::FromStr for Loopback {
        type Err = anyhow::Error;

        fn from_str(url: &str) -> anyhow::Result<Self> {
            let host = url
                .strip_prefix("ws://")
                .and_then(|rest| rest.split(['/', ':']).next())
                .unwrap_or("");
            match host.parse::<std::net::IpAddr>() {
                Ok(ip) if ip.is_loopback() => Ok(Self(url.to_owned())),
                _ => anyhow::bail!("only ws:// streams on a loopback address are measured"),
            }
        }
    }
}
