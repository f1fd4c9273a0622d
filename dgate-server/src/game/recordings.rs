//! Finished recordings, for replay: the list (from the `.json` metadata the
//! recorder writes beside each one), and one recording played to one client
//! (`StreamRecording`), steered by its seek, speed and pause messages.
//!
//! A recording is named by its id, `user/game/start`, and only ids found by
//! listing the directory are opened: a request never becomes a path.
//!
//! Domain types only: the gRPC service and the browser's replay socket each
//! encode [`ReplayEvent`]s their own way.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dgate_term::TermSize;
use dgate_term::listing::RecordingSummary;
use dgate_term::recording::{Playback, Recording, RecordingMeta};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The largest recording (uncompressed) a replay loads.
pub const MAX_RECORDING_BYTES: u64 = 512 * 1024 * 1024;
/// Listed when the request gives no limit...
const DEFAULT_LIMIT: usize = 50;
/// ...and at most.
const MAX_LIMIT: usize = 500;

/// Why a recording cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    #[error("no recording with id {0:?}")]
    NotFound(String),
    #[error("cannot open the recording: {0}")]
    Unopenable(String),
    #[error("the recording cannot be read: {0}")]
    Unreadable(String),
    #[error("the recording is larger than {} MiB", MAX_RECORDING_BYTES >> 20)]
    TooLarge,
    #[error("the recording is damaged: {0}")]
    Damaged(String),
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// One finished recording on disk.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub meta: RecordingMeta,
    /// The recording file itself.
    pub path: PathBuf,
    start: SystemTime,
}

/// The finished recordings under `directory` (those with metadata), newest
/// first, filtered by user and game when given.
pub fn list(directory: &Path, username: &str, game_id: &str, limit: i32) -> Vec<Entry> {
    let limit = match usize::try_from(limit) {
        Ok(0) | Err(_) => DEFAULT_LIMIT,
        Ok(n) => n.min(MAX_LIMIT),
    };
    let mut entries = Vec::new();
    for user in read_dirs(directory) {
        for game in read_dirs(&user) {
            let Ok(files) = std::fs::read_dir(&game) else {
                continue;
            };
            for file in files.flatten() {
                if let Some(entry) = entry(directory, &file.path()) {
                    entries.push(entry);
                }
            }
        }
    }
    entries.retain(|e| {
        (username.is_empty() || e.meta.username.eq_ignore_ascii_case(username))
            && (game_id.is_empty() || e.meta.game_id == game_id)
    });
    entries.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.id.cmp(&b.id)));
    entries.truncate(limit);
    entries
}

/// The recording `id` names, if it exists. Only names read from the
/// directory are followed, so no id reaches outside it.
pub fn find(directory: &Path, id: &str) -> Option<Entry> {
    let mut parts = id.splitn(3, '/');
    let (user, game) = (parts.next()?, parts.next()?);
    let named = |dirs: Vec<PathBuf>, name: &str| {
        dirs.into_iter()
            .find(|d| d.file_name().is_some_and(|n| n == name))
    };
    let user_dir = named(read_dirs(directory), user)?;
    let game_dir = named(read_dirs(&user_dir), game)?;
    std::fs::read_dir(game_dir)
        .ok()?
        .flatten()
        .filter_map(|file| entry(directory, &file.path()))
        .find(|e| e.id == id)
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// The recording described by the metadata file `json`, if it is one.
fn entry(directory: &Path, json: &Path) -> Option<Entry> {
    let name = json.file_name()?.to_str()?;
    let stem = name.strip_suffix(".json")?;
    let meta: RecordingMeta = serde_json::from_slice(&std::fs::read(json).ok()?).ok()?;
    // The metadata names its recording, which must sit beside it.
    if meta.recording.contains('/') || !meta.recording.starts_with(stem) {
        return None;
    }
    let path = json.with_file_name(&meta.recording);
    if !path.is_file() {
        return None;
    }
    let relative = json.parent()?.strip_prefix(directory).ok()?;
    let id = format!("{}/{stem}", relative.to_str()?);
    let start = humantime::parse_rfc3339(&meta.start).unwrap_or(SystemTime::UNIX_EPOCH);
    Some(Entry {
        id,
        meta,
        path,
        start,
    })
}

impl Entry {
    /// The recording as listings show it.
    pub fn summary(&self) -> RecordingSummary {
        let time = |text: &str| humantime::parse_rfc3339(text).ok();
        let meta = &self.meta;
        RecordingSummary {
            id: self.id.clone(),
            username: meta.username.clone(),
            game_id: meta.game_id.clone(),
            start: time(&meta.start),
            end: time(&meta.end),
            size: TermSize::new(meta.terminal.cols, meta.terminal.rows),
            frames: meta.frames,
            exit_code: meta.exit_code,
            signal: meta.signal.clone(),
        }
    }

    /// Reads and indexes the recording (blocking: call off the async threads).
    pub fn open(&self, max_idle: Option<Duration>) -> Result<Recording, RecordingError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| RecordingError::Unopenable(e.to_string()))?;
        let limited = |reader: Box<dyn Read>| reader.take(MAX_RECORDING_BYTES + 1);
        let reader: Box<dyn Read> = if self.meta.recording.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut bytes = Vec::new();
        limited(reader)
            .read_to_end(&mut bytes)
            .map_err(|e| RecordingError::Unreadable(e.to_string()))?;
        if bytes.len() as u64 > MAX_RECORDING_BYTES {
            return Err(RecordingError::TooLarge);
        }
        Recording::read(&bytes[..], &self.meta.options(max_idle))
            .map_err(|e| RecordingError::Damaged(e.to_string()))
    }
}

/// What steers a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplayControl {
    /// To this many seconds from the start (clamped; never a panic).
    Seek(f64),
    /// Playing speed (the playback clamps it).
    Speed(f64),
    Paused(bool),
}

/// What a replay shows, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayEvent {
    /// First: what is playing, and for how long.
    Opened {
        summary: RecordingSummary,
        duration: Duration,
    },
    /// The whole screen at `position` (after opening and after each seek),
    /// drawn on a reset terminal of `size`.
    Screen {
        position: Duration,
        size: TermSize,
        data: Bytes,
    },
    /// The next frame; `resize` when the game's size changes before it.
    Frame {
        position: Duration,
        resize: Option<TermSize>,
        data: Bytes,
    },
    /// Where the replay is, after a change of speed or pause, and at the end.
    State {
        position: Duration,
        speed: f64,
        paused: bool,
        ended: bool,
    },
}

/// Plays `recording` to `out`, steered by `controls`, until the client goes
/// (either channel closes) or the server shuts down. The same player serves
/// `StreamRecording` and the browser's replay page.
pub async fn play(
    recording: Recording,
    summary: RecordingSummary,
    mut controls: mpsc::Receiver<ReplayControl>,
    out: mpsc::Sender<Result<ReplayEvent, RecordingError>>,
    shutdown: CancellationToken,
) {
    // False when the client has gone (or stopped reading while the server shuts down).
    let send = |event: ReplayEvent| {
        let (out, shutdown) = (out.clone(), shutdown.clone());
        async move {
            tokio::select! {
                sent = out.send(Ok(event)) => sent.is_ok(),
                _ = shutdown.cancelled() => false,
            }
        }
    };
    let mut playback = Playback::default();
    let opened = ReplayEvent::Opened {
        summary,
        duration: recording.duration(),
    };
    if !send(opened).await || !send(screen(&mut playback, &recording, Duration::ZERO)).await {
        return;
    }
    let mut last = Instant::now();
    let mut told_end = false;
    loop {
        // Frames now due, in order.
        let now = Instant::now();
        let due = playback.advance(&recording, now - last);
        last = now;
        for i in due {
            let Some((at, resize, data)) = recording.frame(i) else {
                break;
            };
            let frame = ReplayEvent::Frame {
                position: at,
                resize,
                data: Bytes::copy_from_slice(data),
            };
            if !send(frame).await {
                return;
            }
        }
        let ended = playback.finished(&recording);
        if ended && !told_end {
            told_end = true;
            if !send(state(&playback, true)).await {
                return;
            }
        }
        let wait = playback
            .until_next(&recording)
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            control = controls.recv() => {
                let Some(control) = control else { return };
                let event = match control {
                    ReplayControl::Seek(seconds) => {
                        told_end = false;
                        screen(&mut playback, &recording, seconds_to_duration(seconds))
                    }
                    ReplayControl::Speed(speed) => {
                        playback.set_speed(speed);
                        state(&playback, ended)
                    }
                    ReplayControl::Paused(paused) => {
                        playback.set_paused(paused);
                        state(&playback, ended)
                    }
                };
                if !send(event).await {
                    return;
                }
                last = Instant::now();
            }
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {
                let _ = out.send(Err(RecordingError::ShuttingDown)).await;
                return;
            }
        }
    }
}

fn screen(playback: &mut Playback, recording: &Recording, t: Duration) -> ReplayEvent {
    let model = playback.seek(recording, t);
    ReplayEvent::Screen {
        position: playback.position(),
        size: model.size(),
        data: model.snapshot().into(),
    }
}

fn state(playback: &Playback, ended: bool) -> ReplayEvent {
    ReplayEvent::State {
        position: playback.position(),
        speed: playback.speed(),
        paused: playback.paused(),
        ended,
    }
}

/// Negative, NaN or absurd seconds are clamped, never a panic.
pub fn seconds_to_duration(seconds: f64) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}
