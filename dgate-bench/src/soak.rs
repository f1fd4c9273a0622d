//! The soak: for a bounded time, games start and end and spectators join and
//! leave continuously (hundreds a second, over gRPC and WebSocket, or SSH),
//! while the server's memory, open files and threads are sampled. At the end
//! every viewer has left and every game has ended, and the server must be
//! back where it started: no spectator registered, no connection counted,
//! no session running, no file left open.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use dgate_proto::pb;
use dgate_proto::pb::game_service_client::GameServiceClient;
use dgate_term::TermSize;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::player::start_player;
use crate::proc_stats;
use crate::run::{Dial, Transport};
use crate::server::Target;
use crate::tracker::{Counts, Tracker};
use crate::viewer::{self, Got, GrpcSource, Source, SshSource, WsSource};

#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub duration: Duration,
    /// Games running at once; each lives `game_seconds` (random in the range).
    pub sessions: usize,
    pub game_seconds: (f64, f64),
    pub joins_per_second: f64,
    /// How long a viewer stays (random in the range).
    pub stay_seconds: (f64, f64),
    pub max_viewers: usize,
    pub transports: Vec<Transport>,
    pub size: TermSize,
    pub progress: bool,
}

/// One reading of the server.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    pub at_s: f64,
    pub rss_mib: f64,
    pub fds: u64,
    pub threads: u64,
    pub viewers: u64,
    pub games: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub duration_s: f64,
    pub joins: u64,
    pub join_failures: u64,
    pub first_failures: Vec<String>,
    pub games_started: u64,
    pub games_ended: u64,
    pub viewers_total: Counts,
    /// Viewers whose visit did not end within the join limit, its stay and
    /// 10 s more (a stream that would not let go).
    pub stuck: u64,
    pub readings: Vec<Reading>,
    /// Before any game, and after everything ended.
    pub idle_before: Option<Reading>,
    pub idle_after: Option<Reading>,
    /// Spectators still registered once every viewer had left (games still running).
    pub spectators_left: u64,
    /// `spectator_connections_active`, summed over transports, at the end.
    pub connections_left: i64,
    pub sessions_left: u32,
    /// RSS growth from the first reading after the warm-up to the last.
    pub rss_growth_percent: f64,
}

impl SoakReport {
    pub fn is_sound(&self) -> bool {
        self.viewers_total.lost == 0
            && self.viewers_total.disorder == 0
            && self.stuck == 0
            && self.spectators_left == 0
            && self.connections_left == 0
            && self.sessions_left == 0
            && self.rss_growth_percent < 10.0
            && match (&self.idle_before, &self.idle_after) {
                (Some(before), Some(after)) => after.fds <= before.fds,
                _ => true,
            }
    }

    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "soak: {:.0} s, {} joins ({} failed), {} games started, {} ended",
            self.duration_s, self.joins, self.join_failures, self.games_started, self.games_ended
        );
        let _ = writeln!(
            out,
            "{:>8} {:>9} {:>7} {:>8} {:>8} {:>6}",
            "time s", "RSS MiB", "fds", "threads", "viewers", "games"
        );
        let mut row = |name: String, r: &Reading| {
            let _ = writeln!(
                out,
                "{name:>8} {:>9.1} {:>7} {:>8} {:>8} {:>6}",
                r.rss_mib, r.fds, r.threads, r.viewers, r.games
            );
        };
        if let Some(r) = &self.idle_before {
            row("idle".into(), r);
        }
        for r in &self.readings {
            row(format!("{:.0}", r.at_s), r);
        }
        if let Some(r) = &self.idle_after {
            row("end".into(), r);
        }
        let v = &self.viewers_total;
        let _ = writeln!(
            out,
            "viewers: {} frames, lost {}, out of order {}, resyncs {}; {} stuck",
            v.frames, v.lost, v.disorder, v.resyncs, self.stuck
        );
        let _ = writeln!(
            out,
            "at the end: {} spectators registered, {} connections counted, {} sessions; RSS grew {:.1}% after the warm-up",
            self.spectators_left,
            self.connections_left,
            self.sessions_left,
            self.rss_growth_percent
        );
        for failure in &self.first_failures {
            let _ = writeln!(out, "  failure: {failure}");
        }
        let _ = writeln!(
            out,
            "{}",
            if self.is_sound() {
                "sound: nothing lost, nothing stuck, everything released"
            } else {
                "NOT SOUND: see above"
            }
        );
        out
    }
}

/// A small, seedable random source (xorshift64).
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, (low, high): (f64, f64)) -> Duration {
        Duration::from_secs_f64(low + (high - low).max(0.0) * self.unit())
    }
}

#[derive(Default)]
struct Totals {
    joins: AtomicU64,
    failures: AtomicU64,
    first_failures: Mutex<Vec<String>>,
    connected: AtomicU64,
    stuck: AtomicU64,
    counts: Mutex<Counts>,
    games_started: AtomicU64,
    games_ended: AtomicU64,
}

impl Totals {
    fn failed(&self, why: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_failures.lock()
            && first.len() < 5
        {
            first.push(why);
        }
    }
}

/// The games running now: session id and player name.
type Live = Arc<Mutex<Vec<(String, String)>>>;

pub async fn soak(target: &Target, plan: &SoakPlan) -> anyhow::Result<SoakReport> {
    let started = Instant::now();
    let sample = |viewers: u64, games: u64| {
        target
            .pid
            .and_then(|pid| proc_stats::sample(pid).ok())
            .map(|s| Reading {
                at_s: started.elapsed().as_secs_f64(),
                rss_mib: s.rss_kib as f64 / 1024.0,
                fds: s.fds,
                threads: s.threads,
                viewers,
                games,
            })
    };
    let idle_before = sample(0, 0);
    let totals = Arc::new(Totals::default());
    let live: Live = Arc::new(Mutex::new(Vec::new()));
    let end = started + plan.duration;

    // The games: each slot starts one game after another until the end.
    let mut slots = Vec::new();
    for slot in 0..plan.sessions {
        slots.push(tokio::spawn(game_slot(
            target.grpc,
            target.game_id.clone(),
            slot,
            plan.clone(),
            end,
            Arc::clone(&live),
            Arc::clone(&totals),
        )));
    }

    // The viewers: joining at a steady rate, each staying a while.
    let dial = |transport| Dial {
        grpc: target.grpc,
        http: target.http,
        ssh: target.ssh,
        transport,
        size: plan.size,
    };
    let room = Arc::new(Semaphore::new(plan.max_viewers));
    let mut dice = Dice::new(crate::stamp::now_micros());
    let interval = Duration::from_secs_f64(1.0 / plan.joins_per_second.max(0.1));
    let mut next_join = Instant::now();
    let mut next_reading = Instant::now() + Duration::from_secs(5);
    let mut readings = Vec::new();
    let mut viewers = tokio::task::JoinSet::new();
    let progress = if plan.progress {
        indicatif::ProgressBar::new(plan.duration.as_secs().max(1))
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut joined = 0usize;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_reading {
            let games = lock(&live).len() as u64;
            if let Some(r) = sample(totals.connected.load(Ordering::Relaxed), games) {
                progress.set_message(format!(
                    "RSS {:.1} MiB, {} fds, {} viewers, {} games, {} joins",
                    r.rss_mib,
                    r.fds,
                    r.viewers,
                    r.games,
                    totals.joins.load(Ordering::Relaxed)
                ));
                readings.push(r);
            }
            next_reading += Duration::from_secs(if plan.duration.as_secs() > 120 { 30 } else { 5 });
        }
        progress.set_position(started.elapsed().as_secs());
        while viewers.try_join_next().is_some() {}
        if now < next_join {
            tokio::time::sleep((next_join - now).min(Duration::from_millis(50))).await;
            continue;
        }
        next_join += interval;
        let Some(game) = pick(&live, &mut dice) else {
            continue;
        };
        let Ok(permit) = Arc::clone(&room).try_acquire_owned() else {
            continue;
        };
        let transport = plan.transports[joined % plan.transports.len()];
        joined += 1;
        let stay = dice.between(plan.stay_seconds);
        let totals = Arc::clone(&totals);
        let dial = dial(transport);
        viewers.spawn(async move {
            let watching = visit(dial, game, stay, Arc::clone(&totals));
            if tokio::time::timeout(JOIN_LIMIT + stay + Duration::from_secs(10), watching)
                .await
                .is_err()
            {
                totals.stuck.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    progress.finish_and_clear();

    // Everyone leaves; then, with games still running, nobody may be left
    // registered.
    while viewers.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spectators_left = registered_spectators(target).await.unwrap_or(u64::MAX);
    for slot in slots {
        let _ = slot.await;
    }
    // Games end on their own schedule; give the last ones time to be reaped.
    let mut sessions_left = u32::MAX;
    for _ in 0..100 {
        sessions_left = active_sessions(target).await.unwrap_or(u32::MAX);
        if sessions_left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connections_left = active_connections(target).await.unwrap_or(-1);
    // Sockets the last viewers closed may take a moment more to be released
    // on a busy machine: wait up to 5 s for the server to be back to its
    // idle file count before calling a file leaked.
    let mut idle_after = sample(0, 0);
    for _ in 0..50 {
        let settled = match (&idle_before, &idle_after) {
            (Some(before), Some(after)) => after.fds <= before.fds,
            _ => true,
        };
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        idle_after = sample(0, 0);
    }
    let rss_growth_percent = {
        let settled: Vec<&Reading> = readings
            .iter()
            .filter(|r| r.at_s >= plan.duration.as_secs_f64() * 0.2)
            .collect();
        match (settled.first(), settled.last()) {
            (Some(first), Some(last)) if first.rss_mib > 0.0 => {
                (last.rss_mib - first.rss_mib) / first.rss_mib * 100.0
            }
            _ => 0.0,
        }
    };
    let counts = *lock(&totals.counts);
    let first_failures = lock(&totals.first_failures).clone();
    Ok(SoakReport {
        duration_s: plan.duration.as_secs_f64(),
        joins: totals.joins.load(Ordering::Relaxed),
        join_failures: totals.failures.load(Ordering::Relaxed),
        first_failures,
        games_started: totals.games_started.load(Ordering::Relaxed),
        games_ended: totals.games_ended.load(Ordering::Relaxed),
        viewers_total: counts,
        stuck: totals.stuck.load(Ordering::Relaxed),
        readings,
        idle_before,
        idle_after,
        spectators_left,
        connections_left,
        sessions_left,
        rss_growth_percent,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pick(live: &Live, dice: &mut Dice) -> Option<(String, String)> {
    let live = lock(live);
    if live.is_empty() {
        return None;
    }
    let at = ((dice.unit() * live.len() as f64) as usize).min(live.len() - 1);
    Some(live[at].clone())
}

/// Starts one game after another as player `slot`, each for a random time,
/// until `end`; each ends the way a player ends it (the game quits).
async fn game_slot(
    grpc: std::net::SocketAddr,
    game_id: String,
    slot: usize,
    plan: SoakPlan,
    end: Instant,
    live: Live,
    totals: Arc<Totals>,
) {
    let mut dice = Dice::new(crate::stamp::now_micros() ^ (slot as u64) << 32);
    while Instant::now() < end {
        let player = match start_player(grpc, &game_id, slot, plan.size).await {
            Ok(player) => player,
            Err(e) => {
                totals.failed(format!("start a game: {e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        totals.games_started.fetch_add(1, Ordering::Relaxed);
        let entry = (player.session_id.clone(), player.username.clone());
        lock(&live).push(entry.clone());
        let mut stream = player.stream;
        let lifetime = dice
            .between(plan.game_seconds)
            .min(end.saturating_duration_since(Instant::now()));
        // The player reads its game (a player that does not read is resynced,
        // which is not what this measures).
        let _ = tokio::time::timeout(lifetime, async {
            while let Ok(got) = stream.next().await {
                if matches!(got, Got::Ended(_)) {
                    break;
                }
            }
        })
        .await;
        lock(&live).retain(|game| *game != entry);
        let quit = pb::GameIoRequest {
            request: Some(pb::game_io_request::Request::Input(pb::PtyInput {
                session_id: player.session_id.clone(),
                data: bytes::Bytes::from_static(b"q"),
            })),
        };
        let _ = stream.input.send(quit).await;
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(got) = stream.next().await {
                if matches!(got, Got::Ended(_)) {
                    break;
                }
            }
        })
        .await;
        if ended.is_ok() {
            totals.games_ended.fetch_add(1, Ordering::Relaxed);
        } else {
            totals.failed(format!("game {} did not end after q", player.session_id));
        }
    }
}

/// How long joining may take (an SSH viewer walks the menus) before it
/// counts as a failure.
const JOIN_LIMIT: Duration = Duration::from_secs(20);

async fn within_limit<T>(joining: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(JOIN_LIMIT, joining)
        .await
        .map_err(|_| anyhow!("joining took over {} s", JOIN_LIMIT.as_secs()))?
}

/// One viewer's visit: join, watch for `stay`, leave.
async fn visit(
    dial: Dial,
    (session_id, player): (String, String),
    stay: Duration,
    totals: Arc<Totals>,
) {
    totals.joins.fetch_add(1, Ordering::Relaxed);
    let outcome = match dial.transport {
        Transport::Grpc => {
            let joining = async {
                let channel = viewer::channel(dial.grpc).await?;
                GrpcSource::spectator(channel, &session_id, false).await
            };
            match within_limit(joining).await {
                Ok(source) => watch(source, stay, &totals).await,
                Err(e) => Err(e),
            }
        }
        Transport::WebSocket => {
            match within_limit(WsSource::connect(dial.http, &session_id, false)).await {
                Ok(source) => watch(source, stay, &totals).await,
                Err(e) => Err(e),
            }
        }
        Transport::Ssh => {
            let joining = SshSource::connect(dial.ssh, &player, dial.size, false);
            match within_limit(joining).await {
                Ok(source) => watch(source, stay, &totals).await,
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = outcome {
        // A game that ended just as the viewer arrived is not a failure.
        let why = format!("{e:#}");
        if !["not found", "no session", "has ended"]
            .iter()
            .any(|gone| why.contains(gone))
        {
            totals.failed(why);
        }
    }
}

async fn watch<S: Source>(mut source: S, stay: Duration, totals: &Totals) -> anyhow::Result<()> {
    totals.connected.fetch_add(1, Ordering::Relaxed);
    let mut tracker = Tracker::new(source.frame_ids());
    let until = tokio::time::Instant::now() + stay;
    loop {
        let got = match tokio::time::timeout_at(until, source.next()).await {
            Ok(got) => got,
            Err(_) => break,
        };
        match got {
            Ok(Got::Snapshot {
                frame_id,
                skipped,
                resync,
            }) => tracker.snapshot(frame_id, skipped, resync, source.payload()),
            Ok(Got::Frame { frame_id }) => {
                tracker.frame(frame_id, source.payload(), crate::stamp::now_micros());
            }
            Ok(Got::Other | Got::Chat { .. }) => {}
            Ok(Got::Ended(_)) => break,
            Err(e) => {
                totals.connected.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        tracker.latencies.clear();
    }
    totals.connected.fetch_sub(1, Ordering::Relaxed);
    *lock(&totals.counts) += tracker.counts;
    Ok(())
}

async fn registered_spectators(target: &Target) -> anyhow::Result<u64> {
    let mut games = GameServiceClient::new(viewer::channel(target.grpc).await?);
    let sessions = games
        .list_game_sessions(pb::ListGameSessionsRequest::default())
        .await
        .map_err(|s| anyhow!("ListGameSessions: {}", s.message()))?
        .into_inner()
        .sessions;
    Ok(sessions
        .iter()
        .filter(|s| s.status == pb::SessionStatus::Active as i32)
        .map(|s| u64::from(s.spectator_count))
        .sum())
}

async fn active_sessions(target: &Target) -> anyhow::Result<u32> {
    let mut games = GameServiceClient::new(viewer::channel(target.grpc).await?);
    Ok(games
        .health(pb::HealthRequest {})
        .await
        .map_err(|s| anyhow!("Health: {}", s.message()))?
        .into_inner()
        .active_sessions)
}

/// `spectator_connections_active`, summed over transports, from `/metrics`.
async fn active_connections(target: &Target) -> anyhow::Result<i64> {
    let mut stream = tokio::net::TcpStream::connect(target.http).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body
        .lines()
        .filter(|line| line.starts_with("spectator_connections_active{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<i64>().ok())
        .sum())
}
