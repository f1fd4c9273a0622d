//! What replays cost the server's memory: a real server (in this process)
//! replays one big recording to N gRPC clients at once, at 16x, and the
//! process's resident memory is sampled while they play. Not a criterion
//! benchmark (memory, not time); run with
//!
//! ```sh
//! cargo bench -p dgate-server --bench replay_memory -- [MEGABYTES] [REPLAYS] [SECONDS]
//! ```
//!
//! (defaults 200 MB of output, 8 replays, 20 s). The figures are in
//! docs/BENCHMARKS.md.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dgate_proto::pb;
use dgate_proto::pb::game_service_client::GameServiceClient;
use dgate_proto::pb::recording_control::Control;
use dgate_server::{Config, Listeners, SessionManager};
use dgate_term::TermSize;
use dgate_term::recording::RecordingMeta;
use dgate_term::ttyrec::write_record;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A gzipped recording of `megabytes` of coloured, scrolling game output,
/// with its metadata, as the recorder leaves one.
fn write_recording(directory: &std::path::Path, megabytes: usize) -> String {
    let dir = directory.join("bench/nethack");
    std::fs::create_dir_all(&dir).expect("dir");
    let start = "2026-01-01T00:00:00.000Z";
    let path = dir.join(format!("{start}.ttyrec.gz"));
    let file = std::fs::File::create(&path).expect("create");
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let mut written = 0usize;
    let mut i = 0u64;
    while written < megabytes << 20 {
        let mut frame = Vec::with_capacity(2100);
        for line in 0..8 {
            let _ = write!(
                frame,
                "\x1b[3{}m{:>6} line {line} of frame {i}: the quick brown fox jumps over \
                 the lazy dog, again and again, {}\x1b[0m\r\n",
                (i + line) % 8,
                i,
                "#".repeat(((i + line) % 90) as usize)
            );
        }
        write_record(&mut gz, t0 + Duration::from_millis(i * 40), &frame).expect("record");
        written += frame.len();
        i += 1;
    }
    gz.finish().expect("gzip");
    let mut meta = RecordingMeta::new(
        "bench",
        "bench",
        "nethack",
        TermSize::new(80, 24),
        start.into(),
    );
    meta.recording = format!("{start}.ttyrec.gz");
    meta.frames = i;
    meta.end = start.into();
    std::fs::write(
        dir.join(format!("{start}.ttyrec.json")),
        serde_json::to_vec(&meta).expect("json"),
    )
    .expect("meta");
    format!("bench/nethack/{start}.ttyrec")
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are ours.
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let megabytes = numbers.first().copied().unwrap_or(200);
    let replays = numbers.get(1).copied().unwrap_or(8);
    let seconds = numbers.get(2).copied().unwrap_or(20) as u64;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run(megabytes, replays, seconds));
}

async fn run(megabytes: usize, replays: usize, seconds: u64) {
    let data = tempfile::tempdir().expect("data dir");
    let mut config = Config::embedded();
    config.data_dir = data.path().to_owned();
    config.session_management.ttyrec.directory = data.path().join("ttyrec");
    config.ssh.enabled = false;
    let written = Instant::now();
    let id = write_recording(&config.session_management.ttyrec.directory, megabytes);
    println!(
        "wrote a {megabytes} MB recording ({:.1} MB gzipped) in {:.1} s",
        std::fs::read_dir(data.path().join("ttyrec/bench/nethack"))
            .expect("dir")
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len() as f64 / 1e6)
            .fold(0.0, f64::max),
        written.elapsed().as_secs_f64()
    );
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", grpc.local_addr().expect("addr"));
    let manager = SessionManager::new(Arc::new(config));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dgate_server::serve(
        manager,
        Listeners {
            grpc,
            http,
            ssh: None,
            metrics: None,
        },
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = rss_mib();
    println!("server RSS before the replays: {baseline:.1} MiB");

    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..replays {
        let (url, id, received) = (url.clone(), id.clone(), Arc::clone(&received));
        tasks.push(tokio::spawn(async move {
            let mut client = GameServiceClient::connect(url).await.expect("connect");
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let open = |control| pb::RecordingControl {
                control: Some(control),
            };
            let _ = tx
                .send(open(Control::Open(pb::OpenRecording {
                    recording_id: id,
                    max_idle_seconds: 0.0,
                })))
                .await;
            let _ = tx.send(open(Control::Speed(16.0))).await;
            let mut events = client
                .stream_recording(ReceiverStream::new(rx))
                .await
                .expect("replay")
                .into_inner();
            while let Ok(Some(event)) = events.message().await {
                if let Some(pb::recording_event::Event::Frame(f)) = event.event {
                    received.fetch_add(f.data.len(), std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(tx);
        }));
    }
    let mut peak = baseline;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(rss_mib());
    }
    println!(
        "{replays} replays of one {megabytes} MB recording at 16x for {seconds} s: \
         peak RSS {peak:.1} MiB, +{:.1} MiB over the idle server; \
         the replays received {:.1} MB of frames",
        peak - baseline,
        received.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6
    );
    for task in &tasks {
        task.abort();
    }
    let _ = stop.send(());
    let _ = server.await;
}
