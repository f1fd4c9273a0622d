//! One load run: games started as players, viewers joined all at once over
//! one transport, measured for a fixed time (optionally with a fraction of
//! viewers paused for the second half), then the games draw their last frame
//! and every checked viewer's screen is compared with its player's.
//!
//! With `--chat RATE` each game's player says RATE lines a second in the
//! game's chat while measuring (the server we start lets a user say that
//! many; a running server must allow it in `spectating.chat.lines_per_10s`).
//! Every reading viewer must receive every line once, in order; each line's
//! latency is from its `sent_at` (the server's clock, the machine's) to its
//! receipt.
//!
//! On a cluster (`--nodes`) the games run on node 1 and each viewer watches
//! on its node (`cluster::placement`) once that node lists the games; its
//! latency also counts in its node's histogram, and `cluster::Window` takes
//! every node's CPU and metrics over the measured window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use dgate_proto::pb;
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::{NodeViewers, Servers, Window};
use crate::player::{chatter, start_player, stop_game};
use crate::report::{ChatFigures, Latency, Report, ServerFigures};
use crate::server::Target;
use crate::tracker::{ChatCounts, ChatTrack, Counts, Tracker};
use crate::viewer::{self, Got, GrpcSource, Source, SshSource, WsSource};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Grpc,
    #[value(name = "ws")]
    WebSocket,
    Ssh,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Grpc => "gRPC",
            Self::WebSocket => "WebSocket",
            Self::Ssh => "SSH",
        })
    }
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub transport: Transport,
    pub sessions: usize,
    pub viewers: usize,
    pub duration: Duration,
    /// Fraction of viewers that stop reading for the second half.
    pub paused: f64,
    /// Viewers whose screens are compared with the player's at the end.
    pub check: usize,
    pub cols: u16,
    pub rows: u16,
    pub progress: bool,
    /// Chat lines each game's player says per second while measuring.
    pub chat: f64,
    /// The nodes (1-based) the viewers watch on, in equal blocks
    /// (`cluster::placement`); `[1]` on a single server.
    pub viewers_on: Vec<usize>,
}

/// Where the run is; a viewer's latencies count only in `Steady` and `Paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Steady,
    Paused,
    Drain,
}

/// What every task shares.
struct Shared {
    phase: watch::Receiver<Phase>,
    stop: CancellationToken,
    steady: Mutex<Histogram<u64>>,
    during_pause: Mutex<Histogram<u64>>,
    player: Mutex<Histogram<u64>>,
    /// Chat lines, `sent_at` to receipt, at reading viewers.
    chat: Mutex<Histogram<u64>>,
    joins: Mutex<Vec<Duration>>,
    joined: AtomicU64,
    frames: AtomicU64,
    lost: AtomicU64,
    resyncs: AtomicU64,
    /// Bytes the reading viewers received while measuring (unpaused).
    window_bytes: AtomicU64,
    /// `steady` again, by the node the viewer watches on.
    steady_by_node: Vec<Mutex<Histogram<u64>>>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, three significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

/// What one viewer (or player) ends with.
#[derive(Debug)]
struct Outcome {
    session: usize,
    /// The node (0-based) it watched on.
    node: usize,
    counts: Counts,
    ended: bool,
    last_seq: Option<u64>,
    rows: Option<Vec<String>>,
    why_closed: Option<String>,
    chat: ChatTrack,
    /// The server's answers to this stream's chat lines (refusals).
    chat_answers: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Player,
    Viewer { pausable: bool },
}

/// Reads `source` until the firehose's end mark (or a stop), accounting
/// every message; `joined_after` is measured from `start` to the first screen.
async fn follow<S: Source>(
    mut source: S,
    (session, node): (usize, usize),
    role: Role,
    shared: Arc<Shared>,
    start: Instant,
) -> Outcome {
    let mut tracker = Tracker::new(source.frame_ids());
    let mut phase_rx = shared.phase.clone();
    let mut buffered = *phase_rx.borrow();
    let mut first_screen = true;
    let mut why_closed = None;
    let mut counted = Counts::default();
    let mut chat = ChatTrack::default();
    let mut chat_answers = 0;
    loop {
        if role == (Role::Viewer { pausable: true }) && *phase_rx.borrow() == Phase::Paused {
            let _ = phase_rx.wait_for(|p| *p != Phase::Paused).await;
        }
        let got = tokio::select! {
            biased;
            got = source.next() => got,
            () = shared.stop.cancelled() => break,
        };
        let got = match got {
            Ok(got) => got,
            Err(e) => {
                why_closed = Some(format!("{e:#}"));
                break;
            }
        };
        let now = crate::stamp::now_micros();
        match got {
            Got::Snapshot {
                frame_id,
                skipped,
                resync,
            } => {
                tracker.snapshot(frame_id, skipped, resync, source.payload());
                if first_screen {
                    first_screen = false;
                    if role != Role::Player {
                        lock(&shared.joins).push(start.elapsed());
                        shared.joined.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Got::Frame { frame_id } => tracker.frame(frame_id, source.payload(), now),
            Got::Chat { answer: true, .. } => chat_answers += 1,
            Got::Chat {
                id,
                sent_micros,
                history,
                answer: false,
            } => {
                chat.line(id);
                if !history && role == (Role::Viewer { pausable: false }) {
                    lock(&shared.chat).saturating_record(now.saturating_sub(sent_micros).max(1));
                }
            }
            Got::Other => {}
            Got::Ended(why) => {
                why_closed = Some(why);
                break;
            }
        }
        let phase = *phase_rx.borrow();
        if phase != buffered || tracker.latencies.len() >= 256 {
            flush(&mut tracker, &mut counted, (buffered, node), role, &shared);
            buffered = phase;
        }
        if tracker.ended {
            break;
        }
    }
    flush(&mut tracker, &mut counted, (buffered, node), role, &shared);
    Outcome {
        session,
        node,
        counts: tracker.counts,
        ended: tracker.ended,
        last_seq: tracker.last_seq,
        rows: source.screen_rows(),
        why_closed,
        chat,
        chat_answers,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hands the buffered latencies to the histogram of `phase` (and of the
/// viewer's node), and the counts so far to the progress line.
fn flush(
    tracker: &mut Tracker,
    counted: &mut Counts,
    (phase, node): (Phase, usize),
    role: Role,
    shared: &Shared,
) {
    let histogram = match (role, phase) {
        (Role::Player, Phase::Steady | Phase::Paused) => Some(&shared.player),
        (Role::Viewer { pausable: false }, Phase::Steady) => Some(&shared.steady),
        (Role::Viewer { pausable: false }, Phase::Paused) => Some(&shared.during_pause),
        _ => None,
    };
    if let Some(histogram) = histogram {
        let mut histogram = lock(histogram);
        for &micros in &tracker.latencies {
            histogram.saturating_record(micros.max(1));
        }
    }
    if role == (Role::Viewer { pausable: false })
        && phase == Phase::Steady
        && let Some(histogram) = shared.steady_by_node.get(node)
    {
        let mut histogram = lock(histogram);
        for &micros in &tracker.latencies {
            histogram.saturating_record(micros.max(1));
        }
    }
    tracker.latencies.clear();
    if role == (Role::Viewer { pausable: false }) && phase == Phase::Steady {
        shared
            .window_bytes
            .fetch_add(tracker.counts.bytes - counted.bytes, Ordering::Relaxed);
    }
    if role != Role::Player {
        let now = tracker.counts;
        shared
            .frames
            .fetch_add(now.frames - counted.frames, Ordering::Relaxed);
        shared
            .lost
            .fetch_add(now.lost - counted.lost, Ordering::Relaxed);
        shared
            .resyncs
            .fetch_add(now.resyncs - counted.resyncs, Ordering::Relaxed);
        *counted = now;
    }
}

/// How a viewer reaches the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dial {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    pub ssh: std::net::SocketAddr,
    pub transport: Transport,
    pub size: dgate_term::TermSize,
}

async fn connect_viewer(
    dial: Dial,
    (session_id, player): (String, String),
    (session, node): (usize, usize),
    role: Role,
    check: bool,
    shared: Arc<Shared>,
) -> Outcome {
    let start = Instant::now();
    let failed = |e: anyhow::Error| Outcome {
        session,
        node,
        counts: Counts::default(),
        ended: false,
        last_seq: None,
        rows: None,
        why_closed: Some(format!("{e:#}")),
        chat: ChatTrack::default(),
        chat_answers: 0,
    };
    match dial.transport {
        Transport::Grpc => {
            let source = match viewer::channel(dial.grpc).await {
                Ok(channel) => GrpcSource::spectator(channel, &session_id, check).await,
                Err(e) => Err(e),
            };
            match source {
                Ok(source) => follow(source, (session, node), role, shared, start).await,
                Err(e) => failed(e),
            }
        }
        Transport::WebSocket => match WsSource::connect(dial.http, &session_id, check).await {
            Ok(source) => follow(source, (session, node), role, shared, start).await,
            Err(e) => failed(e),
        },
        Transport::Ssh => match SshSource::connect(dial.ssh, &player, dial.size, check).await {
            Ok(source) => follow(source, (session, node), role, shared, start).await,
            Err(e) => failed(e),
        },
    }
}

pub async fn run(servers: &Servers, plan: &Plan) -> anyhow::Result<Report> {
    if plan.sessions == 0 || plan.viewers == 0 {
        bail!("a run needs at least one session and one viewer");
    }
    let target = servers.first();
    let clustered = servers.nodes.len() > 1;
    let placement = crate::cluster::placement(plan.viewers, &plan.viewers_on, servers.nodes.len())?;
    let (phase_tx, phase_rx) = watch::channel(Phase::Warmup);
    let shared = Arc::new(Shared {
        phase: phase_rx,
        stop: CancellationToken::new(),
        steady: Mutex::new(histogram()),
        during_pause: Mutex::new(histogram()),
        player: Mutex::new(histogram()),
        chat: Mutex::new(histogram()),
        joins: Mutex::new(Vec::with_capacity(plan.viewers)),
        joined: AtomicU64::new(0),
        frames: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        resyncs: AtomicU64::new(0),
        window_bytes: AtomicU64::new(0),
        steady_by_node: servers
            .nodes
            .iter()
            .map(|_| Mutex::new(histogram()))
            .collect(),
    });

    // The games, each with its player reading along.
    let mut sessions = Vec::new();
    let mut players = Vec::new();
    for index in 0..plan.sessions {
        let size = dgate_term::TermSize::new(plan.cols, plan.rows);
        let player = start_player(target.grpc, &target.game_id, index, size).await?;
        sessions.push((
            player.session_id.clone(),
            player.token.clone(),
            player.username.clone(),
        ));
        let input = player.stream.input.clone();
        let follow_player = follow(
            player.stream,
            (index, 0),
            Role::Player,
            Arc::clone(&shared),
            Instant::now(),
        );
        players.push((input, tokio::spawn(follow_player)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    if clustered {
        // The viewers' nodes must list the games before viewers join there.
        let ids: Vec<String> = sessions.iter().map(|s| s.0.clone()).collect();
        let mut watching: Vec<&Target> = placement.iter().map(|&n| &servers.nodes[n]).collect();
        watching.dedup_by(|a, b| std::ptr::eq(*a, *b));
        crate::cluster::wait_listed(&watching, &ids).await?;
    }
    let baseline = target
        .pid
        .and_then(|pid| crate::proc_stats::sample(pid).ok());

    // Every viewer at once.
    let paused_count = (plan.viewers as f64 * plan.paused).round() as usize;
    let stride = (plan.viewers / plan.check.max(1)).max(1);
    let mut viewers = Vec::with_capacity(plan.viewers);
    let dial = |node: &Target| Dial {
        grpc: node.grpc,
        http: node.http,
        ssh: node.ssh,
        transport: plan.transport,
        size: dgate_term::TermSize::new(plan.cols, plan.rows),
    };
    let join_started = Instant::now();
    for (v, &node) in placement.iter().enumerate() {
        let session = v % plan.sessions;
        let role = Role::Viewer {
            pausable: v >= plan.viewers - paused_count,
        };
        let check = plan.check > 0 && v % stride == 0;
        viewers.push(tokio::spawn(connect_viewer(
            dial(&servers.nodes[node]),
            (sessions[session].0.clone(), sessions[session].2.clone()),
            (session, node),
            role,
            check,
            Arc::clone(&shared),
        )));
    }

    let progress = if plan.progress {
        indicatif::ProgressBar::new(plan.duration.as_secs().max(1))
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let status = |shared: &Shared, phase: &str| {
        format!(
            "{phase}: {}/{} joined, {} frames, {} lost, {} resyncs",
            shared.joined.load(Ordering::Relaxed),
            plan.viewers,
            shared.frames.load(Ordering::Relaxed),
            shared.lost.load(Ordering::Relaxed),
            shared.resyncs.load(Ordering::Relaxed),
        )
    };
    let join_deadline = Instant::now() + Duration::from_secs(60);
    while (shared.joined.load(Ordering::Relaxed) as usize) < plan.viewers
        && Instant::now() < join_deadline
        && !viewers.iter().all(|v| v.is_finished())
    {
        progress.set_message(status(&shared, "joining"));
        progress.tick();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joined_in = join_started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Measure.
    let loaded = target
        .pid
        .and_then(|pid| crate::proc_stats::sample(pid).ok());
    let me_before = crate::proc_stats::sample(std::process::id()).ok();
    let mut window = if clustered {
        Some(Window::open(servers).await)
    } else {
        None
    };
    let _ = phase_tx.send(Phase::Steady);
    let started = Instant::now();
    // Each game's player chats while measuring.
    let chat_stop = CancellationToken::new();
    let chatters: Vec<_> = if plan.chat > 0.0 {
        players
            .iter()
            .map(|(input, _)| tokio::spawn(chatter(input.clone(), plan.chat, chat_stop.clone())))
            .collect()
    } else {
        Vec::new()
    };
    let mut peak_rss = loaded.map_or(0, |s| s.rss_kib);
    let mut max_fds = loaded.map_or(0, |s| s.fds);
    let mut rss_at_pause = None;
    let pause_at = if paused_count > 0 {
        plan.duration / 2
    } else {
        plan.duration
    };
    while started.elapsed() < plan.duration {
        if started.elapsed() >= pause_at && *phase_tx.borrow() == Phase::Steady {
            let _ = phase_tx.send(Phase::Paused);
            rss_at_pause = target
                .pid
                .and_then(|pid| crate::proc_stats::sample(pid).ok())
                .map(|s| s.rss_kib as f64 / 1024.0);
        }
        if let Some(s) = target
            .pid
            .and_then(|pid| crate::proc_stats::sample(pid).ok())
        {
            peak_rss = peak_rss.max(s.rss_kib);
            max_fds = max_fds.max(s.fds);
        }
        if let Some(window) = &mut window {
            window.watch(servers);
        }
        let phase = if *phase_tx.borrow() == Phase::Paused {
            "paused"
        } else {
            "steady"
        };
        progress.set_position(started.elapsed().as_secs());
        progress.set_message(status(&shared, phase));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finished = target
        .pid
        .and_then(|pid| crate::proc_stats::sample(pid).ok());
    let me_after = crate::proc_stats::sample(std::process::id()).ok();
    let closed = match window {
        Some(window) => Some(window.close(servers).await),
        None => None,
    };
    let window = started.elapsed().as_secs_f64();
    chat_stop.cancel();
    let mut chat_sent = 0;
    for chatter in chatters {
        chat_sent += chatter.await?;
    }
    // Frames after the window are not measured.
    let _ = phase_tx.send(Phase::Drain);
    if plan.chat > 0.0 {
        // The last lines reach every viewer before the game's last frame.
        progress.set_message(status(&shared, "chat settling"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The last frame: every viewer (the paused ones too, now reading again)
    // must reach it, and then shows what its player shows.
    progress.set_message(status(&shared, "draining"));
    for (input, _) in &players {
        let keys = pb::GameIoRequest {
            request: Some(pb::game_io_request::Request::Input(pb::PtyInput {
                session_id: String::new(),
                data: bytes::Bytes::from_static(b"s"),
            })),
        };
        let _ = input.send(keys).await;
    }
    let drain_deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < drain_deadline
        && !(viewers.iter().all(|v| v.is_finished()) && players.iter().all(|p| p.1.is_finished()))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop.cancel();
    progress.finish_and_clear();

    let mut player_outcomes = Vec::new();
    for (_, task) in players {
        player_outcomes.push(task.await?);
    }
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(viewers.len());
    for task in viewers {
        outcomes.push(task.await?);
    }
    for (session_id, token, _) in &sessions {
        let _ = stop_game(target, session_id, token).await;
    }

    // Each game's chat carried as many lines as the newest id anyone saw.
    let mut said = vec![0u64; plan.sessions];
    for outcome in player_outcomes.iter().chain(&outcomes) {
        if let Some(said) = said.get_mut(outcome.session) {
            *said = (*said).max(outcome.chat.last_id);
        }
    }
    let mut chat_counts = ChatCounts::default();
    let mut chat_complete = 0;
    for (v, outcome) in outcomes.iter_mut().enumerate() {
        if v >= plan.viewers - paused_count {
            continue;
        }
        outcome
            .chat
            .finish(said.get(outcome.session).copied().unwrap_or(0));
        chat_counts += outcome.chat.counts;
        if outcome.chat.counts.lost == 0 && outcome.chat.counts.disorder == 0 {
            chat_complete += 1;
        }
    }
    let chat = (plan.chat > 0.0).then(|| ChatFigures {
        rate: plan.chat,
        sent: chat_sent,
        said: said.iter().sum(),
        refused: player_outcomes.iter().map(|p| p.chat_answers).sum(),
        latency: Latency::of(&lock(&shared.chat)),
        viewers: chat_counts,
        viewers_complete: chat_complete,
        viewers_reading: plan.viewers - paused_count,
    });

    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut unfinished = 0;
    let (mut checked, mut differing) = (0, 0);
    for outcome in &outcomes {
        counts += outcome.counts;
        if !outcome.ended {
            unfinished += 1;
            if let Some(why) = &outcome.why_closed {
                failures.push(why.clone());
            }
        }
        if let Some(rows) = &outcome.rows {
            checked += 1;
            let player = player_outcomes
                .iter()
                .find(|p| p.session == outcome.session)
                .and_then(|p| p.rows.as_ref());
            if player != Some(rows) {
                differing += 1;
            }
        }
    }
    failures.sort();
    failures.dedup();
    // The players' frames in the window: every stamp they got meanwhile.
    let cluster = closed.map(|closed| {
        let by_node = by_node(&outcomes, &shared.steady_by_node);
        closed.figures(servers, &by_node, lock(&shared.player).len())
    });
    let mut player_counts = Counts::default();
    for p in &player_outcomes {
        player_counts += p.counts;
    }
    let published: u64 = player_outcomes.iter().filter_map(|p| p.last_seq).sum();
    let joins = lock(&shared.joins).clone();
    let (warnings, first_warnings) = target.warnings();
    let server = match (baseline, loaded, finished) {
        (Some(baseline), Some(loaded), Some(finished)) => Some(ServerFigures {
            cpu_per_second: crate::proc_stats::cpu_rate(&loaded, &finished),
            rss_mib_baseline: baseline.rss_kib as f64 / 1024.0,
            rss_mib_peak: peak_rss as f64 / 1024.0,
            rss_kib_per_viewer: (peak_rss.saturating_sub(baseline.rss_kib)) as f64
                / plan.viewers as f64,
            rss_mib_at_pause: rss_at_pause,
            rss_mib_at_end: finished.rss_kib as f64 / 1024.0,
            fds: max_fds,
            threads: finished.threads,
            warnings,
            first_warnings,
        }),
        _ => None,
    };
    let bench_cpu = match (me_before, me_after) {
        (Some(a), Some(b)) => Some(crate::proc_stats::cpu_rate(&a, &b)),
        _ => None,
    };
    // Every stamp a reading viewer received while measuring is one sample.
    let frames_in_window = lock(&shared.steady).len() + lock(&shared.during_pause).len();
    let viewer_frames_per_second = frames_in_window as f64 / window;
    let reading = (plan.viewers - paused_count).max(1) as f64;
    // With paused viewers the window is the first half.
    let steady = if paused_count > 0 {
        window / 2.0
    } else {
        window
    };
    let bytes_per_viewer_per_second =
        shared.window_bytes.load(Ordering::Relaxed) as f64 / reading / steady;
    Ok(Report {
        transport: plan.transport,
        sessions: plan.sessions,
        viewers: plan.viewers,
        paused_viewers: paused_count,
        duration_s: plan.duration.as_secs_f64(),
        frames_published: published,
        latency: Latency::of(&lock(&shared.steady)),
        latency_while_paused: (paused_count > 0).then(|| Latency::of(&lock(&shared.during_pause))),
        player_latency: Latency::of(&lock(&shared.player)),
        player: player_counts,
        viewers_total: counts,
        join_ms: crate::report::join_figures(&joins),
        joined_within_s: joined_in.as_secs_f64(),
        joined: joins.len(),
        unfinished,
        failures,
        screens_checked: checked,
        screens_differing: differing,
        server,
        server_cpu_us_per_viewer_frame: None,
        bench_cpu_per_second: bench_cpu,
        viewer_frames_per_second,
        bytes_per_viewer_per_second,
        chat,
        cluster,
    }
    .with_per_frame_cost())
}

/// What each node's viewers saw (`[n]` is node n + 1's).
fn by_node(outcomes: &[Outcome], steady_by_node: &[Mutex<Histogram<u64>>]) -> Vec<NodeViewers> {
    let mut nodes: Vec<NodeViewers> = steady_by_node
        .iter()
        .map(|h| NodeViewers {
            latency: Latency::of(&lock(h)),
            ..NodeViewers::default()
        })
        .collect();
    for outcome in outcomes {
        if let Some(node) = nodes.get_mut(outcome.node) {
            node.viewers += 1;
            node.counts += outcome.counts;
            if !outcome.ended {
                node.unfinished += 1;
            }
        }
    }
    nodes
}
