//! Finished recordings, for replay: the list (from the `.json` metadata the
//! recorder writes beside each one), and one recording played to one client
//! (`StreamRecording`, the browser, SSH), steered by its seek, speed and
//! pause messages.
//!
//! A recording is named by its id, `user/game/start`, and only ids found by
//! listing the directory are opened: a request never becomes a path.
//!
//! Replays are bounded: [`Library`](super::library::Library) opens them
//! (shared keyframe indexes, the caps, the cached listing), and [`play`]
//! streams a recording from its file, a cursor reading a few frames ahead,
//! never loading it whole.
//!
//! A replay plays the game's chat with it: each line of the recording's
//! `.chat.jsonl` when the replay reaches the moment it was said (placed on
//! the recording's timeline, idle pauses capped alike), and after every
//! screen (opening, seeks) the lines said before it.
//!
//! Domain types only: the gRPC service and the browser's replay socket each
//! encode [`ReplayEvent`]s their own way.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dgate_term::TermSize;
use dgate_term::listing::RecordingSummary;
use dgate_term::recording::{Clock, RecordingMeta};
use dgate_term::streamed::{Cursor, StreamFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broadcast::chat::ChatLine;

pub use super::library::{Library, PlacedLine, Replay, ReplayPermit};

/// The largest recording (uncompressed) a replay reads.
pub const MAX_RECORDING_BYTES: u64 = 512 * 1024 * 1024;
/// Frames a replay reads ahead of what it has sent, at most (by bytes; one
/// frame more when a single frame is larger).
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// Chat lines said before a replay's screen that are sent with it, at
/// most (as many as `dgate watch` and `dgate replay` keep).
pub const CHAT_HISTORY: usize = 200;
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
    #[error("{0}")]
    TooManyReplays(String),
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
    let limit = listing_limit(limit);
    let mut entries = every_entry(directory);
    entries.retain(|e| {
        (username.is_empty() || e.meta.username.eq_ignore_ascii_case(username))
            && (game_id.is_empty() || e.meta.game_id == game_id)
    });
    entries.truncate(limit);
    entries
}

/// How many recordings a listing asked to show `limit` gets: 0 (or less)
/// is the default, and there is a maximum.
pub(super) fn listing_limit(limit: i32) -> usize {
    match usize::try_from(limit) {
        Ok(0) | Err(_) => DEFAULT_LIMIT,
        Ok(n) => n.min(MAX_LIMIT),
    }
}

/// Every finished recording under `directory`, newest first.
pub(super) fn every_entry(directory: &Path) -> Vec<Entry> {
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
    entries.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.id.cmp(&b.id)));
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
            end_reason: meta.end_reason,
        }
    }

    /// The game's chat beside the recording (`X.chat.jsonl` beside
    /// `X.ttyrec.gz` or `X.ttyrec`), which may not exist.
    pub fn chat_path(&self) -> PathBuf {
        let name = &self.meta.recording;
        let plain = name.strip_suffix(".gz").unwrap_or(name);
        super::recorder::chat_path(&self.path.with_file_name(plain))
    }

    /// A fresh reader of the recording's plain ttyrec bytes, which fails
    /// past [`MAX_RECORDING_BYTES`].
    pub(super) fn reader(&self) -> Result<Box<dyn Read + Send>, RecordingError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| RecordingError::Unopenable(e.to_string()))?;
        let plain: Box<dyn Read + Send> = if self.meta.recording.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                file,
            )))
        } else {
            Box::new(std::io::BufReader::new(file))
        };
        Ok(Box::new(super::library::Capped::new(
            plain,
            MAX_RECORDING_BYTES,
        )))
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
        /// Lines in the recording's chat.
        chat_lines: usize,
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
    /// A line of the game's chat, when the replay reaches the moment it
    /// was said; after each `Screen`, the lines said up to its position
    /// (`history`), oldest first.
    Chat {
        position: Duration,
        line: Arc<ChatLine>,
        history: bool,
    },
}

/// Plays `replay` to `out`, steered by `controls`, until the client goes
/// (either channel closes) or the server shuts down. The same player serves
/// `StreamRecording`, the browser's replay page and SSH. The file is read a
/// few frames ahead on the blocking threads, never whole.
pub async fn play(
    replay: Replay,
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
    let fail = |e: RecordingError| {
        let out = out.clone();
        async move {
            let _ = out.send(Err(e)).await;
        }
    };
    let replay = Arc::new(replay);
    let duration = replay.duration();
    let opened = ReplayEvent::Opened {
        summary: replay.entry().summary(),
        duration,
        chat_lines: replay.chat().len(),
    };
    if !send(opened).await {
        return;
    }
    let mut clock = Clock::default();
    let chat = replay.chat();
    // The next chat line to play.
    let mut said;
    let mut reading = match Reading::seek(&replay, Duration::ZERO).await {
        Ok((reading, screen)) => {
            said = chat_until(chat, Duration::ZERO);
            for event in std::iter::once(screen).chain(history(chat, said)) {
                if !send(event).await {
                    return;
                }
            }
            reading
        }
        Err(e) => return fail(e).await,
    };
    let mut last = Instant::now();
    let mut told_end = false;
    // Controls taken off the channel while merging seeks, to apply in order.
    let mut pending: VecDeque<ReplayControl> = VecDeque::new();
    loop {
        if let Err(e) = reading.fill().await {
            return fail(e).await;
        }
        // Frames and chat lines now due, in order: a line said after a
        // frame's moment plays after the frame, and waits while frames
        // before it may still be unread.
        let now = Instant::now();
        clock.advance(now - last, duration);
        last = now;
        loop {
            let line = chat.get(said).filter(|l| l.at <= clock.position());
            let line_first = match (line, reading.ahead.front()) {
                (Some(line), Some(frame)) => line.at < frame.at,
                (Some(_), None) => reading.at_end,
                (None, _) => false,
            };
            let event = if let Some(placed) = line.filter(|_| line_first) {
                said += 1;
                chat_event(placed, false)
            } else {
                match reading.ahead.front() {
                    Some(frame) if frame.at <= clock.position() => {}
                    _ => break,
                }
                let Some(frame) = reading.ahead.pop_front() else {
                    break;
                };
                ReplayEvent::Frame {
                    position: frame.at,
                    resize: frame.resize,
                    data: Bytes::from(frame.data),
                }
            };
            if !send(event).await {
                return;
            }
        }
        if reading.ahead.is_empty() && !reading.at_end {
            continue;
        }
        let ended = reading.ahead.is_empty() && reading.at_end && said == chat.len();
        if ended && !told_end {
            told_end = true;
            if !send(state(&clock, true)).await {
                return;
            }
        }
        let next_frame = reading.ahead.front().and_then(|f| clock.until(f.at));
        let next_line = chat.get(said).and_then(|l| clock.until(l.at));
        let wait = next_frame
            .into_iter()
            .chain(next_line)
            .min()
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            control = next_control(&mut pending, &mut controls) => {
                let Some(mut control) = control else { return };
                // Seeks queued right behind this one replace it: each costs a
                // read of the file up to its keyframe. Other controls keep
                // their turn.
                if matches!(control, ReplayControl::Seek(_)) {
                    while let Ok(next) = controls.try_recv() {
                        match next {
                            ReplayControl::Seek(_) if pending.is_empty() => control = next,
                            other => pending.push_back(other),
                        }
                    }
                }
                let events = match control {
                    ReplayControl::Seek(seconds) => {
                        told_end = false;
                        let t = seconds_to_duration(seconds).min(duration);
                        clock.set_position(t);
                        match Reading::seek(&replay, t).await {
                            Ok((sought, screen)) => {
                                reading = sought;
                                said = chat_until(chat, t);
                                std::iter::once(screen).chain(history(chat, said)).collect()
                            }
                            Err(e) => return fail(e).await,
                        }
                    }
                    ReplayControl::Speed(speed) => {
                        clock.set_speed(speed);
                        vec![state(&clock, ended)]
                    }
                    ReplayControl::Paused(paused) => {
                        clock.set_paused(paused);
                        vec![state(&clock, ended)]
                    }
                };
                for event in events {
                    if !send(event).await {
                        return;
                    }
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

/// The next control: one set aside while merging seeks, else the channel's.
async fn next_control(
    pending: &mut VecDeque<ReplayControl>,
    controls: &mut mpsc::Receiver<ReplayControl>,
) -> Option<ReplayControl> {
    match pending.pop_front() {
        Some(control) => Some(control),
        None => controls.recv().await,
    }
}

/// One replay's reading of its file: a cursor and the frames read ahead.
struct Reading {
    replay: Arc<Replay>,
    /// `None` only while it reads on a blocking thread.
    cursor: Option<Cursor<Box<dyn Read + Send>>>,
    ahead: VecDeque<StreamFrame>,
    at_end: bool,
}

impl Reading {
    /// Starts reading at `t`; the screen there is the first event.
    async fn seek(
        replay: &Arc<Replay>,
        t: Duration,
    ) -> Result<(Self, ReplayEvent), RecordingError> {
        let sought = Arc::clone(replay);
        let (model, cursor) = tokio::task::spawn_blocking(move || sought.seek(t))
            .await
            .map_err(|e| RecordingError::Unreadable(e.to_string()))??;
        let screen = ReplayEvent::Screen {
            position: t,
            size: model.size(),
            data: model.snapshot().into(),
        };
        let reading = Self {
            replay: Arc::clone(replay),
            cursor: Some(cursor),
            ahead: VecDeque::new(),
            at_end: false,
        };
        Ok((reading, screen))
    }

    /// Reads ahead up to [`READ_AHEAD_BYTES`] when nothing is in hand.
    async fn fill(&mut self) -> Result<(), RecordingError> {
        if !self.ahead.is_empty() || self.at_end {
            return Ok(());
        }
        let Some(mut cursor) = self.cursor.take() else {
            return Ok(());
        };
        let _keep = Arc::clone(&self.replay);
        let (cursor, read) = tokio::task::spawn_blocking(move || {
            let mut frames = VecDeque::new();
            let mut bytes = 0;
            let read = loop {
                if bytes >= READ_AHEAD_BYTES {
                    break Ok(false);
                }
                match cursor.next_frame() {
                    Ok(Some(frame)) => {
                        // A frame costs its bytes and its record's keeping.
                        bytes += frame.data.len() + 64;
                        frames.push_back(frame);
                    }
                    Ok(None) => break Ok(true),
                    Err(e) => break Err(super::library::reading_error(e)),
                }
            };
            (cursor, read.map(|at_end| (frames, at_end)))
        })
        .await
        .map_err(|e| RecordingError::Unreadable(e.to_string()))?;
        self.cursor = Some(cursor);
        let (frames, at_end) = read?;
        self.ahead = frames;
        self.at_end = at_end;
        Ok(())
    }
}

/// How many of `chat`'s lines play at or before `t`.
fn chat_until(chat: &[PlacedLine], t: Duration) -> usize {
    chat.partition_point(|l| l.at <= t)
}

/// The history sent after a screen: the last [`CHAT_HISTORY`] of the
/// `said` first lines.
fn history(chat: &[PlacedLine], said: usize) -> Vec<ReplayEvent> {
    chat[said.saturating_sub(CHAT_HISTORY)..said]
        .iter()
        .map(|placed| chat_event(placed, true))
        .collect()
}

fn chat_event(placed: &PlacedLine, history: bool) -> ReplayEvent {
    ReplayEvent::Chat {
        position: placed.at,
        line: Arc::clone(&placed.line),
        history,
    }
}

fn state(clock: &Clock, ended: bool) -> ReplayEvent {
    ReplayEvent::State {
        position: clock.position(),
        speed: clock.speed(),
        paused: clock.paused(),
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
