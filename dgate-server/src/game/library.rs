//! The recordings as the server serves them ([`Library`]): the directory's
//! listing, cached for a moment; one keyframe index per recording file (and
//! idle cap), built once by reading the file and shared by every replay of
//! it, with the game's chat (`<recording>.chat.jsonl`) placed on the same
//! timeline; and the caps on replays at once, in all and per address. What a
//! replay then plays is [`super::recordings::play`]'s.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dgate_term::ScreenModel;
use dgate_term::streamed::{Cursor, StreamIndex};
use dgate_term::ttyrec::TtyrecError;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::recordings::{Entry, RecordingError, every_entry, find, listing_limit};
use crate::broadcast::chat::{self, ChatLine};
use crate::limits::{AddressLimiter, AddressSlot, Trusted};

/// Indexes of recently replayed files kept for the next replay.
const INDEXES_KEPT: usize = 8;
/// How long a listing of the directory is reused.
const LISTING_FOR: Duration = Duration::from_secs(2);

/// A reader that fails (`FileTooLarge`) rather than read past its cap.
pub(super) struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R> Capped<R> {
    pub(super) fn new(inner: R, cap: u64) -> Self {
        Self { inner, left: cap }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::FileTooLarge, "recording too large")
        })?;
        Ok(n)
    }
}

/// The idle caps replays use: 1, 2, 3, 5, 10, 30 or 60 s (the nearest at
/// or above; longer is 60 s).
fn round_idle(max_idle: Duration) -> Duration {
    const CAPS: [u64; 7] = [1, 2, 3, 5, 10, 30, 60];
    let seconds = CAPS
        .into_iter()
        .find(|cap| Duration::from_secs(*cap) >= max_idle)
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

pub(super) fn reading_error(e: TtyrecError) -> RecordingError {
    match e {
        TtyrecError::Io(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
            RecordingError::TooLarge
        }
        TtyrecError::Io(io) => RecordingError::Unreadable(io.to_string()),
        damaged => RecordingError::Damaged(damaged.to_string()),
    }
}

/// The recordings as the server serves them: the listing (cached for
/// [`LISTING_FOR`], or until a recording finishes), keyframe indexes shared by every replay of a file, and
/// the caps on replays at once (`ttyrec.max_replays`, and
/// `ttyrec.max_replays_per_address` except for trusted addresses).
#[derive(Debug)]
pub struct Library {
    directory: PathBuf,
    listing: Mutex<Option<(Instant, Arc<Vec<Entry>>)>>,
    indexes: Mutex<HashMap<IndexKey, (Instant, Arc<IndexCell>)>>,
    replays: Arc<Semaphore>,
    max_replays: usize,
    per_address: AddressLimiter,
}

type IndexCell = OnceCell<Result<Arc<Indexed>, RecordingError>>;

/// One file read with one idle cap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IndexKey {
    path: PathBuf,
    length: u64,
    modified: Option<SystemTime>,
    /// The chat beside it (none when there is none).
    chat_length: Option<u64>,
    max_idle: Option<Duration>,
}

/// A recording's index and its chat placed on its timeline, shared by
/// every replay of it.
#[derive(Debug)]
struct Indexed {
    index: StreamIndex,
    chat: Vec<PlacedLine>,
}

/// A line of a recording's chat and when it plays.
#[derive(Debug, Clone)]
pub struct PlacedLine {
    /// Playback time (idle pauses capped as the recording's).
    pub at: Duration,
    pub line: Arc<ChatLine>,
}

/// A replay's place in the caps, held while it plays.
#[derive(Debug)]
pub struct ReplayPermit {
    _total: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// A recording opened for one replay: its shared index, and where to read it.
#[derive(Debug)]
pub struct Replay {
    entry: Entry,
    indexed: Arc<Indexed>,
    _permit: ReplayPermit,
}

impl Library {
    pub fn new(
        directory: PathBuf,
        max_replays: usize,
        per_address: usize,
        trusted: Trusted,
    ) -> Self {
        Self {
            directory,
            listing: Mutex::new(None),
            indexes: Mutex::new(HashMap::new()),
            replays: Arc::new(Semaphore::new(max_replays)),
            max_replays,
            per_address: AddressLimiter::new(per_address, trusted),
        }
    }

    /// The finished recordings, newest first, filtered by user and game
    /// when given; read from the directory at most every [`LISTING_FOR`].
    pub async fn list(&self, username: &str, game_id: &str, limit: i32) -> Vec<Entry> {
        let cached = {
            let listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
            listing
                .as_ref()
                .filter(|(at, _)| at.elapsed() < LISTING_FOR)
                .map(|(_, entries)| Arc::clone(entries))
        };
        let all = match cached {
            Some(all) => all,
            None => {
                let directory = self.directory.clone();
                let read = tokio::task::spawn_blocking(move || every_entry(&directory))
                    .await
                    .unwrap_or_default();
                let read = Arc::new(read);
                *self.listing.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), Arc::clone(&read)));
                read
            }
        };
        let limit = listing_limit(limit);
        all.iter()
            .filter(|e| {
                (username.is_empty() || e.meta.username.eq_ignore_ascii_case(username))
                    && (game_id.is_empty() || e.meta.game_id == game_id)
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// A recording was added: the next listing reads the directory.
    pub fn forget_listing(&self) {
        *self.listing.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The recording `id` names, if it exists.
    pub async fn find(&self, id: &str) -> Option<Entry> {
        let (directory, id) = (self.directory.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || find(&directory, &id))
            .await
            .ok()
            .flatten()
    }

    /// A place for one more replay, watched from `peer`.
    pub fn admit(&self, peer: Option<IpAddr>) -> Result<ReplayPermit, RecordingError> {
        let address = match peer {
            Some(ip) => Some(self.per_address.admit(ip).ok_or_else(|| {
                RecordingError::TooManyReplays(format!(
                    "at most {} replays at once from one address",
                    self.per_address.max()
                ))
            })?),
            None => None,
        };
        let total = Arc::clone(&self.replays).try_acquire_owned().map_err(|_| {
            RecordingError::TooManyReplays(format!(
                "the server is playing its maximum of {} replays; try again soon",
                self.max_replays
            ))
        })?;
        Ok(ReplayPermit {
            _total: total,
            _address: address,
        })
    }

    /// Opens `entry` for a replay holding `permit`: its index is built (once
    /// per file, however many replays ask at once) or reused.
    pub async fn open(
        &self,
        entry: Entry,
        max_idle: Option<Duration>,
        permit: ReplayPermit,
    ) -> Result<Replay, RecordingError> {
        let file = std::fs::metadata(&entry.path)
            .map_err(|e| RecordingError::Unopenable(e.to_string()))?;
        // One index per file and idle cap: caps are rounded to a few values,
        // so that asking for many cannot make the server index a file again
        // and again.
        let max_idle = max_idle.map(round_idle);
        let chat_length = std::fs::metadata(entry.chat_path()).ok().map(|m| m.len());
        let key = IndexKey {
            path: entry.path.clone(),
            length: file.len(),
            modified: file.modified().ok(),
            chat_length,
            max_idle,
        };
        let cell = {
            let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
            if !indexes.contains_key(&key) && indexes.len() >= INDEXES_KEPT {
                // The least recently used goes (replays holding it keep it alive).
                if let Some(oldest) = indexes
                    .iter()
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(k, _)| k.clone())
                {
                    indexes.remove(&oldest);
                }
            }
            let (used, cell) = indexes
                .entry(key)
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())));
            *used = Instant::now();
            Arc::clone(cell)
        };
        let index = cell
            .get_or_init(|| {
                let entry = entry.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        let options = entry.meta.options(max_idle);
                        let said = chat::read_log(&entry.chat_path());
                        let moments = said.iter().map(|l| l.sent_at).collect();
                        let (index, placed) =
                            StreamIndex::build_placing(entry.reader()?, options, moments)
                                .map_err(reading_error)?;
                        let chat = placed
                            .into_iter()
                            .zip(said)
                            .map(|(at, line)| PlacedLine {
                                at,
                                line: Arc::new(line),
                            })
                            .collect();
                        Ok(Arc::new(Indexed { index, chat }))
                    })
                    .await
                    .unwrap_or_else(|e| Err(RecordingError::Unreadable(e.to_string())))
                }
            })
            .await
            .clone()?;
        Ok(Replay {
            entry,
            indexed: index,
            _permit: permit,
        })
    }
}

impl Replay {
    pub fn frame_count(&self) -> usize {
        self.indexed.index.frame_count()
    }

    pub fn duration(&self) -> Duration {
        self.indexed.index.duration()
    }

    /// The recording's chat, in the order said, each line where it plays
    /// (never before the line said before it).
    pub fn chat(&self) -> &[PlacedLine] {
        &self.indexed.chat
    }

    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The screen at `t` and a cursor after it (blocking: reads the file).
    pub(super) fn seek(
        &self,
        t: Duration,
    ) -> Result<(ScreenModel, Cursor<Box<dyn Read + Send>>), RecordingError> {
        self.indexed
            .index
            .seek(self.entry.reader()?, t)
            .map_err(reading_error)
    }
}
