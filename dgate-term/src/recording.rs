//! A recording opened for replay: its records in memory with times made
//! relative (idle pauses capped), its resizes placed between frames, and a
//! keyframe index (the screen's snapshot every few seconds of playback, or
//! every few hundred KiB of output, whichever comes first), so that seeking
//! anywhere costs one snapshot plus a bounded number of frames. [`Playback`]
//! is the clock that replays it at a speed, paused or not.

use std::io::Read;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::screen::{ScreenModel, TermSize};
use crate::ttyrec::{Reader, Record, TtyrecError};

/// A keyframe at least this often, in playback time...
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(5);
/// ...and after at most this much output, so that a burst is cheap to seek into.
pub const KEYFRAME_BYTES: usize = 256 * 1024;

/// Pauses longer than this are shortened in replays by default: `dgate
/// replay` (its `replay.max_idle` default), the browser's and SSH's, so
/// that a moment (`?at=`, `g`) and a chat line's place are the same in all.
pub const MAX_IDLE: Duration = Duration::from_secs(5);

/// The speeds `+` and `-` step through.
pub const SPEEDS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

/// What the JSON file beside a recording says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub session_id: String,
    pub username: String,
    pub game_id: String,
    /// The file this describes (its name, in the same directory).
    pub recording: String,
    pub terminal: MetaSize,
    pub resizes: Vec<MetaResize>,
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
    pub frames: u64,
    pub resyncs: u64,
    pub write_errors: u64,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<String>,
    /// Why the game ended (absent in files written before it was kept).
    #[serde(default)]
    pub end_reason: Option<EndReason>,
    /// The recording stopped before the game did (`ttyrec.max_bytes`).
    #[serde(default)]
    pub truncated: bool,
}

/// Why a game ended, as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// It exited by itself: the player quit, died or won.
    Exited,
    /// The server hung it up at shutdown (NetHack saves on a hang-up).
    Shutdown,
    /// No player came back within the detach grace: hung up.
    DetachGrace,
    /// Its owner or an admin stopped it.
    Stopped,
    /// A signal the server did not send ended it.
    Killed,
}

impl EndReason {
    /// The name in JSON and in the gRPC API (`detach_grace`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exited => "exited",
            Self::Shutdown => "shutdown",
            Self::DetachGrace => "detach_grace",
            Self::Stopped => "stopped",
            Self::Killed => "killed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Exited,
            Self::Shutdown,
            Self::DetachGrace,
            Self::Stopped,
            Self::Killed,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }

    /// What happened, for people: `saved at shutdown`, `exited with status
    /// 2`, `killed by signal Killed`. Without a reason (older recordings),
    /// from the exit code or signal alone.
    pub fn describe(reason: Option<Self>, exit_code: Option<i32>, signal: Option<&str>) -> String {
        let killed = signal.is_some_and(|s| s == "Killed");
        match (reason, exit_code, signal) {
            (Some(Self::Shutdown), _, _) if killed => "killed at shutdown".into(),
            (Some(Self::Shutdown), Some(_), _) => "saved at shutdown".into(),
            (Some(Self::Shutdown), _, _) => "hung up at shutdown".into(),
            (Some(Self::DetachGrace), _, _) if killed => "killed after the detach grace".into(),
            (Some(Self::DetachGrace), _, _) => "hung up after the detach grace".into(),
            (Some(Self::Stopped), _, _) => "stopped".into(),
            (_, Some(0), None) => "exited".into(),
            (_, Some(code), None) => format!("exited with status {code}"),
            (_, _, Some(signal)) => format!("killed by signal {signal}"),
            (_, None, None) => "unknown".into(),
        }
    }

    /// [`EndReason::describe`] in at most 8 characters, for menus: `saved`,
    /// `exit 2`, `detached`; empty when nothing is known.
    pub fn short(reason: Option<Self>, exit_code: Option<i32>, signal: Option<&str>) -> String {
        match (reason, exit_code, signal) {
            (Some(Self::Shutdown), Some(_), None) => "saved".into(),
            (Some(Self::Shutdown), _, _) => "shutdown".into(),
            (Some(Self::DetachGrace), _, _) => "detached".into(),
            (Some(Self::Stopped), _, _) => "stopped".into(),
            (_, Some(0), None) => "exited".into(),
            (_, Some(code), None) => format!("exit {code}").chars().take(8).collect(),
            (_, _, Some(_)) => "killed".into(),
            (_, None, None) => String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MetaSize {
    pub cols: u16,
    pub rows: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaResize {
    /// The size applies from the frame after this one (the session's frame id).
    pub after_frame: u64,
    /// ...which is the frame after this many records of the file.
    #[serde(default)]
    pub after_record: u64,
    pub cols: u16,
    pub rows: u16,
}

impl From<TermSize> for MetaSize {
    fn from(s: TermSize) -> Self {
        Self {
            cols: s.cols,
            rows: s.rows,
        }
    }
}

impl RecordingMeta {
    /// The metadata of a recording that is starting: no frames yet.
    pub fn new(
        session_id: &str,
        username: &str,
        game_id: &str,
        terminal: TermSize,
        start: String,
    ) -> Self {
        Self {
            session_id: session_id.to_owned(),
            username: username.to_owned(),
            game_id: game_id.to_owned(),
            recording: String::new(),
            terminal: terminal.into(),
            resizes: Vec::new(),
            start,
            end: String::new(),
            frames: 0,
            resyncs: 0,
            write_errors: 0,
            exit_code: None,
            signal: None,
            end_reason: None,
            truncated: false,
        }
    }

    /// The reading options this metadata implies.
    pub fn options(&self, max_idle: Option<Duration>) -> Options {
        let size = |cols: u16, rows: u16| TermSize::new(cols.max(1), rows.max(1));
        let mut resizes: Vec<(u64, TermSize)> = self
            .resizes
            .iter()
            .map(|r| (r.after_record, size(r.cols, r.rows)))
            .collect();
        // In record order (a stable sort: of two at one record, the later wins).
        resizes.sort_by_key(|(after, _)| *after);
        Options {
            size: size(self.terminal.cols, self.terminal.rows),
            resizes,
            max_idle,
        }
    }
}

/// Where records fall in playback time: the time of each record relative to
/// the first (idle pauses capped), and the resize due before it. Reading a
/// recording whole or streaming it steps the same timeline.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timeline {
    /// Records stepped so far.
    pub(crate) records: usize,
    /// The playback time of the last record.
    pub(crate) at: Duration,
    /// When the last record was written.
    pub(crate) previous: Option<SystemTime>,
}

impl Timeline {
    /// The next record, written at `time`: its playback time and the size
    /// the terminal takes just before it, if it changes.
    pub(crate) fn step(
        &mut self,
        time: SystemTime,
        options: &Options,
    ) -> (Duration, Option<TermSize>) {
        if let Some(previous) = self.previous {
            // A clock that went backwards counts as no pause.
            let pause = time.duration_since(previous).unwrap_or_default();
            self.at += options.max_idle.map_or(pause, |max| pause.min(max));
        }
        self.previous = Some(time);
        let index = self.records as u64;
        self.records += 1;
        // Resizes are in record order: the last one placed before this
        // record, found by binary search (a game may resize thousands of times).
        let after = options.resizes.partition_point(|(at, _)| *at <= index);
        let resize = after
            .checked_sub(1)
            .and_then(|i| options.resizes.get(i))
            .filter(|(at, _)| *at == index)
            .map(|(_, size)| *size);
        (self.at, resize)
    }
}

/// Places moments of wall-clock time (when chat lines were said) on a
/// recording's playback timeline, as its records are stepped: a moment plays
/// at the playback time of the last record written at or before it, plus
/// the time since that record, capped as pauses are
/// ([`Options::max_idle`]). Moments before the first record play at the
/// start; moments after the last, no later than the end. Positions never go
/// back in the order the moments were given.
#[derive(Debug)]
pub struct MomentPlacer {
    /// Indexes into `moments`, in time order.
    order: Vec<usize>,
    moments: Vec<SystemTime>,
    placed: Vec<Duration>,
    /// How many of `order` are placed.
    done: usize,
    /// The last record stepped: when it was written, and its playback time.
    last: Option<(SystemTime, Duration)>,
    max_idle: Option<Duration>,
}

impl MomentPlacer {
    pub fn new(moments: Vec<SystemTime>, max_idle: Option<Duration>) -> Self {
        let mut order: Vec<usize> = (0..moments.len()).collect();
        order.sort_by_key(|i| moments[*i]);
        Self {
            placed: vec![Duration::ZERO; moments.len()],
            order,
            moments,
            done: 0,
            last: None,
            max_idle,
        }
    }

    /// The next record, written at `time`, plays at `at`.
    pub fn record(&mut self, time: SystemTime, at: Duration) {
        self.place_before(Some(time));
        self.last = Some((time, at));
    }

    /// Every moment placed (in the order given), no later than `end`.
    pub fn finish(mut self, end: Duration) -> Vec<Duration> {
        self.place_before(None);
        let mut latest = Duration::ZERO;
        for placed in &mut self.placed {
            latest = latest.max((*placed).min(end));
            *placed = latest;
        }
        self.placed
    }

    /// Places the moments before `time` (all of them when `None`) after
    /// the last record.
    fn place_before(&mut self, time: Option<SystemTime>) {
        while let Some(&i) = self.order.get(self.done) {
            let moment = self.moments[i];
            if time.is_some_and(|t| moment >= t) {
                break;
            }
            self.placed[i] = match self.last {
                None => Duration::ZERO,
                Some((written, at)) => {
                    let since = moment.duration_since(written).unwrap_or_default();
                    at + self.max_idle.map_or(since, |max| since.min(max))
                }
            };
            self.done += 1;
        }
    }
}

/// Where `moments` fall in a recording whose records were written at
/// `times` (see [`MomentPlacer`]), read with `options`.
pub fn place_moments(
    times: impl IntoIterator<Item = SystemTime>,
    options: &Options,
    moments: Vec<SystemTime>,
) -> Vec<Duration> {
    let mut placer = MomentPlacer::new(moments, options.max_idle);
    let mut timeline = Timeline::default();
    for time in times {
        let (at, _) = timeline.step(time, options);
        placer.record(time, at);
    }
    placer.finish(timeline.at)
}

/// How to read a recording.
#[derive(Debug, Clone)]
pub struct Options {
    /// The terminal size when recording started (80x24 when nothing says).
    pub size: TermSize,
    /// Sizes that apply after the given number of records, in record order.
    pub resizes: Vec<(u64, TermSize)>,
    /// Longer pauses between records are shortened to this.
    pub max_idle: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size: TermSize::new(80, 24),
            resizes: Vec::new(),
            max_idle: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Playback time from the start.
    at: Duration,
    /// Where its bytes are in `Recording::data`.
    start: usize,
    end: usize,
    /// The size the terminal takes just before this frame, if it changes.
    resize: Option<TermSize>,
}

#[derive(Debug)]
struct Keyframe {
    /// Frames applied to reach it.
    frames: usize,
    size: TermSize,
    snapshot: Vec<u8>,
}

#[derive(Debug)]
pub struct Recording {
    data: Vec<u8>,
    frames: Vec<Frame>,
    size: TermSize,
    keyframes: Vec<Keyframe>,
    started: Option<SystemTime>,
}

impl Recording {
    /// Reads a whole ttyrec stream (already decompressed).
    pub fn read(input: impl Read, options: &Options) -> Result<Self, TtyrecError> {
        Ok(Self::new(Reader::new(input).read_all()?, options))
    }

    pub fn new(records: Vec<Record>, options: &Options) -> Self {
        let mut data = Vec::with_capacity(records.iter().map(|r| r.data.len()).sum());
        let mut frames = Vec::with_capacity(records.len());
        let mut timeline = Timeline::default();
        for record in &records {
            let (at, resize) = timeline.step(record.time, options);
            let start = data.len();
            data.extend_from_slice(&record.data);
            frames.push(Frame {
                at,
                start,
                end: data.len(),
                resize,
            });
        }
        let mut recording = Self {
            data,
            frames,
            size: options.size,
            keyframes: Vec::new(),
            started: records.first().map(|r| r.time),
        };
        recording.index();
        recording
    }

    /// Plays the whole recording once, keeping a snapshot every
    /// [`KEYFRAME_INTERVAL`] or [`KEYFRAME_BYTES`].
    fn index(&mut self) {
        let mut model = ScreenModel::new(self.size);
        self.keyframes.push(Keyframe {
            frames: 0,
            size: self.size,
            snapshot: model.snapshot(),
        });
        let (mut last_at, mut bytes) = (Duration::ZERO, 0);
        for i in 0..self.frames.len() {
            self.apply(&mut model, i..i + 1);
            let frame = self.frames[i];
            bytes += frame.end - frame.start;
            if frame.at - last_at >= KEYFRAME_INTERVAL || bytes >= KEYFRAME_BYTES {
                self.keyframes.push(Keyframe {
                    frames: i + 1,
                    size: model.size(),
                    snapshot: model.snapshot(),
                });
                (last_at, bytes) = (frame.at, 0);
            }
        }
    }

    /// Playback length (with idle pauses capped).
    pub fn duration(&self) -> Duration {
        self.frames.last().map_or(Duration::ZERO, |f| f.at)
    }

    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// When the first record was written.
    pub fn started(&self) -> Option<SystemTime> {
        self.started
    }

    /// The terminal size at the start.
    pub fn size(&self) -> TermSize {
        self.size
    }

    /// How many keyframes the index holds.
    pub fn keyframe_count(&self) -> usize {
        self.keyframes.len()
    }

    /// Frame `i`: its playback time, the size it switches to first (if any), its bytes.
    pub fn frame(&self, i: usize) -> Option<(Duration, Option<TermSize>, &[u8])> {
        self.frames
            .get(i)
            .map(|f| (f.at, f.resize, &self.data[f.start..f.end]))
    }

    /// The number of frames due at or before `t`.
    pub fn frames_until(&self, t: Duration) -> usize {
        self.frames.partition_point(|f| f.at <= t)
    }

    /// Applies frames `range` (and the resizes between them) to `model`.
    pub fn apply(&self, model: &mut ScreenModel, range: Range<usize>) {
        for frame in &self.frames[range] {
            if let Some(size) = frame.resize {
                model.resize(size);
            }
            model.process(&self.data[frame.start..frame.end]);
        }
    }

    /// The screen after every frame at or before `t`, and how many frames
    /// that is: the nearest keyframe, then the frames after it.
    pub fn screen_at(&self, t: Duration) -> (ScreenModel, usize) {
        let due = self.frames_until(t);
        let at = self.keyframes.partition_point(|k| k.frames <= due) - 1;
        let keyframe = &self.keyframes[at];
        let mut model = ScreenModel::new(keyframe.size);
        model.process(&keyframe.snapshot);
        self.apply(&mut model, keyframe.frames..due);
        (model, due)
    }
}

/// A replay's clock: where it is, how fast it goes, paused or not.
/// Clock-agnostic: the caller says how much wall time passed.
#[derive(Debug, Clone)]
pub struct Clock {
    position: Duration,
    speed: f64,
    paused: bool,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            position: Duration::ZERO,
            speed: 1.0,
            paused: false,
        }
    }
}

impl Clock {
    pub fn position(&self) -> Duration {
        self.position
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Any speed within [`SPEEDS`]' range.
    pub fn set_speed(&mut self, speed: f64) {
        let (min, max) = (SPEEDS[0], SPEEDS[SPEEDS.len() - 1]);
        self.speed = if speed.is_finite() {
            speed.clamp(min, max)
        } else {
            1.0
        };
    }

    /// The next (`faster`) or previous speed in [`SPEEDS`].
    pub fn step_speed(&mut self, faster: bool) {
        let speed = if faster {
            SPEEDS.iter().find(|s| **s > self.speed + 1e-9)
        } else {
            SPEEDS.iter().rev().find(|s| **s < self.speed - 1e-9)
        };
        if let Some(speed) = speed {
            self.speed = *speed;
        }
    }

    /// Jumps to `t`.
    pub fn set_position(&mut self, t: Duration) {
        self.position = t;
    }

    /// Moves on by `wall` time at the current speed, never past `end`.
    pub fn advance(&mut self, wall: Duration, end: Duration) {
        if !self.paused {
            self.position = (self.position + wall.mul_f64(self.speed)).min(end);
        }
    }

    /// Wall time until playback time `at`, or `None` when paused.
    pub fn until(&self, at: Duration) -> Option<Duration> {
        if self.paused {
            return None;
        }
        Some(at.saturating_sub(self.position).div_f64(self.speed))
    }
}

/// Where a replay of a [`Recording`] is: its [`Clock`] and the frames
/// already applied.
#[derive(Debug, Clone, Default)]
pub struct Playback {
    clock: Clock,
    /// Frames already applied.
    next: usize,
}

impl Playback {
    pub fn position(&self) -> Duration {
        self.clock.position()
    }

    pub fn speed(&self) -> f64 {
        self.clock.speed()
    }

    pub fn paused(&self) -> bool {
        self.clock.paused()
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.clock.set_paused(paused);
    }

    /// Any speed within [`SPEEDS`]' range.
    pub fn set_speed(&mut self, speed: f64) {
        self.clock.set_speed(speed);
    }

    /// The next (`faster`) or previous speed in [`SPEEDS`].
    pub fn step_speed(&mut self, faster: bool) {
        self.clock.step_speed(faster);
    }

    /// Jumps to `t` (clamped to the recording) and returns the screen there.
    pub fn seek(&mut self, recording: &Recording, t: Duration) -> ScreenModel {
        let t = t.min(recording.duration());
        let (model, next) = recording.screen_at(t);
        self.clock.set_position(t);
        self.next = next;
        model
    }

    /// Moves the clock on by `wall` time at the current speed; returns the
    /// frames now due, to apply in order.
    pub fn advance(&mut self, recording: &Recording, wall: Duration) -> Range<usize> {
        self.clock.advance(wall, recording.duration());
        let due = recording.frames_until(self.clock.position()).max(self.next);
        let range = self.next..due;
        self.next = due;
        range
    }

    /// Wall time until the next frame is due, or `None` when paused or at the end.
    pub fn until_next(&self, recording: &Recording) -> Option<Duration> {
        let (at, _, _) = recording.frame(self.next)?;
        self.clock.until(at)
    }

    /// Every frame has been played.
    pub fn finished(&self, recording: &Recording) -> bool {
        self.next >= recording.frame_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: u64, every: Duration) -> Vec<Record> {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        (0..n)
            .map(|i| Record {
                time: start + every * i as u32,
                data: format!("\x1b[{};1H\x1b[3{}mline {i}\x1b[0m", 1 + i % 24, i % 8).into_bytes(),
            })
            .collect()
    }

    fn played_from_start(recording: &Recording, t: Duration) -> ScreenModel {
        let mut model = ScreenModel::new(recording.size());
        recording.apply(&mut model, 0..recording.frames_until(t));
        model
    }

    #[test]
    fn seeking_lands_on_the_screen_of_playing_from_the_start() {
        let recording = Recording::new(
            records(2000, Duration::from_millis(50)),
            &Options::default(),
        );
        assert_eq!(recording.duration(), Duration::from_millis(50 * 1999));
        assert!(recording.keyframe_count() > 10);
        for ms in [0, 1, 49, 50, 4_999, 5_000, 33_333, 77_777, 99_950, 200_000] {
            let t = Duration::from_millis(ms);
            let (seeked, _) = recording.screen_at(t);
            assert_eq!(
                seeked.screen().contents_formatted(),
                played_from_start(&recording, t)
                    .screen()
                    .contents_formatted(),
                "at {ms} ms"
            );
        }
    }

    #[test]
    fn moments_play_after_the_last_record_before_them_with_pauses_capped() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ms = |ms: u64| start + Duration::from_millis(ms);
        // Records at 0, 1 s, 2 s, then 12 s (a 10 s pause, capped to 5 s)
        // and 13 s: played at 0, 1, 2, 7 and 8 s.
        let times = [0, 1_000, 2_000, 12_000, 13_000].map(ms);
        let options = Options {
            max_idle: Some(Duration::from_secs(5)),
            ..Options::default()
        };
        let moments = vec![
            start - Duration::from_secs(3), // before the first record
            ms(1_500),
            ms(2_000), // exactly at a record
            ms(4_000), // inside the long pause, before the cap
            ms(9_000), // inside it, past the cap
            ms(12_500),
            ms(30_000), // after the last record
        ];
        let placed = place_moments(times, &options, moments.clone());
        let s = Duration::from_secs_f64;
        assert_eq!(
            placed,
            vec![s(0.0), s(1.5), s(2.0), s(4.0), s(7.0), s(7.5), s(8.0)]
        );
        // Uncapped, the pause plays whole.
        let placed = place_moments(times, &Options::default(), moments);
        assert_eq!(placed[4], s(9.0));
        assert_eq!(placed[6], s(13.0), "never past the end");
        // Given out of time order (a clock stepped back), never backwards.
        let placed = place_moments(times, &options, vec![ms(12_500), ms(1_500)]);
        assert_eq!(placed, vec![s(7.5), s(7.5)]);
        assert!(place_moments([], &options, vec![ms(5)]) == vec![Duration::ZERO]);
    }

    #[test]
    fn idle_pauses_are_capped_and_backward_clocks_do_not_rewind() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |s: u64| start + Duration::from_secs(s);
        let records = vec![
            Record {
                time: at(0),
                data: b"a".to_vec(),
            },
            Record {
                time: at(1),
                data: b"b".to_vec(),
            },
            Record {
                time: at(3601),
                data: b"c".to_vec(),
            },
            Record {
                time: at(3500),
                data: b"d".to_vec(),
            },
        ];
        let options = Options {
            max_idle: Some(Duration::from_secs(2)),
            ..Options::default()
        };
        let recording = Recording::new(records, &options);
        let times: Vec<Duration> = (0..4)
            .map(|i| recording.frame(i).expect("frame").0)
            .collect();
        let s = Duration::from_secs;
        assert_eq!(times, [s(0), s(1), s(3), s(3)]);
    }

    #[test]
    fn resizes_apply_between_the_right_frames_also_after_a_seek() {
        let options = Options {
            size: TermSize::new(80, 24),
            resizes: vec![(10, TermSize::new(100, 30))],
            max_idle: None,
        };
        let recording = Recording::new(records(20, Duration::from_secs(1)), &options);
        assert_eq!(
            recording.screen_at(Duration::from_secs(9)).0.size(),
            TermSize::new(80, 24)
        );
        assert_eq!(
            recording.screen_at(Duration::from_secs(10)).0.size(),
            TermSize::new(100, 30)
        );
        assert_eq!(
            recording.screen_at(Duration::from_secs(19)).0.size(),
            TermSize::new(100, 30)
        );
    }

    #[test]
    fn playback_advances_by_speed_and_stops_when_paused() {
        let recording = Recording::new(records(11, Duration::from_secs(1)), &Options::default());
        let mut playback = Playback::default();
        assert_eq!(playback.advance(&recording, Duration::ZERO), 0..1);
        assert_eq!(
            playback.until_next(&recording),
            Some(Duration::from_secs(1))
        );
        playback.step_speed(true);
        assert_eq!(playback.speed(), 2.0);
        assert_eq!(playback.advance(&recording, Duration::from_secs(2)), 1..5);
        playback.set_paused(true);
        assert_eq!(playback.advance(&recording, Duration::from_secs(60)), 5..5);
        assert_eq!(playback.until_next(&recording), None);
        playback.set_paused(false);
        let model = playback.seek(&recording, Duration::from_secs(8));
        assert!(model.screen().contents().contains("line 8"));
        assert_eq!(
            playback.advance(&recording, Duration::from_secs(100)),
            9..11
        );
        assert!(playback.finished(&recording));
        for _ in 0..10 {
            playback.step_speed(false);
        }
        assert_eq!(playback.speed(), 0.25);
        playback.set_speed(f64::NAN);
        assert_eq!(playback.speed(), 1.0);
    }

    #[test]
    fn an_empty_recording_plays_as_nothing() {
        let recording = Recording::new(Vec::new(), &Options::default());
        assert_eq!(recording.duration(), Duration::ZERO);
        let mut playback = Playback::default();
        assert_eq!(playback.advance(&recording, Duration::from_secs(1)), 0..0);
        assert!(playback.finished(&recording));
        assert_eq!(
            playback.seek(&recording, Duration::from_secs(5)).size(),
            TermSize::new(80, 24)
        );
    }
}
