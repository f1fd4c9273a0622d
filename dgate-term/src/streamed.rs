//! A recording replayed straight from its file, never held in memory: what
//! a server needs to replay big recordings to many viewers at once.
//!
//! [`StreamIndex::build`] reads the file once, a record at a time, and keeps
//! only keyframes (the screen's snapshot every [`KEYFRAME_INTERVAL`] of
//! playback or [`KEYFRAME_BYTES`] of output, with where the timeline was),
//! never the bytes between them. One index serves every replay of the file.
//! [`StreamIndex::seek`] takes a fresh reader of the same file, starts from
//! the keyframe at or before the wanted time (reading past the records
//! before it) and returns the screen there and a [`Cursor`] that yields the
//! frames after it, one at a time.
//!
//! The frames a cursor yields are exactly the frames of
//! [`Recording`](crate::recording::Recording) for the same file and options.

use std::io::Read;
use std::time::{Duration, SystemTime};

use crate::recording::{KEYFRAME_BYTES, KEYFRAME_INTERVAL, MomentPlacer, Options, Timeline};
use crate::screen::{ScreenModel, TermSize};
use crate::ttyrec::{Reader, TtyrecError};

/// One frame read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    /// Playback time from the start.
    pub at: Duration,
    /// The size the terminal takes just before this frame, if it changes.
    pub resize: Option<TermSize>,
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct Keyframe {
    /// Where the timeline was after the frames before the keyframe.
    timeline: Timeline,
    size: TermSize,
    snapshot: Vec<u8>,
}

/// A recording's keyframes, built by reading it once.
#[derive(Debug)]
pub struct StreamIndex {
    options: Options,
    frames: usize,
    duration: Duration,
    keyframes: Vec<Keyframe>,
}

impl StreamIndex {
    /// Reads the whole stream (already decompressed) once, holding one
    /// record at a time.
    pub fn build(input: impl Read, options: Options) -> Result<Self, TtyrecError> {
        Self::build_placing(input, options, Vec::new()).map(|(index, _)| index)
    }

    /// [`StreamIndex::build`], placing `moments` of wall-clock time (when
    /// chat lines were said) on the playback timeline in the same reading
    /// (see [`MomentPlacer`]): their positions, in the order given.
    pub fn build_placing(
        input: impl Read,
        options: Options,
        moments: Vec<SystemTime>,
    ) -> Result<(Self, Vec<Duration>), TtyrecError> {
        let mut placer = MomentPlacer::new(moments, options.max_idle);
        let mut reader = Reader::new(input);
        let mut model = ScreenModel::new(options.size);
        let mut timeline = Timeline::default();
        let mut keyframes = vec![Keyframe {
            timeline,
            size: options.size,
            snapshot: model.snapshot(),
        }];
        let (mut last_at, mut bytes) = (Duration::ZERO, 0);
        while let Some(record) = reader.next_record()? {
            let (at, resize) = timeline.step(record.time, &options);
            placer.record(record.time, at);
            if let Some(size) = resize {
                model.resize(size);
            }
            model.process(&record.data);
            bytes += record.data.len();
            if at - last_at >= KEYFRAME_INTERVAL || bytes >= KEYFRAME_BYTES {
                keyframes.push(Keyframe {
                    timeline,
                    size: model.size(),
                    snapshot: model.snapshot(),
                });
                (last_at, bytes) = (at, 0);
            }
        }
        let index = Self {
            options,
            frames: timeline.records,
            duration: timeline.at,
            keyframes,
        };
        Ok((index, placer.finish(timeline.at)))
    }

    /// Playback length (with idle pauses capped).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// The terminal size at the start.
    pub fn size(&self) -> TermSize {
        self.options.size
    }

    pub fn keyframe_count(&self) -> usize {
        self.keyframes.len()
    }

    /// Bytes the index holds (its keyframes' snapshots), for accounting.
    pub fn memory(&self) -> usize {
        self.keyframes
            .iter()
            .map(|k| k.snapshot.len())
            .sum::<usize>()
            + self.keyframes.len() * std::mem::size_of::<Keyframe>()
    }

    /// The screen after every frame at or before `t` (clamped to the
    /// recording), and a cursor at the first frame after it. `input` is a
    /// fresh reader of the file the index was built from.
    pub fn seek<R: Read>(
        &self,
        input: R,
        t: Duration,
    ) -> Result<(ScreenModel, Cursor<R>), TtyrecError> {
        let t = t.min(self.duration);
        // Every frame before a keyframe has a time at or before the
        // keyframe's; the last keyframe at or before `t` is where to start.
        // The first keyframe (nothing played) is at zero: there always is one.
        let at = self
            .keyframes
            .partition_point(|k| k.timeline.at <= t)
            .saturating_sub(1);
        let keyframe = &self.keyframes[at];
        let mut reader = Reader::new(input);
        for _ in 0..keyframe.timeline.records {
            if reader.next_record()?.is_none() {
                break;
            }
        }
        let mut model = ScreenModel::new(keyframe.size);
        model.process(&keyframe.snapshot);
        let mut cursor = Cursor {
            reader,
            timeline: keyframe.timeline,
            options: self.options.clone(),
            peeked: None,
        };
        while let Some(frame) = cursor.peek()? {
            if frame.at > t {
                break;
            }
            if let Some(frame) = cursor.next_frame()? {
                if let Some(size) = frame.resize {
                    model.resize(size);
                }
                model.process(&frame.data);
            }
        }
        Ok((model, cursor))
    }
}

/// The frames of a recording from some point on, read as they are needed.
#[derive(Debug)]
pub struct Cursor<R> {
    reader: Reader<R>,
    timeline: Timeline,
    options: Options,
    peeked: Option<StreamFrame>,
}

impl<R: Read> Cursor<R> {
    /// The next frame, without taking it.
    pub fn peek(&mut self) -> Result<Option<&StreamFrame>, TtyrecError> {
        if self.peeked.is_none() {
            self.peeked = self.read()?;
        }
        Ok(self.peeked.as_ref())
    }

    /// The next frame; `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<StreamFrame>, TtyrecError> {
        match self.peeked.take() {
            Some(frame) => Ok(Some(frame)),
            None => self.read(),
        }
    }

    fn read(&mut self) -> Result<Option<StreamFrame>, TtyrecError> {
        let Some(record) = self.reader.next_record()? else {
            return Ok(None);
        };
        let (at, resize) = self.timeline.step(record.time, &self.options);
        Ok(Some(StreamFrame {
            at,
            resize,
            data: record.data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::recording::Recording;
    use crate::ttyrec::{Record, write_record};

    fn file(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            write_record(&mut out, r.time, &r.data).expect("write");
        }
        out
    }

    fn records(n: u32) -> Vec<Record> {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        (0..n)
            .map(|i| Record {
                // Uneven pauses, some long (capped), and a big burst now and then.
                time: start + Duration::from_millis(u64::from(i) * 700 + u64::from(i % 7) * 3000),
                data: if i % 50 == 0 {
                    vec![b'#'; 40_000]
                } else {
                    format!(
                        "\x1b[{};{}H\x1b[3{}mframe {i}\x1b[0m",
                        1 + i % 24,
                        1 + i % 60,
                        i % 8
                    )
                    .into_bytes()
                },
            })
            .collect()
    }

    fn options() -> Options {
        Options {
            size: TermSize::new(80, 24),
            resizes: vec![(100, TermSize::new(100, 30)), (250, TermSize::new(80, 24))],
            max_idle: Some(Duration::from_secs(2)),
        }
    }

    #[test]
    fn a_streamed_replay_is_the_same_as_the_whole_recording_at_every_seek() {
        let records = records(400);
        let bytes = file(&records);
        let whole = Recording::new(records, &options());
        let index = StreamIndex::build(&bytes[..], options()).expect("index");
        assert_eq!(index.duration(), whole.duration());
        assert_eq!(index.frame_count(), whole.frame_count());
        assert!(index.keyframe_count() > 10, "{}", index.keyframe_count());
        for seconds in [0.0, 0.3, 1.0, 17.5, 60.0, 123.4, 400.0, 1e9] {
            let t = Duration::from_secs_f64(seconds);
            let (model, mut cursor) = index.seek(&bytes[..], t).expect("seek");
            let (expected, due) = whole.screen_at(t.min(whole.duration()));
            assert_eq!(
                model.snapshot(),
                expected.snapshot(),
                "the screen at {seconds}"
            );
            // Then every frame after it, in order.
            for i in due..whole.frame_count() {
                let (at, resize, data) = whole.frame(i).expect("frame");
                let frame = cursor.next_frame().expect("read").expect("a frame");
                assert_eq!(
                    (frame.at, frame.resize, &frame.data[..]),
                    (at, resize, data)
                );
            }
            assert_eq!(cursor.next_frame().expect("read"), None);
        }
    }

    #[test]
    fn the_index_places_moments_as_the_whole_recording_does() {
        let records = records(400);
        let bytes = file(&records);
        let start = records[0].time;
        let moments: Vec<SystemTime> = (0..50)
            .map(|i| start + Duration::from_millis(i * 7_919))
            .collect();
        let (index, placed) =
            StreamIndex::build_placing(&bytes[..], options(), moments.clone()).expect("index");
        let expected =
            crate::recording::place_moments(records.iter().map(|r| r.time), &options(), moments);
        assert_eq!(placed, expected);
        assert!(placed.windows(2).all(|w| w[0] <= w[1]));
        assert!(placed.iter().all(|p| *p <= index.duration()));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let mut bytes = file(&records(20));
        bytes.truncate(bytes.len() - 3);
        assert!(StreamIndex::build(&bytes[..], options()).is_err());
        let mut huge = bytes[..8].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            StreamIndex::build(&huge[..], options()),
            Err(TtyrecError::TooLong { .. })
        ));
    }
}
